//! socket.io SimpleP2P dialect (STUB: being written).
use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, Event};

/// socket.io `msg` relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketIo;

/// One socket.io event as socketioxide delivers it: the event name and its first argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SioMessage {
    /// Event name, e.g. `msg`.
    pub event: String,
    /// The first argument.
    pub data: serde_json::Value,
}

/// Per-connection socket.io state: the room from the handshake or the listener.
#[derive(Debug, Default)]
pub struct SioState {
    /// The room this socket is in.
    pub room: String,
}

impl Dialect for SocketIo {
    type Wire = SioMessage;
    type State = SioState;
    const KIND: DialectKind = DialectKind::Socketio;
    fn decode(_: &mut SioState, _: &SioMessage) -> Result<Decoded<SioMessage>, DecodeError> {
        Ok(Decoded::Ignore)
    }
    fn encode(_: &SioState, _: &Event) -> Option<SioMessage> {
        None
    }
}
