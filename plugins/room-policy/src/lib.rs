//! The room policy: who may join which room. It looks only at joins and refuses those that break
//! a rule; every other event, and every join it admits, goes on to the next plugin unchanged.
//! Put it before the router.
//!
//! Checks, in this order (the first failure is the refusal the peer sees):
//!
//! | check | setting | refusal code | Ant `definition` | raw close |
//! |---|---|---|---|---|
//! | join rate | `join_rate_per_sec`, `join_burst`, `per_room` | `RateLimited` | `rate_limited` | 4403 |
//! | room name | `room_pattern` (full match) | `InvalidStreamName` | `invalidStreamName` | 4403 |
//! | dialect | `rules = [{ rooms, dialects }]` | `Refused` | `refused` | 4403 |
//! | token | `token = { secret }`, `token = { jwt_hs256_secret }` or `token = { jwt_public_key_file }` | `Unauthorized` | `unauthorized_access` | 4403 |
//! | room size | `max_peers` | `RoomFull` | `NoSpaceForNewPeer` | 4409 |
//!
//! Every join attempt takes from the rate bucket, including attempts later refused for another
//! reason, so the limit also slows down token guessing. A repeated join by a peer already in the
//! room is not counted against `max_peers`.
//!
//! The policy sees every way into a room: a join in any dialect (Ant Media `join`, raw
//! `/ws/{room}`, socket.io connect) and Ant Media's conference `joinRoom`.
//!
//! Tokens arrive as Ant Media's `token` field of `join` and `joinRoom`, the socket.io connect
//! `auth` payload (`io(url, {auth: {token}})`) or handshake query `?token=`, the raw URL's
//! `?token=`. A shared secret is compared in constant time. A JWT is verified by the
//! `jsonwebtoken` crate: HS256/384/512 with `jwt_hs256_secret`, RS256 or ES256 with the PEM
//! public key in `jwt_public_key_file` or a key of the JWKS document at `jwks_url` (fetched at
//! start, cached, refreshed every `jwks_refresh_secs`); it must carry a valid signature and an `exp` (Unix
//! seconds) in the future, an `nbf` (when present) in the past, both within `jwt_leeway_secs`;
//! `aud`/`iss` must match `jwt_audience`/`jwt_issuer` when those are set; and, when it has a
//! `room` or `streamId` claim (Ant Media's name), it must name the joined room. Non-canonical
//! base64 (`=` padding, stray trailing bits) is refused.
//!
//! ```toml
//! [[plugin]]
//! type = "room-policy"
//! [plugin.settings]
//! max_peers = 2
//! room_pattern = "[a-z0-9-]{1,32}"
//! rules = [{ rooms = "^classic-", dialects = ["socketio"] }]
//! join_rate_per_sec = 5.0
//! join_burst = 10
//! token = { jwt_hs256_secret = "a-secret-of-at-least-32-bytes-....." }
//! ```
//!
//! # Layout
//! - `lib.rs`: settings, their validation, and the hook.
//! - `jwt.rs`: JWT (through `jsonwebtoken`) and shared-secret checks.
//! - `jwks.rs`: keys from a JWKS URL, fetched and refreshed on the gateway's runtime.
//! - `jwks_tls.rs`: the rustls client of `https://` JWKS URLs (public roots + `jwks_ca_file`).
//! - `rate.rs`: the token bucket (a pure function of `Instant`s).
//! - `tests.rs`: unit tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use regex_lite::Regex;
use serde::Deserialize;
use switchboard_plugin_api::event::{ConferenceCommand, DialectKind, ErrorCode, Event};
use switchboard_plugin_api::{
    Decision, EventContext, Plugin, PluginError, PluginFactory, Refusal, SettingsError, Verdict,
    parse_settings,
};

mod jwks;
mod jwks_tls;
mod jwt;
mod rate;

pub use jwks::{Jwks, JwksSetupError};
pub use jwt::{ClaimRules, JwtVerifier, TokenError, check_shared_secret, sign_hs256};
pub use rate::TokenBucket;

