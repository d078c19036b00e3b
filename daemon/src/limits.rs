//! Connection and message limits (`[limits]`): the per-connection message rate (a token
//! bucket), the per-IP and global connection caps, and the allowed-origins check. The checks
//! here are pure or behind one short mutex; the listeners turn a refusal into the peer's terms
//! (an HTTP status before the upgrade, a socket.io `connect_error`, an error frame in the
//! dialect) and [`crate::telemetry`] counts it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

// === message rate ===

/// How long refusals are counted for [`LimitsConfig::rate_limit_close_after`].
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

/// What the rate limiter says about one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the limit: handle the message.
    Allow,
    /// Over the limit: drop the message and tell the peer.
    Refuse,
    /// Over the limit too often within [`ABUSE_WINDOW`]: close the connection.
    Close,
}

/// A token bucket per connection, plus a count of recent refusals.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    close_after: usize,
    refused: usize,
    window_start: Instant,
}

impl RateLimiter {
    /// A full bucket for a new connection.
    pub fn new(limits: &LimitsConfig, now: Instant) -> Self {
        let burst = limits.message_burst.max(1) as f64;
        Self {
            per_sec: limits.messages_per_sec,
            burst,
            tokens: burst,
            last: now,
            close_after: limits.rate_limit_close_after.max(1),
            refused: 0,
            window_start: now,
        }
    }

    /// Takes a token for one message received at `now`.
    pub fn check(&mut self, now: Instant) -> RateVerdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return RateVerdict::Allow;
        }
        if now.saturating_duration_since(self.window_start) > ABUSE_WINDOW {
            self.window_start = now;
            self.refused = 0;
        }
        self.refused += 1;
        if self.refused >= self.close_after {
            RateVerdict::Close
        } else {
            RateVerdict::Refuse
        }
    }
}

// === connection caps ===

/// Why a new connection was refused before it became a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// `max_connections_per_ip` reached (HTTP 429).
    TooManyFromIp,
    /// `max_sessions` reached (HTTP 503).
    ServerFull,
    /// The gateway is draining (HTTP 503).
    Draining,
    /// The page's `Origin` is not in `allowed_origins` (HTTP 403).
    OriginNotAllowed,
}

impl ConnectRefusal {
    /// The metric `reason` label and the code peers see.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectRefusal::TooManyFromIp => "too_many_connections",
            ConnectRefusal::ServerFull => "server_full",
            ConnectRefusal::Draining => "draining",
            ConnectRefusal::OriginNotAllowed => "origin_not_allowed",
        }
    }

    /// The HTTP status that refuses the upgrade.
    pub fn status(self) -> u16 {
        match self {
            ConnectRefusal::TooManyFromIp => 429,
            ConnectRefusal::ServerFull | ConnectRefusal::Draining => 503,
            ConnectRefusal::OriginNotAllowed => 403,
        }
    }

    /// A sentence for the peer.
    pub fn message(self) -> &'static str {
        match self {
            ConnectRefusal::TooManyFromIp => "too many connections from your address",
            ConnectRefusal::ServerFull => "the gateway is at its session limit; try again later",
            ConnectRefusal::Draining => "the gateway is shutting down; connect to another node",
            ConnectRefusal::OriginNotAllowed => "this page's origin may not connect here",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Open connections per IP address and in all; a [`Permit`] holds one place.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    counts: Mutex<Counts>,
}

