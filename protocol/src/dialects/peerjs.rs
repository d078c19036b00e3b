//! PeerJS dialect: the JSON messages the `peerjs` 1.5 client exchanges with its server (`peer`
//! on npm) over `ws://HOST/peerjs?key=…&id=…&token=…`.
//!
//! A PeerJS peer names whom it calls in each message's `dst`; the gateway reads that id as a
//! room. Every PeerJS connection owns the room of its own id (it joins it on connect), so a
//! PeerJS page calling `B` meets the PeerJS page registered as `B`, and a PeerJS page calling
//! `R` meets the Ant Media, socket.io or raw peer that joined room `R`. The session joins a
//! `dst` room the first time it signals into it ([`super::TextFrames::implied_join`]).
//!
//! Between two PeerJS peers a message is forwarded as the `peer` server forwards it:
//! `{"type":…,"src":<sender id>,"dst":…,"payload":<the sender's payload bytes>}`; media and
//! data connections alike. To peers of other dialects an `OFFER`/`ANSWER` is an SDP description
//! and a `CANDIDATE` an ICE candidate; what they send back is rendered with `src` = the room and
//! the `connectionId` of the PeerJS call into that room. The mapping is in
//! `docs/dialect-spec.md` ("PeerJS").

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::common::{
    CandidateInit, ECHO_CHARS, candidate_init, description_init, opt_str, req_str, to_text,
    truncate,
};
use super::json::parse_object;
use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, ErrorCode, Event, Join, JoinMode, MAX_ID_BYTES, Opaque, SdpKind};

/// The `key` a PeerJS client sends when its page sets none (`Peer.DEFAULT_KEY`).
pub const DEFAULT_KEY: &str = "peerjs";

/// The calls one connection remembers (one per room it signalled into). A bound on per-connection
/// state; the session's own `max_rooms_per_session` refuses joins well before it.
pub const MAX_CALLS: usize = 64;

/// The PeerJS server protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peerjs;

/// Per-connection PeerJS state.
#[derive(Debug, Default)]
pub struct PeerjsState {
    /// This connection's id (the `id` of its URL): the `src` of what it sends and the room it
    /// owns.
    pub id: String,
    /// The `token` of its URL, handed to room policy as the token of every join.
    pub token: Option<String>,
    /// The latest call into each room: its `connectionId` and type, so that what peers of other
    /// dialects answer reaches the PeerJS connection that called. At most [`MAX_CALLS`].
    calls: Vec<(String, Call)>,
}

impl PeerjsState {
    /// The state of a connection registered as `id`.
    pub fn new(id: impl Into<String>, token: Option<String>) -> Self {
        Self {
            id: id.into(),
            token,
            calls: Vec::new(),
        }
    }

    fn call(&self, room: &str) -> Option<&Call> {
        self.calls.iter().find(|(r, _)| r == room).map(|(_, c)| c)
    }

    fn remember(&mut self, room: &str, call: Call) {
        if let Some(slot) = self.calls.iter_mut().find(|(r, _)| r == room) {
            slot.1 = call;
        } else if self.calls.len() < MAX_CALLS {
            self.calls.push((room.to_owned(), call));
        }
    }
}

/// A PeerJS connection: its `connectionId` (`mc_…` media, `dc_…` data) and `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    connection_id: String,
    kind: String,
}

impl super::TextFrames for Peerjs {
    /// The `peer` server's first frame on a registered connection.
    fn greeting(_: &PeerjsState) -> Option<String> {
        Some(r#"{"type":"OPEN"}"#.to_owned())
    }

    /// The part a PeerJS receiver gets is the sender's message re-addressed with its `src`,
    /// built here once for every receiver.
    fn decode_relayable<'a>(
        state: &mut PeerjsState,
        frame: &'a str,
    ) -> Result<(Decoded<String>, Option<Cow<'a, str>>), DecodeError> {
        decode(state, frame).map(|(decoded, forward)| (decoded, forward.map(Cow::Owned)))
    }

    fn forwards_frame(_: &PeerjsState, event: &Event) -> bool {
        matches!(
            event,
            Event::Description(_) | Event::Candidate(_) | Event::Opaque(_)
        )
    }

    /// A PeerJS peer signals into the room of the id it calls without asking to join it.
    fn implied_join(state: &PeerjsState, event: &Event) -> Option<Join> {
        match event {
            Event::Description(_) | Event::Candidate(_) => Some(Join {
                room: event.room()?.to_owned(),
                mode: JoinMode::Both,
                token: state.token.clone(),
            }),
            _ => None,
        }
    }
}

