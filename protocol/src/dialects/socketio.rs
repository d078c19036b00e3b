//! socket.io dialect of the SimpleP2P tutorial: the `msg` event whose single argument is a JSON
//! *string*, `{"sdp":{type,sdp}}` or `{"candidate":{candidate,sdpMid,sdpMLineIndex}}`
//! (`docs/protocol/socketio.md` section 1).
//!
//! Between socket.io peers the `msg` string is forwarded byte-identical: the page calls
//! `JSON.parse(msg)`, so it must stay a string. Gateway notices use a separate event,
//! `switchboard`, whose argument is an object; the classic page has no handler for it.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::{self, Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::common::{
    CandidateInit, DescriptionInit, candidate_init, description_init, ice_server_list,
    looks_like_object, to_text,
};
use super::json::parse_object;
use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, Event, Opaque};

/// The event that carries peer signals.
pub const MSG_EVENT: &str = "msg";
/// The event that carries gateway notices.
pub const NOTICE_EVENT: &str = "switchboard";

/// socket.io `msg` relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketIo;

/// One socket.io event as socketioxide delivers it: the event name and its first argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SioMessage {
    /// Event name, e.g. `msg`.
    pub event: String,
    /// The first argument.
    pub data: serde_json::Value,
}

impl SioMessage {
    /// A `msg` event carrying `text` as a string argument, as the classic page sends it.
    pub fn msg(text: impl Into<String>) -> Self {
        SioMessage {
            event: MSG_EVENT.to_owned(),
            data: Value::String(text.into()),
        }
    }

    /// The text of a `msg` argument: the string itself, or the compact JSON of an object that a
    /// modern client emitted without `JSON.stringify`. This is the `original` to pass to
    /// [`Dialect::forward`]. `None` for other events and other argument types.
    pub fn msg_text(&self) -> Option<Cow<'_, str>> {
        if self.event != MSG_EVENT {
            return None;
        }
        match &self.data {
            Value::String(s) => Some(Cow::Borrowed(s)),
            obj @ Value::Object(_) => serde_json::to_string(obj).ok().map(Cow::Owned),
            _ => None,
        }
    }
}

/// Per-connection socket.io state: the room from the handshake or the listener.
#[derive(Debug, Default)]
pub struct SioState {
    /// The room this socket is in.
    pub room: String,
}

impl Dialect for SocketIo {
    type Wire = SioMessage;
    type Input = SioMessage;
    type State = SioState;
    const KIND: DialectKind = DialectKind::Socketio;

    fn decode(state: &mut SioState, wire: &SioMessage) -> Result<Decoded<SioMessage>, DecodeError> {
        decode(&state.room, wire)
    }

    fn encode(_: &SioState, event: &Event) -> Option<SioMessage> {
        encode(event)
    }

    /// Signals between socket.io peers keep the sender's exact `msg` string.
    fn forward(_: &SioState, original: &str, event: &Event) -> Option<SioMessage> {
        if forwards_verbatim(event) {
            Some(SioMessage::msg(original))
        } else {
            encode(event)
        }
    }
}

/// Whether a socket.io peer receives `event` from another socket.io peer as the sender's own
/// `msg` string (peer signals and anything the gateway does not understand), rather than
/// re-encoded.
pub fn forwards_verbatim(event: &Event) -> bool {
    matches!(
        event,
        Event::Description(_) | Event::Candidate(_) | Event::Opaque(_)
    )
}

// === reading event data ===

