//! A token bucket: `burst` tokens, refilled at `rate` per second, one taken per admitted join.
//! Time comes in as an [`Instant`] so tests need no sleeping.

use std::time::Instant;

/// One bucket. Rate and size are passed to each call so that many buckets share one setting.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens.
    pub fn full(burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            updated: None,
        }
    }

    fn refill(&mut self, rate: f64, burst: u32, now: Instant) {
        if let Some(then) = self.updated {
            let elapsed = now.saturating_duration_since(then).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        }
        self.updated = Some(now);
    }

    /// Takes one token if there is one at `now`; returns whether it did.
    pub fn take(&mut self, rate: f64, burst: u32, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now` (so forgetting it changes nothing).
    pub fn is_full(&self, rate: f64, burst: u32, now: Instant) -> bool {
        let mut copy = *self;
        copy.refill(rate, burst, now);
        copy.tokens >= f64::from(burst)
    }
}
