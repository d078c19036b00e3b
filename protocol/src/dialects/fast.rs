//! Typed fast paths for the frames that carry nearly all relay traffic: offers, answers and
//! candidates in each dialect's usual shape.
//!
//! The general decoders read a frame into a `serde_json::Value` tree and then look fields up in
//! it, which allocates every key and copies the SDP twice; under relay load that was the largest
//! part of the gateway's own CPU per message. These paths deserialize the common shapes straight
//! into typed structs. They accept a frame only when it has exactly the expected fields with the
//! expected JSON types (`deny_unknown_fields`, strict field types, no escapes in short
//! identifiers); anything else, including every malformed or unusual frame, returns `None` and
//! goes to the general decoder. So for a frame a fast path accepts, both give the same event:
//! the tests below hold every accepted shape against the general decoder, and the `fast_paths`
//! fuzz target ([`check_agreement`] on arbitrary input) does the same for any frame.
//!
//! Each path first tries the exact shape its clients write, read by hand in one pass
//! ([`super::exact`]); these typed structs take the same frames in any key order or spacing.

use serde::Deserialize;

use crate::{Candidate, Description, Event, SdpKind};

/// `RTCSessionDescriptionInit` with an SDP (a rollback without one takes the general path).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionDescription<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    sdp: String,
}

/// `RTCIceCandidateInit` with a candidate string and, if present, typed mid and index.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IceCandidate {
    candidate: String,
    sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u32>,
    username_fragment: Option<String>,
}

impl IceCandidate {
    fn into_event(self, room: &str) -> Event {
        Event::Candidate(Candidate {
            room: room.to_owned(),
            candidate: self.candidate,
            sdp_mid: self.sdp_mid,
            sdp_mline_index: self.sdp_mline_index,
            username_fragment: self.username_fragment,
        })
    }
}

pub(super) fn description(room: &str, kind: &str, sdp: String) -> Option<Event> {
    Some(Event::Description(Description {
        room: room.to_owned(),
        kind: SdpKind::parse(kind)?,
        sdp,
    }))
}

/// Raw (simple-peer): `{"type":"offer"|…,"sdp":"…"}` or
/// `{"type":"candidate","candidate":{…}}`.
pub(crate) fn raw(room: &str, text: &str) -> Option<Event> {
    if let Some(event) = super::exact::raw(room, text) {
        return Some(event);
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Signal<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        sdp: Option<String>,
        candidate: Option<IceCandidate>,
    }
    let signal: Signal<'_> = serde_json::from_str(text).ok()?;
    match (signal.sdp, signal.candidate) {
        (Some(sdp), None) => description(room, signal.kind, sdp),
        (None, Some(candidate)) if signal.kind == "candidate" => Some(candidate.into_event(room)),
        _ => None,
    }
}

/// socket.io `msg` text (SimpleP2P): `{"sdp":{"type":…,"sdp":…}}` or `{"candidate":{…}}`.
pub(crate) fn socketio(room: &str, text: &str) -> Option<Event> {
    if let Some(event) = super::exact::socketio(room, text, super::exact::Escaping::Once) {
        return Some(event);
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Signal<'a> {
        #[serde(borrow)]
        sdp: Option<SessionDescription<'a>>,
        candidate: Option<IceCandidate>,
    }
    let signal: Signal<'_> = serde_json::from_str(text).ok()?;
    match (signal.sdp, signal.candidate) {
        (Some(d), None) => description(room, d.kind, d.sdp),
        (None, Some(candidate)) => Some(candidate.into_event(room)),
        _ => None,
    }
}

