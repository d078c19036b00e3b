//! The host side of a native plugin's outbox: `start` hands the plugin a [`HostOutbox`] whose
//! context is the gateway's [`Outbox`], boxed; the plugin calls [`deliver`] with event JSON
//! from any thread and [`release`] once when it drops its outbox.
//!
//! Both functions catch their own panics: unwinding from the gateway into the plugin's frames
//! would reach the plugin's copy of the standard library, which aborts on a foreign panic.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use switchboard_plugin_abi::{HostOutbox, delivery};
use switchboard_plugin_api::event::Event;
use switchboard_plugin_api::{Outbox, SessionId};

/// A fresh outbox over `outbox` for one `start` call. The plugin owns it from the call on and
/// releases it once; a plugin that never does (a hand-written export that forgets) leaks one
/// `Arc` of the gateway's outbox, which holds the gateway only weakly.
pub(crate) fn host_outbox(outbox: Outbox) -> HostOutbox {
    HostOutbox {
        context: Box::into_raw(Box::new(outbox))
            .cast_const()
            .cast::<c_void>(),
        deliver,
        release,
    }
}

/// `deliver(context, session, event_json, len)`: decodes the event and queues it through the
/// gateway's outbox.
///
/// # Safety
/// `context` must come from [`host_outbox`] and not be released yet; `event` must point to
/// `len` readable bytes (or be null).
unsafe extern "C-unwind" fn deliver(
    context: *const c_void,
    to: u64,
    event: *const u8,
    len: usize,
) -> u32 {
    if context.is_null() || event.is_null() {
        return delivery::FAILED;
    }
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract, `context` is a live `Box<Outbox>` made by
        // `host_outbox` and `event` holds `len` readable bytes for the call.
        let (outbox, bytes) = unsafe {
            (
                &*context.cast::<Outbox>(),
                std::slice::from_raw_parts(event, len),
            )
        };
        let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
            return delivery::NOT_AN_EVENT;
        };
        if outbox.deliver(SessionId(to), event) {
            delivery::DELIVERED
        } else {
            delivery::NO_SESSION
        }
    }))
    .unwrap_or(delivery::FAILED)
}

/// `release(context)`: drops the boxed outbox.
///
/// # Safety
/// `context` must come from [`host_outbox`] and be released only once.
unsafe extern "C-unwind" fn release(context: *const c_void) {
    if context.is_null() {
        return;
    }
    // SAFETY: per this function's contract, `context` is the `Box<Outbox>` leaked by
    // `host_outbox`, released once.
    let outbox = unsafe { Box::from_raw(context.cast_mut().cast::<Outbox>()) };
    // Dropping the gateway's outbox runs no plugin code, but a panic must not unwind into the
    // plugin all the same.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(outbox)));
}