/// A `msg` whose event data is exactly `["msg","<text>"]`, as the SimpleP2P page and every
/// socket.io client write it: its decoding, and the argument's literal to forward. A
/// description or candidate of the page's usual shape is read straight from the literal in
/// one pass ([`super::exact`]); other text is unescaped and decoded. `None` for any other
/// data (the literal is not exactly one JSON string), which takes [`event_and_argument`]. This
/// saves a scan: the general reader walks all of the data to find where the argument ends, and
/// the argument is then unescaped in a second walk.
pub fn sole_msg<'a>(room: &str, data: &'a str) -> Option<(Decoding, &'a str)> {
    let literal = data.strip_prefix(r#"["msg","#)?.strip_suffix(']')?;
    if !literal.starts_with('"') {
        return None;
    }
    if let Some(event) = super::exact::socketio_literal(room, literal) {
        return Some((Ok(Decoded::Event(event)), literal));
    }
    // Parsing the literal checks it whole (one string, nothing after it).
    let text = serde_json::from_str::<String>(literal).ok()?;
    Some((decode_msg_text(room, &text), literal))
}

/// What decoding one `msg` gives.
pub type Decoding = Result<Decoded<SioMessage>, DecodeError>;

/// The event name and first argument of socket.io event data (`["name",<argument>,...]`), the
/// argument borrowed from the data as its JSON text, so a relay can forward the sender's bytes.
/// Further arguments are checked as JSON and skipped: they are not part of the SimpleP2P
/// message.
///
/// The name is read as an owned string: as `&str`, a name with an escape in it failed with an
/// error that quoted the whole name, however long.
pub fn event_and_argument(data: &str) -> Result<(String, Option<&RawValue>), serde_json::Error> {
    struct EventData;

    impl<'de> Visitor<'de> for EventData {
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
    let read = de.deserialize_seq(EventData)?;
    de.end()?;
    Ok(read)
}

/// The text to decode and the literal to forward, from a `msg` argument: a JSON string (the
/// SimpleP2P page's `JSON.stringify` output), or an object a modern client emitted as is, which
/// socket.io peers then receive as its JSON text in a string. `None` for any other JSON type.
pub fn msg_argument(argument: &RawValue) -> Option<(Cow<'_, str>, Cow<'_, str>)> {
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

// === decode ===

pub(crate) fn decode(room: &str, wire: &SioMessage) -> Result<Decoded<SioMessage>, DecodeError> {
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
/// text). Servers that read the argument straight off the socket.io packet call this without
/// building a [`SioMessage`].
pub fn decode_msg_text(room: &str, text: &str) -> Result<Decoded<SioMessage>, DecodeError> {
    if looks_like_object(text)
        && let Some(event) = super::fast::socketio(room, text)
    {
        return Ok(Decoded::Event(event));
    }
    decode_msg_general(room, text)
}

/// [`decode_msg_text`] without the typed fast path: every text through a `serde_json::Value`.
pub(crate) fn decode_msg_general(
    room: &str,
    text: &str,
) -> Result<Decoded<SioMessage>, DecodeError> {
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

// === encode ===

#[derive(Serialize)]
struct SdpSignal<'a> {
    sdp: DescriptionInit<'a>,
}

#[derive(Serialize)]
struct CandidateSignal<'a> {
    candidate: CandidateInit<'a>,
}

pub(crate) fn encode(event: &Event) -> Option<SioMessage> {
    let notice = |data: Value| {
        Some(SioMessage {
            event: NOTICE_EVENT.to_owned(),
            data,
        })
    };
    match event {
        Event::Description(d) => to_text(&SdpSignal { sdp: d.into() }).map(SioMessage::msg),
        Event::Candidate(c) => to_text(&CandidateSignal {
            candidate: c.into(),
        })
        .map(SioMessage::msg),
        Event::Opaque(o) => Some(SioMessage::msg(o.payload.as_str())),
        Event::Joined(n) => notice(json!({ "type": "joined", "room": n.room })),
        Event::Start(n) => notice(json!({ "type": "start", "room": n.room })),
        Event::PeerJoined(n) => notice(json!({ "type": "peer-joined", "room": n.room })),
        Event::PeerLeft(n) => notice(json!({ "type": "peer-left", "room": n.room })),
        Event::PeerMessage(m) => notice(json!({
            "type": "peer-message",
            "room": m.room,
            "definition": m.definition,
            "data": m.data,
        })),
        Event::IceServers(ice) => {
            notice(json!({ "type": "ice-servers", "iceServers": ice_server_list(ice) }))
        }
        Event::ServerWillStop => notice(json!({ "type": "server-will-stop" })),
        Event::Error(e) => {
            let mut data =
                json!({ "type": "error", "code": e.code.as_str(), "message": e.message });
            if let (Some(room), Value::Object(map)) = (&e.room, &mut data) {
                map.insert("room".to_owned(), Value::String(room.clone()));
            }
            notice(data)
        }
        // A socket.io peer leaves by disconnecting; there is nothing to acknowledge.
        // Conference requests come only from Ant peers, and only they are answered.
        Event::Left(_)
        | Event::Join(_)
        | Event::Leave(_)
        | Event::IceServersRequest
        | Event::Conference(_)
        | Event::ConferenceReply(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SdpKind;

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
    fn a_lone_string_argument_is_taken_as_it_came() {
        let offer = r#"["msg","{\"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}}"]"#;
        let spaced = r#"["msg","{ \"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}}"]"#;
        // The first is read from the literal, the second (spacing) unescaped and decoded.
        for data in [offer, spaced] {
            let (decoded, literal) = sole_msg("r", data).expect("the SimpleP2P shape");
            let Ok(Decoded::Event(Event::Description(d))) = decoded else {
                panic!("{data}: {decoded:?}");
            };
            assert_eq!((d.kind, d.sdp.as_str()), (SdpKind::Offer, "v=0\r\n"));
            assert_eq!(literal, &data[7..data.len() - 1]);
            // The general reader finds the same argument.
            let (name, argument) = event_and_argument(data).expect("valid data");
            assert_eq!(
                (name.as_str(), argument.map(RawValue::get)),
                ("msg", Some(literal))
            );
        }
    }

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
            assert!(sole_msg("r", data).is_none(), "{data}");
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
