//! Raw WebSocket dialect: JSON (or anything) in text frames at `/ws/{room}`.
//!
//! Decoding recognizes the common shapes of WebRTC signaling JSON (simple-peer's signal objects,
//! `RTCSessionDescription`/`RTCIceCandidate` JSON, bare candidates) and turns everything else into
//! [`Event::Opaque`], which is relayed byte-identical to the other raw peers in the room.
//! Encoding is simple-peer compatible; gateway notices live in the `switchboard.*` `type`
//! namespace, which never collides with a peer signal.
//!
//! Conference media (the `sfu` plugin, `docs/dialect-spec.md` "Raw conference media") uses its
//! own `switchboard.*` requests, each naming its stream, so a raw peer can publish and play
//! alongside Ant Media peers: `switchboard.publish`, `switchboard.play`,
//! `switchboard.media-description`, `switchboard.media-candidate`, `switchboard.stop`; the
//! gateway answers `switchboard.media-answer`, `switchboard.media-offer`,
//! `switchboard.media-started`, `switchboard.media-finished`.

use serde::Serialize;
use serde_json::{Map, Value};

use super::common::{
    CandidateInit, candidate_init, description_init, description_init_json, ice_server_list,
    looks_like_object, to_text, valid_id,
};
use super::common::{ECHO_CHARS, opt_str, truncate};
use super::json::parse_object;
use super::scan::{Escaping, Reader, candidate_event, description_rest};
use super::{Decoded, Dialect, DialectKind};
use crate::conference::{
    ConferenceCommand, ConferenceReply, ConferenceRequest, MediaDirection, MediaRequest,
};
use crate::{DecodeError, ErrorNotice, Event, Leave, LeaveReason, Opaque, PeerMessage};

/// Conference media requests (see the module docs).
const PUBLISH: &str = "switchboard.publish";
const PLAY: &str = "switchboard.play";
const MEDIA_DESCRIPTION: &str = "switchboard.media-description";
const MEDIA_CANDIDATE: &str = "switchboard.media-candidate";
const STOP: &str = "switchboard.stop";

/// The `type` prefix of every notice the gateway sends to raw peers. A frame of that type coming
/// back from a peer (an echo) is ignored.
pub const NOTICE_PREFIX: &str = "switchboard.";

/// The `type` of an ICE servers request (`{"type":"switchboard.ice-servers"}`) and of its answer
/// (the same with `iceServers`: a list of `RTCIceServer`).
pub const ICE_SERVERS: &str = "switchboard.ice-servers";

/// Raw JSON/opaque text frames at `/ws/{room}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

/// Per-connection raw state: the room from the URL path.
#[derive(Debug, Default)]
pub struct RawState {
    /// The room this connection is in.
    pub room: String,
}

/// A plain JSON dialect: no greeting, keepalive or closing frame; relays forward whole frames.
impl super::TextFrames for Raw {
    /// Signals and anything unrecognized go to the partner as the sender wrote them.
    fn forwards_frame(_: &RawState, event: &Event) -> bool {
        matches!(
            event,
            Event::Description(_) | Event::Candidate(_) | Event::PeerMessage(_) | Event::Opaque(_)
        )
    }
}

impl Dialect for Raw {
    type Wire = String;
    type Input = str;
    type State = RawState;
    const KIND: DialectKind = DialectKind::Raw;

    fn decode(state: &mut RawState, wire: &str) -> Result<Decoded<String>, DecodeError> {
        decode(&state.room, wire)
    }

    fn encode(_: &RawState, event: &Event) -> Option<String> {
        encode(event)
    }

    /// Raw peers relay each other's frames byte-identical, recognized or not.
    fn forward(state: &RawState, original: &str, event: &Event) -> Option<String> {
        if <Self as super::TextFrames>::forwards_frame(state, event) {
            Some(original.to_owned())
        } else {
            encode(event)
        }
    }
}

// === decode ===

/// A frame: a signal of simple-peer's own shape is read in one pass ([`signal`]); anything
/// else through [`decode_general`].
fn decode(room: &str, text: &str) -> Result<Decoded<String>, DecodeError> {
    if looks_like_object(text)
        && let Some(event) = signal(room, text)
    {
        return Ok(Decoded::Event(event));
    }
    decode_general(room, text)
}

