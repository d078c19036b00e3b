//! A peer session on a WebSocket of text frames (the `antmedia` and `raw` dialects, and socket.io
//! over engine.io frames): one task owns the socket, decodes what the peer sends, dispatches it,
//! and writes what the bus delivers, rendered in the peer's dialect. What differs between these
//! dialects at the connection level (engine.io's open packet and pings, socket.io's connect
//! acknowledgement) comes from their [`TextFrames`] hooks.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::future::Either;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use switchboard_plugin_api::{Peer, Refusal, SessionId};
use switchboard_protocol::dialects::{Keepalive, TextFrames};
use switchboard_protocol::{
    ConferenceCommand, DecodeError, Decoded, Dialect, DialectKind, ErrorCode, Event, Join,
};

use crate::envelope::{Envelope, Original, WireText};
use crate::gateway::{
    self, Blocked, Gateway, Inbox, Membership, Outbound, SessionHandle, SessionInfo,
};
use crate::limits::{Permit, RateLimiter, RateVerdict};
use crate::listeners::engineio::PollingError;
use crate::{stats, telemetry};

/// WebSocket close codes used by the gateway.
pub mod close_code {
    /// The gateway is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The session broke a rule (it stopped reading its messages, sent messages too fast for
    /// too long) or an operator kicked it.
    pub const POLICY: u16 = 1008;
    /// A frame above the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Raw join refused: the room is full.
    pub const ROOM_FULL: u16 = 4409;
    /// Raw join refused by a plugin.
    pub const REFUSED: u16 = 4403;
    /// Raw join refused: bad room name.
    pub const BAD_ROOM: u16 = 4400;
    /// No join within `[limits] join_timeout_secs` of connecting.
    pub const JOIN_TIMEOUT: u16 = 4408;
}

/// Renders a delivery for a peer of dialect `D`.
pub fn render<D: Dialect>(state: &D::State, out: &Outbound) -> Option<D::Wire> {
    match out {
        Outbound::Relay(env) => match &env.original {
            Some(original) if env.from.dialect == D::KIND => {
                D::forward(state, original, &env.event)
            }
            _ => D::encode(state, &env.event),
        },
        Outbound::Event(event) => D::encode(state, event),
        // A WebSocket session writes the text ([`render_frame`]); here it is decoded again.
        Outbound::Remote(forwards, at) => match forwards.envelope(*at) {
            Ok(env) => render::<D>(state, &Outbound::Relay(Arc::new(env))),
            Err(_) => None,
        },
        // Handled by the session before rendering.
        Outbound::Kick(_) => None,
    }
}

/// [`render`] for a WebSocket session: a relay that passes the sender's frame on unchanged
/// sends that frame's own bytes ([`ReceivedFrame`]) rather than a rendered copy.
///
/// A signal from a peer of another cluster node comes rendered by that node: its frame (a
/// slice of the bundle it came in) is written as it is, a socket.io literal framed by the
/// receiving transport ([`TextFrames::forward_literal`]).
fn render_frame<D: TextFrames>(state: &D::State, out: &Outbound) -> Option<Utf8Bytes> {
    if let Some(fwd) = out.remote()
        && fwd.dialect == D::KIND
    {
        if fwd.literal {
            return D::forward_literal(state, fwd.text.as_str()).map(Utf8Bytes::from);
        }
        return Some(fwd.text.clone());
    }
    if let Outbound::Relay(env) = out
        && env.from.dialect == D::KIND
        && let Some(received) = env
            .original
            .as_ref()
            .and_then(Original::downcast_ref::<ReceivedFrame>)
        && received.forward_is_frame
        && D::forwards_frame(state, &env.event)
    {
        return Some(received.frame.clone());
    }
    render::<D>(state, out).map(Utf8Bytes::from)
}

/// A text frame a WebSocket session received, kept as the [`Original`] of the event decoded
/// from it: the original is `frame[start..end]`, and `forward_is_frame` says whether the
/// frame is what [`Dialect::forward`] renders from it ([`TextFrames::forward_is_frame`]).
///
/// Copying each relayed frame into an `Original`, then into the forward rendered for the
/// receiver, made two copies of every 6 KB offer (BENCHMARKS.md, sixth round). Sharing costs
/// holding the frame's bytes while it is queued: they are a slice of the sender's read buffer,
/// which the sender's next frames fill in turn.
struct ReceivedFrame {
    frame: Utf8Bytes,
    start: usize,
    end: usize,
    forward_is_frame: bool,
}

impl WireText for ReceivedFrame {
    fn as_str(&self) -> &str {
        // In bounds and on character boundaries: cut from this frame (`original_of`).
        self.frame
            .as_str()
            .get(self.start..self.end)
            .unwrap_or_default()
    }
}

/// The [`Original`] of an event decoded from `frame`: the frame itself when `part` (the text
/// to forward) was cut from it, otherwise `part`'s own copy.
fn original_of<D: TextFrames>(frame: &Utf8Bytes, part: Cow<'_, str>) -> Original {
    let text = frame.as_str();
    let Cow::Borrowed(cut) = part else {
        return Original::from(part);
    };
    let Some(start) = offset_in(text, cut) else {
        return Original::from(cut);
    };
    let end = start + cut.len();
    Original::new(ReceivedFrame {
        frame: frame.clone(),
        start,
        end,
        forward_is_frame: D::forward_is_frame(text, start, end),
    })
}

/// Where `part` starts in `whole`, when it is a slice of it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = part.as_ptr().addr().checked_sub(whole.as_ptr().addr())?;
    (start.checked_add(part.len())? <= whole.len()).then_some(start)
}

/// An event the gateway refused: why, and the event's room.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub refusal: Refusal,
    /// The refused event's room.
    pub room: Option<String>,
}

impl Refused {
    /// The error that tells the sender, naming the event's room.
    pub fn event(&self) -> Event {
        refusal_event(&self.refusal, self.room.as_deref())
    }
}

/// The error event a refusal becomes.
pub fn refusal_event(refusal: &Refusal, room: Option<&str>) -> Event {
    Event::error(refusal.code, room, refusal.message.clone())
}

/// The ICE settings event for `session`: minted TURN credentials when `[turn]` is set,
/// otherwise `[ice]` as configured.
pub fn ice_servers(gateway: &Gateway, session: SessionId) -> Event {
    crate::turn::ice_servers(&gateway.config(), session, std::time::SystemTime::now())
}

