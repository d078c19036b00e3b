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
        return description_rest(r, room, kind, "}}");
    }
    let candidate = r.field(r#"{"candidate":{"candidate":"#, Reader::string)?;
    let sdp_mid = r.field(r#","sdpMid":"#, Reader::string_or_null)?;
    let sdp_mline_index = r.field(r#","sdpMLineIndex":"#, Reader::index_or_null)?;
    let username_fragment = r.field(r#","usernameFragment":"#, Reader::string_or_null)?;
    r.close("}}")?;
    Some(candidate_event(
        room,
        candidate,
        sdp_mid,
        sdp_mline_index,
        username_fragment,
    ))
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
    let kind = r.field(r#"{"type":"#, Reader::plain)?;
    if kind != "candidate" {
        return description_rest(r, room, kind, "}");
    }
    let candidate = r.field(r#","candidate":{"candidate":"#, Reader::string)?;
    let sdp_mline_index = r.field(r#","sdpMLineIndex":"#, Reader::index_or_null)?;
    let sdp_mid = r.field(r#","sdpMid":"#, Reader::string_or_null)?;
    r.close("}}")?;
    Some(candidate_event(
        room,
        candidate,
        sdp_mid,
        sdp_mline_index,
        None,
    ))
}

/// Ant Media, as the SDK writes them: `{"command":"takeConfiguration","streamId","type","sdp"}`
/// and `{"command":"takeCandidate","streamId","label","id","candidate"}`. `valid_stream_id` is
/// the Ant decoder's own rule; an id it refuses takes the general path (which says why).
pub(crate) fn antmedia(text: &str, valid_stream_id: fn(&str) -> bool) -> Option<Event> {
    let mut r = Reader::new(text, Escaping::Once);
    let command = r.field(r#"{"command":"#, Reader::plain)?;
    let stream_id = r.field(r#","streamId":"#, Reader::plain)?;
    if stream_id.is_empty() || !valid_stream_id(stream_id) {
        return None;
    }
    match command {
        "takeConfiguration" => {
            let kind = r.field(r#","type":"#, Reader::plain)?;
            description_rest(r, stream_id, kind, "}")
        }
        "takeCandidate" => {
            let label = r.field(r#","label":"#, Reader::index)?;
            let id = r.field(r#","id":"#, Reader::string)?;
            let candidate = r.field(r#","candidate":"#, Reader::string)?;
            r.close("}")?;
            Some(candidate_event(
                stream_id,
                candidate,
                Some(id),
                Some(label),
                None,
            ))
        }
        _ => None,
    }
}

/// A description's SDP (after its type, in every dialect) and the `closing` brackets.
fn description_rest(mut r: Reader<'_>, room: &str, kind: &str, closing: &str) -> Option<Event> {
    let sdp = r.field(r#","sdp":"#, Reader::string)?;
    r.close(closing)?;
    description(room, kind, sdp)
}

fn candidate_event(
    room: &str,
    candidate: String,
    sdp_mid: Option<String>,
    sdp_mline_index: Option<u32>,
    username_fragment: Option<String>,
) -> Event {
    Event::Candidate(Candidate {
        room: room.to_owned(),
        candidate,
        sdp_mid,
        sdp_mline_index,
        username_fragment,
    })
}

#[cfg(test)]
mod tests;
