//! [`JsonText`]: a string a peer sent inside JSON (an SDP, a candidate line), kept as the
//! sender's JSON text until someone needs its value.
//!
//! A relay rarely needs the value of an SDP: between peers of one dialect the sender's frame is
//! forwarded as it came, and between Ant Media and raw peers (both plain JSON) the string is
//! written into the receiver's frame exactly as it was escaped in the sender's. Decoding keeps
//! the literal; only a plugin that reads the text, or a dialect that must escape it differently
//! (socket.io, whose signals are JSON inside a JSON string), unescapes it, once.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON string's value, held as the sender's literal (quotes and escapes as written) or as
/// plain text. Reads ([`JsonText::as_str`], `Deref`) unescape a literal on first use and keep
/// the result; equality, ordering of the bytes and `Debug` are those of the value, however it
/// is held. Serialized into JSON, a literal is written back byte-identical.
#[derive(Clone, Default)]
pub struct JsonText {
    /// The sender's literal, quotes included; `None` for text built from a plain string.
    literal: Option<Box<RawValue>>,
    /// The value: given, or unescaped from `literal` on first read when it has escapes.
    value: OnceLock<String>,
}

impl JsonText {
    /// The text of a JSON string literal, kept as written. `None` when `literal` is not a JSON
    /// string (a number, an object, `null`, ...).
    pub fn from_literal(literal: &RawValue) -> Option<Self> {
        literal.get().starts_with('"').then(|| JsonText {
            literal: Some(literal.to_owned()),
            value: OnceLock::new(),
        })
    }

    /// The value, unescaped (on the first call, for a literal with escapes).
    pub fn as_str(&self) -> &str {
        if let Some(value) = self.value.get() {
            return value;
        }
        let Some(literal) = &self.literal else {
            // Built from a plain string, whose value is always set, or the empty default.
            return "";
        };
        let json = literal.get();
        let inner = json
            .get(1..json.len().saturating_sub(1))
            .unwrap_or_default();
        if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
            return inner;
        }
        // `literal` was checked as a JSON string when it was read, so this cannot fail.
        self.value
            .get_or_init(|| serde_json::from_str(json).unwrap_or_default())
    }

    /// The value as an owned string.
    pub fn into_string(self) -> String {
        if self.value.get().is_some() {
            return self.value.into_inner().unwrap_or_default();
        }
        self.as_str().to_owned()
    }

    /// The JSON string literal of the value: the sender's own when it was kept, otherwise the
    /// value escaped (`None` only if that fails, which it cannot for a `String`).
    pub fn to_literal(&self) -> Option<String> {
        match &self.literal {
            Some(literal) => Some(literal.get().to_owned()),
            None => serde_json::to_string(self.as_str()).ok(),
        }
    }

    /// About how many bytes the value takes written as JSON: exact for a kept literal. For
    /// sizing the buffer a frame is rendered into.
    pub(crate) fn json_len_hint(&self) -> usize {
        match &self.literal {
            Some(literal) => literal.get().len(),
            None => self.as_str().len() + 2,
        }
    }

    /// Whether the sender's literal is kept (the value was not built from a plain string).
    pub fn is_literal(&self) -> bool {
        self.literal.is_some()
    }
}

impl From<String> for JsonText {
    fn from(value: String) -> Self {
        JsonText {
            literal: None,
            value: OnceLock::from(value),
        }
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

/// A kept literal is written as it came (serde_json writes a `RawValue` verbatim); plain text
/// is escaped as any string. Events are only ever serialized as JSON.
impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.literal {
            Some(literal) => literal.serialize(serializer),
            None => serializer.serialize_str(self.as_str()),
        }
    }
}

/// Read as a plain string: events arrive in tagged enums, which serde buffers, and a buffered
/// value cannot be borrowed as a literal.
impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(JsonText::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(json: &str) -> JsonText {
        let raw: &RawValue = serde_json::from_str(json).expect("valid JSON");
        JsonText::from_literal(raw).expect("a string literal")
    }

    #[test]
    fn a_literal_reads_as_its_value_and_writes_as_it_came() {
        let text = literal(r#""v=0\r\na=x:\"q\" \u00e9\/""#);
        assert_eq!(text.as_str(), "v=0\r\na=x:\"q\" é/");
        assert_eq!(
            serde_json::to_string(&text).ok().as_deref(),
            Some(r#""v=0\r\na=x:\"q\" \u00e9\/""#)
        );
        assert_eq!(text.clone().into_string(), "v=0\r\na=x:\"q\" é/");
    }

    #[test]
    fn a_literal_without_escapes_is_read_in_place() {
        let text = literal(r#""candidate:1 1 udp 1 127.0.0.1 9 typ host""#);
        assert_eq!(text, "candidate:1 1 udp 1 127.0.0.1 9 typ host");
        assert!(text.value.get().is_none(), "no copy was made");
    }

    #[test]
    fn literal_and_plain_text_of_one_value_are_equal() {
        assert_eq!(literal(r#""a\nb""#), JsonText::from("a\nb"));
        assert_ne!(literal(r#""a\nb""#), JsonText::from("a\\nb"));
        assert_eq!(
            serde_json::to_string(&JsonText::from("a\nb"))
                .ok()
                .as_deref(),
            Some(r#""a\nb""#)
        );
    }

    #[test]
    fn only_strings_are_literals() {
        for json in ["1", "null", "{}", "[]", "true"] {
            let raw: &RawValue = serde_json::from_str(json).expect("valid JSON");
            assert!(JsonText::from_literal(raw).is_none(), "{json}");
        }
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let text: JsonText = serde_json::from_str(r#""x\ty""#).expect("a string");
        assert_eq!(text, "x\ty");
        assert!(!text.is_literal());
    }
}
