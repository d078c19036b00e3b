//! A deliberately broken native plugin for the tests: it panics in `on_event` for room `boom`
//! and passes every other event on. `export_plugin!` catches the panic inside the library and
//! reports it; the gateway disables the plugin and carries on.
//!
//! # Layout
//! One factory, one plugin, and the export.

use switchboard_plugin_api::{
    Decision, EventContext, Plugin, PluginError, PluginFactory, SettingsError, Verdict,
};

/// Builds [`Panicking`]; takes no settings.
#[derive(Debug)]
pub struct PanickingFactory;

impl PluginFactory for PanickingFactory {
    fn type_name(&self) -> &'static str {
        "panicking-plugin"
    }

    fn build(&self, _settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        Ok(Box::new(Panicking))
    }
}

/// Panics for room `boom`.
#[derive(Debug)]
pub struct Panicking;

impl Plugin for Panicking {
    fn name(&self) -> &str {
        "panicking-plugin"
    }

    fn on_event(&self, cx: &EventContext<'_>, _: &mut Decision) -> Result<Verdict, PluginError> {
        if cx.room.room == "boom" {
            panic!("boom: this plugin panics on purpose");
        }
        Ok(Verdict::Continue)
    }
}

switchboard_plugin_abi::export_plugin!(PanickingFactory);
