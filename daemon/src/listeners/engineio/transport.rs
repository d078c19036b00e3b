//! The socket a long-polling session's loop reads and writes, so that the one session loop
//! (`session::run_websocket`) serves it as it serves a WebSocket: what the client POSTs comes
//! out as text frames, what the session writes goes into the [`PollQueue`] its GETs drain.
//! After the upgrade, the same object carries the WebSocket the client moved to: it first writes
//! there what the GETs had not collected, then passes every read and write through.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::{Sink, Stream};
use switchboard_protocol::dialects::engineio::payload3::{self, PayloadError};
use switchboard_protocol::dialects::engineio::{EngineVersion, polling};
use tokio::sync::mpsc;

use super::budget::Held;
use super::post3::Undelivered;
use super::queue::PollQueue;

/// A `Sink` step of the WebSocket under the transport (its `poll_flush` or `poll_close`).
type WsPoll = fn(Pin<&mut WebSocket>, &mut Context<'_>) -> Poll<Result<(), axum::Error>>;

/// What reaches a polling session from outside its loop.
#[derive(Debug)]
pub enum Inbound {
    /// The body of an engine.io 4 POST (checked against the size limit already): its packets,
    /// in order, with the bytes it holds under the POST budget (none for an empty chunked body).
    Payload(Bytes, Option<Held>),
    /// Packets of an engine.io 3 POST, split as its body is read (each checked against the size
    /// limit before it was buffered), with the bytes they hold under the POST budget (none for
    /// a chunked body that brought no bytes).
    Packets(Vec<Bytes>, Option<Held>),
    /// An engine.io 3 POST found no room in the POST budget within `write_timeout_secs`.
    BudgetFull,
    /// An engine.io 3 POST whose framing does not parse (what came before it was delivered).
    BadPayload(payload3::PayloadError),
    /// A POST above the size limit (its announced or counted length): refused before it was read
    /// whole.
    TooLarge(usize),
    /// The client sent a request that breaks engine.io's rules (a second GET while one is
    /// pending, a second POST while one is being read).
    Overlap(&'static str),
    /// The client finished the upgrade ([`PollQueue::hand_over`]): what it POSTed before came
    /// first, what it sends from now on comes over the WebSocket.
    Upgraded,
}

/// Errors a polling session's reads report, worded as tungstenite words the WebSocket's, so
/// that the session loop classifies them the same way (`session::is_too_large`,
/// `session::is_invalid_utf8`).
#[derive(Debug, thiserror::Error)]
pub enum PollingError {
    /// A POST above the size limit.
    #[error("Space limit exceeded: Message too long: {0} bytes")]
    TooLarge(usize),
    /// A packet that is not UTF-8.
    #[error("UTF-8 encoding error in a polling packet")]
    InvalidUtf8,
    /// A request that breaks engine.io's rules.
    #[error("engine.io protocol error: {0}")]
    Overlap(&'static str),
    /// A packet engine.io or socket.io cannot parse.
    #[error("malformed engine.io or socket.io packet")]
    Malformed,
    /// An engine.io 3 payload whose length prefixes do not parse.
    #[error("malformed engine.io payload: {0}")]
    Payload(#[from] payload3::PayloadError),
    /// An engine.io 3 POST that found no room in its address's (or the gateway's) budget of
    /// undelivered POST bytes in time.
    #[error("no room for an engine.io 3 POST in the budget of undelivered bytes")]
    BudgetFull,
}

impl PollingError {
    /// The polling error a read failed with, if it is one.
    pub fn of(error: &axum::Error) -> Option<&PollingError> {
        std::error::Error::source(error)?.downcast_ref()
    }

    /// The session end reason of an error that ends the session only a polling transport has
    /// (the others end it as a WebSocket's read errors do); it is counted by that reason.
    pub fn end_reason(&self) -> Option<&'static str> {
        match self {
            PollingError::Overlap(_) => Some("concurrent polls"),
            PollingError::Malformed | PollingError::Payload(_) => Some("malformed packet"),
            PollingError::BudgetFull => Some("post budget full"),
            PollingError::TooLarge(_) | PollingError::InvalidUtf8 => None,
        }
    }
}

/// A long-polling session's socket, then its WebSocket after the upgrade.
#[derive(Debug)]
pub struct EngineTransport {
    /// How POST bodies are framed.
    version: EngineVersion,
    /// What only long-polling needs, dropped once the upgrade is done ([`Inbound::Upgraded`]).
    polling: Option<PollingSide>,
    /// The rest of the last POST's payload.
    payload: Bytes,
    /// Whether an empty packet is still to be read from it (it ended with a separator).
    empty_next: bool,
    /// The packets of the last engine.io 3 POST not read yet (its length prefixes are parsed
    /// when it arrives: a broken one refuses the whole payload).
    packets3: VecDeque<Bytes>,
    /// What the packets not read yet (engine.io 3's, or the rest of the engine.io 4 payload)
    /// hold under the POST budget, given back as they are read (all of it when the session
    /// ends and this is dropped).
    held: Option<Held>,
    /// The WebSocket, once upgraded: writes go there at once.
    ws: Option<Box<WebSocket>>,
    /// Whether reads come from the WebSocket: once every POST sent before the upgrade was read.
    reads_on_ws: bool,
    /// Packets the GETs had not collected at the upgrade, written to the WebSocket first.
    backlog: VecDeque<Utf8Bytes>,
    /// Whether the backlog was written but not flushed yet.
    unflushed: bool,
}

/// The long-polling side of a session: its POSTs, the queue its GETs drain, and engine.io 3's
/// count of what its POSTs brought. Held until the upgrade is done, then dropped with the
/// session's registry entry (`engineio::probe`): kept, the inbound channel, the queue and its
/// share of the registry made an upgraded session much larger than one that opened on a
/// WebSocket (BENCHMARKS.md, "Lean idle sessions", fifth step).
#[derive(Debug)]
struct PollingSide {
    inbound: mpsc::Receiver<Inbound>,
    queue: Arc<PollQueue>,
    /// Counts the engine.io 3 packets taken, which lets the client's next POST in.
    undelivered: Arc<Undelivered>,
}

impl EngineTransport {
    /// The socket of a session whose POSTs and upgrade arrive on `inbound` and whose writes go
    /// to `queue`.
    pub fn new(
        version: EngineVersion,
        inbound: mpsc::Receiver<Inbound>,
        queue: Arc<PollQueue>,
        undelivered: Arc<Undelivered>,
    ) -> Self {
        EngineTransport {
            version,
            packets3: VecDeque::new(),
            held: None,
            polling: Some(PollingSide {
                inbound,
                queue,
                undelivered,
            }),
            payload: Bytes::new(),
            empty_next: false,
            ws: None,
            reads_on_ws: false,
            backlog: VecDeque::new(),
            unflushed: false,
        }
    }

    /// The next packet of the current payload, as the message a WebSocket would have read.
    fn next_packet(&mut self) -> Option<Result<Message, axum::Error>> {
        let packet = match self.version {
            EngineVersion::V3 => {
                let packet = self.packets3.pop_front()?;
                if let Some(held) = self.held.as_mut() {
                    held.release(packet.len());
                }
                if let Some(polling) = &self.polling {
                    polling.undelivered.taken(packet.len());
                }
                packet
            }
            EngineVersion::V4 => self.next_packet4()?,
        };
        if polling::is_binary(&packet) {
            return Some(Ok(Message::Binary(packet)));
        }
        Some(text(packet).and_then(|message| match &message {
            Message::Text(t) if !polling::is_well_formed(t.as_str()) => {
                Err(axum::Error::new(PollingError::Malformed))
            }
            _ => Ok(message),
        }))
    }

    /// The next packet of the current v4 payload (`\x1e`-separated).
    fn next_packet4(&mut self) -> Option<Bytes> {
        if self.payload.is_empty() && !std::mem::take(&mut self.empty_next) {
            return None;
        }
        let end = polling::packets(&self.payload).next().map_or(0, |r| r.end);
        // Copied out: a slice would keep the whole body (up to `maxPayload`) alive for as long
        // as the packet waits in a receiver's queue, past what the POST budget counts.
        let packet = Bytes::copy_from_slice(&self.payload[..end]);
        let _ = self.payload.split_to(end);
        if !self.payload.is_empty() {
            // The separator; a payload that ends with one has an empty last packet.
            let _ = self.payload.split_to(1);
            self.empty_next = self.payload.is_empty();
        }
        if self.payload.is_empty() && !self.empty_next {
            // The body is read whole: its block goes, and its bytes back to the budget.
            self.payload = Bytes::new();
            self.held = None;
        }
        Some(packet)
    }

    /// Writes the backlog to the WebSocket and flushes it.
    fn drain_backlog(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !self.backlog.is_empty() {
            ready!(Pin::new(&mut **ws).poll_ready(cx))?;
            if let Some(packet) = self.backlog.pop_front() {
                Pin::new(&mut **ws).start_send(Message::Text(packet))?;
                self.unflushed = true;
            }
        }
        if self.unflushed {
            ready!(Pin::new(&mut **ws).poll_flush(cx))?;
            self.unflushed = false;
            // Its block is not needed again: nothing is queued on polling after the upgrade.
            self.backlog = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }

    /// A flush or close (`last`) of the sink: on polling there is nothing more to do (queued
    /// packets are written: the next GET takes them); after an upgrade the backlog queued on
    /// polling goes out first, then `last` runs on the WebSocket.
    fn poll_on_ws(&mut self, cx: &mut Context<'_>, last: WsPoll) -> Poll<Result<(), axum::Error>> {
        self.adopt();
        if self.ws.is_none() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.drain_backlog(cx))?;
        match self.ws.as_mut() {
            Some(ws) => last(Pin::new(&mut **ws), cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The upgrade is done and every POST sent before it was read: what only long-polling
    /// needed is dropped, so that an upgraded session holds what one opened on a WebSocket
    /// holds (its registry entry goes in `engineio::probe`).
    fn drop_polling(&mut self) {
        self.polling = None;
        self.payload = Bytes::new();
        self.packets3 = VecDeque::new();
        self.held = None;
    }

    /// Moves to the WebSocket of a finished upgrade, if there is one and it is not taken yet.
    fn adopt(&mut self) {
        if self.ws.is_none()
            && let Some(polling) = &self.polling
            && let Some((ws, left)) = polling.queue.adopt()
        {
            self.ws = Some(ws);
            self.backlog = left;
        }
    }
}

fn text(packet: Bytes) -> Result<Message, axum::Error> {
    Utf8Bytes::try_from(packet)
        .map(Message::Text)
        .map_err(|_| axum::Error::new(PollingError::InvalidUtf8))
}

impl Stream for EngineTransport {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.adopt();
        loop {
            if this.ws.is_some() {
                // The backlog goes out before anything this session writes later; a pending
                // flush wakes this task again.
                if let Poll::Ready(Err(e)) = this.drain_backlog(cx) {
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if this.reads_on_ws
                && let Some(ws) = this.ws.as_mut()
            {
                return Pin::new(&mut **ws).poll_next(cx);
            }
            if let Some(packet) = this.next_packet() {
                return Poll::Ready(Some(packet));
            }
            let Some(polling) = this.polling.as_mut() else {
                // Upgraded: reads come from the WebSocket (above); there is none when the
                // session's transport was never handed one, which cannot happen once upgraded.
                return Poll::Ready(None);
            };
            let error = match ready!(polling.inbound.poll_recv(cx)) {
                None => return Poll::Ready(None),
                Some(Inbound::Payload(payload, held)) => {
                    // An empty body is one empty packet, which the decoder refuses.
                    this.empty_next = payload.is_empty();
                    this.payload = payload;
                    // The last payload was read whole before this one was taken, and gave its
                    // bytes back then: this one's are all that is held.
                    this.held = held;
                    continue;
                }
                Some(Inbound::Packets(packets, held)) => {
                    this.packets3.extend(packets);
                    match (this.held.as_mut(), held) {
                        (Some(all), Some(held)) => all.merge(held),
                        (None, held) => this.held = held,
                        (Some(_), None) => {}
                    }
                    continue;
                }
                Some(Inbound::BudgetFull) => PollingError::BudgetFull,
                Some(Inbound::BadPayload(PayloadError::TooLarge(len))) => {
                    PollingError::TooLarge(len)
                }
                Some(Inbound::BadPayload(e)) => PollingError::Payload(e),
                Some(Inbound::Upgraded) => {
                    this.adopt();
                    this.reads_on_ws = this.ws.is_some();
                    if this.reads_on_ws {
                        this.drop_polling();
                    }
                    continue;
                }
                Some(Inbound::TooLarge(len)) => PollingError::TooLarge(len),
                Some(Inbound::Overlap(what)) => PollingError::Overlap(what),
            };
            return Poll::Ready(Some(Err(axum::Error::new(error))));
        }
    }
}

impl Sink<Message> for EngineTransport {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = &mut *self;
        this.adopt();
        match this.ws.is_some() {
            true => {
                ready!(this.drain_backlog(cx))?;
                match this.ws.as_mut() {
                    Some(ws) => Pin::new(&mut **ws).poll_ready(cx),
                    None => Poll::Ready(Ok(())),
                }
            }
            false => match &this.polling {
                Some(polling) => polling.queue.poll_room(cx).map(Ok),
                None => Poll::Ready(Ok(())),
            },
        }
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
        self.adopt();
        if let Some(ws) = self.ws.as_mut() {
            return Pin::new(&mut **ws).start_send(message);
        }
        let Some(side) = &self.polling else {
            return Ok(());
        };
        match message {
            Message::Text(packet) => side.queue.push(packet),
            // engine.io's own close: the client stops polling.
            Message::Close(_) => side.queue.push(Utf8Bytes::from_static(polling::CLOSE)),
            // engine.io keeps the session alive with its own pings; nothing else is sent.
            Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => {}
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_on_ws(cx, |ws, cx| ws.poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_on_ws(cx, |ws, cx| ws.poll_close(cx))
    }
}
