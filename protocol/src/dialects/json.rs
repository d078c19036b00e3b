//! Shared JSON front door for the decoders: bounded nesting, objects only.

use serde_json::{Map, Value};

use crate::{DecodeError, MAX_JSON_DEPTH};

/// Parses `text` as a JSON object, refusing nesting deeper than [`MAX_JSON_DEPTH`] before
/// serde sees it (serde_json's own limit is 128 and would still allocate for every level).
pub fn parse_object(text: &str) -> Result<Map<String, Value>, DecodeError> {
    check_depth(text)?;
    match serde_json::from_str::<Value>(text)? {
        Value::Object(map) => Ok(map),
        other => Err(DecodeError::NotAnObject(json_type_name(&other))),
    }
}

/// The article-and-noun name of a JSON value's type, for error messages.
pub(crate) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Counts bracket nesting outside string literals. Linear, allocation-free, and cheap, because
/// it runs on every frame the general decoders read (BENCHMARKS.md, "Profiling figures"): nesting
/// can only exceed the limit if the text has more opening brackets than that, which a
/// (vectorized) count rules out for nearly every frame; otherwise string contents are skipped
/// eight bytes at a time.
fn check_depth(text: &str) -> Result<(), DecodeError> {
    let bytes = text.as_bytes();
    if count_opening(bytes) <= MAX_JSON_DEPTH {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                i = skip_string(bytes, i + 1);
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(DecodeError::TooDeep(MAX_JSON_DEPTH));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// How many `{` and `[` bytes `bytes` has. Counted in byte-wide lanes per 255-byte chunk, which
/// the compiler turns into 16-bytes-at-a-time vector code.
fn count_opening(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|chunk| {
            let n = chunk
                .iter()
                .fold(0u8, |n, &b| n + u8::from(b == b'{' || b == b'['));
            usize::from(n)
        })
        .sum()
}

/// The index just past the string literal whose contents start at `i` (the text's length if it
/// is not terminated). A backslash escapes the byte after it.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    loop {
        while let Some(chunk) = bytes.get(i..i + 8) {
            let word = match <[u8; 8]>::try_from(chunk) {
                Ok(array) => u64::from_le_bytes(array),
                Err(_) => break,
            };
            if has_byte(word, b'"') || has_byte(word, b'\\') {
                break;
            }
            i += 8;
        }
        match bytes.get(i) {
            None => return bytes.len(),
            Some(b'"') => return i + 1,
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
        }
    }
}

/// Whether any byte of `word` is `b` (the classic "has a zero byte" bit trick on `word ^ b…b`).
const fn has_byte(word: u64, b: u8) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (LO * b as u64);
    x.wrapping_sub(LO) & !x & HI != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_deep_nesting_without_parsing() {
        let deep = "[".repeat(10_000);
        assert!(matches!(parse_object(&deep), Err(DecodeError::TooDeep(_))));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
        assert!(parse_object(&text).is_ok());
    }

    /// The byte-by-byte state machine `check_depth` replaced, as the reference.
    fn depth_ok_reference(text: &str) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for b in text.bytes() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    if depth > MAX_JSON_DEPTH {
                        return false;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }

    #[test]
    fn fast_skip_agrees_with_the_reference_at_every_alignment() {
        let deep_in = format!("{{\"a\":{}}}", "[".repeat(MAX_JSON_DEPTH));
        let pieces = [
            r#""plain ascii text that is long enough""#,
            r#""esc \" quote ["#,
            r#""ends in backslash \\""#,
            r#""\\\\\"[[[[""#,
            r#""ünïcödé ✓ [""#,
            "[",
            "{",
            "]",
            r#""unterminated [[["#,
        ];
        for pad in 0..9 {
            for a in &pieces {
                for b in &pieces {
                    let text = format!("{}{a}{}{b}{}", " ".repeat(pad), "[".repeat(pad), deep_in);
                    assert_eq!(
                        check_depth(&text).is_ok(),
                        depth_ok_reference(&text),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn opening_brackets_are_counted_across_chunks() {
        let text = "{[x".repeat(300);
        assert_eq!(count_opening(text.as_bytes()), 600);
        assert_eq!(count_opening(b""), 0);
    }

    #[test]
    fn non_objects_are_named() {
        assert!(matches!(
            parse_object("[1]"),
            Err(DecodeError::NotAnObject("an array"))
        ));
        assert!(matches!(
            parse_object("\"x\""),
            Err(DecodeError::NotAnObject("a string"))
        ));
    }
}
