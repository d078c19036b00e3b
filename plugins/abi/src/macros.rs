//! [`export_plugin!`](crate::export_plugin).

/// Exports the native plugin ABI for a
/// [`PluginFactory`](switchboard_plugin_api::PluginFactory): put
/// `switchboard_plugin_abi::export_plugin!(MyFactory);` in the root of a `cdylib` crate. The
/// argument is an expression evaluated on every `create` (a unit struct's name works).
///
/// The generated functions catch every panic of the plugin and report it as an error, which the
/// gateway logs before disabling the plugin.
#[macro_export]
macro_rules! export_plugin {
    ($factory:expr $(,)?) => {
        /// The plugin ABI version this library was built for; the gateway reads it first.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static SWITCHBOARD_PLUGIN_ABI_VERSION: u32 = $crate::ABI_VERSION;

        /// Builds a plugin instance from its JSON settings.
        ///
        /// # Safety
        /// `settings` must point to `len` readable bytes; `out_len` to a writable `usize`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn switchboard_plugin_create(
            settings: *const u8,
            len: usize,
            out_len: *mut usize,
        ) -> *mut u8 {
            // SAFETY: this function's contract is `create`'s.
            unsafe { $crate::export::create(&$factory, settings, len, out_len) }
        }

        /// Runs one event through instance `handle`.
        ///
        /// # Safety
        /// `input` must point to `len` readable bytes; `out_len` to a writable `usize`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn switchboard_plugin_on_event(
            handle: u64,
            input: *const u8,
            len: usize,
            out_len: *mut usize,
        ) -> *mut u8 {
            // SAFETY: this function's contract is `on_event`'s.
            unsafe { $crate::export::on_event(handle, input, len, out_len) }
        }

        /// Frees a buffer this library returned.
        ///
        /// # Safety
        /// `ptr` and `len` must come from a reply of this library, freed once.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn switchboard_plugin_free(ptr: *mut u8, len: usize) {
            // SAFETY: this function's contract is `free`'s.
            unsafe { $crate::export::free(ptr, len) }
        }

        /// Starts instance `handle` with the host's outbox.
        ///
        /// # Safety
        /// `outbox` must be the host's, valid until released; `out_len` a writable `usize`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn switchboard_plugin_start(
            handle: u64,
            outbox: $crate::HostOutbox,
            out_len: *mut usize,
        ) -> *mut u8 {
            // SAFETY: this function's contract is `start`'s.
            unsafe { $crate::export::start(handle, outbox, out_len) }
        }

        /// Tells instance `handle` that session `session` closed.
        ///
        /// # Safety
        /// `out_len` must point to a writable `usize`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn switchboard_plugin_on_session_closed(
            handle: u64,
            session: u64,
            out_len: *mut usize,
        ) -> *mut u8 {
            // SAFETY: this function's contract is `on_session_closed`'s.
            unsafe { $crate::export::on_session_closed(handle, session, out_len) }
        }

        /// Runs the shutdown hook of instance `handle`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn switchboard_plugin_shutdown(handle: u64) {
            $crate::export::shutdown(handle)
        }

        /// Drops instance `handle`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn switchboard_plugin_destroy(handle: u64) {
            $crate::export::destroy(handle)
        }
    };
}
