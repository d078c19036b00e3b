//! engine.io 3 and 4 (socket.io-client 2, and 3 and 4) with long-polling and the upgrade, served
//! by the one session loop: a session that opens on polling runs `session::run_websocket` over an
//! [`EngineTransport`], whose reads are what the client POSTs and whose writes are what its GETs
//! collect, until the client upgrades to a WebSocket and the same session goes on there. Rate
//! limits, outcomes, drain, kick, teardown and backpressure are the session loop's, as for every
//! other session.
//!
//! What each request does (as the engine.io reference server answers it):
//! - `GET ?EIO=4&transport=polling` (no `sid`): admission, then a new session; the GET is
//!   answered with the open packet the session writes first.
//! - `GET ...&sid=S`: waits until the session has written something; a second GET while one is
//!   pending is refused (400) and ends the session.
//! - `POST ...&sid=S`: its packets go to the session, refused (413) above `maxPayload` before
//!   the body is read whole. Its bytes are reserved first under its address's and the gateway's
//!   budget of undelivered POST bytes (`budget`, `reserve`) and given back as the session takes
//!   its packets. An engine.io 4 POST is answered once the session's channel took it (`post4`);
//!   an engine.io 3 POST is read whole (up to `engineio3_max_post_bytes`) and answered at once
//!   (`post3`).
//! - `GET ...&transport=websocket&sid=S` (an upgrade): `2probe` is answered `3probe`, a pending
//!   GET is released with a `noop` (and every 100 ms until the `5`), and after `5` the session
//!   moves to the WebSocket, which first carries whatever the GETs had not collected.
//! - an unknown `sid`: 400 `{"code":1,"message":"Session ID unknown"}`.
//! - JSONP polling (engine.io 3's `j=` query, for browsers without XHR): 400 with a message
//!   saying so; every client since 2014 polls with XHR or opens a WebSocket.
//!
//! Both versions differ only in framing and the open packet: a v3 payload is length-prefixed
//! (`payload3`), its open packet has no `maxPayload`, and its client pings (the session answers).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{FromRequestParts, Request, WebSocketUpgrade};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use futures_util::{FutureExt, SinkExt, StreamExt};
use switchboard_protocol::DialectKind;
use switchboard_protocol::dialects::TextFrames;
use switchboard_protocol::dialects::engineio::polling::{self, RequestError};
use switchboard_protocol::dialects::engineio::{
    EngineState, EngineVersion, SocketIoWs, connect_error_for,
};
use switchboard_protocol::{Join, JoinMode};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{ListenerContext, admission};
use crate::session;
pub use budget::PostBudget;
use queue::{Batch, PollQueue};
use reserve::too_large;
pub use transport::PollingError;
use transport::{EngineTransport, Inbound};

mod budget;
mod post3;
mod post4;
mod queue;
mod reserve;
mod transport;

/// The open polling sessions of one listener, by engine.io `sid`.
#[derive(Debug, Default)]
pub struct Sessions(DashMap<Arc<str>, Entry>);

/// A session in [`Sessions`].
#[derive(Debug, Clone)]
enum Entry {
    /// On long-polling, or upgrading.
    Polling(Arc<EngineSession>),
    /// Upgraded, speaking this version: a GET is answered with a `noop`, anything else refused.
    /// Its polling state is gone (`probe`): kept, the inbound channel and the queue made an
    /// upgraded session twice the size of one opened on a WebSocket.
    Upgraded(EngineVersion),
}

/// What the requests of one polling session share with its loop.
#[derive(Debug)]
pub struct EngineSession {
    /// How its POSTs are framed.
    version: EngineVersion,
    queue: Arc<PollQueue>,
    inbound: mpsc::Sender<Inbound>,
    /// Whether a POST is being read (engine.io refuses a second at once).
    posting: AtomicBool,
    /// Whether an upgrade is under way or done (one per session).
    upgrading: AtomicBool,
    /// Whether the upgrade's probe was answered and its `5` has not come yet: the client is
    /// pausing polling, waiting for its POST to be answered.
    probed: AtomicBool,
    /// What engine.io 3 POSTs brought that the session has not taken yet.
    undelivered: Arc<post3::Undelivered>,
    /// The POST budget of the client address the session was admitted for.
    budget: budget::AddressBudget,
}

