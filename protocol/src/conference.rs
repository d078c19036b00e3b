//! Ant Media conference rooms (`docs/protocol/antmedia.md` §2, §3, §5): the requests an Ant
//! peer sends about rooms and streams ([`ConferenceRequest`], inbound), and what a conference
//! plugin answers ([`ConferenceReply`], outbound). The `antmedia` dialect decodes every request;
//! the raw dialect decodes `publish` and `play` (its `switchboard.publish`/`switchboard.play`)
//! and renders the media replies (offer, answer, started, finished), nothing else.
//!
//! Conference errors are ordinary [`crate::ErrorNotice`]s with conference codes
//! ([`crate::ErrorCode::NoStream`], [`crate::ErrorCode::RoomEmpty`], ...).

use serde::{Deserialize, Serialize};

/// A conference request from an Ant Media peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceRequest {
    /// The Ant Media application the peer is connected to (`{app}` of `/{app}/websocket`).
    /// Rooms are global, but stream security is configured per application. Empty when the
    /// codec was not told.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// What the peer asks for.
    pub command: ConferenceCommand,
}

impl ConferenceRequest {
    /// The room or stream the request is about: the room for room commands, the stream id
    /// otherwise. The gateway hands plugins this room's membership.
    pub fn target(&self) -> &str {
        self.command.target()
    }
}

/// The conference commands the gateway serves (the rest of Ant's conference and media commands
/// are refused by the codec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConferenceCommand {
    /// `joinRoom`: become a participant of a room.
    JoinRoom(JoinRoom),
    /// `leaveFromRoom`.
    LeaveRoom(RoomRequest),
    /// `getRoomInfo`: the streams in a room.
    GetRoomInfo(RoomRequest),
    /// `getStreamInfo`.
    GetStreamInfo(StreamRequest),
    /// `getTrackList`: the stream ids under a main track (a room).
    GetTrackList(StreamRequest),
    /// `getBroadcastObject`.
    GetBroadcastObject(StreamRequest),
    /// `getSubtracks`: the broadcast objects under a main track, paged.
    GetSubtracks(SubtrackQuery),
    /// `getSubtracksCount`.
    GetSubtrackCount(SubtrackQuery),
    /// `getSubscriberCount`.
    GetSubscriberCount(StreamRequest),
    /// `updateStreamMetaData`.
    UpdateMetaData(MetaData),
    /// `publish`: send media to the server.
    Publish(MediaRequest),
    /// `play`: receive media from the server.
    Play(MediaRequest),
    /// `toggleVideo`, `toggleAudio`, `enableTrack`: the server stops or resumes sending a
    /// track (one kind of it, or all of it).
    ToggleTrack(ToggleTrack),
    /// `forceStreamQuality`: pin a player to the simulcast layer of a height (0: the gateway
    /// chooses).
    ForceQuality(ForceQuality),
}

impl ConferenceCommand {
    /// The room for room commands, the stream id otherwise.
    pub fn target(&self) -> &str {
        match self {
            ConferenceCommand::JoinRoom(j) => &j.room,
            ConferenceCommand::LeaveRoom(r) | ConferenceCommand::GetRoomInfo(r) => &r.room,
            ConferenceCommand::GetStreamInfo(s)
            | ConferenceCommand::GetTrackList(s)
            | ConferenceCommand::GetBroadcastObject(s)
            | ConferenceCommand::GetSubscriberCount(s) => &s.stream_id,
            ConferenceCommand::GetSubtracks(q) | ConferenceCommand::GetSubtrackCount(q) => {
                &q.stream_id
            }
            ConferenceCommand::UpdateMetaData(m) => &m.stream_id,
            ConferenceCommand::Publish(m) | ConferenceCommand::Play(m) => &m.stream_id,
            ConferenceCommand::ToggleTrack(t) => &t.stream_id,
            ConferenceCommand::ForceQuality(q) => &q.stream_id,
        }
    }

    /// The stream-security token the request carries, for checking or redacting it.
    pub fn token_mut(&mut self) -> Option<&mut Option<String>> {
        match self {
            ConferenceCommand::JoinRoom(j) => Some(&mut j.token),
            ConferenceCommand::Publish(m) | ConferenceCommand::Play(m) => Some(&mut m.token),
            _ => None,
        }
    }

    /// The Ant command name (`"joinRoom"`, ...), for logs and messages.
    pub fn ant_name(&self) -> &'static str {
        match self {
            ConferenceCommand::JoinRoom(_) => "joinRoom",
            ConferenceCommand::LeaveRoom(_) => "leaveFromRoom",
            ConferenceCommand::GetRoomInfo(_) => "getRoomInfo",
            ConferenceCommand::GetStreamInfo(_) => "getStreamInfo",
            ConferenceCommand::GetTrackList(_) => "getTrackList",
            ConferenceCommand::GetBroadcastObject(_) => "getBroadcastObject",
            ConferenceCommand::GetSubtracks(_) => "getSubtracks",
            ConferenceCommand::GetSubtrackCount(_) => "getSubtracksCount",
            ConferenceCommand::GetSubscriberCount(_) => "getSubscriberCount",
            ConferenceCommand::UpdateMetaData(_) => "updateStreamMetaData",
            ConferenceCommand::Publish(_) => "publish",
            ConferenceCommand::Play(_) => "play",
            ConferenceCommand::ToggleTrack(t) => match t.kind {
                Some(TrackKind::Video) => "toggleVideo",
                Some(TrackKind::Audio) => "toggleAudio",
                None => "enableTrack",
            },
            ConferenceCommand::ForceQuality(_) => "forceStreamQuality",
        }
    }
}