/// A session's identity and rooms, shared by every dialect's session type.
#[derive(Debug)]
pub struct SessionCore {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// This session as plugins see it.
    pub peer: Peer,
    /// The Ant Media application of its URL (`None` for other dialects): every event it sends
    /// carries it ([`Envelope::app`]), so each access check uses the URL's application.
    pub app: Option<Arc<str>>,
    /// Rooms this session is in, so they can be left when it closes.
    pub rooms: Vec<String>,
    /// Whether a room-bound event of this session was ever accepted (a join, a conference
    /// command); until then the join timeout runs.
    pub engaged: bool,
    /// Deliveries of this session's events that found their receivers' queues full; the
    /// session waits for them before it reads on ([`Self::take_blocked`]).
    pub blocked: Blocked,
    /// Deliveries this session's own events made for it, which it writes itself after its
    /// replies rather than take from its queue ([`crate::gateway::Dispatched::own`]).
    pub own: Vec<Outbound>,
    /// Set by [`Self::finish`]: a session ends once, however many ways it is ended.
    pub finished: bool,
}

impl SessionCore {
    /// Dispatches `event` from this session, which arrived at `received` (the relay latency
    /// metric covers decode, the pipeline and queuing the deliveries), and records any
    /// membership change. The way a session's own events reach the pipeline (its departures,
    /// [`Self::leave_rooms`], go to [`crate::gateway::Dispatcher::dispatch`] directly). Only a
    /// join with `[cluster]` waits (for its claim in Redis), in a future of its own.
    ///
    /// Not an `async fn`: the pipeline runs in this call, and the future returned is ready but
    /// for a cluster join's claim, which is boxed. An `async fn` keeps its arguments (the event,
    /// its original) and the dispatcher's future in its state, and the session loop's future,
    /// which every idle session holds, was as large as that state (BENCHMARKS.md, "Fourth step
    /// (session 11)").
    pub fn dispatch(
        &mut self,
        event: Event,
        original: Option<Original>,
        received: Instant,
    ) -> impl Future<Output = Option<Refused>> + Send + '_ {
        if let Some(refused) = self.over_room_cap(&event) {
            return Either::Left(std::future::ready(Some(refused)));
        }
        let routed = event.room().is_some();
        let envelope = Envelope {
            from: self.peer,
            event,
            original,
            app: self.app.clone(),
        };
        match self.gateway.dispatcher().dispatch_at_once(envelope) {
            Ok(out) => Either::Left(std::future::ready(self.record(routed, received, out))),
            Err(envelope) => {
                let gateway = Arc::clone(&self.gateway);
                Either::Right(Box::pin(async move {
                    let out = gateway.dispatcher().dispatch(*envelope).await;
                    self.record(routed, received, out)
                }))
            }
        }
    }

    /// Refuses a join into one more room when this session is already in
    /// `[limits] max_rooms_per_session` rooms: checked before the pipeline runs, so the room
    /// table never holds the extra room (a repeated join of a room it is in passes).
    fn over_room_cap(&self, event: &Event) -> Option<Refused> {
        let room = joined_room(event)?;
        let max = self.gateway.config().limits.max_rooms_per_session;
        if self.rooms.len() < max || self.rooms.iter().any(|r| r == room) {
            return None;
        }
        let refusal = Refusal::new(
            ErrorCode::Refused,
            format!(
                "this connection is already in {max} rooms (the most one connection may be in)"
            ),
        );
        telemetry::refused(self.peer.dialect, refusal.code);
        Some(Refused {
            refusal,
            room: Some(room.to_owned()),
        })
    }

    /// Counts a dispatched event and keeps the session's list of rooms.
    fn record(
        &mut self,
        routed: bool,
        received: Instant,
        out: crate::gateway::Dispatched,
    ) -> Option<Refused> {
        if routed {
            stats::observe_relay(received.elapsed());
            self.engaged |= out.refusal.is_none();
        }
        self.blocked.extend(out.blocked);
        self.own.extend(out.own);
        match out.membership {
            Some(Membership::Joined(room)) => self.rooms.push(room),
            Some(Membership::Left(room)) => self.rooms.retain(|r| *r != room),
            None => {}
        }
        if let Some(refusal) = &out.refusal {
            telemetry::refused(self.peer.dialect, refusal.code);
        }
        out.refusal.map(|refusal| Refused {
            refusal,
            room: out.refused_room,
        })
    }

    /// The deliveries this session's own events made for it, to write now (after its replies).
    pub fn take_own(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.own)
    }

    /// The deliveries waiting for room in their receivers' queues, taken out to wait for.
    pub fn take_blocked(&mut self) -> Blocked {
        std::mem::take(&mut self.blocked)
    }

    /// Leaves every room now (partners are told), before a close that may take a while.
    pub fn leave_rooms(&mut self) {
        let dispatcher = self.gateway.dispatcher();
        for room in std::mem::take(&mut self.rooms) {
            // A departure claims nothing, so it is dispatched in the first poll; the closing
            // session cannot wait for its partners' queues.
            let departed = dispatcher.dispatch(Envelope::departure(self.peer, room));
            if let Some(out) = departed.now_or_never() {
                out.blocked.defer();
            }
        }
    }

    /// Leaves every room (partners are told) and unregisters.
    pub fn finish(&mut self, reason: &str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.leave_rooms();
        self.gateway.registry().unregister(self.peer.session);
        self.gateway.dispatcher().session_closed(self.peer.session);
        telemetry::session_closed(self.peer.session, self.peer.dialect, reason);
    }
}

/// The room `event` would make its sender a member of: a join (every dialect) or an Ant
/// `joinRoom`.
fn joined_room(event: &Event) -> Option<&str> {
    match event {
        Event::Join(join) => Some(&join.room),
        Event::Conference(c) if matches!(c.command, ConferenceCommand::JoinRoom(_)) => {
            Some(c.target())
        }
        _ => None,
    }
}

/// What a WebSocket session needs besides its socket.
#[derive(Debug)]
pub struct WsSession<D: Dialect> {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The session's end of the bus.
    pub handle: SessionHandle,
    /// The dialect's per-connection state.
    pub state: D::State,
    /// The room a raw peer joins on connect (from its URL).
    pub join: Option<Join>,
    /// Its place under the connection caps, released when the session ends.
    pub permit: Permit,
    /// The Ant Media application of its URL ([`SessionCore::app`]).
    pub app: Option<Arc<str>>,
}

