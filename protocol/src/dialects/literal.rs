//! SimpleP2P descriptions and candidates read straight from the `msg` argument's literal.
//!
//! A socket.io `msg` carries JSON inside a JSON string: `"{\"sdp\":{\"type\":\"offer\",
//! \"sdp\":\"v=0\\r\\n…\"}}"`. Read the usual way, the literal is unescaped into the inner text,
//! and the inner text is parsed and its strings unescaped again: two passes and two copies of
//! the largest thing the gateway relays, which made socket.io the costliest dialect per message.
//! Here the exact shapes the page sends (`JSON.stringify({sdp: pc.localDescription})` and
//! `JSON.stringify({candidate: event.candidate})`, in the browsers' `toJSON` key order) are
//! matched on the literal, and each string undone from both escapings in one pass.
//!
//! Like the other fast paths ([`super::fast`]), this accepts only what it fully understands:
//! the exact shape, and the escapes browsers write (`\r`, `\n`, `\t`, `\"`, `\\`, `\/`).
//! Anything else (`\u` escapes, spacing, other fields or orders, a malformed literal) is `None`
//! and takes the general path, so for a literal accepted here both give the same event; the
//! tests and the `fast_paths` fuzz target hold them to it.

use crate::{Candidate, Description, Event, SdpKind};

/// The literal up to the description's type.
const BEFORE_KIND: &str = r#""{\"sdp\":{\"type\":\""#;
/// Between the type and the SDP.
const BEFORE_SDP: &str = r#"\",\"sdp\":\""#;
/// The literal up to the candidate string.
const BEFORE_CANDIDATE: &str = r#""{\"candidate\":{\"candidate\":\""#;
/// After the last value: both objects and the literal close.
const END: &str = r#"}}""#;

/// The description in a `msg` literal of the SimpleP2P shape (`{sdp: {type, sdp}}`), or `None`
/// for the general path.
pub(crate) fn description(room: &str, literal: &str) -> Option<Event> {
    let rest = literal.strip_prefix(BEFORE_KIND)?;
    let (kind, rest) = rest.split_once(BEFORE_SDP)?;
    // A type with an escape in it is not one of the four words, and the general path says why.
    let kind = SdpKind::parse(kind)?;
    let (sdp, rest) = inner_string(rest)?;
    (rest == END).then(|| {
        Event::Description(Description {
            room: room.to_owned(),
            kind,
            sdp,
        })
    })
}

/// The candidate in a `msg` literal of the SimpleP2P shape (`{candidate: {candidate, sdpMid,
/// sdpMLineIndex, usernameFragment}}`, the order of `RTCIceCandidate.toJSON`), or `None` for
/// the general path.
pub(crate) fn candidate(room: &str, literal: &str) -> Option<Event> {
    let rest = literal.strip_prefix(BEFORE_CANDIDATE)?;
    let (candidate, rest) = inner_string(rest)?;
    let (sdp_mid, rest) = string_or_null(rest.strip_prefix(r#",\"sdpMid\":"#)?)?;
    let (sdp_mline_index, rest) = index_or_null(rest.strip_prefix(r#",\"sdpMLineIndex\":"#)?)?;
    let (username_fragment, rest) =
        string_or_null(rest.strip_prefix(r#",\"usernameFragment\":"#)?)?;
    (rest == END).then(|| {
        Event::Candidate(Candidate {
            room: room.to_owned(),
            candidate,
            sdp_mid,
            sdp_mline_index,
            username_fragment,
        })
    })
}

/// An inner string value (its opening quote already read) or `null`, and what follows it.
fn string_or_null(rest: &str) -> Option<(Option<String>, &str)> {
    if let Some(rest) = rest.strip_prefix("null") {
        return Some((None, rest));
    }
    let (value, rest) = inner_string(rest.strip_prefix(r#"\""#)?)?;
    Some((Some(value), rest))
}

/// An m-line index (a JSON integer that fits a `u32`: no sign, fraction or leading zero) or
/// `null`, and what follows it.
fn index_or_null(rest: &str) -> Option<(Option<u32>, &str)> {
    if let Some(rest) = rest.strip_prefix("null") {
        return Some((None, rest));
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = rest.split_at_checked(digits)?;
    if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
        return None;
    }
    Some((Some(number.parse().ok()?), rest))
}

/// The text of an inner JSON string inside the outer one (escaped twice), from after its
/// opening quote, and what follows its closing quote. `None` if it holds anything but plain
/// characters and the common escapes, or is not closed.
fn inner_string(body: &str) -> Option<(String, &str)> {
    let bytes = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    let mut at = 0;
    loop {
        let run_end = at + next_special(bytes.get(at..)?);
        // Runs end at an ASCII byte or the end, so these are character boundaries.
        out.push_str(body.get(at..run_end)?);
        at = run_end;
        // The end of the body, a raw quote (the end of the outer string) or a raw control
        // character (not JSON): not a whole inner string.
        if bytes.get(at) != Some(&b'\\') {
            return None;
        }
        match escape_pair(bytes.get(at + 1..)?)? {
            Escaped::Char(ch, len) => {
                out.push(ch);
                at += 1 + len;
            }
            Escaped::InnerEnd => return Some((out, body.get(at + 2..)?)),
        }
    }
}

/// What an outer escape stands for in the inner text.
enum Escaped {
    /// A character of the inner string, and how many bytes after the backslash it took.
    Char(char, usize),
    /// The inner string's closing quote.
    InnerEnd,
}

/// What an outer escape (after its backslash) stands for in the inner text. An outer `\\` is
/// an inner backslash, which must start an inner escape; an outer `\"` is an inner quote, which
/// ends the inner string.
fn escape_pair(after_backslash: &[u8]) -> Option<Escaped> {
    let (ch, len) = match after_backslash {
        [b'"', ..] => return Some(Escaped::InnerEnd),
        [b'/', ..] => ('/', 1),
        [b'\\', b'r', ..] => ('\r', 2),
        [b'\\', b'n', ..] => ('\n', 2),
        [b'\\', b't', ..] => ('\t', 2),
        [b'\\', b'/', ..] => ('/', 2),
        [b'\\', b'\\', b'/', ..] => ('/', 3),
        [b'\\', b'\\', b'"', ..] => ('"', 3),
        [b'\\', b'\\', b'\\', ..] => ('\\', 3),
        _ => return None,
    };
    Some(Escaped::Char(ch, len))
}

/// The index of the first byte that is a quote, a backslash or a control character, or the
/// length: eight bytes at a time, as an SDP line is tens of plain bytes between escapes.
fn next_special(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    // The high bit of each byte that is zero in `x` (exact for the lowest such byte).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ QUOTES)
            | zero_bytes(word ^ BACKSLASHES)
            | (word.wrapping_sub(SPACES) & !word & HIGHS);
        if found != 0 {
            // Little-endian: the lowest flagged byte comes first in the slice.
            return offset + (found.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    let rest = chunks.remainder();
    offset
        + rest
            .iter()
            .position(|&b| is_special(b))
            .unwrap_or(rest.len())
}

fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

#[cfg(test)]
mod tests;
