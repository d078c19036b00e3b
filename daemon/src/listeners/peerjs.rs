//! The PeerJS endpoint, at the `peer` server's paths: the WebSocket
//! `ws://HOST:PORT/peerjs?key=…&id=…&token=…` (and `/peerjs/peerjs?…`, where a page sets
//! `path: "/peerjs"`), and `GET /{key}/id` (and `/peerjs/{key}/id`), which hands out a free id.
//!
//! A connection registers its id: the gateway holds it until the socket closes, and a second
//! connection asking for it gets `ID-TAKEN`. A missing parameter, a wrong key or an id the
//! `peerjs` client itself would refuse get the `peer` server's `ERROR`, then a close. A
//! registered connection gets `OPEN` and joins the room of its own id.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use switchboard_protocol::dialects::peerjs::{self, Peerjs, PeerjsState};
use switchboard_protocol::{DialectKind, Join, JoinMode};
use tracing::Instrument;

use super::{ListenerContext, admission};
use crate::session::{self, close_code};
use crate::telemetry;

/// The ids registered by open PeerJS connections, shared by every listener of the gateway.
#[derive(Debug, Default)]
pub struct PeerIds {
    ids: Mutex<HashSet<String>>,
}

impl PeerIds {
    /// Takes `id` for a connection, unless another holds it. The id is free again when the
    /// returned claim drops.
    fn claim(self: &Arc<Self>, id: &str) -> Option<IdClaim> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.insert(id.to_owned()).then(|| IdClaim {
            ids: Arc::clone(self),
            id: id.to_owned(),
        })
    }

    fn is_taken(&self, id: &str) -> bool {
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.contains(id)
    }
}

/// One connection's hold on its id.
#[derive(Debug)]
struct IdClaim {
    ids: Arc<PeerIds>,
    id: String,
}

impl Drop for IdClaim {
    fn drop(&mut self) {
        let mut ids = self.ids.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.remove(&self.id);
    }
}

/// Query parameters of the WebSocket (the client adds `version`, which is not read).
#[derive(Debug, Deserialize)]
struct PeerQuery {
    key: Option<String>,
    id: Option<String>,
    token: Option<String>,
}

pub fn routes(cx: ListenerContext) -> Router {
    let key = cx.gateway.config().peerjs.key.clone();
    Router::new()
        .route("/peerjs", get(upgrade))
        .route("/peerjs/peerjs", get(upgrade))
        .route(&format!("/{key}/id"), get(new_id))
        .route(&format!("/peerjs/{key}/id"), get(new_id))
        .route(&format!("/{key}/peers"), get(no_discovery))
        .route(&format!("/peerjs/{key}/peers"), get(no_discovery))
        .with_state(cx)
}

/// A free id, as the `peer` server gives one: a random UUID, as `text/html`.
async fn new_id(State(cx): State<ListenerContext>) -> Response {
    // A random UUID is free but for a 2^-122 chance; a few tries bound the loop all the same.
    let mut id = random_uuid();
    for _ in 0..4 {
        if !cx.peerjs_ids.is_taken(&id) {
            break;
        }
        id = random_uuid();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        id,
    )
        .into_response()
}

/// The `peer` server without `allow_discovery`: the list of ids is not given out.
async fn no_discovery() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        "peer discovery is not offered by this gateway\n",
    )
        .into_response()
}

/// A version 4 UUID from the operating system's random source.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: ids would repeat; a time-based one still differs per request.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What a WebSocket request gets: a session for its id, or the `peer` server's refusal.
enum Admitted {
    Session {
        id: String,
        token: String,
        claim: IdClaim,
    },
    Refused {
        frame: String,
        code: u16,
        reason: &'static str,
    },
}

