//! What a long-polling session has written and its client has not collected yet: the session
//! loop's writes go in (bounded: a full queue makes the writer wait, as a full socket does), and
//! each GET takes what is there as one payload, or waits for something to arrive.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use axum::extract::ws::{Utf8Bytes, WebSocket};
use switchboard_protocol::dialects::engineio::{EngineVersion, payload3, polling};
use tokio::sync::Notify;

/// Bytes a polling session may have waiting for its client before its writer waits. One GET
/// takes up to this much, so a burst of 6 KB offers crosses in about 170 per round trip.
pub const QUEUE_BYTES: usize = 1024 * 1024;

/// A polling session's outgoing packets, shared by its session loop (the writer) and its GETs.
#[derive(Debug, Default)]
pub struct PollQueue {
    /// How a payload is framed: the session's engine.io version.
    version: EngineVersion,
    inner: Mutex<Inner>,
    /// Wakes the pending GET when packets arrive or the queue's state changes.
    arrived: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    packets: VecDeque<Utf8Bytes>,
    bytes: usize,
    /// The session's writer, waiting for room.
    writer: Option<Waker>,
    /// Whether a GET is waiting (at most one may: engine.io refuses a second).
    polling: bool,
    state: State,
    /// The WebSocket the client upgraded to, until the session's transport takes it.
    upgraded: Option<Box<WebSocket>>,
}

/// Where the session's packets go now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// To GETs.
    #[default]
    Polling,
    /// To the WebSocket the session upgraded to (what is left here goes there first): a GET
    /// gets a `noop`.
    Upgraded,
    /// Nowhere: the session ended. A GET gets what is left, then a `close`.
    Closed,
}

/// What one GET gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// A payload of packets.
    Payload(String),
    /// Nothing yet: wait for [`PollQueue::arrived`].
    Empty,
}

/// Why a GET is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PollRefused {
    /// Another GET of the session is pending.
    Overlap,
}

impl PollQueue {
    /// The queue of a session speaking engine.io `version`.
    pub fn new(version: EngineVersion) -> Self {
        PollQueue {
            version,
            ..PollQueue::default()
        }
    }

    /// Appends `packet` to a payload in this session's framing.
    pub fn append(&self, payload: &mut String, packet: &str) {
        match self.version {
            EngineVersion::V3 => payload3::append(payload, packet),
            EngineVersion::V4 => polling::append(payload, packet),
        }
    }

    /// A payload of the one packet `packet`.
    fn single(&self, packet: &str) -> String {
        let mut payload = String::new();
        self.append(&mut payload, packet);
        payload
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the writer may add a packet now; if not, it is woken when a GET takes some.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.bytes < QUEUE_BYTES || inner.state != State::Polling {
            return Poll::Ready(());
        }
        inner.writer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Queues a packet for the next GET.
    pub fn push(&self, packet: Utf8Bytes) {
        let mut inner = self.lock();
        inner.bytes += packet.len();
        inner.packets.push_back(packet);
        drop(inner);
        self.arrived.notify_one();
    }

    /// Answers a pending GET that has nothing to take with a `noop`, so that a client pausing
    /// polling for an upgrade gets its poll back (engine.io's server does so every 100 ms while
    /// an upgrade is under way). Whether a `noop` was queued.
    pub fn release_pending_poll(&self) -> bool {
        let inner = self.lock();
        if !inner.polling || !inner.packets.is_empty() || inner.state != State::Polling {
            return false;
        }
        drop(inner);
        self.push(Utf8Bytes::from_static(polling::NOOP));
        true
    }

    /// Starts a GET: refused when another is pending. The guard ends it.
    pub fn begin_poll(&self) -> Result<PollGuard<'_>, PollRefused> {
        let mut inner = self.lock();
        if std::mem::replace(&mut inner.polling, true) {
            return Err(PollRefused::Overlap);
        }
        Ok(PollGuard { queue: self })
    }

    /// Takes what a GET answers: the queued packets as one payload (up to [`QUEUE_BYTES`], at
    /// least one packet); a `noop` once the session upgraded; a `close` once it ended.
    pub fn take(&self) -> Batch {
        let mut inner = self.lock();
        if inner.packets.is_empty() || inner.state == State::Upgraded {
            return match inner.state {
                State::Polling => Batch::Empty,
                State::Upgraded => Batch::Payload(self.single(polling::NOOP)),
                State::Closed => Batch::Payload(self.single(polling::CLOSE)),
            };
        }
        // Sized once (the packets and their separators or length prefixes): grown packet by
        // packet, a payload of 1 MiB could take a block of 2 MiB.
        let framing = 8 * inner.packets.len().min(QUEUE_BYTES / 64);
        let mut payload = String::with_capacity(inner.bytes.min(QUEUE_BYTES) + framing);
        while let Some(packet) = inner.packets.front() {
            if !payload.is_empty() && payload.len() + packet.len() >= QUEUE_BYTES {
                break;
            }
            self.append(&mut payload, packet);
            let taken = packet.len();
            inner.packets.pop_front();
            inner.bytes -= taken;
        }
        if let Some(writer) = inner.writer.take() {
            writer.wake();
        }
        Batch::Payload(payload)
    }