/// POST payloads waiting for the session loop: a session that is not reading (its receivers'
/// queues are full) makes the client's next POST wait, as a WebSocket peer's TCP window does.
const INBOUND_PAYLOADS: usize = 4;

/// How often a pending GET is released with a `noop` while an upgrade waits for its `5`
/// (engine.io's server checks every 100 ms).
const NOOP_EVERY: Duration = Duration::from_millis(100);

/// How long a client has to finish an upgrade it started (engine.io's `upgradeTimeout`).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an ended polling session keeps its last packets (the drain notice, the disconnect)
/// for its client's next GET.
const LINGER: Duration = Duration::from_millis(500);

/// How long an engine.io 3 handshake waits for the session's connect packet to answer it with
/// the open packet.
const V3_CONNECT_WAIT: Duration = Duration::from_secs(1);

/// Serves an engine.io request of `version`: `query` is its parsed query string.
pub async fn serve(
    cx: ListenerContext,
    request: Request,
    addr: SocketAddr,
    version: EngineVersion,
    mut query: HashMap<String, String>,
) -> Response {
    if query.contains_key("j") {
        return jsonp_refused();
    }
    let transport = query.remove("transport").unwrap_or_default();
    let Some(sid) = query.remove("sid") else {
        return match (transport.as_str(), request.method()) {
            ("polling", &Method::GET) => handshake(cx, addr, version, query).await,
            ("polling", _) => refuse(RequestError::BadRequest),
            _ => refuse(RequestError::UnknownTransport),
        };
    };
    let session = match cx.engineio.0.get(sid.as_str()).map(|s| s.clone()) {
        Some(Entry::Polling(session)) => session,
        Some(Entry::Upgraded(version)) => return after_upgrade(version, &transport, &request),
        None => return refuse(RequestError::UnknownSid),
    };
    match (transport.as_str(), request.method()) {
        ("polling", &Method::GET) => poll(&session).await,
        ("polling", &Method::POST) => post(&cx, &session, request).await,
        ("websocket", &Method::GET) => upgrade(cx, session, sid.into(), request).await,
        ("polling" | "websocket", _) => refuse(RequestError::BadRequest),
        _ => refuse(RequestError::UnknownTransport),
    }
}

/// engine.io's answer to a request it refuses: 400 and its JSON error.
pub fn refuse(error: RequestError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        polling::error_body(error),
    )
        .into_response()
}

/// engine.io 3's JSONP polling (`j=`), which the gateway does not serve: 400 and why.
fn jsonp_refused() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":3,"message":"JSONP polling is not supported: use XHR long-polling or a WebSocket"}"#,
    )
        .into_response()
}

