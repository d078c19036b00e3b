//! The SFU's figures on the gateway's `/metrics`, in the Prometheus text format: counters of
//! what was forwarded and of the RTCP feedback (NACK, PLI, FIR) on both legs, and gauges of the
//! peer connections, tracks and room sizes.
//!
//! Counters are process-wide (they survive a config reload that rebuilds the plugin, so they
//! only ever grow). Gauges are each running media task's snapshot, taken at most every
//! [`SNAPSHOT_INTERVAL`] (never per packet), summed over the tasks alive. Room sizes are
//! counted in a fixed set of buckets, so the number of series does not grow with the rooms.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::engine::Stats;

/// How often a media task refreshes its gauges, and how often str0m reports RTP statistics.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// Upper bounds of the room-size buckets (peer connections per room); the last is open.
pub const ROOM_BUCKETS: [(u64, &str); 5] = [
    (2, "1-2"),
    (8, "3-8"),
    (32, "9-32"),
    (128, "33-128"),
    (u64::MAX, "129+"),
];

/// Which leg a counter is about.
#[derive(Debug, Clone, Copy)]
pub enum Leg {
    /// From publishers to the gateway.
    In,
    /// From the gateway to players.
    Out,
}

/// Monotonic counters, one per (family, leg).
#[derive(Debug, Default)]
pub struct Counters {
    rtp_packets: [AtomicU64; 2],
    rtp_bytes: [AtomicU64; 2],
    frames: [AtomicU64; 2],
    nacks: [AtomicU64; 2],
    plis: [AtomicU64; 2],
    firs: [AtomicU64; 2],
    keyframe_requests: AtomicU64,
    data_messages: AtomicU64,
}

/// The process-wide counters.
pub static COUNTERS: Counters = Counters {
    rtp_packets: [AtomicU64::new(0), AtomicU64::new(0)],
    rtp_bytes: [AtomicU64::new(0), AtomicU64::new(0)],
    frames: [AtomicU64::new(0), AtomicU64::new(0)],
    nacks: [AtomicU64::new(0), AtomicU64::new(0)],
    plis: [AtomicU64::new(0), AtomicU64::new(0)],
    firs: [AtomicU64::new(0), AtomicU64::new(0)],
    keyframe_requests: AtomicU64::new(0),
    data_messages: AtomicU64::new(0),
};

/// The media tasks' stats, for the gauges (dead ones are skipped and pruned).
static TASKS: Mutex<Vec<Weak<Stats>>> = Mutex::new(Vec::new());

/// RTP statistics of one media section as str0m reports them (cumulative since it opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpTotals {
    pub packets: u64,
    pub bytes: u64,
    pub nacks: u64,
    pub plis: u64,
    pub firs: u64,
}

impl Counters {
    fn idx(leg: Leg) -> usize {
        match leg {
            Leg::In => 0,
            Leg::Out => 1,
        }
    }

    /// Adds what a section's cumulative `now` has beyond `before`. `leg` In: a publisher's
    /// section (packets received, feedback sent to the publisher); Out: a player's section
    /// (packets sent, feedback received from the player).
    pub fn add_rtp(&self, leg: Leg, before: RtpTotals, now: RtpTotals) {
        let i = Self::idx(leg);
        let add = |c: &[AtomicU64; 2], a: u64, b: u64| {
            if let Some(c) = c.get(i) {
                c.fetch_add(b.saturating_sub(a), Ordering::Relaxed);
            }
        };
        add(&self.rtp_packets, before.packets, now.packets);
        add(&self.rtp_bytes, before.bytes, now.bytes);
        add(&self.nacks, before.nacks, now.nacks);
        add(&self.plis, before.plis, now.plis);
        add(&self.firs, before.firs, now.firs);
    }

