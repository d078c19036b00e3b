//! [`JsonText`]: a string a peer sent inside JSON (an SDP, a candidate line), kept as the
//! sender's JSON text until someone needs its value.
//!
//! A relay rarely needs the value of an SDP: between peers of one dialect the sender's frame is
//! forwarded as it came, and a frame rendered for another peer (Ant Media's `takeConfiguration`
//! with `idMapping`, a raw or socket.io description) takes the string exactly as it was escaped
//! in the sender's. Decoding keeps the literal; only a plugin that reads the text, or a
//! serializer that must escape it its own way, unescapes it, once.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::escape::undo_outer_escaping;

/// A JSON string's value, held as the sender's literal (quotes and escapes as written) or as
/// plain text. Reads ([`JsonText::as_str`], `Deref`) unescape a literal on first use and keep
/// the result; equality and `Debug` are those of the value, however it is held.
///
/// It is the size of a `String`: events are moved from the decoder to the bus and on, and a
/// larger candidate made every event too large to be moved without a call to `memcpy`, which
/// every relayed socket.io message paid (BENCHMARKS.md, "Profiling figures (moved from code
/// comments)").
#[derive(Clone)]
pub struct JsonText(Repr);

#[derive(Clone)]
enum Repr {
    /// Text built from a plain string, or read from a literal without escapes (nearly every
    /// candidate line): what its quotes hold is then its value, which serde_json escapes back
    /// into the same literal (it escapes only quotes, backslashes and control characters).
    Value(String),
    /// A JSON string literal with escapes, quotes included, checked when it was read.
    Literal(Box<Literal>),
}

#[derive(Clone)]
struct Literal {
    json: String,
    /// Whether `json` is written as it stands inside another JSON string (a socket.io `msg`
    /// literal: `\"v=0\\r\\n…\"`). Kept so, a socket.io offer relayed to socket.io peers is
    /// never rewritten; [`JsonText::write_json`] undoes the outer level for another dialect.
    twice: bool,
    /// The value, unescaped from `json` on first read when it has escapes.
    value: OnceLock<String>,
}

impl Default for JsonText {
    fn default() -> Self {
        JsonText(Repr::Value(String::new()))
    }
}

impl JsonText {
    /// Keeps `literal`, which the caller has read as one valid JSON string literal.
    pub(crate) fn from_checked_literal(literal: Cow<'_, str>) -> Self {
        if memchr::memchr(b'\\', literal.as_bytes()).is_none() {
            let value = match literal {
                Cow::Borrowed(json) => unquoted(json).to_owned(),
                Cow::Owned(mut json) => {
                    json.pop();
                    json.remove(0);
                    json
                }
            };
            return JsonText(Repr::Value(value));
        }
        JsonText(Repr::Literal(Box::new(Literal {
            json: literal.into_owned(),
            twice: false,
            value: OnceLock::new(),
        })))
    }

    /// Keeps `literal`, a JSON string literal written inside another JSON string (from its
    /// `\"` to its `\"`), which the caller has read as one valid such literal. A literal
    /// whose only escapes are its quotes (nearly every candidate line) is held as its value.
    pub(crate) fn from_checked_literal_twice(literal: &str) -> Self {
        let inner = literal
            .get(2..literal.len().saturating_sub(2))
            .unwrap_or_default();
        if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
            return JsonText(Repr::Value(inner.to_owned()));
        }
        JsonText(Repr::Literal(Box::new(Literal {
            json: literal.to_owned(),
            twice: true,
            value: OnceLock::new(),
        })))
    }

    /// The value, unescaped (on the first call, for a literal with escapes).
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Value(value) => value,
            Repr::Literal(literal) => literal.value(),
        }
    }

    /// The value as an owned string.
    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Value(value) => value,
            Repr::Literal(literal) => match literal.value.get() {
                Some(_) => literal.value.into_inner().unwrap_or_default(),
                None => literal.value().to_owned(),
            },
        }
    }

    /// The length of what is held (the value, or the kept literal with its escapes), without
    /// unescaping anything: what this text weighs in a queue.
    pub fn held_len(&self) -> usize {
        match &self.0 {
            Repr::Value(value) => value.len(),
            Repr::Literal(literal) => literal.json.len(),
        }
    }

    /// Whether the sender's literal, with its escapes, is kept (rather than a value: built from a
    /// plain string, or read from a literal without escapes).
    pub fn is_literal(&self) -> bool {
        matches!(self.0, Repr::Literal(_))
    }

    /// Appends the value as a JSON string: the sender's literal when it was kept, otherwise the
    /// value escaped as serde_json escapes it.
    pub(crate) fn write_json(&self, out: &mut String) {
        match &self.0 {
            Repr::Literal(literal) if literal.twice => literal.write_once_escaped(out),
            Repr::Literal(literal) => out.push_str(&literal.json),
            Repr::Value(value) => out.push_str(&json_string(value)),
        }
    }

    /// About how many bytes [`Self::write_json`] appends: exact for a kept literal.
    pub(crate) fn json_len_hint(&self) -> usize {
        match &self.0 {
            Repr::Literal(literal) => literal.json.len(),
            Repr::Value(value) => value.len() + 2,
        }
    }
}

impl Literal {
    fn value(&self) -> &str {
        // The literal was checked as a JSON string when it was read, so this cannot fail.
        self.value.get_or_init(|| {
            if !self.twice {
                return serde_json::from_str(&self.json).unwrap_or_default();
            }
            let mut once = String::new();
            undo_outer_escaping(&self.json, &mut once)
                .and_then(|()| serde_json::from_str(&once).ok())
                .unwrap_or_default()
        })
    }

