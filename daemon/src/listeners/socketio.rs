//! The socket.io endpoint (socketioxide; protocol v4 and v5, so socket.io-client 2.x to 4.x).
//! The room comes from the handshake query `room`, else the listener's `socketio_room`. The join
//! runs in a connect middleware, so a refused join reaches the client as `connect_error`.
//! Event `msg` carries the SimpleP2P JSON string; gateway notices go out on event `switchboard`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::Query;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{Data, SocketRef, State};
use socketioxide::handler::ConnectHandler;
use socketioxide::handler::{FromMessageParts, Value as SioValue};
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Socket;
use switchboard_protocol::dialects::socketio::{SioMessage, SioState, SocketIo as SioDialect};
use switchboard_protocol::{DecodeError, Decoded, Dialect, DialectKind, Event, Join, JoinMode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ListenerContext;
use crate::gateway::{self, Outbound};
use crate::session::{SessionCore, ice_servers, refusal_event, render};
use crate::{rooms, telemetry};

/// The receiving end of a session's deliveries, handed from the connect middleware to the
/// connect handler.
type Outbox = Option<(mpsc::Receiver<Outbound>, CancellationToken)>;

/// Per-socket state kept in the socket's extensions (values there must be `Clone`).
#[derive(Clone)]
struct SioSession {
    core: Arc<Mutex<SessionCore>>,
    room: Arc<str>,
    /// The connection span; handlers enter it so their log lines carry the session's fields.
    span: tracing::Span,
    /// Taken once by the connect handler, which starts the writer task.
    outbox: Arc<Mutex<Outbox>>,
}

/// A refused connection; its text is the `connect_error` message the client sees.
#[derive(Debug)]
struct JoinRefused(String);

impl std::fmt::Display for JoinRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds the socket.io layer and instance for one listener.
pub fn layer(cx: ListenerContext) -> (SocketIoLayer, SocketIo) {
    let limit = cx.gateway.config().limits.max_frame_bytes;
    let (layer, io) = SocketIo::builder()
        .max_payload(limit as u64)
        .ws_max_message_size(limit)
        .ws_max_frame_size(limit)
        .with_state(cx)
        .build_layer();
    io.ns("/", on_connect.with(join_room));
    (layer, io)
}

/// The room (else `default`) and join token from the handshake query.
fn join_from_handshake(s: &SocketRef, default: &str) -> (String, Option<String>) {
    let query = Query::<HashMap<String, String>>::try_from_uri(&s.req_parts().uri);
    let mut query = query.map(|Query(q)| q).unwrap_or_default();
    let room = query.remove("room").unwrap_or_else(|| default.to_owned());
    (room, query.remove("token").filter(|t| !t.is_empty()))
}

async fn join_room(s: SocketRef, State(cx): State<ListenerContext>) -> Result<(), JoinRefused> {
    let (room, token) = join_from_handshake(&s, &cx.config.socketio_room);
    rooms::check_room_name(&room).map_err(|e| JoinRefused(format!("invalid_room: {e}")))?;
    let handle = cx.gateway.register();
    telemetry::session_opened(handle.id, DialectKind::Socketio);
    let peer = gateway::peer(handle.id, DialectKind::Socketio);
    let mut core = SessionCore {
        gateway: cx.gateway.clone(),
        peer,
        rooms: Vec::new(),
    };
    let join = Event::Join(Join {
        room: room.clone(),
        mode: JoinMode::Both,
        token,
    });
    if let Some(refusal) = core.dispatch(join, None) {
        core.finish("join refused");
        return Err(JoinRefused(format!(
            "{}: {}",
            refusal.code.as_str(),
            refusal.message
        )));
    }
    let span = tracing::info_span!(
        "conn",
        conn.id = %handle.id,
        sid = %s.id,
        dialect = "socketio",
        room = %room,
    );
    s.extensions.insert(SioSession {
        span,
        core: Arc::new(Mutex::new(core)),
        room: room.into(),
        outbox: Arc::new(Mutex::new(Some((handle.rx, handle.cancel)))),
    });
    Ok(())
}

async fn on_connect(s: SocketRef, State(cx): State<ListenerContext>) {
    let Some(session) = s.extensions.get::<SioSession>() else {
        return;
    };
    let outbox = session
        .outbox
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some((rx, cancel)) = outbox else { return };
    s.on("msg", async |_: DispatchedInOrder| {});
    s.on_disconnect(on_disconnect);
    let writer = write_loop(s.clone(), session.room.clone(), rx, cancel);
    cx.tracker.spawn(writer.instrument(session.span.clone()));
}

/// Emits what the bus delivers to this socket, in order.
async fn write_loop(
    s: SocketRef,
    room: Arc<str>,
    mut rx: mpsc::Receiver<Outbound>,
    cancel: CancellationToken,
) {
    let state = SioState {
        room: room.to_string(),
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = s.disconnect();
                break;
            }
            out = rx.recv() => {
                let Some(out) = out else { break };
                let Some(msg) = render::<SioDialect>(&state, &out) else { continue };
                if s.emit(msg.event.as_str(), &msg.data).is_err() {
                    // Closed, or socketioxide's own per-socket buffer is full: either way this
                    // peer cannot take more.
                    let _ = s.disconnect();
                    break;
                }
            }
        }
    }
}

