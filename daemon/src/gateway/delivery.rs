//! Queuing deliveries to sessions with backpressure, not loss, and in order.
//!
//! A delivery goes into the receiver's bounded queue at once when there is room (in
//! deliveries and in bytes, [`Mailbox::try_send`]) and nothing waits in the receiver's
//! [`Backlog`]. Otherwise it goes to the end of that backlog, which a task drains into the
//! queue in order; it is never dropped, and never overtaken by a later delivery (a dispatch
//! queues its deliveries under its room's lock, so the room's order is the order its members
//! receive). A session whose event made such a delivery gets a [`Blocked`] back and waits until
//! the receiver took it before it reads anything more from its socket, so TCP flow control
//! slows its peer; producers that cannot wait (a plugin's outbox, frames from other nodes, a
//! closing session's leave notices) do not: what they leave in a backlog is bounded like the
//! queue, in deliveries and in bytes, and a receiver past either bound is given up on. Either
//! way a receiver that frees no room for `write_timeout_secs` is given up on: closed with its
//! own reason ([`give_up`]), counted once, and its backlog dropped, which ends its senders'
//! waits.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::mailbox::Mailbox;
use super::{Outbound, SessionInfo};
use crate::telemetry;

/// Deliveries queued for a receiver past which a forward from another node is queued on its
/// own ([`Outbound::detached`]): more than a session writes at one wake-up, so a receiver that
/// keeps up never reaches it.
const DETACH_BEHIND: usize = 64;

/// A registered session's end of the bus, as producers see it.
pub(super) struct Registered {
    /// The session's queue, made by the first delivery.
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) cancel: CancellationToken,
    pub(super) info: Arc<SessionInfo>,
    /// Created the first time a producer that cannot wait finds the queue full.
    pub(super) backlog: OnceLock<Arc<Mutex<Backlog>>>,
}

/// What a dispatch's deliveries that found their receivers' queues full wait for. They are not
/// held here: each went into its receiver's [`Backlog`] under the room's lock, in the order the
/// pipeline made it, so a later dispatch of the room (which queues behind the backlog) cannot
/// overtake it. The session that caused them waits ([`Blocked::wait`]) until each receiver took
/// the last of them before it reads on.
#[derive(Default)]
#[must_use = "a sender that does not wait for its blocked deliveries is not slowed down"]
pub struct Blocked(Vec<Waiting>);

/// The last of a dispatch's deliveries in one receiver's backlog: answered when the receiver's
/// queue took it, dropped unanswered when the receiver was given up on or went away.
struct Waiting {
    tx: mpsc::Sender<Outbound>,
    mailbox: Arc<Mailbox>,
    taken: oneshot::Receiver<()>,
    backlog: Arc<Mutex<Backlog>>,
    cancel: CancellationToken,
    info: Arc<SessionInfo>,
}

impl std::fmt::Debug for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Blocked").field(&self.0.len()).finish()
    }
}

impl Blocked {
    /// Whether every delivery was queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s waits after these (the later one per receiver is the one to wait for).
    pub fn extend(&mut self, other: Blocked) {
        for waiting in other.0 {
            match self.0.iter_mut().find(|w| w.tx.same_channel(&waiting.tx)) {
                Some(mine) => *mine = waiting,
                None => self.0.push(waiting),
            }
        }
    }

    /// Queues `item` for `to`: at once if its queue has room and nothing waits in its backlog
    /// (which it would overtake), otherwise at the end of the backlog, to be waited for.
    /// Called under the room's lock: it never waits.
    #[cfg(test)]
    pub(super) fn offer(&mut self, to: &Registered, item: Outbound, timeout: Duration) {
        let weight = item.weight();
        self.offer_weighed(to, item, weight, timeout);
    }

    /// [`Self::offer`] of an item whose weight ([`Outbound::weight`]) is known: a fan-out
    /// weighs its shared envelope once for all its receivers.
    pub(super) fn offer_weighed(
        &mut self,
        to: &Registered,
        item: Outbound,
        weight: usize,
        timeout: Duration,
    ) {
        let tx = to.mailbox.sender();
        let Some(item) = to.try_queue(tx, item, weight) else {
            return;
        };
        let (answer, taken) = oneshot::channel();
        let backlog = to.backlog.get_or_init(Arc::default);
        let queued = Queued {
            item,
            weight,
            taken: Some(answer),
        };
        if !backlog_push(to, tx, backlog, queued, timeout) {
            return;
        }
        self.extend(Blocked(vec![Waiting {
            tx: tx.clone(),
            mailbox: Arc::clone(&to.mailbox),
            taken,
            backlog: Arc::clone(backlog),
            cancel: to.cancel.clone(),
            info: Arc::clone(&to.info),
        }]));
    }