/// Runs one WebSocket peer session until the peer closes, the gateway shuts down, or the peer
/// breaks a rule. `socket` is a WebSocket, or an engine.io long-polling session's transport,
/// which reads and writes the same messages (`listeners/engineio`).
pub fn run_websocket<D: TextFrames>(
    socket: impl Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error>,
    session: WsSession<D>,
) -> impl Future<Output = ()> {
    let (sink, stream) = socket.split();
    session_loop(Box::new(LoopParts {
        sink,
        stream,
        session,
    }))
}

/// What [`session_loop`] starts from, boxed: an `async fn` keeps each argument in its future
/// for its whole life, beside the locals the argument is taken apart into, so the socket and
/// the [`WsSession`] passed by value were held twice by every session; passed in a box, the
/// copy that stays is a pointer (BENCHMARKS.md, "What an idle session holds").
struct LoopParts<D: Dialect, Si, St> {
    sink: Si,
    stream: St,
    session: WsSession<D>,
}

/// Takes a value out of its box and frees the box now: moved out of in place (`*parts`), the
/// box itself is freed only when the function holding it returns, here the session's end.
#[allow(clippy::boxed_local)] // the point: a boxed argument, freed on return.
fn unbox<T>(boxed: Box<T>) -> T {
    *boxed
}

/// What the session loop holds from its start to its end, taken apart from its [`LoopParts`]
/// by [`open`], a plain function. A local of an `async fn` that is taken apart field by field
/// (the `WsSession`, its `SessionHandle`), or borrowed, keeps its room in the future until its
/// scope ends, and a local held at more than one `.await` is kept beside every other such
/// local: taken apart in the loop itself, the parts it starts from were held a second time by
/// every idle session (BENCHMARKS.md, "Lean idle sessions", seventh step).
struct Opened<D: Dialect, Si, St> {
    sink: Si,
    stream: St,
    state: Box<D::State>,
    rx: Inbox,
    cancel: tokio_util::sync::CancellationToken,
    info: Arc<SessionInfo>,
    permit: Permit,
    limiter: RateLimiter,
    join_timeout_secs: u32,
    join_timer: Timer,
    write_timeout_secs: u32,
    heartbeat: Heartbeat,
    core: SessionCore,
    join: Option<Join>,
}

/// Takes the session's parts apart and registers what the loop needs before its first write.
fn open<D, Si, St>(parts: Box<LoopParts<D, Si, St>>) -> Opened<D, Si, St>
where
    D: TextFrames,
{
    let LoopParts {
        sink,
        stream,
        session:
            WsSession {
                gateway,
                handle:
                    SessionHandle {
                        id,
                        rx,
                        cancel,
                        info,
                    },
                state,
                join,
                permit,
                app,
            },
    } = unbox(parts);
    // Boxed: socket.io's state (its ids, room and token, 112 bytes) inline made its loop's
    // future 128 bytes too large for its task to fit mimalloc's 2,048-byte class; Ant's and
    // raw's (one `String`) cost a 32-byte block.
    let state = Box::new(state);
    // What the loop needs of the configuration: the rare path that needs more reads the
    // configuration again.
    let config = gateway.config();
    let join_timeout = join_timeout::<D>(&config);
    // Boxed, and dropped once the session is engaged: inline, the timer stayed in every
    // session's future for its whole life.
    let join_timer: Timer =
        (!join_timeout.is_zero()).then(|| Box::pin(tokio::time::sleep(join_timeout)));
    let limiter = RateLimiter::new(&config.limits, Instant::now());
    let write_timeout_secs =
        u32::try_from(config.limits.write_timeout_secs.max(1)).unwrap_or(u32::MAX);
    // Read before the greeting, which only reads the dialect's state; its timer is made after.
    let keepalive =
        D::keepalive(&state).or_else(|| websocket_pings(config.limits.ping_interval_secs));
    let core = SessionCore {
        gateway,
        peer: gateway::peer(id, D::KIND),
        app,
        rooms: Vec::new(),
        engaged: false,
        blocked: Blocked::default(),
        own: Vec::new(),
        finished: false,
    };
    // This loop writes its own notices itself (`own_frames`): they need no queue.
    rx.write_own();
    telemetry::session_opened(id, D::KIND);
    Opened {
        sink,
        stream,
        state,
        rx,
        cancel,
        info,
        permit,
        limiter,
        join_timeout_secs: u32::try_from(join_timeout.as_secs()).unwrap_or(u32::MAX),
        join_timer,
        write_timeout_secs,
        heartbeat: Heartbeat::new(keepalive),
        core,
        join,
    }
}

/// The session's first writes, before its loop: the dialect's greeting, the keepalive's timer
/// (made after the greeting, as the interval counts from it) and both timers armed, then the
/// join it makes as it connects. Awaited once, its locals (the greeting, the join) share their
/// room in the loop's future with the loop's own rare paths. Not an `async fn`, which would
/// keep each argument twice (the argument, and the local it is moved into). The keepalive's
/// timer, or the session's end reason.
#[allow(clippy::manual_async_fn)] // the point: an `async fn` keeps its arguments twice.
fn start<'a, D, S>(
    core: &'a mut SessionCore,
    state: &'a mut D::State,
    sink: &'a mut S,
    timers: (&'a mut Timer, &'a Heartbeat),
    join: Option<Join>,
) -> impl Future<Output = Result<Timer, &'static str>> + 'a
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    async move {
        let (join_timer, heartbeat) = timers;
        if let Some(greeting) = D::greeting(state)
            && sink.send(Message::Text(greeting.into())).await.is_err()
        {
            return Err("write failed");
        }
        // Boxed, and only when pings are on: a timer inline in every session's future made
        // every idle Ant and raw session larger by a whole timer (BENCHMARKS.md, "Profiling
        // figures (moved from code comments)").
        let mut heartbeat_timer: Timer = heartbeat
            .keepalive
            .map(|_| Box::pin(tokio::time::sleep(heartbeat.next_wait())));
        arm(join_timer).await;
        arm(&mut heartbeat_timer).await;
        // The whole `Option` is passed: taken apart here (`if let Some(join) = join`), it
        // stayed in the loop's future for the session's life.
        join_on_connect::<D, _>(core, state, sink, join).await?;
        Ok(heartbeat_timer)
    }
}

