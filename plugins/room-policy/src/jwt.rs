//! Join token checks: a shared secret, or an HS256 JWT. Pure functions of the token, the key,
//! the room and the current Unix time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why a join token was not accepted. The text is what the peer is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The join carried no token.
    #[error("this room requires a join token")]
    Missing,
    /// A shared-secret token that is not the secret.
    #[error("join token is not valid")]
    Mismatch,
    /// Not three base64url parts, or a part that is not JSON.
    #[error("join token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    /// A JWT signed with another algorithm (`alg` in its header).
    #[error("join token must be signed with HS256, not `{0}`")]
    Algorithm(String),
    /// The signature does not match the key.
    #[error("join token signature does not verify")]
    Signature,
    /// No numeric `exp` claim.
    #[error("join token has no numeric `exp` claim")]
    NoExpiry,
    /// `exp` is not in the future.
    #[error("join token expired")]
    Expired,
    /// The `room` (or Ant Media `streamId`) claim names another room.
    #[error("join token is for room `{claim}`, not `{room}`")]
    WrongRoom {
        /// The room the token names.
        claim: String,
        /// The room being joined.
        room: String,
    },
}

/// Accepts `token` if it equals `secret`. The comparison takes the same time wherever the first
/// difference is, and does not reveal the secret's length (both sides are hashed first).
pub fn check_shared_secret(token: &str, secret: &str) -> Result<(), TokenError> {
    let (a, b) = (
        Sha256::digest(token.as_bytes()),
        Sha256::digest(secret.as_bytes()),
    );
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if std::hint::black_box(diff) == 0 {
        Ok(())
    } else {
        Err(TokenError::Mismatch)
    }
}

/// Accepts an HS256 JWT signed with `key` whose `exp` is after `now_secs` and whose `room` or
/// `streamId` claim, when present, is `room`. The signature is checked (in constant time, by
/// `hmac`) before any claim is read.
pub fn check_jwt_hs256(
    token: &str,
    key: &[u8],
    room: &str,
    now_secs: i64,
) -> Result<(), TokenError> {
    let claims = verify_hs256(token, key, now_secs)?;
    for name in ["room", "streamId"] {
        if let Some(claim) = claims.get(name)
            && claim.as_str() != Some(room)
        {
            return Err(TokenError::WrongRoom {
                claim: claim
                    .as_str()
                    .map_or_else(|| claim.to_string(), str::to_owned)
                    .chars()
                    .take(64)
                    .collect(),
                room: room.to_owned(),
            });
        }
    }
    Ok(())
}

/// Verifies an HS256 JWT signed with `key` whose `exp` is after `now_secs`, and returns its
/// claims for the caller's own checks (Ant Media stream tokens check `streamId` and `type`). The
/// signature is checked (in constant time, by `hmac`) before any claim is read.
pub fn verify_hs256(
    token: &str,
    key: &[u8],
    now_secs: i64,
) -> Result<serde_json::Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let head = decode_json(header).ok_or(TokenError::Malformed("header is not base64url JSON"))?;
    let alg = head
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed("header has no `alg`"))?;
    if alg != "HS256" {
        return Err(TokenError::Algorithm(alg.chars().take(16).collect()));
    }
    let signature = decode(signature).ok_or(TokenError::Malformed("signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenError::Signature)?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;
    let Some(Value::Object(claims)) = decode_json(payload) else {
        return Err(TokenError::Malformed("payload is not base64url JSON"));
    };
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .ok_or(TokenError::NoExpiry)?;
    if exp <= now_secs {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// base64url without padding (a trailing `=` is tolerated).
fn decode(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = decode(part)?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// Signs `claims` as an HS256 JWT with `key` (for tests and tooling).
pub fn sign_hs256(claims: &Value, key: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => return String::new(),
    };
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}
