//! `[cluster]`: several gateway nodes share rooms through one Redis server. Absent: the gateway
//! runs alone, exactly as without clustering.

use serde::Deserialize;

/// Longest accepted `node_id`, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The shared Redis server, `redis://[user:password@]host[:port][/db]`. A standalone Redis
    /// (or a primary): Redis Cluster is not supported, the scripts touch keys they compute.
    pub redis_url: String,
    /// This node's name in logs, metrics and Redis keys: letters, digits, `.`, `_`, `-`. Each
    /// run adds its start time, so a restarted node is never taken for its previous run.
    /// Default: the host name, else `node`.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How often the node refreshes its heartbeat key and checks the other nodes'.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// How long a heartbeat key lives: a node silent this long is taken for dead, its peers
    /// leave their rooms. At least twice the heartbeat interval.
    #[serde(default = "default_ttl_ms")]
    pub node_ttl_ms: u64,
    /// Prefix of every Redis key and channel, so several clusters can share one Redis.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Messages to other nodes waiting to be published; past this they are dropped (and
    /// counted), as Redis is too slow or gone.
    #[serde(default = "default_queue_len")]
    pub publish_queue_len: usize,
    /// How long frames for other nodes are held while Redis (or the receiving node's
    /// subscription) is gone, to be delivered in order when it returns. Past this the held
    /// frames are dropped (counted) and every cross-node partner is told its peer left.
    #[serde(default = "default_replay_window_ms")]
    pub replay_window_ms: u64,
}

const fn default_replay_window_ms() -> u64 {
    10_000
}

const fn default_heartbeat_ms() -> u64 {
    1000
}

const fn default_ttl_ms() -> u64 {
    5000
}

fn default_prefix() -> String {
    "switchboard".to_owned()
}

const fn default_queue_len() -> usize {
    65_536
}

impl ClusterConfig {
    /// Every problem serde cannot see, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("redis+unix://"))
        {
            out.push((
                "redis_url",
                "must start with redis:// (or redis+unix://); TLS (rediss://) is not built in"
                    .to_owned(),
            ));
        } else if redis::parse_redis_url(&self.redis_url).is_none() {
            out.push(("redis_url", "is not a valid Redis URL".to_owned()));
        }
        if let Some(id) = &self.node_id
            && let Err(e) = check_name(id)
        {
            out.push(("node_id", e));
        }
        if let Err(e) = check_name(&self.key_prefix) {
            out.push(("key_prefix", e));
        }
        if !(50..=60_000).contains(&self.heartbeat_interval_ms) {
            out.push((
                "heartbeat_interval_ms",
                format!(
                    "must be between 50 and 60000, got {}",
                    self.heartbeat_interval_ms
                ),
            ));
        }
        if self.node_ttl_ms < self.heartbeat_interval_ms.saturating_mul(2) {
            out.push((
                "node_ttl_ms",
                format!(
                    "must be at least twice heartbeat_interval_ms ({}), got {}",
                    self.heartbeat_interval_ms.saturating_mul(2),
                    self.node_ttl_ms
                ),
            ));
        }
        if !(self.heartbeat_interval_ms..=600_000).contains(&self.replay_window_ms) {
            out.push((
                "replay_window_ms",
                format!(
                    "must be between heartbeat_interval_ms ({}) and 600000, got {}",
                    self.heartbeat_interval_ms, self.replay_window_ms
                ),
            ));
        }
        if self.publish_queue_len == 0 {
            out.push(("publish_queue_len", "must be at least 1".to_owned()));
        }
        out
    }

    /// The node name: `node_id`, else the host name, else `node`.
    pub fn node_name(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| check_name(h).is_ok())
            .unwrap_or_else(|| "node".to_owned())
    }
}

/// Node ids and key prefixes end up in Redis keys and in member records separated by `|`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NODE_ID_BYTES {
        return Err(format!("must be 1 to {MAX_NODE_ID_BYTES} bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "`{name}` may contain only letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}