/// Ant Media: `takeConfiguration` `{command,streamId,type,sdp}` and `takeCandidate`
/// `{command,streamId,label,id,candidate}` as the SDK sends them. `valid_stream_id` is the Ant
/// decoder's own stream id rule; an id it refuses takes the general path (which says why).
pub(crate) fn antmedia(text: &str, valid_stream_id: fn(&str) -> bool) -> Option<Event> {
    if let Some(event) = super::exact::antmedia(text, valid_stream_id) {
        return Some(event);
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Command<'a> {
        #[serde(borrow)]
        command: &'a str,
        #[serde(borrow)]
        stream_id: &'a str,
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
        sdp: Option<String>,
        candidate: Option<String>,
        label: Option<u32>,
        id: Option<String>,
    }
    let c: Command<'_> = serde_json::from_str(text).ok()?;
    if c.stream_id.is_empty() || !valid_stream_id(c.stream_id) {
        return None;
    }
    match (c.command, c.kind, c.sdp, c.candidate) {
        ("takeConfiguration", Some(kind), Some(sdp), None)
            if c.label.is_none() && c.id.is_none() =>
        {
            description(c.stream_id, kind, sdp)
        }
        ("takeCandidate", None, None, Some(candidate)) => Some(Event::Candidate(Candidate {
            room: c.stream_id.to_owned(),
            candidate,
            sdp_mid: c.id,
            sdp_mline_index: c.label,
            username_fragment: None,
        })),
        _ => None,
    }
}

/// Runs every fast path on `text` and, where one accepts it, the general decoder of that
/// dialect too; `Err` names a dialect on which they disagree. For the differential fuzz target
/// and the tests.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn check_agreement(text: &str) -> Result<(), String> {
    use super::Decoded;
    fn event<W>(decoded: Result<Decoded<W>, crate::DecodeError>) -> Option<Event> {
        match decoded {
            Ok(Decoded::Event(e)) => Some(e),
            _ => None,
        }
    }
    const ROOM: &str = "room1";
    let valid = super::antmedia::decode::valid_stream_id;
    let checks = [
        (
            "raw",
            raw(ROOM, text),
            event(super::raw::decode_general(ROOM, text)),
        ),
        (
            "socketio",
            socketio(ROOM, text),
            event(super::socketio::decode_msg_general(ROOM, text)),
        ),
        (
            "antmedia",
            antmedia(text, valid),
            event(super::antmedia::decode::decode_general(text, "LiveApp")),
        ),
    ];
    for (dialect, fast, general) in checks {
        if fast.is_some() && fast != general {
            return Err(format!("{dialect}: fast {fast:?} != general {general:?}"));
        }
    }
    literal_agreement(text)?;
    // `text` as the socket.io literal its sender's `JSON.stringify` would make of it.
    let stringified = serde_json::to_string(text).map_err(|e| e.to_string())?;
    literal_agreement(&stringified)
}

