//! Gateway → client: [`ConferenceReply`] to the frames AMS sends for conference requests
//! (antmedia.md §3: `joinedTheRoom`, `roomInformation`, `broadcastObject`, ...). Keys come out
//! in a fixed order.

use serde::Serialize;

use crate::conference::{
    Broadcast, ConferenceReply, MediaDirection, MediaInfo, MediaState, RoomStream,
};
use crate::dialects::common::to_text;

/// A `streamList` entry.
#[derive(Serialize)]
struct StreamEntry<'a> {
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "streamName")]
    stream_name: &'a str,
    #[serde(rename = "metaData")]
    meta_data: &'a str,
}

/// `notification/joinedTheRoom`.
#[derive(Serialize)]
struct JoinedTheRoom<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    /// Deprecated in AMS in favour of `streamList`, still read by the SDK samples.
    streams: Vec<&'a str>,
    #[serde(rename = "streamList")]
    stream_list: Vec<StreamEntry<'a>>,
    #[serde(rename = "ATTR_ROOM_NAME")]
    attr_room_name: &'a str,
    room: &'a str,
    #[serde(rename = "maxTrackCount")]
    max_track_count: u32,
}

/// `notification/leavedFromRoom`.
#[derive(Serialize)]
struct LeavedFromRoom<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId", skip_serializing_if = "Option::is_none")]
    stream_id: Option<&'a str>,
    #[serde(rename = "ATTR_ROOM_NAME")]
    attr_room_name: &'a str,
    room: &'a str,
}

/// `roomInformation`.
#[derive(Serialize)]
struct RoomInformation<'a> {
    command: &'static str,
    streams: Vec<&'a str>,
    #[serde(rename = "streamList")]
    stream_list: Vec<StreamEntry<'a>>,
    #[serde(rename = "ATTR_ROOM_NAME")]
    attr_room_name: &'a str,
    room: &'a str,
}

#[derive(Serialize)]
struct StreamInformation<'a> {
    command: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "streamInfo")]
    stream_info: Vec<StreamInfoEntry<'a>>,
}

#[derive(Serialize)]
struct StreamInfoEntry<'a> {
    #[serde(rename = "streamWidth")]
    width: u32,
    #[serde(rename = "streamHeight")]
    height: u32,
    #[serde(rename = "videoBitrate")]
    video_bitrate: u64,
    #[serde(rename = "audioBitrate")]
    audio_bitrate: u64,
    #[serde(rename = "videoCodec")]
    video_codec: &'a str,
}

impl<'a> From<&'a MediaInfo> for StreamInfoEntry<'a> {
    fn from(m: &'a MediaInfo) -> Self {
        Self {
            width: m.width,
            height: m.height,
            video_bitrate: m.video_bitrate,
            audio_bitrate: m.audio_bitrate,
            video_codec: &m.video_codec,
        }
    }
}

#[derive(Serialize)]
struct TrackListFrame<'a> {
    command: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "trackList")]
    track_list: &'a [String],
}

/// `notification/broadcastObject`: `broadcast` is a JSON *string* (the SDK apps `JSON.parse` it).
#[derive(Serialize)]
struct BroadcastFrame<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    broadcast: String,
}

/// `notification/subtrackList`: every entry is a broadcast object's JSON *string*.
#[derive(Serialize)]
struct SubtrackListFrame<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "subtrackList")]
    subtrack_list: Vec<String>,
}

/// `notification/subtrackCount` and `notification/subscriberCount`.
#[derive(Serialize)]
struct CountFrame<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    count: u64,
}

#[derive(Serialize)]
struct MetaDataFrame<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "metaData")]
    meta_data: &'a str,
}

/// An Ant `Broadcast` as its REST API and `broadcastObject` show it (the fields a signaling
/// server knows).
#[derive(Serialize)]
struct BroadcastJson<'a> {
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    name: &'a str,
    status: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "metaData")]
    meta_data: &'a str,
    role: &'a str,
    #[serde(rename = "mainTrackStreamId", skip_serializing_if = "Option::is_none")]
    main_track_stream_id: Option<&'a str>,
    #[serde(rename = "subTrackStreamIds")]
    sub_track_stream_ids: &'a [String],
    #[serde(rename = "plannedStartDate")]
    planned_start_date: i64,
    #[serde(rename = "plannedEndDate")]
    planned_end_date: i64,
}

fn broadcast_json(b: &Broadcast) -> Option<String> {
    to_text(&BroadcastJson {
        stream_id: &b.stream_id,
        name: &b.name,
        status: &b.status,
        kind: "liveStream",
        meta_data: &b.meta_data,
        role: &b.role,
        main_track_stream_id: b.main_track_stream_id.as_deref(),
        sub_track_stream_ids: &b.sub_track_stream_ids,
        planned_start_date: b.planned_start_date,
        planned_end_date: b.planned_end_date,
    })
}

fn ids(streams: &[RoomStream]) -> Vec<&str> {
    streams.iter().map(|s| s.stream_id.as_str()).collect()
}

