//! The gateway core: the session registry, room membership and the plugin pipeline. Every event
//! a peer sends goes through [`Gateway::dispatch`] on the sender's own task; deliveries are
//! queued to the receiving sessions, each of which owns its socket and renders in its dialect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use switchboard_plugin_api::{Deliver, Outbox, Payload, Peer, Refusal, RoomView, SessionId};
use switchboard_protocol::{
    ConferenceCommand, DialectKind, ErrorCode, Event, JoinMode, LeaveReason,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Claim, Cluster, proxies};
use crate::config::GatewayConfig;
use crate::envelope::Envelope;
use crate::lifecycle::{Lifecycle, Phase};
use crate::limits::ConnectionLimiter;
use crate::pipeline::Pipeline;
use crate::rooms::Rooms;
use crate::telemetry;

mod delivery;
mod remote;

pub use delivery::Blocked;
use delivery::{Registered, queue_nowait};
use remote::{announce, send_remote};

/// What a session receives from the bus.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A peer's event relayed as is (verbatim if the receiver speaks the sender's dialect).
    Relay(Arc<Envelope>),
    /// An event composed by a plugin or the gateway.
    Event(Event),
    /// An operator kicked the session: close it with this reason (WebSocket 1008, socket.io
    /// disconnect), after telling the peer in its dialect.
    Kick(Arc<str>),
}

/// What the admin API shows of a session; the counters are updated by the session itself.
#[derive(Debug)]
pub struct SessionInfo {
    /// The session's id.
    pub id: SessionId,
    /// Its dialect.
    pub dialect: DialectKind,
    /// The peer's address, when known.
    pub addr: Option<SocketAddr>,
    /// When it connected.
    pub opened: SystemTime,
    /// Messages received from the peer.
    pub messages_in: AtomicU64,
    /// Messages written to the peer.
    pub messages_out: AtomicU64,
    /// Set when the gateway gave up on the session because it stopped taking its deliveries:
    /// its cancellation then means "closed for not reading", not "draining".
    pub stuck: AtomicBool,
}

impl SessionInfo {
    /// Whether the gateway gave up on this session for not taking its deliveries.
    pub fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::Acquire)
    }
}

/// A registered session's end of the bus.
#[derive(Debug)]
pub struct SessionHandle {
    /// The session's id.
    pub id: SessionId,
    /// Deliveries addressed to this session, in order.
    pub rx: mpsc::Receiver<Outbound>,
    /// Cancelled on shutdown, or when the gateway gives up on this session (its queue stayed
    /// full for the write timeout; [`SessionInfo::is_stuck`] tells the two apart).
    pub cancel: CancellationToken,
    /// Shared with the admin API.
    pub info: Arc<SessionInfo>,
}

/// A membership change the pipeline accepted; the session keeps its own list of rooms from these
/// so it can leave them when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The sender is now in this room.
    Joined(String),
    /// The sender is no longer in this room.
    Left(String),
}

/// The result of dispatching one event.
#[derive(Debug, Default)]
pub struct Dispatched {
    /// Set when a plugin refused the event; the caller tells the peer in its dialect.
    pub refusal: Option<Refusal>,
    /// Set when the sender joined or left a room.
    pub membership: Option<Membership>,
    /// The refused event's room, for the error that tells the sender (set with `refusal`:
    /// the caller need not copy every event's room in case it is refused).
    pub refused_room: Option<String>,
    /// Deliveries whose receivers' queues were full: the sender waits for them
    /// ([`Blocked::wait`]) before it reads on.
    pub blocked: Blocked,
}

impl Dispatched {
    fn refused(refusal: Refusal, room: &str) -> Self {
        Dispatched {
            refusal: Some(refusal),
            membership: None,
            refused_room: Some(room.to_owned()),
            blocked: Blocked::default(),
        }
    }
}

