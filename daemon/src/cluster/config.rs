//! `[cluster]`: several gateway nodes share rooms through one Redis server. Absent: the gateway
//! runs alone, exactly as without clustering.

use std::path::PathBuf;

use serde::Deserialize;

/// Longest accepted `node_id`, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The shared Redis server, `redis://[user:password@]host[:port][/db]`, or `rediss://...`
    /// for TLS. A standalone Redis (or a primary): Redis Cluster is not supported, the scripts
    /// touch keys they compute. Required unless `sentinel` names the servers.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The ACL user the node authenticates as (`AUTH user password`); overrides the URL's.
    #[serde(default)]
    pub redis_username: Option<String>,
    /// The password for `AUTH` (a secret: `{ env = .. }` or `{ file = .. }`); overrides the
    /// URL's, so the URL itself need not be secret.
    #[serde(default)]
    pub redis_password: Option<String>,
    /// A PEM file of the CA(s) that signed the Redis server certificates (TLS: `rediss://` or
    /// `sentinel.tls`); only these are trusted then. Absent: the system's trusted roots.
    /// Relative to the config file's directory.
    #[serde(default)]
    pub redis_ca_file: Option<PathBuf>,
    /// Redis Sentinel: ask these sentinels which server is the primary, and ask again after
    /// every lost connection, so a failover moves the nodes to the new primary.
    #[serde(default)]
    pub sentinel: Option<SentinelConfig>,
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
    /// Bytes of frames a node keeps after publishing them, until their receiving node
    /// acknowledges them (at most `publish_queue_len` frames too), so that a frame Redis took
    /// but never wrote to the receiver (Redis died, or closed the subscriber) is sent again.
    /// Past it the oldest go; should a receiver then ask for one, the calls with it end.
    #[serde(default = "default_replay_window_bytes")]
    pub replay_window_bytes: usize,
    /// Direct links between the nodes for their frames (`cluster/direct`), so that a frame
    /// from one node to another is not copied through Redis: each node listens here and
    /// announces its address in Redis; Redis keeps membership, discovery and the fallback.
    /// Absent: every frame goes through Redis.
    #[serde(default)]
    pub direct: Option<DirectConfig>,
}

/// `[cluster.direct]`: where a node takes the other nodes' direct links.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectConfig {
    /// The address to listen on, `ip:port` (port 0: any free port, announced as bound).
    pub listen: String,
    /// The address the other nodes dial, `host:port`. Default: `listen` as bound, which must
    /// then name one address (not 0.0.0.0 or ::).
    #[serde(default)]
    pub advertise: Option<String>,
}

impl DirectConfig {
    /// Every problem serde cannot see, as `(key, message)`.
    fn problems(&self, tls: bool) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self.listen.parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.ip().is_unspecified() && self.advertise.is_none() => out.push((
                "direct.advertise",
                format!(
                    "is required when direct.listen ({addr}) names no one address: the other nodes dial it"
                ),
            )),
            Ok(_) => {}
            Err(_) => out.push((
                "direct.listen",
                format!("must be ip:port, got {:?}", self.listen),
            )),
        }
        if let Some(advertise) = &self.advertise
            && !advertise.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            })
        {
            out.push((
                "direct.advertise",
                format!("must be host:port, got {advertise:?}"),
            ));
        }
        if tls {
            out.push((
                "direct",
                "is plain TCP, and this node speaks TLS to Redis: frames between nodes would cross \
                 the network unencrypted. Leave `direct` out (frames then go through Redis)"
                    .to_owned(),
            ));
        }
        out
    }
}

const fn default_replay_window_bytes() -> usize {
    32 * 1024 * 1024
}

/// `[cluster] sentinel = { master = "...", nodes = ["host:port", ...] }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The name the sentinels monitor the primary under (`sentinel monitor NAME ...`).
    pub master: String,
    /// The sentinels, `host:port` each (26379 is Sentinel's usual port); asked in turn.
    pub nodes: Vec<String>,
    /// TLS to the sentinels and to the servers they name (with `redis_ca_file`).
    #[serde(default)]
    pub tls: bool,
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
        match (&self.redis_url, &self.sentinel) {
            (None, None) => out.push((
                "redis_url",
                "is required (or `sentinel`, to find the primary through Redis Sentinel)"
                    .to_owned(),
            )),
            (Some(url), Some(sentinel)) => {
                out.push((
                    "sentinel",
                    "names the servers: give either `redis_url` or `sentinel`, not both".to_owned(),
                ));
                out.extend(check_url(url).err().map(|e| ("redis_url", e)));
                out.extend(sentinel.problems());
            }
            (Some(url), None) => out.extend(check_url(url).err().map(|e| ("redis_url", e))),
            (None, Some(sentinel)) => out.extend(sentinel.problems()),
        }
        if self.redis_ca_file.is_some() && !self.tls() {
            out.push((
                "redis_ca_file",
                "is for TLS: use a rediss:// URL or `sentinel.tls = true`".to_owned(),
            ));
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
        if self.replay_window_bytes < 1024 {
            out.push((
                "replay_window_bytes",
                format!("must be at least 1024, got {}", self.replay_window_bytes),
            ));
        }
        if self.publish_queue_len == 0 {
            out.push(("publish_queue_len", "must be at least 1".to_owned()));
        }
        if let Some(direct) = &self.direct {
            out.extend(direct.problems(self.tls()));
        }
        out
    }

    /// Whether the node speaks TLS to Redis.
    pub fn tls(&self) -> bool {
        match (&self.redis_url, &self.sentinel) {
            (Some(url), _) => url.starts_with("rediss://"),
            (None, Some(sentinel)) => sentinel.tls,
            (None, None) => false,
        }
    }

    /// Where Redis is, for logs: the URL without its password, or the sentinels.
    pub fn redacted_target(&self) -> String {
        match (&self.redis_url, &self.sentinel) {
            (Some(url), _) => match url.split_once("://").zip(url.rsplit_once('@')) {
                Some(((scheme, _), (_, host))) => format!("{scheme}://***@{host}"),
                None => url.clone(),
            },
            (None, Some(s)) => format!("sentinel {} at {}", s.master, s.nodes.join(", ")),
            (None, None) => String::new(),
        }
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

impl SentinelConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.master.is_empty() {
            out.push(("sentinel.master", "must not be empty".to_owned()));
        }
        if self.nodes.is_empty() {
            out.push((
                "sentinel.nodes",
                "must list at least one sentinel".to_owned(),
            ));
        }
        for node in &self.nodes {
            if let Err(e) = parse_host_port(node) {
                out.push(("sentinel.nodes", e));
            }
        }
        out
    }
}

