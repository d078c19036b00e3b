//! Hot-path metrics with every label set registered up front: messages in and out by dialect
//! and event kind (fixed arrays of atomics, no allocation or lock per message), the relay
//! latency histogram, and per-plugin call counts and latency. Rendered after the registry of
//! [`crate::metrics`] by `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use switchboard_protocol::DialectKind;

/// Every [`switchboard_protocol::Event::kind`], plus `other` for kinds added later.
pub const KINDS: &[&str] = &[
    "join",
    "leave",
    "description",
    "candidate",
    "peer_message",
    "opaque",
    "ice_servers_request",
    "joined",
    "start",
    "peer_joined",
    "peer_left",
    "left",
    "ice_servers",
    "error",
    "conference",
    "conference_reply",
    "server_will_stop",
    "other",
];
const N_KINDS: usize = KINDS.len();

/// The dialects, in label order.
pub const DIALECTS: [DialectKind; 4] = [
    DialectKind::Antmedia,
    DialectKind::Socketio,
    DialectKind::Raw,
    DialectKind::Peerjs,
];

type Grid = [[AtomicU64; N_KINDS]; DIALECTS.len()];

/// The per-message counters, in shards: each thread counts in its own shard ([`shard`]), and
/// readers add the shards up. One set shared by the runtime's worker threads meant every
/// message's `lock inc` pulled a cache line over from the other core (measured in
/// BENCHMARKS.md, "What was done about the misses", sixth round).
#[repr(align(128))] // a shard's lines are its own (128: adjacent-line prefetch pairs lines)
struct Shard {
    messages_in: Grid,
    messages_out: Grid,
    relay_latency: Histogram,
}

/// More than the worker threads of a small machine; threads beyond it share shards.
const N_SHARDS: usize = 8;

static SHARDS: [Shard; N_SHARDS] = [const {
    Shard {
        messages_in: [const { [const { AtomicU64::new(0) }; N_KINDS] }; DIALECTS.len()],
        messages_out: [const { [const { AtomicU64::new(0) }; N_KINDS] }; DIALECTS.len()],
        relay_latency: Histogram::new(),
    }
}; N_SHARDS];

/// This thread's shard: threads take shards in turn as they first count.
fn shard() -> &'static Shard {
    &SHARDS[shard_index()]
}

/// The index of this thread's shard, for every sharded counter.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % N_SHARDS;
    }
    INDEX.with(|i| *i)
}

/// Which grid of a shard.
type GridOf = fn(&Shard) -> &Grid;

/// A counter of `grid`, summed over the shards.
fn total(grid: GridOf, dialect: usize, kind: usize) -> u64 {
    SHARDS
        .iter()
        .map(|s| grid(s)[dialect][kind].load(Ordering::Relaxed))
        .sum()
}

fn dialect_index(d: DialectKind) -> usize {
    match d {
        DialectKind::Antmedia => 0,
        DialectKind::Socketio => 1,
        DialectKind::Raw => 2,
        DialectKind::Peerjs => 3,
    }
}

fn kind_index(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(N_KINDS - 1)
}

/// A peer of `dialect` sent a message that decoded as `kind` (`error` for undecodable input).
pub fn message_in(dialect: DialectKind, kind: &str) {
    shard().messages_in[dialect_index(dialect)][kind_index(kind)].fetch_add(1, Ordering::Relaxed);
}

/// A message of `kind` was written to a peer of `dialect`.
pub fn message_out(dialect: DialectKind, kind: &str) {
    shard().messages_out[dialect_index(dialect)][kind_index(kind)].fetch_add(1, Ordering::Relaxed);
}

/// Messages in and out of every dialect, summed over kinds: `(dialect, in, out)`.
pub fn totals() -> [(DialectKind, u64, u64); DIALECTS.len()] {
    let sum = |grid: GridOf, i: usize| (0..N_KINDS).map(|k| total(grid, i, k)).sum();
    DIALECTS.map(|d| {
        let i = dialect_index(d);
        (d, sum(|s| &s.messages_in, i), sum(|s| &s.messages_out, i))
    })
}

// === histograms ===

/// Upper bounds of the latency buckets, in seconds: 10 µs to 100 ms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1,
];
const N_BUCKETS: usize = 13;