fn entries(streams: &[RoomStream]) -> Vec<StreamEntry<'_>> {
    streams
        .iter()
        .map(|s| StreamEntry {
            stream_id: &s.stream_id,
            stream_name: &s.stream_name,
            meta_data: &s.meta_data,
        })
        .collect()
}

/// `takeConfiguration` from the server, with its `idMapping` object (mid → track id).
#[derive(Serialize)]
struct OfferFrame<'a> {
    command: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    sdp: &'a str,
    #[serde(rename = "idMapping")]
    id_mapping: serde_json::Map<String, serde_json::Value>,
}

/// `notification/publish_started` and friends.
#[derive(Serialize)]
struct MediaNotification<'a> {
    command: &'static str,
    definition: &'static str,
    #[serde(rename = "streamId")]
    stream_id: &'a str,
    #[serde(rename = "ATTR_ROOM_NAME", skip_serializing_if = "Option::is_none")]
    attr_room_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
}

fn media_notification(m: &MediaState, started: bool) -> Option<String> {
    let definition = match (m.direction, started) {
        (MediaDirection::Publish, true) => "publish_started",
        (MediaDirection::Publish, false) => "publish_finished",
        (MediaDirection::Play, true) => "play_started",
        (MediaDirection::Play, false) => "play_finished",
    };
    to_text(&MediaNotification {
        command: "notification",
        definition,
        stream_id: &m.stream_id,
        attr_room_name: m.room.as_deref(),
        room: m.room.as_deref(),
    })
}

/// Renders a conference reply as AMS would send it.
pub(super) fn encode(reply: &ConferenceReply) -> Option<String> {
    const NOTIFICATION: &str = "notification";
    match reply {
        ConferenceReply::JoinedRoom(j) => to_text(&JoinedTheRoom {
            command: NOTIFICATION,
            definition: "joinedTheRoom",
            stream_id: &j.stream_id,
            streams: ids(&j.streams),
            stream_list: entries(&j.streams),
            attr_room_name: &j.room,
            room: &j.room,
            max_track_count: j.max_track_count,
        }),
        ConferenceReply::LeftRoom(l) => to_text(&LeavedFromRoom {
            command: NOTIFICATION,
            definition: "leavedFromRoom",
            stream_id: l.stream_id.as_deref(),
            attr_room_name: &l.room,
            room: &l.room,
        }),
        ConferenceReply::RoomInfo(r) => to_text(&RoomInformation {
            command: "roomInformation",
            streams: ids(&r.streams),
            stream_list: entries(&r.streams),
            attr_room_name: &r.room,
            room: &r.room,
        }),
        ConferenceReply::StreamInfo(s) => to_text(&StreamInformation {
            command: "streamInformation",
            stream_id: &s.stream_id,
            stream_info: s.infos.iter().map(StreamInfoEntry::from).collect(),
        }),
        ConferenceReply::TrackList(t) => to_text(&TrackListFrame {
            command: "trackList",
            stream_id: &t.stream_id,
            track_list: &t.tracks,
        }),
        ConferenceReply::BroadcastObject(b) => to_text(&BroadcastFrame {
            command: NOTIFICATION,
            definition: "broadcastObject",
            stream_id: &b.stream_id,
            broadcast: broadcast_json(&b.broadcast)?,
        }),
        ConferenceReply::SubtrackList(s) => to_text(&SubtrackListFrame {
            command: NOTIFICATION,
            definition: "subtrackList",
            stream_id: &s.stream_id,
            subtrack_list: s
                .subtracks
                .iter()
                .map(broadcast_json)
                .collect::<Option<Vec<_>>>()?,
        }),
        ConferenceReply::SubtrackCount(c) => to_text(&CountFrame {
            command: NOTIFICATION,
            definition: "subtrackCount",
            stream_id: &c.stream_id,
            count: c.count,
        }),
        ConferenceReply::SubscriberCount(c) => to_text(&CountFrame {
            command: NOTIFICATION,
            definition: "subscriberCount",
            stream_id: &c.stream_id,
            count: c.count,
        }),
        ConferenceReply::MetaDataUpdated(m) => to_text(&MetaDataFrame {
            command: NOTIFICATION,
            definition: "streamMetaDataUpdated",
            stream_id: &m.stream_id,
            meta_data: &m.meta_data,
        }),
        ConferenceReply::MediaOffer(o) => to_text(&OfferFrame {
            command: "takeConfiguration",
            stream_id: &o.stream_id,
            kind: "offer",
            sdp: &o.sdp,
            id_mapping: o
                .id_mapping
                .iter()
                .map(|t| (t.mid.clone(), serde_json::Value::String(t.track_id.clone())))
                .collect(),
        }),
        // The same frame the P2P relay of an answer gives (an empty idMapping included).
        ConferenceReply::MediaAnswer(a) => to_text(&OfferFrame {
            command: "takeConfiguration",
            stream_id: &a.stream_id,
            kind: "answer",
            sdp: &a.sdp,
            id_mapping: serde_json::Map::new(),
        }),
        ConferenceReply::MediaStarted(m) => media_notification(m, true),
        ConferenceReply::MediaFinished(m) => media_notification(m, false),
    }
}
