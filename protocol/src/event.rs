//! The normalized event vocabulary. Inbound events come from a peer's frame through its dialect's
//! `decode`; outbound events are rendered into the receiving peer's dialect by `encode`.
//!
//! Room ids are shared by every dialect: an Ant Media `streamId`, a socket.io `?room=` and a raw
//! `/ws/{room}` path segment all name the same room.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conference::{ConferenceReply, ConferenceRequest};
use crate::error::ErrorCode;
use crate::text::JsonText;

/// How a peer takes part in a room: sending media or only receiving it (only Ant Media
/// distinguishes the two: `mode:"play"` comes from the SDK's `isPlayMode`; every other peer is
/// `Both`), or as a conference participant (Ant `joinRoom`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinMode {
    /// Sends and receives media; can make a useful offer.
    #[default]
    Both,
    /// Receives only; an offer it makes carries no media sections.
    Play,
    /// An Ant Media conference participant (`joinRoom`): a member of the room, listed in its
    /// room information, but not a peer-to-peer partner. Routers leave such members out of
    /// pairing and relaying.
    Conference,
}

/// Why a peer left a room. Ant Media acknowledges only an explicit `leave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaveReason {
    /// An explicit leave request (Ant `leave`); the leaver gets an acknowledgement.
    Leave,
    /// Ant `stop` on a P2P stream: a hang-up without acknowledgement.
    Stop,
    /// The connection closed.
    Disconnect,
}

/// The type of a session description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    /// An SDP offer.
    Offer,
    /// An SDP answer.
    Answer,
    /// A provisional answer.
    Pranswer,
    /// A rollback of a pending local description.
    Rollback,
}

impl SdpKind {
    /// The W3C `RTCSdpType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
            SdpKind::Pranswer => "pranswer",
            SdpKind::Rollback => "rollback",
        }
    }

    /// Parses an `RTCSdpType` string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "offer" => Some(SdpKind::Offer),
            "answer" => Some(SdpKind::Answer),
            "pranswer" => Some(SdpKind::Pranswer),
            "rollback" => Some(SdpKind::Rollback),
            _ => None,
        }
    }
}

/// A request to join a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// The room to join.
    pub room: String,
    /// Whether the peer sends media.
    #[serde(default)]
    pub mode: JoinMode,
    /// A join token, when the peer gave one (Ant `token`, socket.io and raw `?token=`). The
    /// gateway itself ignores it; a room-policy plugin may require and check it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A peer leaves a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leave {
    /// The room being left.
    pub room: String,
    /// What caused the leave.
    pub reason: LeaveReason,
}

/// An SDP offer or answer, relayed to the partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The room the description belongs to.
    pub room: String,
    /// Offer, answer, ...
    pub kind: SdpKind,
    /// The SDP text, unchanged (kept as the sender's JSON literal until it is read).
    pub sdp: JsonText,
}

/// An ICE candidate, relayed to the partner. An empty `candidate` is the end-of-candidates mark
/// some browsers send; it is relayed like any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The room the candidate belongs to.
    pub room: String,
    /// The `candidate:` attribute line (kept as the sender's JSON literal until it is read).
    pub candidate: JsonText,
    /// The media stream identification tag (`sdpMid`; Ant Media's `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The m-line index (`sdpMLineIndex`; Ant Media's numeric `label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u32>,
    /// The ICE username fragment, when the sender gave one (Chromium's `toJSON()` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// An application message between peers (Ant Media `peerMessageCommand`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerMessage {
    /// The room the message belongs to.
    pub room: String,
    /// Application-defined message kind (any JSON).
    pub definition: Value,
    /// Application-defined payload (any JSON).
    pub data: Value,
}

/// A frame the dialect does not interpret. It is relayed byte-identical to peers of the same
/// dialect and dropped for peers of other dialects, which could not make sense of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opaque {
    /// The room the frame belongs to.
    pub room: String,
    /// The frame text exactly as received.
    pub payload: String,
}

/// A notice about a room, addressed to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomNotice {
    /// The room concerned.
    pub room: String,
}

/// An error reported to a peer in its own dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorNotice {
    /// The room concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

/// Ice server settings handed to peers that ask for them (Ant `getIceServerConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IceServers {
    /// A `stun:` or `turn:` URI, or empty for "keep your own".
    pub uri: String,
    /// TURN username, empty for STUN.
    pub username: String,
    /// TURN credential, empty for STUN.
    pub credential: String,
    /// Further URIs the same credentials are for (a `[turn] uris` list). Ant Media peers take
    /// only `uri`; raw and socket.io peers get every URI in one `RTCIceServer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_uris: Vec<String>,
}

