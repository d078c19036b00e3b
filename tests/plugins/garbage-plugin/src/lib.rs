//! A deliberately broken native plugin for the tests: for room `garbage` its `on_event` reply
//! is bytes that are not JSON; every other event passes through. It writes `on_event` by hand
//! around the helpers `export_plugin!` uses, to be able to misbehave.
//!
//! # Layout
//! A pass-through plugin, then the hand-written exports.
#![allow(unsafe_code)] // The exports are written by hand.

use switchboard_plugin_abi::{self as abi, EventInput, export};
use switchboard_plugin_api::{Plugin, PluginFactory, SettingsError};

/// Builds [`PassThrough`]; takes no settings.
#[derive(Debug)]
pub struct GarbageFactory;

impl PluginFactory for GarbageFactory {
    fn type_name(&self) -> &'static str {
        "garbage-plugin"
    }

    fn build(&self, _settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        Ok(Box::new(PassThrough))
    }
}

/// Passes every event on (the `Plugin` defaults).
#[derive(Debug)]
pub struct PassThrough;

impl Plugin for PassThrough {
    fn name(&self) -> &str {
        "garbage-plugin"
    }
}

/// The ABI version this library was built for.
#[unsafe(no_mangle)]
pub static SWITCHBOARD_PLUGIN_ABI_VERSION: u32 = abi::ABI_VERSION;

/// See [`export::create`].
///
/// # Safety
/// As [`export::create`].
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn switchboard_plugin_create(
    settings: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    // SAFETY: same contract.
    unsafe { export::create(&GarbageFactory, settings, len, out_len) }
}

/// Like [`export::on_event`], except for room `garbage`.
///
/// # Safety
/// As [`export::on_event`].
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn switchboard_plugin_on_event(
    handle: u64,
    input: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    // SAFETY: the caller passes `len` readable bytes at `input`.
    let bytes = unsafe { std::slice::from_raw_parts(input, len) };
    let garbage = serde_json::from_slice::<EventInput<'_>>(bytes)
        .is_ok_and(|input| input.room.room == "garbage");
    if !garbage {
        // SAFETY: same contract.
        return unsafe { export::on_event(handle, input, len, out_len) };
    }
    let reply: Box<[u8]> = b"\xff\xfe this is not JSON {".to_vec().into_boxed_slice();
    // SAFETY: the caller passes a writable `out_len`.
    unsafe { out_len.write(reply.len()) };
    // Freed by `export::free`, which takes back exactly such a boxed slice.
    Box::into_raw(reply).cast::<u8>()
}

/// See [`export::free`].
///
/// # Safety
/// As [`export::free`].
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn switchboard_plugin_free(ptr: *mut u8, len: usize) {
    // SAFETY: same contract.
    unsafe { export::free(ptr, len) }
}
