//! Field access and W3C shapes shared by the codecs. Every accessor turns a peer's mistake into a
//! typed [`DecodeError`]; nothing here can panic on peer input.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{Candidate, DecodeError, Description, IceServers, JsonText, SdpKind};

/// How many characters of a peer-supplied value an error message may echo.
pub(crate) const ECHO_CHARS: usize = 64;

/// The first `max` characters of `s` (never splits a character).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s.get(..end).unwrap_or(s).to_owned(),
        None => s.to_owned(),
    }
}

/// Whether `id` is a valid stream id or room id in every dialect: only `[A-Za-z0-9._-]` (Ant's
/// `StreamIdValidator`), at most [`crate::MAX_ID_BYTES`] bytes (the one cap every dialect
/// applies to ids).
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() <= crate::MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An optional string field: absent or `null` is `None`, anything but a string is an error.
pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DecodeError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A required string field (an empty string is allowed).
pub(crate) fn req_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, DecodeError> {
    opt_str(obj, field)?.ok_or(DecodeError::MissingField(field))
}

/// An m-line index: a non-negative integer number, or a string of decimal digits (some
/// hand-written clients quote it). Absent or `null` is `None`.
pub(crate) fn opt_mline_index(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u32>, DecodeError> {
    let wrong = DecodeError::WrongType {
        field,
        expected: "a non-negative integer",
    };
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(wrong),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u32>().map(Some).map_err(|_| wrong)
        }
        Some(_) => Err(wrong),
    }
}