/// Opens a polling session: admitted under the caps and the room check like any socket.io
/// session, its loop spawned, and this GET answered with its open packet.
async fn handshake(
    cx: ListenerContext,
    addr: SocketAddr,
    version: EngineVersion,
    query: HashMap<String, String>,
) -> Response {
    let Some(state) = new_state(&cx, query, version, true) else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if let Err(e) = crate::rooms::check_room_name(&state.room) {
        crate::telemetry::room_name_refused(DialectKind::Socketio);
        return refused_handshake(&state, &format!("invalid_room: {e}"));
    }
    // A refusal under the caps keeps nothing: its follow-ups are answered from its `sid` (v4),
    // or it is engine.io 3's own JSON error with the cap's status.
    let permit = match admission::admit(&cx, DialectKind::Socketio, addr) {
        Ok(permit) => permit,
        Err(refusal) if version == EngineVersion::V3 => {
            return admission::engineio_refusal(refusal);
        }
        Err(refusal) => return admission::refused_handshake(refusal),
    };
    let (inbound, rx) = mpsc::channel(INBOUND_PAYLOADS);
    let queue = Arc::new(PollQueue::new(version));
    let undelivered = Arc::new(post3::Undelivered::default());
    let session = Arc::new(EngineSession {
        version,
        queue: queue.clone(),
        inbound,
        posting: AtomicBool::new(false),
        upgrading: AtomicBool::new(false),
        probed: AtomicBool::new(false),
        undelivered: undelivered.clone(),
        budget: cx.post_budget.address(addr.ip()),
    });
    let sid: Arc<str> = state.engine_sid.as_str().into();
    cx.engineio
        .0
        .insert(sid.clone(), Entry::Polling(session.clone()));
    let (ws_session, span) = start_session(&cx, addr, state, permit, "polling");
    let run = session::run_websocket::<SocketIoWs>(
        EngineTransport::new(version, rx, queue.clone(), undelivered),
        ws_session,
    );
    let sessions = cx.engineio.clone();
    // Not an `async` block awaiting `run`: such a block keeps the future it captured and the
    // one it awaits side by side, so every session's task held the session loop twice (a
    // 4,352-byte task block, against 2,432 for a session opened on a WebSocket). Only a weak
    // reference to the queue is kept: an upgraded session drops its polling state.
    let queue = Arc::downgrade(&queue);
    cx.tracker.spawn(
        run.then(move |()| async move {
            if let Some(queue) = queue.upgrade() {
                linger(&queue).await;
            }
            sessions.remove(&sid);
        })
        .instrument(span),
    );
    if version == EngineVersion::V3 {
        // Bounded: a join held up (a cluster's Redis) answers with the open packet alone, and
        // the connect follows on the next GET.
        let _ = tokio::time::timeout(V3_CONNECT_WAIT, session.queue.holds(2)).await;
    }
    poll(&session).await
}