    /// Waits until every receiver took these deliveries (or was given up on: its backlog's
    /// drain gives up on a receiver that frees no room for `write_timeout_secs`, which ends
    /// this wait too). All receivers are waited for at once.
    pub async fn wait(self) {
        join_all(self.0.into_iter().map(|w| w.taken)).await;
    }

    /// Lets the deliveries go on without the sender waiting for them (a producer that cannot
    /// wait): they are in their receivers' backlogs already, and count from now on against the
    /// backlog's bound on what no sender waits for (a receiver past it is given up on).
    pub fn defer(self) {
        for Waiting {
            tx,
            mailbox,
            taken,
            backlog,
            cancel,
            info,
        } in self.0
        {
            drop(taken);
            let mut state = lock(&backlog);
            let (count, bytes) = state
                .items
                .iter()
                .filter(|q| !q.waited_for())
                .fold((0, 0), |(n, b), q| (n + 1, b + q.weight));
            state.unwaited = count;
            state.unwaited_bytes = bytes;
            let over = past_bounds(count, bytes, tx.max_capacity(), mailbox.byte_bound());
            drop(state);
            if over {
                give_up(&info, &cancel, tx.max_capacity());
            }
        }
    }
}

impl Registered {
    /// Queues `item` into `tx` (this session's queue) at once if nothing waits in the backlog
    /// (which it would overtake) and the queue has room; otherwise gives it back, for the end
    /// of the backlog. A closed queue takes it too: nobody is left to deliver it to.
    fn try_queue(
        &self,
        tx: &mpsc::Sender<Outbound>,
        item: Outbound,
        weight: usize,
    ) -> Option<Outbound> {
        if self.backlogged() {
            return Some(item);
        }
        match self.mailbox.try_send(tx, item, weight) {
            Ok(()) | Err(TrySendError::Closed(_)) => None,
            Err(TrySendError::Full(item)) => Some(item),
        }
    }

    /// Whether deliveries wait in the session's backlog, to enter its queue before anything
    /// new.
    fn backlogged(&self) -> bool {
        self.backlog.get().is_some_and(|b| lock(b).draining)
    }

    /// Whether a delivery that the session's own event made for it may go back to the
    /// session with the dispatch rather than through its queue: the session writes such
    /// deliveries itself ([`Mailbox::writes_own`]), and nothing is queued for it, which they
    /// would overtake. (Read while the session dispatches, so it takes nothing meanwhile.)
    pub(super) fn takes_own_now(&self) -> bool {
        self.mailbox.writes_own() && self.mailbox.is_empty() && !self.backlogged()
    }
}

/// Deliveries for one receiver that found its queue full, in order, and whether a task is
/// draining them into the receiver's queue.
#[derive(Default)]
pub(super) struct Backlog {
    items: VecDeque<Queued>,
    /// Items no sender waits for (from producers that cannot wait): bounded by the queue's
    /// length. Items a sender waits for are bounded by their senders, each of which reads
    /// nothing more until they are taken.
    unwaited: usize,
    /// Their weight: bounded by the queue's byte bound.
    unwaited_bytes: usize,
    draining: bool,
}

/// A delivery in a backlog, and its sender's wait when it has one.
struct Queued {
    item: Outbound,
    /// Its [`Outbound::weight`].
    weight: usize,
    taken: Option<oneshot::Sender<()>>,
}

impl Queued {
    /// Whether a sender still waits for it.
    fn waited_for(&self) -> bool {
        self.taken.as_ref().is_some_and(|t| !t.is_closed())
    }
}

