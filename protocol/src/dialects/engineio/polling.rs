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

/// Whether a text packet a client sent is an engine.io packet, and, for a message, a socket.io
/// packet whose data is JSON: what engine.io and socket.io parse before any handler sees it. A
/// packet that is not is a broken or hostile client, and both reference servers end its session
/// (engine.io's `parse error`); the gateway does the same over long-polling.
pub fn is_well_formed(packet: &str) -> bool {
    let mut bytes = packet.bytes();
    match bytes.next() {
        Some(b'1' | b'2' | b'3' | b'5' | b'6') => true,
        Some(b'4') => is_socketio_packet(&packet[1..]),
        _ => false,
    }
}

/// A socket.io packet: a type digit, an optional namespace (`/name,`), an optional ack id,
/// then JSON data or nothing.
fn is_socketio_packet(packet: &str) -> bool {
    let Some(kind @ b'0'..=b'6') = packet.bytes().next() else {
        return false;
    };
    let mut rest = &packet[1..];
    if kind == b'5' || kind == b'6' {
        // Binary packets are answered as such by the dialect.
        return true;
    }
    if rest.starts_with('/') {
        rest = rest.split_once(',').map_or("", |(_, after)| after);
    }
    let data = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    data.is_empty() || serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok()
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
    fn packets_engine_io_and_socket_io_cannot_parse_are_told_apart() {
        for good in [
            "2",
            "3",
            "5",
            "6",
            "1",
            "40",
            "40{\"token\":\"t\"}",
            "41",
            "42[\"msg\",\"x\"]",
            "42/chat,[\"msg\",1]",
            "4212[\"msg\",\"a\"]",
            "42[\"msg\",\"\\u0000\"]",
            "451-[\"msg\",{\"_placeholder\":true,\"num\":0}]",
        ] {
            assert!(is_well_formed(good), "{good}");
        }
        for bad in [
            "",
            "\0",
            "0",
            "7",
            "x",
            "4",
            "4zz",
            "47",
            "42[\"msg\",",
            "42[\"msg\",\"a\u{0}b\"]",
            "42{not json",
        ] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
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
