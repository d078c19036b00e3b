//! The socket.io endpoint of engine.io 3 clients (socket.io-client 2.x), through socketioxide.
//! Engine.io 4 requests (socket.io 3/4 clients, every transport) never reach it: they are served
//! by the session loop ([`super::socketio_ws`], [`super::engineio`]).
//! The room comes from the handshake query `room`, else the listener's `socketio_room`. The join
//! runs in a connect middleware, so a refused join reaches the client as `connect_error`.
//! Event `msg` carries the SimpleP2P JSON string; gateway notices go out on event `switchboard`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query};
use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::handler::{MessageHandler, Value as SioValue};
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{SendError, SocketError};
use socketioxide::{SocketIo, TransportType};
use switchboard_protocol::dialects::socketio::{
    EventData, MSG_EVENT, NOTICE_EVENT, SioMessage, SioState, SocketIo as SioDialect, not_a_string,
    read_event_data,
};
use switchboard_protocol::{
    DecodeError, Decoded, Dialect, DialectKind, ErrorCode, Event, Join, JoinMode,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{ListenerContext, admission};
use crate::envelope::Original;
use crate::gateway::{self, Outbound, SessionInfo};
use crate::limits::{Permit, RateLimiter, RateVerdict};
use crate::session::{Refused, SessionCore, ice_servers, outbound_kind, refusal_event, render};
use crate::{rooms, stats, telemetry};

/// The receiving end of a session's deliveries, handed from the connect middleware to the
/// connect handler.
type Outbox = Option<(mpsc::Receiver<Outbound>, CancellationToken)>;

/// Per-socket state, kept in the socket's extensions behind one `Arc` (extensions hand out
/// clones, and this is read on every message).
struct SioSession {
    core: Mutex<SessionCore>,
    room: Arc<str>,
    /// The connection span; handlers enter it so their log lines carry the session's fields.
    span: tracing::Span,
    /// Taken once by the connect handler, which starts the writer task.
    outbox: Mutex<Outbox>,
    /// Shared with the admin API.
    info: Arc<SessionInfo>,
    /// The per-connection message rate.
    limiter: Mutex<RateLimiter>,
    /// The place under the connection caps, released on disconnect.
    permit: Mutex<Option<Permit>>,
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
    let config = cx.gateway.config();
    let limit = config.max_frame_bytes(DialectKind::Socketio);
    // A socket.io client joins on connecting to its namespace, right after its engine.io
    // handshake; a bare handshake holds a place under the caps until socketioxide closes it.
    let connect_timeout = Duration::from_secs(config.limits.socketio_connect_timeout_secs.max(1));
    let (layer, io) = SocketIo::builder()
        .connect_timeout(connect_timeout)
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

async fn join_room(
    s: SocketRef,
    State(cx): State<ListenerContext>,
    TryData(auth): TryData<Value>,
) -> Result<(), JoinRefused> {
    let (room, query_token) = join_from_handshake(&s, &cx.config.socketio_room);
    // socket.io v4 `io(url, {auth: {token}})` keeps the token out of URLs and access logs.
    let token = auth
        .ok()
        .and_then(|a| a.get("token")?.as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .or(query_token);
    rooms::check_room_name(&room).map_err(|e| {
        telemetry::room_name_refused(DialectKind::Socketio);
        JoinRefused(format!("invalid_room: {e}"))
    })?;
    let addr = s
        .req_parts()
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let permit = admission::admit_namespace(&cx, s.req_parts(), addr)
        .map_err(|r| JoinRefused(format!("{}: {}", r.as_str(), r.message())))?;
    let config = cx.gateway.config();
    let handle = cx.gateway.register(
        DialectKind::Socketio,
        Some(addr).filter(|a| !a.ip().is_unspecified()),
    );
    telemetry::session_opened(handle.id, DialectKind::Socketio);
    let peer = gateway::peer(handle.id, DialectKind::Socketio);
    let mut core = SessionCore {
        gateway: cx.gateway.clone(),
        peer,
        app: None,
        rooms: Vec::new(),
        engaged: true,
        blocked: Default::default(),
        finished: false,
    };
    let join = Event::Join(Join {
        room: room.clone(),
        mode: JoinMode::Both,
        token,
    });
    if let Some(Refused { refusal, .. }) =
        core.dispatch(join, None, std::time::Instant::now()).await
    {
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
    s.extensions.insert(Arc::new(SioSession {
        span,
        core: Mutex::new(core),
        room: room.into(),
        outbox: Mutex::new(Some((handle.rx, handle.cancel))),
        info: handle.info,
        limiter: Mutex::new(RateLimiter::new(&config.limits, Instant::now())),
        permit: Mutex::new(permit),
    }));
    // Handlers are registered here, before socketioxide sends the connect ack: the connect
    // handler runs in a task spawned after the ack, and a client that sends `msg` as soon as it
    // is connected could otherwise have its first events dropped for want of a handler (seen
    // under a 5,000-pair call-setup storm: an offer and its candidates lost).
    s.on("msg", DispatchMsg);
    s.on(
        NOTICE_EVENT,
        async |s: SocketRef, Data(data): Data<Value>| {
            on_event(&s, NOTICE_EVENT, data);
        },
    );
    s.on_disconnect(on_disconnect);
    Ok(())
}

async fn on_connect(s: SocketRef, State(cx): State<ListenerContext>) {
    let Some(session) = s.extensions.get::<Arc<SioSession>>() else {
        return;
    };
    let outbox = session
        .outbox
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some((rx, cancel)) = outbox else { return };
    let span = session.span.clone();
    let writer = write_loop(s.clone(), session, rx, cancel);
    cx.tracker.spawn(writer.instrument(span));
}

/// Emits what the bus delivers to this socket, in order.
/// How long a long-polling client gets to collect a last notice before its session is closed.
/// A pending poll returns as soon as something is emitted, so one round trip is enough.
const POLLING_LINGER: Duration = Duration::from_millis(500);

/// Emits a last notice (why the server is closing this socket), then disconnects. Over
/// WebSocket the notice is written before the disconnect packet. A long-polling client only
/// receives what was emitted when it polls, and disconnecting at once would drop the notice
/// with the session (and, while draining, the HTTP servers stop right after), so the socket
/// lingers for one poll cycle first.
async fn say_then_disconnect(s: &SocketRef, session: &SioSession, state: &SioState, event: &Event) {
    emit_event(s, session, state, event);
    if s.transport_type() == TransportType::Polling {
        tokio::time::sleep(POLLING_LINGER).await;
    }
    let _ = s.clone().disconnect();
}

async fn write_loop(
    s: SocketRef,
    session: Arc<SioSession>,
    mut rx: mpsc::Receiver<Outbound>,
    cancel: CancellationToken,
) {
    let state = SioState {
        room: session.room.to_string(),
    };
    let write_timeout = session
        .core
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .gateway
        .write_timeout();
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                if session.info.is_stuck() {
                    // The gateway gave up on this receiver (its queue stayed full): no drain
                    // notice.
                    gave_up(&session);
                    let _ = s.disconnect();
                    break;
                }
                // Draining: say why before the disconnect.
                say_then_disconnect(&s, &session, &state, &Event::ServerWillStop).await;
                break;
            }
            out = rx.recv() => {
                let Some(out) = out else { break };
                if let Outbound::Kick(reason) = &out {
                    let notice = Event::error(
                        ErrorCode::Refused,
                        Some(&session.room),
                        format!("disconnected by an operator: {reason}"),
                    );
                    say_then_disconnect(&s, &session, &state, &notice).await;
                    break;
                }
                let rendered = match verbatim_literal(&out) {
                    Some(literal) => Emit::Literal(literal),
                    None => match render::<SioDialect>(&state, &out) {
                        Some(msg) => Emit::Rendered(msg),
                        None => continue,
                    },
                };
                match emit_waiting(&s, &rendered, write_timeout).await {
                    Ok(()) => {
                        session.info.messages_out.fetch_add(1, Ordering::Relaxed);
                        stats::message_out(DialectKind::Socketio, outbound_kind(&out));
                    }
                    Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                        // socketioxide's buffer stayed full for the write timeout: the peer
                        // stopped reading. Its partners are told now, and the session ends
                        // here (socketioxide cannot send a disconnect packet into a full
                        // buffer, so its own disconnect would never come).
                        gave_up(&session);
                        let _ = s.disconnect();
                        break;
                    }
                    Err(_) => {
                        let _ = s.disconnect();
                        break;
                    }
                }
            }
        }
    }
}

