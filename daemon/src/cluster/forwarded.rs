//! A peer's signal from another node as the session that receives it gets it
//! ([`crate::gateway::Outbound::Remote`]): the text the sending node prepared
//! ([`switchboard_protocol::cluster::prepare_forward`]), a slice of the received bundle.

use axum::extract::ws::Utf8Bytes;
use switchboard_plugin_api::{Peer, SessionId};
use switchboard_protocol::cluster::{SignalKind, rebuild_event};
use switchboard_protocol::{DialectKind, Event, JoinMode};

use crate::envelope::{Envelope, Original};

/// A forward from another node, kept as received.
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
    /// The room of the signal (a slice of the bundle).
    pub room: Utf8Bytes,
    /// The text (a slice of the bundle).
    pub text: Utf8Bytes,
}

impl RemoteForward {
    /// The forward as a relay of the sender's event, decoded from the text: for a session
    /// that renders relays its own way (every WebSocket session takes the text as it is).
    /// The text of an Ant or raw frame decodes as the event it renders.
    pub fn envelope(&self) -> Result<Envelope, String> {
        let event = self.event()?;
        Ok(relay_envelope(
            self.dialect,
            self.mode,
            event,
            Some(Original::new(self.text.clone())),
        ))
    }

    fn event(&self) -> Result<Event, String> {
        rebuild_event(self.dialect, self.room.as_str(), self.text.as_str())
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
