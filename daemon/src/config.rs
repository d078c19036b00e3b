//! Gateway configuration: strict TOML (unknown keys are errors with line and column), a default
//! embedded in the binary, and a validation pass that reports every problem at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchboard_protocol::DialectKind;

use crate::plugins::PluginRegistry;

mod engineio;
mod front;
mod ops;
mod peerjs;
mod secrets;
mod serve;
pub use front::*;
pub use ops::*;
pub use peerjs::PeerjsConfig;
pub use serve::Service;

/// The configuration the binary runs with when no `--config` is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/switchboard.toml");

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listening sockets, each with its dialects and pages (`[[listener]]`).
    #[serde(rename = "listener", default)]
    pub listeners: Vec<ListenerConfig>,
    /// Per-session limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// ICE servers handed to peers that ask (`getIceServerConfig`).
    #[serde(default)]
    pub ice: IceConfig,
    /// Static files.
    #[serde(default)]
    pub web: WebConfig,
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// The gateway's own log (`[log]`).
    #[serde(default)]
    pub log: LogConfig,
    /// The admin API and dashboard (`[admin]`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Minted TURN credentials (`[turn]`).
    #[serde(default)]
    pub turn: TurnConfig,
    /// The plugin pipeline, in order (`[[plugin]]`).
    #[serde(rename = "plugin", default)]
    pub plugins: Vec<PluginConfig>,
    /// Where conference rooms and one-time tokens are kept across restarts (`[store]`);
    /// absent: in memory only.
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// Who may use the REST API under `/{app}/rest/` (`[rest]`).
    #[serde(default)]
    pub rest: RestConfig,
    /// Stream security per Ant Media application (`[[antmedia_app]]`).
    #[serde(rename = "antmedia_app", default)]
    pub antmedia_apps: Vec<switchboard_conference::AppSecurityConfig>,
    /// Scale-out through Redis (`[cluster]`); absent: this node runs alone.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Reverse proxies whose forwarded client addresses are believed (`[proxy]`).
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// The PeerJS server protocol (`[peerjs]`).
    #[serde(default)]
    pub peerjs: PeerjsConfig,
}

/// `[store]`: the embedded database (redb) of the conference plugin and the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The database file, created if missing. A relative path is relative to the config file's
    /// directory (the working directory for the embedded default config).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("switchboard.redb")
}

/// `[rest]`: access to the REST API (conference rooms, tokens).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Client addresses allowed, as CIDR blocks (`"10.0.0.0/8"`) or single addresses. Others
    /// get 403. Default: loopback only, as Ant Media's `remoteAllowedCIDR`. Empty: REST off.
    #[serde(default = "default_allowed_cidrs")]
    pub allowed_cidrs: Vec<String>,
}

fn default_allowed_cidrs() -> Vec<String> {
    vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            allowed_cidrs: default_allowed_cidrs(),
        }
    }
}

impl RestConfig {
    /// The allowed blocks; entries that do not parse (reported by validation) are skipped.
    pub fn cidrs(&self) -> Vec<Cidr> {
        self.allowed_cidrs
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect()
    }
}

