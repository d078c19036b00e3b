//! The dialect conformance harness (`docs/dialect-spec.md`). Every codec's tests call
//! [`assert_dialect_conformance`]; an out-of-tree dialect can do the same with the `testing`
//! feature.
//!
//! What it holds a dialect to:
//! - `decode` never panics on [`hostile_inputs`], and its errors stay short (no echo of a
//!   megabyte of input);
//! - unknown message types give `Ignore`, `Opaque` or `UnknownCommand`, never anything else;
//! - inbound-only events (`Join`, `Leave`, `IceServersRequest`, `Conference`) render nothing;
//! - every outbound event of [`outbound_events`] renders, except the kinds the dialect declares
//!   silent, which must render nothing;
//! - rendered notices are JSON objects that name their room;
//! - relayed signals survive their own dialect: `decode(encode(e))` is accepted, and encoding
//!   the result again gives the same wire message (the wire form is a fixpoint).

use std::borrow::Borrow;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Value, json};

use crate::dialects::socketio::SioMessage;
use crate::{
    Candidate, DecodeError, Decoded, Description, Dialect, ErrorCode, Event, IceServers, Opaque,
    PeerMessage, SdpKind,
};

/// The room every generated event uses.
pub const ROOM: &str = "room1";

/// Longest error message a decoder may produce for any input, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// A dialect's wire type, as the harness needs to build and inspect it.
pub trait ConformanceWire: Sized + Clone + PartialEq + Debug {
    /// The wire messages a peer could produce that carry `text`.
    fn from_text(text: &str) -> Vec<Self>;
    /// The message as JSON, when it is JSON.
    fn as_json(&self) -> Option<Value>;
    /// The text [`Dialect::forward`] receives as `original` for this message.
    fn original_text(&self) -> Option<String>;
}

impl ConformanceWire for String {
    fn from_text(text: &str) -> Vec<Self> {
        vec![text.to_owned()]
    }
    fn as_json(&self) -> Option<Value> {
        serde_json::from_str(self).ok()
    }
    fn original_text(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl ConformanceWire for SioMessage {
    /// The text as a `msg` string, as a parsed `msg` argument when it is JSON (modern clients
    /// emit objects), and under an unrelated event name.
    fn from_text(text: &str) -> Vec<Self> {
        let mut out = vec![SioMessage::msg(text)];
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            out.push(SioMessage {
                event: "msg".to_owned(),
                data: value,
            });
        }
        out.push(SioMessage {
            event: "chat".to_owned(),
            data: Value::String(text.to_owned()),
        });
        out
    }
    fn as_json(&self) -> Option<Value> {
        match &self.data {
            Value::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        }
    }
    fn original_text(&self) -> Option<String> {
        self.msg_text().map(|t| t.into_owned())
    }
}

/// What a dialect's tests tell the harness.
pub struct Conformance<D: Dialect> {
    /// A fresh connection state for a peer in `room`.
    pub state: fn(&str) -> D::State,
    /// Messages of types this dialect does not know (besides the built-in neutral ones).
    pub unknown: Vec<D::Wire>,
    /// Extra hostile inputs specific to the dialect.
    pub hostile: Vec<D::Wire>,
    /// [`Event::kind`]s of outbound events the dialect deliberately renders as nothing; the
    /// media plugin's conference replies (offer, answer, started, finished) count as
    /// `"media_reply"`, the other conference replies as `"conference_reply"`.
    pub silent: &'static [&'static str],
}

impl<D: Dialect> Debug for Conformance<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conformance")
            .field("dialect", &D::KIND)
            .field("silent", &self.silent)
            .finish_non_exhaustive()
    }
}

