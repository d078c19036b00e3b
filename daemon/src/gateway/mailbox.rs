//! A session's queue of deliveries, made by the first delivery it is sent.
//!
//! tokio's bounded channel allocates its state (512 bytes) and its first block of items (544)
//! when it is made; made at registration, that was a kilobyte of every idle session's heap
//! (BENCHMARKS.md, "Fourth step (session 11)"). A session's own notices (`joined`) do not go
//! through the queue ([`Mailbox::writes_own`]), so an idle session that was only ever told of
//! its own join never has one. Producers make it ([`Mailbox::sender`]) and wake the session,
//! which takes the receiving half at its next poll ([`Inbox::poll_recv`]).
//!
//! The queue is bounded twice: in deliveries (the channel's length) and in bytes, the
//! [`Outbound::weight`] of what it holds ([`Mailbox::try_send`], [`Mailbox::admitted`]). A
//! delivery that does not fit is not queued; the producer keeps it in the receiver's backlog
//! (delivery.rs). One delivery heavier than the whole bound goes into an empty queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use super::Outbound;

/// The producers' side of a session's queue, shared with the session's [`Inbox`].
#[derive(Debug)]
pub(super) struct Mailbox {
    /// The queue's sending half, set by the first delivery.
    tx: OnceLock<mpsc::Sender<Outbound>>,
    /// The receiving half until the session takes it, and the session's waker meanwhile.
    slot: Mutex<Slot>,
    /// The queue's length in deliveries.
    capacity: usize,
    /// Set by a session that writes the deliveries its own events make for it (a WebSocket
    /// session loop); others (WHIP) take every delivery from the queue.
    writes_own: AtomicBool,
    /// The weight of the deliveries in the queue.
    bytes: AtomicUsize,
    /// What they may weigh (`[limits] session_queue_bytes`), unless one alone weighs more.
    byte_bound: usize,
    /// The backlog's drain (one at a time), waiting for the session to take some weight.
    room: AtomicWaker,
    /// Whether the drain waits in `room`: the session wakes it only then (a wake is two
    /// atomic writes, on every delivery taken otherwise).
    waiting: AtomicBool,
}

#[derive(Debug, Default)]
struct Slot {
    rx: Option<mpsc::Receiver<Outbound>>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// A mailbox whose queue, once made, holds `capacity` deliveries weighing `byte_bound`
    /// bytes at most (or one delivery that weighs more).
    pub(super) fn new(capacity: usize, byte_bound: usize) -> Self {
        Self {
            tx: OnceLock::new(),
            slot: Mutex::default(),
            capacity: capacity.max(1),
            writes_own: AtomicBool::new(false),
            bytes: AtomicUsize::new(0),
            byte_bound: byte_bound.max(1),
            room: AtomicWaker::new(),
            waiting: AtomicBool::new(false),
        }
    }

    /// What the queue's deliveries may weigh.
    pub(super) fn byte_bound(&self) -> usize {
        self.byte_bound
    }

    /// Queues `item`, weighing `weight` ([`Outbound::weight`]), if both bounds have room; gives
    /// it back otherwise (`Full`), or when the session is gone (`Closed`).
    pub(super) fn try_send(
        &self,
        tx: &mpsc::Sender<Outbound>,
        item: Outbound,
        weight: usize,
    ) -> Result<(), TrySendError<Outbound>> {
        if !self.admit(weight) {
            return Err(TrySendError::Full(item));
        }
        tx.try_send(item).inspect_err(|_| self.release(weight))
    }

    /// Takes `weight` under the byte bound when it fits: always into an empty queue, so that a
    /// delivery heavier than the bound goes once the queue has drained, never waits forever.
    fn admit(&self, weight: usize) -> bool {
        // SeqCst: with the session's release and `waiting` (see `admitted`), one of the drain
        // and the session sees the other's write.
        self.bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |queued| {
                let fits = queued == 0 || queued.saturating_add(weight) <= self.byte_bound;
                fits.then(|| queued.saturating_add(weight))
            })
            .is_ok()
    }

    /// Waits until `weight` fits ([`Self::admit`]) and takes it. For the backlog's drain, the
    /// one producer of a backlogged queue.
    pub(super) async fn admitted(&self, weight: usize) {
        std::future::poll_fn(|cx| {
            if self.admit(weight) {
                return Poll::Ready(());
            }
            self.room.register(cx.waker());
            self.waiting.store(true, Ordering::SeqCst);
            // Taken before the session saw `waiting`: it did not wake us, so try again.
            if self.admit(weight) {
                self.waiting.store(false, Ordering::Relaxed);
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Gives back the weight of a delivery that left the queue (or never entered it), and
    /// wakes the backlog's drain if it waits for room.
    pub(super) fn release(&self, weight: usize) {
        self.bytes.fetch_sub(weight, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.waiting.store(false, Ordering::Relaxed);
            self.room.wake();
        }
    }

    /// The weight of what is queued now.
    #[cfg(test)]
    pub(super) fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// The queue's sending half, made with the queue on first use (the session is woken to
    /// take the receiving half).
    pub(super) fn sender(&self) -> &mpsc::Sender<Outbound> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.capacity);
            let mut slot = lock(&self.slot);
            slot.rx = Some(rx);
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
            tx
        })
    }

    /// Whether nothing waits in the queue: none made yet, or all its room free. Read by the
    /// session's own dispatch, while the session takes nothing from it.
    pub(super) fn is_empty(&self) -> bool {
        self.tx
            .get()
            .is_none_or(|tx| tx.capacity() == tx.max_capacity())
    }

    /// Deliveries waiting in the queue (none made yet: 0).
    pub(super) fn len(&self) -> usize {
        self.tx
            .get()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Whether its queue was made.
    #[cfg(test)]
    pub(super) fn is_made(&self) -> bool {
        self.tx.get().is_some()
    }

    /// Whether the session writes its own deliveries itself ([`Inbox::write_own`]).
    pub(super) fn writes_own(&self) -> bool {
        self.writes_own.load(Ordering::Relaxed)
    }
}

