//! Ant Media dialect (STUB: being written).
use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, Event};

/// Ant Media JSON over WebSocket.
#[derive(Debug, Clone, Copy, Default)]
pub struct AntMedia;

/// Per-connection Ant Media state (none needed for P2P).
#[derive(Debug, Default)]
pub struct AntState;

impl Dialect for AntMedia {
    type Wire = String;
    type State = AntState;
    const KIND: DialectKind = DialectKind::Antmedia;
    fn decode(_: &mut AntState, _: &String) -> Result<Decoded<String>, DecodeError> {
        Ok(Decoded::Ignore)
    }
    fn encode(_: &AntState, _: &Event) -> Option<String> {
        None
    }
}
