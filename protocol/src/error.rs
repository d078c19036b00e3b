//! Typed errors: what a decoder can reject, and the stable codes the gateway reports to peers.

use serde::{Deserialize, Serialize};

/// Why an inbound frame could not be turned into an [`crate::Event`]. Every variant is the
/// sender's fault; the session answers with an error in the sender's dialect and keeps going.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is not valid JSON, or JSON of the wrong shape. serde's message can quote a
    /// peer's string whole ("invalid type: string \"…\""), so it is shown bounded.
    #[error("malformed JSON: {}", bounded_json_message(.0))]
    Json(#[from] serde_json::Error),
    /// Valid JSON, but not an object.
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// The JSON nests deeper than [`crate::MAX_JSON_DEPTH`].
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
    /// The frame has no `command` (Ant Media) or it is not a string.
    #[error("missing or non-string `command`")]
    MissingCommand,
    /// A command this gateway does not know.
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    /// A command that belongs to a part of the gateway that is not built yet or not enabled.
    #[error("command `{command}` is not supported: {reason}")]
    Unsupported {
        /// The command.
        command: String,
        /// Why, for the peer.
        reason: &'static str,
    },
    /// A required field is absent or empty (Ant Media: `noStreamNameSpecified` for `streamId`).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should have been, e.g. `"a string"`.
        expected: &'static str,
    },
    /// A stream or room id with characters outside `[A-Za-z0-9._-]`, or longer than
    /// [`crate::MAX_ID_BYTES`] (the id shown is truncated).
    #[error("invalid stream name `{0}` (1 to {max} bytes of [A-Za-z0-9._-])", max = crate::MAX_ID_BYTES)]
    InvalidStreamName(String),
    /// A field has a value outside its allowed set.
    #[error("field `{field}` has invalid value `{value}`")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The offending value (truncated).
        value: String,
    },
}

/// The most bytes of serde's own message an error shows before its position.
const JSON_MESSAGE_BYTES: usize = 120;

/// serde's message for `error`, cut to [`JSON_MESSAGE_BYTES`] (at a character boundary) with
/// its line and column kept, so an error never echoes more than a bounded part of peer input.
fn bounded_json_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    if full.len() <= JSON_MESSAGE_BYTES {
        return full;
    }
    let mut end = JSON_MESSAGE_BYTES;
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… at line {} column {}",
        &full[..end],
        error.line(),
        error.column()
    )
}

impl DecodeError {
    /// The stable code reported to the peer for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Json(_) | DecodeError::NotAnObject(_) | DecodeError::TooDeep(_) => {
                ErrorCode::MalformedMessage
            }
            DecodeError::MissingCommand | DecodeError::UnknownCommand(_) => {
                ErrorCode::UnknownCommand
            }
            DecodeError::Unsupported { .. } => ErrorCode::Unsupported,
            DecodeError::MissingField("streamId") => ErrorCode::NoStreamName,
            DecodeError::MissingField("room") => ErrorCode::NoRoomName,
            DecodeError::MissingField(_)
            | DecodeError::WrongType { .. }
            | DecodeError::InvalidValue { .. } => ErrorCode::InvalidField,
            DecodeError::InvalidStreamName(_) => ErrorCode::InvalidStreamName,
        }
    }
}

/// Stable error codes, rendered per dialect (Ant Media `definition`, raw `code`, socket.io
/// `connect_error` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The room already has its two peers (Ant `NoSpaceForNewPeer`).
    RoomFull,
    /// A relay or leave with no partner or no such room (Ant `no_peer_associated_before`).
    NoPeer,
    /// No stream id given (Ant `noStreamNameSpecified`).
    NoStreamName,
    /// A stream id with invalid characters (Ant `invalidStreamName`).
    InvalidStreamName,
    /// Not JSON, not an object, or nested too deep.
    MalformedMessage,
    /// A command the gateway does not know.
    UnknownCommand,
    /// A command the gateway knows but does not serve (yet).
    Unsupported,
    /// A field of the wrong type or value.
    InvalidField,
    /// A binary frame where text is expected.
    BinaryNotSupported,
    /// A frame above the configured size limit.
    FrameTooLarge,
    /// A plugin refused the event.
    Refused,
    /// A join without a valid token where the room policy requires one (Ant
    /// `unauthorized_access`).
    Unauthorized,
    /// Too many joins in too short a time (a room-policy rate limit).
    RateLimited,
    /// The gateway could not deliver to a peer or failed internally.
    Internal,
    /// A conference command without a room (Ant `no_room_specified`).
    NoRoomName,
    /// No such stream, or it is not active (Ant `no_stream_exist`, with `error_code` `"404"`).
    NoStream,
    /// A room with no streams other than the requester's (Ant `no_active_streams_in_room`, which
    /// names the room in `room`).
    RoomEmpty,
    /// A room joined outside its planned start and end dates (Ant
    /// `room_not_active_or_expired`).
    RoomNotActive,
    /// A stream id another participant already uses (Ant `streamIdInUse`).
    StreamIdInUse,
    /// Media (publish, play) needs the media plugin, which is not running.
    MediaUnavailable,
    /// The peer connected but did not join a room within the configured time.
    JoinTimeout,
    /// A room already has the media plugin's maximum of publishers (Ant
    /// `main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks`).
    RoomPublishersFull,
    /// The media plugin is at capacity: its room or peer-connection limit (Ant
    /// `highResourceUsage`).
    MediaCapacity,
    /// The media plugin could not use a peer's session description (Ant
    /// `notSetRemoteDescription`).
    BadDescription,
}