/// Ends a session the gateway gave up on for not reading: partners are told, the session is
/// counted once with its own reason, and its place under the caps is released.
fn gave_up(session: &SioSession) {
    if !session.info.stuck.swap(true, Ordering::AcqRel) {
        telemetry::write_timed_out(DialectKind::Socketio, Duration::ZERO);
    }
    session
        .core
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish("stuck");
    session
        .permit
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
}

/// A delivery ready to emit.
enum Emit<'a> {
    /// A socket.io peer's `msg` argument, forwarded as it came.
    Literal(&'a str),
    /// Rendered for this peer.
    Rendered(SioMessage),
}

/// Emits `rendered`, waiting (up to `timeout`) while socketioxide's per-socket buffer is full
/// rather than dropping it. socketioxide offers no way to await room in that buffer, so this
/// retries with a short, growing pause; the buffer fills only while the peer reads slower than
/// its partners send.
async fn emit_waiting(
    s: &SocketRef,
    rendered: &Emit<'_>,
    timeout: Duration,
) -> Result<(), SendError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let emitted = match rendered {
            Emit::Literal(literal) => emit_literal(s, literal),
            Emit::Rendered(msg) => s.emit(msg.event.as_str(), &msg.data),
        };
        match emitted {
            Err(SendError::Socket(SocketError::InternalChannelFull))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The sender's `msg` argument, as the JSON string literal it arrived as, when `out` is a signal
/// from another socket.io peer (which is forwarded byte-identical).
fn verbatim_literal(out: &Outbound) -> Option<&str> {
    match out {
        Outbound::Relay(env)
            if env.from.dialect == DialectKind::Socketio
                && switchboard_protocol::dialects::socketio::forwards_verbatim(&env.event) =>
        {
            env.original.as_deref()
        }
        _ => None,
    }
}

/// Emits `msg` with `literal` (a JSON string literal, escapes and quotes included) as its
/// argument, copied into the packet as it is: no unescaping and escaping again.
fn emit_literal(s: &SocketRef, literal: &str) -> Result<(), SendError> {
    match serde_json::from_str::<&RawValue>(literal) {
        Ok(raw) => s.emit(MSG_EVENT, raw),
        // Only ever built from a parsed packet, so this does not happen; skip rather than panic.
        Err(error) => {
            tracing::warn!(%error, "socket.io relay literal is not JSON; not forwarded");
            Ok(())
        }
    }
}

/// The `msg` handler. socketioxide spawns a task for every call of a closure handler, so two
/// `msg` events from one socket could be dispatched concurrently and reach the partner out of
/// order (a candidate before its offer), and every message paid a task spawn. This handler is
/// called by socketioxide directly, in arrival order; decoding and dispatch never block, so
/// the whole work happens in the call.
#[derive(Debug, Clone, Copy)]
struct DispatchMsg;

impl MessageHandler<LocalAdapter, ()> for DispatchMsg {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, v: SioValue, _ack: Option<i64>) {
        let received = Instant::now();
        let s = SocketRef::from(s);
        let Some(session) = s.extensions.get::<Arc<SioSession>>() else {
            return;
        };
        // Nothing below awaits, so the guard never crosses a suspension point.
        let _entered = session.span.enter();
        // Counted before any decoding, so a flood is refused at the cost of a counter.
        if !within_rate(&s, &session) {
            return;
        }
        match &v {
            SioValue::Str(packet, None) => on_msg(&s, &session, packet.as_str(), received),
            // Binary attachments: refuse, in the peer's terms.
            _ => refuse_unparsable(&s, &session, "binary attachments"),
        }
    }
}

