//! engine.io v3 long-polling payloads, sans-IO: what socket.io-client 2 (engine.io-client 3,
//! engine.io-parser 2) POSTs and expects in answer to its GETs. A v3 text payload is each packet
//! prefixed by its length and a colon, `<length>:<packet>`, the length counted in UTF-16 code
//! units (JavaScript's `String.length`, which engine.io-parser 2 compares), not bytes. Packets
//! are the text a WebSocket frame carries, as in v4.
//!
//! engine.io 3 also has a binary payload framing (`\x00<digits>\xff<packet>`, sent as
//! `application/octet-stream`) and base64 packets (`b4...`) for binary data; signaling is text,
//! so the gateway answers both as binary data (a clear error), as it does v4's `b...` packets.

use std::ops::Range;

/// Why a v3 payload cannot be split into packets (engine.io-parser 2 drops such a payload as a
/// `parser error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A length prefix that is empty, not a number, or too long to be one.
    #[error("engine.io v3 payload: a packet length is not a number")]
    BadLength,
    /// A length that runs past the end of the payload, or ends inside a character.
    #[error("engine.io v3 payload: a packet is shorter than its length")]
    Truncated,
    /// An empty payload, or one that ends inside a length prefix.
    #[error("engine.io v3 payload: no packet")]
    Empty,
    /// A packet whose length prefix is above the frame limit (seen before it is read).
    #[error("engine.io v3 payload: a packet of {0} characters is above the frame limit")]
    TooLarge(usize),
}

/// The first packet at the start of a payload, or what is missing to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// A packet: the bytes `header..end` (after its `<length>:`); the next starts at `end`.
    Packet {
        /// Where the packet's bytes start.
        header: usize,
        /// Where they end.
        end: usize,
    },
    /// The buffer ends inside the length prefix or the packet: read more of the body.
    NeedMore,
}

/// Digits a length prefix may have: more would be above any frame limit.
const MAX_DIGITS: usize = 10;

/// Splits the first packet off the start of `buf`, part of a v3 payload being read. A length
/// above `max_units` is refused as soon as its prefix is read, before its packet is buffered.
/// The packet's bytes are counted as UTF-8 (checked later, per packet); its length is in UTF-16
/// code units, as engine.io-parser 2 counts it (JavaScript's `String.length`).
pub fn split_first(buf: &[u8], max_units: usize) -> Result<Split, PayloadError> {
    let Some(colon) = buf.iter().take(MAX_DIGITS + 1).position(|&b| b == b':') else {
        return match buf.iter().all(u8::is_ascii_digit) && buf.len() <= MAX_DIGITS {
            true => Ok(Split::NeedMore),
            false => Err(PayloadError::BadLength),
        };
    };
    let digits = &buf[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(PayloadError::BadLength);
    }
    // ASCII digits, at most ten: always a number that fits.
    let units = digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    if units > max_units {
        return Err(PayloadError::TooLarge(units));
    }
    let header = colon + 1;
    match byte_len_of_units(&buf[header..], units)? {
        Some(len) => Ok(Split::Packet {
            header,
            end: header + len,
        }),
        None => Ok(Split::NeedMore),
    }
}

/// How many bytes of UTF-8 `text` make its first `units` UTF-16 code units; `None` when `text`
/// ends before them.
fn byte_len_of_units(text: &[u8], units: usize) -> Result<Option<usize>, PayloadError> {
    let (mut at, mut counted) = (0, 0);
    while counted < units {
        let Some(&lead) = text.get(at) else {
            return Ok(None);
        };
        // A character's UTF-8 length and UTF-16 length, from its lead byte (a stray
        // continuation byte counts as one; the packet then fails its UTF-8 check).
        let (bytes, code_units) = match lead {
            0xF0..=0xF7 => (4, 2),
            0xE0..=0xEF => (3, 1),
            0xC0..=0xDF => (2, 1),
            _ => (1, 1),
        };
        if counted + code_units > units {
            // The length ends between the two halves of a surrogate pair.
            return Err(PayloadError::Truncated);
        }
        if at + bytes > text.len() {
            return Ok(None);
        }
        at += bytes;
        counted += code_units;
    }
    Ok(Some(at))
}

