//! Config of the front door: `[proxy]` (which peers may tell the gateway who the client is) and
//! the checks of the connection limits in `[limits]` that guard accept.

use serde::Deserialize;

use super::{Cidr, ConfigError, GatewayConfig};

/// `[proxy]`: reverse proxies in front of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Networks of trusted proxies (CIDR blocks or single addresses). From these peers the
    /// client address is taken from the PROXY protocol header (listeners with
    /// `proxy_protocol = true`) or from `Forwarded` / `X-Forwarded-For`; from anyone else those
    /// headers are ignored. Empty (the default): no proxy is trusted.
    #[serde(default)]
    pub trusted: Vec<String>,
    /// The one request header the trusted proxies set: `"x-forwarded-for"` (nginx's
    /// `$proxy_add_x_forwarded_for`, most load balancers) or `"forwarded"` (RFC 7239). The other
    /// is ignored, since a proxy that does not set it passes a client's forgery through.
    #[serde(default)]
    pub client_header: ClientHeader,
}

/// Which forwarding header carries the client address (`[proxy] client_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientHeader {
    /// `X-Forwarded-For: client, proxy1, ...`
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, ...`
    #[serde(rename = "forwarded")]
    Forwarded,
}

impl ProxyConfig {
    /// The trusted blocks; entries that do not parse (reported by validation) are skipped.
    pub fn cidrs(&self) -> Vec<Cidr> {
        self.trusted
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect()
    }
}

impl GatewayConfig {
    /// Whether a connection from `ip` may take a health place of the descriptor reserve: it is
    /// in `[limits] health_check_cidrs` or is a `[proxy] trusted` peer.
    pub fn may_use_health_reserve(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.limits
            .health_check_cidrs
            .iter()
            .chain(&self.proxy.trusted)
            .filter_map(|c| Cidr::parse(c).ok())
            .any(|c| c.contains(ip))
    }

    /// Checks `[proxy]`, `proxy_protocol` and the accept-time limits.
    pub(super) fn validate_front(&self, errors: &mut Vec<ConfigError>) {
        for (i, c) in self.proxy.trusted.iter().enumerate() {
            if let Err(e) = Cidr::parse(c) {
                errors.push(ConfigError::at(format!("proxy.trusted[{i}]"), e));
            }
        }
        for (i, c) in self.limits.health_check_cidrs.iter().enumerate() {
            if let Err(e) = Cidr::parse(c) {
                errors.push(ConfigError::at(
                    format!("limits.health_check_cidrs[{i}]"),
                    e,
                ));
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.proxy_protocol && self.proxy.trusted.is_empty() {
                errors.push(ConfigError::at(
                    format!("listener[{i}].proxy_protocol"),
                    "needs [proxy] trusted: no peer could send a PROXY header",
                ));
            }
        }
        let limits = &self.limits;
        for (key, value) in [
            ("header_read_timeout_secs", limits.header_read_timeout_secs),
            (
                "socketio_connect_timeout_secs",
                limits.socketio_connect_timeout_secs,
            ),
            (
                "max_tcp_connections_per_ip",
                limits.max_tcp_connections_per_ip as u64,
            ),
        ] {
            if value == 0 {
                errors.push(ConfigError::at(
                    format!("limits.{key}"),
                    "must be at least 1",
                ));
            }
        }
        if limits.reserved_fds < 8 {
            errors.push(ConfigError::at(
                "limits.reserved_fds",
                "must be at least 8 (two of them serve /healthz under a flood)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\n";
    const PLUGIN: &str = "[[plugin]]\ntype = \"room-router\"\n";

    fn problems(extra: &str) -> String {
        match GatewayConfig::from_toml(&format!("{LISTENER}{extra}\n{PLUGIN}")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn proxy_keys_are_checked() {
        assert_eq!(
            problems("[proxy]\ntrusted = [\"127.0.0.1/32\", \"::1\"]"),
            ""
        );
        let bad = problems("[proxy]\ntrusted = [\"nope\"]");
        assert!(bad.contains("proxy.trusted[0]"), "{bad}");
        let lonely = problems("proxy_protocol = true");
        assert!(lonely.contains("listener[0].proxy_protocol"), "{lonely}");
        let unknown = problems("[proxy]\ntrusted = []\ntrust_all = true");
        assert!(unknown.contains("trust_all"), "{unknown}");
    }

    #[test]
    fn health_check_networks_are_checked_and_matched() {
        let bad = problems("[limits]\nhealth_check_cidrs = [\"127.0.0.1/32\", \"nope\"]");
        assert!(bad.contains("limits.health_check_cidrs[1]"), "{bad}");
        let config = GatewayConfig::from_toml(&format!(
            "{LISTENER}[limits]\nhealth_check_cidrs = [\"10.1.0.0/16\"]\n\
             [proxy]\ntrusted = [\"192.0.2.7\"]\n{PLUGIN}"
        ))
        .expect("valid");
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert!(config.may_use_health_reserve(ip("10.1.2.3")));
        assert!(config.may_use_health_reserve(ip("::ffff:10.1.2.3")));
        assert!(
            config.may_use_health_reserve(ip("192.0.2.7")),
            "trusted proxy"
        );
        assert!(!config.may_use_health_reserve(ip("10.2.0.1")));
        assert!(
            !config.may_use_health_reserve(ip("127.0.0.1")),
            "loopback only by default"
        );
    }

    #[test]
    fn accept_limits_are_checked() {
        let bad = problems(
            "[limits]\nheader_read_timeout_secs = 0\nsocketio_connect_timeout_secs = 0\n\
             max_tcp_connections_per_ip = 0\nreserved_fds = 2",
        );
        for key in [
            "limits.header_read_timeout_secs",
            "limits.socketio_connect_timeout_secs",
            "limits.max_tcp_connections_per_ip",
            "limits.reserved_fds",
        ] {
            assert!(bad.contains(key), "{key} not reported: {bad}");
        }
    }
}
