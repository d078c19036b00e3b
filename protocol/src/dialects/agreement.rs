//! Each dialect's one-pass read of its clients' signals against its general decoder: wherever
//! the one-pass read accepts a text, both give the same event. For the tests and the `fast_paths`
//! fuzz target (through `testing::fast_paths_agree`).

use super::scan::Escaping;
use super::{Decoded, antmedia, raw, socketio};
use crate::{DecodeError, Event};

const ROOM: &str = "room1";

/// Runs every dialect's one-pass read on `text` and, where one accepts it, that dialect's
/// general decoder too; `Err` names a dialect on which they disagree. Also reads `text` as a
/// `msg` literal (the socket.io one-pass read of literals), and as the literal its sender's
/// `JSON.stringify` would make of it, both ways socket.io event data is read.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let checks = [
        (
            "raw",
            raw::signal(ROOM, text),
            event(raw::decode_general(ROOM, text)),
        ),
        (
            "socketio",
            socketio::decode::signal(ROOM, text, Escaping::Once),
            event(socketio::decode::decode_msg_general(ROOM, text)),
        ),
        (
            "antmedia",
            antmedia::decode::signal(text),
            event(antmedia::decode::decode_general(text, "LiveApp")),
        ),
    ];
    for (dialect, in_place, general) in checks {
        if in_place.is_some() && in_place != general {
            return Err(format!(
                "{dialect}: one pass {in_place:?} != general {general:?}"
            ));
        }
    }
    literal_agreement(text)?;
    msg_data_agreement(text)
}

/// Where the `msg` literal read accepts `literal`, it is one JSON string whose text the general
/// socket.io decoder reads as the same event.
fn literal_agreement(literal: &str) -> Result<(), String> {
    let Some(in_place) = socketio::decode::signal_literal(ROOM, literal) else {
        return Ok(());
    };
    let text = serde_json::from_str::<String>(literal)
        .map_err(|e| format!("literal read accepted a bad literal {literal:?}: {e}"))?;
    match socketio::decode::decode_msg_general(ROOM, &text) {
        Ok(Decoded::Event(general)) if general == in_place => Ok(()),
        general => Err(format!(
            "literal: one pass {in_place:?} != general {general:?}"
        )),
    }
}

/// `text` sent as a `msg` string: the usual data `["msg",<literal>]` and the same data spaced
/// (which only the general event reader takes) decode as the text does, with the literal kept.
fn msg_data_agreement(text: &str) -> Result<(), String> {
    let literal = serde_json::to_string(text).map_err(|e| e.to_string())?;
    let expected = socketio::decode_msg_text(ROOM, text);
    for data in [
        format!(r#"["msg",{literal}]"#),
        format!(r#"[ "msg", {literal} ]"#),
    ] {
        match socketio::read_event_data(ROOM, &data) {
            Ok(socketio::EventData::Msg(decoded, kept))
                if same(&decoded, &expected) && kept == literal => {}
            other => return Err(format!("{data}: {other:?}, expected {expected:?}")),
        }
    }
    Ok(())
}

fn event<W>(decoded: Result<Decoded<W>, DecodeError>) -> Option<Event> {
    match decoded {
        Ok(Decoded::Event(e)) => Some(e),
        _ => None,
    }
}

/// The same outcome: equal events, or both not an event.
fn same<W: PartialEq>(
    a: &Result<Decoded<W>, DecodeError>,
    b: &Result<Decoded<W>, DecodeError>,
) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