impl Dialect for Peerjs {
    type Wire = String;
    type Input = str;
    type State = PeerjsState;
    const KIND: DialectKind = DialectKind::Peerjs;

    fn decode(state: &mut PeerjsState, wire: &str) -> Result<Decoded<String>, DecodeError> {
        decode(state, wire).map(|(decoded, _)| decoded)
    }

    fn encode(state: &PeerjsState, event: &Event) -> Option<String> {
        encode(state, event)
    }

    /// Between PeerJS peers the sender's re-addressed message goes on unchanged.
    fn forward(state: &PeerjsState, original: &str, event: &Event) -> Option<String> {
        if <Self as super::TextFrames>::forwards_frame(state, event) {
            Some(original.to_owned())
        } else {
            encode(state, event)
        }
    }
}

// === ids ===

/// Whether `id` is an id the `peerjs` client itself accepts (`util.validateId`: words of
/// `[A-Za-z0-9]` joined by single spaces, `_` or `-`), at most [`MAX_ID_BYTES`] bytes.
pub fn valid_id(id: &str) -> bool {
    let separator = |b: u8| matches!(b, b' ' | b'_' | b'-');
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_ID_BYTES
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || separator(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !bytes.windows(2).any(|w| separator(w[0]) && separator(w[1]))
}

/// Whether `dst` can name a room: what any dialect's room may be called (Ant stream ids have
/// dots, socket.io rooms anything printable), bounded like every id.
fn valid_dst(dst: &str) -> bool {
    !dst.is_empty() && dst.len() <= MAX_ID_BYTES && !dst.chars().any(char::is_control)
}

// === decode ===

/// Decodes one client message; with a relayed signal, also the message a PeerJS receiver gets.
fn decode(
    state: &mut PeerjsState,
    text: &str,
) -> Result<(Decoded<String>, Option<String>), DecodeError> {
    let obj = parse_object(text)?;
    let kind = req_str(&obj, "type")?;
    match kind {
        "HEARTBEAT" => Ok((Decoded::Ignore, None)),
        "OFFER" | "ANSWER" | "CANDIDATE" => {
            let dst = dst(&obj)?.ok_or(DecodeError::MissingField("dst"))?;
            let payload = match obj.get("payload") {
                Some(Value::Object(p)) => p,
                Some(_) => {
                    return Err(DecodeError::WrongType {
                        field: "payload",
                        expected: "an object",
                    });
                }
                None => return Err(DecodeError::MissingField("payload")),
            };
            let event = signal(kind, dst, payload)?;
            if kind == "OFFER" {
                remember_call(state, dst, payload)?;
            }
            let forward = readdress(&state.id, kind, dst, text)?;
            Ok((Decoded::Event(event), Some(forward)))
        }
        // Older clients tell each other they left or gave up; peers of other dialects could not
        // read it. Without `dst` the `peer` server reads LEAVE as "unregister me": the socket
        // close does that here.
        "LEAVE" | "EXPIRE" => match dst(&obj)? {
            Some(dst) => {
                let forward = readdress(&state.id, kind, dst, text)?;
                let event = Event::Opaque(Opaque {
                    room: dst.to_owned(),
                    payload: forward.clone(),
                });
                Ok((Decoded::Event(event), Some(forward)))
            }
            None => Ok((Decoded::Ignore, None)),
        },
        other => Err(DecodeError::UnknownCommand(truncate(other, ECHO_CHARS))),
    }
}

/// The `dst` field, when present: a string that can name a room.
fn dst(obj: &Map<String, Value>) -> Result<Option<&str>, DecodeError> {
    match opt_str(obj, "dst")? {
        None => Ok(None),
        Some(d) if valid_dst(d) => Ok(Some(d)),
        Some(d) => Err(DecodeError::InvalidValue {
            field: "dst",
            value: truncate(d, ECHO_CHARS),
        }),
    }
}

/// An `OFFER`/`ANSWER` payload's `sdp` (an `RTCSessionDescriptionInit`) or a `CANDIDATE`
/// payload's `candidate` (an `RTCIceCandidateInit`), addressed to room `dst`.
fn signal(kind: &str, dst: &str, payload: &Map<String, Value>) -> Result<Event, DecodeError> {
    if kind == "CANDIDATE" {
        let Some(Value::Object(c)) = payload.get("candidate") else {
            return Err(DecodeError::MissingField("candidate"));
        };
        // The client never sends the end-of-candidates mark (it skips empty candidates).
        return candidate_init(dst, c)?
            .map(Event::Candidate)
            .ok_or(DecodeError::MissingField("candidate"));
    }
    let Some(Value::Object(sdp)) = payload.get("sdp") else {
        return Err(DecodeError::MissingField("sdp"));
    };
    let description = description_init(dst, sdp)?;
    // The client hands `sdp` to `setRemoteDescription` as it is; an ANSWER may carry any
    // description that answers (a provisional one, or a rollback).
    let fits = match description.kind {
        SdpKind::Offer => kind == "OFFER",
        SdpKind::Answer | SdpKind::Pranswer | SdpKind::Rollback => kind == "ANSWER",
    };
    if !fits {
        return Err(DecodeError::InvalidValue {
            field: "type",
            value: description.kind.as_str().to_owned(),
        });
    }
    Ok(Event::Description(description))
}

/// Keeps the `connectionId` and `type` of a call into `room`, which answers from other dialects
/// must carry back.
fn remember_call(
    state: &mut PeerjsState,
    room: &str,
    payload: &Map<String, Value>,
) -> Result<(), DecodeError> {
    let connection_id = opt_str(payload, "connectionId")?.unwrap_or_default();
    let kind = opt_str(payload, "type")?.unwrap_or("media");
    let bounded = |s: &str| s.len() <= MAX_ID_BYTES;
    if !bounded(connection_id) || !bounded(kind) {
        return Err(DecodeError::InvalidValue {
            field: "connectionId",
            value: truncate(connection_id, ECHO_CHARS),
        });
    }
    let call = Call {
        connection_id: connection_id.to_owned(),
        kind: kind.to_owned(),
    };
    state.remember(room, call);
    Ok(())
}

/// The message as the `peer` server forwards it: `type`, `src` (the sender, whatever the
/// message claimed), `dst`, and the payload's own bytes.
fn readdress(src: &str, kind: &str, dst: &str, text: &str) -> Result<String, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        payload: Option<&'a RawValue>,
    }
    let payload = serde_json::from_str::<Payload<'_>>(text)?.payload;
    to_text(&addressed(kind, src, dst, payload)).ok_or(DecodeError::MissingField("payload"))
}

