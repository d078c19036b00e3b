//! Ant Media dialect: JSON text frames at `/{app}/websocket`, as spoken by the
//! `@antmedia/webrtc_adaptor` SDK in peer-to-peer mode (`docs/protocol/antmedia.md` 4.1).
//!
//! - `decode` turns a client command into an [`Event`] (conference commands into
//!   [`Event::Conference`], stamped with the connection's application), answers `ping`
//!   directly, and refuses the media commands no server here can act on with
//!   [`DecodeError::Unsupported`]. The SDK's `takeConfiguration` and `takeCandidate` are read
//!   in place, their SDP and candidate line kept as the sender's JSON text.
//! - `encode` renders events as the frames AMS would send; keys come out in a fixed order.
//! - Relaying to another Ant peer keeps `takeCandidate` and `peerMessageCommand` frames
//!   byte-identical; `takeConfiguration` must gain `"idMapping":{}`, so it is rendered, with
//!   the sender's SDP literal copied in.

mod conference;
pub(crate) mod decode;
mod encode;
mod fields;
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

/// A plain JSON dialect: no greeting, keepalive or closing frame; relays forward whole frames.
impl crate::dialects::TextFrames for AntMedia {
    /// The SDK's own candidate and peer-message frames already carry everything the partner
    /// needs; a description gains `idMapping` ([`with_id_mapping`]).
    fn forwards_frame(_: &AntState, event: &Event) -> bool {
        matches!(event, Event::Candidate(_) | Event::PeerMessage(_))
    }
}

impl Dialect for AntMedia {
    type Wire = String;
    type Input = str;
    type State = AntState;
    const KIND: DialectKind = DialectKind::Antmedia;

    fn decode(state: &mut AntState, wire: &str) -> Result<Decoded<String>, DecodeError> {
        decode::decode(wire, &state.app)
    }

    fn encode(_: &AntState, event: &Event) -> Option<String> {
        encode::encode(event)
    }

    /// Candidates and peer messages go on as the sender wrote them. A description is
    /// rendered: `takeConfiguration` must gain `"idMapping":{}` (`docs/dialect-spec.md`), and
    /// its SDP is written as the sender's literal, so rendering costs a copy, not an unescape
    /// and an escape.
    fn forward(state: &AntState, original: &str, event: &Event) -> Option<String> {
        if <Self as crate::dialects::TextFrames>::forwards_frame(state, event) {
            Some(original.to_owned())
        } else {
            Self::encode(state, event)
        }
    }
}
