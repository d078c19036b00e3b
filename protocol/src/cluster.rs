//! The wire format between gateway nodes of one cluster (`[cluster]` in the daemon's config).
//!
//! Nodes share rooms through Redis: each node subscribes to one channel of its own and publishes
//! to the channel of the node that owns a session. What travels there is one [`NodeFrame`] per
//! pub/sub message, as JSON. The format is versioned by [`NODE_PROTOCOL_VERSION`]; a node drops
//! (and counts) frames of another version rather than misreading them. Golden files:
//! `tests/golden/cluster/`.
//!
//! Sans-IO like the rest of this crate: the daemon does the Redis side.

use serde::{Deserialize, Serialize};

use crate::{DialectKind, Event, JoinMode};

/// Version of the frames below; bump on any incompatible change.
pub const NODE_PROTOCOL_VERSION: u32 = 2;

/// One message from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFrame {
    /// [`NODE_PROTOCOL_VERSION`] of the sender.
    pub v: u32,
    /// The sending node's instance id (its `node_id` and start time).
    pub node: String,
    /// The sender's frame number, rising by one per frame it publishes. A frame published again
    /// after a Redis outage (its first publish may have gone through, the reply was lost) has
    /// its first number, so the receiver drops what it already has. Absent: not numbered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What it says.
    pub msg: NodeMessage,
}

/// A peer as another node sees it: its session id on its own node, its dialect and join mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePeer {
    /// The session id on the owning node.
    pub session: u64,
    /// Its dialect (the receiver renders verbatim relays by it).
    pub dialect: DialectKind,
    /// Its join mode in the room.
    pub mode: JoinMode,
}

/// What one node tells another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeMessage {
    /// A session of the sender joined `room` (the pipeline accepted it there); the receiver
    /// lists it in its room table. Sent before any delivery the join caused, so a reply to
    /// those deliveries finds the new member.
    Joined {
        /// The room.
        room: String,
        /// The new member.
        peer: RemotePeer,
    },
    /// A session of the sender left `room`.
    Left {
        /// The room.
        room: String,
        /// The member's session id on the sender.
        session: u64,
    },
    /// A peer's own event for the receiver's session `to`: rendered verbatim from `original`
    /// when the receiver speaks `from`'s dialect, re-encoded otherwise (as on one node).
    Relay {
        /// The receiving session, on the receiving node.
        to: u64,
        /// The sender.
        from: RemotePeer,
        /// The normalized event.
        event: Event,
        /// The sender's wire text, when forwarding it verbatim is meaningful.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original: Option<String>,
    },
    /// An event a plugin composed for the receiver's session `to` (a notice, an error).
    Deliver {
        /// The receiving session, on the receiving node.
        to: u64,
        /// The event.
        event: Event,
    },
    /// A media request of the sender's session `from` (a `publish`, `play`, SDP, candidate,
    /// track toggle, `stop` or `leaveFromRoom` of the media plugin) for the receiver, which
    /// is the media home of `room`: its media plugin serves it and answers `from` with
    /// [`NodeMessage::Deliver`] frames. The sender checked it (tokens, application rules)
    /// before forwarding it.
    Media {
        /// The requesting session, on the sending node.
        from: RemotePeer,
        /// The Ant application the request came through (`""`: none).
        app: String,
        /// The room whose media the receiver homes (the sender resolved it).
        room: String,
        /// The request.
        event: Event,
    },
    /// The sender's session `session`, which made media requests of the receiver, closed:
    /// its media there ends silently.
    MediaClosed {
        /// The session id on the sending node.
        session: u64,
    },
}

impl NodeFrame {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Every field is a string, a number or an `Event`, all of which serialize.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a frame; `Err` says why it is not one (unknown version included).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let frame: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if frame.v != NODE_PROTOCOL_VERSION {
            return Err(format!(
                "node protocol version {} (this node speaks {NODE_PROTOCOL_VERSION})",
                frame.v
            ));
        }
        Ok(frame)
    }
}