/// The byte ranges of the packets of the whole v3 text payload `payload`, in order; an error
/// when any part of it does not parse (the whole payload is refused, as engine.io-parser 2
/// refuses it). Empty packets (`0:`) carry nothing and are skipped, as engine.io-parser 2 skips
/// them.
pub fn packets(payload: &str, max_units: usize) -> Result<Vec<Range<usize>>, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        match split_first(&payload.as_bytes()[at..], max_units)? {
            Split::Packet { header, end } => {
                if end > header {
                    ranges.push(at + header..at + end);
                }
                at += end;
            }
            Split::NeedMore if payload[at..].contains(':') => return Err(PayloadError::Truncated),
            Split::NeedMore => return Err(PayloadError::Empty),
        }
    }
    Ok(ranges)
}

/// Appends `packet` to the v3 payload being built in `payload`.
pub fn append(payload: &mut String, packet: &str) {
    use std::fmt::Write as _;
    let units: usize = packet.chars().map(char::len_utf16).sum();
    // Writing to a `String` cannot fail.
    let _ = write!(payload, "{units}:");
    payload.push_str(packet);
}

/// Whether a POST body uses engine.io 3's binary payload framing: its first byte is the
/// string (`0`) or binary (`1`) marker of `\x00<digits>\xff<packet>`.
pub fn is_binary_payload(body: &[u8]) -> bool {
    matches!(body.first(), Some(0 | 1))
}

/// Whether a packet is a base64 binary message (`b4<base64>`).
pub fn is_binary(packet: &[u8]) -> bool {
    packet.first() == Some(&b'b')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(payload: &str) -> Result<Vec<&str>, PayloadError> {
        Ok(packets(payload, 1000)?
            .into_iter()
            .map(|r| &payload[r])
            .collect())
    }

    #[test]
    fn a_payload_splits_on_its_length_prefixes() {
        assert_eq!(split("2:40"), Ok(vec!["40"]));
        assert_eq!(
            split("1:213:42[\"msg\",\"x\"]1:3"),
            Ok(vec!["2", "42[\"msg\",\"x\"]", "3"])
        );
        assert_eq!(
            split("0:2:40"),
            Ok(vec!["40"]),
            "an empty packet is skipped"
        );
    }

    #[test]
    fn lengths_count_utf16_code_units_not_bytes() {
        // "é" is one unit (two bytes); "😀" is two units (four bytes).
        assert_eq!(split("3:4é14:4😀1"), Ok(vec!["4é1", "4😀1"]));
        let mut payload = String::new();
        append(&mut payload, "4é1");
        append(&mut payload, "4😀1");
        assert_eq!(payload, "3:4é14:4😀1");
        assert_eq!(split(&payload), Ok(vec!["4é1", "4😀1"]));
    }

    #[test]
    fn broken_payloads_are_refused_whole() {
        assert_eq!(split(""), Err(PayloadError::Empty));
        assert_eq!(split("2:40x"), Err(PayloadError::BadLength));
        assert_eq!(split("2:401"), Err(PayloadError::Empty));
        assert_eq!(split(":40"), Err(PayloadError::BadLength));
        assert_eq!(split("a:40"), Err(PayloadError::BadLength));
        assert_eq!(split("-1:4"), Err(PayloadError::BadLength));
        assert_eq!(split("5:40"), Err(PayloadError::Truncated));
        assert_eq!(
            split("2:4😀"),
            Err(PayloadError::Truncated),
            "half a surrogate pair"
        );
        assert_eq!(
            split("99999999999999999999999:4"),
            Err(PayloadError::BadLength)
        );
        assert_eq!(split("1001:4"), Err(PayloadError::TooLarge(1001)));
    }

    #[test]
    fn a_payload_read_in_pieces_waits_for_the_rest_and_refuses_a_large_length_at_once() {
        let payload = "13:42[\"msg\",\"é\"]".as_bytes();
        for cut in 0..payload.len() {
            assert_eq!(
                split_first(&payload[..cut], 100),
                Ok(Split::NeedMore),
                "{cut}"
            );
        }
        assert_eq!(
            split_first(payload, 100),
            Ok(Split::Packet {
                header: 3,
                end: payload.len()
            })
        );
        // Refused on its prefix alone, before any of its 5000 characters arrive.
        assert_eq!(
            split_first(b"5000:", 100),
            Err(PayloadError::TooLarge(5000))
        );
        assert_eq!(
            split_first(b"12345678901", 100),
            Err(PayloadError::BadLength)
        );
    }

    #[test]
    fn binary_framings_are_recognized() {
        assert!(is_binary_payload(b"\x00\x02\xff40"));
        assert!(is_binary_payload(b"\x01\x04\xff\x04abc"));
        assert!(!is_binary_payload(b"2:40"));
        assert!(is_binary(b"b4AQID"));
        assert!(!is_binary(b"42[\"msg\",\"b\"]"));
    }
}