/// simple-peer's signals exactly as simple-peer writes them, `{"type","sdp"}` and
/// `{"type":"candidate","candidate":{"candidate","sdpMLineIndex","sdpMid"}}`, read in one pass
/// ([`Reader`]): the type read, the SDP or candidate line kept as the sender's literal. Any
/// other shape, spacing or escape is `None`, for [`decode_general`], which gives the same event
/// for every frame this accepts (the tests and the `fast_paths` fuzz target hold them to it).
pub(crate) fn signal(room: &str, text: &str) -> Option<Event> {
    let mut r = Reader::new(text, Escaping::Once);
    let kind = r.field(r#"{"type":"#, Reader::plain)?;
    if kind != "candidate" {
        return description_rest(r, room, kind, "}");
    }
    let candidate = r.field(r#","candidate":{"candidate":"#, Reader::literal)?;
    let sdp_mline_index = r.field(r#","sdpMLineIndex":"#, Reader::index_or_null)?;
    let sdp_mid = r.field(r#","sdpMid":"#, Reader::string_or_null)?;
    r.close("}}")?;
    Some(candidate_event(
        room,
        candidate,
        sdp_mid,
        sdp_mline_index,
        None,
    ))
}

/// [`decode`] without the one-pass read: every frame through a `serde_json::Value`.
pub(crate) fn decode_general(room: &str, text: &str) -> Result<Decoded<String>, DecodeError> {
    let opaque = || {
        let payload = text.to_owned();
        Ok(Decoded::Event(Event::Opaque(Opaque {
            room: room.to_owned(),
            payload,
        })))
    };
    if !looks_like_object(text) {
        return opaque();
    }
    let obj = match parse_object(text) {
        Ok(obj) => obj,
        // Too deep is refused on every dialect; anything else malformed is just not ours to read.
        Err(e @ DecodeError::TooDeep(_)) => return Err(e),
        Err(_) => return opaque(),
    };
    match classify(room, &obj)? {
        Some(decoded) => Ok(decoded),
        None => opaque(),
    }
}

/// The recognized shapes; `None` means "not a signal we know": relay it as it is.
fn classify(room: &str, obj: &Map<String, Value>) -> Result<Option<Decoded<String>>, DecodeError> {
    let event = |e| Ok(Some(Decoded::Event(e)));
    if let Some(Value::String(kind)) = obj.get("type") {
        return match kind.as_str() {
            // A request for ICE servers; the answer has the same type plus `iceServers`.
            ICE_SERVERS if !obj.contains_key("iceServers") => event(Event::IceServersRequest),
            PUBLISH | PLAY | MEDIA_DESCRIPTION | MEDIA_CANDIDATE | STOP => {
                media(room, kind, obj).map(|d| Some(Decoded::Event(d)))
            }
            k if k.starts_with(NOTICE_PREFIX) => Ok(Some(Decoded::Ignore)),
            "offer" | "answer" | "pranswer" | "rollback" => {
                event(Event::Description(description_init(room, obj)?))
            }
            "candidate" => candidate(room, obj),
            // renegotiate, transceiverRequest and application messages.
            _ => Ok(None),
        };
    }
    if let Some(Value::Object(sdp)) = obj.get("sdp") {
        return event(Event::Description(description_init(room, sdp)?));
    }
    candidate(room, obj)
}

/// A conference media request. Stream ids and rooms follow Ant's rules (`[A-Za-z0-9._-]`).
fn media(room: &str, kind: &str, obj: &Map<String, Value>) -> Result<Event, DecodeError> {
    let request = |command| {
        Event::Conference(Box::new(ConferenceRequest {
            app: String::new(),
            command,
        }))
    };
    Ok(match kind {
        PUBLISH | PLAY => {
            // The room defaults to the URL's; the play stream id to the room.
            let room = opt_id(obj, "room")?.unwrap_or_else(|| room.to_owned());
            let stream = opt_id(obj, "stream")?;
            let token = match opt_str(obj, "token")? {
                Some("") | None => None,
                Some(t) => Some(t.to_owned()),
            };
            if kind == PUBLISH {
                let stream_id = stream.ok_or(DecodeError::MissingField("stream"))?;
                request(ConferenceCommand::Publish(MediaRequest {
                    stream_id,
                    token,
                    room: Some(room),
                }))
            } else {
                request(ConferenceCommand::Play(MediaRequest {
                    stream_id: stream.unwrap_or_else(|| room.clone()),
                    token,
                    room: Some(room),
                }))
            }
        }
        MEDIA_DESCRIPTION => {
            let stream = stream(obj)?;
            match obj.get("description") {
                Some(Value::Object(d)) => Event::Description(description_init(&stream, d)?),
                _ => return Err(DecodeError::MissingField("description")),
            }
        }
        MEDIA_CANDIDATE => {
            let stream = stream(obj)?;
            let found = match obj.get("candidate") {
                Some(Value::Object(c)) => candidate_init(&stream, c)?,
                _ => return Err(DecodeError::MissingField("candidate")),
            };
            // The end-of-candidates mark means nothing to the media server.
            match found {
                Some(c) => Event::Candidate(c),
                None => Event::Candidate(crate::Candidate {
                    room: stream,
                    candidate: crate::JsonText::default(),
                    sdp_mid: None,
                    sdp_mline_index: None,
                    username_fragment: None,
                }),
            }
        }
        _ => Event::Leave(Leave {
            room: stream(obj)?,
            reason: LeaveReason::Stop,
        }),
    })
}

/// The required `stream` of a media request.
fn stream(obj: &Map<String, Value>) -> Result<String, DecodeError> {
    opt_id(obj, "stream")?.ok_or(DecodeError::MissingField("stream"))
}

/// An optional stream or room id; empty is `None`.
fn opt_id(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match opt_str(obj, field)? {
        None | Some("") => Ok(None),
        Some(id) if valid_id(id) => Ok(Some(id.to_owned())),
        Some(id) => Err(DecodeError::InvalidStreamName(truncate(id, ECHO_CHARS))),
    }
}

/// `{candidate:{...}}` (simple-peer wraps it in `type:"candidate"`) or a bare
/// `{candidate:"...", sdpMid, sdpMLineIndex}`; `None` for anything else, including the
/// end-of-candidates `{candidate:null}`.
fn candidate(room: &str, obj: &Map<String, Value>) -> Result<Option<Decoded<String>>, DecodeError> {
    let found = match obj.get("candidate") {
        Some(Value::Object(inner)) => candidate_init(room, inner)?,
        Some(Value::String(_)) => candidate_init(room, obj)?,
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(DecodeError::WrongType {
                field: "candidate",
                expected: "an object or a string",
            });
        }
    };
    Ok(found.map(|c| Decoded::Event(Event::Candidate(c))))
}

// === encode ===

#[derive(Serialize)]
struct CandidateSignal<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    candidate: CandidateInit<'a>,
}

/// `{"type":"switchboard.…","room":R}`
#[derive(Serialize)]
struct RoomNoticeFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
}

/// `{"type":"switchboard.…"}`: a notice about the gateway, not a room.
#[derive(Serialize)]
struct GatewayNoticeFrame {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct PeerMessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    definition: &'a Value,
    data: &'a Value,
}

#[derive(Serialize)]
struct IceServersFrame {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "iceServers")]
    ice_servers: Value,
}

