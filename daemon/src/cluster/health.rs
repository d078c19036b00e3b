//! Whether Redis is reachable, logged once per change, and the cluster metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{info, warn};

use crate::metrics::{Family, global};

const REDIS_UP: Family = Family {
    name: "switchboard_cluster_redis_up",
    help: "1 while the cluster's Redis is reachable, 0 while the node runs degraded (local rooms only).",
    kind: "gauge",
};

const FRAMES: Family = Family {
    name: "switchboard_cluster_frames_total",
    help: "Frames between nodes: published (out), received (in), dropped (held past replay_window_ms, queue full, unreadable).",
    kind: "counter",
};

const HELD: Family = Family {
    name: "switchboard_cluster_frames_held",
    help: "Items for other nodes held while Redis or their receiver is away, to be replayed in order.",
    kind: "gauge",
};

const REMOTE_LEAVES: Family = Family {
    name: "switchboard_cluster_node_failures_total",
    help: "Other nodes taken for dead (heartbeat expired) whose peers this node removed.",
    kind: "counter",
};

const DIRECT_REFUSED: Family = Family {
    name: "switchboard_cluster_direct_refused_total",
    help: "Connections to the direct-link listener refused: no or a wrong proof of the link secret, too slow, too many at once.",
    kind: "counter",
};

const DIRECT_LINKS: Family = Family {
    name: "switchboard_cluster_direct_links",
    help: "Direct links to other nodes in use for their frames ([cluster.direct]).",
    kind: "gauge",
};

/// Redis reachability.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
}

impl Health {
    /// Starts as down (nothing connected yet), without logging it.
    pub fn starting() -> Self {
        global().add(REDIS_UP, &[], 0);
        Self {
            up: AtomicBool::new(false),
        }
    }

    /// Whether Redis is reachable.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Redis answered: logs the recovery once.
    pub fn set_up(&self, node: &str) {
        if !self.up.swap(true, Ordering::Relaxed) {
            global().add(REDIS_UP, &[], 1);
            info!(node, "Cluster: connected to Redis; membership registered.");
        }
    }

    /// Redis failed: logs the outage once (not every failed command).
    pub fn down(&self, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            global().add(REDIS_UP, &[], -1);
            warn!(
                error = why,
                "Cluster: Redis unreachable; serving local rooms only until it returns."
            );
        }
    }
}

/// Counts a frame published to another node.
pub fn frame_out(n: usize) {
    global().add(
        FRAMES,
        &[("direction", "out")],
        i64::try_from(n).unwrap_or(i64::MAX),
    );
}

/// Counts `n` frames received from another node (the new frames of one bundle).
pub fn frames_in(n: usize) {
    if n > 0 {
        global().add(
            FRAMES,
            &[("direction", "in")],
            i64::try_from(n).unwrap_or(i64::MAX),
        );
    }
}

/// Counts a frame that could not be sent or read.
pub fn frame_dropped() {
    frames_dropped(1);
}

/// Counts `n` frames that could not be sent.
pub fn frames_dropped(n: usize) {
    global().add(
        FRAMES,
        &[("direction", "dropped")],
        i64::try_from(n).unwrap_or(i64::MAX),
    );
}

/// Counts a frame received a second time (published again after an outage) and dropped.
pub fn frame_duplicate() {
    global().add(FRAMES, &[("direction", "duplicate")], 1);
}

/// Counts a frame received past a gap and dropped: its sender publishes it again after the
/// missing ones.
pub fn frame_ahead() {
    global().add(FRAMES, &[("direction", "ahead")], 1);
}

/// Moves the held-items gauge by `delta`.
pub fn held(delta: i64) {
    global().add(HELD, &[], delta);
}

/// Counts a dead node.
pub fn node_failed(node: &str) {
    warn!(
        node,
        "Cluster: node stopped heartbeating; its peers leave their rooms."
    );
    global().add(REMOTE_LEAVES, &[], 1);
}

/// Counts a connection the direct-link listener refused.
pub fn direct_refused() {
    global().add(DIRECT_REFUSED, &[], 1);
}

/// Moves the gauge of direct links in use by `delta`.
pub fn direct_links(delta: i64) {
    global().add(DIRECT_LINKS, &[], delta);
}
