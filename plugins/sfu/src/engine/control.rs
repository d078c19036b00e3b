//! The media task's controls that are not forwarding: track toggles (and the data-channel
//! events that announce a publisher's), `forceStreamQuality`, the data-channel relay, and the
//! `/metrics` gauges' snapshot.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use switchboard_plugin_api::event::ErrorCode;
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
                let (id, stream) = (conn.id, conn.key.stream_id.clone());
                let resumed = conn
                    .tracks_in
                    .iter()
                    .filter(|t| enabled && t.kind == MediaKind::Video && kinds.contains(&t.kind))
                    .map(|t| (conn.id, t.mid))
                    .collect();
                // The players are told, as Ant's conference pages tell each other when a
                // camera or microphone is turned off (their `sendNotificationEvent`).
                for kind in kinds {
                    let notice = toggle_notice(&stream, *kind, enabled);
                    self.relay_data(id, false, notice.as_bytes());
                }
                resumed
            }
        };
        let now = Instant::now();
        for (publisher, mid) in resumed {
            if let Some(p) = self.conns.iter_mut().find(|c| c.id == publisher) {
                p.request_keyframe(mid, KeyframeRequestKind::Pli, now);
            }
        }
    }

    /// `forceStreamQuality`: pins the player `key`'s video of `track_id` (every publisher's
    /// when it is the play stream) to the simulcast layer of frame height `height`, or lets
    /// the gateway choose again (0). A height that no layer of those tracks has is refused
    /// with the heights there are; a layer that stops flowing falls back to the best one.
    pub(super) fn force_quality(&mut self, key: &StreamKey, track_id: &str, height: u32) {
        let Some(i) = self.conns.iter().position(|c| c.key == *key) else {
            return;
        };
        let Some(player) = self.conns.get(i) else {
            return;
        };
        let all = track_id == player.room;
        let sources: Vec<(u64, Mid)> = player
            .tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Video && (all || t.stream == track_id))
            .map(|t| t.source)
            .collect();
        if sources.is_empty() {
            let message = format!("`{}` sends no video of `{track_id}`", key.stream_id);
            self.error(key, ErrorCode::NoStream, message);
            return;
        }
        if height != 0 {
            let mut heights: Vec<u32> = sources
                .iter()
                .filter_map(|(p, mid)| {
                    let publisher = self.conns.iter().find(|c| c.id == *p)?;
                    let track = publisher.tracks_in.iter().find(|t| t.mid == *mid)?;
                    Some(track.layers.heights())
                })
                .flatten()
                .collect();
            heights.sort_unstable_by(|a, b| b.cmp(a));
            heights.dedup();
            if !heights.contains(&height) {
                let known: Vec<String> = heights.iter().map(u32::to_string).collect();
                let message = format!(
                    "no simulcast layer of `{track_id}` has height {height} (layers: {}); 0 is automatic",
                    if known.is_empty() {
                        "none known".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
                self.error(key, ErrorCode::InvalidField, message);
                return;
            }
        }
        if let Some(player) = self.conns.get_mut(i) {
            if all {
                player.forced_height = height;
            }
            for t in &mut player.tracks_out {
                if sources.contains(&t.source) {
                    t.select.forced = height;
                }
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

/// The data-channel event a publisher's own toggle of `kind` is announced with to its players:
/// the JSON that Ant's conference pages send each other (`{streamId, eventType}` with
/// `CAM_TURNED_OFF`, `CAM_TURNED_ON`, `MIC_MUTED`, `MIC_UNMUTED`) and read in `data_received`.
fn toggle_notice(stream: &str, kind: MediaKind, enabled: bool) -> String {
    let event = match (kind, enabled) {
        (MediaKind::Video, false) => "CAM_TURNED_OFF",
        (MediaKind::Video, true) => "CAM_TURNED_ON",
        (MediaKind::Audio, false) => "MIC_MUTED",
        (MediaKind::Audio, true) => "MIC_UNMUTED",
    };
    // Stream ids are `[A-Za-z0-9._-]` (the codec checks them), so nothing needs escaping.
    format!(r#"{{"streamId":"{stream}","eventType":"{event}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggle_notices_are_the_events_of_ants_conference_pages() {
        let v: Vec<String> = [
            (MediaKind::Video, false),
            (MediaKind::Video, true),
            (MediaKind::Audio, false),
            (MediaKind::Audio, true),
        ]
        .into_iter()
        .map(|(k, on)| toggle_notice("s-1", k, on))
        .collect();
        assert_eq!(
            v,
            [
                r#"{"streamId":"s-1","eventType":"CAM_TURNED_OFF"}"#,
                r#"{"streamId":"s-1","eventType":"CAM_TURNED_ON"}"#,
                r#"{"streamId":"s-1","eventType":"MIC_MUTED"}"#,
                r#"{"streamId":"s-1","eventType":"MIC_UNMUTED"}"#,
            ]
        );
    }
}