/// `switchboard.media-offer` / `switchboard.media-answer`.
#[derive(Serialize)]
struct MediaDescriptionFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    stream: &'a str,
    description: DescriptionJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracks: Option<Map<String, Value>>,
}

/// An `RTCSessionDescriptionInit`.
#[derive(Serialize)]
struct DescriptionJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sdp: &'a str,
}

/// `switchboard.media-started` / `switchboard.media-finished`.
#[derive(Serialize)]
struct MediaStateFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    stream: &'a str,
    direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
}

/// The media replies of the `sfu` plugin; the other conference replies are Ant's alone.
fn media_reply(reply: &ConferenceReply) -> Option<String> {
    let state = |kind, m: &crate::conference::MediaState| {
        to_text(&MediaStateFrame {
            kind,
            stream: &m.stream_id,
            direction: match m.direction {
                MediaDirection::Publish => "publish",
                MediaDirection::Play => "play",
            },
            room: m.room.as_deref(),
        })
    };
    match reply {
        ConferenceReply::MediaOffer(o) => to_text(&MediaDescriptionFrame {
            kind: "switchboard.media-offer",
            stream: &o.stream_id,
            description: DescriptionJson {
                kind: "offer",
                sdp: &o.sdp,
            },
            tracks: Some(
                o.id_mapping
                    .iter()
                    .map(|t| (t.mid.clone(), Value::String(t.track_id.clone())))
                    .collect(),
            ),
        }),
        ConferenceReply::MediaAnswer(a) => to_text(&MediaDescriptionFrame {
            kind: "switchboard.media-answer",
            stream: &a.stream_id,
            description: DescriptionJson {
                kind: "answer",
                sdp: &a.sdp,
            },
            tracks: None,
        }),
        ConferenceReply::MediaStarted(m) => state("switchboard.media-started", m),
        ConferenceReply::MediaFinished(m) => state("switchboard.media-finished", m),
        _ => None,
    }
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
}

