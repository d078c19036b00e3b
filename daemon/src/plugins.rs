//! The plugin registry: built-in plugin factories by `type` name, and building the pipeline from
//! the config. One code path serves every plugin kind: an entry with `path` is a native plugin
//! loaded by `switchboard-native-plugins`, any other a built-in found by `type`.

use std::sync::Arc;

use switchboard_conference::{ConferenceFactory, Hub};
use switchboard_plugin_api::{Plugin, PluginFactory};

use crate::config::PluginConfig;

/// Plugin factories by type name.
pub struct PluginRegistry {
    factories: Vec<Box<dyn PluginFactory>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.factories.iter().map(|f| f.type_name()))
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

    /// The same, in a cluster: the `sfu` plugin serves a room's media on its home node
    /// (`homing`).
    pub fn builtin_in(
        hub: Arc<Hub>,
        homing: Option<Arc<dyn switchboard_sfu::homing::Homing>>,
    ) -> Self {
        let mut registry = Self {
            factories: Vec::new(),
        };
        registry.add(Box::new(ConferenceFactory::new(Arc::clone(&hub))));
        registry.add(Box::new(switchboard_room_router::RoomRouterFactory));
        registry.add(Box::new(switchboard_room_policy::RoomPolicyFactory));
        registry.add(Box::new(switchboard_logging::LoggingFactory));
        registry.add(Box::new(switchboard_two_peer_relay::TwoPeerRelayFactory));
        registry.add(Box::new(match homing {
            Some(homing) => switchboard_sfu::SfuFactory::with_homing(hub, homing),
            None => switchboard_sfu::SfuFactory::new(hub),
        }));
        registry
    }

    /// Registers a factory.
    pub fn add(&mut self, factory: Box<dyn PluginFactory>) {
        self.factories.push(factory);
    }

    /// Builds one plugin, or lists every problem with its settings.
    pub fn build(
        &self,
        kind: &str,
        settings: &toml::Table,
    ) -> Result<Box<dyn Plugin>, Vec<String>> {
        let Some(factory) = self.factories.iter().find(|f| f.type_name() == kind) else {
            let known: Vec<_> = self.factories.iter().map(|f| f.type_name()).collect();
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
