//! A small Prometheus text-format registry: counters and gauges with fixed label sets, updated
//! through [`crate::telemetry`] so names and labels live in one place. Lock-free on the hot path
//! (one atomic add per update after the first).

pub mod process;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// One metric family: name, help text and kind.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Metric name, e.g. `switchboard_sessions`.
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
}

type Key = (&'static str, Vec<(&'static str, String)>);

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    families: RwLock<BTreeMap<&'static str, Family>>,
    values: RwLock<BTreeMap<Key, Arc<AtomicI64>>>,
}

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

impl Metrics {
    /// Adds `delta` to the series `family{labels}`.
    pub fn add(&self, family: Family, labels: &[(&'static str, &str)], delta: i64) {
        let key: Key = (
            family.name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        if let Some(v) = self
            .values
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            v.fetch_add(delta, Ordering::Relaxed);
            return;
        }
        self.families
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(family.name)
            .or_insert(family);
        self.values
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// The current value of a series (0 if never touched).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> i64 {
        let key: Key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        values.get(&key).map_or(0, |v| v.load(Ordering::Relaxed))
    }

    /// Renders every series in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let families = self.families.read().unwrap_or_else(PoisonError::into_inner);
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for family in families.values() {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            for ((name, labels), value) in values.iter().filter(|((n, _), _)| *n == family.name) {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", labels.join(","))
                };
                let _ = writeln!(out, "{name}{labels} {}", value.load(Ordering::Relaxed));
            }
        }
        out
    }
}

/// Escapes a label value.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
