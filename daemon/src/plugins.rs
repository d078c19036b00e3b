//! The plugin registry: built-in plugin factories by `type` name, and building the pipeline from
//! the config. One code path serves every plugin kind: an entry with `path` is a native plugin
//! loaded by `switchboard-native-plugins`, any other a built-in found by `type`. A factory may
//! come with a prefetch hook (with `[cluster]`: the conference plugin's reads of the catalog, the
//! sfu plugin's claims of media homes), which the pipeline of a plugin it built carries.

use std::sync::Arc;

use switchboard_conference::{ConferenceFactory, Hub};
use switchboard_plugin_api::{Plugin, PluginFactory};

use crate::cluster::Cluster;
use crate::config::PluginConfig;
use crate::gateway::prefetch::{CatalogPrefetch, HomePrefetch, Prefetch};
use crate::pipeline::Pipeline;

/// Plugin factories by type name.
pub struct PluginRegistry {
    factories: Vec<Registered>,
}

/// A factory, and what the dispatcher reads for the plugins it builds before it locks a room.
struct Registered {
    factory: Box<dyn PluginFactory>,
    prefetch: Option<Arc<dyn Prefetch>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.factories.iter().map(|r| r.factory.type_name()))
            .finish()
    }
}

impl PluginRegistry {
    /// The built-in plugins, registered explicitly (no link-time magic). Conference plugins get
    /// a hub of their own, in memory (enough to validate settings).
    pub fn builtin() -> Self {
        Self::builtin_with(Arc::new(Hub::in_memory()))
    }

    /// The built-in plugins, the conference plugin on `hub` (the one the REST API serves).
    pub fn builtin_with(hub: Arc<Hub>) -> Self {
        Self::builtin_in(hub, None)
    }

    /// The same, in a cluster: the `sfu` plugin serves a room's media on its home node, and
    /// the conference and sfu plugins come with their prefetch hooks (the catalog's reads, then
    /// the claim of a room's media home: that order, the registry's, is the order they run in).
    pub fn builtin_in(hub: Arc<Hub>, cluster: Option<&Cluster>) -> Self {
        let mut registry = Self {
            factories: Vec::new(),
        };
        let catalog =
            cluster.map(|_| Arc::new(CatalogPrefetch::new(Arc::clone(&hub))) as Arc<dyn Prefetch>);
        registry.add_with_prefetch(Box::new(ConferenceFactory::new(Arc::clone(&hub))), catalog);
        registry.add(Box::new(switchboard_room_router::RoomRouterFactory));
        registry.add(Box::new(switchboard_room_policy::RoomPolicyFactory));
        registry.add(Box::new(switchboard_logging::LoggingFactory));
        registry.add(Box::new(switchboard_two_peer_relay::TwoPeerRelayFactory));
        match cluster {
            Some(cluster) => {
                let homing = Arc::clone(cluster.homing());
                registry.add_with_prefetch(
                    Box::new(switchboard_sfu::SfuFactory::with_homing(
                        hub,
                        homing.clone(),
                    )),
                    Some(Arc::new(HomePrefetch::new(homing))),
                );
            }
            None => registry.add(Box::new(switchboard_sfu::SfuFactory::new(hub))),
        }
        registry
    }

    /// Registers a factory.
    pub fn add(&mut self, factory: Box<dyn PluginFactory>) {
        self.add_with_prefetch(factory, None);
    }

    /// Registers a factory whose plugins come with `prefetch`: a pipeline that runs one of
    /// them runs the hook too ([`Self::pipeline`]).
    pub fn add_with_prefetch(
        &mut self,
        factory: Box<dyn PluginFactory>,
        prefetch: Option<Arc<dyn Prefetch>>,
    ) {
        self.factories.push(Registered { factory, prefetch });
    }

