//! Each dialect's in-place read of its usual signals against its general decoder: wherever the
//! in-place read accepts a text, both give the same event. For the tests and the `fast_paths`
//! fuzz target (through `testing::fast_paths_agree`).

use super::Decoded;
use super::{antmedia, raw, socketio};
use crate::{DecodeError, Event};

const ROOM: &str = "room1";

/// Runs every dialect's in-place read on `text` and, where one accepts it, that dialect's
/// general decoder too; `Err` names a dialect on which they disagree. Also reads `text` as the
/// `msg` literal its sender's `JSON.stringify` would make of it, both ways socket.io event data
/// is read.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let checks = [
        (
            "raw",
            raw::signal(ROOM, text),
            event(raw::decode_general(ROOM, text)),
        ),
        (
            "socketio",
            socketio::decode::signal(ROOM, text),
            event(socketio::decode::decode_msg_general(ROOM, text)),
        ),
        (
            "antmedia",
            antmedia::decode::signal(text),
            event(antmedia::decode::decode_general(text, "LiveApp")),
        ),
    ];
    for (dialect, in_place, general) in checks {
        if in_place.is_some() && in_place != general {
            return Err(format!(
                "{dialect}: in place {in_place:?} != general {general:?}"
            ));
        }
    }
    msg_data_agreement(text)
}

/// `text` sent as a `msg` string: the usual data `["msg",<literal>]` and the same data spaced
/// (which only the general event reader takes) decode as the text does, with the literal kept.
fn msg_data_agreement(text: &str) -> Result<(), String> {
    let literal = serde_json::to_string(text).map_err(|e| e.to_string())?;
    let expected = socketio::decode_msg_text(ROOM, text);
    for data in [
        format!(r#"["msg",{literal}]"#),
        format!(r#"[ "msg", {literal} ]"#),
    ] {
        match socketio::read_event_data(ROOM, &data) {
            Ok(socketio::EventData::Msg(decoded, kept))
                if same(&decoded, &expected) && kept == literal => {}
            other => return Err(format!("{data}: {other:?}, expected {expected:?}")),
        }
    }
    Ok(())
}

fn event<W>(decoded: Result<Decoded<W>, DecodeError>) -> Option<Event> {
    match decoded {
        Ok(Decoded::Event(e)) => Some(e),
        _ => None,
    }
}

/// The same outcome: equal events, or both not an event.
fn same<W: PartialEq>(
    a: &Result<Decoded<W>, DecodeError>,
    b: &Result<Decoded<W>, DecodeError>,
) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = r#""v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=x:\"q\"\r\n""#;

    /// The hot frames of every dialect, in their clients' shapes and in others.
    #[test]
    fn every_in_place_read_agrees_on_the_hot_frames_of_every_dialect() {
        let frames = [
            format!(r#"{{"type":"offer","sdp":{SDP}}}"#),
            format!(r#"{{"sdp":{SDP},"type":"answer"}}"#),
            format!(r#"{{"type":"rollback","sdp":{SDP}}}"#),
            format!(r#"{{"sdp":{{"type":"answer","sdp":{SDP}}}}}"#),
            format!(r#"{{"sdp":{{"type":"offer","sdp":{SDP}}},"candidate":null}}"#),
            format!(
                r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":{SDP}}}"#
            ),
            format!(
                r#"{{ "sdp" : {SDP}, "type":"offer", "streamId":"s1","command":"takeConfiguration"}}"#
            ),
            r#"{"command":"takeCandidate","streamId":"room1","label":1,"id":"1","candidate":"c"}"#
                .to_owned(),
            r#"{"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#.to_owned(),
            r#"{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"dK+1"}}"#.to_owned(),
            r#"{"type":"candidate","candidate":{"candidate":"c"}}"#.to_owned(),
            r#"{"type":"candidate","candidate":{"candidate":"","sdpMLineIndex":null,"sdpMid":null,"usernameFragment":"u"}}"#.to_owned(),
            r#"{"type":"offer","sdp":"\u00e9\ud83d\ude00\/"}"#.to_owned(),
        ];
        for text in &frames {
            assert_eq!(check(text), Ok(()), "{text}");
            let accepted = raw::signal(ROOM, text)
                .or_else(|| socketio::decode::signal(ROOM, text))
                .or_else(|| antmedia::decode::signal(text));
            assert!(accepted.is_some(), "no in-place read took {text}");
        }
    }

    /// Frames of other shapes, types or ids are left to the general decoders.
    #[test]
    fn unusual_frames_are_left_to_the_general_decoders() {
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
            r#"{"type":"offer","sdp":5}"#.to_owned(),
            r#"{"sdp":{"type":"rollback"}}"#.to_owned(),
            r#"{"candidate":{"candidate":"c","sdpMid":1}}"#.to_owned(),
            r#"{"candidate":null}"#.to_owned(),
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
            r#"{"renegotiate":true}"#.to_owned(),
            "[1]".to_owned(),
        ];
        for text in &declined {
            assert_eq!(raw::signal(ROOM, text), None, "{text}");
            assert_eq!(socketio::decode::signal(ROOM, text), None, "{text}");
            assert_eq!(antmedia::decode::signal(text), None, "{text}");
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn in_place_reads_keep_the_senders_literal() {
        let frame = r#"{"type":"offer","sdp":"a\u00e9\/b"}"#;
        let Some(Event::Description(d)) = raw::signal(ROOM, frame) else {
            panic!("not read in place");
        };
        assert!(d.sdp.is_literal());
        assert_eq!(d.sdp.to_literal().as_deref(), Some(r#""a\u00e9\/b""#));
        assert_eq!(d.sdp, "aé/b");
    }
}