/// Queues `item` for `to` without waiting: at once when its queue has room and no backlog is
/// pending (which would reorder), otherwise behind the backlog.
pub(super) fn queue_nowait(to: &Registered, item: Outbound, timeout: Duration) {
    // A receiver more than a batch behind keeps a forward from another node on its own, not
    // with its whole bundle: what it holds is then what its queue's byte bound weighs. One
    // that keeps up never copies (the relay path).
    let item = if to.mailbox.len() >= DETACH_BEHIND || to.backlogged() {
        item.detached()
    } else {
        item
    };
    let tx = to.mailbox.sender();
    let weight = item.weight();
    let Some(item) = to.try_queue(tx, item, weight) else {
        return;
    };
    let backlog = to.backlog.get_or_init(Arc::default);
    let queued = Queued {
        item,
        weight,
        taken: None,
    };
    backlog_push(to, tx, backlog, queued, timeout);
}

/// Whether `count` deliveries weighing `bytes` that no sender waits for are more than a
/// backlog keeps: more than the queue's length, or heavier than its byte bound (unless it is
/// one delivery alone, which must be able to go).
fn past_bounds(count: usize, bytes: usize, capacity: usize, byte_bound: usize) -> bool {
    count > capacity || (count > 1 && bytes > byte_bound)
}

/// Appends `queued` to the receiver's backlog and starts its drain if none runs; returns
/// whether it was kept. What no sender waits for is bounded like the queue, in deliveries and
/// in bytes: a receiver that far behind has stopped reading.
fn backlog_push(
    to: &Registered,
    tx: &mpsc::Sender<Outbound>,
    backlog: &Arc<Mutex<Backlog>>,
    queued: Queued,
    timeout: Duration,
) -> bool {
    let (cancel, info) = (&to.cancel, &to.info);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to wait on (a native plugin's own thread): the delivery cannot wait.
        give_up(info, cancel, tx.max_capacity());
        return false;
    };
    let mut state = lock(backlog);
    let unwaited = queued.taken.is_none();
    if unwaited
        && past_bounds(
            state.unwaited + 1,
            state.unwaited_bytes.saturating_add(queued.weight),
            tx.max_capacity(),
            to.mailbox.byte_bound(),
        )
    {
        drop(state);
        give_up(info, cancel, tx.max_capacity());
        return false;
    }
    if unwaited {
        state.unwaited += 1;
        state.unwaited_bytes += queued.weight;
    }
    state.items.push_back(queued);
    if state.draining {
        return true;
    }
    state.draining = true;
    drop(state);
    let drain = drain(
        tx.clone(),
        Arc::clone(&to.mailbox),
        cancel.clone(),
        Arc::clone(info),
        Arc::clone(backlog),
        timeout,
    );
    runtime.spawn(drain);
    true
}

/// Moves a backlog into the receiver's queue, in order, waiting for room (a slot, then the
/// front delivery's weight under the byte bound); ends when it is empty.
async fn drain(
    tx: mpsc::Sender<Outbound>,
    mailbox: Arc<Mailbox>,
    cancel: CancellationToken,
    info: Arc<SessionInfo>,
    backlog: Arc<Mutex<Backlog>>,
    timeout: Duration,
) {
    loop {
        // Only this task takes from the front while the backlog drains (others push behind).
        let weight = {
            let mut state = lock(&backlog);
            let Some(front) = state.items.front() else {
                state.draining = false;
                return;
            };
            front.weight
        };
        let room = async {
            let permit = tx.reserve().await?;
            // Last: once the weight is taken nothing can time out before it is queued.
            mailbox.admitted(weight).await;
            Ok::<_, mpsc::error::SendError<()>>(permit)
        };
        let permit = match tokio::time::timeout(timeout, room).await {
            Ok(Ok(permit)) => permit,
            outcome => {
                if outcome.is_err() {
                    give_up(&info, &cancel, tx.max_capacity());
                }
                // Dropping the items ends their senders' waits.
                let mut state = lock(&backlog);
                state.items.clear();
                state.unwaited = 0;
                state.unwaited_bytes = 0;
                state.draining = false;
                return;
            }
        };
        let mut state = lock(&backlog);
        let Some(queued) = state.items.pop_front() else {
            // Only this task pops or clears, so the front it weighed is there; were it not,
            // the weight goes back and the drain ends.
            mailbox.release(weight);
            state.draining = false;
            return;
        };
        let waited_for = queued.waited_for();
        permit.send(queued.item);
        match queued.taken {
            Some(taken) if waited_for => {
                let _ = taken.send(());
            }
            // Counted as unwaited when it was queued, or when its sender deferred it (one
            // whose sender stopped waiting otherwise, its session gone, may not have been:
            // the count errs low, never high).
            _ => {
                state.unwaited = state.unwaited.saturating_sub(1);
                state.unwaited_bytes = state.unwaited_bytes.saturating_sub(queued.weight);
            }
        }
    }
}

