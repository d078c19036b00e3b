//! The plugin registry: built-in plugin factories by `type` name, and building the pipeline from
//! the config. One code path serves every plugin kind.

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
    /// The built-in plugins, registered explicitly (no link-time magic).
    pub fn builtin() -> Self {
        let mut registry = Self {
            factories: Vec::new(),
        };
        registry.add(Box::new(switchboard_room_router::RoomRouterFactory));
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

    /// Builds the whole pipeline in config order.
    pub fn build_all(&self, configs: &[PluginConfig]) -> Result<Vec<Box<dyn Plugin>>, Vec<String>> {
        let mut plugins = Vec::with_capacity(configs.len());
        let mut errors = Vec::new();
        for c in configs {
            match self.build(&c.kind, &c.settings) {
                Ok(p) => plugins.push(p),
                Err(e) => errors.extend(e.into_iter().map(|m| format!("plugin `{}`: {m}", c.kind))),
            }
        }
        if errors.is_empty() {
            Ok(plugins)
        } else {
            Err(errors)
        }
    }
}
