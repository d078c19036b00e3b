//! Client → gateway: one Ant Media command frame to an [`Event`].

use serde_json::{Map, Value};

use super::conference;
use super::fields::{opt_token, stream_id};
use crate::dialects::Decoded;
use crate::dialects::common::{
    ECHO_CHARS, opt_mid, opt_mline_index, opt_str, req_str, sdp_kind, truncate, valid_id,
};
use crate::dialects::json::parse_object;
use crate::dialects::scan::{Escaping, Reader, candidate_event, description_rest};
use crate::{
    Candidate, DecodeError, Description, Event, Join, JoinMode, JsonText, Leave, LeaveReason,
    PeerMessage,
};

/// The P2P commands that name a stream.
const STREAM_COMMANDS: &[&str] = &[
    "join",
    "leave",
    "stop",
    "takeConfiguration",
    "takeCandidate",
    "peerMessageCommand",
];

/// Decodes one text frame from a peer connected to application `app`: a relayed signal of the
/// SDK's own shape in one pass ([`signal`]), anything else through [`decode_general`].
pub(super) fn decode(text: &str, app: &str) -> Result<Decoded<String>, DecodeError> {
    if let Some(event) = signal(text) {
        return Ok(Decoded::Event(event));
    }
    decode_general(text, app)
}

