//! A session's queue of deliveries, made by the first delivery it is sent.
//!
//! tokio's bounded channel allocates its state (512 bytes) and its first block of items (544)
//! when it is made; made at registration, that was a kilobyte of every idle session's heap
//! (BENCHMARKS.md, "Fourth step (session 11)"). A session's own notices (`joined`) do not go
//! through the queue ([`Mailbox::writes_own`]), so an idle session that was only ever told of
//! its own join never has one. Producers make it ([`Mailbox::sender`]) and wake the session,
//! which takes the receiving half at its next poll ([`Inbox::poll_recv`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

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
}

#[derive(Debug, Default)]
struct Slot {
    rx: Option<mpsc::Receiver<Outbound>>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// A mailbox whose queue, once made, holds `capacity` deliveries.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            tx: OnceLock::new(),
            slot: Mutex::default(),
            capacity: capacity.max(1),
            writes_own: AtomicBool::new(false),
        }
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
        match &mut self.rx {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Pending,
        }
    }

    /// The next delivery if one is queued.
    pub fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        if self.rx.is_none() {
            self.rx = lock(&self.mailbox.slot).rx.take();
        }
        match &mut self.rx {
            Some(rx) => rx.try_recv(),
            None => Err(TryRecvError::Empty),
        }
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

    #[test]
    fn no_queue_until_the_first_delivery() {
        let mailbox = Arc::new(Mailbox::new(4));
        let mut inbox = Inbox::new(Arc::clone(&mailbox));
        assert!(mailbox.tx.get().is_none());
        assert!(mailbox.is_empty());
        assert!(matches!(inbox.try_recv(), Err(TryRecvError::Empty)));
        assert!(mailbox.tx.get().is_none(), "reading makes no queue");
        mailbox.sender().try_send(item()).expect("room");
        assert!(!mailbox.is_empty());
        assert!(inbox.try_recv().is_ok());
        assert!(mailbox.is_empty());
    }

    #[tokio::test]
    async fn a_session_waiting_for_its_queue_is_woken_by_its_making() {
        let mailbox = Arc::new(Mailbox::new(4));
        let mut inbox = Inbox::new(Arc::clone(&mailbox));
        let waiter = tokio::spawn(async move { inbox.recv().await.is_some() });
        // Let the session poll (and wait) before the queue exists.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        mailbox.sender().try_send(item()).expect("room");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(
            matches!(got, Ok(Ok(true))),
            "the delivery reached the waiting session"
        );
    }
}
