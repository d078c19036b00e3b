//! Native plugins: `cdylib` shared libraries loaded with libloading from a `[[plugin]]
//! path = "..."` entry, speaking the JSON ABI of [`switchboard_plugin_abi`]. This crate is the
//! host side of that ABI; the plugin side is in `switchboard-plugin-abi`.
//!
//! Loading checks, in order: the file exists, it is a loadable library, it exports
//! `SWITCHBOARD_PLUGIN_ABI_VERSION` with this gateway's [`ABI_VERSION`], it exports every
//! required function, and its `create` accepts the settings. Each failure is one clear message.
//!
//! Every call into a loaded plugin is guarded: a panic reported by the plugin, an `error` reply,
//! or a reply that is not the expected JSON disables the plugin. The wrapper returns `Err` once
//! (the pipeline logs it and counts `switchboard_plugin_failures_total`) and from then on passes
//! every event on without calling the library. Libraries are never unloaded: code or data of a
//! library may still be referenced (a thread it started, a destructor it registered) and
//! `dlclose` under them would crash the gateway.
//!
//! # Layout
//! - [`load`]: open, check and create.
//! - [`NativePlugin`]: the guarded [`Plugin`] around one instance.
//! - `call`: the one place that calls a plugin function returning a buffer.
//! - `outbox`: the host functions behind the outbox a native plugin's `start` receives.

mod outbox;

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use libloading::Library;
use switchboard_plugin_abi::{
    ABI_VERSION, ABI_VERSION_SYMBOL, CREATE_SYMBOL, CreateFn, CreateReply, DESTROY_SYMBOL,
    EventInput, EventReply, FREE_SYMBOL, FreeFn, HandleFn, HookReply, ON_EVENT_SYMBOL,
    ON_SESSION_CLOSED_SYMBOL, OnEventFn, ReplyError, SHUTDOWN_SYMBOL, START_SYMBOL,
    SessionClosedFn, StartFn,
};
use switchboard_plugin_api::{
    Decision, EventContext, Outbox, Plugin, PluginError, SessionId, Verdict,
};

/// The functions of one loaded library.
#[derive(Clone, Copy)]
struct Api {
    on_event: OnEventFn,
    free: FreeFn,
    start: Option<StartFn>,
    session_closed: Option<SessionClosedFn>,
    shutdown: Option<HandleFn>,
    destroy: Option<HandleFn>,
}

