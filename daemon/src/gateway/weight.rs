//! What a delivery weighs in its receiver's queue: the bytes of the text it pins there, so that
//! `[limits] session_queue_bytes` bounds what a receiver that stopped reading holds, whatever
//! the size of the messages (a count alone let one address pin `session_queue_len` times the
//! largest frame per receiver; BENCHMARKS.md, "Queue bytes"). A shared frame (a fan-out's
//! envelope) weighs its size for each receiver: that is what each queue keeps alive.
//!
//! The weight reads lengths only (no rendering, no unescaping), so taking it at the enqueue
//! and again at the dequeue gives one number and costs next to nothing.

use serde_json::Value;
use switchboard_protocol::Event;

use super::Outbound;
use crate::envelope::Envelope;

/// What every delivery weighs at least: its queue slot and the allocation behind it.
const BASE: usize = 64;

impl Outbound {
    /// The bytes this delivery pins in its receiver's queue.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Outbound::Relay(envelope) => envelope_weight(envelope),
            Outbound::Remote(..) => BASE + self.remote().map_or(0, |f| f.text.len()),
            Outbound::Event(event) => event_weight(event),
            Outbound::Kick(reason) => BASE + reason.len(),
        }
    }
}

/// A relayed envelope that carries the sender's frame (what a receiver of its dialect gets)
/// weighs it twice: the event read from it holds at most as much of its text again (the SDP,
/// the candidate, an opaque frame's copy). Only its length is read, so the relay path does
/// not walk the event (that cost 70 instructions per message, two weighings of each
/// delivery). Without a frame it weighs its event.
pub(crate) fn envelope_weight(envelope: &Envelope) -> usize {
    match &envelope.original {
        Some(original) => BASE + 2 * original.len(),
        None => event_weight(&envelope.event),
    }
}

/// The text an event carries: its payload and room. Gateway notices without a payload weigh
/// [`BASE`] and their room (the count bound keeps many of them in check).
fn event_weight(event: &Event) -> usize {
    let room = event.room().map_or(0, str::len);
    let payload = match event {
        Event::Description(d) => d.sdp.held_len(),
        Event::Candidate(c) => c.candidate.held_len(),
        Event::Opaque(o) => o.payload.len(),
        Event::PeerMessage(m) => value_weight(&m.definition) + value_weight(&m.data),
        Event::Error(e) => e.message.len(),
        _ => 0,
    };
    BASE + room + payload
}

/// The text of a JSON value's strings and keys, and a few bytes for every other part.
fn value_weight(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| value_weight(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| k.len() + 4 + value_weight(v))
                .sum::<usize>()
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_protocol::{DialectKind, ErrorCode};

    use super::*;

    #[test]
    fn a_relay_weighs_its_frame_and_a_notice_its_text() {
        let frame = "x".repeat(100_000);
        let envelope = Envelope {
            from: crate::gateway::peer(switchboard_plugin_api::SessionId(1), DialectKind::Raw),
            event: Event::error(ErrorCode::Refused, None, String::new()),
            original: Some(frame.into()),
            app: None,
        };
        let relay = Outbound::Relay(Arc::new(envelope));
        assert_eq!(
            relay.weight(),
            BASE + 200_000,
            "the frame and the event read from it"
        );
        let notice = Outbound::event(Event::error(ErrorCode::Refused, None, "y".repeat(500)));
        assert_eq!(notice.weight(), BASE + 500);
    }
}