// === encode ===

/// A server message, in the `peer` server's key order.
#[derive(Serialize)]
struct Outgoing<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
}

/// An `OFFER`/`ANSWER` payload as the client builds it.
#[derive(Serialize)]
struct SdpPayload<'a> {
    sdp: SdpInit<'a>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "connectionId")]
    connection_id: &'a str,
}

/// The description as the client's `JSON.stringify(RTCSessionDescription)` writes it: `sdp`
/// first.
#[derive(Serialize)]
struct SdpInit<'a> {
    sdp: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A `CANDIDATE` payload as the client builds it.
#[derive(Serialize)]
struct CandidatePayload<'a> {
    candidate: CandidateInit<'a>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "connectionId")]
    connection_id: &'a str,
}

/// `{"msg": …}`, the payload of `ERROR`, `ID-TAKEN` and (here) `EXPIRE`.
#[derive(Serialize)]
struct Msg<'a> {
    msg: &'a str,
}

/// The `ERROR` message the `peer` server sends before it closes a connection it refuses.
pub fn error_message(msg: &str) -> String {
    server_message("ERROR", msg)
}

/// The `ID-TAKEN` message: another connection holds the id.
pub fn id_taken() -> String {
    server_message("ID-TAKEN", "ID is taken")
}

fn server_message(kind: &str, msg: &str) -> String {
    to_text(&Outgoing {
        kind,
        src: None,
        dst: None,
        payload: Some(Msg { msg }),
    })
    .unwrap_or_default()
}