/// Loads the plugin library at `path` and creates one instance with `settings`. Returns every
/// problem as a message that names the file.
pub fn load(path: &Path, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<String>> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(vec![format!("native plugin {shown} is not a file")]),
        Err(e) => return Err(vec![format!("cannot load native plugin {shown}: {e}")]),
    }
    // SAFETY: opening a library runs its initializers, which nothing can check beforehand; the
    // operator named this file as a plugin to run inside the gateway. The library is leaked, so
    // every symbol taken from it below stays valid for the rest of the process.
    let library: &'static Library = match unsafe { Library::new(path) } {
        Ok(library) => Box::leak(Box::new(library)),
        Err(e) => {
            return Err(vec![format!(
                "{shown} is not a loadable shared library: {e}"
            )]);
        }
    };

    // The version is read before anything else: a library of another ABI version may have
    // functions of the same names and different signatures.
    // SAFETY: the ABI declares this symbol a `static u32`; only its address is taken here.
    let version = match unsafe { library.get::<*const u32>(ABI_VERSION_SYMBOL.as_bytes()) } {
        // SAFETY: the symbol is a `static u32` in a library that is never unloaded.
        Ok(symbol) => unsafe { **symbol },
        Err(_) => {
            return Err(vec![format!(
                "{shown} is not a Switchboard plugin: it does not export \
                 {ABI_VERSION_SYMBOL} (plugins call switchboard_plugin_abi::export_plugin!)"
            )]);
        }
    };
    if version != ABI_VERSION {
        return Err(vec![format!(
            "{shown} was built for ABI {version}, this gateway speaks ABI {ABI_VERSION}; \
             rebuild the plugin against this gateway's switchboard-plugin-api"
        )]);
    }

    // SAFETY: the ABI version, checked above, declares each of these symbols as a function
    // of exactly this type.
    let (create, on_event, free) = unsafe {
        (
            symbol::<CreateFn>(library, CREATE_SYMBOL),
            symbol::<OnEventFn>(library, ON_EVENT_SYMBOL),
            symbol::<FreeFn>(library, FREE_SYMBOL),
        )
    };
    let (Some(create), Some(on_event), Some(free)) = (create, on_event, free) else {
        let present = [
            (CREATE_SYMBOL, create.is_some()),
            (ON_EVENT_SYMBOL, on_event.is_some()),
            (FREE_SYMBOL, free.is_some()),
        ];
        return Err(present
            .into_iter()
            .filter(|(_, present)| !present)
            .map(|(name, _)| {
                format!("{shown} does not export `{name}`, which ABI {ABI_VERSION} requires")
            })
            .collect());
    };
    // SAFETY: as above, for the optional functions.
    let (start, session_closed, shutdown, destroy) = unsafe {
        (
            symbol::<StartFn>(library, START_SYMBOL),
            symbol::<SessionClosedFn>(library, ON_SESSION_CLOSED_SYMBOL),
            symbol::<HandleFn>(library, SHUTDOWN_SYMBOL),
            symbol::<HandleFn>(library, DESTROY_SYMBOL),
        )
    };
    let api = Api {
        on_event,
        free,
        start,
        session_closed,
        shutdown,
        destroy,
    };

    let settings_json = serde_json::to_vec(settings)
        .map_err(|e| vec![format!("cannot pass settings to {shown}: {e}")])?;
    let reply = call(api.free, |out_len| {
        // SAFETY: `create`'s contract: the settings buffer is valid for the call and `out_len`
        // points to a local.
        unsafe { create(settings_json.as_ptr(), settings_json.len(), out_len) }
    })
    .and_then(|bytes| {
        serde_json::from_slice::<CreateReply>(&bytes)
            .map_err(|e| format!("returned an invalid reply ({e}): {}", preview(&bytes)))
    });
    match reply {
        Ok(CreateReply::Ok(created)) => Ok(Box::new(NativePlugin {
            name: created.name,
            path: path.to_owned(),
            handle: created.handle,
            api,
            disabled: AtomicBool::new(false),
        })),
        Ok(CreateReply::Settings(problems)) => Err(problems
            .into_iter()
            .map(|e| {
                if e.key.is_empty() {
                    e.message
                } else {
                    format!("settings.{e}")
                }
            })
            .collect()),
        Ok(CreateReply::Error(e)) => Err(vec![format!("{shown}: create failed: {e}")]),
        Err(e) => Err(vec![format!("{shown}: create {e}")]),
    }
}

/// The function `name` of `library`, if it exports it.
///
/// # Safety
/// `T` must be the function pointer type the ABI declares for `name`.
unsafe fn symbol<T: Copy>(library: &'static Library, name: &str) -> Option<T> {
    // SAFETY: the type is the caller's promise; the library is never unloaded, so the copied
    // pointer outlives the `Symbol` borrow.
    unsafe { library.get::<T>(name.as_bytes()) }
        .ok()
        .map(|f| *f)
}

/// Calls a plugin function that returns a buffer, copies the buffer and frees it. Errors when
/// the call unwinds or returns null.
///
/// A panic that unwinds out of a plugin's own standard library aborts the process before it
/// reaches this `catch_unwind` (Rust cannot catch a foreign Rust panic); `export_plugin!`
/// catches panics inside the plugin for that reason. This guard covers the host side.
fn call(free: FreeFn, f: impl FnOnce(*mut usize) -> *mut u8) -> Result<Vec<u8>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut len = 0usize;
        let ptr = f(&mut len);
        if ptr.is_null() {
            return Err("returned no reply (a null pointer)".to_owned());
        }
        // SAFETY: per the ABI the plugin returned `len` readable bytes at `ptr`, valid until
        // they are freed below.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
        // SAFETY: `ptr` and `len` are the buffer just returned, freed once, after its last use.
        unsafe { free(ptr, len) };
        Ok(bytes)
    }))
    .unwrap_or_else(|_| Err("panicked".to_owned()))
}

/// The start of a reply, for the log line of a malformed one.
fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let mut out = format!("{text:?}");
    if bytes.len() > MAX {
        let _ = write!(out, " ({} bytes)", bytes.len());
    }
    out
}

/// One instance of a loaded plugin, guarded.
pub struct NativePlugin {
    name: String,
    path: PathBuf,
    handle: u64,
    api: Api,
    /// Set on the first failure; a plugin that failed is never called again.
    disabled: AtomicBool,
}

