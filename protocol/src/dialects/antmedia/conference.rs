//! Client → gateway: the conference commands (`joinRoom`, `getRoomInfo`, `publish`, ...) to
//! [`Event::Conference`], and the conference and media commands the gateway does not serve.

use serde_json::{Map, Value};

use super::fields::{opt_token, stream_id};
use crate::conference::{
    ConferenceCommand, ConferenceRequest, ForceQuality, JoinRoom, MediaRequest, MetaData,
    RoomRequest, StreamRequest, SubtrackQuery, ToggleTrack, TrackKind,
};
use crate::dialects::common::{ECHO_CHARS, opt_str, truncate, valid_id};
use crate::{DecodeError, Event};

/// Conference commands decoded into [`ConferenceCommand`]s; a conference plugin answers them.
pub(super) const COMMANDS: &[&str] = &[
    "joinRoom",
    "leaveFromRoom",
    "getRoomInfo",
    "getStreamInfo",
    "getTrackList",
    "getBroadcastObject",
    "getSubtracks",
    "getSubtracksCount",
    "getSubscriberCount",
    "updateStreamMetaData",
    "publish",
    "play",
    "toggleVideo",
    "toggleAudio",
    "enableTrack",
    "forceStreamQuality",
];

/// Commands that act on media a server receives or sends: without a media server there is
/// nothing for them to act on.
pub(super) const MEDIA_COMMANDS: &[&str] = &[
    "getVideoTrackAssignmentsCommand",
    "assignVideoTrackCommand",
    "updateVideoTrackAssignmentsCommand",
    "setMaxVideoTrackCountCommand",
    "getDebugInfo",
];

/// Why [`MEDIA_COMMANDS`] are refused. True whether or not the `sfu` plugin runs (the codec
/// cannot know): it does not implement them. (`toggleVideo`, `toggleAudio`, `enableTrack` and
/// `forceStreamQuality` are decoded: the `sfu` serves them.) Ant's conference sample pages do
/// not send these; the SDK's video-track assignment is for Ant's own conference application.
pub(super) const NO_MEDIA: &str = "the media plugin (sfu) sends every player every publisher's video; it has no video-track assignment (setMaxVideoTrackCount, assignVideoTrack, updateVideoTrackAssignments) or debug information";

/// Ant features the gateway does not implement at all.
pub(super) const OTHER_UNSUPPORTED: &[&str] = &[
    "getSubscribers",
    "registerPushNotificationToken",
    "sendPushNotification",
];

/// Why [`OTHER_UNSUPPORTED`] commands are refused.
pub(super) const NOT_IMPLEMENTED: &str =
    "TOTP subscriber lists and push notifications are not implemented by this gateway";

/// Decodes conference command `command` (one of [`COMMANDS`]).
pub(super) fn decode(
    command: &str,
    obj: &Map<String, Value>,
    app: &str,
) -> Result<Event, DecodeError> {
    let command = match command {
        "joinRoom" => ConferenceCommand::JoinRoom(JoinRoom {
            room: room(obj, "room")?,
            stream_id: opt_id(obj, "streamId")?,
            mode: opt_text(obj, "mode")?,
            stream_name: opt_text(obj, "streamName")?,
            role: opt_text(obj, "role")?,
            // The SDK's joinRoom says `metadata`; every other command says `metaData`.
            meta_data: match meta(obj, "metadata") {
                Some(m) => Some(m),
                None => meta(obj, "metaData"),
            },
            token: opt_token(obj)?,
        }),
        "leaveFromRoom" => ConferenceCommand::LeaveRoom(room_request(obj)?),
        "getRoomInfo" => ConferenceCommand::GetRoomInfo(room_request(obj)?),
        "getStreamInfo" => ConferenceCommand::GetStreamInfo(stream_request(obj)?),
        "getTrackList" => ConferenceCommand::GetTrackList(stream_request(obj)?),
        "getBroadcastObject" => ConferenceCommand::GetBroadcastObject(stream_request(obj)?),
        "getSubtracks" | "getSubtracksCount" => {
            let query = SubtrackQuery {
                stream_id: stream_id(obj)?.to_owned(),
                role: opt_text(obj, "role")?,
                status: opt_text(obj, "status")?,
                offset: opt_count(obj, "offset")?.unwrap_or(0),
                size: opt_count(obj, "size")?,
            };
            if command == "getSubtracks" {
                ConferenceCommand::GetSubtracks(query)
            } else {
                ConferenceCommand::GetSubtrackCount(query)
            }
        }
        "getSubscriberCount" => ConferenceCommand::GetSubscriberCount(stream_request(obj)?),
        "updateStreamMetaData" => ConferenceCommand::UpdateMetaData(MetaData {
            stream_id: stream_id(obj)?.to_owned(),
            meta_data: meta(obj, "metaData").unwrap_or_default(),
        }),
        "publish" => ConferenceCommand::Publish(MediaRequest {
            stream_id: stream_id(obj)?.to_owned(),
            token: opt_token(obj)?,
            room: opt_id(obj, "mainTrack")?,
        }),
        "play" => ConferenceCommand::Play(MediaRequest {
            stream_id: stream_id(obj)?.to_owned(),
            token: opt_token(obj)?,
            room: opt_id(obj, "room")?,
        }),
        "toggleVideo" | "toggleAudio" | "enableTrack" => {
            let stream_id = stream_id(obj)?.to_owned();
            ConferenceCommand::ToggleTrack(ToggleTrack {
                // The SDK's docs: a single-track stream gives its stream id as the track id.
                track_id: opt_id(obj, "trackId")?.unwrap_or_else(|| stream_id.clone()),
                stream_id,
                kind: match command {
                    "toggleVideo" => Some(TrackKind::Video),
                    "toggleAudio" => Some(TrackKind::Audio),
                    _ => None,
                },
                enabled: match obj.get("enabled") {
                    Some(Value::Bool(b)) => *b,
                    None | Some(Value::Null) => return Err(DecodeError::MissingField("enabled")),
                    Some(_) => {
                        return Err(DecodeError::WrongType {
                            field: "enabled",
                            expected: "a boolean",
                        });
                    }
                },
            })
        }
        "forceStreamQuality" => {
            let stream_id = stream_id(obj)?.to_owned();
            ConferenceCommand::ForceQuality(ForceQuality {
                track_id: opt_id(obj, "trackId")?.unwrap_or_else(|| stream_id.clone()),
                stream_id,
                height: height(obj)?,
            })
        }
        // COMMANDS lists exactly the arms above.
        other => return Err(DecodeError::UnknownCommand(truncate(other, ECHO_CHARS))),
    };
    Ok(Event::Conference(Box::new(ConferenceRequest {
        app: app.to_owned(),
        command,
    })))
}

