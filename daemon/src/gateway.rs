//! The gateway core, in two parts: the [`SessionRegistry`] (every session's end of the bus:
//! deliver, kick, count) and the [`Dispatcher`] (rooms and the plugin pipeline). Every event a
//! peer sends goes through [`Dispatcher::dispatch`] on the sender's own task; deliveries are
//! queued to the receiving sessions, each of which owns its socket and renders in its dialect.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use switchboard_plugin_api::{Deliver, Outbox, Peer, SessionId};
use switchboard_protocol::{DialectKind, Event};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::cluster::{RemoteForward, RemoteForwards};
use crate::config::GatewayConfig;
use crate::envelope::Envelope;
use crate::lifecycle::{Lifecycle, Phase};
use crate::limits::ConnectionLimiter;
use crate::pipeline::Pipeline;

mod delivery;
mod dispatch;
mod mailbox;
mod membership;
pub mod prefetch;
mod registry;
mod remote;
mod weight;

pub use delivery::Blocked;
pub use dispatch::{Dispatched, Dispatcher, Membership};
pub use mailbox::Inbox;
pub use membership::{ClaimFuture, ClusterMembership, JoinTurn};
pub use registry::{QueueBounds, SessionHandle, SessionInfo, SessionRegistry};
pub use remote::{RedisMembership, Remote};

/// What a session receives from the bus.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A peer's event relayed as is (verbatim if the receiver speaks the sender's dialect).
    Relay(Arc<Envelope>),
    /// A peer's signal from another cluster node, for a peer of the sender's dialect, as the
    /// sending node prepared it: rendered already where the rendering reads nothing of the
    /// receiving session, so this node writes it without decoding it again. The forwards of
    /// one bundle are shared; this is the one at the place given (a `u32` beside the tag, so
    /// an item stays two words).
    Remote(Arc<RemoteForwards>, u32),
    /// An event composed by a plugin or the gateway. Boxed: inline, an `Event` made every
    /// item as large as an event, and tokio's queue allocates its first block of 32 items when
    /// the session registers, so every idle session held a block of event-sized items
    /// (BENCHMARKS.md, "What an idle session holds").
    Event(Box<Event>),
    /// An operator kicked the session: close it with this reason (WebSocket 1008, socket.io
    /// disconnect), after telling the peer in its dialect. A thin pointer (`Arc<String>`, not
    /// `Arc<str>`): a fat one would make every queue item, and so the queue block each session
    /// allocates at registration, a pointer wider (BENCHMARKS.md, "Profiling figures (moved
    /// from code comments)").
    Kick(Arc<String>),
}

impl Outbound {
    /// A composed event.
    pub fn event(event: Event) -> Self {
        Outbound::Event(Box::new(event))
    }

    /// The forward from another node this delivery is, if it is one.
    pub fn remote(&self) -> Option<&RemoteForward> {
        match self {
            Outbound::Remote(forwards, at) => forwards.get(*at),
            _ => None,
        }
    }

    /// This delivery, holding nothing larger than itself: a forward from another node, one of
    /// a bundle's ([`RemoteForwards::detached`]), on its own.
    pub(crate) fn detached(self) -> Self {
        match self {
            Outbound::Remote(forwards, at) => match forwards.detached(at) {
                Some(own) => Outbound::Remote(Arc::new(own), 0),
                None => Outbound::Remote(forwards, at),
            },
            other => other,
        }
    }
}

/// The shared gateway state: the configuration and lifecycle, the [`SessionRegistry`]
/// (deliver, kick, count) and the [`Dispatcher`] (pipeline and rooms).
pub struct Gateway {
    /// Replaced as a whole by a reload; readers take a snapshot.
    config: RwLock<Arc<GatewayConfig>>,
    registry: Arc<SessionRegistry>,
    dispatcher: Dispatcher,
    /// Set once at start with `[cluster]`: this node's membership in Redis, which is the
    /// dispatcher's cluster hook and keeps the proxies of other nodes' members.
    cluster: OnceLock<Arc<RedisMembership>>,
    shutdown: CancellationToken,
    lifecycle: Lifecycle,
    connections: Arc<ConnectionLimiter>,
    started: Instant,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("dispatcher", &self.dispatcher)
            .finish_non_exhaustive()
    }
}

