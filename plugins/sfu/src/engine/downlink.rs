//! The automatic simulcast layer choice by each player's link, on a timer (off the per-packet
//! path): every [`PLAN_INTERVAL`], each player's budget (`layers/downlink.rs`) less what its
//! other sections (audio, video without simulcast) were sent is shared equally among its
//! simulcast video tracks, and each track's [`Selector::plan`](crate::layers::Selector::plan)
//! fits a layer into its share. The player's desired bitrate, which str0m's estimator probes
//! towards with padding, is what the best layer of every such track would take, with the
//! headroom an up-switch needs, so an estimate held down by the low layer can rise again.

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::media::MediaKind;
use switchboard_plugin_api::event::conference::MediaDirection;

use super::Engine;
use crate::conn::TrackState;
use crate::layers::{Layers, UP_HEADROOM};

/// How often layers are planned (the estimate moves about this often; a switch waits for a
/// keyframe anyway).
pub(super) const PLAN_INTERVAL: Duration = Duration::from_millis(500);

/// The lowest desired bitrate set for a player of simulcast video (what str0m probes towards
/// before any layer's bitrate is measured).
const MIN_DESIRED_BPS: u64 = 300_000;

impl Engine {
    /// Plans every player's simulcast layers for its link, at most every [`PLAN_INTERVAL`].
    pub(super) fn plan_layers(&mut self, now: Instant) {
        if now.saturating_duration_since(self.plan_at) < PLAN_INTERVAL {
            return;
        }
        self.plan_at = now;
        for i in 0..self.conns.len() {
            let Some((tracks, other)) = self.simulcast_of(i) else {
                continue;
            };
            let Some(player) = self.conns.get_mut(i) else {
                break;
            };
            let n = tracks.len() as u64;
            let budget = player.downlink.budget(now);
            let share = budget.map(|b| b.saturating_sub(other) / n.max(1));
            let mut desired = other;
            let mut held_down = false;
            for (j, layers) in &tracks {
                let best = layers.best_bitrate(now) as f64 * UP_HEADROOM;
                desired = desired.saturating_add(best as u64);
                if let Some(t) = player.tracks_out.get_mut(*j) {
                    let before = t.select.auto();
                    t.select.plan(layers, share, now);
                    let best = layers.best_within(None, now);
                    held_down |= t.select.auto().is_some() && t.select.auto() != best;
                    if t.select.auto() != before {
                        tracing::debug!(
                            stream = %player.key.stream_id,
                            player = player.id,
                            publisher = %t.stream,
                            share,
                            layers = ?layers.bitrates(now),
                            from = ?before,
                            to = ?t.select.auto(),
                            "Simulcast layer planned for the player's link."
                        );
                    }
                }
            }
            let probe = player.downlink.should_probe(held_down, now);
            let Some(rtc) = player.rtc.as_mut() else {
                continue;
            };
            let mut bwe = rtc.bwe();
            if probe && let Some(budget) = budget {
                // str0m has no "probe now": a reset at the current budget starts its initial
                // probes (3 and 6 times the estimate, at most twice the desired bitrate), whose
                // result is what the link takes, whichever way that goes.
                tracing::debug!(stream = %player.key.stream_id, player = player.id, budget, "Probing a player's link for a higher layer.");
                bwe.reset(Bitrate::bps(budget));
            }
            bwe.set_desired_bitrate(Bitrate::bps(desired.max(MIN_DESIRED_BPS)));
        }
    }

    /// Player `i`'s open simulcast video tracks (their index and a copy of the source's
    /// layers: a few entries, twice a second) and the bitrate last sent on its other open
    /// sections; `None` for a publisher or a player without simulcast video.
    fn simulcast_of(&self, i: usize) -> Option<(Vec<(usize, Layers)>, u64)> {
        let player = self.conns.get(i)?;
        if player.direction != MediaDirection::Play {
            return None;
        }
        let mut tracks = Vec::new();
        let mut other = 0u64;
        for (j, t) in player.tracks_out.iter().enumerate() {
            let TrackState::Open(mid) = t.state else {
                continue;
            };
            if t.paused {
                continue;
            }
            let layers = (t.kind == MediaKind::Video)
                .then(|| self.conns.iter().find(|c| c.id == t.source.0))
                .flatten()
                .and_then(|p| p.tracks_in.iter().find(|x| x.mid == t.source.1))
                .map(|x| &x.layers)
                .filter(|l| l.is_simulcast());
            match layers {
                Some(l) => tracks.push((j, l.clone())),
                None => other = other.saturating_add(player.downlink.sent(mid)),
            }
        }
        (!tracks.is_empty()).then_some((tracks, other))
    }
}