    /// A literal kept escaped twice, as plain JSON writes it.
    fn write_once_escaped(&self, out: &mut String) {
        // Checked when it was read, so this cannot fail; were it to, the value (then empty).
        if undo_outer_escaping(&self.json, out).is_none() {
            out.push_str("\"\"");
        }
    }
}

/// What the quotes of a literal without escapes hold.
fn unquoted(json: &str) -> &str {
    json.get(1..json.len().saturating_sub(1))
        .unwrap_or_default()
}

/// `text` as a JSON string literal (serializing a `str` cannot fail).
pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

impl From<String> for JsonText {
    fn from(value: String) -> Self {
        JsonText(Repr::Value(value))
    }
}

impl From<&str> for JsonText {
    fn from(value: &str) -> Self {
        JsonText::from(value.to_owned())
    }
}

impl From<JsonText> for String {
    fn from(text: JsonText) -> Self {
        text.into_string()
    }
}

impl Deref for JsonText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for JsonText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonText {}

impl PartialEq<str> for JsonText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for JsonText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for JsonText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialized as its value, like any string (cluster frames, the native plugin ABI, golden
/// files). The relay's own frames are written with [`JsonText::write_json`].
impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(JsonText::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(json: &str) -> JsonText {
        JsonText::from_checked_literal(Cow::Borrowed(json))
    }

    #[test]
    fn a_literal_reads_as_its_value_and_writes_as_it_came() {
        let text = literal(r#""v=0\r\na=x:\"q\" \u00e9\/""#);
        assert_eq!(text.as_str(), "v=0\r\na=x:\"q\" é/");
        let mut out = String::new();
        text.write_json(&mut out);
        assert_eq!(out, r#""v=0\r\na=x:\"q\" \u00e9\/""#);
        assert_eq!(text.json_len_hint(), out.len());
        // Serialized as a value, escaped as serde_json escapes any string.
        assert_eq!(
            serde_json::to_string(&text).ok().as_deref(),
            Some(r#""v=0\r\na=x:\"q\" é/""#)
        );
        assert_eq!(text.clone().into_string(), "v=0\r\na=x:\"q\" é/");
    }

    #[test]
    fn a_literal_without_escapes_is_read_in_place() {
        let text = literal(r#""candidate:1 1 udp 1 127.0.0.1 9 typ host""#);
        assert_eq!(text, "candidate:1 1 udp 1 127.0.0.1 9 typ host");
        assert!(matches!(text.0, Repr::Value(_)), "its value, with no cache");
        let mut out = String::new();
        text.write_json(&mut out);
        assert_eq!(out, r#""candidate:1 1 udp 1 127.0.0.1 9 typ host""#);
        let escaped = literal(r#""a\/b""#);
        let Repr::Literal(kept) = &escaped.0 else {
            panic!("not kept");
        };
        assert!(kept.value.get().is_none(), "unescaped before it was read");
        assert_eq!(escaped, "a/b");
        assert!(kept.value.get().is_some(), "unescaped once, and kept");
    }

    /// A socket.io `msg` literal holds the page's JSON escaped twice: an SDP read there is kept
    /// as written, and only a reader or another dialect's rendering undoes the outer level.
    #[test]
    fn a_literal_escaped_twice_is_kept_and_written_once_escaped() {
        let twice = r#"\"v=0\\r\\na=x:\\\"q\\\" \/\\\\/\""#;
        let text = JsonText::from_checked_literal_twice(twice);
        let Repr::Literal(kept) = &text.0 else {
            panic!("not kept");
        };
        assert_eq!(kept.json, twice, "the sender's text, not rewritten");
        assert!(kept.value.get().is_none());
        let mut out = String::new();
        text.write_json(&mut out);
        assert_eq!(out, r#""v=0\r\na=x:\"q\" /\\/""#);
        assert_eq!(text, "v=0\r\na=x:\"q\" /\\/");
        assert_eq!(
            serde_json::from_str::<String>(&out).ok().as_deref(),
            Some(text.as_str())
        );
        // Only its quotes escaped: its value, like a plain literal without escapes.
        let plain = JsonText::from_checked_literal_twice(r#"\"candidate:1 1 udp\""#);
        assert!(matches!(&plain.0, Repr::Value(v) if v == "candidate:1 1 udp"));
    }

    #[test]
    fn literal_and_plain_text_of_one_value_are_equal() {
        assert_eq!(literal(r#""a\nb""#), JsonText::from("a\nb"));
        assert_ne!(literal(r#""a\nb""#), JsonText::from("a\\nb"));
        let mut out = String::new();
        JsonText::from("a\nb").write_json(&mut out);
        assert_eq!(out, r#""a\nb""#);
        assert_eq!(JsonText::default(), "");
    }

    /// Events move from the decoder through the bus by value; a `JsonText` larger than a
    /// `String` made them too large to move without a `memcpy` call (BENCHMARKS.md).
    #[test]
    fn is_the_size_of_a_string() {
        assert_eq!(size_of::<JsonText>(), size_of::<String>());
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let text: JsonText = serde_json::from_str(r#""x\ty""#).expect("a string");
        assert_eq!(text, "x\ty");
        assert!(!text.is_literal());
    }
}
