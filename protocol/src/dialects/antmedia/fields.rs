//! Fields that both the P2P and the conference commands read.

use serde_json::{Map, Value};

use crate::DecodeError;
use crate::dialects::common::{ECHO_CHARS, truncate, valid_id};

/// The `streamId` every P2P command carries: present, a non-empty string, and made of
/// `[A-Za-z0-9._-]` only (Ant's `StreamIdValidator`).
pub(super) fn stream_id(obj: &Map<String, Value>) -> Result<&str, DecodeError> {
    match obj.get("streamId") {
        None | Some(Value::Null) => Err(DecodeError::MissingField("streamId")),
        Some(Value::String(s)) if s.is_empty() => Err(DecodeError::MissingField("streamId")),
        Some(Value::String(s)) => {
            if valid_id(s) {
                Ok(s)
            } else {
                Err(DecodeError::InvalidStreamName(truncate(s, ECHO_CHARS)))
            }
        }
        Some(_) => Err(DecodeError::WrongType {
            field: "streamId",
            expected: "a string",
        }),
    }
}

/// The Android SDK's `joinToPeer` sends a `token`; the JS SDK sends none. Empty means none.
pub(super) fn opt_token(obj: &Map<String, Value>) -> Result<Option<String>, DecodeError> {
    match obj.get("token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.is_empty() => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.clone())),
        Some(_) => Err(DecodeError::WrongType {
            field: "token",
            expected: "a string",
        }),
    }
}
