//! A reader for JSON text of one exact shape, written by hand because the shapes that carry
//! nearly all relay traffic are known to the byte. It walks the text once: punctuation and keys
//! are compared as they stand, strings are unescaped straight into their owned copies, and
//! anything unexpected stops it (`None`), for the general decoder to read and judge.
//!
//! The same reader reads JSON that is itself inside a JSON string ([`Escaping::Twice`], the
//! socket.io `msg` literal): every quote of the inner text is then `\"`, and every escape of
//! the inner text is escaped again, so both are undone in the same single pass.

/// How many times the text being read was JSON-escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// Plain JSON text.
    Once,
    /// JSON text as the content of a JSON string (the literal without its own quotes).
    Twice,
}

/// The rest of the text, read from the front.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a str,
    escaping: Escaping,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str, escaping: Escaping) -> Self {
        Reader {
            rest: text,
            escaping,
        }
    }

    /// Punctuation and keys: `pattern` as written in plain JSON, its quotes escaped as the
    /// text's are. Nothing is read unless all of it matches.
    pub(crate) fn token(&mut self, pattern: &str) -> Option<()> {
        let rest = match self.escaping {
            Escaping::Once => self.rest.strip_prefix(pattern)?,
            Escaping::Twice => {
                // Byte by byte: a pattern is a few tens of bytes, and splitting it at its quotes
                // for string comparisons cost more than the rest of a candidate's reading.
                let text = self.rest.as_bytes();
                let mut at = 0;
                for &byte in pattern.as_bytes() {
                    if byte == b'"' {
                        (text.get(at) == Some(&b'\\')).then_some(())?;
                        at += 1;
                    }
                    (text.get(at) == Some(&byte)).then_some(())?;
                    at += 1;
                }
                // The pattern is ASCII, so `at` is a character boundary.
                self.rest.get(at..)?
            }
        };
        self.rest = rest;
        Some(())
    }

    /// A key (with its punctuation, as [`Self::token`]) and its value, read by `value`.
    #[inline]
    pub(crate) fn field<T>(
        &mut self,
        key: &str,
        value: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        self.token(key)?;
        value(self)
    }

    /// The shape's closing brackets, and nothing after them.
    pub(crate) fn close(mut self, closing: &str) -> Option<()> {
        self.token(closing)?;
        self.rest.is_empty().then_some(())
    }

    /// A string without escapes (a type, a command, a stream id), borrowed from the text.
    pub(crate) fn plain(&mut self) -> Option<&'a str> {
        self.quote()?;
        let (value, rest) = self
            .rest
            .split_at_checked(next_special(self.rest.as_bytes()))?;
        self.rest = rest;
        self.quote()?;
        Some(value)
    }

    /// A string, unescaped.
    pub(crate) fn string(&mut self) -> Option<String> {
        self.quote()?;
        let mut out = String::with_capacity(self.rest.len());
        let mut rest = self.rest;
        loop {
            // Runs end at an ASCII byte or the end, so this is a character boundary.
            let (run, tail) = rest.split_at_checked(next_special(rest.as_bytes()))?;
            out.push_str(run);
            // SDP lines end in `\r\n`: taken as one escape pair, a line costs one dispatch.
            // Each escaping's pattern is a constant, so the comparison is a load, not a call.
            let line_end = match self.escaping {
                Escaping::Once => tail.as_bytes().starts_with(b"\\r\\n").then_some(4),
                Escaping::Twice => tail.as_bytes().starts_with(b"\\\\r\\\\n").then_some(6),
            };
            if let Some(len) = line_end {
                out.push_str("\r\n");
                rest = tail.get(len..)?;
                continue;
            }
            let bytes = tail.as_bytes();
            let taken = match (self.escaping, bytes.first()?) {
                (Escaping::Once, b'"') => {
                    self.rest = tail.get(1..)?;
                    return Some(out);
                }
                (Escaping::Once, b'\\') => {
                    let (ch, len) = escape_once(bytes.get(1..)?)?;
                    out.push(ch);
                    1 + len
                }
                (Escaping::Twice, b'\\') => match escape_twice(bytes.get(1..)?)? {
                    Escaped::Char(ch, len) => {
                        out.push(ch);
                        1 + len
                    }
                    Escaped::InnerEnd => {
                        self.rest = tail.get(2..)?;
                        return Some(out);
                    }
                },
                // A raw control character is not JSON, and a raw quote inside a string that
                // was escaped twice would end the outer string.
                _ => return None,
            };
            rest = tail.get(taken..)?;
        }
    }

    /// A string or `null`.
    pub(crate) fn string_or_null(&mut self) -> Option<Option<String>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// An m-line index: a JSON integer that fits a `u32` (no sign, fraction, exponent or
    /// leading zero).
    pub(crate) fn index(&mut self) -> Option<u32> {
        let digits = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, rest) = self.rest.split_at_checked(digits)?;
        if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
            return None;
        }
        if matches!(rest.as_bytes().first(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.rest = rest;
        number.parse().ok()
    }

    /// An m-line index or `null`.
    pub(crate) fn index_or_null(&mut self) -> Option<Option<u32>> {
        if self.null() {
            return Some(None);
        }
        self.index().map(Some)
    }

    fn null(&mut self) -> bool {
        match self.rest.strip_prefix("null") {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// One quote of the text being read.
    fn quote(&mut self) -> Option<()> {
        self.rest = self.rest.strip_prefix(self.quote_text())?;
        Some(())
    }

    /// How a quote is written in the text being read.
    fn quote_text(&self) -> &'static str {
        match self.escaping {
            Escaping::Once => "\"",
            Escaping::Twice => "\\\"",
        }
    }
}

/// What an escape (after its backslash) stands for in plain JSON, and how many bytes it took:
/// the escapes browsers write in SDP and candidates; `\u`, `\b` and `\f` take the general path.
fn escape_once(after_backslash: &[u8]) -> Option<(char, usize)> {
    let ch = match after_backslash.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'r' => '\r',
        b'n' => '\n',
        b't' => '\t',
        _ => return None,
    };
    Some((ch, 1))
}

/// What an outer escape stands for in text escaped twice.
enum Escaped {
    /// A character of the inner string, and how many bytes after the backslash it took.
    Char(char, usize),
    /// The inner string's closing quote.
    InnerEnd,
}

/// What an outer escape (after its backslash) stands for in the inner text. An outer `\\` is
/// an inner backslash, which must start an inner escape; an outer `\"` is an inner quote, which
/// ends the inner string.
fn escape_twice(after_backslash: &[u8]) -> Option<Escaped> {
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
