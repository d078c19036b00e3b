//! socket.io dialect of the SimpleP2P tutorial: the `msg` event whose single argument is a JSON
//! *string*, `{"sdp":{type,sdp}}` or `{"candidate":{candidate,sdpMid,sdpMLineIndex}}`
//! (`docs/dialect-spec.md`).
//!
//! Between socket.io peers the `msg` string is forwarded byte-identical: the page calls
//! `JSON.parse(msg)`, so it must stay a string. Gateway notices use a separate event,
//! `switchboard`, whose argument is an object; the classic page has no handler for it.
//!
//! - [`SioMessage`] and the event names (`types.rs`): what both directions speak.
//! - [`decode`](mod@decode): a `msg` read one way, whoever delivered it.
//! - Encoding is below: signals as `msg` strings, notices as `switchboard` objects.

use serde::Serialize;
use serde_json::{Value, json};

use super::common::{CandidateInit, description_init_json, ice_server_list, to_text};
use super::{Decoded, Dialect, DialectKind};
use crate::{DecodeError, Event};

pub mod decode;
mod types;

pub use decode::{
    Decoding, EventData, EventDataError, decode_msg_text, event_and_argument, not_a_string,
    read_event_data,
};
pub use types::{MSG_EVENT, NOTICE_EVENT, SioMessage};

/// socket.io `msg` relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketIo;

/// Per-connection socket.io state: the room from the handshake or the listener.
#[derive(Debug, Default)]
pub struct SioState {
    /// The room this socket is in.
    pub room: String,
}

impl Dialect for SocketIo {
    type Wire = SioMessage;
    type Input = SioMessage;
    type State = SioState;
    const KIND: DialectKind = DialectKind::Socketio;

    fn decode(state: &mut SioState, wire: &SioMessage) -> Result<Decoded<SioMessage>, DecodeError> {
        decode::decode(&state.room, wire)
    }

    fn encode(_: &SioState, event: &Event) -> Option<SioMessage> {
        encode(event)
    }

    /// Signals between socket.io peers keep the sender's exact `msg` string.
    fn forward(_: &SioState, original: &str, event: &Event) -> Option<SioMessage> {
        if forwards_verbatim(event) {
            Some(SioMessage::msg(original))
        } else {
            encode(event)
        }
    }
}

/// Whether a socket.io peer receives `event` from another socket.io peer as the sender's own
/// `msg` string (peer signals and anything the gateway does not understand), rather than
/// re-encoded.
pub fn forwards_verbatim(event: &Event) -> bool {
    matches!(
        event,
        Event::Description(_) | Event::Candidate(_) | Event::Opaque(_)
    )
}

// === encode ===

#[derive(Serialize)]
struct CandidateSignal<'a> {
    candidate: CandidateInit<'a>,
}

pub(crate) fn encode(event: &Event) -> Option<SioMessage> {
    let notice = |data: Value| {
        Some(SioMessage {
            event: NOTICE_EVENT.to_owned(),
            data,
        })
    };
    match event {
        Event::Description(d) => Some(SioMessage::msg(description_init_json(r#"{"sdp":"#, d, "}"))),
        Event::Candidate(c) => to_text(&CandidateSignal {
            candidate: c.into(),
        })
        .map(SioMessage::msg),
        Event::Opaque(o) => Some(SioMessage::msg(o.payload.as_str())),
        Event::Joined(n) => notice(json!({ "type": "joined", "room": n.room })),
        Event::Start(n) => notice(json!({ "type": "start", "room": n.room })),
        Event::PeerJoined(n) => notice(json!({ "type": "peer-joined", "room": n.room })),
        Event::PeerLeft(n) => notice(json!({ "type": "peer-left", "room": n.room })),
        Event::PeerMessage(m) => notice(json!({
            "type": "peer-message",
            "room": m.room,
            "definition": m.definition,
            "data": m.data,
        })),
        Event::IceServers(ice) => {
            notice(json!({ "type": "ice-servers", "iceServers": ice_server_list(ice) }))
        }
        Event::ServerWillStop => notice(json!({ "type": "server-will-stop" })),
        Event::Error(e) => {
            let mut data =
                json!({ "type": "error", "code": e.code.as_str(), "message": e.message });
            if let (Some(room), Value::Object(map)) = (&e.room, &mut data) {
                map.insert("room".to_owned(), Value::String(room.clone()));
            }
            notice(data)
        }
        // A socket.io peer leaves by disconnecting; there is nothing to acknowledge.
        // Conference requests come only from Ant peers, and only they are answered.
        Event::Left(_)
        | Event::Join(_)
        | Event::Leave(_)
        | Event::IceServersRequest
        | Event::Conference(_)
        | Event::ConferenceReply(_) => None,
    }
}