/// The session loop of [`run_websocket`].
async fn session_loop<D, Si, St>(parts: Box<LoopParts<D, Si, St>>)
where
    D: TextFrames,
    Si: Sink<Message, Error = axum::Error> + Unpin,
    St: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Opened {
        mut sink,
        mut stream,
        mut state,
        mut rx,
        cancel,
        info,
        permit: _permit,
        mut limiter,
        join_timeout_secs,
        mut join_timer,
        write_timeout_secs,
        mut heartbeat,
        mut core,
        join,
    } = open(parts);
    let started = start::<D, _>(
        &mut core,
        &mut state,
        &mut sink,
        (&mut join_timer, &heartbeat),
        join,
    );
    let mut heartbeat_timer = match started.await {
        Ok(timer) => timer,
        Err(reason) => {
            core.finish(reason);
            return;
        }
    };

    // Set while this session's last event waits for room in its receivers' queues: the socket
    // is not read meanwhile (TCP flow control slows the peer), but the session goes on writing
    // its own deliveries, so two peers sending to each other cannot block each other.
    let mut waiting: Waiting = None;
    let mut writer = Writer {
        sink: &mut sink,
        info: &info,
        dialect: D::KIND,
        timeout_secs: write_timeout_secs,
    };
    let reason = loop {
        if core.engaged && join_timer.is_some() {
            join_timer = None;
        }
        tokio::select! {
            () = cancel.cancelled() => break cancelled::<D, _>(&mut writer, &state, &mut core, &info).await,
            Some(out) = rx.recv() => {
                match writer.deliver::<D>(&state, out, &mut rx).await {
                    Ok(Delivered::All) => {}
                    Ok(Delivered::Kicked(reason)) => {
                        kicked::<D, _>(&mut writer, &state, reason).await;
                        break "kicked";
                    }
                    Err(WriteFailed::Socket) => break "write failed",
                    Err(WriteFailed::TimedOut) => {
                        timed_out(D::KIND, &mut core, &mut writer, &info).await;
                        break "write timeout";
                    }
                }
            }
            () = settled(&mut waiting), if waiting.is_some() => waiting = None,
            () = expiry(&mut join_timer), if !core.engaged && join_timer.is_some() => {
                join_timed_out::<D, _>(&mut writer, &state, join_timeout_secs).await;
                break "join timeout";
            }
            () = expiry(&mut heartbeat_timer), if heartbeat_timer.is_some() => {
                let beat = Beat { heartbeat: &mut heartbeat, timer: &mut heartbeat_timer };
                if let Err(reason) = beat.fired(D::KIND, &mut core, &mut writer, &info).await {
                    break reason;
                }
            }
            inbound = stream.next(), if waiting.is_none() => {
                // Each frame is taken apart by value, and the rare paths run in functions of
                // their own: what is still held (or borrowed) at more than one `.await` of this
                // loop is kept in every idle session's future (BENCHMARKS.md, "Lean idle
                // sessions").
                let message = match inbound {
                    None => break "peer closed",
                    Some(Err(e)) => break read_failed::<D, _>(&mut writer, &core, e).await,
                    Some(Ok(message)) => message,
                };
                let text = match message {
                    Message::Text(text) => Some(text),
                    Message::Binary(_) => None,
                    Message::Close(_) => break "peer closed",
                    Message::Ping(_) | Message::Pong(_) => {
                        if heartbeat.answered() {
                            rearm(&mut heartbeat_timer, heartbeat.next_wait()).await;
                        }
                        continue;
                    }
                };
                if heartbeat.answered() {
                    rearm(&mut heartbeat_timer, heartbeat.next_wait()).await;
                }
                let received = Instant::now();
                info.messages_in.fetch_add(1, Ordering::Relaxed);
                let counted = text.as_ref().is_none_or(|text| D::rate_limited(text.as_str()));
                let verdict = if counted { limiter.check(received) } else { RateVerdict::Allow };
                let replies = match verdict {
                    RateVerdict::Allow => match text {
                        Some(text) => match handle_text::<D>(&mut core, &mut state, text, received).await {
                            Handled::Reply(replies) => replies,
                            Handled::Close => break "peer closed",
                        },
                        None => {
                            stats::message_in(D::KIND, "error");
                            let e = Event::error(ErrorCode::BinaryNotSupported, None, "binary frames are not supported; send JSON text frames");
                            D::encode(&state, &e).into_iter().map(|f| (f, "error")).collect()
                        }
                    },
                    RateVerdict::Refuse => {
                        drop(text);
                        rate_limited::<D, _>(&mut writer, &state, &core).await;
                        continue;
                    }
                    RateVerdict::Close => {
                        drop(text);
                        telemetry::rate_limit_closed(D::KIND);
                        writer.closing::<D>(&state).await;
                        writer.close(close_code::POLICY, "message rate limit exceeded").await;
                        break "rate limit";
                    }
                };
                let blocked = core.take_blocked();
                if !blocked.is_empty() {
                    waiting = Some(Box::pin(blocked.wait()));
                }
                let mut failed = None;
                for (reply, kind) in replies {
                    if let Err(e) = writer.send(reply, kind).await {
                        failed = Some(e);
                        break;
                    }
                }
                match failed {
                    None => {}
                    Some(WriteFailed::Socket) => break "write failed",
                    Some(WriteFailed::TimedOut) => {
                        timed_out(D::KIND, &mut core, &mut writer, &info).await;
                        break "write timeout";
                    }
                }
            }
        }
    };
    core.finish(reason);
}

/// A session's keepalive, when its timer fires.
struct Beat<'a> {
    heartbeat: &'a mut Heartbeat,
    timer: &'a mut Timer,
}

impl Beat<'_> {
    /// Sends the next ping and re-arms the timer; the session's end reason when the last ping
    /// went unanswered or the ping could not be written.
    async fn fired<S>(
        self,
        dialect: DialectKind,
        core: &mut SessionCore,
        writer: &mut Writer<'_, S>,
        info: &SessionInfo,
    ) -> Result<(), &'static str>
    where
        S: Sink<Message, Error = axum::Error> + Unpin,
    {
        let Some(ping) = self.heartbeat.fire() else {
            writer.close(close_code::POLICY, "no answer to ping").await;
            return Err("ping timeout");
        };
        rearm(self.timer, self.heartbeat.next_wait()).await;
        match writer.ping(ping).await {
            Ok(()) => Ok(()),
            Err(WriteFailed::Socket) => Err("write failed"),
            Err(WriteFailed::TimedOut) => {
                timed_out(dialect, core, writer, info).await;
                Err("write timeout")
            }
        }
    }
}