/// An address block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `"a.b.c.d/n"`, `"x::y/n"` or a single address (a full-length prefix).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let bits = |prefix: u8, width: u32| -> u128 {
            if prefix == 0 {
                0
            } else {
                (u128::MAX << (width - u32::from(prefix))) & (u128::MAX >> (128 - width))
            }
        };
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = bits(self.prefix, 32);
                u128::from(u32::from(net)) & mask == u128::from(u32::from(ip)) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = bits(self.prefix, 128);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to bind, e.g. `"0.0.0.0:5080"`. Port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Dialects served here.
    #[serde(default = "default_dialects")]
    pub dialects: Vec<DialectKind>,
    /// Room for socket.io peers whose handshake has no `room` query parameter.
    #[serde(default = "default_socketio_room")]
    pub socketio_room: String,
    /// Which pages to serve: `"demo"` (all demo pages), `"classic"` (the SimpleP2P page) or
    /// `"none"`.
    #[serde(default)]
    pub pages: Pages,
    /// Serve `https://` and `wss://` with this certificate and key instead of plain text.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Which groups of routes this listener answers ([`Service`]); others get 404. Unset:
    /// everything, as before the key existed ([`ListenerConfig::serves`]).
    #[serde(default)]
    pub serve: Option<Vec<Service>>,
    /// Connections from `[proxy] trusted` peers start with a PROXY protocol v1 or v2 header
    /// (haproxy `send-proxy`, nginx `proxy_protocol on`); others are closed.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// Which pages a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pages {
    /// `/` with links, the Ant, socket.io, raw and classic pages, `/socket.io/socket.io.js`,
    /// and `/node_modules/` from [`WebConfig::node_modules_dir`] when it exists.
    #[default]
    Demo,
    /// `/peer.html` and `/socket.io/socket.io.js` only, as the SimpleP2P tutorial served.
    Classic,
    /// No pages.
    None,
}

fn default_dialects() -> Vec<DialectKind> {
    vec![
        DialectKind::Antmedia,
        DialectKind::Socketio,
        DialectKind::Raw,
        DialectKind::Peerjs,
    ]
}

fn default_socketio_room() -> String {
    "simplep2p".to_owned()
}

