//! How the receiving node renders a forward (node protocol 5): the sending node has the event
//! decoded already, so it decides, once, what the receiver's peer gets, whenever that does not
//! depend on the receiving session's state. The receiver then writes the text it got without
//! decoding it again; only the rare forward whose rendering needs the receiving session's
//! state is decoded there ([`Forwarding::Decode`]).
//!
//! Decoding every forwarded frame again (a 6 KB SDP scanned for its escapes) was about a tenth
//! of each node's CPU in a cross-node Ant run (BENCHMARKS.md, *A cheap hop*).

use std::borrow::Cow;

use crate::dialects::{Dialect, TextFrames, antmedia, peerjs, raw, socketio};
use crate::{DialectKind, Event};

/// The kind of a peer signal a forward carries (what the receiver's message counters name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// An offer or an answer.
    Description,
    /// An ICE candidate.
    Candidate,
    /// An Ant peer message.
    PeerMessage,
    /// Anything the gateway relays without understanding it.
    Opaque,
}

impl SignalKind {
    /// The kind of `event`, when it is a peer signal.
    pub fn of(event: &Event) -> Option<Self> {
        Some(match event {
            Event::Description(_) => Self::Description,
            Event::Candidate(_) => Self::Candidate,
            Event::PeerMessage(_) => Self::PeerMessage,
            Event::Opaque(_) => Self::Opaque,
            _ => return None,
        })
    }

    /// The name [`Event::kind`] gives an event of this kind.
    pub fn name(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Candidate => "candidate",
            Self::PeerMessage => "peer_message",
            Self::Opaque => "opaque",
        }
    }

    pub(super) fn byte(self) -> u8 {
        match self {
            Self::Description => b'd',
            Self::Candidate => b'c',
            Self::PeerMessage => b'p',
            Self::Opaque => b'o',
        }
    }

    pub(super) fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'd' => Self::Description,
            b'c' => Self::Candidate,
            b'p' => Self::PeerMessage,
            b'o' => Self::Opaque,
            _ => return None,
        })
    }
}

/// What the text of a forward is, for its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// The frame the receiving peer gets, as is (rendered by the sender: Ant, raw and the
    /// PeerJS signals, whose rendering for a peer of their own dialect does not depend on the
    /// receiving session).
    Frame(SignalKind),
    /// A socket.io `msg` literal forwarded verbatim: the receiving session's transport frames
    /// it (once its namespace is connected).
    Literal(SignalKind),
    /// The sender's text, which the receiver decodes again ([`super::rebuild_event`]) and
    /// renders for its session.
    Decode,
}

impl Forwarding {
    pub(super) fn byte(self) -> u8 {
        match self {
            Self::Frame(_) => b'f',
            Self::Literal(_) => b'l',
            Self::Decode => b'd',
        }
    }

    pub(super) fn kind_byte(self) -> u8 {
        match self {
            Self::Frame(kind) | Self::Literal(kind) => kind.byte(),
            Self::Decode => b'-',
        }
    }

    pub(super) fn from_bytes(how: u8, kind: u8) -> Option<Self> {
        match how {
            b'f' => SignalKind::from_byte(kind).map(Self::Frame),
            b'l' => SignalKind::from_byte(kind).map(Self::Literal),
            b'd' => Some(Self::Decode),
            _ => None,
        }
    }
}

/// What the sending node forwards for a peer of `dialect` (the sender's own) of its signal
/// `event` decoded from `original`: how the receiver uses it, and the text (the original
/// itself where the receiver's peer gets it unchanged, so nothing is copied).
pub fn prepare_forward<'a>(
    dialect: DialectKind,
    original: &'a str,
    event: &Event,
) -> (Forwarding, Cow<'a, str>) {
    let decode = (Forwarding::Decode, Cow::Borrowed(original));
    let Some(kind) = SignalKind::of(event) else {
        return decode;
    };
    let frame = |text| (Forwarding::Frame(kind), text);
    match dialect {
        // `AntMedia::forward` and `Raw::forward` read nothing of the receiving session.
        DialectKind::Antmedia => {
            let state = antmedia::AntState::default();
            if antmedia::AntMedia::forwards_frame(&state, event) {
                frame(Cow::Borrowed(original))
            } else {
                antmedia::AntMedia::encode(&state, event).map_or(decode, |t| frame(Cow::Owned(t)))
            }
        }
        DialectKind::Raw => {
            let state = raw::RawState::default();
            if raw::Raw::forwards_frame(&state, event) {
                frame(Cow::Borrowed(original))
            } else {
                raw::Raw::encode(&state, event).map_or(decode, |t| frame(Cow::Owned(t)))
            }
        }
        // A PeerJS signal goes on verbatim; anything else is rendered for the receiving id.
        DialectKind::Peerjs => {
            if peerjs::Peerjs::forwards_frame(&peerjs::PeerjsState::default(), event) {
                frame(Cow::Borrowed(original))
            } else {
                decode
            }
        }
        DialectKind::Socketio => {
            if socketio::forwards_verbatim(event) {
                (Forwarding::Literal(kind), Cow::Borrowed(original))
            } else {
                decode
            }
        }
    }
}