fn encode(state: &PeerjsState, event: &Event) -> Option<String> {
    let me = state.id.as_str();
    match event {
        Event::Description(d) => {
            // PeerJS has no message of its own for a provisional answer or a rollback; the
            // client gives an ANSWER's `sdp` to `setRemoteDescription`, which takes both.
            let kind = match d.kind {
                SdpKind::Offer => "OFFER",
                SdpKind::Answer | SdpKind::Pranswer | SdpKind::Rollback => "ANSWER",
            };
            let (connection_id, call_kind) = call_of(state, &d.room);
            let payload = SdpPayload {
                sdp: SdpInit {
                    sdp: &d.sdp,
                    kind: d.kind.as_str(),
                },
                kind: call_kind,
                connection_id: &connection_id,
            };
            to_text(&addressed(kind, &d.room, me, Some(payload)))
        }
        Event::Candidate(c) => {
            let (connection_id, call_kind) = call_of(state, &c.room);
            let payload = CandidatePayload {
                candidate: CandidateInit::from(c),
                kind: call_kind,
                connection_id: &connection_id,
            };
            to_text(&addressed("CANDIDATE", &c.room, me, Some(payload)))
        }
        // The peer of a room this connection called left: the client closes its connections
        // to that id. (Callers into its own room have ids the gateway does not know.)
        Event::PeerLeft(n) if n.room != me => to_text(&addressed::<()>("LEAVE", &n.room, me, None)),
        // A signal to a room refused (nobody there, full, not allowed): the `peer` server's
        // "could not connect to peer" for that id, with the reason, and the connection stays.
        Event::Error(e) => match e.room.as_deref() {
            Some(room) if room != me && e.code != ErrorCode::MalformedMessage => {
                let msg = Msg { msg: &e.message };
                to_text(&addressed("EXPIRE", room, me, Some(msg)))
            }
            _ => Some(error_message(&format!(
                "{}: {}",
                e.code.as_str(),
                e.message
            ))),
        },
        _ => None,
    }
}

/// A message from `src` (a room, as the PeerJS client sees ids) to `dst`.
fn addressed<'a, P: Serialize>(
    kind: &'a str,
    src: &'a str,
    dst: &'a str,
    payload: Option<P>,
) -> Outgoing<'a, P> {
    Outgoing {
        kind,
        src: Some(src),
        dst: Some(dst),
        payload,
    }
}

/// The connection id and type of this connection's call into `room`; for an offer it did not
/// ask for (a peer of another dialect in its own room), a media connection named after the room.
fn call_of<'a>(state: &'a PeerjsState, room: &str) -> (Cow<'a, str>, &'a str) {
    match state.call(room) {
        Some(c) => (Cow::Borrowed(c.connection_id.as_str()), c.kind.as_str()),
        None => (Cow::Owned(format!("mc_{room}")), "media"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_client_rule() {
        for ok in [
            "a",
            "Abc123",
            "a b",
            "a_b-c",
            "x".repeat(MAX_ID_BYTES).as_str(),
        ] {
            assert!(valid_id(ok), "{ok:?}");
        }
        let long = "x".repeat(MAX_ID_BYTES + 1);
        for bad in ["", " a", "a ", "a  b", "a.b", "é", "a\nb", long.as_str()] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_offer_is_remembered_for_the_answer_from_another_dialect() {
        let mut st = PeerjsState::new("alice", None);
        let offer = r#"{"type":"OFFER","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"media","connectionId":"mc_abc"},"dst":"room1"}"#;
        let (decoded, forward) = decode(&mut st, offer).expect("decodes");
        assert!(matches!(decoded, Decoded::Event(Event::Description(_))));
        assert_eq!(
            forward.as_deref(),
            Some(
                r#"{"type":"OFFER","src":"alice","dst":"room1","payload":{"sdp":{"type":"offer","sdp":"v=0\r\n"},"type":"media","connectionId":"mc_abc"}}"#
            )
        );
        let answer = Event::Description(crate::Description {
            room: "room1".into(),
            kind: SdpKind::Answer,
            sdp: "v=0\r\n".into(),
        });
        assert_eq!(
            encode(&st, &answer).as_deref(),
            Some(
                r#"{"type":"ANSWER","src":"room1","dst":"alice","payload":{"sdp":{"sdp":"v=0\r\n","type":"answer"},"type":"media","connectionId":"mc_abc"}}"#
            )
        );
    }

    #[test]
    fn a_claimed_src_is_replaced_by_the_sender() {
        let mut st = PeerjsState::new("alice", None);
        let text = r#"{"type":"LEAVE","src":"mallory","dst":"bob"}"#;
        let (_, forward) = decode(&mut st, text).expect("decodes");
        assert_eq!(
            forward.as_deref(),
            Some(r#"{"type":"LEAVE","src":"alice","dst":"bob"}"#)
        );
    }

    #[test]
    fn calls_are_bounded() {
        let mut st = PeerjsState::new("alice", None);
        for i in 0..MAX_CALLS + 10 {
            let call = Call {
                connection_id: format!("mc_{i}"),
                kind: "media".into(),
            };
            st.remember(&format!("r{i}"), call);
        }
        assert_eq!(st.calls.len(), MAX_CALLS);
    }
}
