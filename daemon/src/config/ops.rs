//! Operations tables of the config: logging (`[log]`), the admin API (`[admin]`), TURN
//! credentials (`[turn]`), per-listener TLS, the per-dialect frame limits of `[limits]`, and their
//! validation. Strict like the rest: unknown keys are errors.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchboard_protocol::DialectKind;

use super::{ConfigError, GatewayConfig};

/// `[log]`: how the gateway's own log is written (stderr).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (human-readable lines) or `"json"` (one JSON object per line).
    #[serde(default)]
    pub format: LogFormat,
    /// Filter directives in `RUST_LOG` syntax (`"info"`, `"switchboard=debug,info"`). The
    /// `RUST_LOG` environment variable, when set, wins.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line, span fields included.
    Json,
}

/// `[admin]`: the admin API under `/api/` and the dashboard at `/admin/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token the API requires (`Authorization: Bearer TOKEN`). Unset: the admin API
    /// and the dashboard are disabled and answer 404.
    #[serde(default)]
    pub token: Option<String>,
}

/// Shortest accepted admin token, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// `[turn]`: time-limited TURN credentials (the TURN REST API scheme of coturn's
/// `use-auth-secret`), minted per request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// The secret shared with the TURN server (coturn `static-auth-secret`). Unset: no TURN
    /// credentials are minted and `[ice]` is handed out as it is.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long minted credentials are valid, in seconds.
    #[serde(default = "default_turn_ttl_secs")]
    pub ttl_secs: u64,
    /// `turn:`/`turns:`/`stun:` URIs the credentials are for. Ant Media peers get the first
    /// `turn:`/`turns:` one (the SDK takes a single URI); raw and socket.io peers get all.
    #[serde(default)]
    pub uris: Vec<String>,
}

const fn default_turn_ttl_secs() -> u64 {
    86_400
}

/// `tls = { cert = "...", key = "..." }` on a `[[listener]]`: serve `https://` and `wss://`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Relative to the config file's directory.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Relative to the config file's directory.
    pub key: PathBuf,
}

/// Per-dialect overrides of `[limits] max_frame_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectFrameLimits {
    /// Ant Media frames (Ant Media itself accepts 81 920 bytes).
    #[serde(default)]
    pub antmedia: Option<usize>,
    /// socket.io packets (the engine.io payload limit).
    #[serde(default)]
    pub socketio: Option<usize>,
    /// Raw frames.
    #[serde(default)]
    pub raw: Option<usize>,
    /// PeerJS messages.
    #[serde(default)]
    pub peerjs: Option<usize>,
}

impl DialectFrameLimits {
    fn get(&self, dialect: DialectKind) -> Option<usize> {
        match dialect {
            DialectKind::Antmedia => self.antmedia,
            DialectKind::Socketio => self.socketio,
            DialectKind::Raw => self.raw,
            DialectKind::Peerjs => self.peerjs,
        }
    }
}

/// Bounds of any frame limit, in bytes.
const FRAME_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=16 * 1024 * 1024;

impl GatewayConfig {
    /// The largest inbound frame a peer of `dialect` may send, in bytes.
    pub fn max_frame_bytes(&self, dialect: DialectKind) -> usize {
        self.limits
            .dialect_max_frame_bytes
            .get(dialect)
            .unwrap_or(self.limits.max_frame_bytes)
    }

    /// Makes relative TLS paths relative to `dir`.
    pub(super) fn rebase_tls_paths(&mut self, dir: &Path) {
        for tls in self.listeners.iter_mut().filter_map(|l| l.tls.as_mut()) {
            for path in [&mut tls.cert, &mut tls.key] {
                if path.is_relative() {
                    *path = dir.join(&*path);
                }
            }
        }
    }