/// The shared gateway state.
pub struct Gateway {
    /// Replaced as a whole by a reload; readers take a snapshot.
    config: RwLock<Arc<GatewayConfig>>,
    /// Replaced as a whole by a reload that changes `[[plugin]]`.
    pipeline: RwLock<Arc<Pipeline>>,
    rooms: Mutex<Rooms>,
    sessions: RwLock<HashMap<SessionId, Registered>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    lifecycle: Lifecycle,
    connections: Arc<ConnectionLimiter>,
    started: Instant,
    /// Set once at start when `[cluster]` is configured.
    cluster: OnceLock<Arc<Cluster>>,
    /// Sessions between claiming a place in Redis and running their join: what other nodes
    /// send them meanwhile waits here, so that their own `joined` comes first.
    pending: Mutex<HashMap<SessionId, Vec<Outbound>>>,
    /// Joins into rooms of one stripe run one at a time (`[cluster]` only).
    join_locks: Vec<tokio::sync::Mutex<()>>,
}

/// Number of join lock stripes.
const JOIN_STRIPES: usize = 64;

fn stripe_of(room: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    room.hash(&mut h);
    usize::try_from(h.finish() % JOIN_STRIPES as u64).unwrap_or(0)
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave `Rooms` half-updated (each change is one
    // Vec/HashMap operation), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gateway {
    /// A gateway with `config` and its plugin pipeline; `shutdown` is the root token every
    /// session's token derives from.
    pub fn new(
        config: Arc<GatewayConfig>,
        pipeline: Pipeline,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            config: RwLock::new(config),
            pipeline: RwLock::new(Arc::new(pipeline)),
            rooms: Mutex::default(),
            sessions: RwLock::default(),
            next_id: AtomicU64::new(1),
            shutdown,
            lifecycle: Lifecycle::default(),
            connections: Arc::default(),
            started: Instant::now(),
            cluster: OnceLock::new(),
            pending: Mutex::default(),
            join_locks: (0..JOIN_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// A snapshot of the configuration the gateway runs with (a reload replaces it; a snapshot
    /// stays as it was).
    pub fn config(&self) -> Arc<GatewayConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration (see [`crate::reload`]).
    pub(crate) fn set_config(&self, config: Arc<GatewayConfig>) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// Replaces the plugin pipeline; returns the old one.
    pub(crate) fn swap_pipeline(&self, pipeline: Pipeline) -> Arc<Pipeline> {
        std::mem::replace(
            &mut *self
                .pipeline
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            Arc::new(pipeline),
        )
    }

    fn pipeline(&self) -> Arc<Pipeline> {
        Arc::clone(&self.pipeline.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Joins the gateway to a cluster (once, at start).
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster this gateway is part of, if any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    fn next_session_id(&self) -> SessionId {
        SessionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The lifecycle phases.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The current lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    /// The per-IP and global connection caps.
    pub fn connections(&self) -> &Arc<ConnectionLimiter> {
        &self.connections
    }

    /// The root shutdown token: cancelling it starts a graceful shutdown.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// How long the gateway has been up.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Registers a new session of `dialect` from `addr` and returns its end of the bus.
    pub fn register(&self, dialect: DialectKind, addr: Option<SocketAddr>) -> SessionHandle {
        let id = self.next_session_id();
        let (tx, rx) = mpsc::channel(self.config().limits.session_queue_len);
        let cancel = self.shutdown.child_token();
        let info = Arc::new(SessionInfo {
            id,
            dialect,
            addr,
            opened: SystemTime::now(),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            stuck: AtomicBool::new(false),
        });
        let entry = Registered {
            tx,
            cancel: cancel.clone(),
            info: Arc::clone(&info),
            backlog: OnceLock::new(),
        };
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, entry);
        SessionHandle {
            id,
            rx,
            cancel,
            info,
        }
    }

    /// Every registered session's info, by id.
    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = sessions.values().map(|r| Arc::clone(&r.info)).collect();
        out.sort_by_key(|i| i.id.0);
        out
    }

    /// Every room with its members, sorted by room name.
    pub fn rooms_snapshot(&self) -> Vec<(String, Vec<Peer>)> {
        lock(&self.rooms).snapshot()
    }

    /// The members of one room (empty if it does not exist).
    pub fn room_members(&self, room: &str) -> Vec<Peer> {
        lock(&self.rooms).members(room).to_vec()
    }

    /// Asks a session to close (an operator's kick). Returns whether it exists.
    pub fn kick(&self, id: SessionId, reason: &str) -> bool {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let Some(target) = sessions.get(&id) else {
            return false;
        };
        // Behind whatever it was sent before: the kick closes it after those are written.
        queue_nowait(
            target,
            Outbound::Kick(Arc::from(reason)),
            self.write_timeout(),
        );
        true
    }

    /// Forgets a session; deliveries to it are dropped from now on. Plugins are told.
    pub fn unregister(&self, id: SessionId) {
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        // A join abandoned mid-claim (the connection went away) leaves its buffer behind.
        lock(&self.pending).remove(&id);
        self.pipeline().session_closed(id);
    }

    /// Starts the current pipeline's plugins with an outbox that delivers through this gateway
    /// (held weakly: a plugin's task does not keep the gateway alive).
    pub fn start_plugins(self: &Arc<Self>) -> Result<(), String> {
        let outbox: Outbox = Arc::new(GatewayOutbox(Arc::downgrade(self)));
        self.pipeline().start(&outbox)
    }

    /// Queues `event` for session `to` outside any hook (a plugin's [`Outbox`]). Returns whether
    /// the session exists.
    pub fn deliver_to(&self, to: SessionId, event: Event) -> bool {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let Some(target) = sessions.get(&to) else {
            return false;
        };
        queue_nowait(target, Outbound::Event(event), self.write_timeout());
        true
    }

    /// Calls every plugin's shutdown hook (reverse config order).
    pub fn shutdown_plugins(&self) {
        self.pipeline().shutdown();
    }

    /// How long a receiver may leave its queue full before it is given up on.
    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config().limits.write_timeout_secs.max(1))
    }

    /// Number of registered sessions.
    pub fn session_count(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Number of rooms with members.
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// Runs one event from a peer through the pipeline and delivers the outcome. Events without
    /// a room are not routed.
    pub fn dispatch(&self, envelope: Envelope) -> Dispatched {
        self.dispatch_claimed(envelope, None)
    }

    /// [`Self::dispatch`] for any event; with `[cluster]`, a join first claims its place in
    /// Redis. Joins into one room are serialized on this node (claim and pipeline), so this
    /// node admits its joiners in the order Redis listed them.
    pub async fn dispatch_async(&self, envelope: Envelope) -> Dispatched {
        let Some(room) = self.claimed_room(&envelope.event) else {
            return self.dispatch(envelope);
        };
        let stripe = &self.join_locks[stripe_of(room)];
        let _serialized = stripe.lock().await;
        match self.claim(envelope.from, &envelope.event).await {
            Ok(claim) => self.dispatch_claimed(envelope, claim),
            Err(refusal) => Dispatched::refused(refusal, room),
        }
    }

    /// The room whose place `event` claims in Redis before it is dispatched: a join, with
    /// `[cluster]` set. Everything else is dispatched at once.
    pub fn claimed_room<'a>(&self, event: &'a Event) -> Option<&'a str> {
        self.cluster.get()?;
        match event {
            Event::Join(join) => Some(&join.room),
            Event::Conference(c) if matches!(c.command, ConferenceCommand::JoinRoom(_)) => {
                Some(c.target())
            }
            _ => None,
        }
    }

    /// [`Self::dispatch`] with the outcome of [`Self::claim`]: the members Redis listed ahead
    /// of the joiner join the local table as proxies before the pipeline runs, and a refused
    /// join gives its place back.
    pub fn dispatch_claimed(&self, mut envelope: Envelope, claim: Option<Claim>) -> Dispatched {
        match &envelope.event {
            Event::Join(join) => envelope.from.mode = join.mode,
            Event::Conference(c) if matches!(c.command, ConferenceCommand::JoinRoom(_)) => {
                envelope.from.mode = JoinMode::Conference;
            }
            _ => {}
        }
        let envelope = Arc::new(envelope);
        let Some(room) = envelope.event.room() else {
            return Dispatched::default();
        };
        let mut rooms = lock(&self.rooms);
        let cluster = self.cluster.get();
        if let (Some(cluster), Some(claim)) = (cluster, &claim) {
            proxies::reconcile(&mut rooms, room, cluster.node(), &claim.before, || {
                self.next_session_id()
            });
        }
        // A claimed join sees the room as Redis lists it: this node's members and the remote
        // members Redis lists. A proxy Redis no longer lists has left (its `left` frame is on
        // its way) and does not count.
        let claimed_view: Option<Vec<Peer>> = claim.as_ref().map(|claim| {
            rooms
                .members(room)
                .iter()
                .filter(|p| match rooms.proxies.remote(p.session) {
                    None => true,
                    Some(r) => claim
                        .before
                        .iter()
                        .any(|(n, peer)| *n == r.node && peer.session == r.session),
                })
                .copied()
                .collect()
        });
        let cx = envelope.context(RoomView {
            room,
            members: claimed_view
                .as_deref()
                .unwrap_or_else(|| rooms.members(room)),
        });
        let pipeline = self.pipeline();
        let (decision, stopped) = match pipeline.run(&cx) {
            Ok(outcome) => outcome,
            Err(refusal) => {
                if let (Some(cluster), Some(claim)) = (cluster, &claim) {
                    cluster.commit(room, claim, false);
                }
                proxies::prune(&mut rooms, room);
                drop(rooms);
                if claim.is_some() {
                    self.flush_pending(envelope.from.session);
                }
                telemetry::event_refused(&envelope, room, &refusal);
                return Dispatched::refused(refusal, room);
            }
        };
        if let Event::Conference(request) = &envelope.event
            && !stopped
            && !decision
                .deliveries
                .iter()
                .any(|d| d.to == envelope.from.session)
        {
            // No plugin answered. Say so rather than leave the peer waiting: either the
            // conference plugin is not in the pipeline, or it passed a media request on after
            // its token check and no media plugin took it.
            if let (Some(cluster), Some(claim)) = (cluster, &claim) {
                cluster.commit(room, claim, false);
            }
            proxies::prune(&mut rooms, room);
            drop(rooms);
            if claim.is_some() {
                self.flush_pending(envelope.from.session);
            }
            let media = matches!(
                request.command,
                ConferenceCommand::Publish(_)
                    | ConferenceCommand::Play(_)
                    | ConferenceCommand::ToggleTrack(_)
            );
            let refusal = if media && pipeline.has("conference") {
                Refusal::new(ErrorCode::MediaUnavailable, NO_MEDIA)
            } else {
                Refusal::new(
                    ErrorCode::Unsupported,
                    format!(
                        "`{}` needs the conference plugin (type = \"conference\"), which this gateway does not run",
                        request.command.ant_name()
                    ),
                )
            };
            return Dispatched::refused(refusal, room);
        }
        let membership = apply_membership(&mut rooms, room, &envelope);
        let mut deliveries = decision.deliveries;
        if let Some(cluster) = cluster {
            if let Some(claim) = &claim {
                // Before the `joined` frames, so a node that reads one finds the record.
                let joined = matches!(membership, Some(Membership::Joined(_)));
                cluster.commit(room, claim, joined);
            }
            announce(cluster, &rooms, room, membership.as_ref(), &envelope.from);
            deliveries = send_remote(cluster, &rooms, room, &envelope, deliveries);
            proxies::prune(&mut rooms, room);
        }
        drop(rooms);
        telemetry::event_dispatched(&envelope, room, deliveries.len());
        let blocked = self.deliver(&envelope, deliveries);
        if claim.is_some() {
            self.flush_pending(envelope.from.session);
        }
        Dispatched {
            membership,
            blocked,
            ..Dispatched::default()
        }
    }

    /// Leaves every room in `rooms` on behalf of a closing session, telling partners.
    pub fn leave_all(&self, from: Peer, rooms: &[String]) {
        for room in rooms {
            let event = Event::Leave(switchboard_protocol::Leave {
                room: room.clone(),
                reason: LeaveReason::Disconnect,
            });
            let out = self.dispatch(Envelope {
                from,
                event,
                original: None,
                app: None,
            });
            // The closing session cannot wait for its partners' queues.
            out.blocked.defer(self.write_timeout());
            if out.membership.is_none() {
                // A plugin refused the leave or nobody routed it: membership must still go, or a
                // dead session would hold a place in the room forever.
                let mut rooms = lock(&self.rooms);
                if rooms.leave(room, from.session)
                    && let Some(cluster) = self.cluster.get()
                {
                    announce(
                        cluster,
                        &rooms,
                        room,
                        Some(&Membership::Left(room.clone())),
                        &from,
                    );
                    proxies::prune(&mut rooms, room);
                }
            }
        }
    }

    /// Queues `deliveries`; returns those whose receivers' queues are full, for the sender to
    /// wait for.
    fn deliver(
        &self,
        envelope: &Arc<Envelope>,
        deliveries: Vec<switchboard_plugin_api::Delivery>,
    ) -> Blocked {
        let mut blocked = Blocked::default();
        if deliveries.is_empty() {
            return blocked;
        }
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        for delivery in deliveries {
            let Some(target) = sessions.get(&delivery.to) else {
                continue;
            };
            let item = match delivery.payload {
                Payload::Relay => Outbound::Relay(Arc::clone(envelope)),
                Payload::Event(event) => Outbound::Event(event),
            };
            blocked.offer(target, item);
        }
        blocked
    }
}

/// Why a `publish` or `play` that passed the conference plugin's token check is refused when no
/// media plugin takes it (antmedia.md §6 has no such definition; `media_plugin_not_running`).
const NO_MEDIA: &str = "conference media needs the media plugin (not running)";

/// A plugin's [`Outbox`]: deliveries through the gateway, if it still exists.
struct GatewayOutbox(std::sync::Weak<Gateway>);

impl Deliver for GatewayOutbox {
    fn deliver(&self, to: SessionId, event: Event) -> bool {
        self.0.upgrade().is_some_and(|g| g.deliver_to(to, event))
    }
}

fn apply_membership(rooms: &mut Rooms, room: &str, envelope: &Envelope) -> Option<Membership> {
    let from = envelope.from;
    match &envelope.event {
        Event::Join(_) => rooms
            .join(room, from)
            .then(|| Membership::Joined(room.to_owned())),
        Event::Leave(_) => rooms
            .leave(room, from.session)
            .then(|| Membership::Left(room.to_owned())),
        // A conference participant is a member of its room like any peer (routers tell it
        // apart by its mode), so room information and disconnects work the same way.
        Event::Conference(c) => match &c.command {
            ConferenceCommand::JoinRoom(_) => rooms
                .join(room, from)
                .then(|| Membership::Joined(room.to_owned())),
            ConferenceCommand::LeaveRoom(_) => rooms
                .leave(room, from.session)
                .then(|| Membership::Left(room.to_owned())),
            _ => None,
        },
        _ => None,
    }
}

/// The peer record for a session that has not joined anything yet.
pub fn peer(session: SessionId, dialect: DialectKind) -> Peer {
    Peer {
        session,
        dialect,
        mode: Default::default(),
    }
}