/// Checks the parameters and claims the id, before the upgrade.
fn admit_id(cx: &ListenerContext, query: PeerQuery) -> Admitted {
    let refused = |frame: String, code, reason| Admitted::Refused {
        frame,
        code,
        reason,
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let (Some(key), Some(id), Some(token)) = (
        nonempty(query.key),
        nonempty(query.id),
        nonempty(query.token),
    ) else {
        let msg = "No id, token, or key supplied to websocket server";
        return refused(
            peerjs::error_message(msg),
            close_code::BAD_ROOM,
            "missing_parameters",
        );
    };
    if key != cx.gateway.config().peerjs.key {
        let frame = peerjs::error_message("Invalid key provided");
        return refused(frame, close_code::REFUSED, "invalid_key");
    }
    if !peerjs::valid_id(&id) {
        let msg = format!(
            "ID is invalid: 1 to {} bytes of [A-Za-z0-9] words joined by single spaces, `_` or `-`",
            switchboard_protocol::MAX_ID_BYTES
        );
        let frame = peerjs::error_message(&msg);
        return refused(frame, close_code::BAD_ROOM, "invalid_room");
    }
    if token.len() > switchboard_protocol::MAX_ID_BYTES {
        let frame = peerjs::error_message("Invalid token provided");
        return refused(frame, close_code::BAD_ROOM, "invalid_token");
    }
    match cx.peerjs_ids.claim(&id) {
        Some(claim) => Admitted::Session { id, token, claim },
        None => refused(peerjs::id_taken(), close_code::REFUSED, "id_taken"),
    }
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(query): Query<PeerQuery>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(cx): State<ListenerContext>,
) -> Response {
    let permit = match admission::admit(&cx, DialectKind::Peerjs, addr) {
        Ok(permit) => permit,
        Err(refusal) => return admission::refusal_response(refusal),
    };
    let admitted = admit_id(&cx, query);
    let limit = cx.gateway.config().max_frame_bytes(DialectKind::Peerjs);
    let ws = super::small_buffers(ws);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let tracker = cx.tracker.clone();
            super::spawn_session(&tracker, serve(cx, socket, admitted, permit, addr))
        })
}

/// Runs the session of an admitted connection, or sends a refused one its refusal.
async fn serve(
    cx: ListenerContext,
    socket: WebSocket,
    admitted: Admitted,
    permit: crate::limits::Permit,
    addr: SocketAddr,
) {
    let (id, token, claim) = match admitted {
        Admitted::Session { id, token, claim } => (id, token, claim),
        Admitted::Refused {
            frame,
            code,
            reason,
        } => {
            telemetry::peerjs_refused(addr, reason);
            return refuse(socket, frame, code, reason).await;
        }
    };
    let handle = cx.gateway.register(DialectKind::Peerjs, Some(addr));
    let span = tracing::info_span!("conn", conn.id = %handle.id, peer.addr = %addr, dialect = "peerjs", peer.id = %id);
    let join = Join {
        room: id.clone(),
        mode: JoinMode::Both,
        token: Some(token.clone()),
    };
    let session = session::run_websocket::<Peerjs>(
        socket,
        session::WsSession {
            gateway: cx.gateway.clone(),
            handle,
            state: PeerjsState::new(id, Some(token)),
            join: Some(join),
            permit,
            app: None,
        },
    );
    session.instrument(span).await;
    // Held for as long as the session: the id is free again once it ends.
    drop(claim);
}

/// Sends the refusal and closes, as the `peer` server does (with a close code that says why).
async fn refuse(mut socket: WebSocket, frame: String, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Text(frame.into())).await;
    let close = axum::extract::ws::CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_held_until_its_claim_drops() {
        let ids = Arc::new(PeerIds::default());
        let claim = ids.claim("alice").expect("free");
        assert!(ids.claim("alice").is_none(), "taken while held");
        assert!(ids.is_taken("alice"));
        drop(claim);
        assert!(ids.claim("alice").is_some(), "free again");
    }

    #[test]
    fn new_ids_are_valid_peerjs_ids() {
        let a = random_uuid();
        assert_eq!(a.len(), 36);
        assert!(peerjs::valid_id(&a), "{a}");
        assert_ne!(a, random_uuid());
    }
}