fn encode(event: &Event) -> Option<String> {
    let notice = |kind, room: &str| to_text(&RoomNoticeFrame { kind, room });
    match event {
        Event::Description(d) => Some(description_init_json("", d, "")),
        Event::Candidate(c) => to_text(&CandidateSignal {
            kind: "candidate",
            candidate: CandidateInit::from(c),
        }),
        Event::Opaque(o) => Some(o.payload.clone()),
        Event::Joined(n) => notice("switchboard.joined", &n.room),
        Event::Start(n) => notice("switchboard.start", &n.room),
        Event::PeerJoined(n) => notice("switchboard.peer-joined", &n.room),
        Event::PeerLeft(n) => notice("switchboard.peer-left", &n.room),
        Event::Left(n) => notice("switchboard.left", &n.room),
        Event::PeerMessage(PeerMessage {
            room,
            definition,
            data,
        }) => to_text(&PeerMessageFrame {
            kind: "switchboard.peer-message",
            room,
            definition,
            data,
        }),
        Event::ServerWillStop => to_text(&GatewayNoticeFrame {
            kind: "switchboard.server-will-stop",
        }),
        Event::IceServers(ice) => to_text(&IceServersFrame {
            kind: ICE_SERVERS,
            ice_servers: ice_server_list(ice),
        }),
        Event::Error(ErrorNotice {
            room,
            code,
            message,
        }) => to_text(&ErrorFrame {
            kind: "switchboard.error",
            code: code.as_str(),
            message,
            room: room.as_deref(),
        }),
        Event::ConferenceReply(reply) => media_reply(reply),
        // Requests are never sent to peers.
        Event::Join(_) | Event::Leave(_) | Event::IceServersRequest | Event::Conference(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(text: &str) -> Decoded<String> {
        match decode("r", text) {
            Ok(d) => d,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn malformed_object_like_text_is_opaque() {
        assert!(matches!(
            decoded("{not json"),
            Decoded::Event(Event::Opaque(_))
        ));
    }

    #[test]
    fn echoed_notices_are_ignored() {
        assert_eq!(
            decoded(r#"{"type":"switchboard.joined","room":"r"}"#),
            Decoded::Ignore
        );
    }

    #[test]
    fn end_of_candidates_is_opaque() {
        for text in [
            r#"{"candidate":null}"#,
            r#"{"type":"candidate","candidate":{"sdpMid":"0"}}"#,
        ] {
            assert!(
                matches!(decoded(text), Decoded::Event(Event::Opaque(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn notices_never_use_a_signal_type() {
        const SIGNALS: &[&str] = &[
            "offer",
            "answer",
            "candidate",
            "pranswer",
            "rollback",
            "renegotiate",
            "transceiverRequest",
        ];
        let notices = [
            Event::notice(Event::Joined, "r"),
            Event::notice(Event::Start, "r"),
            Event::notice(Event::PeerJoined, "r"),
            Event::notice(Event::PeerLeft, "r"),
            Event::notice(Event::Left, "r"),
            Event::error(crate::ErrorCode::RoomFull, Some("r"), "full"),
            Event::IceServers(crate::IceServers::default()),
        ];
        for n in notices {
            let text = encode(&n).unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
            assert!(
                kind.starts_with(NOTICE_PREFIX) && !SIGNALS.contains(&kind),
                "{text}"
            );
        }
    }
}
