//! The session registry: every connected session's end of the bus, by id. It delivers (to one
//! session, or a pipeline decision's deliveries), kicks, and counts; it knows nothing of rooms
//! or plugins (that is the [`super::Dispatcher`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use switchboard_plugin_api::{Delivery, Payload, SessionId};
use switchboard_protocol::{DialectKind, Event};
use tokio_util::sync::CancellationToken;

use super::Outbound;
use super::delivery::{Blocked, Registered, queue_nowait};
use super::mailbox::{Inbox, Mailbox};
use super::weight::envelope_weight;
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

/// What a session's queue holds at most before its senders wait: `[limits]
/// session_queue_len` deliveries and `session_queue_bytes` of their weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBounds {
    /// Deliveries.
    pub len: usize,
    /// Bytes ([`Outbound::weight`]); one delivery heavier than this still goes into an empty
    /// queue.
    pub bytes: usize,
}

impl QueueBounds {
    /// `len` deliveries of up to 1 MiB in all (the default byte bound).
    pub const fn of_len(len: usize) -> Self {
        Self {
            len,
            bytes: 1 << 20,
        }
    }
}

/// A registered session's end of the bus.
#[derive(Debug)]
pub struct SessionHandle {
    /// The session's id.
    pub id: SessionId,
    /// Deliveries addressed to this session, in order (its queue is made by the first).
    pub rx: Inbox,
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
    /// How many sessions `held` holds for (written under its lock): almost always none, and
    /// then a delivery from another node does not take the lock (one per forwarded frame).
    holding: AtomicUsize,
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
            holding: AtomicUsize::new(0),
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

    /// Registers a new session of `dialect` from `addr` with a queue bounded by `queue`
    /// (made by the first delivery), cancelled with `cancel`; returns its end of the bus.
    pub fn register(
        &self,
        dialect: DialectKind,
        addr: Option<SocketAddr>,
        queue: QueueBounds,
        cancel: CancellationToken,
    ) -> SessionHandle {
        let id = self.next_id();
        let mailbox = Arc::new(Mailbox::new(queue.len, queue.bytes));
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
            mailbox: Arc::clone(&mailbox),
            cancel: cancel.clone(),
            info: Arc::clone(&info),
            backlog: OnceLock::new(),
        };
        self.sessions.insert(id, entry);
        SessionHandle {
            id,
            rx: Inbox::new(mailbox),
            cancel,
            info,
        }
    }

    /// Forgets a session; deliveries to it are dropped from now on.
    pub fn unregister(&self, id: SessionId) {
        self.sessions.remove(&id);
        // A join abandoned mid-claim (the connection went away) leaves its buffer behind.
        let mut held = lock(&self.held);
        if held.remove(&id).is_some() {
            self.holding.store(held.len(), Ordering::Release);
        }
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

    /// Queues a pipeline decision's `deliveries` of `envelope`. Returns those whose receivers'
    /// queues are full, for the sender to wait for, and the sender's own deliveries when it
    /// writes them itself ([`Registered::takes_own_now`]): a joiner's `joined` notice then
    /// makes no queue.
    pub fn deliver(
        &self,
        envelope: &Arc<Envelope>,
        deliveries: Vec<Delivery>,
    ) -> (Blocked, Vec<Outbound>) {
        let mut blocked = Blocked::default();
        let mut own = Vec::new();
        if deliveries.is_empty() {
            return (blocked, own);
        }
        let sender = envelope.from.session;
        let timeout = self.write_timeout();
        // The shared envelope weighs the same in every receiver's queue: weighed once.
        let relay_weight = envelope_weight(envelope);
        for delivery in deliveries {
            let Some(target) = self.sessions.get(&delivery.to) else {
                continue;
            };
            let item = match delivery.payload {
                Payload::Relay => Outbound::Relay(Arc::clone(envelope)),
                Payload::Event(event) => Outbound::event(event),
            };
            // Once one went back, the rest follow it (the queue may have been made since).
            if delivery.to == sender && (!own.is_empty() || target.takes_own_now()) {
                own.push(item);
                continue;
            }
            let weight = match &item {
                Outbound::Relay(_) => relay_weight,
                other => other.weight(),
            };
            blocked.offer_weighed(&target, item, weight, timeout);
        }
        (blocked, own)
    }

    /// Holds what other nodes send `session` until [`Self::release`] (while its join claims
    /// its place in Redis).
    pub fn hold(&self, session: SessionId) {
        let mut held = lock(&self.held);
        held.insert(session, Vec::new());
        self.holding.store(held.len(), Ordering::Release);
    }

    /// Delivers what was held for `session`, in arrival order, and stops holding.
    pub fn release(&self, session: SessionId) {
        let mut held = lock(&self.held);
        if let Some(items) = held.remove(&session) {
            for item in items {
                self.queue(session, item);
            }
            self.holding.store(held.len(), Ordering::Release);
        }
    }

    /// Queues a delivery from another node to local session `to` (held while it joins).
    pub fn deliver_remote(&self, to: SessionId, item: Outbound) {
        // A session is held from before it claims its place in the room, so before another
        // node learns of it there: nothing meant to wait can come before the hold shows.
        if self.holding.load(Ordering::Acquire) == 0 {
            self.queue(to, item);
            return;
        }
        let mut held = lock(&self.held);
        if let Some(waiting) = held.get_mut(&to) {
            // Held, not read: on its own, not with its whole bundle.
            waiting.push(item.detached());
            return;
        }
        self.queue(to, item);
    }
}