/// One open connection's place; released when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// Takes a place for a connection from `ip`, or says which cap refuses it.
    pub fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &LimitsConfig,
    ) -> Result<Permit, ConnectRefusal> {
        let ip = canonical(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= limits.max_sessions {
            return Err(ConnectRefusal::ServerFull);
        }
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= limits.max_connections_per_ip {
            return Err(ConnectRefusal::TooManyFromIp);
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Permit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Open connections in all.
    pub fn total(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

/// An IPv4 peer reached over an IPv6 socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

// === bounded logging ===

/// Log lines allowed per second by one [`LogBudget`].
const LOG_LINES_PER_SEC: u64 = 5;

/// A per-second allowance of log lines, so a flood of refusals is counted in full but cannot
/// fill the log.
#[derive(Debug)]
pub struct LogBudget {
    /// Seconds since the process's first use of the budget, of the current window.
    window: AtomicU64,
    in_window: AtomicU64,
    skipped: AtomicU64,
}

impl LogBudget {
    /// An unused budget.
    pub const fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `Some(lines skipped since the last one logged)` when a line may be logged now.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(process_secs())
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.in_window.store(0, Ordering::Relaxed);
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < LOG_LINES_PER_SEC {
            Some(self.skipped.swap(0, Ordering::Relaxed))
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        Self::new()
    }
}

/// Whole seconds since this process first asked.
fn process_secs() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

// === origins ===

/// Checks one `allowed_origins` entry: `scheme://host[:port]` with scheme `http` or `https`,
/// no path; the host may start with `*.` (any subdomain).
pub fn check_origin_pattern(pattern: &str) -> Result<(), String> {
    let Some((scheme, rest)) = pattern.split_once("://") else {
        return Err(format!(
            "`{pattern}` is not an origin like https://app.example.com"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{pattern}`: the scheme must be http or https"));
    }
    if rest.is_empty() || rest.contains('/') || rest.contains('?') || rest.contains('#') {
        return Err(format!(
            "`{pattern}`: an origin has a host and optional port, no path (no trailing /)"
        ));
    }
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    if host.is_empty() || host.contains('*') {
        return Err(format!(
            "`{pattern}`: `*.` is only allowed at the start of the host"
        ));
    }
    Ok(())
}

/// Whether a request with `Origin: origin` may connect. An empty list allows any origin.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let origin = origin.trim().to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.split_once("://*.") {
            Some((scheme, suffix)) => origin
                .strip_prefix(scheme)
                .and_then(|o| o.strip_prefix("://"))
                .and_then(|host| host.strip_suffix(suffix))
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => origin == pattern,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: f64, burst: usize, close_after: usize) -> LimitsConfig {
        LimitsConfig {
            messages_per_sec: rate,
            message_burst: burst,
            rate_limit_close_after: close_after,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(&limits(10.0, 3, 100), t0);
        for _ in 0..3 {
            assert_eq!(r.check(t0), RateVerdict::Allow);
        }
        assert_eq!(r.check(t0), RateVerdict::Refuse);
        // 10 per second: one token every 100 ms.
        assert_eq!(r.check(t0 + Duration::from_millis(110)), RateVerdict::Allow);
        assert_eq!(
            r.check(t0 + Duration::from_millis(120)),
            RateVerdict::Refuse
        );
        // Refilled to the burst, never above.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(r.check(later), RateVerdict::Allow);
        }
        assert_eq!(r.check(later), RateVerdict::Refuse);
    }

    #[test]
    fn sustained_abuse_closes_and_old_refusals_expire() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(&limits(1.0, 1, 3), t0);
        assert_eq!(r.check(t0), RateVerdict::Allow);
        assert_eq!(r.check(t0), RateVerdict::Refuse);
        assert_eq!(r.check(t0), RateVerdict::Refuse);
        assert_eq!(r.check(t0), RateVerdict::Close);
        let mut r = RateLimiter::new(&limits(1.0, 1, 3), t0);
        assert_eq!(r.check(t0), RateVerdict::Allow);
        assert_eq!(r.check(t0), RateVerdict::Refuse);
        assert_eq!(r.check(t0), RateVerdict::Refuse);
        // A new window: the count starts again.
        let t1 = t0 + ABUSE_WINDOW + Duration::from_millis(1);
        assert_eq!(r.check(t1), RateVerdict::Allow);
        assert_eq!(r.check(t1), RateVerdict::Refuse);
        assert_eq!(r.check(t1), RateVerdict::Refuse);
    }

    #[test]
    fn caps_per_ip_and_in_all_with_release_on_drop() {
        let limiter = Arc::new(ConnectionLimiter::default());
        let l = LimitsConfig {
            max_connections_per_ip: 2,
            max_sessions: 3,
            ..LimitsConfig::default()
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap_or(IpAddr::from([0; 4]));
        let p1 = limiter.try_acquire(a, &l);
        let p2 = limiter.try_acquire(a, &l);
        assert!(p1.is_ok() && p2.is_ok());
        assert_eq!(
            limiter.try_acquire(a, &l).err(),
            Some(ConnectRefusal::TooManyFromIp)
        );
        let p3 = limiter.try_acquire(b, &l);
        assert!(p3.is_ok());
        assert_eq!(
            limiter
                .try_acquire("10.0.0.2".parse().unwrap_or(b), &l)
                .err(),
            Some(ConnectRefusal::ServerFull)
        );
        drop(p1);
        assert_eq!(limiter.total(), 2);
        assert!(limiter.try_acquire(a, &l).is_ok());
        assert_eq!(limiter.total(), 2, "the permit was dropped at once");
    }

    #[test]
    fn log_budget_allows_a_few_lines_a_second_and_counts_the_rest() {
        let budget = LogBudget::new();
        let logged = (0..100).filter(|_| budget.admit_at(7).is_some()).count();
        assert_eq!(logged as u64, LOG_LINES_PER_SEC);
        assert_eq!(budget.admit_at(8), Some(100 - LOG_LINES_PER_SEC));
        assert_eq!(budget.admit_at(8), Some(0));
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let allowed = vec![
            "https://app.example.com".to_owned(),
            "http://localhost:8080".to_owned(),
            "https://*.corp.example".to_owned(),
        ];
        for ok in [
            "https://app.example.com",
            "HTTPS://APP.EXAMPLE.COM",
            "http://localhost:8080",
            "https://a.corp.example",
            "https://a.b.corp.example",
        ] {
            assert!(origin_allowed(&allowed, ok), "{ok}");
        }
        for bad in [
            "http://app.example.com",
            "https://app.example.com:444",
            "http://localhost:8081",
            "https://corp.example",
            "https://evilcorp.example",
            "null",
            "",
        ] {
            assert!(!origin_allowed(&allowed, bad), "{bad}");
        }
        assert!(origin_allowed(&[], "https://anything.example"));
    }

    #[test]
    fn origin_patterns_are_checked() {
        for ok in [
            "https://a.example",
            "http://localhost:5080",
            "https://*.example.com",
        ] {
            assert!(check_origin_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a.example",
            "ftp://a.example",
            "https://a.example/",
            "https://a.*.example",
            "https://",
        ] {
            assert!(check_origin_pattern(bad).is_err(), "{bad}");
        }
    }
}