/// `takeConfiguration` `{"command","streamId","type","sdp"}` and `takeCandidate` `{"command",
/// "streamId","label","id","candidate"}` exactly as the SDK writes them, read in one pass
/// ([`Reader`]): the command, stream id and type read, the SDP or candidate line kept as the
/// sender's literal. Any other shape, spacing or escape, or an invalid stream id, is `None`,
/// for [`decode_general`], which says what is wrong and gives the same event for every frame
/// this accepts (the tests and the `fast_paths` fuzz target hold them to it).
pub(crate) fn signal(text: &str) -> Option<Event> {
    let mut r = Reader::new(text, Escaping::Once);
    let command = r.field(r#"{"command":"#, Reader::plain)?;
    let stream_id = r.field(r#","streamId":"#, Reader::plain)?;
    if stream_id.is_empty() || !valid_id(stream_id) {
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
            let candidate = r.field(r#","candidate":"#, Reader::literal)?;
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

/// [`decode`] without the one-pass read: every frame through a `serde_json::Value`.
pub(crate) fn decode_general(text: &str, app: &str) -> Result<Decoded<String>, DecodeError> {
    let obj = parse_object(text)?;
    let Some(Value::String(command)) = obj.get("command") else {
        return Err(DecodeError::MissingCommand);
    };
    let command = command.as_str();
    match command {
        "ping" => return Ok(Decoded::Reply(r#"{"command":"pong"}"#.to_owned())),
        "getIceServerConfig" => return Ok(Decoded::Event(Event::IceServersRequest)),
        c if conference::COMMANDS.contains(&c) => {
            return conference::decode(c, &obj, app).map(Decoded::Event);
        }
        c if conference::MEDIA_COMMANDS.contains(&c) => {
            return Err(DecodeError::Unsupported {
                command: c.to_owned(),
                reason: conference::NO_MEDIA,
            });
        }
        c if conference::OTHER_UNSUPPORTED.contains(&c) => {
            return Err(DecodeError::Unsupported {
                command: c.to_owned(),
                reason: conference::NOT_IMPLEMENTED,
            });
        }
        c if !STREAM_COMMANDS.contains(&c) => {
            return Err(DecodeError::UnknownCommand(truncate(c, ECHO_CHARS)));
        }
        _ => {}
    }
    let room = stream_id(&obj)?.to_owned();
    let event = match command {
        "join" => Event::Join(Join {
            room,
            mode: join_mode(&obj)?,
            token: opt_token(&obj)?,
        }),
        "leave" => Event::Leave(Leave {
            room,
            reason: LeaveReason::Leave,
        }),
        "stop" => Event::Leave(Leave {
            room,
            reason: LeaveReason::Stop,
        }),
        "takeConfiguration" => {
            let kind = sdp_kind(&obj, "type")?;
            let sdp = JsonText::from(req_str(&obj, "sdp")?);
            Event::Description(Description { room, kind, sdp })
        }
        "takeCandidate" => Event::Candidate(Candidate {
            candidate: JsonText::from(req_str(&obj, "candidate")?),
            sdp_mid: opt_mid(&obj, "id")?,
            sdp_mline_index: opt_mline_index(&obj, "label")?,
            username_fragment: None,
            room,
        }),
        "peerMessageCommand" => Event::PeerMessage(PeerMessage {
            definition: obj.get("definition").cloned().unwrap_or(Value::Null),
            data: obj.get("data").cloned().unwrap_or(Value::Null),
            room,
        }),
        // STREAM_COMMANDS above lists exactly the arms of this match.
        other => return Err(DecodeError::UnknownCommand(truncate(other, ECHO_CHARS))),
    };
    Ok(Decoded::Event(event))
}

/// `mode`: `"both"` (the default) or `"play"` (the SDK's `isPlayMode`).
fn join_mode(obj: &Map<String, Value>) -> Result<JoinMode, DecodeError> {
    match opt_str(obj, "mode")? {
        None | Some("both") => Ok(JoinMode::Both),
        Some("play") => Ok(JoinMode::Play),
        Some(other) => Err(DecodeError::InvalidValue {
            field: "mode",
            value: truncate(other, ECHO_CHARS),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> Event {
        match decode(text, "LiveApp") {
            Ok(Decoded::Event(e)) => e,
            other => panic!("expected an event from {text}, got {other:?}"),
        }
    }

    #[test]
    fn media_and_unimplemented_commands_are_refused_before_the_stream_check() {
        for c in conference::MEDIA_COMMANDS
            .iter()
            .chain(conference::OTHER_UNSUPPORTED)
        {
            let r = decode(&format!(r#"{{"command":"{c}"}}"#), "");
            assert!(
                matches!(r, Err(DecodeError::Unsupported { .. })),
                "{c}: {r:?}"
            );
        }
    }

    #[test]
    fn conference_commands_carry_the_app() {
        let e = event(r#"{"command":"getRoomInfo","room":"r1"}"#);
        let Event::Conference(c) = e else {
            panic!("not a conference request: {e:?}")
        };
        assert_eq!(c.app, "LiveApp");
        assert_eq!(c.target(), "r1");
    }

    #[test]
    fn unknown_command_wins_over_missing_stream() {
        assert!(matches!(
            decode(r#"{"command":"nope"}"#, ""),
            Err(DecodeError::UnknownCommand(_))
        ));
    }

    #[test]
    fn every_stream_command_needs_a_stream_id() {
        for c in STREAM_COMMANDS {
            let r = decode(&format!(r#"{{"command":"{c}","streamId":""}}"#), "");
            assert!(
                matches!(r, Err(DecodeError::MissingField("streamId"))),
                "{c}: {r:?}"
            );
        }
    }

    #[test]
    fn long_invalid_stream_names_are_truncated_by_character() {
        let id = "é".repeat(500);
        let r = decode(&format!(r#"{{"command":"join","streamId":"{id}"}}"#), "");
        assert!(matches!(r, Err(DecodeError::InvalidStreamName(s)) if s.chars().count() == 64));
    }

    #[test]
    fn ids_longer_than_the_one_cap_are_refused_in_every_command() {
        let at_cap = "a".repeat(crate::MAX_ID_BYTES);
        let over = "a".repeat(crate::MAX_ID_BYTES + 1);
        let frames = |id: &str| {
            [
                format!(r#"{{"command":"join","streamId":"{id}"}}"#),
                format!(r#"{{"command":"joinRoom","room":"{id}"}}"#),
                format!(r#"{{"command":"play","streamId":"{id}","room":""}}"#),
                format!(r#"{{"command":"publish","streamId":"s","mainTrack":"{id}"}}"#),
                format!(
                    r#"{{"command":"takeCandidate","streamId":"{id}","label":0,"id":"0","candidate":""}}"#
                ),
            ]
        };
        for frame in frames(&at_cap) {
            assert!(decode(&frame, "LiveApp").is_ok(), "{frame}");
        }
        for frame in frames(&over) {
            let r = decode(&frame, "LiveApp");
            assert!(
                matches!(r, Err(DecodeError::InvalidStreamName(_))),
                "{frame}: {r:?}"
            );
        }
    }

    #[test]
    fn join_accepts_extra_fields_and_null_mode() {
        let e =
            event(r#"{"command":"join","streamId":"r","multiPeer":true,"token":"t","mode":null}"#);
        assert_eq!(
            e,
            Event::Join(Join {
                room: "r".into(),
                mode: JoinMode::Both,
                token: Some("t".into()),
            })
        );
    }

    #[test]
    fn candidate_label_may_be_a_digit_string_and_id_a_number() {
        let e = event(
            r#"{"command":"takeCandidate","streamId":"r","label":"1","id":1,"candidate":""}"#,
        );
        let Event::Candidate(c) = e else {
            panic!("not a candidate")
        };
        assert_eq!(
            (c.sdp_mline_index, c.sdp_mid.as_deref()),
            (Some(1), Some("1"))
        );
    }
}