/// Decodes and dispatches the event data of one `msg` packet, keeping the argument's literal
/// for a verbatim relay.
fn on_msg(s: &SocketRef, session: &SioSession, data: &str, received: Instant) {
    match read_event_data(&session.room, data) {
        Ok(EventData::Msg(decoded, literal)) => {
            handle_decoded(s, session, decoded, Some(Original::from(literal)), received);
        }
        // This handler is socketioxide's for `msg` packets: their data names `msg`.
        Ok(EventData::Other(..)) => {}
        Err(error) => refuse_unparsable(s, session, &error.to_string()),
    }
}

/// Renders `event` for this socket and emits it, counting it.
fn emit_event(s: &SocketRef, session: &SioSession, state: &SioState, event: &Event) {
    if let Some(msg) = SioDialect::encode(state, event) {
        session.info.messages_out.fetch_add(1, Ordering::Relaxed);
        stats::message_out(DialectKind::Socketio, event.kind());
        let _ = s.emit(msg.event.as_str(), &msg.data);
    }
}

/// Counts one inbound message against the rate limit. `false`: drop it (the peer was told, or
/// disconnected when it kept going).
fn within_rate(s: &SocketRef, session: &SioSession) -> bool {
    session.info.messages_in.fetch_add(1, Ordering::Relaxed);
    let verdict = session
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .check(Instant::now());
    match verdict {
        RateVerdict::Allow => true,
        RateVerdict::Refuse => {
            telemetry::rate_limited(DialectKind::Socketio);
            let state = SioState {
                room: session.room.to_string(),
            };
            let limit = session
                .core
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .gateway
                .config()
                .limits
                .messages_per_sec;
            let event = Event::error(
                ErrorCode::RateLimited,
                Some(&session.room),
                format!("more than {limit} messages per second; message dropped"),
            );
            emit_event(s, session, &state, &event);
            false
        }
        RateVerdict::Close => {
            telemetry::rate_limit_closed(DialectKind::Socketio);
            let _ = s.clone().disconnect();
            false
        }
    }
}

