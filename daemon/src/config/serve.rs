//! `serve = [...]` on a `[[listener]]`: which groups of routes a listener answers, so an
//! operator keeps `/metrics`, the admin API and the REST API off the internet-facing port.

use serde::Deserialize;
use switchboard_protocol::DialectKind;

use super::{ConfigError, ListenerConfig};

/// One group of routes a listener can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The dialects of `dialects`: Ant Media at `/{app}/websocket`, raw at `/ws/{room}`,
    /// socket.io at `/socket.io/` (with its client script).
    Signaling,
    /// The pages of `pages` and, for `pages = "demo"`, `/node_modules/`.
    Pages,
    /// The Ant Media REST API under `/{app}/rest/v2/` (still limited by `[rest] allowed_cidrs`).
    Rest,
    /// The admin API under `/api/` and the dashboard at `/admin/` (still needing `[admin] token`).
    Admin,
    /// `GET /metrics`.
    Metrics,
    /// `GET /healthz` and `GET /readyz`.
    Health,
}

impl Service {
    /// Every service, in the order the docs list them.
    pub const ALL: [Self; 6] = [
        Self::Signaling,
        Self::Pages,
        Self::Rest,
        Self::Admin,
        Self::Metrics,
        Self::Health,
    ];
}

impl ListenerConfig {
    /// Whether this listener serves `service`. Without a `serve` key a listener serves what
    /// every listener served before the key existed: everything, with the REST API only where
    /// the Ant Media dialect is served.
    pub fn serves(&self, service: Service) -> bool {
        match &self.serve {
            Some(list) => list.contains(&service),
            None => service != Service::Rest || self.dialects.contains(&DialectKind::Antmedia),
        }
    }

    /// Problems with `serve`, pushed with `at` as the key's location.
    pub(super) fn validate_serve(&self, at: &str, errors: &mut Vec<ConfigError>) {
        let Some(list) = &self.serve else { return };
        if list.is_empty() {
            errors.push(ConfigError::at(
                at,
                "must name at least one of signaling, pages, rest, admin, metrics, health",
            ));
        }
        for (i, service) in list.iter().enumerate() {
            if list[..i].contains(service) {
                errors.push(ConfigError::at(
                    format!("{at}[{i}]"),
                    format!("{service:?} is listed twice").to_lowercase(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GatewayConfig, LoadConfigError};

    fn listener(extra: &str) -> Result<GatewayConfig, LoadConfigError> {
        GatewayConfig::from_toml(&format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\n{extra}\n[[plugin]]\ntype = \"room-router\"\n"
        ))
    }

    #[test]
    fn without_serve_a_listener_serves_what_it_always_did() {
        let all = listener("").expect("valid");
        assert!(Service::ALL.iter().all(|s| all.listeners[0].serves(*s)));
        let classic = listener("dialects = [\"socketio\"]").expect("valid");
        assert!(
            !classic.listeners[0].serves(Service::Rest),
            "REST came with antmedia"
        );
        assert!(classic.listeners[0].serves(Service::Metrics));
    }

    #[test]
    fn serve_lists_exactly_what_is_served() {
        let c = listener("serve = [\"metrics\", \"health\"]").expect("valid");
        let l = &c.listeners[0];
        assert!(l.serves(Service::Metrics) && l.serves(Service::Health));
        for s in [
            Service::Signaling,
            Service::Pages,
            Service::Rest,
            Service::Admin,
        ] {
            assert!(!l.serves(s), "{s:?}");
        }
    }

    #[test]
    fn empty_duplicate_and_unknown_services_are_errors() {
        let Err(LoadConfigError::Invalid(errors)) = listener("serve = []") else {
            panic!("empty serve must be refused");
        };
        assert_eq!(errors[0].location, "listener[0].serve");
        let Err(LoadConfigError::Invalid(errors)) = listener("serve = [\"health\", \"health\"]")
        else {
            panic!("a duplicate must be refused");
        };
        assert_eq!(errors[0].location, "listener[0].serve[1]");
        let Err(LoadConfigError::Parse(e)) = listener("serve = [\"metrcs\"]") else {
            panic!("an unknown service must be refused");
        };
        assert!(e.contains("line") && e.contains("metrcs"), "{e}");
    }
}