fn queue_bounds(config: &GatewayConfig) -> QueueBounds {
    QueueBounds {
        len: config.limits.session_queue_len,
        bytes: config.limits.session_queue_bytes,
    }
}

fn write_timeout_of(config: &GatewayConfig) -> Duration {
    Duration::from_secs(config.limits.write_timeout_secs)
}

impl Gateway {
    /// A gateway with `config` and its plugin pipeline; `shutdown` is the root token every
    /// session's token derives from.
    pub fn new(
        config: Arc<GatewayConfig>,
        pipeline: Pipeline,
        shutdown: CancellationToken,
    ) -> Self {
        let registry = Arc::new(SessionRegistry::new(write_timeout_of(&config)));
        Self {
            config: RwLock::new(config),
            dispatcher: Dispatcher::new(Arc::clone(&registry), pipeline),
            cluster: OnceLock::new(),
            registry,
            shutdown,
            lifecycle: Lifecycle::default(),
            connections: Arc::default(),
            started: Instant::now(),
        }
    }

    /// A snapshot of the configuration the gateway runs with (a reload replaces it; a snapshot
    /// stays as it was).
    pub fn config(&self) -> Arc<GatewayConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration (see [`crate::reload`]).
    pub(crate) fn set_config(&self, config: Arc<GatewayConfig>) {
        self.registry.set_write_timeout(write_timeout_of(&config));
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// The sessions: delivering to them, kicking, counting.
    pub fn registry(&self) -> &SessionRegistry {
        &self.registry
    }

    /// Rooms and the plugin pipeline: dispatching events.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Joins the gateway to a cluster (once, at start; a second call is ignored): `membership`
    /// becomes the dispatcher's cluster hook.
    pub fn join_cluster(&self, membership: Arc<RedisMembership>) {
        if self.cluster.set(Arc::clone(&membership)).is_ok() {
            self.dispatcher.set_membership(membership);
        }
    }

    /// The cluster this gateway is part of, if any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get().map(|membership| membership.cluster())
    }

    /// What frames from other nodes do to this node's rooms (nothing without `[cluster]`).
    pub fn remote(&self) -> Remote<'_> {
        Remote::new(&self.dispatcher, self.cluster.get().map(|m| &**m))
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
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Registers a new session of `dialect` from `addr` and returns its end of the bus.
    pub fn register(&self, dialect: DialectKind, addr: Option<SocketAddr>) -> SessionHandle {
        self.registry.register(
            dialect,
            addr,
            queue_bounds(&self.config()),
            self.shutdown.child_token(),
        )
    }

    /// Starts the current pipeline's plugins with an outbox that delivers through the session
    /// registry (held weakly: a plugin's task does not keep it alive).
    pub fn start_plugins(&self) -> Result<(), String> {
        let outbox: Outbox = Arc::new(RegistryOutbox(Arc::downgrade(&self.registry)));
        self.dispatcher.pipeline().start(&outbox)
    }

    /// Calls every plugin's shutdown hook (reverse config order).
    pub fn shutdown_plugins(&self) {
        self.dispatcher.pipeline().shutdown();
    }

    /// How long a receiver may leave its queue full before it is given up on.
    pub fn write_timeout(&self) -> Duration {
        self.registry.write_timeout()
    }
}

/// A plugin's [`Outbox`]: deliveries through the session registry, if it still exists.
struct RegistryOutbox(std::sync::Weak<SessionRegistry>);

impl Deliver for RegistryOutbox {
    fn deliver(&self, to: SessionId, event: Event) -> bool {
        self.0.upgrade().is_some_and(|r| r.deliver_to(to, event))
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
