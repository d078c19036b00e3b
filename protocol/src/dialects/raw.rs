//! Raw WebSocket dialect (STUB: being written).
use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, Event};

/// Raw JSON/opaque text frames at `/ws/{room}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

/// Per-connection raw state: the room from the URL path.
#[derive(Debug, Default)]
pub struct RawState {
    /// The room this connection is in.
    pub room: String,
}

impl Dialect for Raw {
    type Wire = String;
    type State = RawState;
    const KIND: DialectKind = DialectKind::Raw;
    fn decode(_: &mut RawState, _: &String) -> Result<Decoded<String>, DecodeError> {
        Ok(Decoded::Ignore)
    }
    fn encode(_: &RawState, _: &Event) -> Option<String> {
        None
    }
}
