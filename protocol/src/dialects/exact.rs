//! The frames real clients send most, read in one hand-written pass over their exact shapes.
//!
//! Under relay load, nearly every frame is an offer, an answer or a candidate, written by one
//! of a few clients whose key order and spacing never vary: the Ant Media SDK, simple-peer, and
//! the SimpleP2P page's `JSON.stringify` of `RTCSessionDescription`/`RTCIceCandidate.toJSON()`.
//! Going through serde (even into typed structs, [`super::fast`]) matched every key by name,
//! copied each string through a scratch buffer, and, for socket.io, unescaped the whole `msg`
//! literal into its inner text before parsing that again: the inner text is JSON inside a JSON
//! string, so its SDP was unescaped twice and copied twice. Here each shape is compared as it
//! stands and each string unescaped once into its owned copy ([`scan::Reader`]), the `msg`
//! literal included ([`Escaping::Twice`]).
//!
//! Like the typed paths, this accepts only what it fully understands: the exact shape, and the
//! escapes browsers write (`\r`, `\n`, `\t`, `\"`, `\\`, `\/`). Anything else (`\u` escapes,
//! spacing, other fields or orders, malformed text) is `None` and takes the next path, so for a
//! frame accepted here every path gives the same event; the tests and the `fast_paths` fuzz
//! target hold them to it.

mod scan;

pub(crate) use scan::Escaping;
use scan::Reader;

use super::fast::description;
use crate::{Candidate, Event};

/// socket.io `msg` text (SimpleP2P): `{"sdp":{"type","sdp"}}` or `{"candidate":{"candidate",
/// "sdpMid","sdpMLineIndex","usernameFragment"}}`, as JSON (`Once`) or as the content of the
/// `msg` literal (`Twice`).
pub(crate) fn socketio(room: &str, text: &str, escaping: Escaping) -> Option<Event> {
    let mut r = Reader::new(text, escaping);
    if r.token(r#"{"sdp":{"type":"#).is_some() {
        let kind = r.plain()?;
        r.token(r#","sdp":"#)?;
        let sdp = r.string()?;
        r.token("}}")?;
        return finished(r, || description(room, kind, sdp));
    }
    r.token(r#"{"candidate":{"candidate":"#)?;
    let candidate = r.string()?;
    r.token(r#","sdpMid":"#)?;
    let sdp_mid = r.string_or_null()?;
    r.token(r#","sdpMLineIndex":"#)?;
    let sdp_mline_index = r.index_or_null()?;
    r.token(r#","usernameFragment":"#)?;
    let username_fragment = r.string_or_null()?;
    r.token("}}")?;
    finished(r, || {
        Some(Event::Candidate(Candidate {
            room: room.to_owned(),
            candidate,
            sdp_mid,
            sdp_mline_index,
            username_fragment,
        }))
    })
}

/// The socket.io `msg` literal (a JSON string, quotes included) of [`socketio`] text.
pub(crate) fn socketio_literal(room: &str, literal: &str) -> Option<Event> {
    let text = literal.strip_prefix('"')?.strip_suffix('"')?;
    socketio(room, text, Escaping::Twice)
}

/// Raw (simple-peer): `{"type","sdp"}` or `{"type":"candidate","candidate":{"candidate",
/// "sdpMLineIndex","sdpMid"}}`.
pub(crate) fn raw(room: &str, text: &str) -> Option<Event> {
    let mut r = Reader::new(text, Escaping::Once);
    r.token(r#"{"type":"#)?;
    let kind = r.plain()?;
    if kind != "candidate" {
        r.token(r#","sdp":"#)?;
        let sdp = r.string()?;
        r.token("}")?;
        return finished(r, || description(room, kind, sdp));
    }
    r.token(r#","candidate":{"candidate":"#)?;
    let candidate = r.string()?;
    r.token(r#","sdpMLineIndex":"#)?;
    let sdp_mline_index = r.index_or_null()?;
    r.token(r#","sdpMid":"#)?;
    let sdp_mid = r.string_or_null()?;
    r.token("}}")?;
    finished(r, || {
        Some(Event::Candidate(Candidate {
            room: room.to_owned(),
            candidate,
            sdp_mid,
            sdp_mline_index,
            username_fragment: None,
        }))
    })
}

/// Ant Media, as the SDK writes them: `{"command":"takeConfiguration","streamId","type","sdp"}`
/// and `{"command":"takeCandidate","streamId","label","id","candidate"}`. `valid_stream_id` is
/// the Ant decoder's own rule; an id it refuses takes the general path (which says why).
pub(crate) fn antmedia(text: &str, valid_stream_id: fn(&str) -> bool) -> Option<Event> {
    let mut r = Reader::new(text, Escaping::Once);
    r.token(r#"{"command":"#)?;
    let command = r.plain()?;
    r.token(r#","streamId":"#)?;
    let stream_id = r.plain()?;
    if stream_id.is_empty() || !valid_stream_id(stream_id) {
        return None;
    }
    match command {
        "takeConfiguration" => {
            r.token(r#","type":"#)?;
            let kind = r.plain()?;
            r.token(r#","sdp":"#)?;
            let sdp = r.string()?;
            r.token("}")?;
            finished(r, || description(stream_id, kind, sdp))
        }
        "takeCandidate" => {
            r.token(r#","label":"#)?;
            let label = r.index()?;
            r.token(r#","id":"#)?;
            let id = r.string()?;
            r.token(r#","candidate":"#)?;
            let candidate = r.string()?;
            r.token("}")?;
            finished(r, || {
                Some(Event::Candidate(Candidate {
                    room: stream_id.to_owned(),
                    candidate,
                    sdp_mid: Some(id),
                    sdp_mline_index: Some(label),
                    username_fragment: None,
                }))
            })
        }
        _ => None,
    }
}

/// The event, if nothing follows the shape.
fn finished(r: Reader<'_>, event: impl FnOnce() -> Option<Event>) -> Option<Event> {
    if r.at_end() { event() } else { None }
}

#[cfg(test)]
mod tests;
