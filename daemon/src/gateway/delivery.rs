//! Queuing deliveries to sessions with backpressure, not loss.
//!
//! A delivery goes into the receiver's bounded queue at once when there is room. When there is
//! none, it is not dropped: a session that sent the event gets it back as [`Blocked`] and waits
//! for room before it reads anything more from its socket, so TCP flow control slows its peer.
//! Producers that cannot wait (a plugin's outbox, frames from other nodes, a closing session's
//! leave notices) hand it to the receiver's [`Backlog`], which a task drains in order. Either way
//! a receiver that frees no room for `write_timeout_secs` is given up on: closed with its own
//! reason ([`give_up`]), counted once.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::mailbox::Mailbox;
use super::{Outbound, SessionInfo};
use crate::telemetry;

/// A registered session's end of the bus, as producers see it.
pub(super) struct Registered {
    /// The session's queue, made by the first delivery.
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) cancel: CancellationToken,
    pub(super) info: Arc<SessionInfo>,
    /// Created the first time a producer that cannot wait finds the queue full.
    pub(super) backlog: OnceLock<Arc<Mutex<Backlog>>>,
}

/// Deliveries that found their receiver's queue full, grouped by receiver in the order they were
/// made. The session that caused them waits for them ([`Blocked::wait`]) before reading on.
#[derive(Default)]
#[must_use = "blocked deliveries are lost unless waited for or deferred"]
pub struct Blocked(Vec<Waiting>);

struct Waiting {
    tx: mpsc::Sender<Outbound>,
    cancel: CancellationToken,
    info: Arc<SessionInfo>,
    backlog: Arc<Mutex<Backlog>>,
    items: Vec<Outbound>,
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

    /// Adds `other`'s deliveries after these, keeping each receiver's in order.
    pub fn extend(&mut self, other: Blocked) {
        for waiting in other.0 {
            match self.0.iter_mut().find(|w| w.tx.same_channel(&waiting.tx)) {
                Some(mine) => mine.items.extend(waiting.items),
                None => self.0.push(waiting),
            }
        }
    }

    /// Queues `item` for `to`: at once if its queue has room and nothing of this batch already
    /// waits for it (which would reorder), otherwise kept to wait for.
    pub(super) fn offer(&mut self, to: &Registered, item: Outbound) {
        let tx = to.mailbox.sender();
        if let Some(waiting) = self.0.iter_mut().find(|w| w.tx.same_channel(tx)) {
            waiting.items.push(item);
            return;
        }
        match tx.try_send(item) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(item)) => self.0.push(Waiting {
                tx: tx.clone(),
                cancel: to.cancel.clone(),
                info: Arc::clone(&to.info),
                backlog: Arc::clone(to.backlog.get_or_init(Arc::default)),
                items: vec![item],
            }),
        }
    }

    /// Waits until every receiver took its deliveries, in order. All receivers are waited for
    /// at once, so one stuck receiver delays the others by at most `timeout`: a receiver whose
    /// queue frees no room for `timeout` is given up on and its deliveries dropped.
    pub async fn wait(self, timeout: Duration) {
        join_all(self.0.into_iter().map(|w| w.send(timeout))).await;
    }

    /// Hands the blocked deliveries to their receivers' backlogs, for a producer that cannot
    /// wait.
    pub fn defer(self, timeout: Duration) {
        for mut waiting in self.0 {
            for item in std::mem::take(&mut waiting.items) {
                let Waiting {
                    tx, cancel, info, ..
                } = &waiting;
                backlog_push(tx, cancel, info, &waiting.backlog, item, timeout);
            }
        }
    }
}

impl Waiting {
    async fn send(self, timeout: Duration) {
        for item in self.items {
            match tokio::time::timeout(timeout, self.tx.reserve()).await {
                Ok(Ok(permit)) => permit.send(item),
                // The receiver ended: nothing to deliver to.
                Ok(Err(_)) => return,
                Err(_) => {
                    give_up(&self.info, &self.cancel, self.tx.max_capacity());
                    return;
                }
            }
        }
    }
}

impl Registered {
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

/// Deliveries for one receiver from producers that cannot wait, in order, and whether a task
/// is draining them into the receiver's queue.
#[derive(Default)]
pub(super) struct Backlog {
    items: VecDeque<Outbound>,
    draining: bool,
}

/// Queues `item` for `to` without waiting: at once when its queue has room and no backlog is
/// pending (which would reorder), otherwise behind the backlog.
pub(super) fn queue_nowait(to: &Registered, item: Outbound, timeout: Duration) {
    let tx = to.mailbox.sender();
    let item = if to.backlogged() {
        item
    } else {
        match tx.try_send(item) {
            Ok(()) | Err(TrySendError::Closed(_)) => return,
            Err(TrySendError::Full(item)) => item,
        }
    };
    let backlog = to.backlog.get_or_init(Arc::default);
    backlog_push(tx, &to.cancel, &to.info, backlog, item, timeout);
}

/// Appends `item` to the receiver's backlog and starts its drain if none runs. The backlog is
/// bounded by the queue's length: a receiver that far behind has stopped reading.
fn backlog_push(
    tx: &mpsc::Sender<Outbound>,
    cancel: &CancellationToken,
    info: &Arc<SessionInfo>,
    backlog: &Arc<Mutex<Backlog>>,
    item: Outbound,
    timeout: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to wait on (a native plugin's own thread): the delivery cannot wait.
        give_up(info, cancel, tx.max_capacity());
        return;
    };
    let mut state = lock(backlog);
    if state.items.len() >= tx.max_capacity() {
        drop(state);
        give_up(info, cancel, tx.max_capacity());
        return;
    }
    state.items.push_back(item);
    if state.draining {
        return;
    }
    state.draining = true;
    drop(state);
    let drain = drain(
        tx.clone(),
        cancel.clone(),
        Arc::clone(info),
        Arc::clone(backlog),
        timeout,
    );
    runtime.spawn(drain);
}

/// Moves a backlog into the receiver's queue, in order, waiting for room; ends when it is empty.
async fn drain(
    tx: mpsc::Sender<Outbound>,
    cancel: CancellationToken,
    info: Arc<SessionInfo>,
    backlog: Arc<Mutex<Backlog>>,
    timeout: Duration,
) {
    loop {
        let permit = match tokio::time::timeout(timeout, tx.reserve()).await {
            Ok(Ok(permit)) => permit,
            outcome => {
                if outcome.is_err() {
                    give_up(&info, &cancel, tx.max_capacity());
                }
                let mut state = lock(&backlog);
                state.items.clear();
                state.draining = false;
                return;
            }
        };
        let mut state = lock(&backlog);
        let Some(item) = state.items.pop_front() else {
            state.draining = false;
            return;
        };
        permit.send(item);
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
        let mailbox = Arc::new(Mailbox::new(queue));
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
            blocked.offer(&to, item(n));
        }
        assert!(!blocked.is_empty(), "3 of 5 wait for room");
        let wait = tokio::spawn(blocked.wait(Duration::from_secs(5)));
        assert_eq!(take(&mut rx, 5).await, expected(1..=5));
        wait.await.ok();
        assert!(!to.info.is_stuck());
    }

    #[tokio::test]
    async fn a_receiver_that_frees_no_room_is_given_up_on_once() {
        let (to, _rx) = registered(1);
        let mut blocked = Blocked::default();
        for n in 1..=3 {
            blocked.offer(&to, item(n));
        }
        blocked.wait(Duration::from_millis(50)).await;
        assert!(to.info.is_stuck());
        assert!(to.cancel.is_cancelled());
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
}
