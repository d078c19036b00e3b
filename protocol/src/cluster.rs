//! The wire format between gateway nodes of one cluster (`[cluster]` in the daemon's config).
//!
//! Nodes share rooms through Redis: each node subscribes to one channel of its own and publishes
//! to the channel of the node that owns a session. What travels there is a **bundle**
//! ([`bundle`]): the header once (version, sending node), then every frame the publisher had
//! queued for that node, each with its length and its own frame number. A frame is either
//!
//! - a **forward** (`F`): a peer's signal for a receiver of the sender's own dialect, after the
//!   few routing fields (receiving session, sender's dialect and join mode, how the receiver
//!   renders it, room): the frame the receiving peer gets, rendered by the sender, which has
//!   the event decoded already (the sender's text itself when it goes on unchanged), or a
//!   socket.io `msg` literal ([`forward`]); only a signal whose rendering needs the receiving
//!   session's state is the sender's text, decoded again there ([`rebuild_event`]). No
//!   escaping, no copy of the event beside it: the sender's frame crosses Redis once;
//! - or a **message** (`J`): [`NodeMessage`] as JSON, for membership changes, notices and
//!   relays to a peer of another dialect (which carry the normalized event only).
//!
//! The format is versioned by [`NODE_PROTOCOL_VERSION`]; a node drops (and counts) frames of
//! another version rather than misreading them. Golden files: `tests/golden/cluster/`.
//!
//! Sans-IO like the rest of this crate: the daemon does the Redis side.

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

mod bundle;
mod forward;

pub use bundle::{
    BUNDLE_LIMIT, BundleReader, BundleWriter, FrameBody, FrameError, FrameRef, forward_body,
};
pub use forward::{Forwarding, SignalKind, prepare_forward};

use crate::dialects::Dialect;
use crate::{Decoded, DialectKind, Event, JoinMode};

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
    /// sender's wire text only, decoded again by the receiver ([`rebuild_event`]). Travels in
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

impl NodeFrame {
    /// The frame alone in a bundle, as published ([`bundle`]): the header (version, sending
    /// node), then the frame's length, number and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let mut writer = BundleWriter::new(&mut buf, &self.node, usize::MAX);
        match &self.msg {
            NodeMessage::Forward {
                to,
                dialect,
                mode,
                how,
                room,
                original,
            } => writer.push(
                self.seq,
                FrameRef::Forward(&ForwardRef {
                    to: *to,
                    dialect: *dialect,
                    mode: *mode,
                    how: *how,
                    room,
                    original,
                }),
            ),
            msg => writer.push(self.seq, FrameRef::Message(msg)),
        };
        writer.finish().map(Vec::from).unwrap_or_default()
    }

    /// Parses a bundle of exactly one frame (what [`Self::to_bytes`] makes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FrameError> {
        let mut frames = decode_bundle(bytes)?;
        if frames.len() != 1 {
            return Err(FrameError::Json(format!(
                "{} frames where one was expected",
                frames.len()
            )));
        }
        Ok(frames.remove(0))
    }
}

/// Every frame of a bundle, owned (for tests and tools; the daemon reads bundles in place with
/// [`BundleReader`]).
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<NodeFrame>, FrameError> {
    let reader = BundleReader::new(bytes)?;
    let node = reader.node().to_owned();
    reader
        .map(|frame| {
            let (seq, body) = frame?;
            let msg = match body {
                FrameBody::Forward {
                    to,
                    dialect,
                    mode,
                    how,
                    room,
                    original,
                } => NodeMessage::Forward {
                    to,
                    dialect,
                    mode,
                    how,
                    room: room.to_owned(),
                    original: std::str::from_utf8(original)
                        .map_err(|_| FrameError::Utf8)?
                        .to_owned(),
                },
                FrameBody::Message(msg) => msg,
            };
            Ok(NodeFrame {
                v: NODE_PROTOCOL_VERSION,
                node: node.clone(),
                seq,
                msg,
            })
        })
        .collect()
}

/// A forward's fields, borrowed: what a [`BundleWriter`] writes without copying the sender's
/// text into a [`NodeFrame`] first.
#[derive(Debug, Clone, Copy)]
pub struct ForwardRef<'a> {
    /// The receiving session.
    pub to: u64,
    /// The sender's dialect.
    pub dialect: DialectKind,
    /// The sender's join mode.
    pub mode: JoinMode,
    /// What `original` is for the receiver ([`prepare_forward`]).
    pub how: Forwarding,
    /// The room.
    pub room: &'a str,
    /// The text.
    pub original: &'a str,
}

fn dialect_byte(d: DialectKind) -> u8 {
    match d {
        DialectKind::Antmedia => b'a',
        DialectKind::Socketio => b's',
        DialectKind::Raw => b'r',
        DialectKind::Peerjs => b'p',
    }
}

fn dialect_of(b: u8) -> Result<DialectKind, FrameError> {
    Ok(match b {
        b'a' => DialectKind::Antmedia,
        b's' => DialectKind::Socketio,
        b'r' => DialectKind::Raw,
        b'p' => DialectKind::Peerjs,
        other => return Err(FrameError::UnknownDialect(other.escape_ascii().to_string())),
    })
}

fn mode_byte(m: JoinMode) -> u8 {
    match m {
        JoinMode::Both => b'b',
        JoinMode::Play => b'p',
        JoinMode::Conference => b'c',
    }
}

fn mode_of(b: u8) -> Result<JoinMode, FrameError> {
    Ok(match b {
        b'b' => JoinMode::Both,
        b'p' => JoinMode::Play,
        b'c' => JoinMode::Conference,
        other => return Err(FrameError::UnknownMode(other.escape_ascii().to_string())),
    })
}

/// The event a forward's `original` carries, decoded again by the receiver with the decoder
/// of its `dialect` (which the sender used on the same text): what the receiver needs to render
/// it (a description re-encoded for an Ant peer, or the event's kind for a verbatim forward).
/// `room` is the room of the sender's event (raw and socket.io frames do not name it).
pub fn rebuild_event(dialect: DialectKind, room: &str, original: &str) -> Result<Event, String> {
    use crate::dialects::{antmedia, peerjs, raw, socketio};
    fn event<W>(decoded: Result<Decoded<W>, crate::DecodeError>) -> Result<Event, String> {
        match decoded {
            Ok(Decoded::Event(event)) => Ok(event),
            Ok(_) => Err("the forwarded text decodes to no event".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
    match dialect {
        DialectKind::Antmedia => event(antmedia::AntMedia::decode(
            &mut antmedia::AntState::default(),
            original,
        )),
        DialectKind::Raw => event(raw::Raw::decode(
            &mut raw::RawState {
                room: room.to_owned(),
            },
            original,
        )),
        DialectKind::Peerjs => event(peerjs::Peerjs::decode(
            &mut peerjs::PeerjsState::default(),
            original,
        )),
        // The `msg` literal: read in place when it is the page's own signal, else unescaped.
        DialectKind::Socketio => match socketio::decode::signal_literal(room, original) {
            Some(event) => Ok(event),
            None => {
                let text: String = serde_json::from_str(original).map_err(|e| e.to_string())?;
                event(socketio::decode_msg_text(room, &text))
            }
        },
    }
}
