//! The frames nodes exchange, as types: [`NodeFrame`], [`NodeMessage`] and the borrowed form
//! of a forward, [`ForwardRef`]. The bundle's binary layout (`bundle.rs`) and the functions that
//! read and write whole frames (`cluster.rs`) both use these, so they sit in a module of their
//! own that uses neither.

use serde::{Deserialize, Serialize};

use super::forward::Forwarding;
use crate::{DialectKind, Event, JoinMode};

/// Version of the frames below; bump on any incompatible change.
pub const NODE_PROTOCOL_VERSION: u32 = 6;

/// One message from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFrame {
    /// [`NODE_PROTOCOL_VERSION`] of the sender.
    pub v: u32,
    /// The sending node's instance id (its `node_id` and start time).
    pub node: String,
    /// The sender's frame number, rising by one per frame it publishes *to this receiver*
    /// (from 1; node protocol 6), so the receiver sees a gap. A frame published again (after
    /// a Redis outage, or asked for again by an [`NodeMessage::Ack`] with `resend`) has its
    /// first number, so the receiver drops what it already has. Absent: not numbered (the
    /// acknowledgements themselves).
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
    /// A peer's own signal for the receiver's session `to`, of the sender's dialect: the
    /// sender's wire text only, decoded again by the receiver ([`rebuild_event`](super::rebuild_event)). Travels in
    /// the binary form of the frame, never as JSON.
    #[serde(skip)]
    Forward {
        /// The receiving session, on the receiving node.
        to: u64,
        /// The sender's dialect (the receiver's too).
        dialect: DialectKind,
        /// The sender's join mode.
        mode: JoinMode,
        /// What `original` is for the receiver.
        how: Forwarding,
        /// The room the signal is for.
        room: String,
        /// The text: the receiver's frame, a socket.io `msg` literal, or the sender's wire
        /// text to decode again ([`Forwarding`]).
        original: String,
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
    /// Not numbered. The sender of this message has handed every frame of the receiver's up
    /// to number `got` to its sessions, in order: the receiver may forget them. With `resend`
    /// it also asks for every later frame again, in order, before anything newer (it saw a
    /// gap, or its subscription was lost and what Redis had not yet written to it is gone).
    Ack {
        /// The highest frame number of the receiver's that the sender of the ack has handed
        /// on (every one before it too).
        got: u64,
        /// Publish every frame after `got` again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resend: bool,
    },
    /// Not numbered. The frames of the sender's before number `next` that the receiver has
    /// not got are gone for good (the sender's replay window no longer holds them): the sender
    /// has ended its calls with the receiver's peers (their leaves follow as frames), and the
    /// receiver takes `next` as the next frame in order rather than waiting for the gap.
    Reset {
        /// The frame number that follows the lost ones.
        next: u64,
    },
}

impl NodeMessage {
    /// A [`NodeMessage::Forward`]'s fields, borrowed; `None` for every other message.
    pub fn as_forward(&self) -> Option<ForwardRef<'_>> {
        match self {
            NodeMessage::Forward {
                to,
                dialect,
                mode,
                how,
                room,
                original,
            } => Some(ForwardRef {
                to: *to,
                dialect: *dialect,
                mode: *mode,
                how: *how,
                room,
                original,
            }),
            _ => None,
        }
    }
}

/// A forward's fields, borrowed: what a [`BundleWriter`](super::BundleWriter) writes without copying the sender's
/// text into a [`NodeFrame`] first.
#[derive(Debug, Clone, Copy)]
pub struct ForwardRef<'a> {
    /// The receiving session.
    pub to: u64,
    /// The sender's dialect.
    pub dialect: DialectKind,
    /// The sender's join mode.
    pub mode: JoinMode,
    /// What `original` is for the receiver ([`prepare_forward`](super::prepare_forward)).
    pub how: Forwarding,
    /// The room.
    pub room: &'a str,
    /// The text.
    pub original: &'a str,
}
