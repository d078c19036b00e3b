//! Join and stream token checks: a shared secret, or a JWT verified by the `jsonwebtoken` crate
//! (HS256/384/512 with a shared key; RS256 or ES256 with a public key from a PEM file or the
//! keys of a JWKS document, see [`crate::jwks`]). The library parses the token, refuses
//! non-canonical base64 (padding, trailing bits), checks the signature before any claim is
//! read, and checks `exp` (required), `nbf`, and `aud`/`iss` when configured, with a leeway.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jwks::Jwks;

/// Why a token was not accepted. The texts are fixed and bounded: they are what the peer is
/// told, so no library error text or token content goes into them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The request carried no token.
    #[error("this room requires a join token")]
    Missing,
    /// A shared-secret token that is not the secret.
    #[error("join token is not valid")]
    Mismatch,
    /// Not a well-formed JWT: not three canonical base64url parts, or a part that is not JSON.
    #[error("join token is not a well-formed JWT")]
    Malformed,
    /// Signed with an algorithm the key is not for (`alg` in its header).
    #[error("join token is signed with an algorithm this gateway does not accept")]
    Algorithm,
    /// The signature does not match the key (or no key has the token's `kid`).
    #[error("join token signature does not verify")]
    Signature,
    /// No numeric `exp` claim (or another required claim is missing).
    #[error("join token has no `exp` claim")]
    NoExpiry,
    /// `exp` is past (beyond the leeway).
    #[error("join token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("join token is not valid yet")]
    NotYetValid,
    /// `aud` is not the configured audience.
    #[error("join token is for another audience")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("join token is from another issuer")]
    Issuer,
    /// The keys are not available yet (a JWKS URL not fetched yet, or unreachable so far).
    #[error("join token keys are not available; try again shortly")]
    KeysUnavailable,
    /// The `room` (or Ant Media `streamId`) claim names another room.
    #[error("join token is for another room")]
    WrongRoom,
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

/// Where a verifier's keys come from.
#[derive(Clone)]
enum Keys {
    /// One key, for the algorithms of its family.
    Static(Box<DecodingKey>),
    /// The keys of a JWKS document, by `kid`, refreshed in the background.
    Jwks(Arc<Jwks>),
}

/// Verifies JWTs with one key (or key set) and one set of claim rules.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

/// The claim rules besides the key: leeway, audience, issuer.
#[derive(Debug, Clone, Default)]
pub struct ClaimRules {
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// When set, `aud` must contain it.
    pub audience: Option<String>,
    /// When set, `iss` must be it.
    pub issuer: Option<String>,
}

/// The HMAC algorithms a shared key verifies.
const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

impl JwtVerifier {
    /// HS256/384/512 tokens signed with `secret`.
    pub fn hmac(secret: &[u8], rules: &ClaimRules) -> Result<Self, String> {
        let key = DecodingKey::from_secret(secret).map_err(|_| "not a usable HMAC key")?;
        Ok(Self {
            keys: Keys::Static(Box::new(key)),
            validation: validation(&HMAC, rules),
        })
    }

    /// RS256 or ES256 tokens, verified with the public key in `pem` (an RSA or a P-256 EC
    /// public key). The error says which, without the key.
    pub fn public_key_pem(pem: &[u8], rules: &ClaimRules) -> Result<Self, String> {
        let (key, alg) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (key, Algorithm::RS256)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (key, Algorithm::ES256)
        } else {
            return Err("not a PEM RSA or EC (P-256) public key".to_owned());
        };
        Ok(Self {
            keys: Keys::Static(Box::new(key)),
            validation: validation(&[alg], rules),
        })
    }

    /// RS256 and ES256 tokens verified with the key of `jwks` their `kid` names.
    pub fn jwks(jwks: Arc<Jwks>, rules: &ClaimRules) -> Self {
        Self {
            keys: Keys::Jwks(jwks),
            validation: validation(&[Algorithm::RS256], rules),
        }
    }

    /// The JWKS key set this verifier reads, if its keys come from one.
    pub fn key_set(&self) -> Option<&Arc<Jwks>> {
        match &self.keys {
            Keys::Jwks(jwks) => Some(jwks),
            Keys::Static(_) => None,
        }
    }

    /// Verifies `token` and returns its claims for the caller's own checks (Ant Media stream
    /// tokens check `streamId` and `type`).
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let decoded = match &self.keys {
            Keys::Static(key) => {
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            }
            Keys::Jwks(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(|e| error(e.kind()))?;
                let (key, alg) = jwks.key(header.kid.as_deref())?;
                // The key's own algorithm, not the header's: a token cannot choose it.
                let mut validation = self.validation.clone();
                validation.algorithms = vec![alg];
                jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            }
        };
        decoded.map(|d| d.claims).map_err(|e| error(e.kind()))
    }

    /// Verifies a join token for `room`: the claims of [`Self::verify`], and, when the token
    /// has a `room` or `streamId` claim (Ant Media's name), it must name `room`.
    pub fn verify_join(&self, token: &str, room: &str) -> Result<(), TokenError> {
        let claims = self.verify(token)?;
        for name in ["room", "streamId"] {
            if let Some(claim) = claims.get(name)
                && claim.as_str() != Some(room)
            {
                return Err(TokenError::WrongRoom);
            }
        }
        Ok(())
    }
}

fn validation(algorithms: &[Algorithm], rules: &ClaimRules) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms.to_vec();
    v.leeway = rules.leeway_secs;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp"]);
    match &rules.audience {
        Some(aud) => v.set_audience(&[aud]),
        None => v.validate_aud = false,
    }
    if let Some(iss) = &rules.issuer {
        v.set_issuer(&[iss]);
        v.set_required_spec_claims(&["exp", "iss"]);
    }
    v
}

/// The fixed refusal for a library error.
fn error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::Provider(_) => TokenError::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(_) => TokenError::NoExpiry,
        _ => TokenError::Malformed,
    }
}

/// Signs `claims` as an HS256 JWT with `key` (the REST API's `jwt-token` call, tests and
/// tooling). Empty if the claims cannot be serialized (a JSON value always can).
pub fn sign_hs256(claims: &Value, key: &[u8]) -> String {
    EncodingKey::from_secret(key)
        .and_then(|key| jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key))
        .unwrap_or_default()
}