/// Settings of `[[plugin]] type = "room-policy"`. Every check is off unless configured.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPolicyConfig {
    /// Most members a room may have; a join to a room that already has this many is refused
    /// with `RoomFull` (Ant `NoSpaceForNewPeer`). Unset: no limit here (the router has its own).
    #[serde(default)]
    pub max_peers: Option<usize>,
    /// A regular expression (regex-lite syntax) every room name must match in full (it is
    /// anchored at both ends). Others are refused with `InvalidStreamName`. Unset: any name.
    #[serde(default)]
    pub room_pattern: Option<String>,
    /// Per-room dialect rules, tried in order; the first whose `rooms` matches the room decides
    /// which dialects may join it. Rooms no rule matches admit every dialect.
    #[serde(default = "default_rules")]
    pub rules: Vec<DialectRuleConfig>,
    /// Joins admitted per second on average (a token bucket). Unset: no rate limit.
    #[serde(default)]
    pub join_rate_per_sec: Option<f64>,
    /// Joins admitted in a burst above the average rate (the bucket's size). Unset: the rate
    /// rounded up, at least 1. Needs `join_rate_per_sec`.
    #[serde(default)]
    pub join_burst: Option<u32>,
    /// Give every room its own bucket instead of one bucket for all joins. Needs
    /// `join_rate_per_sec`.
    #[serde(default = "default_per_room")]
    pub per_room: bool,
    /// Require a join token: `{ secret = "..." }` or `{ jwt_hs256_secret = "..." }`. Unset: no
    /// token needed (one given is ignored).
    #[serde(default)]
    pub token: Option<TokenConfig>,
}

fn default_rules() -> Vec<DialectRuleConfig> {
    Vec::new()
}

const fn default_per_room() -> bool {
    false
}

/// One `rules` entry: rooms matching `rooms` admit only `dialects`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectRuleConfig {
    /// A regular expression searched in the room name (not anchored: write `^classic-` for a
    /// prefix, `^lobby$` for one room).
    pub rooms: String,
    /// The dialects that may join matching rooms (`"antmedia"`, `"socketio"`, `"raw"`).
    pub dialects: Vec<DialectKind>,
}

/// The `token` table: exactly one of `secret`, `jwt_hs256_secret`, `jwt_public_key_file`,
/// and for JWTs the claim rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A shared secret the join's token must equal (compared in constant time).
    #[serde(default)]
    pub secret: Option<String>,
    /// The HMAC key of HS256/HS384/HS512 JWTs (at least 32 bytes, per RFC 7518 section 3.2).
    #[serde(default, alias = "jwt_secret")]
    pub jwt_hs256_secret: Option<String>,
    /// A PEM file with the RSA (RS256) or P-256 EC (ES256) public key of JWTs. A relative path
    /// is relative to the gateway's working directory.
    #[serde(default)]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// An `http://` or `https://` URL of a JWKS document (Ant Media's `jwksURL`) whose
    /// RS256/ES256 keys verify JWTs, chosen by the token's `kid`; fetched at start and every
    /// `jwks_refresh_secs`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` `jwks_url`, besides the public
    /// roots (an identity provider behind an internal CA).
    #[serde(default)]
    pub jwks_ca_file: Option<std::path::PathBuf>,
    /// Seconds between two fetches of `jwks_url`. Default 300.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// Seconds of clock skew allowed on a JWT's `exp` and `nbf`. Default 0 (none).
    #[serde(default = "default_leeway_secs")]
    pub jwt_leeway_secs: u64,
    /// When set, a JWT's `aud` must contain it.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// When set, a JWT's `iss` must be it.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
}

/// The default clock-skew allowance on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 0;

const fn default_leeway_secs() -> u64 {
    DEFAULT_LEEWAY_SECS
}

const fn default_jwks_refresh_secs() -> u64 {
    300
}