/// A session's end of its queue: empty until a producer makes the queue.
#[derive(Debug)]
pub struct Inbox {
    mailbox: Arc<Mailbox>,
    rx: Option<mpsc::Receiver<Outbound>>,
}

impl Inbox {
    pub(super) fn new(mailbox: Arc<Mailbox>) -> Self {
        Self { mailbox, rx: None }
    }

    /// From now on, the deliveries this session's own events make for it come back to it with
    /// the dispatch ([`super::Dispatched::own`]) while its queue is empty, and it writes them
    /// itself after its replies: only a session that does so may ask for it.
    pub fn write_own(&self) {
        self.mailbox.writes_own.store(true, Ordering::Relaxed);
    }

    /// The next delivery, in order; `None` once the queue was made and every producer of it
    /// is gone (the session was unregistered).
    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery. Until the queue is made, the session's waker waits in the
    /// mailbox for the producer that makes it.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        if self.rx.is_none() {
            let mut slot = lock(&self.mailbox.slot);
            match slot.rx.take() {
                Some(rx) => self.rx = Some(rx),
                None => {
                    if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        slot.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
        let polled = match &mut self.rx {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Pending,
        };
        if let Poll::Ready(Some(item)) = &polled {
            self.mailbox.release(item.weight());
        }
        polled
    }

    /// The next delivery if one is queued.
    pub fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        if self.rx.is_none() {
            self.rx = lock(&self.mailbox.slot).rx.take();
        }
        let item = match &mut self.rx {
            Some(rx) => rx.try_recv(),
            None => Err(TryRecvError::Empty),
        }?;
        self.mailbox.release(item.weight());
        Ok(item)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Outbound {
        Outbound::Kick(Arc::new("k".to_owned()))
    }

    fn heavy(bytes: usize) -> Outbound {
        Outbound::Kick(Arc::new("k".repeat(bytes)))
    }

    fn send(mailbox: &Mailbox, item: Outbound) {
        let weight = item.weight();
        mailbox
            .try_send(mailbox.sender(), item, weight)
            .expect("room");
    }

    #[test]
    fn the_byte_bound_refuses_what_would_pass_it_but_never_an_empty_queue() {
        let mailbox = Arc::new(Mailbox::new(64, 1000));
        let mut inbox = Inbox::new(Arc::clone(&mailbox));
        let tx = mailbox.sender();
        let big = heavy(5000);
        let weight = big.weight();
        assert!(mailbox.try_send(tx, big, weight).is_ok(), "empty: it goes");
        let small = heavy(10);
        let weight = small.weight();
        assert!(matches!(
            mailbox.try_send(tx, small, weight),
            Err(TrySendError::Full(_))
        ));
        assert!(inbox.try_recv().is_ok());
        assert_eq!(mailbox.queued_bytes(), 0, "taking it gave its weight back");
        for _ in 0..5 {
            send(&mailbox, heavy(100));
        }
        let more = heavy(900);
        let weight = more.weight();
        assert!(
            mailbox.try_send(tx, more, weight).is_err(),
            "past 1000 bytes"
        );
        assert!(mailbox.queued_bytes() <= 1000);
    }

    #[tokio::test]
    async fn a_wait_for_bytes_ends_when_the_session_takes_some() {
        let mailbox = Arc::new(Mailbox::new(64, 1000));
        let mut inbox = Inbox::new(Arc::clone(&mailbox));
        send(&mailbox, heavy(800));
        let waiting = Arc::clone(&mailbox);
        let waiter = tokio::spawn(async move { waiting.admitted(heavy(800).weight()).await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "no room yet");
        assert!(inbox.try_recv().is_ok());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(()))), "woken by the take");
    }

    #[test]
    fn no_queue_until_the_first_delivery() {
        let mailbox = Arc::new(Mailbox::new(4, 1 << 20));
        let mut inbox = Inbox::new(Arc::clone(&mailbox));
        assert!(mailbox.tx.get().is_none());
        assert!(mailbox.is_empty());
        assert!(matches!(inbox.try_recv(), Err(TryRecvError::Empty)));
        assert!(mailbox.tx.get().is_none(), "reading makes no queue");
        send(&mailbox, item());
        assert!(!mailbox.is_empty());
        assert!(inbox.try_recv().is_ok());
        assert!(mailbox.is_empty());
    }

    #[tokio::test]
    async fn a_session_waiting_for_its_queue_is_woken_by_its_making() {
        let mailbox = Arc::new(Mailbox::new(4, 1 << 20));
        let mut inbox = Inbox::new(Arc::clone(&mailbox));
        let waiter = tokio::spawn(async move { inbox.recv().await.is_some() });
        // Let the session poll (and wait) before the queue exists.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        send(&mailbox, item());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(
            matches!(got, Ok(Ok(true))),
            "the delivery reached the waiting session"
        );
    }
}
