use super::candidate as candidate_of;
use super::*;
use crate::dialects::Decoded;
use crate::dialects::fast::check_agreement;
use crate::dialects::socketio::decode_msg_general;

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
fn a_simplep2p_description_is_read_in_one_pass_as_the_general_path_reads_it() {
    for kind in ["offer", "answer", "pranswer"] {
        let literal = simplep2p(kind, SDP);
        let fast = description("room1", &literal);
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
        let fast = description("room1", literal);
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
        assert_eq!(description("room1", literal), None, "{literal}");
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
fn a_simplep2p_candidate_is_read_in_one_pass_as_the_general_path_reads_it() {
    let chrome = r#""candidate:842163049 1 udp 1677729535 127.0.0.1 50170 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXP5 network-cost 999""#;
    for (candidate, mid, index, ufrag) in [
        (chrome, r#""0""#, "0", r#""sXP5""#),
        (chrome, r#""audio""#, "4294967295", "null"),
        // The end of candidates, and a mid that needs escapes.
        (r#""""#, "null", "null", "null"),
        (r#""c""#, r#""a\"b/c\\""#, "10", r#""u""#),
    ] {
        let literal = candidate_literal(candidate, mid, index, ufrag);
        let fast = candidate_of("room1", &literal);
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
        assert_eq!(candidate_of("room1", &literal), None, "{literal}");
        assert_eq!(check_agreement(&literal), Ok(()), "{literal}");
    }
    for literal in [
        // Another key order, a missing key, trailing text, spacing.
        r#""{\"candidate\":{\"candidate\":\"c\",\"sdpMLineIndex\":0,\"sdpMid\":\"0\",\"usernameFragment\":null}}""#,
        r#""{\"candidate\":{\"candidate\":\"c\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}""#,
        r#""{\"candidate\":{\"candidate\":\"c\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":null}} ""#,
        r#""{\"candidate\":{\"candidate\": \"c\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0,\"usernameFragment\":null}}""#,
    ] {
        assert_eq!(candidate_of("room1", literal), None, "{literal}");
        assert_eq!(check_agreement(literal), Ok(()), "{literal}");
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
