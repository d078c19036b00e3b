use super::check as check_agreement;
use crate::Event;
use crate::dialects::Decoded;
use crate::dialects::antmedia::decode::{decode_general as ant_general, signal as antmedia};
use crate::dialects::raw::{decode_general as raw_general, signal as raw};
use crate::dialects::scan::{Escaping, is_special, next_special};
use crate::dialects::socketio::decode::{
    decode_msg_general, signal as socketio, signal_literal as socketio_literal,
};

/// An SDP with every escape a browser's SDP needs, and characters that need none.
const SDP: &str =
    "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\na=x-q:\"quoted\" back\\slash a/b\ttab é ✓\r\n";

/// What the SimpleP2P page sends: `JSON.stringify({sdp: pc.localDescription})`, and socket.io's
/// own stringify of that string.
fn literal_of(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn simplep2p(kind: &str, sdp: &str) -> String {
    // A browser's `toJSON` order, which a `serde_json::Value` would sort away.
    let sdp = serde_json::to_string(sdp).expect("a string serializes");
    literal_of(&format!(r#"{{"sdp":{{"type":"{kind}","sdp":{sdp}}}}}"#))
}

fn general(literal: &str) -> Option<Event> {
    let text: String = serde_json::from_str(literal).ok()?;
    match decode_msg_general("room1", &text) {
        Ok(Decoded::Event(event)) => Some(event),
        _ => None,
    }
}

#[test]
fn a_simplep2p_description_literal_is_read_in_one_pass_as_the_general_path_reads_it() {
    for kind in ["offer", "answer", "pranswer"] {
        let literal = simplep2p(kind, SDP);
        let fast = socketio_literal("room1", &literal);
        let Some(Event::Description(d)) = &fast else {
            panic!("{literal} declined");
        };
        assert_eq!(d.sdp, SDP);
        assert_eq!(fast, general(&literal), "{literal}");
        assert_eq!(check_agreement(&literal), Ok(()));
    }
}

#[test]
fn every_escape_spelling_of_a_slash_a_backslash_at_the_end_and_an_empty_sdp() {
    // `\/` is optional in JSON; some encoders write it at either level.
    for (literal, sdp) in [
        (
            r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a\/b\\/c\\\/d\"}}""#,
            "a/b/c/d",
        ),
        (r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"\"}}""#, ""),
        (
            r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a\\\\\"}}""#,
            "a\\",
        ),
    ] {
        let fast = socketio_literal("room1", literal);
        let Some(Event::Description(d)) = &fast else {
            panic!("{literal} declined");
        };
        assert_eq!(d.sdp, sdp);
        assert_eq!(fast, general(literal), "{literal}");
    }
}

#[test]
fn anything_else_is_left_to_the_general_path() {
    let declined = [
        // Escapes this path does not take: \u at either level, \b, \f.
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"\\u0041\"}}""#,
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"\u0041\"}}""#,
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"\\b\"}}""#,
        // An inner raw newline is not JSON; an inner quote ends the SDP early.
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a\nb\"}}""#,
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a\"b\"}}""#,
        // An outer raw quote ends the literal early; a raw control character.
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a"b\"}}""#,
        "\"{\\\"sdp\\\":{\\\"type\\\":\\\"offer\\\",\\\"sdp\\\":\\\"a\nb\\\"}}\"",
        // An escape cut by the end of the SDP.
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a\\\"}}""#,
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"a\\\\\\\"}}""#,
        // Other types, spacing, fields, orders.
        r#""{\"sdp\":{\"type\":\"bogus\",\"sdp\":\"x\"}}""#,
        r#""{\"sdp\":{\"type\":\"off\\u0065r\",\"sdp\":\"x\"}}""#,
        r#""{\"sdp\": {\"type\":\"offer\",\"sdp\":\"x\"}}""#,
        r#""{\"sdp\":{\"sdp\":\"x\",\"type\":\"offer\"}}""#,
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"x\"},\"candidate\":null}""#,
        r#""{\"sdp\":{\"type\":\"offer\",\"sdp\":\"x\"}}"#,
        r#"{\"sdp\":{\"type\":\"offer\",\"sdp\":\"x\"}}""#,
        r#""{\"candidate\":{\"candidate\":\"c\"}}""#,
    ];
    for literal in declined {
        assert_eq!(socketio_literal("room1", literal), None, "{literal}");
        assert_eq!(check_agreement(literal), Ok(()), "{literal}");
    }
}

/// `JSON.stringify({candidate: event.candidate})`, with `toJSON`'s keys in its order.
fn candidate_literal(candidate: &str, mid: &str, index: &str, ufrag: &str) -> String {
    literal_of(&format!(
        r#"{{"candidate":{{"candidate":{candidate},"sdpMid":{mid},"sdpMLineIndex":{index},"usernameFragment":{ufrag}}}}}"#
    ))
}

#[test]
fn a_simplep2p_candidate_literal_is_read_in_one_pass_as_the_general_path_reads_it() {
    let chrome = r#""candidate:842163049 1 udp 1677729535 127.0.0.1 50170 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXP5 network-cost 999""#;
    for (candidate, mid, index, ufrag) in [
        (chrome, r#""0""#, "0", r#""sXP5""#),
        (chrome, r#""audio""#, "4294967295", "null"),
        // The end of candidates, and a mid that needs escapes.
        (r#""""#, "null", "null", "null"),
        (r#""c""#, r#""a\"b/c\\""#, "10", r#""u""#),
    ] {
        let literal = candidate_literal(candidate, mid, index, ufrag);
        let fast = socketio_literal("room1", &literal);
        assert!(
            matches!(fast, Some(Event::Candidate(_))),
            "{literal} declined"
        );
        assert_eq!(fast, general(&literal), "{literal}");
        assert_eq!(check_agreement(&literal), Ok(()));
    }
}

#[test]
fn other_candidate_shapes_are_left_to_the_general_path() {
    for (mid, index, ufrag) in [
        // Indexes JSON does not write so, or a u32 cannot hold, or of the wrong type.
        (r#""0""#, "01", r#""u""#),
        (r#""0""#, "-1", r#""u""#),
        (r#""0""#, "1.0", r#""u""#),
        (r#""0""#, "4294967296", r#""u""#),
        (r#""0""#, r#""0""#, r#""u""#),
        (r#""0""#, "", r#""u""#),
        // A mid of the wrong type, a fragment with an escape this path does not take.
        ("0", "0", r#""u""#),
        (r#""0""#, "0", r#""\u0041""#),
        (r#""0""#, "0", "nul"),
    ] {
        let literal = candidate_literal(r#""c""#, mid, index, ufrag);
        assert_eq!(socketio_literal("room1", &literal), None, "{literal}");
        assert_eq!(check_agreement(&literal), Ok(()), "{literal}");
    }
    for literal in [
        // Another key order, a missing key, trailing text, spacing.
        r#""{\"candidate\":{\"candidate\":\"c\",\"sdpMLineIndex\":0,\"sdpMid\":\"0\",\"usernameFragment\":null}}""#,
        r#""{\"candidate\":{\"candidate\":\"c\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}""#,
        r#""{\"candidate\":{\"candidate\":\"c\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":null}} ""#,
        r#""{\"candidate\":{\"candidate\": \"c\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":null}}""#,
    ] {
        assert_eq!(socketio_literal("room1", literal), None, "{literal}");
        assert_eq!(check_agreement(literal), Ok(()), "{literal}");
    }
}

fn event<W>(decoded: Result<Decoded<W>, crate::DecodeError>) -> Option<Event> {
    match decoded {
        Ok(Decoded::Event(event)) => Some(event),
        _ => None,
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The Ant SDK's, simple-peer's and the SimpleP2P page's hot frames, as they write them.
#[test]
fn the_hot_frames_of_every_dialect_are_read_as_the_general_decoders_read_them() {
    let sdp = json(SDP);
    let chrome = json(
        "candidate:835302670 1 udp 2122194687 192.0.2.2 56557 typ host generation 0 ufrag dK+1 network-id 1",
    );
    for text in [
        format!(
            r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":{sdp}}}"#
        ),
        format!(
            r#"{{"command":"takeConfiguration","streamId":"r.1_-x","type":"answer","sdp":{sdp}}}"#
        ),
        format!(
            r#"{{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":{chrome}}}"#
        ),
        r#"{"command":"takeCandidate","streamId":"room1","label":1,"id":"","candidate":""}"#
            .to_owned(),
    ] {
        let fast = antmedia(&text);
        assert!(fast.is_some(), "{text}");
        assert_eq!(fast, event(ant_general(&text, "LiveApp")), "{text}");
        assert_eq!(check_agreement(&text), Ok(()), "{text}");
    }
    for text in [
        format!(r#"{{"type":"offer","sdp":{sdp}}}"#),
        format!(
            r#"{{"type":"candidate","candidate":{{"candidate":{chrome},"sdpMLineIndex":0,"sdpMid":"0"}}}}"#
        ),
        r#"{"type":"candidate","candidate":{"candidate":"","sdpMLineIndex":null,"sdpMid":null}}"#
            .to_owned(),
    ] {
        let fast = raw("room1", &text);
        assert!(fast.is_some(), "{text}");
        assert_eq!(fast, event(raw_general("room1", &text)), "{text}");
        assert_eq!(check_agreement(&text), Ok(()), "{text}");
    }
    for text in [
        format!(r#"{{"sdp":{{"type":"answer","sdp":{sdp}}}}}"#),
        format!(
            r#"{{"candidate":{{"candidate":{chrome},"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"dK+1"}}}}"#
        ),
    ] {
        let fast = socketio("room1", &text, Escaping::Once);
        assert!(fast.is_some(), "{text}");
        assert_eq!(fast, event(decode_msg_general("room1", &text)), "{text}");
        assert_eq!(check_agreement(&text), Ok(()), "{text}");
    }
}

#[test]
fn other_plain_shapes_are_left_to_the_next_path() {
    let declined = [
        // Ant: another order, an id the decoder refuses, a label that is not an index, an
        // escape this path does not take, trailing text, spacing, another command.
        r#"{"command":"takeCandidate","streamId":"room1","id":"0","label":0,"candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"a b","label":0,"id":"0","candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"","label":0,"id":"0","candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"room1","label":"0","id":"0","candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"room1","label":1e0,"id":"0","candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"\u0063"}"#,
        r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"c"} "#,
        r#"{"command": "takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"c"}"#,
        r#"{"command":"takeConfiguration","streamId":"room1","type":"bogus","sdp":"x"}"#,
        r#"{"command":"join","streamId":"room1"}"#,
        // Raw: extra fields, a raw control character, an unclosed string.
        r#"{"type":"offer","sdp":"x","extra":1}"#,
        "{\"type\":\"offer\",\"sdp\":\"a\nb\"}",
        r#"{"type":"offer","sdp":"x\"}"#,
        r#"{"type":"candidate","candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#,
    ];
    for text in declined {
        assert_eq!(antmedia(text), None, "{text}");
        assert_eq!(raw("room1", text), None, "{text}");
        assert_eq!(check_agreement(text), Ok(()), "{text}");
    }
}

#[test]
fn the_word_scan_finds_the_first_special_byte_at_every_position() {
    for special in [b'"', b'\\', 0x00, 0x1f] {
        for len in 0..20 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                // Bytes just above the special ones, and high bytes, are plain.
                if len > 0 {
                    bytes[len - 1] = 0x80;
                }
                if at < len {
                    bytes[at] = special;
                }
                let expected = bytes.iter().position(|&b| is_special(b)).unwrap_or(len);
                assert_eq!(
                    next_special(&bytes),
                    expected,
                    "{special:#x} at {at} of {len}"
                );
            }
        }
    }
    let plain = b"]#[!\x7f\xff !]]";
    assert_eq!(next_special(plain), plain.len());
}

/// `\r\n` is read as one pair; every spelling next to it (a lone `\r` or `\n`, an escaped
/// backslash before `r`, the pair at the very end or start) must still read as the general path
/// reads it, in plain JSON and inside the `msg` literal.
#[test]
fn line_ends_read_as_a_pair_and_every_spelling_beside_them() {
    for sdp in [
        "\r\n",
        "a\r\nb\r\n",
        "\r\nx",
        "a\rb\nc\n\r",
        "a\\r\\n\r\n",
        "a\\\r\n",
        "\r\r\n\n",
        "a\r",
    ] {
        let text = format!(r#"{{"type":"offer","sdp":{}}}"#, json(sdp));
        let Some(Event::Description(d)) = raw("room1", &text) else {
            panic!("{text} declined");
        };
        assert_eq!(d.sdp, sdp, "{text}");
        assert_eq!(check_agreement(&text), Ok(()), "{text}");
        let literal = simplep2p("offer", sdp);
        let Some(Event::Description(d)) = socketio_literal("room1", &literal) else {
            panic!("{literal} declined");
        };
        assert_eq!(d.sdp, sdp, "{literal}");
        assert_eq!(check_agreement(&literal), Ok(()), "{literal}");
    }
}

/// What the one-pass reads keep of an SDP or a candidate line is its JSON text: the sender's
/// literal in plain JSON, the inner literal (one escaping undone) from a `msg` literal. Written
/// back, it is that text; read, it is the value the general decoders give.
#[test]
fn the_sdp_and_the_candidate_line_stay_json_text() {
    let frame = format!(r#"{{"type":"offer","sdp":{}}}"#, json(SDP));
    let Some(Event::Description(d)) = raw("room1", &frame) else {
        panic!("{frame} declined");
    };
    assert!(d.sdp.is_literal());
    let mut written = String::new();
    d.sdp.write_json(&mut written);
    assert_eq!(written, json(SDP));
    for literal in [simplep2p("answer", SDP), simplep2p("offer", "a\\/b\"\r\n")] {
        let Some(Event::Description(d)) = socketio_literal("room1", &literal) else {
            panic!("{literal} declined");
        };
        assert!(d.sdp.is_literal());
        let mut written = String::new();
        d.sdp.write_json(&mut written);
        assert_eq!(
            serde_json::from_str::<String>(&written).ok().as_deref(),
            Some(d.sdp.as_str())
        );
        assert_eq!(Some(Event::Description(d)), general(&literal));
    }
    let candidate =
        r#"{"command":"takeCandidate","streamId":"s","label":0,"id":"0","candidate":"c\/1"}"#;
    let Some(Event::Candidate(c)) = antmedia(candidate) else {
        panic!("{candidate} declined");
    };
    let mut written = String::new();
    c.candidate.write_json(&mut written);
    assert_eq!(
        (written.as_str(), c.candidate.as_str()),
        (r#""c\/1""#, "c/1")
    );
}

/// Both ways socket.io event data is read find the same literal and the same decoding.
#[test]
fn msg_data_reads_as_its_text_reads() {
    for text in [
        format!(r#"{{"sdp":{{"type":"offer","sdp":{}}}}}"#, json(SDP)),
        r#"{"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}}"#
            .to_owned(),
        r#"{ "sdp": {"sdp": "x", "type": "answer"}}"#.to_owned(),
        r#"{"hello":1}"#.to_owned(),
        "not json".to_owned(),
    ] {
        assert_eq!(check_agreement(&text), Ok(()), "{text}");
    }
}

/// Frames of every dialect's other shapes (key orders, nulls, types, ids): whatever reads them,
/// the one-pass reads and the general decoders agree.
#[test]
fn other_shapes_and_orders_agree_whichever_reader_takes_them() {
    const Q: &str = r#""v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=x:\"q\"\r\n""#;
    let frames = [
        format!(r#"{{"sdp":{Q},"type":"answer"}}"#),
        format!(r#"{{"type":"rollback","sdp":{Q}}}"#),
        format!(r#"{{"sdp":{{"type":"offer","sdp":{Q}}},"candidate":null}}"#),
        format!(r#"{{"type":"offer","sdp":{Q},"extra":1}}"#),
        format!(r#"{{"type":"offer","sdp":{Q},"sdp":{Q}}}"#),
        format!(r#"{{"command":"takeConfiguration","streamId":"s","type":"offer","sdp":{Q},"label":1}}"#),
        format!(r#"{{ "sdp" : {Q}, "type":"offer", "streamId":"s1","command":"takeConfiguration"}}"#),
        r#"{"type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":"1","sdpMid":0}}"#.to_owned(),
        r#"{"type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":-1}}"#.to_owned(),
        r#"{"type":"candidate","candidate":null}"#.to_owned(),
        r#"{"type":"candidate","candidate":"c","sdpMid":"0"}"#.to_owned(),
        r#"{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"dK+1"}}"#.to_owned(),
        r#"{"candidate":{"candidate":"c","sdpMid":1}}"#.to_owned(),
        r#"{"candidate":null}"#.to_owned(),
        r#"{"sdp":{"type":"rollback"}}"#.to_owned(),
        r#"{"command":"takeCandidate","streamId":"s","label":"0","id":0,"candidate":"c"}"#.to_owned(),
        r#"{"renegotiate":true}"#.to_owned(),
        r#"{"type":"off\u0065r","sdp":"x"}"#.to_owned(),
        "[1]".to_owned(),
    ];
    for text in &frames {
        assert_eq!(check_agreement(text), Ok(()), "{text}");
    }
}
