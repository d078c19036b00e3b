//! Ant Media dialect: JSON text frames at `/{app}/websocket`, as spoken by the
//! `@antmedia/webrtc_adaptor` SDK in peer-to-peer mode (`../shared/protocol/antmedia.md` 4.1).
//!
//! - `decode` turns a client command into an [`Event`] (conference commands into
//!   [`Event::Conference`], stamped with the connection's application), answers `ping`
//!   directly, and refuses the media commands no server here can act on with
//!   [`DecodeError::Unsupported`].
//! - `encode` renders events as the frames AMS would send; keys come out in a fixed order.
//! - Relaying to another Ant peer keeps `takeCandidate` and `peerMessageCommand` frames
//!   byte-identical and re-encodes `takeConfiguration`, which must gain `"idMapping":{}`.

mod conference;
pub(crate) mod decode;
mod encode;
mod replies;

use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, Event};

/// Ant Media JSON over WebSocket.
#[derive(Debug, Clone, Copy, Default)]
pub struct AntMedia;

/// Per-connection Ant Media state. P2P needs none (every command names its stream); conference
/// requests carry the application the peer connected to, because stream security is per
/// application.
#[derive(Debug, Clone, Default)]
pub struct AntState {
    /// The `{app}` of `/{app}/websocket`.
    pub app: String,
}

impl Dialect for AntMedia {
    type Wire = String;
    type State = AntState;
    const KIND: DialectKind = DialectKind::Antmedia;

    fn decode(state: &mut AntState, wire: &String) -> Result<Decoded<String>, DecodeError> {
        decode::decode(wire, &state.app)
    }

    fn encode(_: &AntState, event: &Event) -> Option<String> {
        encode::encode(event)
    }

    fn forward(state: &AntState, original: &str, event: &Event) -> Option<String> {
        match event {
            // The SDK's own frames already carry everything the partner needs.
            Event::Candidate(_) | Event::PeerMessage(_) => Some(original.to_owned()),
            // takeConfiguration must gain "idMapping":{} (antmedia.md 4.1-2).
            _ => Self::encode(state, event),
        }
    }
}