/// Keeps an ended session's last packets for its client's next GET, for at most [`LINGER`]. A
/// client that was upgrading when the session ended (its probe answered, its `5` not yet read)
/// has paused polling and sends no GET: once its `5` hands the WebSocket over, the packets go
/// out there ([`send_left`]); dropped with the queue, they were lost, the drain notice among
/// them.
async fn linger(queue: &PollQueue) {
    queue.close();
    let deadline = tokio::time::Instant::now() + LINGER;
    while !queue.is_drained() && tokio::time::Instant::now() < deadline {
        if let Some((ws, left)) = queue.adopt() {
            let _ = tokio::time::timeout_at(deadline, send_left(ws, left)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes an ended session's last packets on the WebSocket its client upgraded to, then closes
/// it.
async fn send_left(mut ws: Box<WebSocket>, left: VecDeque<Utf8Bytes>) {
    for packet in left {
        if ws.feed(Message::Text(packet)).await.is_err() {
            return;
        }
    }
    let _ = ws.close().await;
}

/// A handshake refused for its room name, told in the client's terms: an open packet then a
/// connect error, which its `connect_error` handler receives (as over a WebSocket).
fn refused_handshake(state: &EngineState, message: &str) -> Response {
    let queue = PollQueue::new(state.version);
    let mut payload = String::new();
    queue.append(
        &mut payload,
        &SocketIoWs::greeting(state).unwrap_or_default(),
    );
    queue.append(&mut payload, &connect_error_for(state.version, message));
    polling_text(payload)
}

fn polling_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
}

/// A GET: answered with what the session wrote, as soon as there is something.
async fn poll(session: &EngineSession) -> Response {
    let Ok(_pending) = session.queue.begin_poll() else {
        // engine.io ends the session: two pending polls mean a broken client or a replay. The
        // session loop counts it.
        let _ = session
            .inbound
            .try_send(Inbound::Overlap("a second GET while one was pending"));
        return refuse(RequestError::BadRequest);
    };
    loop {
        match session.queue.take() {
            Batch::Payload(payload) => return polling_text(payload),
            Batch::Empty => session.queue.changed().await,
        }
    }
}

/// A POST: its packets go to the session loop, in order. The size limit (`maxPayload`, or for
/// engine.io 3 `engineio3_max_post_bytes` and the per-address budget, whichever is lower) is
/// checked on the announced length before anything is read, and while reading otherwise.
async fn post(cx: &ListenerContext, session: &EngineSession, request: Request) -> Response {
    let config = cx.gateway.config();
    let limit = config.max_frame_bytes(DialectKind::Socketio);
    // One v3 body holds any number of packets: its frame limit is per packet, as it is read. A
    // body above its address's whole budget could never be reserved: refused as too large, in
    // both versions.
    let body_limit = match session.version {
        EngineVersion::V3 => config
            .limits
            .engineio3_max_post_bytes
            .min(cx.post_budget.per_ip()),
        EngineVersion::V4 => limit.min(cx.post_budget.per_ip()),
    };
    if let Some(len) = reserve::announced(&request).filter(|&len| len > body_limit) {
        return too_large(session, len).await;
    }
    if session.posting.swap(true, Ordering::AcqRel) {
        let _ = session
            .inbound
            .try_send(Inbound::Overlap("a second POST while one was being read"));
        return refuse(RequestError::BadRequest);
    }
    // Cleared however this request ends (a client that goes away mid-body drops it here).
    let posting = Posting(&session.posting);
    if session.version == EngineVersion::V3 {
        let limits = post3::Limits {
            packet: limit,
            body: body_limit,
            wait: cx.gateway.write_timeout(),
        };
        return post3::post(limits, &cx.post_budget, session, request).await;
    }
    let wait = cx.gateway.write_timeout();
    let read = post4::read(body_limit, wait, &cx.post_budget, session, request).await;
    drop(posting);
    let (body, held) = match read {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    if session
        .inbound
        .send(Inbound::Payload(body, held))
        .await
        .is_err()
    {
        return refuse(RequestError::UnknownSid);
    }
    ([(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}

/// A POST being read; the next may come once it is dropped.
struct Posting<'a>(&'a AtomicBool);

impl Drop for Posting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Sessions {
    /// Removes `sid`'s entry when its session ends.
    fn remove(&self, sid: &str) {
        self.0.remove(sid);
    }

    /// `session` (of `sid`) upgraded: its entry keeps only its engine.io version, and the
    /// polling state goes with the last reference to it.
    fn upgraded(&self, sid: &str, session: &Arc<EngineSession>) {
        if let Some(mut entry) = self.0.get_mut(sid)
            && matches!(&*entry, Entry::Polling(s) if Arc::ptr_eq(s, session))
        {
            *entry = Entry::Upgraded(session.version);
        }
    }
}

/// A request for a session that upgraded: a GET (a client's poll still under way) gets a
/// `noop`, as during the upgrade; anything else is refused as engine.io refuses it.
fn after_upgrade(version: EngineVersion, transport: &str, request: &Request) -> Response {
    if transport != "polling" || request.method() != Method::GET {
        return refuse(RequestError::BadRequest);
    }
    let mut payload = String::new();
    PollQueue::new(version).append(&mut payload, polling::NOOP);
    polling_text(payload)
}

/// An upgrade to a WebSocket: the probe, then the session moves there.
async fn upgrade(
    cx: ListenerContext,
    session: Arc<EngineSession>,
    sid: Arc<str>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(_) => return refuse(RequestError::BadRequest),
    };
    if session.upgrading.swap(true, Ordering::AcqRel) {
        return refuse(RequestError::BadRequest);
    }
    let limit = cx.gateway.config().max_frame_bytes(DialectKind::Socketio);
    let ws = super::small_buffers(ws)
        .max_message_size(limit)
        .max_frame_size(limit);
    let sessions = cx.engineio.clone();
    ws.on_upgrade(move |socket| {
        cx.tracker
            .track_future(probe(session, socket, sessions, sid))
    })
}

/// Runs the upgrade's probe on `socket`; hands the socket to the session after the client's `5`.
/// Its entry in `sessions` then keeps only its version ([`Entry::Upgraded`]): with the entry's
/// reference go the inbound channel and the queue, which the transport drops once it reads
/// [`Inbound::Upgraded`].
async fn probe(
    session: Arc<EngineSession>,
    mut socket: WebSocket,
    sessions: Arc<Sessions>,
    sid: Arc<str>,
) {
    let probed = tokio::time::timeout(UPGRADE_TIMEOUT, async {
        expect(&mut socket, polling::PROBE).await?;
        socket
            .send(Message::Text(polling::PROBE_ANSWER.into()))
            .await
            .ok()?;
        // From here the client pauses polling: it waits for its POST, which must not wait on
        // the session (post3).
        session.probed.store(true, Ordering::Release);
        session.undelivered.wake();
        // Ends the client's pending poll, so it can pause polling and send `5`.
        session.queue.push(polling::NOOP.into());
        upgraded(&session, &mut socket).await
    })
    .await;
    session.probed.store(false, Ordering::Release);
    session.undelivered.wake();
    if let Ok(Some(())) = probed {
        session.queue.hand_over(socket);
        let _ = session.inbound.send(Inbound::Upgraded).await;
        sessions.upgraded(&sid, &session);
        return;
    }
    // The client may try again (engine.io lets it); this socket is dropped.
    session.upgrading.store(false, Ordering::Release);
}

/// Waits for the client's `5` on the probe socket. Meanwhile a GET left pending with nothing to
/// take is answered with a `noop` every [`NOOP_EVERY`], as engine.io's server does: a client
/// that polled again after the first `noop` but before it saw `3probe` waits for that poll to
/// end before it pauses, and two such clients flooding each other would write each other
/// nothing (each holds its burst until its upgrade is done).
async fn upgraded(session: &EngineSession, socket: &mut WebSocket) -> Option<()> {
    let mut tick = tokio::time::interval(NOOP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let upgrade = expect(socket, polling::UPGRADE);
    tokio::pin!(upgrade);
    loop {
        tokio::select! {
            done = &mut upgrade => return done,
            _ = tick.tick() => {
                session.queue.release_pending_poll();
            }
        }
    }
}

/// Reads one frame; `Some` when it is the text `expected`.
async fn expect(socket: &mut WebSocket, expected: &str) -> Option<()> {
    match socket.next().await {
        Some(Ok(Message::Text(text))) if text.as_str() == expected => Some(()),
        _ => None,
    }
}

/// An admitted socket.io session on `transport` (`"polling"` or `"websocket"`): registered
/// with the gateway, with what its session loop needs and the span it runs in.
pub fn start_session(
    cx: &ListenerContext,
    addr: SocketAddr,
    state: EngineState,
    permit: crate::limits::Permit,
    transport: &'static str,
) -> (session::WsSession<SocketIoWs>, tracing::Span) {
    let handle = cx.gateway.register(DialectKind::Socketio, Some(addr));
    let span = tracing::info_span!(
        "conn",
        conn.id = %handle.id,
        peer.addr = %addr,
        dialect = "socketio",
        transport,
        room = %state.room,
    );
    // An engine.io 3 client does not connect namespace `/`: the server does, at once.
    let join = (state.version == EngineVersion::V3).then(|| Join {
        room: state.room.clone(),
        mode: JoinMode::Both,
        token: state.token.clone(),
    });
    let ws_session = session::WsSession {
        gateway: cx.gateway.clone(),
        handle,
        state,
        join,
        permit,
        app: None,
    };
    (ws_session, span)
}

/// A new engine.io session's state from its handshake query: its room (the listener's
/// default when the query names none), its token if not empty, fresh ids, and the socket.io
/// frame limit as its `maxPayload`. `polling` says whether it opened on long-polling or on a
/// WebSocket from the start. `None` when no session id can be drawn (no random source).
pub fn new_state(
    cx: &ListenerContext,
    mut query: HashMap<String, String>,
    version: EngineVersion,
    polling: bool,
) -> Option<EngineState> {
    let room = query
        .remove("room")
        .unwrap_or_else(|| cx.config.socketio_room.clone());
    Some(EngineState {
        version,
        token: query.remove("token").filter(|t| !t.is_empty()),
        engine_sid: new_sid()?,
        socket_sid: new_sid()?,
        max_payload: cx.gateway.config().max_frame_bytes(DialectKind::Socketio),
        connected: false,
        room,
        polling,
    })
}

/// A new engine.io or socket.io id: 120 random bits, URL-safe (as engine.io's `base64id`).
pub fn new_sid() -> Option<String> {
    use base64::Engine;
    let mut bytes = [0u8; 15];
    // A polling session's sid is its only credential: without a random source, an id that
    // could be guessed would let anyone read and write that session, so none is made.
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "no random source for engine.io session ids");
        return None;
    }
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