/// `joinRoom`. Absent, `null` and empty optional fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRoom {
    /// The room (Ant's `room`; `mainTrack` carries the same id).
    pub room: String,
    /// The participant's stream id; the server makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// Ant's conference `mode` (`legacy`, `mcu`, `amcu`, `multitrack`), kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Human-readable stream name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    /// The participant's role (used by Ant for selective forwarding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Free-text metadata (the SDK sends `metadata`, lowercase `d`); non-string JSON is kept as
    /// its JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<String>,
    /// A token, when the peer sent one (a Switchboard extension: the JS SDK's `joinRoom` sends
    /// none). Checked only where an application's security settings ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A command about a room: `leaveFromRoom`, `getRoomInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRequest {
    /// The room.
    pub room: String,
    /// The sender's own stream id, when it gave one (`getRoomInfo` leaves it out of the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// A command about one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRequest {
    /// The stream (or, for main-track queries, the room).
    pub stream_id: String,
}

/// `getSubtracks` / `getSubtracksCount`: the subtracks of main track `stream_id`, optionally
/// filtered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtrackQuery {
    /// The main track (a room).
    pub stream_id: String,
    /// Only subtracks with this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Only subtracks with this status (`getSubtracksCount`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// First subtrack of the page (`getSubtracks`).
    #[serde(default)]
    pub offset: u32,
    /// Page size (`getSubtracks`); `None` for the server's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// `updateStreamMetaData`, and its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaData {
    /// The stream.
    pub stream_id: String,
    /// The new metadata (non-string JSON is kept as its JSON text).
    pub meta_data: String,
}

/// `publish` or `play`: the fields the gateway checks before it refuses for lack of media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRequest {
    /// The stream to publish or play.
    pub stream_id: String,
    /// The stream-security token (one-time token, JWT or hash), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The room: `publish`'s `mainTrack`, `play`'s `room`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// `toggleVideo {streamId, trackId, enabled}`, `toggleAudio {…}`, `enableTrack {streamId:
/// mainTrack, trackId, enabled}`: the server stops (`enabled: false`) or resumes sending track
/// `track_id` on stream `stream_id` (the sender's play stream: a room or one stream; or the
/// sender's own publish stream, to every player).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToggleTrack {
    /// The play (or publish) stream it applies to.
    pub stream_id: String,
    /// The track: a publisher's stream id (the stream itself for a single-stream play).
    pub track_id: String,
    /// Video or audio (`toggleVideo`, `toggleAudio`); `None` for both (`enableTrack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TrackKind>,
    /// Send (`true`) or not.
    pub enabled: bool,
}

/// `forceStreamQuality {streamId, streamHeight}` (and, a Switchboard extension, `trackId`): the
/// server sends play stream `stream_id`'s video from the publisher's simulcast layer of height
/// `height`, or chooses the layer itself again when `height` is 0 (Ant's "auto").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForceQuality {
    /// The play stream it applies to (a room or one stream).
    pub stream_id: String,
    /// One publisher's stream id within it; the play stream itself for all of its video.
    pub track_id: String,
    /// The frame height of the layer to send; 0 for automatic.
    pub height: u32,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// A conference reply to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConferenceReply {
    /// `notification/joinedTheRoom`.
    JoinedRoom(JoinedRoom),
    /// `notification/leavedFromRoom`.
    LeftRoom(LeftRoom),
    /// `roomInformation`.
    RoomInfo(RoomInfo),
    /// `streamInformation`.
    StreamInfo(StreamInfo),
    /// `trackList`.
    TrackList(TrackList),
    /// `notification/broadcastObject`.
    BroadcastObject(BroadcastObject),
    /// `notification/subtrackList`.
    SubtrackList(SubtrackList),
    /// `notification/subtrackCount`.
    SubtrackCount(Count),
    /// `notification/subscriberCount`.
    SubscriberCount(Count),
    /// `notification/streamMetaDataUpdated` (acknowledges `updateStreamMetaData`).
    MetaDataUpdated(MetaData),
    /// A media plugin's answer to a publisher's offer: `takeConfiguration` of type `answer`.
    MediaAnswer(MediaAnswer),
    /// A media plugin's offer to a player: `takeConfiguration` of type `offer` with an
    /// `idMapping` (antmedia.md §5); sent again on the same stream id to renegotiate.
    MediaOffer(MediaOffer),
    /// `notification/publish_started` or `play_started`: the media plugin's peer connection
    /// for the stream is up.
    MediaStarted(MediaState),
    /// `notification/publish_finished` or `play_finished`: it ended (`stop`, or ICE failed).
    MediaFinished(MediaState),
}