/// Per-session limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest inbound frame in bytes; larger ones close the connection (WebSocket 1009) and are
    /// never relayed.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Outbound messages queued per session before the session is considered stuck and closed.
    #[serde(default = "default_session_queue_len")]
    pub session_queue_len: usize,
    /// Bytes of the messages queued for one session (each counted at its size, a message sent
    /// to many at its size for each); past it its senders wait, as for a full
    /// `session_queue_len`. One message larger than this still goes once the queue is empty.
    /// At least 1024.
    #[serde(default = "default_session_queue_bytes")]
    pub session_queue_bytes: usize,
    /// Per-dialect overrides of `max_frame_bytes` (`{ antmedia = 81920 }`).
    #[serde(default)]
    pub dialect_max_frame_bytes: DialectFrameLimits,
    /// Average inbound messages per second one connection may send (token bucket refill).
    #[serde(default = "default_messages_per_sec")]
    pub messages_per_sec: f64,
    /// Messages one connection may send at once above the average (token bucket size).
    #[serde(default = "default_message_burst")]
    pub message_burst: usize,
    /// Messages refused for the rate within 10 seconds after which the connection is closed
    /// (WebSocket 1008, socket.io disconnect).
    #[serde(default = "default_rate_limit_close_after")]
    pub rate_limit_close_after: usize,
    /// Open connections (sessions) from one IP address; more are refused (HTTP 429, socket.io
    /// `connect_error`).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Open sessions on the whole gateway; more are refused (HTTP 503, socket.io
    /// `connect_error`).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Origins (`https://app.example.com`, `http://localhost:8080`; `*.example.com` style
    /// wildcards allowed in the host) whose pages may open WebSocket and socket.io connections.
    /// Empty: any origin. Requests without an `Origin` header (non-browser clients) are allowed.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Seconds an Ant Media peer may stay connected without joining anything; then it is closed
    /// (`join_timeout` error and close 4408). 0 disables the check. (socket.io clients have
    /// `socketio_connect_timeout_secs`.)
    #[serde(default = "default_join_timeout_secs")]
    pub join_timeout_secs: u64,
    /// Seconds one write to a WebSocket peer may take. A peer that stops reading fills its TCP
    /// buffers and then blocks the write; past this it is closed instead of holding its session
    /// (and its queued messages) open. At least 1.
    #[serde(default = "default_write_timeout_secs")]
    pub write_timeout_secs: u64,
    /// TCP connections one IP address may hold open, counted at accept; more are closed at
    /// once. `[proxy] trusted` peers are exempt (their clients are counted per session).
    #[serde(default = "default_max_tcp_connections_per_ip")]
    pub max_tcp_connections_per_ip: usize,
    /// Seconds a client has to send a request's headers (and a PROXY header first, where
    /// expected); an idle keep-alive connection waiting for its next request is closed after
    /// as long. At least 1.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a socket.io client may take from its engine.io handshake to connecting its
    /// namespace; a bare handshake is then closed. At least 1.
    #[serde(default = "default_socketio_connect_timeout_secs")]
    pub socketio_connect_timeout_secs: u64,
    /// File descriptors kept free below `RLIMIT_NOFILE`: past that, new connections are closed
    /// at once, except a quarter of this reserve that serves `/healthz` and `/readyz` only.
    #[serde(default = "default_reserved_fds")]
    pub reserved_fds: usize,
    /// Client networks (CIDR blocks or addresses) whose connections may take the reserve's
    /// health places past the budget, besides `[proxy] trusted` peers: a flood from anywhere
    /// else is closed at once there and cannot crowd the probes out. Default: loopback.
    #[serde(default = "default_health_check_cidrs")]
    pub health_check_cidrs: Vec<String>,
    /// Rooms one connection may be in at once (Ant `join`/`joinRoom`, raw and socket.io
    /// joins); a join into one more is refused (Ant `refused`). At least 1.
    #[serde(default = "default_max_rooms_per_session")]
    pub max_rooms_per_session: usize,
    /// Seconds between WebSocket pings to an idle Ant Media or raw peer; a peer that sends
    /// nothing (no pong) for as long again after a ping is closed (1008), so a peer gone
    /// without a FIN frees its room. 0 disables the pings.
    #[serde(default = "default_ping_interval_secs")]
    pub ping_interval_secs: u64,
    /// Largest body of one engine.io 3 (socket.io-client 2) long-polling POST: such a client
    /// sends everything it buffered in one POST, which is read whole and answered at once (its
    /// client waits for that answer to finish an upgrade). Larger ones get 413 and end the
    /// session (`frame_too_large`). At least 1024.
    #[serde(default = "default_engineio3_max_post_bytes")]
    pub engineio3_max_post_bytes: usize,
    /// Bytes of engine.io 3 POSTs from one client address that their sessions have not taken
    /// yet: a POST reserves its length before its body is read and waits for room (its body
    /// unread) up to `write_timeout_secs`; one larger than this gets 413. Read at start. From
    /// 1024 to 4294967295.
    #[serde(default = "default_engineio3_undelivered_bytes_per_ip")]
    pub engineio3_undelivered_bytes_per_ip: usize,
    /// The same budget for every address together. Read at start. At least
    /// `engineio3_undelivered_bytes_per_ip`.
    #[serde(default = "default_engineio3_undelivered_bytes_total")]
    pub engineio3_undelivered_bytes_total: usize,
}

/// Four POST caps: two socket.io-client 2 peers behind one address flooding each other while
/// they upgrade hold two POSTs each (the one being relayed and the one the upgrade waits for).
const fn default_engineio3_undelivered_bytes_per_ip() -> usize {
    64 * 1024 * 1024
}

/// Four addresses' worth: what a flood of v2 POSTs from many addresses can pin in all.
const fn default_engineio3_undelivered_bytes_total() -> usize {
    256 * 1024 * 1024
}

const fn default_engineio3_max_post_bytes() -> usize {
    16 * 1024 * 1024
}

const fn default_max_rooms_per_session() -> usize {
    16
}

const fn default_ping_interval_secs() -> u64 {
    25
}

const fn default_messages_per_sec() -> f64 {
    50.0
}

const fn default_message_burst() -> usize {
    200
}

const fn default_rate_limit_close_after() -> usize {
    100
}

const fn default_max_connections_per_ip() -> usize {
    64
}

const fn default_max_sessions() -> usize {
    10_000
}

const fn default_join_timeout_secs() -> u64 {
    300
}

const fn default_write_timeout_secs() -> u64 {
    10
}

