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

/// Counts bracket nesting outside string literals. Linear, allocation-free.
fn check_depth(text: &str) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
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
                    return Err(DecodeError::TooDeep(MAX_JSON_DEPTH));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
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