/// `host:port` of a sentinel (`[::1]:26379` for an IPv6 address).
pub fn parse_host_port(node: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{node}` is not host:port");
    let (host, port) = node.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn check_url(url: &str) -> Result<(), String> {
    if !["redis://", "rediss://", "redis+unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Err("must start with redis://, rediss:// (TLS) or redis+unix://".to_owned());
    }
    if redis::parse_redis_url(url).is_none() {
        return Err("is not a valid Redis URL".to_owned());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClusterConfig {
        toml::from_str(text).expect("a [cluster] table")
    }

    fn keys(text: &str) -> Vec<&'static str> {
        parse(text).problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn one_server_or_sentinel_is_required_never_both() {
        assert_eq!(keys(""), ["redis_url"]);
        assert_eq!(
            keys(
                "redis_url = \"redis://127.0.0.1\"\n\
                 sentinel = { master = \"m\", nodes = [\"127.0.0.1:26379\"] }"
            ),
            ["sentinel"]
        );
        assert!(keys("redis_url = \"rediss://redis.internal:6380/2\"").is_empty());
        assert!(
            keys("sentinel = { master = \"m\", nodes = [\"[::1]:26379\", \"s:1\"] }").is_empty()
        );
    }

    #[test]
    fn sentinel_and_tls_settings_are_checked() {
        assert_eq!(
            keys("sentinel = { master = \"\", nodes = [\"no-port\", \"h:0\"] }"),
            ["sentinel.master", "sentinel.nodes", "sentinel.nodes"]
        );
        assert_eq!(
            keys("sentinel = { master = \"m\", nodes = [] }"),
            ["sentinel.nodes"]
        );
        assert_eq!(
            keys("redis_url = \"redis://h\"\nredis_ca_file = \"ca.pem\""),
            ["redis_ca_file"]
        );
        let tls = parse(
            "sentinel = { master = \"m\", nodes = [\"h:1\"], tls = true }\n\
             redis_ca_file = \"ca.pem\"",
        );
        assert!(tls.problems().is_empty() && tls.tls());
        assert!(
            toml::from_str::<ClusterConfig>("sentinel = { master = \"m\", nodes = [], x = 1 }")
                .is_err()
        );
    }

    #[test]
    fn direct_links_are_checked() {
        let url = "redis_url = \"redis://h\"\n";
        assert!(keys(&format!("{url}direct = {{ listen = \"127.0.0.1:0\" }}")).is_empty());
        assert!(
            keys(&format!(
                "{url}direct = {{ listen = \"0.0.0.0:7946\", advertise = \"gw-1.internal:7946\" }}"
            ))
            .is_empty()
        );
        // Every node dials the announced address: 0.0.0.0 names none.
        assert_eq!(
            keys(&format!("{url}direct = {{ listen = \"0.0.0.0:7946\" }}")),
            ["direct.advertise"]
        );
        assert_eq!(
            keys(&format!(
                "{url}direct = {{ listen = \"gw-1:7946\", advertise = \"gw-1\" }}"
            )),
            ["direct.listen", "direct.advertise"]
        );
        // The link is plain TCP: not beside a Redis spoken to over TLS.
        assert_eq!(
            keys("redis_url = \"rediss://h\"\ndirect = { listen = \"127.0.0.1:0\" }"),
            ["direct"]
        );
        assert!(
            toml::from_str::<ClusterConfig>(&format!(
                "{url}direct = {{ listen = \"127.0.0.1:0\", port = 1 }}"
            ))
            .is_err()
        );
    }

    #[test]
    fn logs_never_show_the_password() {
        let url = parse("redis_url = \"rediss://user:pa@ss@redis.internal:6380\"");
        assert_eq!(url.redacted_target(), "rediss://***@redis.internal:6380");
        let sentinel = parse("sentinel = { master = \"m\", nodes = [\"a:1\", \"b:2\"] }");
        assert_eq!(sentinel.redacted_target(), "sentinel m at a:1, b:2");
    }
}