#[cfg(test)]
mod tests {
    use switchboard_plugin_api::{Delivery, Payload};
    use switchboard_protocol::{ErrorCode, Event};

    use super::*;

    fn notice(text: &str) -> Event {
        Event::error(ErrorCode::Refused, None, text.to_owned())
    }

    fn to(id: SessionId, text: &str) -> Delivery {
        Delivery {
            to: id,
            payload: Payload::Event(notice(text)),
        }
    }

    fn from(handle: &SessionHandle) -> Arc<Envelope> {
        Arc::new(Envelope {
            from: crate::gateway::peer(handle.id, DialectKind::Raw),
            event: notice("sent"),
            original: None,
            app: None,
        })
    }

    fn text(out: &Outbound) -> String {
        match out {
            Outbound::Event(event) => format!("{event:?}"),
            Outbound::Relay(_) => "relay".to_owned(),
            Outbound::Remote(..) => "remote".to_owned(),
            Outbound::Kick(reason) => format!("kick {reason}"),
        }
    }

    fn made(registry: &SessionRegistry, id: SessionId) -> bool {
        registry
            .sessions
            .get(&id)
            .is_some_and(|r| r.mailbox.is_made())
    }

    #[test]
    fn a_sessions_own_notice_comes_back_to_it_and_makes_no_queue() {
        let registry = SessionRegistry::new(Duration::from_secs(5));
        let a = registry.register(
            DialectKind::Raw,
            None,
            QueueBounds::of_len(8),
            CancellationToken::new(),
        );
        let mut b = registry.register(
            DialectKind::Raw,
            None,
            QueueBounds::of_len(8),
            CancellationToken::new(),
        );
        a.rx.write_own();
        let deliveries = vec![
            to(a.id, "joined"),
            to(b.id, "peer joined"),
            to(a.id, "second"),
        ];
        let (blocked, own) = registry.deliver(&from(&a), deliveries);
        assert!(blocked.is_empty());
        let own: Vec<String> = own.iter().map(text).collect();
        assert_eq!(
            own,
            [
                format!("{:?}", notice("joined")),
                format!("{:?}", notice("second"))
            ]
        );
        assert!(
            !made(&registry, a.id),
            "the sender's own notices made no queue"
        );
        assert!(
            made(&registry, b.id),
            "a delivery to another session made its queue"
        );
        assert!(b.rx.try_recv().is_ok());
    }

    #[test]
    fn own_notices_queue_behind_what_is_queued_and_for_a_session_that_does_not_write_them() {
        let registry = SessionRegistry::new(Duration::from_secs(5));
        let mut a = registry.register(
            DialectKind::Raw,
            None,
            QueueBounds::of_len(8),
            CancellationToken::new(),
        );
        let mut whip = registry.register(
            DialectKind::Raw,
            None,
            QueueBounds::of_len(8),
            CancellationToken::new(),
        );
        a.rx.write_own();
        assert!(registry.deliver_to(a.id, notice("earlier")));
        let (_, own) = registry.deliver(&from(&a), vec![to(a.id, "joined")]);
        assert!(
            own.is_empty(),
            "it would have overtaken what waits in the queue"
        );
        let queued: Vec<String> = std::iter::from_fn(|| a.rx.try_recv().ok())
            .map(|o| text(&o))
            .collect();
        assert_eq!(
            queued,
            [
                format!("{:?}", notice("earlier")),
                format!("{:?}", notice("joined"))
            ]
        );

        let (_, own) = registry.deliver(&from(&whip), vec![to(whip.id, "joined")]);
        assert!(
            own.is_empty(),
            "a session that does not write its own takes them from its queue"
        );
        assert!(whip.rx.try_recv().is_ok());
    }

