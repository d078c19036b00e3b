//! What the conference catalog stores: rooms created through the REST API and one-time tokens.
//! Both serialize with Ant Media's field names, which is also how the REST API shows them and
//! how the store keeps them (JSON values).

use serde::{Deserialize, Serialize};

/// Rooms created through REST default to this many seconds from their start.
pub const DEFAULT_ROOM_DURATION_SECS: i64 = 3600;

/// A conference room created through the REST API (Ant Media's `ConferenceRoom`). Rooms that
/// peers simply join without one being created are open at any time and are not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRecord {
    /// The room id (a stream id: `[A-Za-z0-9._-]`).
    pub room_id: String,
    /// Joins are accepted from this time on, Unix seconds.
    pub start_date: i64,
    /// Joins are refused from this time on, Unix seconds.
    pub end_date: i64,
    /// Streams in the room: the ones added with `PUT .../add?streamId=` and, when the REST API
    /// shows a room, the participants present now.
    #[serde(default)]
    pub room_stream_list: Vec<String>,
    /// Ant's conference mode (`legacy`, `mcu`, `amcu`, `multitrack`); kept, not interpreted.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The `[[antmedia_app]]` entry (its `name`, `*` included) whose `/{app}/rest/` created the
    /// room: its checks apply to every join of the room whichever app's URL it comes through,
    /// and only its REST path sees, changes or mints tokens for the room. Absent when no
    /// application was configured (and in records written before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

fn default_mode() -> String {
    "legacy".to_owned()
}

impl RoomRecord {
    /// Whether joins are accepted at `now` (Unix seconds): `start_date <= now < end_date`.
    pub fn is_open(&self, now: i64) -> bool {
        self.start_date <= now && now < self.end_date
    }
}

/// The body of `POST .../conference-rooms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewRoom {
    /// The room id; one is made up when absent.
    #[serde(default)]
    pub room_id: Option<String>,
    /// Unix seconds; absent or 0: now.
    #[serde(default)]
    pub start_date: i64,
    /// Unix seconds; absent or 0: an hour after the start.
    #[serde(default)]
    pub end_date: i64,
    /// Ant's conference mode; absent: `legacy`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Publishing a stream (and, for `joinRoom`, nothing: joins are checked as `play`).
    Publish,
    /// Playing a stream, or joining a room.
    Play,
}

impl TokenType {
    /// `"publish"` or `"play"`, as in Ant's `type` field and JWT claim.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Publish => "publish",
            TokenType::Play => "play",
        }
    }

    /// Parses `"publish"` or `"play"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "publish" => Some(TokenType::Publish),
            "play" => Some(TokenType::Play),
            _ => None,
        }
    }
}

/// A token as Ant Media's REST API returns it. One-time tokens are stored; JWTs are only
/// returned (their `tokenId` is the JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The token the peer sends in `token`.
    pub token_id: String,
    /// The stream it is for (for a room token: the stream id it was requested under).
    pub stream_id: String,
    /// Valid while now is before this, Unix seconds.
    pub expire_date: i64,
    /// Publish or play.
    #[serde(rename = "type")]
    pub kind: TokenType,
    /// A token bound to a room is good for any stream of that room and is not used up.
    #[serde(default)]
    pub room_id: Option<String>,
    /// The `[[antmedia_app]]` entry (its `name`, `*` included) whose security the token was
    /// minted under through `/{app}/rest/`: only that entry's checks accept it, so another
    /// application's REST path cannot mint tokens for a stream it does not protect. Absent in
    /// tokens minted while no application was configured (and in records written before this
    /// field existed), which every check accepts as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}