/// Inputs no decoder may panic on: empty and blank text, JSON scalars and arrays, deep and
/// unbalanced nesting (including a megabyte of `{`), garbage, out-of-range numbers, `NaN`,
/// long multi-byte strings in fields that get echoed, and wrongly typed signal fields.
pub fn hostile_inputs() -> Vec<String> {
    let long_e = "é".repeat(10_000);
    let long_u = "ü".repeat(10_000);
    let long_x = "x".repeat(10_000);
    let mut inputs: Vec<String> = [
        "", " ", "\n\t", "null", "true", "0", "-0", "[]", "{}", "\"\"", "\"{}\"", "}{", "{\"",
        "{\"command\":", "\u{feff}{}", "\u{0}\u{1}\u{7f}}{][\"\\", "\u{fffd}\u{10ffff}", "NaN",
        "Infinity", "-Infinity", "1e999999", "-1e400", "{\"x\":NaN}", "{\"command\":1e999}",
        r#"{"command":"\ud800"}"#, r#"{"command":"ping","command":"join"}"#, r#"{"command":null}"#,
        r#"{"command":"join","streamId":{}}"#, r#"{"command":"join","streamId":"r","mode":7}"#,
        r#"{"command":"takeCandidate","streamId":"r","label":-1,"id":{},"candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"r","label":1e300,"candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"r","label":"99999999999999999999","candidate":"c"}"#,
        r#"{"command":"takeCandidate","streamId":"r","label":18446744073709551616,"candidate":"c"}"#,
        r#"{"command":"takeConfiguration","streamId":"r","type":"offer","sdp":null}"#,
        r#"{"command":"takeConfiguration","streamId":"r","type":5,"sdp":""}"#,
        r#"{"command":"peerMessageCommand","streamId":"r"}"#,
        r#"{"type":"offer","sdp":5}"#, r#"{"type":"offer"}"#, r#"{"type":7,"sdp":"x"}"#,
        r#"{"type":"candidate","candidate":{"candidate":"c","sdpMLineIndex":4294967296}}"#,
        r#"{"type":"candidate","candidate":[]}"#, r#"{"sdp":{"type":[]}}"#, r#"{"sdp":{}}"#,
        r#"{"candidate":{"candidate":"c","sdpMid":[],"usernameFragment":1}}"#,
        r#"{"candidate":"c","sdpMLineIndex":-0.0}"#, r#"{"candidate":{"candidate":null}}"#,
        r#"{"type":"switchboard."}"#,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    inputs.extend([
        "[".repeat(10_000),
        "{".repeat(1 << 20),
        format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100)),
        format!("{}{}", "[".repeat(100), "]".repeat(100)),
        "9".repeat(5_000),
        format!(r#"{{"command":"join","streamId":"{long_e}"}}"#),
        format!(r#"{{"command":"{long_u}","streamId":"r"}}"#),
        format!(r#"{{"command":"join","streamId":"r","mode":"{long_x}"}}"#),
        format!(r#"{{"command":"takeConfiguration","streamId":"r","type":"{long_e}","sdp":""}}"#),
        format!(r#"{{"type":"{long_x}"}}"#),
        format!(r#"{{"sdp":{{"type":"{long_u}","sdp":""}}}}"#),
        format!(r#"{{"candidate":{{"candidate":"{long_x}"}}}}"#),
    ]);
    inputs
}

/// Every outbound event shape the gateway produces, in room [`ROOM`].
pub fn outbound_events() -> Vec<Event> {
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_owned();
    let description = |kind, sdp: &str| {
        Event::Description(Description {
            room: ROOM.into(),
            kind,
            sdp: sdp.into(),
        })
    };
    let candidate = |candidate: &str, mid: Option<&str>, index, ufrag: Option<&str>| {
        Event::Candidate(Candidate {
            room: ROOM.into(),
            candidate: candidate.into(),
            sdp_mid: mid.map(str::to_owned),
            sdp_mline_index: index,
            username_fragment: ufrag.map(str::to_owned),
        })
    };
    let line = "candidate:1 1 udp 2122194687 192.0.2.2 56557 typ host generation 0 ufrag dK+1";
    let mut events = vec![
        description(SdpKind::Offer, &sdp),
        description(SdpKind::Answer, &sdp),
        description(SdpKind::Pranswer, &sdp),
        description(SdpKind::Rollback, ""),
        candidate(line, Some("0"), Some(0), Some("dK+1")),
        candidate(line, Some("audio"), Some(1), None),
        candidate(line, None, None, None),
        candidate("", Some("0"), Some(0), None),
        Event::PeerMessage(PeerMessage {
            room: ROOM.into(),
            definition: json!("chat"),
            data: json!({ "text": "hi", "n": [1, 2.5, null] }),
        }),
        Event::PeerMessage(PeerMessage {
            room: ROOM.into(),
            definition: Value::Null,
            data: Value::Null,
        }),
        Event::Opaque(Opaque {
            room: ROOM.into(),
            payload: r#"{"app":"chat","text":"hi"}"#.into(),
        }),
        Event::Opaque(Opaque {
            room: ROOM.into(),
            payload: "hello, not JSON".into(),
        }),
        Event::notice(Event::Joined, ROOM),
        Event::notice(Event::Start, ROOM),
        Event::notice(Event::PeerJoined, ROOM),
        Event::notice(Event::PeerLeft, ROOM),
        Event::notice(Event::Left, ROOM),
        Event::IceServers(IceServers::default()),
        Event::IceServers(IceServers {
            uri: "stun:stun.example.org:3478".into(),
            ..Default::default()
        }),
        Event::IceServers(IceServers {
            uri: "turn:turn.example.org:3478".into(),
            username: "user".into(),
            credential: "secret".into(),
            ..Default::default()
        }),
        Event::IceServers(IceServers {
            uri: "turn:turn.example.org:3478?transport=udp".into(),
            username: "1700003600:42".into(),
            credential: "WO3ZFttCQxBYtA2Ohz7jjGcQStA=".into(),
            more_uris: vec![
                "turns:turn.example.org:5349".into(),
                "stun:turn.example.org:3478".into(),
            ],
        }),
    ];
    events.push(Event::ServerWillStop);
    events.extend(conference_replies());
    for code in ERROR_CODES {
        events.push(Event::error(
            *code,
            Some(ROOM),
            format!("{} happened", code.as_str()),
        ));
        events.push(Event::error(*code, None, "no room"));
    }
    events
}

/// One of each conference reply, in room [`ROOM`] (streams `s1`, `s2`).
pub fn conference_replies() -> Vec<Event> {
    use crate::conference::{
        Broadcast, BroadcastObject, ConferenceReply as R, Count, JoinedRoom, LeftRoom, MediaAnswer,
        MediaDirection, MediaInfo, MediaOffer, MediaState, MetaData, RoomInfo, RoomStream,
        StreamInfo, SubtrackList, TrackList, TrackMapping,
    };
    let stream = |id: &str| RoomStream {
        stream_id: id.into(),
        stream_name: format!("name of {id}"),
        meta_data: String::new(),
    };
    let broadcast = |id: &str, main: Option<&str>| Broadcast {
        stream_id: id.into(),
        name: id.into(),
        status: "created".into(),
        meta_data: r#"{"mic":true}"#.into(),
        role: String::new(),
        main_track_stream_id: main.map(str::to_owned),
        sub_track_stream_ids: if main.is_none() {
            vec!["s1".into(), "s2".into()]
        } else {
            Vec::new()
        },
        planned_start_date: 0,
        planned_end_date: 0,
    };
    [
        R::JoinedRoom(JoinedRoom {
            room: ROOM.into(),
            stream_id: "s1".into(),
            streams: vec![stream("s2")],
            max_track_count: 6,
        }),
        R::LeftRoom(LeftRoom {
            room: ROOM.into(),
            stream_id: Some("s1".into()),
        }),
        R::RoomInfo(RoomInfo {
            room: ROOM.into(),
            streams: vec![stream("s1"), stream("s2")],
        }),
        R::StreamInfo(StreamInfo {
            stream_id: "s1".into(),
            infos: vec![MediaInfo {
                width: 640,
                height: 480,
                video_bitrate: 500_000,
                audio_bitrate: 32_000,
                video_codec: "VP8".into(),
            }],
        }),
        R::TrackList(TrackList {
            stream_id: ROOM.into(),
            tracks: vec!["s1".into(), "s2".into()],
        }),
        R::BroadcastObject(BroadcastObject {
            stream_id: ROOM.into(),
            broadcast: broadcast(ROOM, None),
        }),
        R::SubtrackList(SubtrackList {
            stream_id: ROOM.into(),
            subtracks: vec![broadcast("s1", Some(ROOM))],
        }),
        R::SubtrackCount(Count {
            stream_id: ROOM.into(),
            count: 2,
        }),
        R::SubscriberCount(Count {
            stream_id: "s1".into(),
            count: 0,
        }),
        R::MetaDataUpdated(MetaData {
            stream_id: "s1".into(),
            meta_data: "new".into(),
        }),
        R::MediaOffer(MediaOffer {
            stream_id: ROOM.into(),
            sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".into(),
            id_mapping: vec![
                TrackMapping {
                    mid: "0".into(),
                    track_id: "ARDAMSvs1".into(),
                },
                TrackMapping {
                    mid: "1".into(),
                    track_id: "ARDAMSas1".into(),
                },
            ],
        }),
        R::MediaAnswer(MediaAnswer {
            stream_id: "s1".into(),
            sdp: "v=0\r\n".into(),
        }),
        R::MediaStarted(MediaState {
            stream_id: "s1".into(),
            direction: MediaDirection::Publish,
            room: Some(ROOM.into()),
        }),
        R::MediaStarted(MediaState {
            stream_id: ROOM.into(),
            direction: MediaDirection::Play,
            room: None,
        }),
        R::MediaFinished(MediaState {
            stream_id: "s1".into(),
            direction: MediaDirection::Publish,
            room: Some(ROOM.into()),
        }),
        R::MediaFinished(MediaState {
            stream_id: ROOM.into(),
            direction: MediaDirection::Play,
            room: None,
        }),
    ]
    .into_iter()
    .map(|r| Event::ConferenceReply(Box::new(r)))
    .collect()
}

/// Every [`ErrorCode`].
pub const ERROR_CODES: &[ErrorCode] = &[
    ErrorCode::RoomFull,
    ErrorCode::NoPeer,
    ErrorCode::NoStreamName,
    ErrorCode::InvalidStreamName,
    ErrorCode::MalformedMessage,
    ErrorCode::UnknownCommand,
    ErrorCode::Unsupported,
    ErrorCode::InvalidField,
    ErrorCode::BinaryNotSupported,
    ErrorCode::FrameTooLarge,
    ErrorCode::Refused,
    ErrorCode::Unauthorized,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::NoRoomName,
    ErrorCode::NoStream,
    ErrorCode::RoomEmpty,
    ErrorCode::RoomNotActive,
    ErrorCode::StreamIdInUse,
    ErrorCode::MediaUnavailable,
    ErrorCode::JoinTimeout,
    ErrorCode::RoomPublishersFull,
    ErrorCode::MediaCapacity,
    ErrorCode::BadDescription,
];

/// Exhaustive on purpose: a new [`ErrorCode`] breaks this match until it is added here and to
/// [`ERROR_CODES`].
const fn _all_error_codes_listed(code: ErrorCode) {
    match code {
        ErrorCode::RoomFull
        | ErrorCode::NoPeer
        | ErrorCode::NoStreamName
        | ErrorCode::InvalidStreamName
        | ErrorCode::MalformedMessage
        | ErrorCode::UnknownCommand
        | ErrorCode::Unsupported
        | ErrorCode::InvalidField
        | ErrorCode::BinaryNotSupported
        | ErrorCode::FrameTooLarge
        | ErrorCode::Refused
        | ErrorCode::Unauthorized
        | ErrorCode::RateLimited
        | ErrorCode::Internal
        | ErrorCode::NoRoomName
        | ErrorCode::NoStream
        | ErrorCode::RoomEmpty
        | ErrorCode::RoomNotActive
        | ErrorCode::StreamIdInUse
        | ErrorCode::MediaUnavailable
        | ErrorCode::JoinTimeout
        | ErrorCode::RoomPublishersFull
        | ErrorCode::MediaCapacity
        | ErrorCode::BadDescription => {}
    }
}

/// Message types no dialect knows; each must be ignored, relayed opaque or refused as unknown.
const NEUTRAL_UNKNOWN: &[&str] = &[
    r#"{"command":"noSuchCommand","type":"noSuchType","streamId":"room1"}"#,
    r#"{"command":"startNewP2PConnection","type":"renegotiate","streamId":"room1"}"#,
];

/// Runs every conformance check against dialect `D`, panicking with a description of the first
/// violation.
pub fn assert_dialect_conformance<D: Dialect>(cases: Conformance<D>)
where
    D::Wire: ConformanceWire,
{
    let kind = D::KIND;

    for text in hostile_inputs() {
        for wire in D::Wire::from_text(&text) {
            check_hostile::<D>(&cases, &wire, &preview(&text));
        }
    }
    for wire in &cases.hostile {
        check_hostile::<D>(&cases, wire, &preview(&format!("{wire:?}")));
    }

    let unknown = NEUTRAL_UNKNOWN.iter().flat_map(|t| D::Wire::from_text(t));
    for wire in unknown.chain(cases.unknown.iter().cloned()) {
        let mut st = (cases.state)(ROOM);
        match D::decode(&mut st, wire.borrow()) {
            Ok(Decoded::Ignore)
            | Ok(Decoded::Event(Event::Opaque(_)))
            | Err(DecodeError::UnknownCommand(_)) => {}
            other => panic!("{kind}: unknown message {wire:?} gave {other:?}"),
        }
    }

    let st = (cases.state)(ROOM);
    for inbound in [
        Event::Join(crate::Join {
            room: ROOM.into(),
            mode: crate::JoinMode::Both,
            token: None,
        }),
        Event::Leave(crate::Leave {
            room: ROOM.into(),
            reason: crate::LeaveReason::Leave,
        }),
        Event::IceServersRequest,
        Event::Conference(Box::new(crate::ConferenceRequest {
            app: "LiveApp".into(),
            command: crate::ConferenceCommand::GetRoomInfo(crate::conference::RoomRequest {
                room: ROOM.into(),
                stream_id: None,
            }),
        })),
    ] {
        let out = D::encode(&st, &inbound);
        assert!(
            out.is_none(),
            "{kind}: inbound-only {inbound:?} rendered {out:?}"
        );
    }

    for event in outbound_events() {
        check_outbound::<D>(&cases, &event);
    }
}

fn check_hostile<D: Dialect>(cases: &Conformance<D>, wire: &D::Wire, shown: &str)
where
    D::Wire: ConformanceWire,
{
    let kind = D::KIND;
    let mut st = (cases.state)(ROOM);
    let result = catch_unwind(AssertUnwindSafe(|| D::decode(&mut st, wire.borrow())));
    match result {
        Err(_) => panic!("{kind}: decode panicked on {shown}"),
        Ok(Err(e)) => {
            let message = e.to_string();
            let _ = e.code();
            assert!(
                message.len() <= MAX_ERROR_MESSAGE_BYTES,
                "{kind}: error for {shown} is {} bytes: {}",
                message.len(),
                preview(&message)
            );
        }
        Ok(Ok(_)) => {}
    }
}

/// [`Event::kind`], with the media plugin's conference replies told apart (see
/// [`Conformance::silent`]).
fn outbound_kind(event: &Event) -> &'static str {
    use crate::conference::ConferenceReply as R;
    match event {
        Event::ConferenceReply(r) => match **r {
            R::MediaOffer(_) | R::MediaAnswer(_) | R::MediaStarted(_) | R::MediaFinished(_) => {
                "media_reply"
            }
            _ => "conference_reply",
        },
        other => other.kind(),
    }
}

fn check_outbound<D: Dialect>(cases: &Conformance<D>, event: &Event)
where
    D::Wire: ConformanceWire,
{
    let kind = D::KIND;
    let st = (cases.state)(ROOM);
    let rendered = D::encode(&st, event);
    let silent = cases.silent.contains(&outbound_kind(event));
    let wire = match (rendered, silent) {
        (None, true) => return,
        (Some(w), true) => panic!(
            "{kind}: {} is declared silent but rendered {w:?}",
            event.kind()
        ),
        (None, false) => panic!("{kind}: {event:?} rendered nothing"),
        (Some(w), false) => w,
    };

    if !matches!(event, Event::Opaque(_)) {
        let json = wire.as_json();
        assert!(
            matches!(json, Some(Value::Object(_))),
            "{kind}: {event:?} did not render a JSON object: {wire:?}"
        );
        if let (
            Event::Joined(n)
            | Event::Start(n)
            | Event::PeerJoined(n)
            | Event::PeerLeft(n)
            | Event::Left(n),
            Some(json),
        ) = (event, &json)
        {
            assert!(
                mentions(json, &n.room),
                "{kind}: {wire:?} does not name room {}",
                n.room
            );
        }
    }

    let relayed = matches!(
        event,
        Event::Description(_) | Event::Candidate(_) | Event::PeerMessage(_) | Event::Opaque(_)
    );
    if !relayed {
        return;
    }
    let mut st = (cases.state)(ROOM);
    match D::decode(&mut st, wire.borrow()) {
        Ok(Decoded::Event(again)) => {
            assert_eq!(
                again.kind(),
                event.kind(),
                "{kind}: {wire:?} decoded as another kind"
            );
            let st = (cases.state)(ROOM);
            assert_eq!(
                D::encode(&st, &again).as_ref(),
                Some(&wire),
                "{kind}: wire form of {event:?} is not a fixpoint"
            );
            if let Some(original) = wire.original_text() {
                let forwarded = D::forward(&st, &original, &again);
                assert!(forwarded.is_some(), "{kind}: {again:?} is not forwarded");
            }
        }
        Ok(Decoded::Ignore) if matches!(event, Event::PeerMessage(_)) => {}
        other => panic!("{kind}: own rendering {wire:?} of {event:?} decoded as {other:?}"),
    }
}

/// Whether `needle` appears as a string anywhere in `v`.
fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s == needle,
        Value::Array(items) => items.iter().any(|i| mentions(i, needle)),
        Value::Object(map) => map.values().any(|i| mentions(i, needle)),
        _ => false,
    }
}

fn preview(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        format!("{short:?}… ({} bytes)", text.len())
    } else {
        format!("{short:?}")
    }
}

/// Whether each dialect's in-place read of its usual signals gives what its general decoder
/// gives for `text`, wherever the in-place read accepts it, and whether both ways of reading
/// socket.io event data agree; `Err` says where they differ. Used by the `fast_paths` fuzz
/// target.
pub fn fast_paths_agree(text: &str) -> Result<(), String> {
    crate::dialects::agreement::check(text)
}