fn refuse_unparsable(s: &SocketRef, session: &SioSession, reason: &str) {
    stats::message_in(DialectKind::Socketio, "error");
    let error = not_a_string();
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

/// Decodes and dispatches one event (`msg`, or `switchboard` for requests to the gateway).
fn on_event(s: &SocketRef, event_name: &str, data: Value) {
    let received = Instant::now();
    let Some(session) = s.extensions.get::<Arc<SioSession>>() else {
        return;
    };
    // Nothing below awaits, so the guard never crosses a suspension point.
    let _entered = session.span.enter();
    if !within_rate(s, &session) {
        return;
    }
    let mut state = SioState {
        room: session.room.to_string(),
    };
    let wire = SioMessage {
        event: event_name.to_owned(),
        data,
    };
    let decoded = SioDialect::decode(&mut state, &wire);
    handle_decoded(s, &session, decoded, None, received);
}

/// Dispatches what a peer sent, or answers it. `literal` is the `msg` argument as it came, for
/// verbatim relay to socket.io peers.
fn handle_decoded(
    s: &SocketRef,
    session: &SioSession,
    decoded: Result<Decoded<SioMessage>, DecodeError>,
    literal: Option<Original>,
    received: Instant,
) {
    stats::message_in(
        DialectKind::Socketio,
        match &decoded {
            Ok(Decoded::Event(e)) => e.kind(),
            Ok(_) => "other",
            Err(_) => "error",
        },
    );
    let reply = match decoded {
        Ok(Decoded::Event(Event::IceServersRequest)) => {
            let core = session.core.lock().unwrap_or_else(PoisonError::into_inner);
            Some(ice_servers(&core.gateway, core.peer.session))
        }
        Ok(Decoded::Event(event)) => {
            let mut core = session.core.lock().unwrap_or_else(PoisonError::into_inner);
            let refused = core
                .dispatch_now(event, literal, received)
                .map(|r| refusal_event(&r.refusal, Some(&session.room)));
            let blocked = core.take_blocked();
            let timeout = core.gateway.write_timeout();
            drop(core);
            // Backpressure: this handler runs on the task that reads the socket (or the
            // long-polling POST), so waiting here stops reading until the receivers have room.
            blocked.wait_blocking(timeout);
            refused
        }
        Ok(Decoded::Reply(msg)) => {
            session.info.messages_out.fetch_add(1, Ordering::Relaxed);
            stats::message_out(DialectKind::Socketio, "other");
            let _ = s.emit(msg.event.as_str(), &msg.data);
            None
        }
        Ok(Decoded::Ignore | Decoded::Close) => None,
        Err(error) => {
            telemetry::decode_failed(DialectKind::Socketio, &error);
            Some(Event::error(
                error.code(),
                Some(&session.room),
                error.to_string(),
            ))
        }
    };
    if let Some(event) = reply {
        let state = SioState {
            room: session.room.to_string(),
        };
        emit_event(s, session, &state, &event);
    }
}

async fn on_disconnect(s: SocketRef, reason: DisconnectReason) {
    let Some(session) = s.extensions.get::<Arc<SioSession>>() else {
        return;
    };
    let _entered = session.span.enter();
    let ended = end_reason(reason);
    if matches!(
        reason,
        DisconnectReason::PacketParsingError | DisconnectReason::MultipleHttpPollingError
    ) {
        // engine.io refused what the peer sent (a malformed or oversized payload, a packet
        // socket.io cannot parse, two polls at once): counted as a WebSocket peer's bad input is.
        telemetry::transport_refused(DialectKind::Socketio, ended);
    }
    session
        .core
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish(ended);
    session
        .permit
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
}

/// The session end reason (as WebSocket sessions name theirs) for why socketioxide closed it.
fn end_reason(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose | DisconnectReason::ClientNSDisconnect => "peer closed",
        DisconnectReason::PacketParsingError => "malformed packet",
        DisconnectReason::MultipleHttpPollingError => "concurrent polls",
        DisconnectReason::TransportError => "read failed",
        DisconnectReason::HeartbeatTimeout => "ping timeout",
        DisconnectReason::ServerNSDisconnect => "server disconnect",
        DisconnectReason::ClosingServer => "cancelled",
    }
}