impl ErrorCode {
    /// The Ant Media `definition` string for this code. Ant's own names are used where Ant has
    /// one; the rest follow Ant's snake_case style.
    pub fn ant_definition(self) -> &'static str {
        match self {
            ErrorCode::RoomFull => "NoSpaceForNewPeer",
            ErrorCode::NoPeer => "no_peer_associated_before",
            ErrorCode::NoStreamName => "noStreamNameSpecified",
            ErrorCode::InvalidStreamName => "invalidStreamName",
            ErrorCode::MalformedMessage => "malformed_message",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::Unsupported => "unsupported_command",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::FrameTooLarge => "message_too_large",
            ErrorCode::Refused => "refused",
            ErrorCode::Unauthorized => "unauthorized_access",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "server_error_check_logs",
            ErrorCode::NoRoomName => "no_room_specified",
            ErrorCode::NoStream => "no_stream_exist",
            ErrorCode::RoomEmpty => "no_active_streams_in_room",
            ErrorCode::RoomNotActive => "room_not_active_or_expired",
            ErrorCode::StreamIdInUse => "streamIdInUse",
            ErrorCode::MediaUnavailable => "media_plugin_not_running",
            ErrorCode::JoinTimeout => "join_timeout",
            ErrorCode::RoomPublishersFull => {
                "main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks"
            }
            ErrorCode::MediaCapacity => "highResourceUsage",
            ErrorCode::BadDescription => "notSetRemoteDescription",
        }
    }

    /// The snake_case code used by the raw and socket.io dialects.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RoomFull => "room_full",
            ErrorCode::NoPeer => "no_peer",
            ErrorCode::NoStreamName => "no_stream_name",
            ErrorCode::InvalidStreamName => "invalid_stream_name",
            ErrorCode::MalformedMessage => "malformed_message",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Refused => "refused",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::NoRoomName => "no_room_name",
            ErrorCode::NoStream => "no_stream",
            ErrorCode::RoomEmpty => "room_empty",
            ErrorCode::RoomNotActive => "room_not_active",
            ErrorCode::StreamIdInUse => "stream_id_in_use",
            ErrorCode::MediaUnavailable => "media_unavailable",
            ErrorCode::JoinTimeout => "join_timeout",
            ErrorCode::RoomPublishersFull => "room_publishers_full",
            ErrorCode::MediaCapacity => "media_capacity",
            ErrorCode::BadDescription => "bad_description",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_quote_a_bounded_part_of_the_input() {
        let long = format!("\"{}\"", "é".repeat(300));
        let error = serde_json::from_str::<Vec<String>>(&long).unwrap_err();
        assert!(
            error.to_string().len() > 600,
            "serde quotes the string whole"
        );
        let shown = DecodeError::from(error).to_string();
        assert!(shown.len() <= 200, "{} bytes: {shown}", shown.len());
        assert!(
            shown.starts_with("malformed JSON: invalid type: string"),
            "{shown}"
        );
        assert!(shown.ends_with("at line 1 column 602"), "{shown}");
    }

    #[test]
    fn short_json_errors_are_shown_as_serde_wrote_them() {
        let error = serde_json::from_str::<Vec<String>>("[1").unwrap_err();
        let expected = format!("malformed JSON: {error}");
        assert_eq!(DecodeError::from(error).to_string(), expected);
    }
}
