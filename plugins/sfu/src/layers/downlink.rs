//! What a player's link takes: the budget the automatic simulcast layer choice
//! ([`Selector::plan`](super::Selector::plan)) fits layers into.
//!
//! Two sources, the first that has something:
//!
//! - **str0m's send-side estimate** (`Event::EgressBitrateEstimate`, TWCC kind): the delay- and
//!   loss-based estimate of what the path to the player carries, from the transport-wide
//!   congestion control feedback the player's browser sends about every packet, with probing
//!   (padding) up to the desired bitrate the engine sets. Taken while str0m says it can probe
//!   (TWCC negotiated, keys up); its last value otherwise is stale. The budget is the highest
//!   estimate of the last [`ESTIMATE_WINDOW`]: the estimate dips for a moment whenever the
//!   player's receive timestamps jitter (a busy machine), and it is held down by what is being
//!   sent (GCC caps it near 1.5 × the acknowledged bitrate), so only a probe shows, briefly,
//!   that the link takes more. A budget below the layer being sent thus means the estimate
//!   stayed below it for the whole window: sustained, not a dip.
//! - **Loss, from the player's receiver reports**, for a player that did not negotiate TWCC:
//!   GCC's loss-based rule (draft-ietf-rmcat-gcc-02 §6) on what was sent to it: more than 10 %
//!   lost, the budget becomes the sent rate × (1 − loss / 2); less than 2 %, it grows by 8 % a
//!   report; in between it holds.
//!
//! Neither known (no feedback yet, or a player that sends neither): no budget, and the choice
//! is the best flowing layer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::media::Mid;

/// The estimates a budget is the highest of.
pub const ESTIMATE_WINDOW: Duration = Duration::from_secs(2);

/// How often a player held below the best layers has its link probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Estimates kept within the window (str0m sends a few a second; a burst beyond this keeps the
/// newest).
const MAX_ESTIMATES: usize = 64;

/// More lost than this (a fraction), the loss-based budget steps down.
const LOSS_HIGH: f32 = 0.10;

/// Less lost than this, the loss-based budget grows.
const LOSS_LOW: f32 = 0.02;

/// Growth of the loss-based budget per report below [`LOSS_LOW`].
const LOSS_GROWTH: f64 = 1.08;

/// Highest loss-based budget (bits per second): growth stops somewhere.
const LOSS_BUDGET_MAX: u64 = 100_000_000;

/// Sections whose sent rate is kept (a player's sections are bounded by its publishers').
const MAX_SECTIONS: usize = 64;

/// A player's link, as far as layer choice needs it.
#[derive(Debug, Clone, Default)]
pub struct Downlink {
    /// str0m's TWCC estimates (when, bits per second) of the last [`ESTIMATE_WINDOW`], and the
    /// one in force when it began; empty while it cannot probe.
    twcc: VecDeque<(Instant, u64)>,
    /// The loss-based budget (bits per second), once a receiver report said something.
    by_loss: Option<u64>,
    /// What was sent on each section in the last stats interval (bits per second).
    sent: Vec<(Mid, u64)>,
    /// When str0m was last made to probe ([`Downlink::should_probe`]).
    probed_at: Option<Instant>,
}

impl Downlink {
    /// str0m's estimate at `now`: `bps`, and whether it can probe (else the value is its last
    /// one, and the estimates are forgotten).
    pub fn on_estimate(&mut self, bps: u64, can_probe: bool, now: Instant) {
        if !can_probe {
            self.twcc.clear();
            return;
        }
        if self.twcc.len() >= MAX_ESTIMATES {
            self.twcc.pop_front();
        }
        self.twcc.push_back((now, bps));
    }

    /// One section's egress statistics: what was sent on it (bits per second over the last
    /// interval) and the fraction lost its receiver reports averaged, if any came.
    pub fn on_report(&mut self, mid: Mid, sent_bps: u64, loss: Option<f32>) {
        if let Some((_, rate)) = self.sent.iter_mut().find(|(m, _)| *m == mid) {
            *rate = sent_bps;
        } else if self.sent.len() < MAX_SECTIONS {
            self.sent.push((mid, sent_bps));
        }
        let Some(loss) = loss.filter(|l| l.is_finite()) else {
            return;
        };
        let total = self.total_sent();
        if loss > LOSS_HIGH {
            let kept = 1.0 - f64::from(loss.min(1.0)) / 2.0;
            self.by_loss = Some((total as f64 * kept).round() as u64);
        } else if loss < LOSS_LOW
            && let Some(budget) = self.by_loss
        {
            let grown = (budget as f64 * LOSS_GROWTH).round() as u64;
            self.by_loss = Some(grown.min(LOSS_BUDGET_MAX));
        }
    }

    /// What the link takes at `now` (bits per second), if anything says: the highest TWCC
    /// estimate in force during the last [`ESTIMATE_WINDOW`], else the loss-based budget.
    pub fn budget(&mut self, now: Instant) -> Option<u64> {
        let start = now.checked_sub(ESTIMATE_WINDOW).unwrap_or(now);
        // Older estimates go, but the last one before the window was in force at its start.
        while self.twcc.get(1).is_some_and(|(at, _)| *at <= start) {
            self.twcc.pop_front();
        }
        self.twcc.iter().map(|(_, bps)| *bps).max().or(self.by_loss)
    }

    /// What was last sent on section `mid` (bits per second), 0 if unknown.
    pub fn sent(&self, mid: Mid) -> u64 {
        self.sent
            .iter()
            .find(|(m, _)| *m == mid)
            .map_or(0, |(_, rate)| *rate)
    }

    /// What was last sent on every section (bits per second).
    fn total_sent(&self) -> u64 {
        self.sent
            .iter()
            .fold(0u64, |sum, (_, rate)| sum.saturating_add(*rate))
    }

    /// Whether to make str0m probe the link now: the player is sent less than the best layers
    /// (`held_down`), nothing has said lately that the link takes more, and the last probe
    /// asked for is [`PROBE_INTERVAL`] old. str0m's probe controller probes on its own only
    /// in the application-limited region (sending under 65 % of the estimate) or after 15 s of
    /// an unchanging estimate, and GCC holds the estimate near 1.5 × what is sent: a player
    /// on the low layer sends about 65 % of its estimate, and would never be probed up.
    pub fn should_probe(&mut self, held_down: bool, now: Instant) -> bool {
        if !held_down || self.twcc.is_empty() {
            return false;
        }
        if self
            .probed_at
            .is_some_and(|at| now.saturating_duration_since(at) < PROBE_INTERVAL)
        {
            return false;
        }
        self.probed_at = Some(now);
        true
    }
}

#[cfg(test)]
mod tests;