/// One normalized signaling event. Variants up to [`Event::Opaque`] are what peers send; the rest
/// are what the gateway tells peers. Relayed signals ([`Event::Description`],
/// [`Event::Candidate`], [`Event::PeerMessage`], [`Event::Opaque`]) travel in both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// Peer asks to join a room.
    Join(Join),
    /// Peer leaves a room.
    Leave(Leave),
    /// SDP offer or answer.
    Description(Description),
    /// ICE candidate.
    Candidate(Candidate),
    /// Application message between peers.
    PeerMessage(PeerMessage),
    /// Uninterpreted frame, relayed unchanged within its dialect.
    Opaque(Opaque),
    /// Peer asks for ICE server settings.
    IceServersRequest,
    /// Join acknowledged (Ant `notification/joined`).
    Joined(RoomNotice),
    /// The receiver is to make the offer (Ant `start`).
    Start(RoomNotice),
    /// A partner arrived and will make the offer; the receiver answers.
    PeerJoined(RoomNotice),
    /// The partner left; close the peer connection (Ant `stop`).
    PeerLeft(RoomNotice),
    /// Leave acknowledged (Ant `notification/leaved`).
    Left(RoomNotice),
    /// ICE server settings (Ant `iceServerConfig`).
    IceServers(IceServers),
    /// Something was refused or malformed.
    Error(ErrorNotice),
    /// A conference request (Ant `joinRoom`, `getRoomInfo`, `publish`, ...; raw
    /// `switchboard.publish`/`switchboard.play`); inbound.
    /// Its room is the room for room commands and the stream id otherwise.
    Conference(Box<ConferenceRequest>),
    /// A conference or media plugin's answer; outbound, Ant Media (all of them) and raw (the
    /// media replies only).
    ConferenceReply(Box<ConferenceReply>),
    /// The gateway is draining and is about to close the connection (Ant
    /// `notification/server_will_stop`); outbound, sent to every peer just before the close.
    ServerWillStop,
}

impl Event {
    /// The room this event concerns, if any.
    pub fn room(&self) -> Option<&str> {
        match self {
            Event::Join(j) => Some(&j.room),
            Event::Leave(l) => Some(&l.room),
            Event::Description(d) => Some(&d.room),
            Event::Candidate(c) => Some(&c.room),
            Event::PeerMessage(m) => Some(&m.room),
            Event::Opaque(o) => Some(&o.room),
            Event::Joined(n)
            | Event::Start(n)
            | Event::PeerJoined(n)
            | Event::PeerLeft(n)
            | Event::Left(n) => Some(&n.room),
            Event::Error(e) => e.room.as_deref(),
            Event::Conference(c) => Some(c.target()),
            Event::ConferenceReply(r) => Some(r.target()),
            Event::IceServersRequest | Event::IceServers(_) | Event::ServerWillStop => None,
        }
    }

    /// A short stable name for logs and metrics (`"description"`, `"candidate"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Join(_) => "join",
            Event::Leave(_) => "leave",
            Event::Description(_) => "description",
            Event::Candidate(_) => "candidate",
            Event::PeerMessage(_) => "peer_message",
            Event::Opaque(_) => "opaque",
            Event::IceServersRequest => "ice_servers_request",
            Event::Joined(_) => "joined",
            Event::Start(_) => "start",
            Event::PeerJoined(_) => "peer_joined",
            Event::PeerLeft(_) => "peer_left",
            Event::Left(_) => "left",
            Event::IceServers(_) => "ice_servers",
            Event::Error(_) => "error",
            Event::Conference(_) => "conference",
            Event::ConferenceReply(_) => "conference_reply",
            Event::ServerWillStop => "server_will_stop",
        }
    }

    /// Shorthand for an error notice.
    pub fn error(code: ErrorCode, room: Option<&str>, message: impl Into<String>) -> Self {
        Event::Error(ErrorNotice {
            room: room.map(str::to_owned),
            code,
            message: message.into(),
        })
    }

    /// Shorthand for a room notice variant.
    pub fn notice(make: fn(RoomNotice) -> Event, room: &str) -> Self {
        make(RoomNotice {
            room: room.to_owned(),
        })
    }
}
