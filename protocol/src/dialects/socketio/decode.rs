//! Client → gateway: one socket.io event to an [`Event`].
//!
//! A `msg` is read one way, whoever delivered it (the engine.io codec's frame, or a parsed
//! argument): its argument's literal is found in the event data
//! ([`read_event_data`]) and decoded as the SimpleP2P page writes it ([`signal`], at the
//! literal's escaping or, for an object argument, at the text's), or else unescaped once into
//! the page's JSON text and decoded by the general reader ([`decode_msg_text`]). The literal
//! itself is what socket.io peers receive; an SDP or candidate line is kept as JSON text.

use std::borrow::Cow;

use serde::de::{self, Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::types::{MSG_EVENT, NOTICE_EVENT, SioMessage};
use crate::dialects::Decoded;
use crate::dialects::common::{candidate_init, description_init, looks_like_object};
use crate::dialects::json::parse_object;
use crate::dialects::scan::{Escaping, Reader, candidate_event, description_rest};
use crate::{DecodeError, Event, Opaque};

/// What decoding one `msg` gives.
pub type Decoding = Result<Decoded<SioMessage>, DecodeError>;

/// What one socket.io event's data (`["name",<argument>,...]`) holds.
#[derive(Debug)]
pub enum EventData<'a> {
    /// A `msg`: its decoding, and its argument's literal (a JSON string), which a relay to
    /// socket.io peers forwards unchanged.
    Msg(Decoding, Cow<'a, str>),
    /// Any other event: its name, and its first argument's JSON text.
    Other(String, Option<&'a RawValue>),
}

/// Event data that holds no event the gateway can read.
#[derive(Debug, thiserror::Error)]
pub enum EventDataError {
    /// Not a JSON array starting with an event name.
    #[error("{0}")]
    Malformed(#[from] serde_json::Error),
    /// A `msg` without an argument.
    #[error("no argument")]
    NoArgument,
    /// A `msg` whose argument is neither a string nor an object.
    #[error("neither a string nor an object")]
    NotText,
}

impl EventDataError {
    /// The error a socket.io peer is told about.
    pub fn into_decode_error(self) -> DecodeError {
        match self {
            EventDataError::Malformed(e) => DecodeError::from(e),
            EventDataError::NoArgument | EventDataError::NotText => not_a_string(),
        }
    }
}

/// Reads socket.io event data (what follows the packet type, namespace and ack id). The data
/// of nearly every `msg` is `["msg","<text>"]`: the literal is then everything after the name,
/// read as it stands when it is the page's signal, otherwise taken when it parses as one JSON
/// string (that parse is its one unescaping); any other data is read by [`event_and_argument`].
pub fn read_event_data<'a>(room: &str, data: &'a str) -> Result<EventData<'a>, EventDataError> {
    if let Some(literal) = data
        .strip_prefix(r#"["msg","#)
        .and_then(|rest| rest.strip_suffix(']'))
        .filter(|literal| literal.starts_with('"'))
    {
        if let Some(event) = signal_literal(room, literal) {
            return Ok(EventData::Msg(
                Ok(Decoded::Event(event)),
                Cow::Borrowed(literal),
            ));
        }
        if let Ok(text) = serde_json::from_str::<String>(literal) {
            return Ok(EventData::Msg(
                decode_msg_general(room, &text),
                Cow::Borrowed(literal),
            ));
        }
    }
    let (name, argument) = event_and_argument(data)?;
    if name != MSG_EVENT {
        return Ok(EventData::Other(name, argument));
    }
    let argument = argument.ok_or(EventDataError::NoArgument)?;
    let (text, literal) = msg_argument(argument).ok_or(EventDataError::NotText)?;
    Ok(EventData::Msg(decode_msg_text(room, &text), literal))
}

/// The event name and first argument of socket.io event data (`["name",<argument>,...]`), the
/// argument borrowed from the data as its JSON text, so a relay can forward the sender's bytes.
/// Further arguments are checked as JSON and skipped: they are not part of the SimpleP2P
/// message.
///
/// The name is read as an owned string: as `&str`, a name with an escape in it failed with an
/// error that quoted the whole name, however long.
pub fn event_and_argument(data: &str) -> Result<(String, Option<&RawValue>), serde_json::Error> {
    struct EventArguments;

    impl<'de> Visitor<'de> for EventArguments {
        type Value = (String, Option<&'de RawValue>);

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an event name and its arguments")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = seq
                .next_element::<String>()?
                .ok_or_else(|| de::Error::invalid_length(0, &self))?;
            let argument = seq.next_element::<&RawValue>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok((name, argument))
        }
    }

    let mut de = serde_json::Deserializer::from_str(data);
    let read = de.deserialize_seq(EventArguments)?;
    de.end()?;
    Ok(read)
}

/// The text to decode and the literal to forward, from a `msg` argument: a JSON string (the
/// SimpleP2P page's `JSON.stringify` output), or an object a modern client emitted as is, which
/// socket.io peers then receive as its JSON text in a string. `None` for any other JSON type.
fn msg_argument(argument: &RawValue) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
    let json = argument.get();
    match json.as_bytes().first() {
        Some(b'"') => {
            let text: String = serde_json::from_str(json).ok()?;
            Some((Cow::Owned(text), Cow::Borrowed(json)))
        }
        Some(b'{') => {
            let literal = serde_json::to_string(json).ok()?;
            Some((Cow::Borrowed(json), Cow::Owned(literal)))
        }
        _ => None,
    }
}

/// The error for a `msg` argument that is neither a string nor an object.
pub fn not_a_string() -> DecodeError {
    DecodeError::WrongType {
        field: "msg",
        expected: "a JSON string",
    }
}

/// Decodes a socket.io event whose argument is already parsed (a notice, the golden files).
pub(crate) fn decode(room: &str, wire: &SioMessage) -> Decoding {
    if wire.event == NOTICE_EVENT {
        // `switchboard` `{type:"ice-servers"}` asks for ICE servers; the answer comes back on the
        // same event with `iceServers`. Anything else on it (an echoed notice) is dropped.
        let asks = wire.data.get("type").and_then(Value::as_str) == Some("ice-servers")
            && wire.data.get("iceServers").is_none();
        return Ok(if asks {
            Decoded::Event(Event::IceServersRequest)
        } else {
            Decoded::Ignore
        });
    }
    if wire.event != MSG_EVENT {
        return Ok(Decoded::Ignore);
    }
    let text = match &wire.data {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        obj @ Value::Object(_) => Cow::Owned(serde_json::to_string(obj)?),
        _ => return Err(not_a_string()),
    };
    decode_msg_text(room, &text)
}

/// Decodes the text of one `msg` argument (the string itself, or an object argument's JSON
/// text): the page's own signals in one pass ([`signal`]), anything else through
/// [`decode_msg_general`].
pub fn decode_msg_text(room: &str, text: &str) -> Decoding {
    if let Some(event) = signal(room, text, Escaping::Once) {
        return Ok(Decoded::Event(event));
    }
    decode_msg_general(room, text)
}

/// The SimpleP2P page's signals exactly as its `JSON.stringify` writes them,
/// `{"sdp":{"type","sdp"}}` and `{"candidate":{"candidate","sdpMid","sdpMLineIndex",
/// "usernameFragment"}}`, read in one pass ([`Reader`]) as JSON (`Once`) or as the content of
/// the `msg` literal (`Twice`): the SDP or candidate line kept as JSON text. Any other shape,
/// spacing or escape is `None`, for [`decode_msg_general`], which gives the same event for
/// every text this accepts (the tests and the `fast_paths` fuzz target hold them to it).
pub(crate) fn signal(room: &str, text: &str, escaping: Escaping) -> Option<Event> {
    let mut r = Reader::new(text, escaping);
    if r.token(r#"{"sdp":{"type":"#).is_some() {
        let kind = r.plain()?;
        return description_rest(r, room, kind, "}}");
    }
    let candidate = r.field(r#"{"candidate":{"candidate":"#, Reader::literal)?;
    let sdp_mid = r.field(r#","sdpMid":"#, Reader::string_or_null)?;
    let sdp_mline_index = r.field(r#","sdpMLineIndex":"#, Reader::index_or_null)?;
    let username_fragment = r.field(r#","usernameFragment":"#, Reader::string_or_null)?;
    r.close("}}")?;
    Some(candidate_event(
        room,
        candidate,
        sdp_mid,
        sdp_mline_index,
        username_fragment,
    ))
}

/// [`signal`] of a `msg` literal (a JSON string, quotes included), read without unescaping it.
pub(crate) fn signal_literal(room: &str, literal: &str) -> Option<Event> {
    let text = literal.strip_prefix('"')?.strip_suffix('"')?;
    signal(room, text, Escaping::Twice)
}

/// [`decode_msg_text`] without the one-pass read: every text through a `serde_json::Value`.
pub(crate) fn decode_msg_general(room: &str, text: &str) -> Decoding {
    let opaque = || {
        Ok(Decoded::Event(Event::Opaque(Opaque {
            room: room.to_owned(),
            payload: text.to_owned(),
        })))
    };
    if !looks_like_object(text) {
        return opaque();
    }
    let obj = match parse_object(text) {
        Ok(obj) => obj,
        Err(e @ DecodeError::TooDeep(_)) => return Err(e),
        Err(_) => return opaque(),
    };
    if let Some(Value::Object(sdp)) = obj.get("sdp") {
        return Ok(Decoded::Event(Event::Description(description_init(
            room, sdp,
        )?)));
    }
    if let Some(Value::Object(candidate)) = obj.get("candidate")
        && let Some(c) = candidate_init(room, candidate)?
    {
        return Ok(Decoded::Event(Event::Candidate(c)));
    }
    opaque()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::SdpKind;

    fn msg(data: &str) -> (Decoding, Cow<'_, str>) {
        match read_event_data("r", data) {
            Ok(EventData::Msg(decoding, literal)) => (decoding, literal),
            other => panic!("{data}: {other:?}"),
        }
    }

    #[test]
    fn object_arguments_are_read_as_their_json_text() {
        let wire = SioMessage {
            event: MSG_EVENT.into(),
            data: json!({ "sdp": { "type": "answer", "sdp": "v=0\r\n" } }),
        };
        let d = decode("r", &wire);
        assert!(
            matches!(d, Ok(Decoded::Event(Event::Description(_)))),
            "{d:?}"
        );
        assert_eq!(
            wire.msg_text().as_deref(),
            Some(r#"{"sdp":{"sdp":"v=0\r\n","type":"answer"}}"#)
        );
    }

    #[test]
    fn a_msg_is_read_one_way_however_its_data_is_written() {
        let offer = r#"["msg","{\"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}}"]"#;
        let spaced = r#"["msg","{ \"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}}"]"#;
        let more = r#"[ "msg" , "{\"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}}", 1 ]"#;
        for data in [offer, spaced, more] {
            let (decoded, literal) = msg(data);
            let Ok(Decoded::Event(Event::Description(d))) = decoded else {
                panic!("{data}: {decoded:?}");
            };
            assert_eq!((d.kind, d.sdp.as_str()), (SdpKind::Offer, "v=0\r\n"));
            // The argument as it came, found by the general reader too.
            let (name, argument) = event_and_argument(data).expect("valid data");
            assert_eq!(
                (name.as_str(), argument.map(RawValue::get)),
                ("msg", Some(literal.as_ref()))
            );
        }
    }

    #[test]
    fn an_object_argument_is_forwarded_as_its_text_in_a_string() {
        let (decoded, literal) = msg(r#"["msg",{"candidate":{"candidate":"c"}}]"#);
        assert!(matches!(decoded, Ok(Decoded::Event(Event::Candidate(_)))));
        assert_eq!(literal, r#""{\"candidate\":{\"candidate\":\"c\"}}""#);
    }

    #[test]
    fn data_without_a_readable_msg_is_refused_and_other_events_named() {
        for (data, refused) in [
            (r#"["msg"]"#, "no argument"),
            (r#"["msg",5]"#, "neither a string nor an object"),
            (r#"["msg","a\"]"#, "EOF"),
            (r#"{"msg":1}"#, "invalid type"),
        ] {
            let error = read_event_data("r", data).expect_err(data).to_string();
            assert!(error.contains(refused), "{data}: {error}");
        }
        assert!(matches!(
            read_event_data("r", r#"["switchboard",{"type":"x"}]"#),
            Ok(EventData::Other(name, Some(_))) if name == NOTICE_EVENT
        ));
    }

    /// Data that is not exactly `["msg","<text>"]` is read by the general event reader, with
    /// the same outcome as reading its argument by hand.
    #[test]
    fn anything_but_one_string_argument_takes_the_general_reader() {
        for data in [
            r#"["msg","a","b"]"#,
            r#"["msg",{"a":1}]"#,
            r#"["msg", "a"]"#,
            r#"["msg","a"] "#,
            r#"["msg","a\"]"#,
            r#"["msg","\u12"]"#,
            r#"["other","a"]"#,
            r#"["msg","{\"sdp\":{\"type\":\"offer\",\"sdp\":\"\"}}","b"]"#,
        ] {
            let by_hand = event_and_argument(data).map(|(name, argument)| {
                let text = argument.map(|a| match serde_json::from_str::<String>(a.get()) {
                    Ok(text) => text,
                    Err(_) => a.get().to_owned(),
                });
                (name, text)
            });
            match (read_event_data("r", data), by_hand) {
                (Ok(EventData::Msg(decoded, literal)), Ok((name, Some(text)))) => {
                    assert_eq!(name, MSG_EVENT, "{data}");
                    assert_eq!(
                        format!("{decoded:?}"),
                        format!("{:?}", decode_msg_text("r", &text)),
                        "{data}"
                    );
                    assert_eq!(
                        serde_json::from_str::<String>(&literal).ok().as_deref(),
                        Some(text.as_str()),
                        "{data}"
                    );
                }
                (Ok(EventData::Other(name, _)), Ok((other, _))) => assert_eq!(name, other),
                (Err(_), Err(_)) => {}
                (read, by_hand) => panic!("{data}: {read:?} against {by_hand:?}"),
            }
        }
    }

    #[test]
    fn other_events_are_ignored() {
        let wire = SioMessage {
            event: "chat".into(),
            data: json!(5),
        };
        assert!(matches!(decode("r", &wire), Ok(Decoded::Ignore)));
        assert_eq!(wire.msg_text(), None);
    }

    #[test]
    fn non_string_arguments_are_refused() {
        let wire = SioMessage {
            event: MSG_EVENT.into(),
            data: json!(5),
        };
        assert!(matches!(
            decode("r", &wire),
            Err(DecodeError::WrongType { field: "msg", .. })
        ));
    }
}