/// Shortest accepted HS256 key: RFC 7518 section 3.2 asks for a key as long as the hash.
const MIN_JWT_SECRET_BYTES: usize = 32;

/// Builds [`RoomPolicy`] from `[[plugin]] type = "room-policy"`.
#[derive(Debug, Default)]
pub struct RoomPolicyFactory;

impl PluginFactory for RoomPolicyFactory {
    fn type_name(&self) -> &'static str {
        "room-policy"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let config: RoomPolicyConfig = parse_settings(settings)?;
        RoomPolicy::new(&config).map(|p| Box::new(p) as Box<dyn Plugin>)
    }
}

/// A compiled dialect rule.
#[derive(Debug)]
struct DialectRule {
    rooms: Regex,
    dialects: Vec<DialectKind>,
}

/// A compiled token requirement.
#[derive(Debug)]
enum TokenCheck {
    Secret(String),
    Jwt(Box<JwtVerifier>),
}

/// The rate limit and its buckets.
#[derive(Debug)]
struct RateLimit {
    rate_per_sec: f64,
    burst: u32,
    per_room: bool,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    global: TokenBucket,
    rooms: HashMap<String, TokenBucket>,
}

/// Per-room buckets kept before full ones are forgotten (a full bucket is the same as none).
const MAX_IDLE_BUCKETS: usize = 1024;

/// The running room policy.
#[derive(Debug)]
pub struct RoomPolicy {
    max_peers: Option<usize>,
    room_pattern: Option<(String, Regex)>,
    rules: Vec<DialectRule>,
    token: Option<TokenCheck>,
    rate: Option<RateLimit>,
    /// The JWKS refresh task, started by `start` and aborted by `shutdown`.
    refresher: Mutex<Option<tokio::task::AbortHandle>>,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError {
        key: key.into(),
        message: message.into(),
    }
}

impl RoomPolicy {
    /// Validates `config` (reporting every problem) and compiles it.
    pub fn new(config: &RoomPolicyConfig) -> Result<Self, Vec<SettingsError>> {
        let mut errors = Vec::new();
        if config.max_peers == Some(0) {
            errors.push(problem("max_peers", "must be at least 1"));
        }
        let room_pattern =
            config
                .room_pattern
                .as_ref()
                .and_then(|p| match Regex::new(&format!("^(?:{p})$")) {
                    Ok(re) => Some((p.clone(), re)),
                    Err(e) => {
                        errors.push(problem("room_pattern", format!("invalid regex: {e}")));
                        None
                    }
                });
        let mut rules = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let rooms = Regex::new(&rule.rooms)
                .map_err(|e| {
                    errors.push(problem(
                        format!("rules[{i}].rooms"),
                        format!("invalid regex: {e}"),
                    ));
                })
                .ok();
            if rule.dialects.is_empty() {
                errors.push(problem(
                    format!("rules[{i}].dialects"),
                    "must name at least one dialect (to close rooms, use room_pattern)",
                ));
            }
            if let Some(rooms) = rooms {
                rules.push(DialectRule {
                    rooms,
                    dialects: rule.dialects.clone(),
                });
            }
        }
        let token = config
            .token
            .as_ref()
            .and_then(|t| token_check(t, &mut errors));
        let rate = rate_limit(config, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                max_peers: config.max_peers,
                room_pattern,
                rules,
                token,
                rate,
                refresher: Mutex::new(None),
            })
        } else {
            Err(errors)
        }
    }

    /// Checks an entry into `room` (a join in any dialect, or Ant `joinRoom`) with `token`.
    fn check_join(
        &self,
        cx: &EventContext<'_>,
        room: &str,
        token: Option<&str>,
        now: Instant,
    ) -> Option<Refusal> {
        let me = cx.from();
        if let Some(rate) = &self.rate
            && let Some(refusal) = rate.take(room, now)
        {
            return Some(refusal);
        }
        if let Some((pattern, re)) = &self.room_pattern
            && !re.is_match(room)
        {
            return Some(Refusal::new(
                ErrorCode::InvalidStreamName,
                format!("room name `{room}` is not allowed here (it must match `{pattern}`)"),
            ));
        }
        if let Some(rule) = self.rules.iter().find(|r| r.rooms.is_match(room))
            && !rule.dialects.contains(&me.dialect)
        {
            let allowed: Vec<_> = rule.dialects.iter().map(|d| d.as_str()).collect();
            return Some(Refusal::new(
                ErrorCode::Refused,
                format!(
                    "room `{room}` admits only {} peers, not {}",
                    allowed.join(", "),
                    me.dialect
                ),
            ));
        }
        if let Some(check) = &self.token
            && let Err(e) = check_token(check, token, room)
        {
            return Some(Refusal::new(ErrorCode::Unauthorized, e.to_string()));
        }
        if let Some(max) = self.max_peers
            && !cx.room.contains(me.session)
            && cx.room.members.len() >= max
        {
            return Some(Refusal::new(
                ErrorCode::RoomFull,
                format!("room `{room}` is full ({max} peers)"),
            ));
        }
        None
    }
}