impl ConferenceReply {
    /// The room or stream the reply is about.
    pub fn target(&self) -> &str {
        match self {
            ConferenceReply::JoinedRoom(j) => &j.room,
            ConferenceReply::LeftRoom(l) => &l.room,
            ConferenceReply::RoomInfo(r) => &r.room,
            ConferenceReply::StreamInfo(s) => &s.stream_id,
            ConferenceReply::TrackList(t) => &t.stream_id,
            ConferenceReply::BroadcastObject(b) => &b.stream_id,
            ConferenceReply::SubtrackList(s) => &s.stream_id,
            ConferenceReply::SubtrackCount(c) | ConferenceReply::SubscriberCount(c) => &c.stream_id,
            ConferenceReply::MetaDataUpdated(m) => &m.stream_id,
            ConferenceReply::MediaOffer(o) => &o.stream_id,
            ConferenceReply::MediaAnswer(a) => &a.stream_id,
            ConferenceReply::MediaStarted(m) | ConferenceReply::MediaFinished(m) => &m.stream_id,
        }
    }
}

/// One stream in a room, as `streamList` entries show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomStream {
    /// The stream id.
    pub stream_id: String,
    /// Its name (may be empty).
    #[serde(default)]
    pub stream_name: String,
    /// Its metadata (may be empty).
    #[serde(default)]
    pub meta_data: String,
}

/// `joinedTheRoom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedRoom {
    /// The room.
    pub room: String,
    /// The joiner's stream id (the one it asked for, or one made up for it).
    pub stream_id: String,
    /// The other streams in the room.
    pub streams: Vec<RoomStream>,
    /// The room's maximum number of video tracks a player receives.
    pub max_track_count: u32,
}

/// `leavedFromRoom`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftRoom {
    /// The room.
    pub room: String,
    /// The leaver's stream id in the room, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
}

/// `roomInformation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// The room.
    pub room: String,
    /// The streams in the room (without the requester's own).
    pub streams: Vec<RoomStream>,
}

/// `streamInformation`: the media tracks of a stream. Empty while no media plugin measures
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream.
    pub stream_id: String,
    /// One entry per quality the server offers.
    #[serde(default)]
    pub infos: Vec<MediaInfo>,
}

/// One entry of `streamInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Video width in pixels.
    pub width: u32,
    /// Video height in pixels.
    pub height: u32,
    /// Video bitrate in bits per second.
    pub video_bitrate: u64,
    /// Audio bitrate in bits per second.
    pub audio_bitrate: u64,
    /// Video codec name.
    pub video_codec: String,
}

/// `trackList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackList {
    /// The main track (room).
    pub stream_id: String,
    /// The stream ids under it.
    pub tracks: Vec<String>,
}

/// An Ant Media broadcast object, the subset a signaling server knows. The SDK receives it as a
/// JSON *string*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// The stream id.
    pub stream_id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Ant's status (`created`, `broadcasting`, `finished`).
    pub status: String,
    /// Free-text metadata.
    #[serde(default)]
    pub meta_data: String,
    /// The participant's role.
    #[serde(default)]
    pub role: String,
    /// For a subtrack: its main track (room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_track_stream_id: Option<String>,
    /// For a main track: its subtracks.
    #[serde(default)]
    pub sub_track_stream_ids: Vec<String>,
    /// Planned start, Unix seconds (0: none).
    #[serde(default)]
    pub planned_start_date: i64,
    /// Planned end, Unix seconds (0: none).
    #[serde(default)]
    pub planned_end_date: i64,
}

/// `broadcastObject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastObject {
    /// The stream asked about.
    pub stream_id: String,
    /// Its broadcast object.
    pub broadcast: Broadcast,
}

/// `subtrackList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtrackList {
    /// The main track (room).
    pub stream_id: String,
    /// One page of subtracks.
    pub subtracks: Vec<Broadcast>,
}

/// `subtrackCount` / `subscriberCount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The stream asked about.
    pub stream_id: String,
    /// How many.
    pub count: u64,
}

/// One entry of an offer's `idMapping`: which track a media section carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackMapping {
    /// The media section's `mid`.
    pub mid: String,
    /// The track id the SDK reports in `newTrackAvailable` (`ARDAMSv<streamId>` for video,
    /// `ARDAMSa<streamId>` for audio).
    pub track_id: String,
}

/// A media plugin's SDP offer to a player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaOffer {
    /// The play stream id (the room, for a conference player).
    pub stream_id: String,
    /// The offer.
    pub sdp: String,
    /// The track of every media section, in SDP order.
    pub id_mapping: Vec<TrackMapping>,
}

/// A media plugin's SDP answer to a publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaAnswer {
    /// The publish stream id.
    pub stream_id: String,
    /// The answer.
    pub sdp: String,
}

/// Which side of the media plugin a stream is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaDirection {
    /// The peer sends media (`publish`).
    Publish,
    /// The peer receives media (`play`).
    Play,
}

/// A publish or play stream that started or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaState {
    /// The stream id.
    pub stream_id: String,
    /// Publish or play.
    pub direction: MediaDirection,
    /// The room, for a publisher into a room (`ATTR_ROOM_NAME` and `room`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}
