//! Ant Media dialect: JSON text frames at `/{app}/websocket`, as spoken by the
//! `@antmedia/webrtc_adaptor` SDK in peer-to-peer mode (`docs/protocol/antmedia.md` 4.1).
//!
//! - `decode` turns a client command into an [`Event`] (conference commands into
//!   [`Event::Conference`], stamped with the connection's application), answers `ping`
//!   directly, and refuses the media commands no server here can act on with
//!   [`DecodeError::Unsupported`].
//! - `encode` renders events as the frames AMS would send; keys come out in a fixed order.
//! - Relaying to another Ant peer keeps `takeCandidate` and `peerMessageCommand` frames
//!   byte-identical; `takeConfiguration` must gain `"idMapping":{}`, which is spliced into the
//!   sender's frame when it has the SDK's shape, and re-encoded otherwise.

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

    fn forward(state: &AntState, original: &str, event: &Event) -> Option<String> {
        match event {
            _ if <Self as crate::dialects::TextFrames>::forwards_frame(state, event) => {
                Some(original.to_owned())
            }
            // takeConfiguration must gain "idMapping":{} (antmedia.md 4.1-2).
            Event::Description(d) => {
                with_id_mapping(original, d).or_else(|| Self::encode(state, event))
            }
            _ => Self::encode(state, event),
        }
    }
}

/// The sender's `takeConfiguration` frame with `,"idMapping":{}` added, when the frame is exactly
/// what [`encode`] would write without it: `command`, `streamId`, `type` and `sdp` in that order
/// (as the SDK sends them), no whitespace, and an `sdp` literal with no quote inside, so that
/// the literal runs to the final `"}` and no other key can hide in the frame. Anything else
/// (`None`) is re-encoded.
///
/// Why: re-escaping the 6 KB SDP was the largest single cost of an Ant-to-Ant relay (13% of the
/// gateway's CPU samples under `switchboard-loadgen throughput --dialect ant`); checking for a
/// quote is a byte search.
fn with_id_mapping(original: &str, d: &crate::event::Description) -> Option<String> {
    let room = serde_json::to_string(&d.room).ok()?;
    let rest = original
        .strip_prefix(r#"{"command":"takeConfiguration","streamId":"#)?
        .strip_prefix(room.as_str())?
        .strip_prefix(r#","type":""#)?
        .strip_prefix(d.kind.as_str())?
        .strip_prefix(r#"","sdp":""#)?;
    let sdp_literal = rest.strip_suffix(r#""}"#)?;
    // memchr's search is vectorized; `<[u8]>::contains` goes a word at a time, and was 2.4%
    // of the gateway's samples under Ant relay load.
    if memchr::memchr(b'"', sdp_literal.as_bytes()).is_some() {
        return None;
    }
    let head = &original[..original.len() - 1];
    let mut frame = String::with_capacity(original.len() + ID_MAPPING_TAIL.len());
    frame.push_str(head);
    frame.push_str(ID_MAPPING_TAIL);
    Some(frame)
}

/// What [`with_id_mapping`] puts in place of the frame's closing brace.
const ID_MAPPING_TAIL: &str = r#","idMapping":{}}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Description, SdpKind};

    fn offer(sdp: &str) -> Description {
        Description {
            room: "room1".into(),
            kind: SdpKind::Offer,
            sdp: sdp.into(),
        }
    }

    #[test]
    fn the_sdk_shape_is_spliced_and_nothing_else() {
        let sdk =
            r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\n"}"#;
        assert_eq!(
            with_id_mapping(sdk, &offer("v=0\r\n")).as_deref(),
            Some(
                r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v=0\r\n","idMapping":{}}"#
            )
        );
        for other in [
            r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"a\"b"}"#,
            r#"{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"v","x":"y"}"#,
            r#"{"command":"takeConfiguration","streamId":"room2","type":"offer","sdp":"v=0\r\n"}"#,
            r#"{"command":"takeConfiguration","streamId":"room1","type":"answer","sdp":"v=0\r\n"}"#,
            r#"{"command":"takeConfiguration", "streamId":"room1","type":"offer","sdp":"v=0\r\n"}"#,
        ] {
            assert_eq!(with_id_mapping(other, &offer("v=0\r\n")), None, "{other}");
        }
    }
}