fn token_check(t: &TokenConfig, errors: &mut Vec<SettingsError>) -> Option<TokenCheck> {
    let rules = ClaimRules {
        leeway_secs: t.jwt_leeway_secs,
        audience: t.jwt_audience.clone(),
        issuer: t.jwt_issuer.clone(),
    };
    let set = [
        t.secret.is_some(),
        t.jwt_hs256_secret.is_some(),
        t.jwt_public_key_file.is_some(),
        t.jwks_url.is_some(),
    ];
    match set.iter().filter(|s| **s).count() {
        0 => {
            errors.push(problem(
                "token",
                "needs `secret` (a shared secret), `jwt_hs256_secret` (an HMAC JWT key), `jwt_public_key_file` (an RS256/ES256 public key) or `jwks_url`",
            ));
            return None;
        }
        1 => {}
        _ => {
            errors.push(problem(
                "token",
                "set one of `secret`, `jwt_hs256_secret`, `jwt_public_key_file`, `jwks_url`",
            ));
            return None;
        }
    }
    if let Some(s) = &t.secret {
        if s.is_empty() {
            errors.push(problem("token.secret", "must not be empty"));
            return None;
        }
        return Some(TokenCheck::Secret(s.clone()));
    }
    if let Some(k) = &t.jwt_hs256_secret {
        if k.len() < MIN_JWT_SECRET_BYTES {
            errors.push(problem(
                "token.jwt_hs256_secret",
                format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes (RFC 7518 3.2), got {}",
                    k.len()
                ),
            ));
            return None;
        }
        return match JwtVerifier::hmac(k.as_bytes(), &rules) {
            Ok(v) => Some(TokenCheck::Jwt(Box::new(v))),
            Err(e) => {
                errors.push(problem("token.jwt_hs256_secret", e));
                None
            }
        };
    }
    if let Some(url) = &t.jwks_url {
        if t.jwks_refresh_secs == 0 {
            errors.push(problem("token.jwks_refresh_secs", "must be at least 1"));
            return None;
        }
        let refresh = std::time::Duration::from_secs(t.jwks_refresh_secs);
        return match Jwks::new(url, refresh, t.jwks_ca_file.as_deref()) {
            Ok(jwks) => Some(TokenCheck::Jwt(Box::new(JwtVerifier::jwks(
                Arc::new(jwks),
                &rules,
            )))),
            Err(e) => {
                errors.push(problem(format!("token.{}", e.key()), e.to_string()));
                None
            }
        };
    }
    let path = t.jwt_public_key_file.as_ref()?;
    let verifier = std::fs::read(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|pem| JwtVerifier::public_key_pem(&pem, &rules));
    match verifier {
        Ok(v) => Some(TokenCheck::Jwt(Box::new(v))),
        Err(e) => {
            errors.push(problem("token.jwt_public_key_file", e));
            None
        }
    }
}

