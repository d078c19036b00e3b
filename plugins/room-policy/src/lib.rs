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
//! | token | `token = { secret }` or `token = { jwt_hs256_secret }` | `Unauthorized` | `unauthorized_access` | 4403 |
//! | room size | `max_peers` | `RoomFull` | `NoSpaceForNewPeer` | 4409 |
//!
//! Every join attempt takes from the rate bucket, including attempts later refused for another
//! reason, so the limit also slows down token guessing. A repeated join by a peer already in the
//! room is not counted against `max_peers`.
//!
//! Tokens arrive as `Join.token`: Ant Media's `token` field of `join`, the socket.io handshake
//! query `?token=`, the raw URL's `?token=`. A shared secret is compared in constant time. A JWT
//! must be HS256 (`alg` in its header), carry a valid signature, an `exp` (Unix seconds) in the
//! future, and, when it has a `room` or `streamId` claim (Ant Media's name), name the joined room.
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
//! - `jwt.rs`: HS256 JWT and shared-secret checks (pure functions of the token and the time).
//! - `rate.rs`: the token bucket (a pure function of `Instant`s).
//! - `tests.rs`: unit tests.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use regex_lite::Regex;
use serde::Deserialize;
use switchboard_plugin_api::protocol::{DialectKind, ErrorCode, Event, Join};
use switchboard_plugin_api::{
    Decision, EventContext, Plugin, PluginError, PluginFactory, Refusal, SettingsError, Verdict,
    parse_settings,
};

mod jwt;
mod rate;

pub use jwt::{TokenError, check_jwt_hs256, check_shared_secret, sign_hs256, verify_hs256};
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

/// The `token` table: exactly one of its keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A shared secret the join's token must equal (compared in constant time).
    #[serde(default)]
    pub secret: Option<String>,
    /// The HMAC key of HS256 JWTs (at least 32 bytes, per RFC 7518 section 3.2).
    #[serde(default)]
    pub jwt_hs256_secret: Option<String>,
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
    JwtHs256(Vec<u8>),
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
            })
        } else {
            Err(errors)
        }
    }

    fn check_join(&self, cx: &EventContext<'_>, join: &Join, now: Instant) -> Option<Refusal> {
        let room = join.room.as_str();
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
            && let Err(e) = check_token(check, join, unix_now_secs())
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
    match (&t.secret, &t.jwt_hs256_secret) {
        (Some(_), Some(_)) => {
            errors.push(problem(
                "token",
                "set either `secret` or `jwt_hs256_secret`, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(problem(
                "token",
                "needs `secret` (a shared secret) or `jwt_hs256_secret` (an HS256 JWT key)",
            ));
            None
        }
        (Some(s), None) if s.is_empty() => {
            errors.push(problem("token.secret", "must not be empty"));
            None
        }
        (Some(s), None) => Some(TokenCheck::Secret(s.clone())),
        (None, Some(k)) if k.len() < MIN_JWT_SECRET_BYTES => {
            errors.push(problem(
                "token.jwt_hs256_secret",
                format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes (RFC 7518 3.2), got {}",
                    k.len()
                ),
            ));
            None
        }
        (None, Some(k)) => Some(TokenCheck::JwtHs256(k.as_bytes().to_vec())),
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

fn check_token(check: &TokenCheck, join: &Join, now_secs: i64) -> Result<(), TokenError> {
    let token = join.token.as_deref().ok_or(TokenError::Missing)?;
    match check {
        TokenCheck::Secret(secret) => check_shared_secret(token, secret),
        TokenCheck::JwtHs256(key) => check_jwt_hs256(token, key, &join.room, now_secs),
    }
}

fn unix_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Plugin for RoomPolicy {
    fn name(&self) -> &str {
        "room-policy"
    }

    fn on_event(&self, cx: &EventContext<'_>, _out: &mut Decision) -> Result<Verdict, PluginError> {
        let Event::Join(join) = cx.event() else {
            return Ok(Verdict::Continue);
        };
        Ok(match self.check_join(cx, join, Instant::now()) {
            Some(refusal) => Verdict::Refuse(refusal),
            None => Verdict::Continue,
        })
    }
}

#[cfg(test)]
mod tests;