/// Dispatches each `msg` while socketioxide extracts it. socketioxide runs every event handler in
/// a task of its own, so two `msg` events from one socket could be dispatched concurrently and
/// reach the partner out of order (a candidate before its offer). Extractors, however, run
/// synchronously in arrival order; decoding and dispatch never block, so the whole work happens
/// here and the handler itself is empty.
struct DispatchedInOrder;

impl FromMessageParts<LocalAdapter> for DispatchedInOrder {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        s: &Arc<Socket<LocalAdapter>>,
        v: &mut SioValue,
        ack: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        let data = Data::<Value>::from_message_parts(s, v, ack);
        let s = SocketRef::from(Arc::clone(s));
        match data {
            Ok(Data(data)) => on_msg(&s, data),
            // Binary attachments or a payload the parser rejects: refuse, in the peer's terms.
            Err(error) => refuse_unparsable(&s, &error.to_string()),
        }
        Ok(Self)
    }
}

fn refuse_unparsable(s: &SocketRef, reason: &str) {
    let Some(session) = s.extensions.get::<SioSession>() else {
        return;
    };
    let error = DecodeError::WrongType {
        field: "msg",
        expected: "a JSON string",
    };
    telemetry::decode_failed(DialectKind::Socketio, &error);
    let state = SioState {
        room: session.room.to_string(),
    };
    let event = Event::error(
        error.code(),
        Some(&session.room),
        format!("{error} ({reason})"),
    );
    if let Some(msg) = SioDialect::encode(&state, &event) {
        let _ = s.emit(msg.event.as_str(), &msg.data);
    }
}

fn on_msg(s: &SocketRef, data: Value) {
    let Some(session) = s.extensions.get::<SioSession>() else {
        return;
    };
    // Nothing below awaits, so the guard never crosses a suspension point.
    let _entered = session.span.enter();
    let mut state = SioState {
        room: session.room.to_string(),
    };
    let original: Option<Arc<str>> = match &data {
        Value::String(text) => Some(Arc::from(text.as_str())),
        _ => None,
    };
    let wire = SioMessage {
        event: "msg".to_owned(),
        data,
    };
    let reply = match SioDialect::decode(&mut state, &wire) {
        Ok(Decoded::Event(Event::IceServersRequest)) => {
            let core = session.core.lock().unwrap_or_else(PoisonError::into_inner);
            Some(ice_servers(&core.gateway))
        }
        Ok(Decoded::Event(event)) => {
            let mut core = session.core.lock().unwrap_or_else(PoisonError::into_inner);
            core.dispatch(event, original)
                .map(|r| refusal_event(&r, Some(&session.room)))
        }
        Ok(Decoded::Reply(msg)) => {
            let _ = s.emit(msg.event.as_str(), &msg.data);
            None
        }
        Ok(Decoded::Ignore) => None,
        Err(error) => {
            telemetry::decode_failed(DialectKind::Socketio, &error);
            Some(Event::error(
                error.code(),
                Some(&session.room),
                error.to_string(),
            ))
        }
    };
    if let Some(msg) = reply.and_then(|event| SioDialect::encode(&state, &event)) {
        let _ = s.emit(msg.event.as_str(), &msg.data);
    }
}

async fn on_disconnect(s: SocketRef) {
    let Some(session) = s.extensions.get::<SioSession>() else {
        return;
    };
    let _entered = session.span.enter();
    session
        .core
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish("disconnected");
}