    /// Checks the operations tables; pushes every problem.
    pub(super) fn validate_ops(&self, errors: &mut Vec<ConfigError>) {
        let limits = &self.limits;
        for dialect in [
            DialectKind::Antmedia,
            DialectKind::Socketio,
            DialectKind::Raw,
            DialectKind::Peerjs,
        ] {
            if let Some(n) = limits.dialect_max_frame_bytes.get(dialect)
                && !FRAME_BYTES_RANGE.contains(&n)
            {
                errors.push(ConfigError::at(
                    format!("limits.dialect_max_frame_bytes.{dialect}"),
                    format!("must be between 1024 and 16777216, got {n}"),
                ));
            }
        }
        if !(limits.messages_per_sec.is_finite() && limits.messages_per_sec > 0.0) {
            errors.push(ConfigError::at(
                "limits.messages_per_sec",
                format!("must be a number > 0, got {}", limits.messages_per_sec),
            ));
        }
        for (key, value) in [
            ("message_burst", limits.message_burst),
            ("rate_limit_close_after", limits.rate_limit_close_after),
            ("max_connections_per_ip", limits.max_connections_per_ip),
            ("max_sessions", limits.max_sessions),
        ] {
            if value == 0 {
                errors.push(ConfigError::at(
                    format!("limits.{key}"),
                    "must be at least 1",
                ));
            }
        }
        for (i, origin) in limits.allowed_origins.iter().enumerate() {
            if let Err(e) = crate::limits::check_origin_pattern(origin) {
                errors.push(ConfigError::at(format!("limits.allowed_origins[{i}]"), e));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            errors.push(ConfigError::at("log.level", format!("invalid filter: {e}")));
        }
        if let Some(token) = &self.admin.token
            && token.len() < MIN_ADMIN_TOKEN_BYTES
        {
            errors.push(ConfigError::at(
                "admin.token",
                format!(
                    "must be at least {MIN_ADMIN_TOKEN_BYTES} bytes (or leave it out to disable the admin API)"
                ),
            ));
        }
        self.validate_turn(errors);
        for (i, l) in self.listeners.iter().enumerate() {
            let Some(tls) = &l.tls else { continue };
            let mut files = true;
            for (key, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    files = false;
                    errors.push(ConfigError::at(
                        format!("listener[{i}].tls.{key}"),
                        format!("no such file: {}", path.display()),
                    ));
                }
            }
            if files && let Err(e) = crate::tls::load_server_config(tls) {
                errors.push(ConfigError::at(format!("listener[{i}].tls"), e));
            }
        }
    }

