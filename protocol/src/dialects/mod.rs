//! The [`Dialect`] trait and one codec module per dialect. Each codec is stateless: whatever a
//! connection must remember (its room, for socket.io and raw) lives in the dialect's `State`,
//! owned by the session and passed in.

use std::borrow::{Borrow, Cow};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{DecodeError, Event};

#[cfg(any(test, feature = "testing"))]
pub(crate) mod agreement;
pub mod antmedia;
pub(crate) mod common;
pub mod engineio;
#[cfg(test)]
mod forward_tests;
mod json;
pub mod peerjs;
pub mod raw;
mod scan;
pub mod socketio;

pub use json::parse_object;

/// The dialects the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectKind {
    /// Ant Media JSON over WebSocket at `/{app}/websocket`.
    Antmedia,
    /// socket.io `msg` relay of the SimpleP2P tutorial.
    Socketio,
    /// JSON or opaque text frames over a plain WebSocket at `/ws/{room}`.
    Raw,
    /// The PeerJS server protocol at `/peerjs?key=…&id=…&token=…`.
    Peerjs,
}

impl DialectKind {
    /// The lowercase name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DialectKind::Antmedia => "antmedia",
            DialectKind::Socketio => "socketio",
            DialectKind::Raw => "raw",
            DialectKind::Peerjs => "peerjs",
        }
    }
}

impl std::fmt::Display for DialectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decoding one inbound wire message produced, apart from errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<W> {
    /// An event for the bus.
    Event(Event),
    /// A reply the session sends straight back without involving the bus (Ant `ping`).
    Reply(W),
    /// Nothing to do (a keep-alive or a message the dialect deliberately drops).
    Ignore,
    /// The peer ends the session (socket.io's disconnect packet, engine.io's close packet).
    Close,
}

/// A signaling dialect: a pure codec between its wire messages and [`Event`]s.
pub trait Dialect {
    /// The unit on the wire: a text frame for `antmedia` and `raw`, an event name with its
    /// argument for `socketio`.
    type Wire: Borrow<Self::Input>;
    /// What [`Self::decode`] reads: the wire unit, or a borrowed form of it (`str` for text
    /// frames, so that a session can decode the frame where it arrived, without a copy).
    type Input: ?Sized;
    /// Per-connection state, owned by the session.
    type State: Default + Send;
    /// Which dialect this is.
    const KIND: DialectKind;

    /// Turns one inbound wire message into an event, a direct reply, or nothing.
    fn decode(
        state: &mut Self::State,
        wire: &Self::Input,
    ) -> Result<Decoded<Self::Wire>, DecodeError>;

    /// Renders an event for a peer of this dialect; `None` when the dialect has no rendering for
    /// it (for example an Ant Media `start` for a socket.io peer).
    fn encode(state: &Self::State, event: &Event) -> Option<Self::Wire>;

    /// Renders a relayed event for a peer of the *sender's own* dialect, given the sender's wire
    /// text (`original`: the frame, or the socket.io `msg` string). Dialects whose contract is
    /// byte-identical forwarding (socket.io `msg`, raw frames) return it unchanged. Default:
    /// re-encode the event.
    fn forward(state: &Self::State, original: &str, event: &Event) -> Option<Self::Wire> {
        let _ = original;
        Self::encode(state, event)
    }
}

/// A dialect spoken in WebSocket text frames, with what a connection needs besides decoding and
/// encoding: a first frame, a keepalive, the acknowledgement of a join, a last frame, and which
/// part of a frame a relay forwards. The defaults are those of a plain JSON dialect (`antmedia`,
/// `raw`); socket.io over engine.io frames ([`engineio::SocketIoWs`]) sets them all.
pub trait TextFrames: Dialect<Wire = String, Input = str> {
    /// Frames the server sends as soon as the connection is open (engine.io's open packet).
    fn greeting(state: &Self::State) -> Option<String> {
        let _ = state;
        None
    }

    /// Whether `frame` counts against the per-connection message rate. Every frame does, except
    /// a transport's own housekeeping: socket.io servers count events, not engine.io pongs or
    /// namespace connects.
    fn rate_limited(frame: &str) -> bool {
        let _ = frame;
        true
    }

    /// The server's keepalive, when the dialect has one.
    fn keepalive(state: &Self::State) -> Option<Keepalive> {
        let _ = state;
        None
    }

    /// [`Dialect::decode`], and the part of `frame` that a peer of the same dialect receives
    /// verbatim as [`Dialect::forward`]'s `original`: the whole frame by default, the `msg`
    /// argument's literal for socket.io (`None` when nothing in the frame is forwarded).
    #[allow(clippy::type_complexity)]
    fn decode_relayable<'a>(
        state: &mut Self::State,
        frame: &'a str,
    ) -> Result<(Decoded<String>, Option<Cow<'a, str>>), DecodeError> {
        Self::decode(state, frame).map(|decoded| (decoded, Some(Cow::Borrowed(frame))))
    }

    /// Whether `frame` is what [`Dialect::forward`] renders from its part `frame[start..end]`
    /// (the original [`Self::decode_relayable`] cut from it), given that the original is
    /// forwarded unchanged ([`Self::forwards_frame`]): for a plain JSON dialect, when the
    /// original is the whole frame.
    fn forward_is_frame(frame: &str, start: usize, end: usize) -> bool {
        start == 0 && end == frame.len()
    }

    /// Whether [`Dialect::forward`] to a receiver in `state` passes `event`'s original on
    /// unchanged. When it does, and the sender's frame is that forward
    /// ([`Self::forward_is_frame`]), the gateway sends the sender's frame itself: no copy is
    /// rendered per receiver. Each dialect's `forward` is written in terms of this, so the two
    /// cannot disagree.
    fn forwards_frame(state: &Self::State, event: &Event) -> bool {
        let _ = (state, event);
        false
    }

    /// The frame for a signal of a peer of this dialect that another cluster node forwards as
    /// a `msg` literal ([`crate::cluster::Forwarding::Literal`], socket.io only): what
    /// [`Dialect::forward`] renders from that original for a signal it passes on unchanged.
    fn forward_literal(state: &Self::State, literal: &str) -> Option<String> {
        let _ = state;
        Some(literal.to_owned())
    }

    /// The frame that tells the peer its join (decoded from one of its frames) was accepted,
    /// sent before anything the bus delivers to it: socket.io's connect acknowledgement.
    fn joined(state: &mut Self::State) -> Option<String> {
        let _ = state;
        None
    }

    /// The room `event` (decoded from one of the peer's frames) makes the peer join first, for a
    /// dialect whose peers address each signal to a room instead of joining it (PeerJS `dst`).
    /// The session joins it before dispatching the event when the peer is not in it yet.
    fn implied_join(state: &Self::State, event: &Event) -> Option<crate::Join> {
        let _ = (state, event);
        None
    }

    /// The last frame before the server closes the connection (socket.io's disconnect packet,
    /// which tells a client not to reconnect on its own).
    fn closing(state: &Self::State) -> Option<String> {
        let _ = state;
        None
    }
}

/// A server keepalive: the server sends `ping` `interval` after the peer last answered; a peer
/// that sends nothing for `timeout` after a ping is closed. Any frame counts as an answer.
/// Without a `ping` the peer is the one that pings (engine.io 3): a peer that sends nothing for
/// `interval` + `timeout` is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Time from the connection's start, or from the peer's answer to a ping, to the next ping.
    pub interval: Duration,
    /// How long the peer has to answer a ping.
    pub timeout: Duration,
    /// The ping frame; `None` when the peer pings and the server only answers.
    pub ping: Option<&'static str>,
}