/// The session's token was cancelled: it is stuck (its queue stayed full for the write
/// timeout) or the gateway is draining. The session's end reason.
async fn cancelled<D, S>(
    writer: &mut Writer<'_, S>,
    state: &D::State,
    core: &mut SessionCore,
    info: &SessionInfo,
) -> &'static str
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    if info.is_stuck() {
        // Checked here, not in a branch condition, which is read before the token fires: its
        // partners are told at once, then it gets its own reason, never the drain notice.
        core.leave_rooms();
        writer.close(close_code::POLICY, NOT_READING).await;
        return "stuck";
    }
    // Draining: tell the peer why before the close (Ant `server_will_stop`).
    if let Some(frame) = D::encode(state, &Event::ServerWillStop) {
        let _ = writer.send(frame, "server_will_stop").await;
    }
    writer.closing::<D>(state).await;
    writer
        .close(close_code::GOING_AWAY, "gateway shutting down")
        .await;
    "cancelled"
}

/// An operator kicked the session: it is told why (in its dialect), then closed with 1008.
async fn kicked<D, S>(writer: &mut Writer<'_, S>, state: &D::State, reason: Arc<String>)
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let notice = Event::error(
        ErrorCode::Refused,
        None,
        format!("disconnected by an operator: {reason}"),
    );
    if let Some(frame) = D::encode(state, &notice) {
        let _ = writer.send(frame, "error").await;
    }
    writer.closing::<D>(state).await;
    writer
        .close(close_code::POLICY, &format!("kicked: {reason}"))
        .await;
}

/// No join within `secs` of connecting: the session is told, then closed with 4408.
async fn join_timed_out<D, S>(writer: &mut Writer<'_, S>, state: &D::State, secs: u32)
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    telemetry::join_timed_out(D::KIND, Duration::from_secs(secs.into()));
    let message = format!("no join within {secs} s of connecting");
    let error = Event::error(ErrorCode::JoinTimeout, None, message.clone());
    if let Some(frame) = D::encode(state, &error) {
        let _ = writer.send(frame, "error").await;
    }
    writer.close(close_code::JOIN_TIMEOUT, &message).await;
}

/// A message over the rate limit, dropped: the sender is told.
async fn rate_limited<D, S>(writer: &mut Writer<'_, S>, state: &D::State, core: &SessionCore)
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    telemetry::rate_limited(D::KIND);
    let e = Event::error(
        ErrorCode::RateLimited,
        None,
        format!(
            "more than {} messages per second; message dropped",
            core.gateway.config().limits.messages_per_sec
        ),
    );
    if let Some(frame) = D::encode(state, &e) {
        let _ = writer.send(frame, "error").await;
    }
}

/// A read failed with `e`: a frame above the size limit (1009), a text frame that is not UTF-8
/// (1007) or a long-polling client's broken request (1008) are answered with their close code
/// and counted; anything else is the socket gone. The session's end reason.
async fn read_failed<D, S>(
    writer: &mut Writer<'_, S>,
    core: &SessionCore,
    e: axum::Error,
) -> &'static str
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    if is_too_large(&e) {
        // Read again here: held through the loop, it was part of every idle session.
        let max_frame = core.gateway.config().max_frame_bytes(D::KIND);
        telemetry::frame_too_large(D::KIND, max_frame);
        writer.close(close_code::TOO_BIG, "frame too large").await;
        return "frame too large";
    }
    if is_invalid_utf8(&e) {
        stats::message_in(D::KIND, "error");
        telemetry::invalid_utf8(D::KIND);
        writer
            .close(close_code::INVALID_DATA, "text frame is not UTF-8")
            .await;
        return "invalid utf-8";
    }
    // A long-polling client's broken request or packet (engine.io ends those).
    if let Some(reason) = PollingError::of(&e).and_then(PollingError::end_reason) {
        stats::message_in(D::KIND, "error");
        telemetry::transport_refused(D::KIND, reason);
        writer.close(close_code::POLICY, reason).await;
        return reason;
    }
    "read failed"
}

/// Runs the join a session makes as it connects (a raw URL's room, engine.io 3's namespace), if
/// it has one: a refusal is told in the peer's dialect and closes the session (4409 when the
/// room is full, 4403 otherwise); the join's acknowledgement and notices are written. The
/// session's end reason when it ends here. Not an `async fn`, for the reason [`start`] is not.
#[allow(clippy::manual_async_fn)] // the point: an `async fn` keeps its arguments twice.
fn join_on_connect<'a, D, S>(
    core: &'a mut SessionCore,
    state: &'a mut D::State,
    sink: &'a mut S,
    join: Option<Join>,
) -> impl Future<Output = Result<(), &'static str>> + 'a
where
    D: TextFrames,
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    async move {
        let Some(join) = join else {
            return Ok(());
        };
        let room = join.room.clone();
        if let Some(Refused { refusal, .. }) =
            core.dispatch(Event::Join(join), None, Instant::now()).await
        {
            let frame = D::encode(state, &refusal_event(&refusal, Some(&room)));
            let code = match refusal.code {
                ErrorCode::RoomFull => close_code::ROOM_FULL,
                _ => close_code::REFUSED,
            };
            if let Some(frame) = frame {
                let _ = sink.send(Message::Text(frame.into())).await;
            }
            let _ = sink.send(close(code, &refusal.message)).await;
            return Err("join refused");
        }
        // A dialect that acknowledges joins (engine.io 3's connect of `/`) says so now, then the
        // join's own notices.
        let frames = D::joined(state)
            .into_iter()
            .chain(own_frames::<D>(state, core).into_iter().map(|(f, _)| f));
        for frame in frames {
            if sink.send(Message::Text(frame.into())).await.is_err() {
                return Err("write failed");
            }
        }
        Ok(())
    }
}

/// How long a session of `D` may go without joining: `[limits] join_timeout_secs`, and for
/// socket.io, whose clients join when they connect their namespace, at once, at most
/// `socketio_connect_timeout_secs` (its engine.io handshake holds a place only that long).
fn join_timeout<D: Dialect>(config: &crate::config::GatewayConfig) -> Duration {
    let limits = &config.limits;
    Duration::from_secs(match (D::KIND, limits.join_timeout_secs) {
        (DialectKind::Socketio, 0) => limits.socketio_connect_timeout_secs.max(1),
        (DialectKind::Socketio, secs) => secs.min(limits.socketio_connect_timeout_secs.max(1)),
        (_, secs) => secs,
    })
}

/// The close reason of a session given up on for not taking its messages.
const NOT_READING: &str = "stopped reading its messages";

/// A session's wait for room in its receivers' queues ([`Blocked::wait`]), boxed: it exists
/// only while a receiver is behind, and inline it would grow every session.
type Waiting = Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>;

/// Waits for `waiting` to finish (forever when there is none).
async fn settled(waiting: &mut Waiting) {
    match waiting {
        Some(wait) => wait.as_mut().await,
        None => std::future::pending().await,
    }
}

