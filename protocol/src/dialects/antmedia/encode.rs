//! Gateway → client: an [`Event`] to the frame AMS would send. Every frame is compact JSON with
//! its keys in a fixed order (the structs below), so the output is byte-stable.

use serde::Serialize;
use serde_json::Value;

use crate::dialects::common::to_text;
use crate::text::json_string;
use crate::{Description, ErrorCode, Event, JsonText};

/// `{"command":"start"|"stop","streamId":R}`
#[derive(Serialize)]
struct StreamCommand<'a> {
    command: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
}

/// `{"command":"notification","definition":D,"streamId":R}`
#[derive(Serialize)]
struct Notification<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
}

/// `{"command":"notification","definition":D}`: a notification about the server, not a stream.
#[derive(Serialize)]
struct ServerNotification {
    command: &'static str,
    definition: &'static str,
}

#[derive(Serialize)]
struct TakeCandidate<'a> {
    command: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    /// A number: the SDK builds `RTCIceCandidate({sdpMLineIndex: label})` from it.
    label: u32,
    id: &'a str,
    candidate: &'a JsonText,
}

#[derive(Serialize)]
struct PeerMessageCommand<'a> {
    command: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    definition: &'a Value,
    data: &'a Value,
}

#[derive(Serialize)]
struct IceServerConfig<'a> {
    command: &'static str,
    #[serde(rename = "stunServerUri")]
    stun_server_uri: &'a str,
    #[serde(rename = "turnServerUsername")]
    turn_server_username: &'a str,
    #[serde(rename = "turnServerCredential")]
    turn_server_credential: &'a str,
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    command: &'static str,
    definition: &'static str,
    /// `"404"` on `no_stream_exist`, as AMS's `sendNotFoundJSON` sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(rename = "streamId", skip_serializing_if = "Option::is_none")]
    stream_id: Option<&'a str>,
    /// `no_active_streams_in_room` names its room in `room`, not `streamId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    information: Option<&'a str>,
}

/// `{"command":"takeConfiguration","streamId","type","sdp","idMapping":{}}`, written by hand so
/// that a kept SDP literal is copied in as it came. `idMapping` is always `{}`: without it the
/// SDK's `onTrack` throws for peers without a remote video element (`docs/dialect-spec.md`).
fn take_configuration(d: &Description) -> String {
    let stream_id = json_string(&d.room);
    let mut out = String::with_capacity(d.sdp.json_len_hint() + stream_id.len() + FRAME_KEYS);
    out.push_str(r#"{"command":"takeConfiguration","streamId":"#);
    out.push_str(&stream_id);
    out.push_str(r#","type":""#);
    out.push_str(d.kind.as_str());
    out.push_str(r#"","sdp":"#);
    d.sdp.write_json(&mut out);
    out.push_str(r#","idMapping":{}}"#);
    out
}

/// The bytes [`take_configuration`] adds besides the stream id and the SDP.
const FRAME_KEYS: usize = 96;

/// Renders an event, or `None` when an Ant peer has no use for it.
pub(super) fn encode(event: &Event) -> Option<String> {
    match event {
        Event::Joined(n) => notification("joined", &n.room),
        Event::Left(n) => notification("leaved", &n.room),
        Event::Start(n) => to_text(&StreamCommand {
            command: "start",
            stream_id: &n.room,
        }),
        Event::PeerLeft(n) => to_text(&StreamCommand {
            command: "stop",
            stream_id: &n.room,
        }),
        Event::Description(d) => Some(take_configuration(d)),
        Event::Candidate(c) => {
            let label = c.sdp_mline_index.unwrap_or(0);
            let label_text;
            let id = match &c.sdp_mid {
                Some(mid) => mid.as_str(),
                None => {
                    label_text = label.to_string();
                    label_text.as_str()
                }
            };
            to_text(&TakeCandidate {
                command: "takeCandidate",
                stream_id: &c.room,
                label,
                id,
                candidate: &c.candidate,
            })
        }
        Event::PeerMessage(m) => to_text(&PeerMessageCommand {
            command: "peerMessageCommand",
            stream_id: &m.room,
            definition: &m.definition,
            data: &m.data,
        }),
        Event::IceServers(ice) => to_text(&IceServerConfig {
            command: "iceServerConfig",
            stun_server_uri: &ice.uri,
            turn_server_username: &ice.username,
            turn_server_credential: &ice.credential,
        }),
        Event::Error(e) => to_text(&ErrorFrame {
            command: "error",
            definition: e.code.ant_definition(),
            error_code: (e.code == ErrorCode::NoStream).then_some("404"),
            // noStreamNameSpecified and no_room_specified never name a stream (there was none),
            // nor does streamIdInUse (as AMS sends it); no_active_streams_in_room names its room
            // in `room`.
            stream_id: match e.code {
                ErrorCode::NoStreamName
                | ErrorCode::NoRoomName
                | ErrorCode::StreamIdInUse
                | ErrorCode::RoomEmpty => None,
                _ => e.room.as_deref(),
            },
            room: match e.code {
                ErrorCode::RoomEmpty => e.room.as_deref(),
                _ => None,
            },
            information: if is_ant_native(e.code) {
                None
            } else {
                Some(&e.message)
            },
        }),
        Event::ConferenceReply(reply) => super::replies::encode(reply),
        Event::ServerWillStop => to_text(&ServerNotification {
            command: "notification",
            definition: "server_will_stop",
        }),
        // Relayed opaque frames come from other dialects and mean nothing to the SDK; a partner
        // arriving is announced by `start` to the offerer only.
        Event::PeerJoined(_)
        | Event::Opaque(_)
        | Event::Join(_)
        | Event::Leave(_)
        | Event::IceServersRequest
        | Event::Conference(_) => None,
    }
}

/// Error definitions AMS itself sends, which carry no `information` (kept exactly as AMS
/// sends them); the gateway's own definitions explain themselves in `information`.
fn is_ant_native(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::RoomFull
            | ErrorCode::NoPeer
            | ErrorCode::NoStreamName
            | ErrorCode::InvalidStreamName
            | ErrorCode::Unauthorized
            | ErrorCode::NoRoomName
            | ErrorCode::NoStream
            | ErrorCode::RoomEmpty
            | ErrorCode::RoomNotActive
            | ErrorCode::StreamIdInUse
    )
}

fn notification(definition: &'static str, room: &str) -> Option<String> {
    to_text(&Notification {
        command: "notification",
        definition,
        stream_id: room,
    })
}