    /// `count` forwards from another node for one session, slices of one large bundle, as the
    /// cluster link reads them: each a delivery naming its place among the bundle's forwards.
    fn forwards(count: u32) -> (Arc<crate::cluster::RemoteForwards>, bytes::Bytes) {
        use switchboard_protocol::JoinMode;
        use switchboard_protocol::cluster::SignalKind;
        let bundle = bytes::Bytes::from(format!("room{}text", "x".repeat(64 * 1024)));
        let mut forwards = crate::cluster::RemoteForwards::new(bundle.clone(), 8);
        let room = std::str::from_utf8(&bundle[..4]).expect("UTF-8");
        let text = axum::extract::ws::Utf8Bytes::try_from(bundle.slice(bundle.len() - 4..))
            .expect("UTF-8");
        for _ in 0..count {
            forwards.push(
                DialectKind::Raw,
                JoinMode::Both,
                SignalKind::Description,
                false,
                room,
                text.clone(),
            );
        }
        (Arc::new(forwards), bundle)
    }

    /// While a session is held (its join claims its place), what other nodes send it waits
    /// and then comes in arrival order; before and after, and for every other session, it is
    /// queued at once (without the hold's lock). An abandoned hold ends with its session.
    #[test]
    fn deliveries_from_other_nodes_wait_only_while_their_session_is_held() {
        let registry = SessionRegistry::new(Duration::from_secs(5));
        let register = || {
            registry.register(
                DialectKind::Raw,
                None,
                QueueBounds::of_len(256),
                CancellationToken::new(),
            )
        };
        let (mut a, mut b, c) = (register(), register(), register());
        // Forward `i`'s text is the digit `i`.
        let bundle = bytes::Bytes::from_static(b"room01234");
        let mut forwards = crate::cluster::RemoteForwards::new(bundle.clone(), 8);
        for i in 0..5 {
            let text =
                axum::extract::ws::Utf8Bytes::try_from(bundle.slice(4 + i..5 + i)).expect("UTF-8");
            forwards.push(
                DialectKind::Raw,
                switchboard_protocol::JoinMode::Both,
                switchboard_protocol::cluster::SignalKind::Description,
                false,
                std::str::from_utf8(&bundle[..4]).expect("UTF-8"),
                text,
            );
        }
        let forwards = Arc::new(forwards);
        let deliver = |to: SessionId, at| {
            registry.deliver_remote(to, Outbound::Remote(Arc::clone(&forwards), at));
        };
        let texts = |rx: &mut Inbox| -> String {
            std::iter::from_fn(|| rx.try_recv().ok())
                .map(|out| match out {
                    Outbound::Remote(f, at) => f.get(at).expect("the forward").text.to_string(),
                    other => panic!("a forward: {}", text(&other)),
                })
                .collect()
        };
        deliver(a.id, 0);
        registry.hold(a.id);
        registry.hold(c.id);
        deliver(a.id, 1);
        deliver(b.id, 2);
        deliver(a.id, 3);
        assert_eq!(texts(&mut a.rx), "0", "held: 1 and 3 wait");
        assert_eq!(texts(&mut b.rx), "2", "another session's comes at once");
        registry.release(a.id);
        assert_eq!(texts(&mut a.rx), "13", "released in arrival order");
        registry.unregister(c.id);
        assert_eq!(
            registry.holding.load(Ordering::Acquire),
            0,
            "nothing held any more"
        );
        deliver(a.id, 4);
        assert_eq!(texts(&mut a.rx), "4");
    }

    #[test]
    fn a_receiver_far_behind_keeps_forwards_on_their_own_not_their_bundles() {
        let registry = SessionRegistry::new(Duration::from_secs(5));
        let mut b = registry.register(
            DialectKind::Raw,
            None,
            QueueBounds::of_len(256),
            CancellationToken::new(),
        );
        let (forwards, bundle) = forwards(100);
        for at in 0..100 {
            registry.deliver_remote(b.id, Outbound::Remote(Arc::clone(&forwards), at));
        }
        let kept: Vec<usize> = std::iter::from_fn(|| b.rx.try_recv().ok())
            .map(|out| match out {
                Outbound::Remote(forwards, at) => {
                    let fwd = forwards.get(at).expect("the forward");
                    assert_eq!(fwd.text.as_str(), "text");
                    forwards.bundle_len()
                }
                other => panic!("a forward: {}", text(&other)),
            })
            .collect();
        assert_eq!(kept.len(), 100, "every forward delivered, in order");
        assert!(
            kept[..64].iter().all(|&len| len == bundle.len()),
            "a receiver up to a batch behind takes forwards as they came, in their bundle"
        );
        assert!(
            kept[64..].iter().all(|&len| len == "roomtext".len()),
            "past a batch behind, each keeps only its room and text: {:?}",
            &kept[64..]
        );
    }
}
