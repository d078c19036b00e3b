//! The wire format between gateway nodes of one cluster (`[cluster]` in the daemon's config).
//!
//! Nodes share rooms through Redis: each node subscribes to one channel of its own and publishes
//! to the channel of the node that owns a session. What travels there is one [`NodeFrame`] per
//! pub/sub message ([`NodeFrame::to_bytes`]): a small binary header (version, frame number,
//! sending node) and then either
//!
//! - a **forward** (`F`): a peer's signal for a receiver of the sender's own dialect, the
//!   sender's wire text as it came (no escaping, no copy of the event beside it) after the few
//!   routing fields (receiving session, sender's dialect and join mode, room). The receiver
//!   decodes the text again with the dialect's own decoder ([`rebuild_event`]) to render it;
//!   the sender's frame crosses Redis once;
//! - or a **message** (`J`): [`NodeMessage`] as JSON, for membership changes, notices and
//!   relays to a peer of another dialect (which carry the normalized event only).
//!
//! The format is versioned by [`NODE_PROTOCOL_VERSION`]; a node drops (and counts) frames of
//! another version rather than misreading them. Golden files: `tests/golden/cluster/`.
//!
//! Sans-IO like the rest of this crate: the daemon does the Redis side.

use serde::{Deserialize, Serialize};

use crate::dialects::Dialect;
use crate::{Decoded, DialectKind, Event, JoinMode};

/// Version of the frames below; bump on any incompatible change.
pub const NODE_PROTOCOL_VERSION: u32 = 3;

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
        /// The room the signal is for.
        room: String,
        /// The sender's wire text (the frame, or the socket.io `msg` string literal).
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
}

/// First byte of a frame's body: a forward (binary) or a [`NodeMessage`] as JSON.
const FORWARD: u8 = b'F';
const JSON: u8 = b'J';

impl NodeFrame {
    /// The frame as published: `[version u8][seq u64 BE, 0 = none][node len u8][node]`, then
    /// `F` and `[to u64 BE][dialect u8][mode u8][room len u16 BE][room][original]` for a
    /// forward, or `J` and the message's JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.msg {
            NodeMessage::Forward {
                to,
                dialect,
                mode,
                room,
                original,
            } => forward_bytes(
                &Header {
                    v: self.v,
                    node: &self.node,
                    seq: self.seq,
                },
                &ForwardRef {
                    to: *to,
                    dialect: *dialect,
                    mode: *mode,
                    room,
                    original,
                },
            ),
            msg => {
                let mut out = header(self.v, &self.node, self.seq, 128);
                out.push(JSON);
                // Every field is a string, a number or an `Event`, all of which serialize.
                let _ = serde_json::to_writer(&mut out, msg);
                out
            }
        }
    }

    /// Parses a published frame; `Err` says why it is not one (another version included).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        let v = u32::from(r.u8()?);
        if v != NODE_PROTOCOL_VERSION {
            return Err(format!(
                "node protocol version {v} (this node speaks {NODE_PROTOCOL_VERSION})"
            ));
        }
        let seq = Some(r.u64()?).filter(|&s| s != 0);
        let len = usize::from(r.u8()?);
        let node = r.text(len)?.to_owned();
        let msg = match r.u8()? {
            FORWARD => {
                let to = r.u64()?;
                let dialect = dialect_of(r.u8()?)?;
                let mode = mode_of(r.u8()?)?;
                let len = usize::from(r.u16()?);
                let room = r.text(len)?.to_owned();
                let original = r.text(r.0.len())?.to_owned();
                NodeMessage::Forward {
                    to,
                    dialect,
                    mode,
                    room,
                    original,
                }
            }
            JSON => serde_json::from_slice(r.0).map_err(|e| e.to_string())?,
            other => return Err(format!("unknown frame body `{}`", other.escape_ascii())),
        };
        Ok(Self { v, node, seq, msg })
    }
}

/// The header fields of a frame, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// [`NODE_PROTOCOL_VERSION`].
    pub v: u32,
    /// The sending node's instance id.
    pub node: &'a str,
    /// The sender's frame number.
    pub seq: Option<u64>,
}

/// A forward's fields, borrowed: what [`forward_bytes`] writes without copying the sender's
/// text into a [`NodeFrame`] first.
#[derive(Debug, Clone, Copy)]
pub struct ForwardRef<'a> {
    /// The receiving session.
    pub to: u64,
    /// The sender's dialect.
    pub dialect: DialectKind,
    /// The sender's join mode.
    pub mode: JoinMode,
    /// The room.
    pub room: &'a str,
    /// The sender's wire text.
    pub original: &'a str,
}

/// A forward as published ([`NodeFrame::to_bytes`] of a [`NodeMessage::Forward`]).
pub fn forward_bytes(head: &Header<'_>, fwd: &ForwardRef<'_>) -> Vec<u8> {
    let room = fwd.room.as_bytes();
    let room = room.get(..usize::from(u16::MAX)).unwrap_or(room);
    let mut out = header(
        head.v,
        head.node,
        head.seq,
        12 + room.len() + fwd.original.len(),
    );
    out.push(FORWARD);
    out.extend_from_slice(&fwd.to.to_be_bytes());
    out.push(dialect_byte(fwd.dialect));
    out.push(mode_byte(fwd.mode));
    out.extend_from_slice(&u16::try_from(room.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(room);
    out.extend_from_slice(fwd.original.as_bytes());
    out
}

/// A frame's header, with room for `body` more bytes.
fn header(v: u32, node: &str, seq: Option<u64>, body: usize) -> Vec<u8> {
    let node = node.as_bytes();
    let node = node.get(..usize::from(u8::MAX)).unwrap_or(node);
    let mut out = Vec::with_capacity(11 + node.len() + body);
    out.push(u8::try_from(v).unwrap_or(u8::MAX));
    out.extend_from_slice(&seq.unwrap_or(0).to_be_bytes());
    out.push(u8::try_from(node.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(node);
    out
}

/// Reads a frame's fields in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated frame".to_owned());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn text(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())
    }
}

fn dialect_byte(d: DialectKind) -> u8 {
    match d {
        DialectKind::Antmedia => b'a',
        DialectKind::Socketio => b's',
        DialectKind::Raw => b'r',
        DialectKind::Peerjs => b'p',
    }
}

fn dialect_of(b: u8) -> Result<DialectKind, String> {
    Ok(match b {
        b'a' => DialectKind::Antmedia,
        b's' => DialectKind::Socketio,
        b'r' => DialectKind::Raw,
        b'p' => DialectKind::Peerjs,
        other => return Err(format!("unknown dialect `{}`", other.escape_ascii())),
    })
}

fn mode_byte(m: JoinMode) -> u8 {
    match m {
        JoinMode::Both => b'b',
        JoinMode::Play => b'p',
        JoinMode::Conference => b'c',
    }
}

fn mode_of(b: u8) -> Result<JoinMode, String> {
    Ok(match b {
        b'b' => JoinMode::Both,
        b'p' => JoinMode::Play,
        b'c' => JoinMode::Conference,
        other => return Err(format!("unknown join mode `{}`", other.escape_ascii())),
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
