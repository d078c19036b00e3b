//! The [`Dialect`] trait and one codec module per dialect. Each codec is stateless: whatever a
//! connection must remember (its room, for socket.io and raw) lives in the dialect's `State`,
//! owned by the session and passed in.

use std::borrow::Borrow;

use serde::{Deserialize, Serialize};

use crate::{DecodeError, Event};

pub mod antmedia;
mod common;
pub(crate) mod fast;
mod json;
pub mod raw;
pub mod socketio;

pub use json::parse_object;

/// The three dialects the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DialectKind {
    /// Ant Media JSON over WebSocket at `/{app}/websocket`.
    Antmedia,
    /// socket.io `msg` relay of the SimpleP2P tutorial.
    Socketio,
    /// JSON or opaque text frames over a plain WebSocket at `/ws/{room}`.
    Raw,
}

impl DialectKind {
    /// The lowercase name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DialectKind::Antmedia => "antmedia",
            DialectKind::Socketio => "socketio",
            DialectKind::Raw => "raw",
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