impl std::fmt::Debug for NativePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("handle", &self.handle)
            .field("disabled", &self.disabled.load(Ordering::Relaxed))
            .finish()
    }
}

impl NativePlugin {
    /// Whether a failure disabled this plugin.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Disables the plugin and says why, once; a concurrent failure says less.
    fn fail(&self, reason: impl std::fmt::Display) -> PluginError {
        if self.disabled.swap(true, Ordering::Relaxed) {
            // Another thread's call failed first and reported it; this event failed all the
            // same, and the host's failure policy decides what becomes of it.
            return PluginError("failed while being disabled".into());
        }
        PluginError(format!(
            "native plugin {} {reason}; it is disabled (its on_failure policy applies to later events)",
            self.path.display()
        ))
    }

    /// Runs a hook that answers a [`HookReply`] (`start`, `on_session_closed`); any failure
    /// disables the plugin.
    fn hook(&self, name: &str, f: impl FnOnce(*mut usize) -> *mut u8) -> Result<(), PluginError> {
        let parsed = call(self.api.free, f).and_then(|bytes| {
            serde_json::from_slice::<HookReply>(&bytes)
                .map_err(|e| format!("returned an invalid reply ({e}): {}", preview(&bytes)))
        });
        match parsed {
            Ok(HookReply::Ok) => Ok(()),
            Ok(HookReply::Error(e)) => Err(self.fail(format_args!("{name} failed: {e}"))),
            Err(e) => Err(self.fail(format_args!("{name} {e}"))),
        }
    }
}

impl Plugin for NativePlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_disabled(&self) -> bool {
        NativePlugin::is_disabled(self)
    }

    fn on_event(
        &self,
        cx: &EventContext<'_>,
        decision: &mut Decision,
    ) -> Result<Verdict, PluginError> {
        if self.is_disabled() {
            return Ok(Verdict::Continue);
        }
        let input = match serde_json::to_vec(&EventInput::new(cx, decision)) {
            Ok(input) => input,
            Err(e) => return Err(self.fail(format_args!("could not be given the event: {e}"))),
        };
        let reply = call(self.api.free, |out_len| {
            // SAFETY: `on_event`'s contract: `handle` came from this library's `create`, the
            // input buffer is valid for the call and `out_len` points to a local.
            unsafe { (self.api.on_event)(self.handle, input.as_ptr(), input.len(), out_len) }
        });
        let bytes = match reply {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.fail(e)),
        };
        let parsed = serde_json::from_slice::<EventReply>(&bytes)
            .map_err(|e| ReplyError::Malformed(format!("{e}: {}", preview(&bytes))))
            .and_then(EventReply::into_result);
        match parsed {
            Ok((verdict, amended)) => {
                *decision = amended;
                Ok(verdict)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn start(&self, outbox: Outbox) -> Result<(), PluginError> {
        let Some(start) = self.api.start else {
            return Ok(());
        };
        let host = outbox::host_outbox(outbox);
        self.hook("start", |out_len| {
            // SAFETY: `start`'s contract: `handle` came from this library's `create`, `host` is
            // a fresh outbox the plugin now owns (it releases it), `out_len` points to a local.
            unsafe { start(self.handle, host, out_len) }
        })
    }

    fn on_session_closed(&self, session: SessionId) -> Result<(), PluginError> {
        let (false, Some(closed)) = (self.is_disabled(), self.api.session_closed) else {
            return Ok(());
        };
        self.hook("on_session_closed", |out_len| {
            // SAFETY: `on_session_closed`'s contract: `handle` came from this library's
            // `create` and `out_len` points to a local.
            unsafe { closed(self.handle, session.0, out_len) }
        })
    }

    fn shutdown(&self) {
        if let (false, Some(shutdown)) = (self.is_disabled(), self.api.shutdown) {
            // SAFETY: `handle` came from this library's `create`. The plugin side catches
            // panics; this guard covers the host side.
            let _ = catch_unwind(|| unsafe { shutdown(self.handle) });
        }
    }
}

impl Drop for NativePlugin {
    fn drop(&mut self) {
        // A disabled plugin is not called again, even to free its instance.
        if let (false, Some(destroy)) = (self.is_disabled(), self.api.destroy) {
            // SAFETY: `handle` came from this library's `create` and is destroyed once.
            let _ = catch_unwind(|| unsafe { destroy(self.handle) });
        }
    }
}