    fn validate_turn(&self, errors: &mut Vec<ConfigError>) {
        let turn = &self.turn;
        let Some(secret) = &turn.secret else {
            if !turn.uris.is_empty() {
                errors.push(ConfigError::at(
                    "turn.secret",
                    "required when turn.uris is set",
                ));
            }
            return;
        };
        if secret.is_empty() {
            errors.push(ConfigError::at("turn.secret", "must not be empty"));
        }
        if turn.uris.is_empty() {
            errors.push(ConfigError::at("turn.uris", "name at least one turn: URI"));
        }
        for (i, uri) in turn.uris.iter().enumerate() {
            if !["turn:", "turns:", "stun:"]
                .iter()
                .any(|p| uri.starts_with(p))
            {
                errors.push(ConfigError::at(
                    format!("turn.uris[{i}]"),
                    "must start with turn:, turns: or stun:",
                ));
            }
        }
        if !turn.uris.iter().any(|u| u.starts_with("turn")) {
            errors.push(ConfigError::at(
                "turn.uris",
                "needs a turn: or turns: URI for the credentials to be used",
            ));
        }
        if !(60..=30 * 86_400).contains(&turn.ttl_secs) {
            errors.push(ConfigError::at(
                "turn.ttl_secs",
                format!("must be between 60 and 2592000, got {}", turn.ttl_secs),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadConfigError;

    const BASE: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\n[[plugin]]\ntype = \"room-router\"\n";

    fn problems(extra: &str) -> String {
        match GatewayConfig::from_toml(&format!("{BASE}{extra}")) {
            Ok(_) => String::new(),
            Err(LoadConfigError::Invalid(errors)) => errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_safe_and_valid() {
        let config = GatewayConfig::from_toml(BASE).expect("valid");
        let l = &config.limits;
        assert_eq!(config.max_frame_bytes(DialectKind::Raw), 131_072);
        assert!(l.messages_per_sec > 0.0 && l.message_burst > 0);
        assert!(l.max_connections_per_ip > 0 && l.max_sessions >= l.max_connections_per_ip);
        assert!(l.allowed_origins.is_empty(), "any origin by default");
        assert_eq!(l.join_timeout_secs, 300);
        assert_eq!(config.admin.token, None, "the admin API is off by default");
        assert_eq!(config.turn.secret, None);
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn per_dialect_frame_limits_override_the_default() {
        let config = GatewayConfig::from_toml(&format!(
            "{BASE}[limits]\nmax_frame_bytes = 65536\ndialect_max_frame_bytes = {{ antmedia = 81920 }}\n"
        ))
        .expect("valid");
        assert_eq!(config.max_frame_bytes(DialectKind::Antmedia), 81_920);
        assert_eq!(config.max_frame_bytes(DialectKind::Socketio), 65_536);
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let all = problems(
            r#"
[limits]
dialect_max_frame_bytes = { raw = 10 }
messages_per_sec = 0.0
message_burst = 0
max_sessions = 0
allowed_origins = ["https://ok.example", "example.com", "https://a.example/path"]
[log]
level = "info,,=x=y"
[admin]
token = "short"
[turn]
secret = "s"
uris = ["http://turn.example"]
ttl_secs = 5
"#,
        );
        for key in [
            "limits.dialect_max_frame_bytes.raw",
            "limits.messages_per_sec",
            "limits.message_burst",
            "limits.max_sessions",
            "limits.allowed_origins[1]",
            "limits.allowed_origins[2]",
            "log.level",
            "admin.token",
            "turn.uris[0]",
            "turn.ttl_secs",
        ] {
            assert!(all.contains(key), "missing {key} in:\n{all}");
        }
    }

    #[test]
    fn unknown_keys_in_the_new_tables_are_errors() {
        for extra in [
            "[limits]\nmax_conections_per_ip = 3\n",
            "[admin]\ntokn = \"x\"\n",
            "[turn]\nsecrets = \"x\"\n",
            "[log]\nformat = \"xml\"\n",
            "[limits]\ndialect_max_frame_bytes = { webrtc = 1 }\n",
        ] {
            let err = GatewayConfig::parse(&format!("{BASE}{extra}")).expect_err(extra);
            assert!(err.to_string().contains("line"), "{err}");
        }
    }

    #[test]
    fn tls_files_must_exist_and_match() {
        let all = problems(
            "[[listener]]\nbind = \"127.0.0.1:0\"\ntls = { cert = \"/nonexistent/c.pem\", key = \"/nonexistent/k.pem\" }\n",
        );
        assert!(all.contains("listener[1].tls.cert"), "{all}");
        assert!(all.contains("listener[1].tls.key"), "{all}");
    }

    #[test]
    fn turn_needs_a_secret_with_its_uris() {
        let all = problems("[turn]\nuris = [\"turn:t.example:3478\"]\n");
        assert!(all.contains("turn.secret"), "{all}");
        assert_eq!(
            problems("[turn]\nsecret = \"s3cret\"\nuris = [\"turn:t.example:3478\"]\n"),
            ""
        );
    }
}

#[cfg(test)]
mod sample_tests {
    use crate::config::{GatewayConfig, LoadConfigError};

    /// `config/tls.toml` is valid except for the certificate files it asks the reader to make.
    #[test]
    fn the_sample_tls_config_parses() {
        let text = include_str!("../../../config/tls.toml");
        let mut config = GatewayConfig::parse(text).expect("parses");
        assert_eq!(config.listeners[0].bind.port(), 5443);
        config.rebase_tls_paths(std::path::Path::new("/nonexistent/config"));
        let Err(errors) = config.validate(&crate::plugins::PluginRegistry::builtin()) else {
            panic!("the certificate files do not exist");
        };
        assert!(
            errors.iter().all(|e| e.location.contains(".tls.")),
            "{:?}",
            LoadConfigError::Invalid(errors)
        );
    }
}