fn rate_limit(config: &RoomPolicyConfig, errors: &mut Vec<SettingsError>) -> Option<RateLimit> {
    let Some(rate) = config.join_rate_per_sec else {
        if config.join_burst.is_some() {
            errors.push(problem("join_burst", "needs join_rate_per_sec"));
        }
        if config.per_room {
            errors.push(problem("per_room", "needs join_rate_per_sec"));
        }
        return None;
    };
    if !(rate.is_finite() && rate > 0.0) {
        errors.push(problem(
            "join_rate_per_sec",
            format!("must be a positive number, got {rate}"),
        ));
        return None;
    }
    if config.join_burst == Some(0) {
        errors.push(problem("join_burst", "must be at least 1"));
        return None;
    }
    // Truncation is intended: the default burst is the rate rounded up, and it is at least 1.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let burst = config
        .join_burst
        .unwrap_or_else(|| rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32);
    Some(RateLimit {
        rate_per_sec: rate,
        burst,
        per_room: config.per_room,
        buckets: Mutex::new(Buckets {
            global: TokenBucket::full(burst),
            rooms: HashMap::new(),
        }),
    })
}

impl RateLimit {
    fn take(&self, room: &str, now: Instant) -> Option<Refusal> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (rate, burst) = (self.rate_per_sec, self.burst);
        let admitted = if self.per_room {
            if buckets.rooms.len() >= MAX_IDLE_BUCKETS && !buckets.rooms.contains_key(room) {
                buckets.rooms.retain(|_, b| !b.is_full(rate, burst, now));
            }
            buckets
                .rooms
                .entry(room.to_owned())
                .or_insert_with(|| TokenBucket::full(burst))
                .take(rate, burst, now)
        } else {
            buckets.global.take(rate, burst, now)
        };
        if admitted {
            return None;
        }
        let scope = if self.per_room {
            format!("room `{room}`")
        } else {
            "this gateway".to_owned()
        };
        Some(Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "too many joins to {scope}: at most {rate} per second (burst {burst}); try again shortly"
            ),
        ))
    }
}

fn check_token(check: &TokenCheck, token: Option<&str>, room: &str) -> Result<(), TokenError> {
    let token = token.ok_or(TokenError::Missing)?;
    match check {
        TokenCheck::Secret(secret) => check_shared_secret(token, secret),
        TokenCheck::Jwt(verifier) => verifier.verify_join(token, room),
    }
}

impl Plugin for RoomPolicy {
    fn name(&self) -> &str {
        "room-policy"
    }

    /// Starts fetching the JWKS document, when the token keys come from one (not in
    /// `check-config`, which only builds the plugin).
    fn start(&self, _outbox: switchboard_plugin_api::Outbox) -> Result<(), PluginError> {
        let Some(TokenCheck::Jwt(verifier)) = &self.token else {
            return Ok(());
        };
        let Some(jwks) = verifier.key_set() else {
            return Ok(());
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| PluginError("a JWKS URL needs the gateway's runtime".into()))?;
        let task = runtime.spawn(Arc::clone(jwks).refresh_forever());
        *self
            .refresher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
        Ok(())
    }

    fn shutdown(&self) {
        if let Some(task) = self
            .refresher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    fn on_event(&self, cx: &EventContext<'_>, _out: &mut Decision) -> Result<Verdict, PluginError> {
        // Every way into a room: a join in any dialect, and Ant Media's conference `joinRoom`.
        let (room, token) = match cx.event() {
            Event::Join(join) => (join.room.as_str(), join.token.as_deref()),
            Event::Conference(request) => match &request.command {
                ConferenceCommand::JoinRoom(j) => (j.room.as_str(), j.token.as_deref()),
                _ => return Ok(Verdict::Continue),
            },
            _ => return Ok(Verdict::Continue),
        };
        Ok(match self.check_join(cx, room, token, Instant::now()) {
            Some(refusal) => Verdict::Refuse(refusal),
            None => Verdict::Continue,
        })
    }
}

#[cfg(test)]
mod tests;