/// A write to the peer took longer than the write timeout: its partners are told at once, it
/// is counted once (the gateway may have given up on it already), and it gets close 1008 with
/// its own reason if its socket still takes it.
async fn timed_out<S>(
    dialect: DialectKind,
    core: &mut SessionCore,
    writer: &mut Writer<'_, S>,
    info: &SessionInfo,
) where
    S: futures_util::Sink<Message, Error = axum::Error> + Unpin,
{
    if !info.stuck.swap(true, Ordering::AcqRel) {
        telemetry::write_timed_out(dialect, writer.timeout());
    }
    core.leave_rooms();
    writer.close(close_code::POLICY, NOT_READING).await;
}

/// The keepalive of a dialect that has none of its own (Ant Media, raw): WebSocket pings every
/// `interval_secs`, and a peer that sends nothing for as long again after one is dropped.
fn websocket_pings(interval_secs: u64) -> Option<Keepalive> {
    (interval_secs > 0).then(|| Keepalive {
        interval: Duration::from_secs(interval_secs),
        timeout: Duration::from_secs(interval_secs),
        ping: Some(WEBSOCKET_PING),
    })
}

/// The [`Keepalive::ping`] that stands for a WebSocket ping frame rather than a text frame.
const WEBSOCKET_PING: &str = "";

/// The socket's sending half, counting what it writes. Every write is bounded by `timeout`:
/// while a write is pending the session loop polls nothing else (not even its cancellation), so a
/// peer that stopped reading must not be able to hold it forever.
struct Writer<'a, S> {
    sink: &'a mut S,
    info: &'a SessionInfo,
    dialect: DialectKind,
    /// The write timeout in seconds: 4 bytes where a `Duration` takes 16, in every session.
    timeout_secs: u32,
}

/// Why a write failed.
#[derive(Debug)]
enum WriteFailed {
    /// The socket is closed or broken.
    Socket,
    /// The peer did not take the data within the write timeout.
    TimedOut,
}

impl<S> Writer<'_, S>
where
    S: futures_util::Sink<Message, Error = axum::Error> + Unpin,
{
    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs))
    }

    async fn send(&mut self, frame: String, kind: &'static str) -> Result<(), WriteFailed> {
        bounded(self.timeout(), self.sink.send(Message::Text(frame.into()))).await?;
        self.count(kind);
        Ok(())
    }

    /// Sends a keepalive ping: a text frame, or a WebSocket ping ([`WEBSOCKET_PING`]).
    async fn ping(&mut self, ping: &'static str) -> Result<(), WriteFailed> {
        if ping == WEBSOCKET_PING {
            return bounded(
                self.timeout(),
                self.sink.send(Message::Ping(Default::default())),
            )
            .await;
        }
        self.send(ping.to_owned(), "other").await
    }

    fn count(&self, kind: &'static str) {
        self.info.messages_out.fetch_add(1, Ordering::Relaxed);
        stats::message_out(self.dialect, kind);
    }

    /// Sends the dialect's last frame, if it has one (best effort).
    async fn closing<D: TextFrames>(&mut self, state: &D::State) {
        if let Some(frame) = D::closing(state) {
            let _ = self.send(frame, "other").await;
        }
    }

    /// Sends a close frame (best effort, bounded like every write).
    async fn close(&mut self, code: u16, reason: &str) {
        let frame = close(code, reason);
        let _ = within(self.timeout(), self.sink.send(frame)).await;
    }

    /// Writes `first` and whatever else is already queued (up to [`MAX_BATCH`] deliveries) with
    /// one flush, so that they leave in one `send`, all within one write timeout: a timer per
    /// frame was measurable under load. Stops early at a kick, after flushing what came before.
    async fn deliver<D>(
        &mut self,
        state: &D::State,
        first: Outbound,
        rx: &mut Inbox,
    ) -> Result<Delivered, WriteFailed>
    where
        D: TextFrames,
    {
        let timeout = self.timeout();
        let progress = Progress::default();
        let batch = async {
            let mut next = Some(first);
            let mut taken = 0;
            let mut delivered = Delivered::All;
            while let Some(out) = next.take() {
                if let Outbound::Kick(reason) = out {
                    delivered = Delivered::Kicked(reason);
                    break;
                }
                if let Some(frame) = render_frame::<D>(state, &out) {
                    self.sink.feed(Message::Text(frame)).await?;
                    progress.made();
                    self.count(outbound_kind(&out));
                }
                taken += 1;
                if taken < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.sink.flush().await?;
            Ok::<_, axum::Error>(delivered)
        };
        match within_progress(timeout, &progress, batch).await {
            Ok(Ok(delivered)) => Ok(delivered),
            Ok(Err(_)) => Err(WriteFailed::Socket),
            Err(_) => Err(WriteFailed::TimedOut),
        }
    }
}