/// A media id (`sdpMid`, Ant's `id`): a string, or a number, which is stringified.
pub(crate) fn opt_mid(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, DecodeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(DecodeError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// The SDP type in `field`: required, a string, and one of the `RTCSdpType` values.
pub(crate) fn sdp_kind(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<SdpKind, DecodeError> {
    let text = req_str(obj, field)?;
    SdpKind::parse(text).ok_or_else(|| DecodeError::InvalidValue {
        field,
        value: truncate(text, ECHO_CHARS),
    })
}

/// A W3C `RTCSessionDescriptionInit` `{type, sdp}`. A rollback may come without `sdp`.
pub(crate) fn description_init(
    room: &str,
    obj: &Map<String, Value>,
) -> Result<Description, DecodeError> {
    let kind = sdp_kind(obj, "type")?;
    let sdp = match (opt_str(obj, "sdp")?, kind) {
        (Some(sdp), _) => JsonText::from(sdp),
        (None, SdpKind::Rollback) => JsonText::default(),
        (None, _) => return Err(DecodeError::MissingField("sdp")),
    };
    Ok(Description {
        room: room.to_owned(),
        kind,
        sdp,
    })
}

/// A W3C `RTCIceCandidateInit` `{candidate, sdpMid, sdpMLineIndex, usernameFragment}`. A `null`
/// or absent `candidate` is the end-of-candidates mark some libraries send: `Ok(None)`, which
/// the caller relays as an opaque frame.
pub(crate) fn candidate_init(
    room: &str,
    obj: &Map<String, Value>,
) -> Result<Option<Candidate>, DecodeError> {
    let Some(candidate) = opt_str(obj, "candidate")? else {
        return Ok(None);
    };
    Ok(Some(Candidate {
        room: room.to_owned(),
        candidate: JsonText::from(candidate),
        sdp_mid: opt_mid(obj, "sdpMid")?,
        sdp_mline_index: opt_mline_index(obj, "sdpMLineIndex")?,
        username_fragment: opt_str(obj, "usernameFragment")?.map(str::to_owned),
    }))
}

/// `RTCIceCandidateInit` in `RTCIceCandidate.toJSON()` order; fields we do not know are left
/// out rather than sent as `null`.
#[derive(Serialize)]
pub(crate) struct CandidateInit<'a> {
    pub candidate: &'a JsonText,
    #[serde(rename = "sdpMid", skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<&'a str>,
    #[serde(rename = "sdpMLineIndex", skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u32>,
    #[serde(rename = "usernameFragment", skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<&'a str>,
}

impl<'a> From<&'a Candidate> for CandidateInit<'a> {
    fn from(c: &'a Candidate) -> Self {
        CandidateInit {
            candidate: &c.candidate,
            sdp_mid: c.sdp_mid.as_deref(),
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment.as_deref(),
        }
    }
}

/// An `RTCConfiguration.iceServers` list: empty when no server is configured; username and
/// credential only when one of them is set (TURN).
pub(crate) fn ice_server_list(ice: &IceServers) -> Value {
    if ice.uri.is_empty() {
        return json!([]);
    }
    let urls = if ice.more_uris.is_empty() {
        json!(ice.uri)
    } else {
        let all: Vec<&str> = std::iter::once(ice.uri.as_str())
            .chain(ice.more_uris.iter().map(String::as_str))
            .collect();
        json!(all)
    };
    if ice.username.is_empty() && ice.credential.is_empty() {
        json!([{ "urls": urls }])
    } else {
        json!([{ "urls": urls, "username": ice.username, "credential": ice.credential }])
    }
}

/// Compact JSON text of a value built by this crate. Serializing our own structs cannot fail
/// (string keys, no non-finite floats); should it ever, the event is not rendered.
pub(crate) fn to_text<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

/// `{"type":T,"sdp":S}`: an `RTCSessionDescriptionInit` as browsers serialize it, written by
/// hand so that a kept SDP literal is copied in as it came ([`JsonText::write_json`]), between
/// `head` and `tail`.
pub(crate) fn description_init_json(head: &str, d: &Description, tail: &str) -> String {
    let mut out =
        String::with_capacity(head.len() + d.sdp.json_len_hint() + tail.len() + DESCRIPTION_KEYS);
    out.push_str(head);
    out.push_str(r#"{"type":""#);
    out.push_str(d.kind.as_str());
    out.push_str(r#"","sdp":"#);
    d.sdp.write_json(&mut out);
    out.push('}');
    out.push_str(tail);
    out
}

/// The bytes [`description_init_json`] adds besides the SDP: keys, quotes and the longest type.
const DESCRIPTION_KEYS: usize = 32;

/// Whether `text` looks like a JSON object (first non-blank character `{`).
pub(crate) fn looks_like_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééé", 2), "éé");
        assert_eq!(truncate("ab", 5), "ab");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn mline_index_accepts_numbers_and_digit_strings_only() {
        let ok = |v: Value| opt_mline_index(&obj(json!({ "i": v })), "i");
        assert_eq!(ok(json!(2)).ok(), Some(Some(2)));
        assert_eq!(ok(json!("7")).ok(), Some(Some(7)));
        assert_eq!(ok(Value::Null).ok(), Some(None));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(""),
            json!("99999999999"),
            json!([]),
        ] {
            assert!(ok(bad).is_err());
        }
        assert!(ok(json!(u64::MAX)).is_err());
    }

    #[test]
    fn mid_stringifies_numbers() {
        let m = obj(json!({ "id": 3 }));
        assert_eq!(opt_mid(&m, "id").ok(), Some(Some("3".to_owned())));
        assert!(opt_mid(&obj(json!({ "id": true })), "id").is_err());
    }

    /// `RTCSessionDescriptionInit` as browsers serialize it: `type` first, then `sdp`.
    #[derive(Serialize)]
    struct DescriptionInit<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        sdp: &'a JsonText,
    }

    impl<'a> From<&'a Description> for DescriptionInit<'a> {
        fn from(d: &'a Description) -> Self {
            DescriptionInit {
                kind: d.kind.as_str(),
                sdp: &d.sdp,
            }
        }
    }

    #[test]
    fn a_description_is_written_as_serde_writes_it() {
        for sdp in ["v=0\r\na=x:\"q\" é/\t", ""] {
            let d = Description {
                room: "r".into(),
                kind: SdpKind::Pranswer,
                sdp: sdp.into(),
            };
            let by_serde = to_text(&DescriptionInit::from(&d)).unwrap_or_default();
            assert_eq!(description_init_json("", &d, ""), by_serde);
            assert_eq!(description_init_json("[", &d, "]"), format!("[{by_serde}]"));
        }
    }

    #[test]
    fn rollback_may_lack_sdp() {
        let d = description_init("r", &obj(json!({ "type": "rollback" })));
        assert!(matches!(d, Ok(Description { sdp, .. }) if sdp.is_empty()));
        let e = description_init("r", &obj(json!({ "type": "offer" })));
        assert!(matches!(e, Err(DecodeError::MissingField("sdp"))));
    }
}