const fn default_max_tcp_connections_per_ip() -> usize {
    128
}

const fn default_header_read_timeout_secs() -> u64 {
    10
}

const fn default_socketio_connect_timeout_secs() -> u64 {
    5
}

const fn default_reserved_fds() -> usize {
    64
}

fn default_health_check_cidrs() -> Vec<String> {
    vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
}

const fn default_max_frame_bytes() -> usize {
    switchboard_protocol::DEFAULT_MAX_FRAME_BYTES
}

const fn default_session_queue_len() -> usize {
    1024
}

const fn default_session_queue_bytes() -> usize {
    1024 * 1024
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: default_max_frame_bytes(),
            session_queue_len: default_session_queue_len(),
            session_queue_bytes: default_session_queue_bytes(),
            dialect_max_frame_bytes: DialectFrameLimits::default(),
            messages_per_sec: default_messages_per_sec(),
            message_burst: default_message_burst(),
            rate_limit_close_after: default_rate_limit_close_after(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_sessions: default_max_sessions(),
            allowed_origins: Vec::new(),
            join_timeout_secs: default_join_timeout_secs(),
            write_timeout_secs: default_write_timeout_secs(),
            max_rooms_per_session: default_max_rooms_per_session(),
            max_tcp_connections_per_ip: default_max_tcp_connections_per_ip(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            socketio_connect_timeout_secs: default_socketio_connect_timeout_secs(),
            reserved_fds: default_reserved_fds(),
            health_check_cidrs: default_health_check_cidrs(),
            ping_interval_secs: default_ping_interval_secs(),
            engineio3_max_post_bytes: default_engineio3_max_post_bytes(),
            engineio3_undelivered_bytes_per_ip: default_engineio3_undelivered_bytes_per_ip(),
            engineio3_undelivered_bytes_total: default_engineio3_undelivered_bytes_total(),
        }
    }
}

/// ICE server settings given to peers that ask.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceConfig {
    /// A `stun:` or `turn:` URI; empty tells Ant peers to keep their own settings.
    #[serde(default)]
    pub uri: String,
    /// TURN username.
    #[serde(default)]
    pub username: String,
    /// TURN credential.
    #[serde(default)]
    pub credential: String,
}

/// Static files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Directory served at `/node_modules/` by demo listeners, so the demo pages can load the Ant
    /// SDK and simple-peer installed by `npm ci`. Relative to the working directory; skipped when
    /// it does not exist.
    #[serde(default = "default_node_modules_dir")]
    pub node_modules_dir: PathBuf,
}

fn default_node_modules_dir() -> PathBuf {
    PathBuf::from("node_modules")
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            node_modules_dir: default_node_modules_dir(),
        }
    }
}

/// Shutdown behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Seconds sessions get to close after a shutdown signal before the gateway exits anyway.
    #[serde(default = "default_grace_period_secs")]
    pub grace_period_secs: u64,
}

const fn default_grace_period_secs() -> u64 {
    5
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace_period_secs: default_grace_period_secs(),
        }
    }
}

/// One `[[plugin]]` entry: its type and its own settings table, which the plugin validates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin type, e.g. `"room-router"`; with `path`, a label of your choice shown in
    /// config errors.
    #[serde(rename = "type")]
    pub kind: String,
    /// Load a native plugin from this shared library (a `cdylib` built with
    /// `switchboard_plugin_api::export_plugin!`) instead of a built-in one. A relative path is
    /// relative to the directory of the config file ([`GatewayConfig::load`]), or to the working
    /// directory for config text ([`GatewayConfig::from_toml`]).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// What a failure of this plugin (an error or a panic) does to the event it was checking:
    /// `"skip"` goes on without the plugin, `"refuse"` refuses the event (fail closed). Default:
    /// `"refuse"` for the policy plugins (`room-policy`, `conference`), `"skip"` for the rest.
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    /// The plugin's settings (`[plugin.settings]`), checked by the plugin itself.
    #[serde(default)]
    pub settings: toml::Table,
}

