//! The plugin side of the ABI, called by the functions [`export_plugin!`](crate::export_plugin)
//! generates (and by hand-written exports, as the tests' garbage plugin's). Each function
//! catches panics and reports them as an error reply.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use switchboard_plugin_api::event::Event;
use switchboard_plugin_api::{Decision, Deliver, Plugin, PluginFactory, SessionId};

use crate::{CreateReply, Created, EventInput, EventReply, HookReply, HostOutbox, delivery};

/// Instances of this library's plugin by handle; `None` once destroyed. Each `cdylib` has
/// its own copy of this crate and so its own table.
static INSTANCES: RwLock<Vec<Option<Arc<dyn Plugin>>>> = RwLock::new(Vec::new());

fn instance(handle: u64) -> Option<Arc<dyn Plugin>> {
    let instances = INSTANCES.read().unwrap_or_else(PoisonError::into_inner);
    let index = usize::try_from(handle).ok()?;
    instances.get(index)?.clone()
}

fn register(plugin: Box<dyn Plugin>) -> u64 {
    let mut instances = INSTANCES.write().unwrap_or_else(PoisonError::into_inner);
    instances.push(Some(Arc::from(plugin)));
    (instances.len() - 1) as u64
}

fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        format!("plugin panicked: {message}")
    })
}

/// Reads the host's input buffer.
///
/// # Safety
/// `ptr` must point to `len` readable bytes that stay valid for `'a`, or `len` must be 0.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr` for `'a`.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Hands `reply` to the host as a leaked `Box<[u8]>`, freed by [`free`].
///
/// # Safety
/// `out_len` must be null or point to a writable `usize`.
unsafe fn reply<T: Serialize>(reply: &T, out_len: *mut usize) -> *mut u8 {
    if out_len.is_null() {
        return std::ptr::null_mut();
    }
    let bytes = serde_json::to_vec(reply)
        .unwrap_or_else(|_| br#"{"error":"plugin could not encode its reply"}"#.to_vec())
        .into_boxed_slice();
    // SAFETY: `out_len` is non-null and writable per the caller.
    unsafe { out_len.write(bytes.len()) };
    Box::into_raw(bytes).cast::<u8>()
}

/// `switchboard_plugin_create`: builds an instance with `factory`.
///
/// # Safety
/// `settings` must point to `len` readable bytes; `out_len` must point to a writable `usize`.
pub unsafe fn create(
    factory: &dyn PluginFactory,
    settings: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    // SAFETY: forwarded from this function's contract.
    let settings = unsafe { input(settings, len) };
    let created = guard(|| match serde_json::from_slice::<toml::Table>(settings) {
        Err(e) => CreateReply::Error(format!("settings are not a JSON object: {e}")),
        Ok(settings) => match factory.build(&settings) {
            Ok(plugin) => CreateReply::Ok(Created {
                name: plugin.name().to_owned(),
                handle: register(plugin),
            }),
            Err(problems) => CreateReply::Settings(problems),
        },
    });
    let created = created.unwrap_or_else(CreateReply::Error);
    // SAFETY: forwarded from this function's contract.
    unsafe { reply(&created, out_len) }
}

/// `switchboard_plugin_on_event`: runs [`Plugin::on_event`] of instance `handle`.
///
/// # Safety
/// `input_ptr` must point to `len` readable bytes; `out_len` must point to a writable
/// `usize`.
pub unsafe fn on_event(
    handle: u64,
    input_ptr: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    // SAFETY: forwarded from this function's contract.
    let bytes = unsafe { input(input_ptr, len) };
    let answer = guard(|| run_event(handle, bytes)).unwrap_or_else(EventReply::error);
    // SAFETY: forwarded from this function's contract.
    unsafe { reply(&answer, out_len) }
}

fn run_event(handle: u64, bytes: &[u8]) -> EventReply {
    let Some(plugin) = instance(handle) else {
        return EventReply::error(format!("no plugin instance with handle {handle}"));
    };
    let mut input: EventInput<'_> = match serde_json::from_slice(bytes) {
        Ok(input) => input,
        Err(e) => return EventReply::error(format!("cannot decode the gateway's input: {e}")),
    };
    let mut decision: Decision = std::mem::take(&mut input.decision).into_owned();
    match plugin.on_event(&input.context(), &mut decision) {
        Ok(verdict) => EventReply::ok(verdict, decision),
        Err(e) => EventReply::error(e.0),
    }
}