/// Gives up on a receiver that frees no room: it closes with its own reason (WebSocket 1008,
/// not the drain notice) and its partners are told as for any close. Counted and logged once
/// per session, however many deliveries it was late for.
pub(super) fn give_up(info: &SessionInfo, cancel: &CancellationToken, queue_len: usize) {
    if !info.stuck.swap(true, Ordering::AcqRel) {
        telemetry::session_stuck(info.id, info.dialect, queue_len);
    }
    cancel.cancel();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::SystemTime;

    use switchboard_plugin_api::SessionId;
    use switchboard_protocol::{DialectKind, Event};

    use super::super::mailbox::Inbox;
    use super::*;

    fn registered(queue: usize) -> (Registered, Inbox) {
        registered_with(queue, 1 << 20)
    }

    fn registered_with(queue: usize, bytes: usize) -> (Registered, Inbox) {
        let mailbox = Arc::new(Mailbox::new(queue, bytes));
        let rx = Inbox::new(Arc::clone(&mailbox));
        let info = Arc::new(SessionInfo {
            id: SessionId(7),
            dialect: DialectKind::Raw,
            addr: None::<SocketAddr>,
            opened: SystemTime::now(),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            stuck: AtomicBool::new(false),
        });
        let to = Registered {
            mailbox,
            cancel: CancellationToken::new(),
            info,
            backlog: OnceLock::new(),
        };
        (to, rx)
    }

    fn item(n: u32) -> Outbound {
        Outbound::event(Event::error(
            switchboard_protocol::ErrorCode::Refused,
            None,
            n.to_string(),
        ))
    }

    /// Item `n` carrying `bytes` of text besides its number.
    fn heavy(n: u32, bytes: usize) -> Outbound {
        Outbound::event(Event::error(
            switchboard_protocol::ErrorCode::Refused,
            None,
            format!("{n}{}", " ".repeat(bytes)),
        ))
    }

    fn heavy_range(range: std::ops::RangeInclusive<u32>, bytes: usize) -> Vec<String> {
        range.map(|n| number(heavy(n, bytes))).collect()
    }

    fn number(out: Outbound) -> String {
        match out {
            Outbound::Event(event) => format!("{event:?}"),
            _ => String::new(),
        }
    }

    /// The next `n` deliveries (a test that expects more than arrive fails within 5 s).
    async fn take(rx: &mut Inbox, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        for _ in 0..n {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(out)) => got.push(number(out)),
                _ => break,
            }
        }
        got
    }

    fn expected(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
        range.map(|n| number(item(n))).collect()
    }

    #[tokio::test]
    async fn a_full_queue_keeps_the_rest_in_order_until_there_is_room() {
        let (to, mut rx) = registered(2);
        let mut blocked = Blocked::default();
        for n in 1..=5 {
            blocked.offer(&to, item(n), Duration::from_secs(5));
        }
        assert!(!blocked.is_empty(), "3 of 5 wait for room");
        let wait = tokio::spawn(blocked.wait());
        assert_eq!(take(&mut rx, 5).await, expected(1..=5));
        wait.await.ok();
        assert!(!to.info.is_stuck());
    }

    #[tokio::test]
    async fn a_receiver_that_frees_no_room_is_given_up_on_once() {
        let (to, _rx) = registered(1);
        let mut blocked = Blocked::default();
        for n in 1..=3 {
            blocked.offer(&to, item(n), Duration::from_millis(50));
        }
        blocked.wait().await;
        assert!(to.info.is_stuck());
        assert!(to.cancel.is_cancelled());
    }

    #[tokio::test]
    async fn deferred_deliveries_count_against_the_backlogs_bound() {
        let (to, mut rx) = registered(2);
        // 2 in the queue, 1 in the backlog: within the bound once deferred.
        let mut blocked = Blocked::default();
        for n in 1..=3 {
            blocked.offer(&to, item(n), Duration::from_secs(5));
        }
        blocked.defer();
        assert!(!to.info.is_stuck());
        assert_eq!(take(&mut rx, 3).await, expected(1..=3));

        // 2 in the queue, 3 in the backlog that nobody waits for: past the bound.
        let (to, _rx) = registered(2);
        let mut blocked = Blocked::default();
        for n in 1..=5 {
            blocked.offer(&to, item(n), Duration::from_secs(5));
        }
        assert!(!to.info.is_stuck(), "a sender waits for these");
        blocked.defer();
        assert!(to.info.is_stuck(), "deferred, they are too many");
    }

    #[tokio::test]
    async fn deliveries_that_cannot_wait_queue_behind_the_backlog_in_order() {
        let (to, mut rx) = registered(2);
        // 2 in the queue, 2 in the backlog (as long as the queue, at most).
        for n in 1..=4 {
            queue_nowait(&to, item(n), Duration::from_secs(5));
        }
        assert_eq!(take(&mut rx, 4).await, expected(1..=4));
        assert!(!to.info.is_stuck());
    }

    #[tokio::test]
    async fn a_backlog_longer_than_the_queue_gives_the_receiver_up() {
        let (to, _rx) = registered(2);
        // 2 in the queue, 2 in the backlog, then one too many.
        for n in 1..=5 {
            queue_nowait(&to, item(n), Duration::from_secs(5));
        }
        assert!(to.info.is_stuck());
    }

    #[tokio::test]
    async fn heavy_deliveries_make_their_sender_wait_before_the_count_does() {
        // Room for 64 deliveries but 4096 bytes: two of about 1.5 KB fit.
        let (to, mut rx) = registered_with(64, 4096);
        let mut blocked = Blocked::default();
        for n in 1..=5 {
            blocked.offer(&to, heavy(n, 1500), Duration::from_secs(5));
        }
        assert!(!blocked.is_empty(), "3 of 5 wait for bytes");
        assert!(to.mailbox.queued_bytes() <= 4096);
        let wait = tokio::spawn(blocked.wait());
        assert_eq!(take(&mut rx, 5).await, heavy_range(1..=5, 1500));
        wait.await.ok();
        assert!(!to.info.is_stuck());
        assert_eq!(to.mailbox.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_delivery_heavier_than_the_bound_goes_into_an_empty_queue() {
        let (to, mut rx) = registered_with(64, 1024);
        let mut blocked = Blocked::default();
        blocked.offer(&to, heavy(1, 5000), Duration::from_secs(5));
        assert!(blocked.is_empty(), "queued at once");
        blocked.offer(&to, heavy(2, 5000), Duration::from_secs(5));
        assert!(!blocked.is_empty(), "the second waits for the first");
        let wait = tokio::spawn(blocked.wait());
        assert_eq!(take(&mut rx, 2).await, heavy_range(1..=2, 5000));
        wait.await.ok();
        assert!(!to.info.is_stuck());
    }

    #[tokio::test]
    async fn a_receiver_that_takes_no_bytes_is_given_up_on() {
        let (to, _rx) = registered_with(64, 1024);
        let mut blocked = Blocked::default();
        for n in 1..=2 {
            blocked.offer(&to, heavy(n, 5000), Duration::from_millis(50));
        }
        blocked.wait().await;
        assert!(to.info.is_stuck());
    }

    #[tokio::test]
    async fn a_backlog_heavier_than_the_byte_bound_gives_the_receiver_up() {
        let (to, mut rx) = registered_with(64, 4096);
        // 2 in the queue, 2 in the backlog (3.1 KB, within 4096 bytes): kept.
        for n in 1..=4 {
            queue_nowait(&to, heavy(n, 1500), Duration::from_secs(5));
        }
        assert!(!to.info.is_stuck());
        // A fifth would make the backlog 4.7 KB.
        queue_nowait(&to, heavy(5, 1500), Duration::from_secs(5));
        assert!(to.info.is_stuck());
        drop(rx.try_recv());

        // One alone heavier than the bound is kept.
        let (to, mut rx) = registered_with(64, 1024);
        for n in 1..=2 {
            queue_nowait(&to, heavy(n, 5000), Duration::from_secs(5));
        }
        assert!(!to.info.is_stuck());
        assert_eq!(take(&mut rx, 2).await, heavy_range(1..=2, 5000));
    }
}