impl PluginConfig {
    /// `on_failure` as configured, or the default for this entry's plugin.
    pub fn failure_policy(&self) -> OnFailure {
        self.on_failure.unwrap_or_else(|| match &self.path {
            // A native plugin's `type` is a label of the operator's choice, not its kind.
            Some(_) => OnFailure::Skip,
            None => OnFailure::default_for(&self.kind),
        })
    }
}

/// A plugin's failure policy (`[[plugin]] on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Go on as if the plugin had passed the event on unchanged (fail open).
    Skip,
    /// Refuse the event the plugin failed on, and, once the plugin is disabled, every event
    /// but a leave (fail closed): the sender gets `server_error_check_logs` / `internal`.
    Refuse,
}

impl OnFailure {
    /// The default for a built-in plugin type: `Refuse` for the plugins that check access.
    pub fn default_for(kind: &str) -> Self {
        match kind {
            "room-policy" | "conference" => OnFailure::Refuse,
            _ => OnFailure::Skip,
        }
    }
}

/// A configuration problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// Where: a key path such as `listener[1].bind`, or `line 3, column 1`.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn at(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// Loading a configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys (toml reports line/column).
    #[error("{0}")]
    Parse(String),
    /// The file parsed but is not a valid configuration.
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

impl GatewayConfig {
    /// Whether `/{app}/websocket` is served: no `[[antmedia_app]]` is configured, or `app` is,
    /// or a `name = "*"` entry covers every name.
    pub fn admits_app(&self, app: &str) -> bool {
        self.antmedia_apps.is_empty()
            || self
                .antmedia_apps
                .iter()
                .any(|a| a.name == app || a.name == "*")
    }

    /// Parses TOML text without validating it; secrets given as `{ file = .. }` are relative
    /// to the working directory.
    pub fn parse(text: &str) -> Result<Self, LoadConfigError> {
        Self::parse_in(text, Path::new(""))
    }

    /// Parses TOML text without validating it, reading secrets given as `{ env = .. }` or
    /// `{ file = .. }` (relative to `dir`); see `config/secrets.rs`.
    pub fn parse_in(text: &str, dir: &Path) -> Result<Self, LoadConfigError> {
        secrets::parse(text, dir)
    }

