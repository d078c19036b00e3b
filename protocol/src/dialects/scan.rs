//! A reader for JSON text of one exact shape, written by hand because the shapes that carry
//! nearly all relay traffic are known to the byte, and serde, even borrowing, costs more to skip
//! over a 6 KB SDP than this costs to find its end (BENCHMARKS.md, "Decoding the envelope,
//! keeping the payload"). It walks the text once: punctuation and keys are
//! compared as they stand, short strings are unescaped into their owned copies, an SDP or a
//! candidate line is kept as its JSON literal ([`Reader::literal`]), and anything unexpected
//! stops it (`None`), for the dialect's general decoder to read and judge.
//!
//! The same reader reads JSON that is itself inside a JSON string ([`Escaping::Twice`], the
//! socket.io `msg` literal; its rules are in `crate::escape`): every quote of the inner text is
//! then `\"`, and every escape of the inner text is escaped again, so one level is undone in
//! the same single pass. An SDP or a candidate line there is kept with both levels, as the
//! sender wrote it: a relay between socket.io peers sends the sender's frame, and only another
//! dialect's rendering undoes the outer level.

use std::borrow::Cow;

#[cfg(test)]
pub(crate) use crate::escape::is_special;
pub(crate) use crate::escape::next_special;
use crate::escape::{Escaped, LINE_END_TWICE, escape_twice, literal_twice_len};
use crate::{Candidate, Description, Event, JsonText, SdpKind};

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

    /// A string kept as JSON ([`JsonText`]): its literal, quotes included, as the text writes
    /// it (in text escaped twice, with both levels: see the module's notes). Only the escapes
    /// [`Self::string`] accepts, so what this keeps is always a valid JSON string.
    pub(crate) fn literal(&mut self) -> Option<JsonText> {
        match self.escaping {
            Escaping::Once => self
                .literal_once()
                .map(|literal| JsonText::from_checked_literal(Cow::Borrowed(literal))),
            Escaping::Twice => self
                .literal_twice()
                .map(JsonText::from_checked_literal_twice),
        }
    }

    /// [`Self::literal`] of plain JSON: a slice of the text, checked, nothing copied.
    fn literal_once(&mut self) -> Option<&'a str> {
        let text = self.rest;
        let bytes = text.as_bytes();
        (bytes.first() == Some(&b'"')).then_some(())?;
        let mut at = 1;
        loop {
            at += next_special(bytes.get(at..)?);
            match bytes.get(at)? {
                b'"' => {
                    let (literal, rest) = text.split_at_checked(at + 1)?;
                    self.rest = rest;
                    return Some(literal);
                }
                // An SDP line's end, taken as one pair.
                b'\\' if bytes.get(at..)?.starts_with(b"\\r\\n") => at += 4,
                b'\\' => {
                    escape_once(bytes.get(at + 1..)?)?;
                    at += 2;
                }
                // A raw control character is not JSON.
                _ => return None,
            }
        }
    }

    /// [`Self::literal`] of text escaped twice: the inner literal, `\"` to `\"`, checked,
    /// nothing copied.
    fn literal_twice(&mut self) -> Option<&'a str> {
        let len = literal_twice_len(self.rest.as_bytes())?;
        // The literal ends with an ASCII quote, so `len` is a character boundary.
        let (literal, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(literal)
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
                Escaping::Twice => tail
                    .as_bytes()
                    .starts_with(LINE_END_TWICE)
                    .then_some(LINE_END_TWICE.len()),
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

// === the shapes' common parts ===

/// A description's SDP (after its type, in every dialect's shape) and the `closing` brackets.
pub(crate) fn description_rest(
    mut r: Reader<'_>,
    room: &str,
    kind: &str,
    closing: &str,
) -> Option<Event> {
    let sdp = r.field(r#","sdp":"#, Reader::literal)?;
    r.close(closing)?;
    Some(Event::Description(Description {
        room: room.to_owned(),
        kind: SdpKind::parse(kind)?,
        sdp,
    }))
}

/// A candidate event, its line kept as the literal [`Reader::literal`] read.
pub(crate) fn candidate_event(
    room: &str,
    candidate: JsonText,
    sdp_mid: Option<String>,
    sdp_mline_index: Option<u32>,
    username_fragment: Option<String>,
) -> Event {
    Event::Candidate(Candidate {
        room: room.to_owned(),
        candidate,
        sdp_mid,
        sdp_mline_index,
        username_fragment,
    })
}
