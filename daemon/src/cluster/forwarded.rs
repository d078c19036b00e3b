//! A peer's signal from another node as the session that receives it gets it
//! ([`crate::gateway::Outbound::Remote`]): the text the sending node prepared
//! ([`switchboard_protocol::cluster::prepare_forward`]), a slice of the received bundle.

use std::ops::Range;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use switchboard_plugin_api::{Peer, SessionId};
use switchboard_protocol::cluster::{SignalKind, rebuild_event};
use switchboard_protocol::{DialectKind, Event, JoinMode};

use crate::envelope::{Envelope, Original};

/// A forward from another node, kept as received: one of the forwards of a bundle
/// ([`RemoteForwards`]).
#[derive(Debug)]
pub struct RemoteForward {
    /// The sender's dialect (the receiver's too).
    pub dialect: DialectKind,
    /// The sender's join mode.
    pub mode: JoinMode,
    /// The signal's kind.
    pub kind: SignalKind,
    /// Whether `text` is a socket.io `msg` literal, which the receiving session's transport
    /// frames; otherwise it is the frame the receiving peer gets.
    pub literal: bool,
    /// Where the room of the signal lies in the bundle (UTF-8, checked by the reader).
    room: Range<usize>,
    /// The text (a slice of the bundle).
    pub text: Utf8Bytes,
}

/// The forwards of one received bundle for this node's sessions, shared by their deliveries
/// ([`crate::gateway::Outbound::Remote`] names one by its place): one allocation per bundle,
/// freed once, rather than one per forward made by the subscription's thread and freed by
/// each session's.
#[derive(Debug, Default)]
pub struct RemoteForwards {
    bundle: Bytes,
    list: Vec<RemoteForward>,
}

impl RemoteForwards {
    /// The forwards of `bundle`, none yet (room for about `frames`).
    pub fn new(bundle: Bytes, frames: usize) -> Self {
        Self {
            bundle,
            list: Vec::with_capacity(frames),
        }
    }

    /// Adds a forward whose room and text are slices of the bundle; its place, `None` past
    /// `u32::MAX` forwards (more than a bundle holds) or when they are not in the bundle.
    pub fn push(
        &mut self,
        dialect: DialectKind,
        mode: JoinMode,
        kind: SignalKind,
        literal: bool,
        room: &str,
        text: Utf8Bytes,
    ) -> Option<u32> {
        let at = u32::try_from(self.list.len()).ok()?;
        let start = (room.as_ptr() as usize).checked_sub(self.bundle.as_ptr() as usize)?;
        let room = start..start + room.len();
        self.bundle.get(room.clone())?;
        self.list.push(RemoteForward {
            dialect,
            mode,
            kind,
            literal,
            room,
            text,
        });
        Some(at)
    }

    /// The forward at `at`.
    pub fn get(&self, at: u32) -> Option<&RemoteForward> {
        self.list.get(usize::try_from(at).ok()?)
    }

    /// The forward at `at` alone, with a copy of its room and text. As received, a delivery
    /// of one forward keeps its whole bundle alive (every other frame it carried), while a
    /// queue's byte bound weighs its text only: a receiver far behind would pin a bundle for
    /// each forward it holds.
    pub fn detached(&self, at: u32) -> Option<Self> {
        let fwd = self.get(at)?;
        let room = self.room(fwd);
        let mut own = Vec::with_capacity(room.len() + fwd.text.len());
        own.extend_from_slice(room.as_bytes());
        own.extend_from_slice(fwd.text.as_bytes());
        let bundle = Bytes::from(own);
        let text = Utf8Bytes::try_from(bundle.slice(room.len()..)).ok()?;
        let list = vec![RemoteForward {
            dialect: fwd.dialect,
            mode: fwd.mode,
            kind: fwd.kind,
            literal: fwd.literal,
            room: 0..room.len(),
            text,
        }];
        Some(Self { bundle, list })
    }

    /// The bytes of the bundle these forwards keep alive.
    #[cfg(test)]
    pub(crate) fn bundle_len(&self) -> usize {
        self.bundle.len()
    }

    /// The room of `fwd` (one of these forwards).
    fn room(&self, fwd: &RemoteForward) -> &str {
        self.bundle
            .get(fwd.room.clone())
            .and_then(|room| std::str::from_utf8(room).ok())
            .unwrap_or_default()
    }

    /// The forward at `at` as a relay of the sender's event, decoded from the text: for a
    /// session that renders relays its own way (every WebSocket session takes the text as it
    /// is). The text of an Ant or raw frame decodes as the event it renders.
    pub fn envelope(&self, at: u32) -> Result<Envelope, String> {
        let fwd = self.get(at).ok_or("no such forward")?;
        let event = rebuild_event(fwd.dialect, self.room(fwd), fwd.text.as_str())?;
        Ok(relay_envelope(
            fwd.dialect,
            fwd.mode,
            event,
            Some(Original::new(fwd.text.clone())),
        ))
    }
}

/// The envelope of a relay from a peer of another node: rendering needs the sender's dialect
/// only; the session id is the sender's own node's, which means nothing here.
pub fn relay_envelope(
    dialect: DialectKind,
    mode: JoinMode,
    event: Event,
    original: Option<Original>,
) -> Envelope {
    Envelope {
        from: Peer {
            session: SessionId(0),
            dialect,
            mode,
        },
        event,
        original,
        app: None,
    }
}
