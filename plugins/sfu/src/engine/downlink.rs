//! The automatic simulcast layer choice by each player's link, on a timer (off the per-packet
//! path): every [`PLAN_INTERVAL`], each player's budget (`layers/downlink.rs`) less what its
//! other sections (audio, video without simulcast) were sent is shared equally among its
//! simulcast video tracks, and each track's [`Selector::plan`](crate::layers::Selector::plan)
//! fits a layer into its share. The player's desired bitrate, which str0m's estimator probes
//! towards, is what the best layer of every such track and the sources of its other tracks
//! would take, with the headroom an up-switch needs, so an estimate held down by the low layer
//! (or by str0m's pacing, which follows the estimate) can rise again.

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

/// What one player receives, for its plan.
struct Receives {
    /// Its open simulcast video tracks: their index and a copy of the source's layers (a few
    /// entries, twice a second).
    simulcast: Vec<(usize, Layers)>,
    /// What its other open sections were last sent (bits per second).
    other_sent: u64,
    /// What their sources last received (bits per second): what it would like to be sent.
    other_wanted: u64,
}

impl Engine {
    /// Plans every player's simulcast layers for its link, and tells each player's estimator
    /// what it would like to send, at most every [`PLAN_INTERVAL`].
    pub(super) fn plan_layers(&mut self, now: Instant) {
        if now.saturating_duration_since(self.plan_at) < PLAN_INTERVAL {
            return;
        }
        self.plan_at = now;
        for i in 0..self.conns.len() {
            let Some(receives) = self.receives(i) else {
                continue;
            };
            let Some(player) = self.conns.get_mut(i) else {
                break;
            };
            let tracks = &receives.simulcast;
            let n = tracks.len() as u64;
            let budget = player.downlink.budget(now);
            let share = budget.map(|b| b.saturating_sub(receives.other_sent) / n.max(1));
            let mut desired = receives.other_wanted as f64 * UP_HEADROOM;
            let mut held_down = false;
            for (j, layers) in tracks {
                desired += layers.best_bitrate(now) as f64 * UP_HEADROOM;
                let Some(t) = player.tracks_out.get_mut(*j) else {
                    continue;
                };
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
            // Also for a player without simulcast: str0m paces what it sends a player at its
            // estimate, which it probes up only towards a desired bitrate.
            // A minimum of zero: no padding to sustain a rate, only probing towards `desired`.
            bwe.set_bitrate(
                Bitrate::bps(0),
                Bitrate::bps((desired as u64).max(MIN_DESIRED_BPS)),
            );
        }
    }

    /// What player `i` receives; `None` for a publisher.
    fn receives(&self, i: usize) -> Option<Receives> {
        let player = self.conns.get(i)?;
        if player.direction != MediaDirection::Play {
            return None;
        }
        let mut receives = Receives {
            simulcast: Vec::new(),
            other_sent: 0,
            other_wanted: 0,
        };
        for (j, t) in player.tracks_out.iter().enumerate() {
            let TrackState::Open(mid) = t.state else {
                continue;
            };
            if t.paused {
                continue;
            }
            let source = self
                .conns
                .iter()
                .find(|c| c.id == t.source.0)
                .and_then(|p| p.tracks_in.iter().find(|x| x.mid == t.source.1));
            let Some(source) = source else {
                continue;
            };
            if t.kind == MediaKind::Video && source.layers.is_simulcast() {
                receives.simulcast.push((j, source.layers.clone()));
            } else {
                receives.other_sent = receives
                    .other_sent
                    .saturating_add(player.downlink.sent(mid));
                receives.other_wanted = receives.other_wanted.saturating_add(source.received_bps);
            }
        }
        Some(receives)
    }
}
