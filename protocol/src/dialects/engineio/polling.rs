//! engine.io v4 long-polling, sans-IO: the framing of a polling payload (the body of a POST, or
//! the answer to a GET), and engine.io's JSON errors. The transport that serves it (the HTTP
//! requests, the queue a GET drains, the upgrade to a WebSocket) is the daemon's; these are the
//! byte-level rules it follows, as the engine.io reference server applies them.
//!
//! A v4 payload is its packets joined by the record separator `\x1e`; a packet is the same text a
//! WebSocket frame carries (a type digit, then its data), except that binary data is written
//! `b<base64>`.

/// What separates the packets of a v4 polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// The engine.io `noop` packet: answers a pending poll with nothing, so that a client about to
/// upgrade can finish its polling cycle.
pub const NOOP: &str = "6";

/// The engine.io `close` packet: the server closed the session.
pub const CLOSE: &str = "1";

/// The client's probe on the WebSocket it is upgrading to, and the server's answer.
pub const PROBE: &str = "2probe";
/// The answer to [`PROBE`].
pub const PROBE_ANSWER: &str = "3probe";
/// The client's last packet of an upgrade: the session goes on over the WebSocket.
pub const UPGRADE: &str = "5";

/// The byte ranges of the packets of a v4 payload, in order. An empty payload has one empty
/// packet (which the packet decoder refuses, as engine.io does).
pub fn packets(payload: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let rest = &payload[start..];
        let range = match memchr::memchr(SEPARATOR, rest) {
            Some(at) => start..start + at,
            None => {
                done = true;
                start..payload.len()
            }
        };
        start = range.end + 1;
        Some(range)
    })
}

/// Whether a packet carries binary data (`b<base64>`), which signaling never needs.
pub fn is_binary(packet: &[u8]) -> bool {
    packet.first() == Some(&b'b')
}

/// Appends `packet` to the payload being built in `payload`.
pub fn append(payload: &mut String, packet: &str) {
    if !payload.is_empty() {
        payload.push(char::from(SEPARATOR));
    }
    payload.push_str(packet);
}

/// engine.io's error codes for a request it refuses (the `code` of [`error_body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The transport named in the query is not one this server speaks.
    UnknownTransport,
    /// The `sid` names no open session.
    UnknownSid,
    /// A request that does not fit the session's state: a second poll while one is pending, a
    /// polling request after the upgrade, an upgrade while one is under way.
    BadRequest,
    /// The `EIO` version is not served here.
    UnsupportedProtocolVersion,
}

impl RequestError {
    /// engine.io's numeric code.
    pub fn code(self) -> u8 {
        match self {
            RequestError::UnknownTransport => 0,
            RequestError::UnknownSid => 1,
            RequestError::BadRequest => 3,
            RequestError::UnsupportedProtocolVersion => 5,
        }
    }

    /// engine.io's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            RequestError::UnknownTransport => "Transport unknown",
            RequestError::UnknownSid => "Session ID unknown",
            RequestError::BadRequest => "Bad request",
            RequestError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }
}

/// The JSON body engine.io answers a refused request with (status 400):
/// `{"code":1,"message":"Session ID unknown"}`.
pub fn error_body(error: RequestError) -> String {
    format!(
        r#"{{"code":{},"message":"{}"}}"#,
        error.code(),
        error.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(payload: &str) -> Vec<&str> {
        packets(payload.as_bytes()).map(|r| &payload[r]).collect()
    }

    #[test]
    fn a_payload_splits_on_the_record_separator() {
        assert_eq!(split("40"), ["40"]);
        assert_eq!(
            split("40\x1e42[\"msg\",\"x\"]\x1e3"),
            ["40", "42[\"msg\",\"x\"]", "3"]
        );
        assert_eq!(split(""), [""]);
        assert_eq!(split("4\x1e"), ["4", ""]);
        assert_eq!(split("\x1e\x1e"), ["", "", ""]);
    }

    #[test]
    fn payloads_are_built_in_order() {
        let mut payload = String::new();
        append(&mut payload, "0{}");
        append(&mut payload, "40");
        append(&mut payload, "2");
        assert_eq!(payload, "0{}\x1e40\x1e2");
        assert_eq!(split(&payload), ["0{}", "40", "2"]);
    }

    #[test]
    fn binary_packets_are_recognized() {
        assert!(is_binary(b"bAQID"));
        assert!(!is_binary(b"42[\"msg\",\"b\"]"));
        assert!(!is_binary(b""));
    }

    #[test]
    fn errors_have_engine_io_s_json_shape() {
        assert_eq!(
            error_body(RequestError::UnknownSid),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(
            error_body(RequestError::BadRequest),
            r#"{"code":3,"message":"Bad request"}"#
        );
    }
}
