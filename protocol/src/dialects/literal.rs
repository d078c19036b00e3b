//! The SimpleP2P description read straight from the `msg` argument's literal.
//!
//! A socket.io `msg` carries JSON inside a JSON string: `"{\"sdp\":{\"type\":\"offer\",
//! \"sdp\":\"v=0\\r\\n…\"}}"`. Read the usual way, the literal is unescaped into the inner text,
//! and the inner text is parsed and its SDP unescaped again: two passes and two copies of the
//! largest thing the gateway relays, which made socket.io the costliest dialect per message.
//! Here the description's exact shape (as `JSON.stringify({sdp: pc.localDescription})` writes
//! it) is matched on the literal and the SDP undone from both escapings in one pass.
//!
//! Like the other fast paths ([`super::fast`]), this accepts only what it fully understands:
//! the exact shape, and the escapes browsers write in an SDP (`\r`, `\n`, `\t`, `\"`, `\\`,
//! `\/`). Anything else (`\u` escapes, spacing, other fields or orders, a malformed literal)
//! is `None` and takes the general path, so for a literal accepted here both give the same
//! event; the tests and the `fast_paths` fuzz target hold them to it.

use crate::{Description, Event, SdpKind};

/// The literal up to the description's type.
const BEFORE_KIND: &str = r#""{\"sdp\":{\"type\":\""#;
/// Between the type and the SDP.
const BEFORE_SDP: &str = r#"\",\"sdp\":\""#;
/// After the SDP: the inner string, both objects and the literal close.
const AFTER_SDP: &str = r#"\"}}""#;

/// The description in a `msg` literal of the SimpleP2P shape, or `None` for the general path.
pub(crate) fn description(room: &str, literal: &str) -> Option<Event> {
    let rest = literal.strip_prefix(BEFORE_KIND)?;
    let (kind, rest) = rest.split_once(BEFORE_SDP)?;
    // A type with an escape in it is not one of the four words, and the general path says why.
    let kind = SdpKind::parse(kind)?;
    let sdp = unescape_twice(rest.strip_suffix(AFTER_SDP)?)?;
    Some(Event::Description(Description {
        room: room.to_owned(),
        kind,
        sdp,
    }))
}

/// The text of a string that was JSON-escaped twice (an inner JSON string's content inside an
/// outer JSON string), or `None` if it holds anything but plain characters and the common
/// escapes, or would end either string early.
fn unescape_twice(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    let mut at = 0;
    loop {
        let run_end = at + next_special(bytes.get(at..)?);
        // Runs end at an ASCII byte or the end, so these are character boundaries.
        out.push_str(body.get(at..run_end)?);
        at = run_end;
        let Some(&byte) = bytes.get(at) else {
            return Some(out);
        };
        // A raw quote would end the outer string, a raw control character is not JSON.
        if byte != b'\\' {
            return None;
        }
        let (ch, len) = escape_pair(bytes.get(at + 1..)?)?;
        out.push(ch);
        at += 1 + len;
    }
}

/// The character an outer escape (after its backslash) stands for in the inner text, and how
/// many bytes it took. An outer `\\` is an inner backslash, which must start an inner escape;
/// an outer `\"` would end the inner string.
fn escape_pair(after_backslash: &[u8]) -> Option<(char, usize)> {
    match after_backslash {
        [b'/', ..] => Some(('/', 1)),
        [b'\\', b'r', ..] => Some(('\r', 2)),
        [b'\\', b'n', ..] => Some(('\n', 2)),
        [b'\\', b't', ..] => Some(('\t', 2)),
        [b'\\', b'/', ..] => Some(('/', 2)),
        [b'\\', b'\\', b'/', ..] => Some(('/', 3)),
        [b'\\', b'\\', b'"', ..] => Some(('"', 3)),
        [b'\\', b'\\', b'\\', ..] => Some(('\\', 3)),
        _ => None,
    }
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