    /// Builds one plugin, or lists every problem with its settings.
    pub fn build(
        &self,
        kind: &str,
        settings: &toml::Table,
    ) -> Result<Box<dyn Plugin>, Vec<String>> {
        let Some(factory) = self.factory(kind) else {
            let known: Vec<_> = self
                .factories
                .iter()
                .map(|r| r.factory.type_name())
                .collect();
            return Err(vec![format!(
                "unknown plugin type `{kind}` (known: {})",
                known.join(", ")
            )]);
        };
        factory.build(settings).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    if e.key.is_empty() {
                        e.message
                    } else {
                        format!("settings.{e}")
                    }
                })
                .collect()
        })
    }

    /// Builds the plugin of one `[[plugin]]` entry: loaded from `path` when it has one, built-in
    /// by `type` otherwise.
    pub fn build_config(&self, config: &PluginConfig) -> Result<Box<dyn Plugin>, Vec<String>> {
        match &config.path {
            Some(path) => switchboard_native_plugins::load(path, &config.settings),
            None => self.build(&config.kind, &config.settings),
        }
    }

    /// The factory of built-in plugins of type `kind`, with its position in the registry.
    fn registered(&self, kind: &str) -> Option<(usize, &Registered)> {
        self.factories
            .iter()
            .enumerate()
            .find(|(_, r)| r.factory.type_name() == kind)
    }

    fn factory(&self, kind: &str) -> Option<&dyn PluginFactory> {
        self.registered(kind).map(|(_, r)| &*r.factory)
    }

    /// The pipeline of `configs`: its plugins in config order, each with its entry's failure
    /// policy, and the prefetch hooks of the factories that built them, in the registry's
    /// order (each once).
    pub fn pipeline(&self, configs: &[PluginConfig]) -> Result<Pipeline, Vec<String>> {
        let plugins = self.build_all(configs)?;
        let mut used: Vec<usize> = configs
            .iter()
            .filter(|c| c.path.is_none())
            .filter_map(|c| self.registered(&c.kind))
            .filter(|(_, r)| r.prefetch.is_some())
            .map(|(i, _)| i)
            .collect();
        used.sort_unstable();
        used.dedup();
        let prefetches = used
            .into_iter()
            .filter_map(|i| self.factories[i].prefetch.clone())
            .collect();
        Ok(Pipeline::configured(plugins, configs).with_prefetches(prefetches))
    }

    /// Builds the whole pipeline in config order.
    pub fn build_all(&self, configs: &[PluginConfig]) -> Result<Vec<Box<dyn Plugin>>, Vec<String>> {
        let mut plugins = Vec::with_capacity(configs.len());
        let mut errors = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            match self.build_config(c) {
                Ok(p) => plugins.push(p),
                Err(e) => errors.extend(
                    e.into_iter()
                        .map(|m| format!("plugin[{i}] ({}): {m}", c.kind)),
                ),
            }
        }
        if errors.is_empty() {
            Ok(plugins)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use switchboard_plugin_api::{Decision, EventContext, PluginError, SessionId, Verdict};
    use switchboard_protocol::Event;

    use super::*;
    use crate::envelope::Envelope;
    use crate::gateway::prefetch::Step;

    /// A plugin type of its own, whose factory comes with a prefetch.
    struct Marked;

    impl Plugin for Marked {
        fn name(&self) -> &str {
            "marked"
        }

        fn on_event(&self, _: &EventContext<'_>, _: &mut Decision) -> Result<Verdict, PluginError> {
            Ok(Verdict::Continue)
        }
    }

    impl PluginFactory for Marked {
        fn type_name(&self) -> &'static str {
            "marked"
        }

        fn build(
            &self,
            _: &toml::Table,
        ) -> Result<Box<dyn Plugin>, Vec<switchboard_plugin_api::SettingsError>> {
            Ok(Box::new(Marked))
        }
    }

    struct NoReads;

    impl Prefetch for NoReads {
        fn wants(&self, _: &Event) -> bool {
            false
        }

        fn prepare<'a>(&'a self, _: &Envelope) -> Step<'a> {
            Box::pin(async {})
        }

        fn settle<'a>(&'a self, _: SessionId) -> Step<'a> {
            Box::pin(async {})
        }
    }

    fn entry(kind: &str) -> PluginConfig {
        PluginConfig {
            kind: kind.to_owned(),
            path: None,
            on_failure: None,
            settings: toml::Table::new(),
        }
    }

    #[test]
    fn a_pipeline_carries_the_prefetch_of_the_factories_that_built_its_plugins() {
        let mut registry = PluginRegistry::builtin();
        let hook: Arc<dyn Prefetch> = Arc::new(NoReads);
        registry.add_with_prefetch(Box::new(Marked), Some(Arc::clone(&hook)));
        let without = registry.pipeline(&[entry("room-router")]).unwrap();
        assert!(without.prefetches().is_empty());
        // Twice in the pipeline, once as a hook.
        let with = registry
            .pipeline(&[entry("marked"), entry("room-router"), entry("marked")])
            .unwrap();
        assert_eq!(with.prefetches().len(), 1);
        assert!(Arc::ptr_eq(&with.prefetches()[0], &hook));
        // Without [cluster], the built-in conference and sfu plugins come with none.
        let conference = registry
            .pipeline(&[entry("conference"), entry("sfu")])
            .unwrap();
        assert!(conference.prefetches().is_empty());
    }
}