/// `write` within `timeout`, with the timer armed only if the write does not finish at once.
/// A socket with room in its send buffer takes a batch in one poll, which is nearly always;
/// a timer for every batch (a clock read, and an entry in the timer wheel added and removed)
/// was a measurable part of a relayed message's cost. The timer is boxed: inline, its 112
/// bytes were part of every session's future, idle or not (BENCHMARKS.md, "What an idle
/// session holds").
async fn within<T>(timeout: Duration, write: impl Future<Output = T>) -> Result<T, Elapsed> {
    let mut write = std::pin::pin!(write);
    let at_once = std::future::poll_fn(|cx| match write.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(Some(done)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    if let Some(done) = at_once {
        return Ok(done);
    }
    let timer = Box::pin(tokio::time::sleep(timeout));
    match futures_util::future::select(write, timer).await {
        futures_util::future::Either::Left((done, _)) => Ok(done),
        futures_util::future::Either::Right(_) => Err(Elapsed),
    }
}

/// [`within`] for a batch of writes that reports its progress: the timeout counts from the
/// last frame the socket took, not from the start. A batch of 64 large frames to a peer that
/// reads slowly but steadily can take longer than one write timeout; bounded as a whole, it
/// would close a receiver that is reading, where `write_timeout_secs` promises to close only
/// one that makes no progress.
async fn within_progress<T>(
    timeout: Duration,
    progress: &Progress,
    write: impl Future<Output = T>,
) -> Result<T, Elapsed> {
    let mut write = std::pin::pin!(write);
    let at_once = std::future::poll_fn(|cx| match write.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(Some(done)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    if let Some(done) = at_once {
        return Ok(done);
    }
    let armed = progress.arm();
    let mut timer = Box::pin(tokio::time::sleep(timeout));
    loop {
        match futures_util::future::select(write.as_mut(), timer.as_mut()).await {
            Either::Left((done, _)) => return Ok(done),
            Either::Right(_) => {
                let deadline = progress.last().unwrap_or(armed) + timeout;
                if deadline <= tokio::time::Instant::now() {
                    return Err(Elapsed);
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// When the socket last took a frame of a batch that had to wait ([`within_progress`]): read
/// from the clock only once the batch waited, so a batch written at once costs no clock read.
#[derive(Debug, Default)]
struct Progress {
    /// When the batch began to wait.
    armed: std::sync::OnceLock<tokio::time::Instant>,
    /// Milliseconds after `armed` that the socket last took a frame (`u64::MAX`: none yet).
    last_ms: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// The batch waits from now on.
    fn arm(&self) -> tokio::time::Instant {
        self.last_ms.store(u64::MAX, Ordering::Relaxed);
        *self.armed.get_or_init(tokio::time::Instant::now)
    }

    /// The socket took a frame.
    fn made(&self) {
        if let Some(armed) = self.armed.get() {
            let ms = u64::try_from(armed.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            self.last_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// When the socket last took a frame since the batch began to wait.
    fn last(&self) -> Option<tokio::time::Instant> {
        let armed = self.armed.get()?;
        match self.last_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(*armed + Duration::from_millis(ms)),
        }
    }
}

/// A write did not finish within its timeout ([`within`]).
#[derive(Debug)]
struct Elapsed;

/// Deliveries one [`Writer::deliver`] writes at most before flushing and letting the session
/// read again.
const MAX_BATCH: usize = 64;

/// How a batch of deliveries ended.
enum Delivered {
    /// Everything taken from the queue was written.
    All,
    /// An operator kicked the session (with this reason); what came before was written.
    Kicked(Arc<String>),
}

/// Runs one socket write within `timeout`.
async fn bounded(
    timeout: Duration,
    write: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), WriteFailed> {
    match within(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed::Socket),
        Err(_) => Err(WriteFailed::TimedOut),
    }
}

/// The event kind of a delivery, for the message counters.
pub fn outbound_kind(out: &Outbound) -> &'static str {
    match out {
        Outbound::Relay(env) => env.event.kind(),
        Outbound::Remote(..) => out.remote().map_or("opaque", |fwd| fwd.kind.name()),
        Outbound::Event(event) => event.kind(),
        Outbound::Kick(_) => "error",
    }
}

/// What became of one text frame.
enum Handled {
    /// Frames (with their event kind) to send straight back.
    Reply(Vec<(String, &'static str)>),
    /// The peer ended the session.
    Close,
}

/// Decodes and dispatches one text frame.
async fn handle_text<D: TextFrames>(
    core: &mut SessionCore,
    state: &mut D::State,
    text: Utf8Bytes,
    received: Instant,
) -> Handled {
    let decoded = D::decode_relayable(state, text.as_str());
    stats::message_in(
        D::KIND,
        match &decoded {
            Ok((Decoded::Event(e), _)) => e.kind(),
            Ok(_) => "other",
            Err(_) => "error",
        },
    );
    let frames = |event: &Event, kind| D::encode(state, event).into_iter().map(move |f| (f, kind));
    let replies = match decoded {
        Ok((Decoded::Reply(reply), _)) => vec![(reply, "other")],
        Ok((Decoded::Ignore, _)) => Vec::new(),
        Ok((Decoded::Close, _)) => return Handled::Close,
        Ok((Decoded::Event(Event::IceServersRequest), _)) => {
            let ice = ice_servers(&core.gateway, core.peer.session);
            frames(&ice, "ice_servers").collect()
        }
        Ok((Decoded::Event(event), original)) => {
            if let Some(refused) = join_implied::<D>(core, state, &event, received).await {
                return Handled::Reply(frames(&refused.event(), "error").collect());
            }
            let joining = matches!(event, Event::Join(_));
            // What a relay forwards, shared by every receiver.
            let original = original.map(|part| original_of::<D>(&text, part));
            match core.dispatch(event, original, received).await {
                Some(refused) => frames(&refused.event(), "error").collect(),
                None if joining => D::joined(state).map(|f| (f, "other")).into_iter().collect(),
                None => Vec::new(),
            }
        }
        Err(error) => {
            telemetry::decode_failed(D::KIND, &error);
            // Ant Media names the offending id in `invalidStreamName`.
            let room = match &error {
                DecodeError::InvalidStreamName(id) => Some(id.as_str()),
                _ => None,
            };
            frames(
                &Event::error(error.code(), room, error.to_string()),
                "error",
            )
            .collect()
        }
    };
    let mut replies = replies;
    replies.extend(own_frames::<D>(state, core));
    Handled::Reply(replies)
}

/// The deliveries this session's own events made for it ([`SessionCore::take_own`]),
/// rendered, to write after its replies, as they would have followed them through its queue.
fn own_frames<D: TextFrames>(
    state: &D::State,
    core: &mut SessionCore,
) -> Vec<(String, &'static str)> {
    core.take_own()
        .iter()
        .filter_map(|out| render::<D>(state, out).map(|frame| (frame, outbound_kind(out))))
        .collect()
}

/// Joins the room `event` implies ([`TextFrames::implied_join`], a PeerJS `dst`) unless the
/// session is in it already; the refusal when the join is refused (the event is then dropped).
async fn join_implied<D: TextFrames>(
    core: &mut SessionCore,
    state: &D::State,
    event: &Event,
    received: Instant,
) -> Option<Refused> {
    // Checked before the dialect builds its join: a session already in the room (every message
    // of a call after the first) costs no allocation here.
    let room = event.room()?;
    if core.rooms.iter().any(|joined| joined == room) {
        return None;
    }
    let join = D::implied_join(state, event)?;
    core.dispatch(Event::Join(join), None, received).await
}

/// A session's optional timer. It is registered with the runtime when set ([`arm`]), and
/// [`expiry`] polls it only once it has fired: polled on every turn of the loop, as `select!`
/// polls every enabled branch, the keepalive timer was polled again on every relayed message
/// (BENCHMARKS.md, "The relay cost since 035dd51").
type Timer = Option<std::pin::Pin<Box<tokio::time::Sleep>>>;

/// Registers `timer` with the runtime, so that it wakes this task when it fires: a first poll,
/// outside the task's cooperative budget, which could otherwise refuse the poll and leave the
/// timer unregistered (it would then never fire).
async fn arm(timer: &mut Timer) {
    let Some(sleep) = timer else { return };
    let mut first = std::pin::pin!(tokio::task::unconstrained(sleep.as_mut()));
    std::future::poll_fn(|cx| {
        let _ = first.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

/// Waits for `timer` to expire (forever when there is none). Until it has fired the timer is
/// not polled: it was registered with this task's waker when armed, and firing wakes the task.
fn expiry(timer: &mut Timer) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match timer {
        Some(sleep) if sleep.is_elapsed() => sleep.as_mut().poll(cx),
        _ => Poll::Pending,
    })
}

/// Sets `timer` to expire `after` from now, registered again.
async fn rearm(timer: &mut Timer, after: Duration) {
    if let Some(sleep) = timer {
        sleep.as_mut().reset(tokio::time::Instant::now() + after);
    }
    arm(timer).await;
}

/// The server keepalive's state: waiting to ping, or waiting for the answer to one.
struct Heartbeat {
    keepalive: Option<Keepalive>,
    awaiting_answer: bool,
}

impl Heartbeat {
    fn new(keepalive: Option<Keepalive>) -> Self {
        Heartbeat {
            keepalive,
            awaiting_answer: false,
        }
    }

    /// How long until the timer next fires (a day when the dialect has no keepalive; the timer
    /// is then never polled).
    fn next_wait(&self) -> Duration {
        match self.keepalive {
            Some(k) if k.ping.is_none() => k.interval + k.timeout,
            Some(k) if self.awaiting_answer => k.timeout,
            Some(k) => k.interval,
            None => Duration::from_secs(86_400),
        }
    }

    /// The timer fired: the ping to send, or `None` when the last one went unanswered (the
    /// session then closes; without a keepalive the timer is never polled).
    fn fire(&mut self) -> Option<&'static str> {
        // A peer that pings itself (engine.io 3) was silent for the whole wait.
        let ping = self.keepalive?.ping?;
        if self.awaiting_answer {
            return None;
        }
        self.awaiting_answer = true;
        Some(ping)
    }

    /// A frame arrived; `true` when the timer must be re-armed: it answered a ping, or the peer
    /// is the one that pings (any frame shows it alive).
    fn answered(&mut self) -> bool {
        let peer_pings = self.keepalive.is_some_and(|k| k.ping.is_none());
        std::mem::take(&mut self.awaiting_answer) || peer_pings
    }
}

fn close(code: u16, reason: &str) -> Message {
    // Close reasons are limited to 123 bytes; cut on a char boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }))
}

/// Whether a read error is a text frame that is not UTF-8. axum wraps the error without
/// exposing its type, so this matches tungstenite's message ("UTF-8 encoding error").
fn is_invalid_utf8(error: &axum::Error) -> bool {
    error.to_string().contains("UTF-8")
}

/// Whether a read error is tungstenite's size limit. axum wraps the error without exposing its
/// type, so this matches tungstenite's message ("Space limit exceeded: Message too long: ...").
fn is_too_large(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("too long") || text.contains("Space limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: Keepalive = Keepalive {
        interval: Duration::from_secs(25),
        timeout: Duration::from_secs(20),
        ping: Some("2"),
    };

    #[test]
    fn a_ping_goes_out_after_the_interval_and_an_unanswered_one_closes() {
        let mut heartbeat = Heartbeat::new(Some(KEEPALIVE));
        assert_eq!(heartbeat.next_wait(), KEEPALIVE.interval);
        assert_eq!(heartbeat.fire(), Some("2"));
        assert_eq!(heartbeat.next_wait(), KEEPALIVE.timeout);
        assert_eq!(heartbeat.fire(), None, "no answer within the timeout");
    }

    #[test]
    fn any_frame_answers_a_ping_and_rearms_the_interval() {
        let mut heartbeat = Heartbeat::new(Some(KEEPALIVE));
        assert!(!heartbeat.answered(), "nothing to answer before a ping");
        assert_eq!(heartbeat.fire(), Some("2"));
        assert!(heartbeat.answered());
        assert_eq!(heartbeat.next_wait(), KEEPALIVE.interval);
        assert_eq!(heartbeat.fire(), Some("2"));
    }

    /// A batch whose frames the socket takes one every 60 ms (until `stall_after`, if given,
    /// when it takes no more).
    async fn slow_batch(progress: &Progress, frames: u32, stall_after: Option<u32>) -> u32 {
        for frame in 0..frames {
            if stall_after == Some(frame) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
            progress.made();
        }
        frames
    }

    #[tokio::test]
    async fn a_batch_that_makes_progress_is_never_timed_out_and_one_that_stops_is() {
        let timeout = Duration::from_millis(100);
        let progress = Progress::default();
        let steady = within_progress(timeout, &progress, slow_batch(&progress, 5, None)).await;
        assert_eq!(
            steady.ok(),
            Some(5),
            "300 ms in all, but a frame every 60 ms"
        );

        let progress = Progress::default();
        let start = Instant::now();
        let stopped = within_progress(timeout, &progress, slow_batch(&progress, 5, Some(2))).await;
        assert!(stopped.is_err(), "no frame taken for 100 ms");
        assert!(
            start.elapsed() >= Duration::from_millis(220),
            "timed out 100 ms after the last frame taken (at 120 ms), not from the start"
        );
    }

    #[tokio::test]
    async fn a_write_is_bounded_whether_it_finishes_at_once_later_or_never() {
        assert_eq!(within(Duration::ZERO, async { 1 }).await.ok(), Some(1));
        let later = async {
            tokio::task::yield_now().await;
            2
        };
        assert_eq!(within(Duration::from_secs(5), later).await.ok(), Some(2));
        let start = Instant::now();
        let never = within(Duration::from_millis(50), std::future::pending::<()>()).await;
        assert!(never.is_err(), "a write that never finishes times out");
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn a_peer_that_pings_itself_is_given_interval_plus_timeout_after_each_frame() {
        let mut heartbeat = Heartbeat::new(Some(Keepalive {
            ping: None,
            ..KEEPALIVE
        }));
        assert_eq!(heartbeat.next_wait(), Duration::from_secs(45));
        assert!(heartbeat.answered(), "every frame re-arms the timer");
        assert!(heartbeat.answered());
        assert_eq!(heartbeat.fire(), None, "silent for the whole wait: closed");
    }

    #[test]
    fn without_a_keepalive_nothing_is_sent() {
        let mut heartbeat = Heartbeat::new(None);
        assert_eq!(heartbeat.fire(), None);
        assert!(heartbeat.next_wait() >= Duration::from_secs(3600));
    }
}