    /// Reads, parses and validates a file. Relative plugin paths are taken relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self, LoadConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse_in(&text, path.parent().unwrap_or(Path::new("")))?;
        config.rebase_paths(path.parent().unwrap_or(Path::new("")));
        config.rebase_tls_paths(path.parent().unwrap_or(Path::new("")));
        config
            .validate(&PluginRegistry::builtin())
            .map_err(LoadConfigError::Invalid)?;
        Ok(config)
    }

    /// Makes relative native plugin paths and the store path relative to `dir` instead of the
    /// working directory.
    pub fn rebase_paths(&mut self, dir: &Path) {
        for plugin in &mut self.plugins {
            if let Some(path) = plugin.path.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        }
        if let Some(store) = self.store.as_mut().filter(|s| s.path.is_relative()) {
            store.path = dir.join(&store.path);
        }
        if let Some(ca) = self.cluster.as_mut().and_then(|c| c.redis_ca_file.as_mut())
            && ca.is_relative()
        {
            *ca = dir.join(&*ca);
        }
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, LoadConfigError> {
        let config = Self::parse(text)?;
        config
            .validate(&PluginRegistry::builtin())
            .map_err(LoadConfigError::Invalid)?;
        Ok(config)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Self {
        // The embedded file is checked by a unit test; failing here is a build defect.
        #[allow(clippy::expect_used)]
        Self::from_toml(DEFAULT_CONFIG).expect("the embedded default config is valid")
    }

    /// Checks everything serde cannot: duplicate ports, empty lists, bounds, and every plugin's
    /// settings. Returns all problems, not just the first.
    pub fn validate(&self, registry: &PluginRegistry) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.listeners.is_empty() {
            errors.push(ConfigError::at(
                "listener",
                "at least one [[listener]] is required",
            ));
        }
        let mut binds = HashSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let at = |key: &str| format!("listener[{i}].{key}");
            // Port 0 means "any free port", so two of those never collide.
            if l.bind.port() != 0 && !binds.insert(l.bind) {
                errors.push(ConfigError::at(
                    at("bind"),
                    format!("{} is bound twice", l.bind),
                ));
            }
            if l.dialects.is_empty() {
                errors.push(ConfigError::at(
                    at("dialects"),
                    "must name at least one dialect",
                ));
            }
            if let Err(e) = crate::rooms::check_room_name(&l.socketio_room) {
                errors.push(ConfigError::at(at("socketio_room"), e));
            }
            l.validate_serve(&at("serve"), &mut errors);
        }
        if let Some(problem) = self.peerjs.key_problem() {
            errors.push(ConfigError::at("peerjs.key", problem));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.limits.max_frame_bytes) {
            errors.push(ConfigError::at(
                "limits.max_frame_bytes",
                format!(
                    "must be between 1024 and 16777216, got {}",
                    self.limits.max_frame_bytes
                ),
            ));
        }
        if self.limits.engineio3_max_post_bytes < 1024 {
            errors.push(ConfigError::at(
                "limits.engineio3_max_post_bytes",
                "must be at least 1024",
            ));
        }
        self.validate_post_budget(&mut errors);
        if self.limits.session_queue_len == 0 {
            errors.push(ConfigError::at(
                "limits.session_queue_len",
                "must be at least 1",
            ));
        }
        if self.limits.session_queue_bytes < 1024 {
            errors.push(ConfigError::at(
                "limits.session_queue_bytes",
                "must be at least 1024",
            ));
        }
        if self.limits.max_rooms_per_session == 0 {
            errors.push(ConfigError::at(
                "limits.max_rooms_per_session",
                "must be at least 1",
            ));
        }
        if !self.ice.uri.is_empty()
            && !["stun:", "turn:", "turns:"]
                .iter()
                .any(|p| self.ice.uri.starts_with(p))
        {
            errors.push(ConfigError::at(
                "ice.uri",
                "must start with stun:, turn: or turns:",
            ));
        }
        self.validate_ops(&mut errors);
        self.validate_front(&mut errors);
        for (i, c) in self.rest.allowed_cidrs.iter().enumerate() {
            if let Err(e) = Cidr::parse(c) {
                errors.push(ConfigError::at(format!("rest.allowed_cidrs[{i}]"), e));
            }
        }
        if let Some(store) = &self.store
            && store.path.as_os_str().is_empty()
        {
            errors.push(ConfigError::at("store.path", "must not be empty"));
        }
        for (i, key, message) in switchboard_conference::list_problems(&self.antmedia_apps) {
            errors.push(ConfigError::at(format!("antmedia_app[{i}].{key}"), message));
        }
        let mut apps = HashSet::new();
        for (i, app) in self.antmedia_apps.iter().enumerate() {
            for (key, message) in app.problems() {
                errors.push(ConfigError::at(format!("antmedia_app[{i}].{key}"), message));
            }
            if !apps.insert(app.name.as_str()) {
                errors.push(ConfigError::at(
                    format!("antmedia_app[{i}].name"),
                    format!("application `{}` is configured twice", app.name),
                ));
            }
        }
        if let Some(cluster) = &self.cluster {
            for (key, message) in cluster.problems() {
                errors.push(ConfigError::at(format!("cluster.{key}"), message));
            }
        }
        if self.plugins.is_empty() {
            errors.push(ConfigError::at(
                "plugin",
                "no plugins: nothing would route; add [[plugin]] type = \"room-router\"",
            ));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            if let Err(problems) = registry.build_config(p) {
                errors.extend(problems.into_iter().map(|e| ConfigError {
                    location: format!("plugin[{i}] ({})", p.kind),
                    message: e,
                }));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests;
