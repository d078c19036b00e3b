//! JSON text escaped twice: what a socket.io `msg` literal holds (the page's JSON, itself in a
//! JSON string). Every quote of the inner text is then `\"`, and every escape of the inner text
//! is escaped again. The dialect reader ([`crate::dialects`]' one-pass reader) and
//! [`crate::JsonText`], which keeps such an inner literal as the sender wrote it, share these
//! rules; this module imports neither, so neither imports the other for them.

/// What an outer escape stands for in text escaped twice.
pub(crate) enum Escaped {
    /// A character of the inner string, and how many bytes after the backslash it took.
    Char(char, usize),
    /// The inner string's closing quote.
    InnerEnd,
}

/// What an outer escape (after its backslash) stands for in the inner text. An outer `\\` is
/// an inner backslash, which must start an inner escape; an outer `\"` is an inner quote, which
/// ends the inner string. Only the escapes browsers write (`\r`, `\n`, `\t`, `\"`, `\\`, `\/`).
pub(crate) fn escape_twice(after_backslash: &[u8]) -> Option<Escaped> {
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

/// An SDP line's end in text escaped twice (`\r\n` inside the inner string), taken as one.
pub(crate) const LINE_END_TWICE: &[u8] = b"\\\\r\\\\n";

/// The length of the inner string literal at the start of `text` escaped twice, from its
/// opening `\"` to its closing `\"` included, when it is one valid literal of the escapes
/// [`escape_twice`] reads; nothing is copied.
pub(crate) fn literal_twice_len(text: &[u8]) -> Option<usize> {
    text.starts_with(b"\\\"").then_some(())?;
    let mut at = 2;
    loop {
        at += next_special(text.get(at..)?);
        let tail = text.get(at..)?;
        if tail.starts_with(LINE_END_TWICE) {
            at += LINE_END_TWICE.len();
            continue;
        }
        // A raw quote would end the outer string; a raw control character is not JSON.
        (tail.first()? == &b'\\').then_some(())?;
        match escape_twice(tail.get(1..)?)? {
            Escaped::Char(_, len) => at += 1 + len,
            Escaped::InnerEnd => return Some(at + 2),
        }
    }
}

/// Appends the inner literal `raw` (escaped twice, as [`literal_twice_len`] found it) to `out`
/// as plain JSON writes it: its outer escaping undone, its own kept. `None` (and `out` as it
/// was) when `raw` is not such a literal.
pub(crate) fn undo_outer_escaping(raw: &str, out: &mut String) -> Option<()> {
    let mut rest = raw.strip_prefix("\\\"")?;
    let start = out.len();
    out.reserve(raw.len());
    out.push('"');
    loop {
        // Runs end at an ASCII byte or the end, so this is a character boundary.
        let Some((run, tail)) = rest.split_at_checked(next_special(rest.as_bytes())) else {
            out.truncate(start);
            return None;
        };
        out.push_str(run);
        if tail.as_bytes().starts_with(LINE_END_TWICE) {
            out.push_str("\\r\\n");
            rest = &tail[LINE_END_TWICE.len()..];
            continue;
        }
        let escaped = tail
            .strip_prefix('\\')
            .and_then(|after| escape_twice(after.as_bytes()));
        match escaped {
            Some(Escaped::Char(ch, len)) => {
                push_escaped(out, ch);
                rest = &tail[1 + len..];
            }
            Some(Escaped::InnerEnd) if tail.len() == 2 => {
                out.push('"');
                return Some(());
            }
            _ => {
                out.truncate(start);
                return None;
            }
        }
    }
}

/// `ch` as plain JSON writes it inside a string: the characters [`escape_twice`] can give.
pub(crate) fn push_escaped(out: &mut String, ch: char) {
    match ch {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        other => out.push(other),
    }
}

/// The index of the first byte that is a quote, a backslash or a control character, or the
/// length: eight bytes at a time, as an SDP line is tens of plain bytes between escapes.
pub(crate) fn next_special(bytes: &[u8]) -> usize {
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

pub(crate) fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}
