//! Checks of the engine.io 3 POST budget in `[limits]`
//! (`listeners/engineio/budget.rs`).

use super::{ConfigError, GatewayConfig};

impl GatewayConfig {
    /// `engineio3_undelivered_bytes_per_ip` from 1024 to `u32::MAX` (one reservation is a
    /// `u32` of semaphore permits), and the total at least that and at most 1 TiB.
    pub(super) fn validate_post_budget(&self, errors: &mut Vec<ConfigError>) {
        let per_ip = self.limits.engineio3_undelivered_bytes_per_ip;
        let total = self.limits.engineio3_undelivered_bytes_total;
        if !(1024..=u32::MAX as usize).contains(&per_ip) {
            errors.push(ConfigError::at(
                "limits.engineio3_undelivered_bytes_per_ip",
                format!("must be between 1024 and 4294967295, got {per_ip}"),
            ));
        }
        if !(per_ip..=1 << 40).contains(&total) {
            errors.push(ConfigError::at(
                "limits.engineio3_undelivered_bytes_total",
                format!(
                    "must be at least engineio3_undelivered_bytes_per_ip ({per_ip}) and at most \
                     1099511627776, got {total}"
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{GatewayConfig, LimitsConfig, LoadConfigError};

    /// The validation errors of `toml` about the engine.io 3 keys (the other keys a whole
    /// config needs are left out), as text; a parse error whole.
    fn errors(toml: &str) -> Vec<String> {
        match GatewayConfig::from_toml(toml) {
            Ok(_) => Vec::new(),
            Err(LoadConfigError::Invalid(errors)) => errors
                .iter()
                .map(ToString::to_string)
                .filter(|e| e.contains("engineio3"))
                .collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn the_post_budget_defaults_and_bounds() {
        let limits = LimitsConfig::default();
        assert_eq!(limits.engineio3_undelivered_bytes_per_ip, 64 << 20);
        assert_eq!(limits.engineio3_undelivered_bytes_total, 256 << 20);
        assert!(limits.engineio3_undelivered_bytes_per_ip >= limits.engineio3_max_post_bytes);
        let ok = errors("[limits]\nengineio3_undelivered_bytes_per_ip = 1024\n");
        assert!(ok.is_empty(), "{ok:?}");
        let low = errors("[limits]\nengineio3_undelivered_bytes_per_ip = 1023\n");
        assert!(
            low.iter()
                .any(|e| e.contains("limits.engineio3_undelivered_bytes_per_ip")),
            "{low:?}"
        );
        let under = errors(
            "[limits]\nengineio3_undelivered_bytes_per_ip = 2048\n\
             engineio3_undelivered_bytes_total = 2047\n",
        );
        assert!(
            under
                .iter()
                .any(|e| e.contains("limits.engineio3_undelivered_bytes_total")),
            "{under:?}"
        );
        assert!(
            !errors("[limits]\nengineio3_undelivered_bytes = 1\n").is_empty(),
            "an unknown key is refused"
        );
    }
}