/// `switchboard_plugin_start`: runs [`Plugin::start`] of instance `handle` with an outbox over
/// the host's. The outbox is released when the plugin drops it (at once if there is no such
/// instance, the plugin fails, or it keeps no copy).
///
/// # Safety
/// `outbox` must be the host's, valid until released; `out_len` must point to a writable
/// `usize`.
pub unsafe fn start(handle: u64, outbox: HostOutbox, out_len: *mut usize) -> *mut u8 {
    // Owned before anything can fail, so that every path releases the host's context once.
    let outbox = Arc::new(PluginOutbox(outbox));
    let answer = guard(|| {
        let Some(plugin) = instance(handle) else {
            return HookReply::Error(format!("no plugin instance with handle {handle}"));
        };
        match plugin.start(outbox) {
            Ok(()) => HookReply::Ok,
            Err(e) => HookReply::Error(e.0),
        }
    })
    .unwrap_or_else(HookReply::Error);
    // SAFETY: forwarded from this function's contract.
    unsafe { reply(&answer, out_len) }
}

/// `switchboard_plugin_on_session_closed`: runs [`Plugin::on_session_closed`] of instance
/// `handle`.
///
/// # Safety
/// `out_len` must point to a writable `usize`.
pub unsafe fn on_session_closed(handle: u64, session: u64, out_len: *mut usize) -> *mut u8 {
    let answer = guard(|| {
        let Some(plugin) = instance(handle) else {
            return HookReply::Error(format!("no plugin instance with handle {handle}"));
        };
        match plugin.on_session_closed(SessionId(session)) {
            Ok(()) => HookReply::Ok,
            Err(e) => HookReply::Error(e.0),
        }
    })
    .unwrap_or_else(HookReply::Error);
    // SAFETY: forwarded from this function's contract.
    unsafe { reply(&answer, out_len) }
}

/// The [`Outbox`](switchboard_plugin_api::Outbox) a native plugin's [`Plugin::start`] receives:
/// each delivery is the event's JSON handed to the host's `deliver`.
#[derive(Debug)]
struct PluginOutbox(HostOutbox);

// SAFETY: the ABI requires the host's `deliver` and `release` to be callable from any thread
// with the context they came with (the gateway's outbox is `Send + Sync`), and the context is
// only ever passed back to them.
unsafe impl Send for PluginOutbox {}
// SAFETY: as for `Send`; `deliver` takes the context by shared pointer.
unsafe impl Sync for PluginOutbox {}

impl Deliver for PluginOutbox {
    fn deliver(&self, to: SessionId, event: Event) -> bool {
        let Ok(json) = serde_json::to_vec(&event) else {
            return false;
        };
        // SAFETY: the context and function are the host's, not yet released (this value is
        // alive); the buffer is valid for the call.
        let status = unsafe { (self.0.deliver)(self.0.context, to.0, json.as_ptr(), json.len()) };
        status == delivery::DELIVERED
    }
}

impl Drop for PluginOutbox {
    fn drop(&mut self) {
        // SAFETY: released once, here, after the last `deliver` (this value is dropped once).
        unsafe { (self.0.release)(self.0.context) }
    }
}

/// `switchboard_plugin_free`: releases a buffer returned by [`create`], [`on_event`],
/// [`start`] or [`on_session_closed`].
///
/// # Safety
/// `ptr` and `len` must be a buffer and length this library returned, freed only once.
pub unsafe fn free(ptr: *mut u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `reply` leaked exactly this `Box<[u8]>` of `len` bytes, and the caller frees
    // it once.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
}

/// `switchboard_plugin_shutdown`: runs [`Plugin::shutdown`] of instance `handle`.
pub fn shutdown(handle: u64) {
    if let Some(plugin) = instance(handle) {
        // A panicking shutdown has nothing left to break; the host logs nothing for it.
        let _ = guard(|| plugin.shutdown());
    }
}

/// `switchboard_plugin_destroy`: drops instance `handle`.
pub fn destroy(handle: u64) {
    let taken = {
        let mut instances = INSTANCES.write().unwrap_or_else(PoisonError::into_inner);
        usize::try_from(handle)
            .ok()
            .and_then(|i| instances.get_mut(i))
            .and_then(Option::take)
    };
    // Dropped outside the lock, and guarded: a plugin's `Drop` may panic too.
    let _ = guard(move || drop(taken));
}