/// A fixed-bucket latency histogram of atomics.
#[derive(Debug)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one is `+Inf`.
    counts: [AtomicU64; N_BUCKETS + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; N_BUCKETS + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(N_BUCKETS);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Adds `other`'s observations to these.
    fn add(&self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter().zip(&other.counts) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add(other.sum_nanos.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[N_BUCKETS].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Time from a peer's frame arriving to its deliveries being queued for the receivers.
pub fn observe_relay(d: Duration) {
    shard().relay_latency.observe(d);
}

// === plugins ===

/// Calls into one plugin and their latency.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Counted per thread shard, like the message counters: a plugin is called for every event
    /// on every core, and one counter was a cache line written by all of them.
    calls: [ShardCount; N_SHARDS],
    latency: Histogram,
}

/// One shard's count, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ShardCount(AtomicU64);

/// One plugin call in this many is timed. Timing every call read the clock twice per plugin per
/// event, and a VM's clock read is not cheap (BENCHMARKS.md, sixth round); a steady sample of
/// the calls gives the same distribution.
pub const PLUGIN_TIMED_EVERY: u64 = 8;

impl PluginStats {
    /// Counts one call; `true` when this call is one of those timed (the first, then one in
    /// [`PLUGIN_TIMED_EVERY`]).
    pub fn call(&self) -> bool {
        self.calls[shard_index()]
            .0
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PLUGIN_TIMED_EVERY)
    }

    /// Calls counted, over every shard.
    pub fn calls(&self) -> u64 {
        self.calls.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// Records the latency of a timed call.
    pub fn observe(&self, d: Duration) {
        self.latency.observe(d);
    }
}

type PluginRegistry = Mutex<Vec<(String, Arc<PluginStats>)>>;

fn plugin_registry() -> &'static PluginRegistry {
    static PLUGINS: OnceLock<PluginRegistry> = OnceLock::new();
    PLUGINS.get_or_init(Mutex::default)
}

/// The stats of the plugin named `name`, registered on first use (when the pipeline is built,
/// not per event). A rebuilt pipeline keeps counting in the same series.
pub fn plugin_stats(name: &str) -> Arc<PluginStats> {
    let mut plugins = plugin_registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((_, stats)) = plugins.iter().find(|(n, _)| n == name) {
        return Arc::clone(stats);
    }
    let stats = Arc::new(PluginStats::default());
    plugins.push((name.to_owned(), Arc::clone(&stats)));
    stats
}

// === rendering ===

/// Appends these metrics in the Prometheus text format; `rooms` is the current room count.
pub fn render(out: &mut String, rooms: usize) {
    let _ = writeln!(
        out,
        "# HELP switchboard_rooms Rooms with at least one member."
    );
    let _ = writeln!(out, "# TYPE switchboard_rooms gauge");
    let _ = writeln!(out, "switchboard_rooms {rooms}");
    let grids: [(&str, &str, GridOf); 2] = [
        (
            "switchboard_messages_in_total",
            "Messages received from peers, by dialect and event kind.",
            |s| &s.messages_in,
        ),
        (
            "switchboard_messages_out_total",
            "Messages written to peers, by dialect and event kind.",
            |s| &s.messages_out,
        ),
    ];
    for (name, help, grid) in grids {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for d in DIALECTS {
            for (k, kind) in KINDS.iter().enumerate() {
                let v = total(grid, dialect_index(d), k);
                if v > 0 {
                    let _ = writeln!(out, "{name}{{dialect=\"{d}\",kind=\"{kind}\"}} {v}");
                }
            }
        }
    }
    let name = "switchboard_relay_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a peer's frame arriving to its deliveries being queued (decode, plugin pipeline, enqueue)."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    let relay_latency = Histogram::new();
    for shard in &SHARDS {
        relay_latency.add(&shard.relay_latency);
    }
    relay_latency.render(out, name, "");

    let plugins = plugin_registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let _ = writeln!(
        out,
        "# HELP switchboard_plugin_calls_total Events handed to each plugin."
    );
    let _ = writeln!(out, "# TYPE switchboard_plugin_calls_total counter");
    for (plugin, stats) in plugins.iter() {
        let calls = stats.calls();
        let plugin = crate::metrics::escape(plugin);
        let _ = writeln!(
            out,
            "switchboard_plugin_calls_total{{plugin=\"{plugin}\"}} {calls}"
        );
    }
    let name = "switchboard_plugin_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time each plugin takes per event (one call in {PLUGIN_TIMED_EVERY} is timed)."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (plugin, stats) in plugins.iter() {
        let labels = format!("plugin=\"{}\"", crate::metrics::escape(plugin));
        stats.latency.render(out, name, &labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_plugin_call_and_one_in_eight_after_it_are_timed() {
        let stats = PluginStats::default();
        let timed: Vec<usize> = (0..20).filter(|_| stats.call()).collect();
        assert_eq!(timed, [0, 8, 16]);
        assert_eq!(stats.calls(), 20, "every call counts");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_secs(1));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.00001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn counts_from_every_thread_add_up() {
        let before = totals()[2].1;
        let threads: Vec<_> = (0..N_SHARDS + 3)
            .map(|_| std::thread::spawn(|| message_in(DialectKind::Raw, "candidate")))
            .collect();
        for thread in threads {
            thread.join().expect("counts");
        }
        message_in(DialectKind::Raw, "candidate");
        // Other tests may count at the same time; these are all there.
        assert!(totals()[2].1 >= before + N_SHARDS as u64 + 4);
        let mut out = String::new();
        render(&mut out, 0);
        assert!(out.contains(r#"switchboard_messages_in_total{dialect="raw",kind="candidate"}"#));
    }

    #[test]
    fn every_event_kind_has_a_slot() {
        assert_eq!(LATENCY_BUCKETS.len(), N_BUCKETS);
        assert_eq!(kind_index("no-such-kind"), N_KINDS - 1);
        assert_eq!(KINDS[kind_index("candidate")], "candidate");
    }
}