    /// Frames received from publishers (`In`) or written to players (`Out`).
    pub fn add_frames(&self, leg: Leg, n: u64) {
        if let Some(c) = self.frames.get(Self::idx(leg)) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Data-channel messages written to players.
    pub fn add_data_messages(&self, n: u64) {
        self.data_messages.fetch_add(n, Ordering::Relaxed);
    }

    /// A keyframe request the gateway made of a publisher.
    pub fn keyframe_requested(&self) {
        self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Registers a media task's stats for the gauges.
pub fn register(stats: Weak<Stats>) {
    let mut tasks = TASKS.lock().unwrap_or_else(PoisonError::into_inner);
    tasks.retain(|w| w.strong_count() > 0);
    tasks.push(stats);
}

/// The room-size bucket label of a room with `n` peer connections.
pub fn room_bucket(n: u64) -> &'static str {
    ROOM_BUCKETS
        .iter()
        .find(|(max, _)| n <= *max)
        .map_or("129+", |(_, label)| label)
}

/// Appends the SFU's families to a Prometheus text exposition.
pub fn render(out: &mut String) {
    let c = &COUNTERS;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let legs =
        |out: &mut String, name: &str, help: &str, pair: &[AtomicU64; 2], labels: [&str; 2]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (v, label) in pair.iter().zip(labels) {
                let _ = writeln!(out, "{name}{{direction=\"{label}\"}} {}", load(v));
            }
        };
    let io = ["in", "out"];
    let fb = ["sent", "received"];
    legs(
        out,
        "switchboard_sfu_rtp_packets_total",
        "RTP packets the SFU received from publishers (in) and sent to players (out), retransmissions included.",
        &c.rtp_packets,
        io,
    );
    legs(
        out,
        "switchboard_sfu_rtp_bytes_total",
        "RTP bytes the SFU received from publishers (in) and sent to players (out), retransmissions included.",
        &c.rtp_bytes,
        io,
    );
    legs(
        out,
        "switchboard_sfu_frames_total",
        "Media frames received from publishers (in) and forwarded to players (out, one per player).",
        &c.frames,
        io,
    );
    legs(
        out,
        "switchboard_sfu_nacks_total",
        "RTCP NACKs sent to publishers (sent) and received from players (received).",
        &c.nacks,
        fb,
    );
    legs(
        out,
        "switchboard_sfu_plis_total",
        "RTCP PLIs sent to publishers (sent) and received from players (received).",
        &c.plis,
        fb,
    );
    legs(
        out,
        "switchboard_sfu_firs_total",
        "RTCP FIRs sent to publishers (sent) and received from players (received).",
        &c.firs,
        fb,
    );
    let _ = writeln!(
        out,
        "# HELP switchboard_sfu_keyframe_requests_total Keyframe requests the SFU made of publishers (a player started or asked, or a gap was not repaired)."
    );
    let _ = writeln!(
        out,
        "# TYPE switchboard_sfu_keyframe_requests_total counter"
    );
    let _ = writeln!(
        out,
        "switchboard_sfu_keyframe_requests_total {}",
        load(&c.keyframe_requests)
    );
    let _ = writeln!(
        out,
        "# HELP switchboard_sfu_data_messages_total Data-channel messages relayed from publishers to players (one per player)."
    );
    let _ = writeln!(out, "# TYPE switchboard_sfu_data_messages_total counter");
    let _ = writeln!(
        out,
        "switchboard_sfu_data_messages_total {}",
        load(&c.data_messages)
    );

    let tasks: Vec<_> = TASKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let sum = |f: &dyn Fn(&Stats) -> &AtomicU64| tasks.iter().map(|s| load(f(s))).sum::<u64>();
    let gauge = |out: &mut String, name: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    gauge(
        out,
        "switchboard_sfu_peer_connections",
        "Peer connections of the SFU now, publishers and players.",
        &[
            ("{direction=\"publish\"}".into(), sum(&|s| &s.publishers)),
            ("{direction=\"play\"}".into(), sum(&|s| &s.players)),
        ],
    );
    gauge(
        out,
        "switchboard_sfu_tracks",
        "Tracks now: received from publishers (in), sent to players (out).",
        &[
            ("{direction=\"in\"}".into(), sum(&|s| &s.tracks_in)),
            ("{direction=\"out\"}".into(), sum(&|s| &s.tracks_out)),
        ],
    );
    let mut rooms: HashMap<&str, u64> = HashMap::new();
    for s in &tasks {
        for ((_, label), v) in ROOM_BUCKETS.iter().zip(&s.room_buckets) {
            *rooms.entry(label).or_default() += load(v);
        }
    }
    let rows: Vec<_> = ROOM_BUCKETS
        .iter()
        .map(|(_, label)| {
            (
                format!("{{peer_connections=\"{label}\"}}"),
                rooms.get(label).copied().unwrap_or(0),
            )
        })
        .collect();
    gauge(
        out,
        "switchboard_sfu_rooms",
        "Rooms with media now, by their number of peer connections (fixed buckets).",
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_sizes_fall_in_fixed_buckets() {
        let labels: Vec<_> = [1, 2, 3, 8, 9, 32, 33, 128, 129, 100_000]
            .into_iter()
            .map(room_bucket)
            .collect();
        assert_eq!(
            labels,
            [
                "1-2", "1-2", "3-8", "3-8", "9-32", "9-32", "33-128", "33-128", "129+", "129+"
            ]
        );
    }

    #[test]
    fn counters_add_what_grew() {
        let c = Counters::default();
        let before = RtpTotals {
            packets: 10,
            bytes: 1000,
            nacks: 1,
            plis: 0,
            firs: 0,
        };
        let now = RtpTotals {
            packets: 15,
            bytes: 1600,
            nacks: 3,
            plis: 1,
            firs: 0,
        };
        c.add_rtp(Leg::Out, before, now);
        c.add_rtp(Leg::Out, now, now);
        assert_eq!(c.rtp_packets[1].load(Ordering::Relaxed), 5);
        assert_eq!(c.rtp_bytes[1].load(Ordering::Relaxed), 600);
        assert_eq!(c.nacks[1].load(Ordering::Relaxed), 2);
        assert_eq!(c.plis[1].load(Ordering::Relaxed), 1);
        assert_eq!(c.rtp_packets[0].load(Ordering::Relaxed), 0);
    }
}
