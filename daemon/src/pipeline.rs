//! The plugin pipeline: every event runs through the plugins in config order. A plugin that
//! fails or panics is disabled and logged; the event and every other session go on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use switchboard_plugin_api::{Decision, EventContext, Outbox, Plugin, Refusal, SessionId, Verdict};

use crate::telemetry;

struct Slot {
    plugin: Box<dyn Plugin>,
    /// Set when the plugin panicked; a panicking plugin's state cannot be trusted again.
    disabled: AtomicBool,
    /// Calls and latency, registered once per plugin name.
    stats: Arc<crate::stats::PluginStats>,
}

/// The ordered plugins.
pub struct Pipeline {
    slots: Vec<Slot>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|s| s.plugin.name()))
            .finish()
    }
}

impl Pipeline {
    /// A pipeline running `plugins` in order.
    pub fn new(plugins: Vec<Box<dyn Plugin>>) -> Self {
        Self {
            slots: plugins
                .into_iter()
                .map(|plugin| Slot {
                    stats: {
                        telemetry::plugin_registered(plugin.name());
                        crate::stats::plugin_stats(plugin.name())
                    },
                    plugin,
                    disabled: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    /// Runs the event through every enabled plugin. Returns the decision and whether a plugin
    /// stopped the pipeline (took the event as its own), or the refusal that stopped it.
    pub fn run(&self, cx: &EventContext<'_>) -> Result<(Decision, bool), Refusal> {
        let mut decision = Decision::default();
        let mut stopped = false;
        for slot in &self.slots {
            if slot.disabled.load(Ordering::Relaxed) {
                continue;
            }
            let before = decision.clone();
            let name = slot.plugin.name();
            let started = slot.stats.call().then(Instant::now);
            let outcome =
                catch_unwind(AssertUnwindSafe(|| slot.plugin.on_event(cx, &mut decision)));
            if let Some(started) = started {
                slot.stats.observe(started.elapsed());
            }
            match outcome {
                Ok(Ok(Verdict::Continue)) => {}
                Ok(Ok(Verdict::Stop)) => {
                    stopped = true;
                    break;
                }
                Ok(Ok(Verdict::Refuse(refusal))) => return Err(refusal),
                Ok(Err(error)) => {
                    telemetry::plugin_failed(name, &error.0);
                    decision = before;
                }
                Err(_) => {
                    telemetry::plugin_failed(name, "panicked; plugin disabled");
                    slot.disabled.store(true, Ordering::Relaxed);
                    decision = before;
                }
            }
        }
        Ok((decision, stopped))
    }

    /// Whether a plugin named `name` is in the pipeline.
    pub fn has(&self, name: &str) -> bool {
        self.slots.iter().any(|s| s.plugin.name() == name)
    }

    /// Starts every plugin with `outbox`, in config order; the first failure is returned with
    /// the plugin's name.
    pub fn start(&self, outbox: &Outbox) -> Result<(), String> {
        for slot in &self.slots {
            let name = slot.plugin.name();
            match catch_unwind(AssertUnwindSafe(|| slot.plugin.start(Arc::clone(outbox)))) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(format!("plugin `{name}` did not start: {error}")),
                Err(_) => return Err(format!("plugin `{name}` panicked while starting")),
            }
        }
        Ok(())
    }

    /// Tells every enabled plugin that `session` closed.
    pub fn session_closed(&self, session: SessionId) {
        for slot in &self.slots {
            if slot.disabled.load(Ordering::Relaxed) {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| slot.plugin.on_session_closed(session))).is_err() {
                telemetry::plugin_failed(slot.plugin.name(), "panicked; plugin disabled");
                slot.disabled.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Calls every plugin's shutdown hook in reverse order.
    pub fn shutdown(&self) {
        for slot in self.slots.iter().rev() {
            if catch_unwind(AssertUnwindSafe(|| slot.plugin.shutdown())).is_err() {
                telemetry::plugin_failed(slot.plugin.name(), "panicked in shutdown");
            }
        }
    }
}