    /// Waits until `count` packets are queued or the session no longer polls. An engine.io 3
    /// handshake waits for its second packet (the server's `40` or connect error), so the first
    /// GET answers the open and the connect together, as socket.io 2 does, whatever the timing
    /// of the session's join.
    pub async fn holds(&self, count: usize) {
        loop {
            let notified = self.arrived.notified();
            {
                let inner = self.lock();
                if inner.packets.len() >= count || inner.state != State::Polling {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits until something may have changed for a pending GET.
    pub async fn changed(&self) {
        self.arrived.notified().await;
    }

    /// The client finished the upgrade on `ws`: the session's writes go there from now on
    /// ([`Self::adopt`]). A pending GET is answered with a `noop`, and a writer waiting for room
    /// is woken: a client that upgrades stops polling, so room would never come.
    pub fn hand_over(&self, ws: WebSocket) {
        let mut inner = self.lock();
        inner.state = State::Upgraded;
        inner.upgraded = Some(Box::new(ws));
        let writer = inner.writer.take();
        drop(inner);
        if let Some(writer) = writer {
            writer.wake();
        }
        self.arrived.notify_one();
    }

    /// The WebSocket of a finished upgrade, with what the GETs had not collected (to send there
    /// first); `None` before the upgrade or once taken.
    pub fn adopt(&self) -> Option<(Box<WebSocket>, VecDeque<Utf8Bytes>)> {
        let mut inner = self.lock();
        let ws = inner.upgraded.take()?;
        inner.bytes = 0;
        Some((ws, std::mem::take(&mut inner.packets)))
    }

    /// Whether every packet was collected (or the session upgraded, so none are left here).
    pub fn is_drained(&self) -> bool {
        self.lock().packets.is_empty()
    }

    /// The session ended: a pending GET gets what is left, then `close`.
    pub fn close(&self) {
        self.lock().state = State::Closed;
        self.arrived.notify_one();
    }
}

/// A pending GET; dropping it (the answer went out, or the client went away) lets the next one
/// in.
#[derive(Debug)]
pub struct PollGuard<'a> {
    queue: &'a PollQueue,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.queue.lock().polling = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_takes_every_queued_packet_as_one_payload_in_order() {
        let queue = PollQueue::default();
        assert_eq!(queue.take(), Batch::Empty);
        queue.push("0{}".into());
        queue.push("40".into());
        assert_eq!(queue.take(), Batch::Payload("0{}\x1e40".to_owned()));
        assert_eq!(queue.take(), Batch::Empty);
    }

    #[test]
    fn a_second_concurrent_get_is_refused() {
        let queue = PollQueue::default();
        let first = queue.begin_poll().expect("the first GET");
        assert_eq!(queue.begin_poll().err(), Some(PollRefused::Overlap));
        drop(first);
        assert!(
            queue.begin_poll().is_ok(),
            "the next GET, after the first answered"
        );
    }

    #[test]
    fn a_full_queue_makes_the_writer_wait_until_a_get_takes() {
        let queue = PollQueue::default();
        let big: Utf8Bytes = "x".repeat(QUEUE_BYTES).into();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(queue.poll_room(&mut cx).is_ready());
        queue.push(big);
        assert!(queue.poll_room(&mut cx).is_pending());
        assert!(matches!(queue.take(), Batch::Payload(p) if p.len() == QUEUE_BYTES));
        assert!(queue.poll_room(&mut cx).is_ready());
    }

    #[test]
    fn one_get_takes_at_most_the_queue_size() {
        let queue = PollQueue::default();
        let half: Utf8Bytes = "y".repeat(QUEUE_BYTES / 2).into();
        for _ in 0..3 {
            queue.push(half.clone());
        }
        assert!(matches!(queue.take(), Batch::Payload(p) if p.len() == QUEUE_BYTES / 2));
        assert!(matches!(queue.take(), Batch::Payload(p) if p.len() == QUEUE_BYTES / 2));
        assert!(matches!(queue.take(), Batch::Payload(p) if p.len() == QUEUE_BYTES / 2));
    }

    #[test]
    fn an_engine_io_3_session_s_payloads_are_length_prefixed() {
        let queue = PollQueue::new(EngineVersion::V3);
        queue.push("0{}".into());
        queue.push("40".into());
        assert_eq!(queue.take(), Batch::Payload("3:0{}2:40".to_owned()));
        queue.close();
        assert_eq!(queue.take(), Batch::Payload("1:1".to_owned()));
    }

    #[tokio::test]
    async fn a_handshake_waits_for_the_connect_or_the_end_of_the_session() {
        let queue = std::sync::Arc::new(PollQueue::new(EngineVersion::V3));
        queue.push("0{}".into());
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.holds(2).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one packet is not the connect");
        queue.push("40".into());
        waiting.await.expect("woken by the connect");
        assert_eq!(queue.take(), Batch::Payload("3:0{}2:40".to_owned()));

        let ended = PollQueue::new(EngineVersion::V3);
        ended.push("0{}".into());
        ended.close();
        ended.holds(2).await;
    }

    #[test]
    fn only_a_pending_get_with_nothing_to_take_is_released_with_a_noop() {
        let queue = PollQueue::default();
        assert!(!queue.release_pending_poll(), "no GET pending");
        let pending = queue.begin_poll().expect("a GET");
        queue.push("41".into());
        assert!(
            !queue.release_pending_poll(),
            "the GET has a packet to take"
        );
        assert_eq!(queue.take(), Batch::Payload("41".to_owned()));
        assert!(queue.release_pending_poll());
        assert_eq!(queue.take(), Batch::Payload("6".to_owned()));
        drop(pending);
    }

    #[test]
    fn a_closed_session_gives_what_is_left_then_close() {
        let queue = PollQueue::default();
        queue.push("41".into());
        queue.close();
        assert_eq!(queue.take(), Batch::Payload("41".to_owned()));
        assert_eq!(queue.take(), Batch::Payload("1".to_owned()));
    }
}
