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

mod bundle;
mod forward;
mod message;

pub use bundle::{
    BUNDLE_LIMIT, BundleParts, BundleReader, BundleWriter, FrameBody, FrameError, FrameRef, Part,
    PartsWriter, forward_body, forward_head,
};
pub use forward::{Forwarding, SignalKind, prepare_forward};
pub use message::{ForwardRef, NODE_PROTOCOL_VERSION, NodeFrame, NodeMessage, RemotePeer};

use crate::dialects::Dialect;
use crate::{Decoded, DialectKind, Event};

impl NodeFrame {
    /// The frame alone in a bundle, as published ([`bundle`]): the header (version, sending
    /// node), then the frame's length, number and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let mut writer = BundleWriter::new(&mut buf, &self.node, usize::MAX);
        match self.msg.as_forward() {
            Some(forward) => writer.push(self.seq, FrameRef::Forward(&forward)),
            None => writer.push(self.seq, FrameRef::Message(&self.msg)),
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
