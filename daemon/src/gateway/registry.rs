//! The session registry: every connected session's end of the bus, by id. It delivers (to one
//! session, or a pipeline decision's deliveries), kicks, and counts; it knows nothing of rooms
//! or plugins (that is the [`super::Dispatcher`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use switchboard_plugin_api::{Delivery, Payload, SessionId};
use switchboard_protocol::{DialectKind, Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Outbound;
use super::delivery::{Blocked, Registered, queue_nowait};
use crate::envelope::Envelope;

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

/// Every registered session.
#[derive(Debug)]
pub struct SessionRegistry {
    /// Sharded like the room index, for the same reason: every delivery looks its receiver up,
    /// and one lock word for the whole map would be written by every core.
    sessions: DashMap<SessionId, Registered, crate::rooms::Hasher>,
    /// Session ids, and the ids of proxies of other nodes' peers (one numbering, so a room never
    /// holds two members with one id).
    next_id: AtomicU64,
    /// Sessions between claiming a place in Redis and running their join: what other nodes
    /// send them meanwhile waits here, so that their own `joined` comes first.
    held: Mutex<HashMap<SessionId, Vec<Outbound>>>,
    /// `[limits] write_timeout_secs` (a reload may change it).
    write_timeout_secs: AtomicU64,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("id", &self.info.id)
            .finish_non_exhaustive()
    }
}

/// Shards of the session map.
const SESSION_SHARDS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionRegistry {
    /// An empty registry; a receiver that frees no room for `write_timeout` is given up on.
    pub fn new(write_timeout: Duration) -> Self {
        let registry = Self {
            sessions: DashMap::with_hasher_and_shard_amount(Default::default(), SESSION_SHARDS),
            next_id: AtomicU64::new(1),
            held: Mutex::default(),
            write_timeout_secs: AtomicU64::new(0),
        };
        registry.set_write_timeout(write_timeout);
        registry
    }

    /// A fresh id (for a session or a proxy).
    pub fn next_id(&self) -> SessionId {
        SessionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// How long a receiver may leave its queue full before it is given up on.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs.load(Ordering::Relaxed).max(1))
    }

    /// Sets [`Self::write_timeout`] (at start and on reload).
    pub fn set_write_timeout(&self, timeout: Duration) {
        self.write_timeout_secs
            .store(timeout.as_secs(), Ordering::Relaxed);
    }

    /// Registers a new session of `dialect` from `addr` with a queue of `queue_len`
    /// deliveries, cancelled with `cancel`; returns its end of the bus.
    pub fn register(
        &self,
        dialect: DialectKind,
        addr: Option<SocketAddr>,
        queue_len: usize,
        cancel: CancellationToken,
    ) -> SessionHandle {
        let id = self.next_id();
        let (tx, rx) = mpsc::channel(queue_len);
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
        self.sessions.insert(id, entry);
        SessionHandle {
            id,
            rx,
            cancel,
            info,
        }
    }

    /// Forgets a session; deliveries to it are dropped from now on.
    pub fn unregister(&self, id: SessionId) {
        self.sessions.remove(&id);
        // A join abandoned mid-claim (the connection went away) leaves its buffer behind.
        lock(&self.held).remove(&id);
    }

    /// Every registered session's info, by id.
    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        let mut out: Vec<_> = self.sessions.iter().map(|r| Arc::clone(&r.info)).collect();
        out.sort_by_key(|i| i.id.0);
        out
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks a session to close (an operator's kick). Returns whether it exists.
    pub fn kick(&self, id: SessionId, reason: &str) -> bool {
        // Behind whatever it was sent before: the kick closes it after those are written.
        self.queue(id, Outbound::Kick(Arc::new(reason.to_owned())))
    }

    /// Queues `event` for session `to` outside any hook (a plugin's outbox). Returns whether
    /// the session exists.
    pub fn deliver_to(&self, to: SessionId, event: Event) -> bool {
        self.queue(to, Outbound::event(event))
    }

    /// Queues `item` for `to` without waiting (behind its backlog when its queue is full).
    /// Returns whether the session exists.
    fn queue(&self, to: SessionId, item: Outbound) -> bool {
        let Some(target) = self.sessions.get(&to) else {
            return false;
        };
        queue_nowait(&target, item, self.write_timeout());
        true
    }

    /// Queues a pipeline decision's `deliveries` of `envelope`; returns those whose receivers'
    /// queues are full, for the sender to wait for.
    pub fn deliver(&self, envelope: &Arc<Envelope>, deliveries: Vec<Delivery>) -> Blocked {
        let mut blocked = Blocked::default();
        if deliveries.is_empty() {
            return blocked;
        }
        for delivery in deliveries {
            let Some(target) = self.sessions.get(&delivery.to) else {
                continue;
            };
            let item = match delivery.payload {
                Payload::Relay => Outbound::Relay(Arc::clone(envelope)),
                Payload::Event(event) => Outbound::event(event),
            };
            blocked.offer(&target, item);
        }
        blocked
    }

    /// Holds what other nodes send `session` until [`Self::release`] (while its join claims
    /// its place in Redis).
    pub fn hold(&self, session: SessionId) {
        lock(&self.held).insert(session, Vec::new());
    }

    /// Delivers what was held for `session`, in arrival order, and stops holding.
    pub fn release(&self, session: SessionId) {
        let mut held = lock(&self.held);
        if let Some(items) = held.remove(&session) {
            for item in items {
                self.queue(session, item);
            }
        }
    }

    /// Queues a delivery from another node to local session `to` (held while it joins).
    pub fn deliver_remote(&self, to: SessionId, item: Outbound) {
        let mut held = lock(&self.held);
        if let Some(waiting) = held.get_mut(&to) {
            waiting.push(item);
            return;
        }
        self.queue(to, item);
    }
}
