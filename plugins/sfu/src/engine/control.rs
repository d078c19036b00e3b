//! The media task's controls that are not forwarding: track toggles, the data-channel relay,
//! and the `/metrics` gauges' snapshot.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind};
use switchboard_plugin_api::event::conference::MediaDirection;

use super::Engine;
use crate::conn::{TrackState, kind_index};
use crate::metrics::{self, COUNTERS};
use crate::registry::StreamKey;

impl Engine {
    /// A player stops or resumes receiving some tracks; a publisher stops or resumes the
    /// forwarding of its own tracks of those kinds. Resumed video gets a keyframe request.
    pub(super) fn toggle(
        &mut self,
        key: &StreamKey,
        track_id: &str,
        kinds: &[MediaKind],
        enabled: bool,
    ) {
        let Some(conn) = self.conns.iter_mut().find(|c| c.key == *key) else {
            return;
        };
        let resumed = match conn.direction {
            MediaDirection::Play => conn.pause(track_id, kinds, !enabled),
            MediaDirection::Publish => {
                conn.muted.retain(|k| !kinds.contains(k));
                if !enabled {
                    conn.muted.extend_from_slice(kinds);
                }
                // Players start a new segment of a kind when its forwarding resumes.
                for kind in kinds {
                    if let Some(epoch) = conn.epochs.get_mut(kind_index(*kind)) {
                        *epoch = epoch.wrapping_add(1);
                    }
                }
                conn.tracks_in
                    .iter()
                    .filter(|t| enabled && t.kind == MediaKind::Video && kinds.contains(&t.kind))
                    .map(|t| (conn.id, t.mid))
                    .collect()
            }
        };
        let now = Instant::now();
        for (publisher, mid) in resumed {
            if let Some(p) = self.conns.iter_mut().find(|c| c.id == publisher) {
                p.request_keyframe(mid, KeyframeRequestKind::Pli, now);
            }
        }
    }

    /// A message on publisher `from`'s data channel, written to every player that receives
    /// that publisher.
    pub(super) fn relay_data(&mut self, from: u64, binary: bool, data: &[u8]) {
        // Ant relays a publisher's data channel to the players of its stream: the SDK
        // reports each message as `data_received` with the play stream's id.
        let Some(i) = self.conns.iter().position(|c| c.id == from) else {
            return;
        };
        let players: Vec<usize> = (0..self.conns.len())
            .filter(|j| {
                let (Some(p), Some(c)) = (self.conns.get(i), self.conns.get(*j)) else {
                    return false;
                };
                c.plays(p)
            })
            .collect();
        let mut written = 0;
        for j in players {
            if self
                .conns
                .get_mut(j)
                .is_some_and(|c| c.send_data(binary, data))
            {
                written += 1;
            }
        }
        COUNTERS.add_data_messages(written);
    }

    /// Refreshes the gauges, at most every [`metrics::SNAPSHOT_INTERVAL`] (a walk over every
    /// connection, kept off the per-packet path).
    pub(super) fn snapshot(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.snapshot_at) < metrics::SNAPSHOT_INTERVAL {
            return;
        }
        self.snapshot_at = now;
        let (mut publishers, mut players, mut tracks_in, mut tracks_out) = (0, 0, 0, 0);
        let mut rooms: HashMap<&str, u64> = HashMap::new();
        for c in &self.conns {
            match c.direction {
                MediaDirection::Publish => publishers += 1,
                MediaDirection::Play => players += 1,
            }
            tracks_in += c.tracks_in.len() as u64;
            tracks_out += c
                .tracks_out
                .iter()
                .filter(|t| matches!(t.state, TrackState::Open(_)))
                .count() as u64;
            *rooms.entry(c.room.as_str()).or_default() += 1;
        }
        let mut buckets = [0u64; metrics::ROOM_BUCKETS.len()];
        for n in rooms.into_values() {
            let label = metrics::room_bucket(n);
            if let Some(i) = metrics::ROOM_BUCKETS.iter().position(|(_, l)| *l == label)
                && let Some(b) = buckets.get_mut(i)
            {
                *b += 1;
            }
        }
        let s = &self.stats;
        s.publishers.store(publishers, Ordering::Relaxed);
        s.players.store(players, Ordering::Relaxed);
        s.tracks_in.store(tracks_in, Ordering::Relaxed);
        s.tracks_out.store(tracks_out, Ordering::Relaxed);
        for (gauge, v) in s.room_buckets.iter().zip(buckets) {
            gauge.store(v, Ordering::Relaxed);
        }
    }
}