/// Where the `msg` literal path accepts `literal`, it is one JSON string whose text the general
/// socket.io decoder reads as the same event.
#[cfg(any(test, feature = "testing"))]
fn literal_agreement(literal: &str) -> Result<(), String> {
    let Some(fast) = super::exact::socketio_literal("room1", literal) else {
        return Ok(());
    };
    let text = serde_json::from_str::<String>(literal)
        .map_err(|e| format!("literal path accepted a bad literal {literal:?}: {e}"))?;
    match super::socketio::decode_msg_general("room1", &text) {
        Ok(super::Decoded::Event(general)) if general == fast => Ok(()),
        general => Err(format!("literal: fast {fast:?} != general {general:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::antmedia::{AntMedia, AntState};
    use crate::dialects::raw::{Raw, RawState};
    use crate::dialects::socketio::decode_msg_text;
    use crate::dialects::{Decoded, Dialect};

    const SDP: &str = r#""v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=x:\"q\"\r\n""#;

    fn general_raw(text: &str) -> Option<Event> {
        let mut state = RawState {
            room: "r".to_owned(),
        };
        match Raw::decode(&mut state, text) {
            Ok(Decoded::Event(e)) => Some(e),
            _ => None,
        }
    }

    /// Frames the fast paths accept give what the general decoder gives; the others are left
    /// to it.
    #[test]
    fn every_fast_path_agrees_on_the_hot_frames_of_every_dialect() {
        let frames = [
            format!(r#"{{"type":"offer","sdp":{SDP}}}"#),
            format!(r#"{{"sdp":{{"type":"answer","sdp":{SDP}}}}}"#),
            format!(
                r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":{SDP}}}"#
            ),
            r#"{"command":"takeCandidate","streamId":"room1","label":1,"id":"1","candidate":"c"}"#
                .to_owned(),
            r#"{"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#.to_owned(),
            r#"{"type":"candidate","candidate":{"candidate":"c"}}"#.to_owned(),
        ];
        for text in &frames {
            assert_eq!(check_agreement(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn raw_fast_path_agrees_with_the_general_decoder() {
        let accepted = [
            format!(r#"{{"type":"offer","sdp":{SDP}}}"#),
            format!(r#"{{"sdp":{SDP},"type":"answer"}}"#),
            format!(r#"{{"type":"rollback","sdp":{SDP}}}"#),
            r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMLineIndex":0,"sdpMid":"0"}}"#.to_owned(),
            r#"{"type":"candidate","candidate":{"candidate":"","sdpMLineIndex":null,"sdpMid":null,"usernameFragment":"u"}}"#.to_owned(),
        ];
        for text in &accepted {
            let fast = raw("r", text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, general_raw(text), "{text}");
        }
        let declined = [
            r#"{"type":"rollback"}"#.to_owned(),
            format!(r#"{{"type":"offer","sdp":{SDP},"extra":1}}"#),
            format!(r#"{{"type":"bogus","sdp":{SDP}}}"#),
            format!(r#"{{"type":"offer","sdp":{SDP},"sdp":{SDP}}}"#),
            r#"{"type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":"1","sdpMid":0}}"#
                .to_owned(),
            r#"{"type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":-1}}"#.to_owned(),
            r#"{"type":"candidate","candidate":null}"#.to_owned(),
            r#"{"type":"candidate","candidate":"c","sdpMid":"0"}"#.to_owned(),
            r#"{"type":"off\u0065r","sdp":"x"}"#.to_owned(),
            r#"{"renegotiate":true}"#.to_owned(),
            "[1]".to_owned(),
        ];
        for text in &declined {
            assert_eq!(raw("r", text), None, "{text}");
        }
    }

    #[test]
    fn socketio_fast_path_agrees_with_the_general_decoder() {
        let accepted = [
            format!(r#"{{"sdp":{{"type":"offer","sdp":{SDP}}}}}"#),
            // A null field is an absent one, for both.
            format!(r#"{{"sdp":{{"type":"offer","sdp":{SDP}}},"candidate":null}}"#),
            r#"{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"dK+1"}}"#.to_owned(),
        ];
        for text in &accepted {
            let fast = socketio("r", text);
            assert!(fast.is_some(), "{text}");
            let general = match decode_msg_text("r", text) {
                Ok(Decoded::Event(e)) => Some(e),
                _ => None,
            };
            assert_eq!(fast, general, "{text}");
        }
        let declined = [
            r#"{"sdp":{"type":"rollback"}}"#.to_owned(),
            r#"{"candidate":{"candidate":"c","sdpMid":1}}"#.to_owned(),
            r#"{"candidate":null}"#.to_owned(),
            r#"{"hello":1}"#.to_owned(),
        ];
        for text in &declined {
            assert_eq!(socketio("r", text), None, "{text}");
        }
    }

    #[test]
    fn antmedia_fast_path_agrees_with_the_general_decoder() {
        let accepted = [
            format!(
                r#"{{"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":{SDP}}}"#
            ),
            r#"{"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}"#.to_owned(),
        ];
        let valid = |id: &str| id.bytes().all(|b| b.is_ascii_alphanumeric());
        for text in &accepted {
            let fast = antmedia(text, valid);
            assert!(fast.is_some(), "{text}");
            let mut state = AntState::default();
            let general = match AntMedia::decode(&mut state, text) {
                Ok(Decoded::Event(e)) => Some(e),
                _ => None,
            };
            assert_eq!(fast, general, "{text}");
        }
        let declined = [
            format!(
                r#"{{"command":"takeConfiguration","streamId":"","type":"offer","sdp":{SDP}}}"#
            ),
            format!(
                r#"{{"command":"takeConfiguration","streamId":"a b","type":"offer","sdp":{SDP}}}"#
            ),
            format!(
                r#"{{"command":"takeConfiguration","streamId":"s","type":"offer","sdp":{SDP},"label":1}}"#
            ),
            r#"{"command":"takeCandidate","streamId":"s","label":"0","id":0,"candidate":"c"}"#
                .to_owned(),
            r#"{"command":"join","streamId":"s"}"#.to_owned(),
            r#"{"command":"ping"}"#.to_owned(),
        ];
        for text in &declined {
            assert_eq!(antmedia(text, valid), None, "{text}");
        }
    }
}