fn room_request(obj: &Map<String, Value>) -> Result<RoomRequest, DecodeError> {
    Ok(RoomRequest {
        room: room(obj, "room")?,
        stream_id: opt_id(obj, "streamId")?,
    })
}

fn stream_request(obj: &Map<String, Value>) -> Result<StreamRequest, DecodeError> {
    Ok(StreamRequest {
        stream_id: stream_id(obj)?.to_owned(),
    })
}

/// A required room id: present, non-empty, and a valid stream id (a room is a main track).
fn room(obj: &Map<String, Value>, field: &'static str) -> Result<String, DecodeError> {
    opt_id(obj, field)?.ok_or(DecodeError::MissingField("room"))
}

/// An optional stream or room id: absent, `null` or `""` is `None`; otherwise it must be made
/// of `[A-Za-z0-9._-]`.
fn opt_id(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match opt_str(obj, field)? {
        None | Some("") => Ok(None),
        Some(id) if valid_id(id) => Ok(Some(id.to_owned())),
        Some(id) => Err(DecodeError::InvalidStreamName(truncate(id, ECHO_CHARS))),
    }
}

/// An optional free-text field; empty is `None`.
fn opt_text(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    Ok(opt_str(obj, field)?
        .filter(|s| !s.is_empty())
        .map(str::to_owned))
}

/// Metadata: a string as is, any other JSON as its JSON text; absent or `null` is `None`.
fn meta(obj: &Map<String, Value>, field: &str) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// `forceStreamQuality`'s `streamHeight`: a frame height in pixels, 0 for automatic. Required:
/// the SDK always sends it (`forceStreamQuality(streamId, resolution)`).
fn height(obj: &Map<String, Value>) -> Result<u32, DecodeError> {
    const FIELD: &str = "streamHeight";
    const EXPECTED: &str = "a height in pixels from 0 (automatic) to 8192";
    match obj.get(FIELD) {
        None | Some(Value::Null) => Err(DecodeError::MissingField(FIELD)),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|h| *h <= 8192)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or(DecodeError::WrongType {
                field: FIELD,
                expected: EXPECTED,
            }),
        Some(_) => Err(DecodeError::WrongType {
            field: FIELD,
            expected: EXPECTED,
        }),
    }
}

/// An optional non-negative integer (page offset or size).
fn opt_count(obj: &Map<String, Value>, field: &'static str) -> Result<Option<u32>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            // Sizes beyond u32 are clamped (the plugin clamps further), not refused.
            Some(n) => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
            None => Err(DecodeError::WrongType {
                field,
                expected: "a non-negative integer",
            }),
        },
        Some(_) => Err(DecodeError::WrongType {
            field,
            expected: "a non-negative integer",
        }),
    }
}
