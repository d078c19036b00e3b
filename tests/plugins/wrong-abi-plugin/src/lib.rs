//! A native plugin built for an ABI no gateway speaks: the gateway must refuse it after reading
//! the version, before it looks up (or calls) anything else, which is why it exports nothing
//! but the version.
//!
//! # Layout
//! The version symbol only.
#![allow(unsafe_code)] // `no_mangle` is how the version symbol is exported.

/// The ABI version this library claims.
#[unsafe(no_mangle)]
pub static SWITCHBOARD_PLUGIN_ABI_VERSION: u32 = 999;
