//! Configuration reload (SIGHUP): the file is read and validated first (every plugin's settings
//! included); on any error the running configuration stays and the error is logged. A valid
//! file replaces the configuration as a whole, and the plugin pipeline is rebuilt when the
//! `[[plugin]]` list changed.
//!
//! What a reload changes at once: `[limits]` (for connections accepted from then on; open
//! sessions keep the limits they started with), `[ice]`, `[turn]`, `[admin]`, `[web]`, `[rest]`,
//! and the
//! plugin pipeline (in-flight events finish on the old one, whose plugins then get their
//! `shutdown`; plugin state such as rate buckets starts afresh). What needs a restart, and is
//! reported in the log when it differs: `[[listener]]` (binds, dialects, pages, TLS), `[log]`,
//! `[cluster]`,
//! `[shutdown]`, and the conference tables read at start (`[store]`, `[[antmedia_app]]`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use crate::pipeline::Pipeline;
use crate::plugins::PluginRegistry;
use crate::telemetry;

/// What a successful reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Tables whose new values are in effect.
    pub applied: Vec<String>,
    /// Tables that changed but keep their old values until a restart.
    pub needs_restart: Vec<String>,
}

/// Reads and validates `path`, then applies it. On error nothing changes.
pub fn reload_file(
    gateway: &Arc<Gateway>,
    registry: &PluginRegistry,
    path: &Path,
) -> Result<Reloaded, String> {
    match GatewayConfig::load(path) {
        Ok(config) => apply(gateway, registry, config),
        Err(e) => {
            let error = format!("{}: {e}", path.display());
            telemetry::config_reload_failed(&error);
            Err(error)
        }
    }
}

/// Applies a validated configuration. Fails (changing nothing) only if the new plugin
/// pipeline cannot be built.
pub fn apply(
    gateway: &Arc<Gateway>,
    registry: &PluginRegistry,
    new: GatewayConfig,
) -> Result<Reloaded, String> {
    let old = gateway.config();
    let mut report = Reloaded::default();
    let pipeline = if new.plugins == old.plugins {
        None
    } else {
        match registry.pipeline(&new.plugins) {
            Ok(pipeline) => Some(pipeline),
            Err(errors) => {
                let error = format!("cannot build plugins: {}", errors.join("; "));
                telemetry::config_reload_failed(&error);
                return Err(error);
            }
        }
    };
    let mut note = |changed: bool, table: &str, applied: bool| {
        if changed {
            let list = if applied {
                &mut report.applied
            } else {
                &mut report.needs_restart
            };
            list.push(table.to_owned());
        }
    };
    note(new.limits != old.limits, "[limits] (new connections)", true);
    note(new.ice != old.ice, "[ice]", true);
    note(new.turn != old.turn, "[turn]", true);
    note(new.proxy != old.proxy, "[proxy] (new connections)", true);
    note(new.admin != old.admin, "[admin]", true);
    note(
        new.web.node_modules_dir != old.web.node_modules_dir,
        "[web]",
        true,
    );
    note(pipeline.is_some(), "[[plugin]]", true);
    note(new.listeners != old.listeners, "[[listener]]", false);
    note(new.log != old.log, "[log]", false);
    note(new.cluster != old.cluster, "[cluster]", false);
    note(
        new.shutdown.grace_period_secs != old.shutdown.grace_period_secs,
        "[shutdown]",
        false,
    );
    // The conference tables have no equality of their own; their debug text serves.
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    note(differs(&new.rest, &old.rest), "[rest]", true);
    note(differs(&new.store, &old.store), "[store]", false);
    note(
        differs(&new.antmedia_apps, &old.antmedia_apps),
        "[[antmedia_app]]",
        false,
    );
    // Tables read once at start must not change under the running parts that read them.
    let mut new = new;
    new.listeners = old.listeners.clone();
    new.log = old.log.clone();
    new.shutdown = old.shutdown.clone();
    new.store = old.store.clone();
    new.antmedia_apps = old.antmedia_apps.clone();
    gateway.set_config(Arc::new(new));
    if let Some(pipeline) = pipeline {
        retire(gateway.dispatcher().swap_pipeline(pipeline));
        // The new plugins start while the old ones retire; a plugin that needs what an old one
        // holds (a media plugin's UDP port) waits for it in its own task.
        if let Err(error) = gateway.start_plugins() {
            telemetry::config_reload_failed(&error);
        }
    }
    telemetry::config_reloaded(&report.applied, &report.needs_restart);
    Ok(report)
}

/// Calls the replaced pipeline's shutdown hooks once no event is running through it any more
/// (dispatch holds a reference for the duration of one event).
fn retire(old: Arc<Pipeline>) {
    let shutdown = async move {
        for _ in 0..500 {
            if Arc::strong_count(&old) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::task::spawn_blocking(move || old.shutdown()).await;
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(shutdown);
        }
        Err(_) => tracing::warn!("No runtime to retire the old plugin pipeline on."),
    }
}
