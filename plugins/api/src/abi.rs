//! The C ABI of native plugins: shared libraries (`cdylib`) the gateway loads from a
//! `[[plugin]] path = "..."` entry. Plugin authors do not write any of it by hand: implement
//! [`PluginFactory`] and [`Plugin`] as for a built-in plugin and call
//! [`export_plugin!`](crate::export_plugin) once in the crate root.
//!
//! # Symbols (ABI version 1)
//! | symbol | signature | required |
//! | --- | --- | --- |
//! | `SWITCHBOARD_PLUGIN_ABI_VERSION` | `static u32` | yes, read first |
//! | `switchboard_plugin_create` | [`CreateFn`]: settings JSON in, [`CreateReply`] JSON out | yes |
//! | `switchboard_plugin_on_event` | [`OnEventFn`]: [`EventInput`] JSON in, [`EventReply`] JSON out | yes |
//! | `switchboard_plugin_free` | [`FreeFn`]: frees a buffer the plugin returned | yes |
//! | `switchboard_plugin_shutdown` | [`HandleFn`]: [`Plugin::shutdown`] of one instance | no |
//! | `switchboard_plugin_destroy` | [`HandleFn`]: drops one instance | no |
//!
//! The host reads `SWITCHBOARD_PLUGIN_ABI_VERSION` before it looks anything else up and refuses
//! a library built for another version. Every function is `extern "C-unwind"`.
//!
//! # Data
//! Everything crosses as UTF-8 JSON, data only (no pointers): the host passes a pointer and a
//! length it owns for the duration of the call; the plugin returns a buffer it allocated and
//! writes its length to `out_len`; the host copies what it needs and hands the buffer back to
//! `switchboard_plugin_free` with the same length. An instance is named by an opaque `u64`
//! handle that `create` returns.
//!
//! - create input: the `[plugin.settings]` table as a JSON object.
//! - create reply ([`CreateReply`]): `{"ok":{"name":"lobby-router","handle":0}}`,
//!   `{"settings":[{"key":"prefix","message":"must not be empty"}]}` or `{"error":"..."}`.
//! - event input ([`EventInput`]):
//!   `{"envelope":{"from":Peer,"event":Event},"room":{"room":"r","members":[Peer]},"decision":Decision}`.
//! - event reply ([`EventReply`]): `{"verdict":"continue"|"stop"|{"refuse":Refusal},"decision":Decision}`
//!   or `{"error":"..."}`.
//!
//! # Failures
//! A Rust panic cannot cross from one copy of the standard library into another: a plugin is a
//! `cdylib` with its own, so a panic unwinding out of it makes the gateway abort ("Rust cannot
//! catch foreign exceptions"). The functions [`export_plugin!`](crate::export_plugin) generates
//! therefore catch every panic inside the plugin and turn it into an `{"error":...}` reply. The
//! gateway disables a plugin after its first error, panic or malformed reply.
//!
//! Rust has no stable ABI for anything but these symbols and the JSON, so a plugin may be built
//! with any toolchain; it must be built against a `switchboard-plugin-api` with the same
//! [`ABI_VERSION`] and the same event vocabulary as the gateway.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use switchboard_protocol::Event;

use crate::{
    Decision, Envelope, EventContext, Peer, Plugin, PluginFactory, RoomView, SettingsError, Verdict,
};

/// The ABI version this crate speaks; exported by every plugin as
/// `SWITCHBOARD_PLUGIN_ABI_VERSION`. It changes whenever the JSON a plugin receives or returns
/// changes shape, including new `Event` variants or enum values, so that a plugin built against
/// an older API is refused at load time instead of failing on the first unfamiliar event.
///
/// History: 1, the first ABI; 2, conference events (`Event::Conference`,
/// `Event::ConferenceReply`) and `JoinMode::Conference`; 3, the sender's Ant Media application
/// (`envelope.app`).
pub const ABI_VERSION: u32 = 3;

/// `static u32`: the ABI version the library was built for.
pub const ABI_VERSION_SYMBOL: &str = "SWITCHBOARD_PLUGIN_ABI_VERSION";
/// [`CreateFn`].
pub const CREATE_SYMBOL: &str = "switchboard_plugin_create";
/// [`OnEventFn`].
pub const ON_EVENT_SYMBOL: &str = "switchboard_plugin_on_event";
/// [`FreeFn`].
pub const FREE_SYMBOL: &str = "switchboard_plugin_free";
/// [`HandleFn`], optional: runs [`Plugin::shutdown`] of one instance.
pub const SHUTDOWN_SYMBOL: &str = "switchboard_plugin_shutdown";
/// [`HandleFn`], optional: drops one instance (the host's wrapper was dropped).
pub const DESTROY_SYMBOL: &str = "switchboard_plugin_destroy";

/// `create(settings_json, len, out_len) -> reply`: builds an instance. Reply: [`CreateReply`].
pub type CreateFn =
    unsafe extern "C-unwind" fn(settings: *const u8, len: usize, out_len: *mut usize) -> *mut u8;
/// `on_event(handle, input_json, len, out_len) -> reply`: [`EventInput`] in, [`EventReply`] out.
pub type OnEventFn = unsafe extern "C-unwind" fn(
    handle: u64,
    input: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8;
/// `free(ptr, len)`: releases a reply buffer.
pub type FreeFn = unsafe extern "C-unwind" fn(ptr: *mut u8, len: usize);
/// `shutdown(handle)` and `destroy(handle)`.
pub type HandleFn = unsafe extern "C-unwind" fn(handle: u64);

// === Wire types ===

/// The reply of `switchboard_plugin_create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateReply {
    /// The instance was built.
    Ok(Created),
    /// The settings are invalid; every problem, as [`PluginFactory::build`] reported them.
    Settings(Vec<SettingsError>),
    /// Anything else went wrong.
    Error(String),
}

/// A built instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    /// The plugin's name for logs and metrics ([`Plugin::name`]).
    pub name: String,
    /// Names the instance in later calls.
    pub handle: u64,
}

/// The input of `switchboard_plugin_on_event`: an [`EventContext`] and the decision so far.
/// Borrowed on the host side, owned on the plugin side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput<'a> {
    /// The event and its sender.
    pub envelope: WireEnvelope<'a>,
    /// The room before the event.
    pub room: WireRoom<'a>,
    /// The pipeline's decision so far.
    pub decision: Cow<'a, Decision>,
}

/// [`Envelope`] without the sender's wire text (a relay still forwards that; the plugin need not
/// see it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEnvelope<'a> {
    /// The sender.
    pub from: Peer,
    /// The event.
    pub event: Cow<'a, Event>,
    /// The sender's Ant Media application ([`Envelope::app`]); absent for other dialects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Cow<'a, str>>,
}

/// [`RoomView`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRoom<'a> {
    /// The room id.
    pub room: Cow<'a, str>,
    /// Members, oldest first.
    pub members: Cow<'a, [Peer]>,
}

impl<'a> EventInput<'a> {
    /// The input for `cx` and `decision`, borrowing both.
    pub fn new(cx: &EventContext<'a>, decision: &'a Decision) -> Self {
        Self {
            envelope: WireEnvelope {
                from: cx.envelope.from,
                event: Cow::Borrowed(&cx.envelope.event),
                app: cx.envelope.app.as_deref().map(Cow::Borrowed),
            },
            room: WireRoom {
                room: Cow::Borrowed(cx.room.room),
                members: Cow::Borrowed(cx.room.members),
            },
            decision: Cow::Borrowed(decision),
        }
    }
}

/// The reply of `switchboard_plugin_on_event`: `verdict` and `decision`, or `error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventReply {
    /// How the pipeline goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The decision, amended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The plugin failed ([`Plugin::on_event`] returned `Err`, or it panicked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an [`EventReply`] means.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    /// The plugin reported a failure.
    #[error("failed: {0}")]
    Failed(String),
    /// The reply is neither a result nor an error.
    #[error("returned an invalid reply: {0}")]
    Malformed(String),
}

impl EventReply {
    /// A result.
    pub fn ok(verdict: Verdict, decision: Decision) -> Self {
        Self {
            verdict: Some(verdict),
            decision: Some(decision),
            error: None,
        }
    }

    /// A failure.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            ..Self::default()
        }
    }

    /// The verdict and decision, or what is wrong.
    pub fn into_result(self) -> Result<(Verdict, Decision), ReplyError> {
        match self {
            Self {
                error: Some(error),
                verdict: None,
                decision: None,
            } => Err(ReplyError::Failed(error)),
            Self {
                verdict: Some(verdict),
                decision: Some(decision),
                error: None,
            } => Ok((verdict, decision)),
            _ => Err(ReplyError::Malformed(
                "expected `verdict` and `decision`, or `error` alone".into(),
            )),
        }
    }
}

// === Plugin side ===

/// The plugin side of the ABI, called by the functions [`export_plugin!`](crate::export_plugin)
/// generates. Each function catches panics and reports them as an error reply.
pub mod export {
    use super::*;

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
        let input: EventInput<'_> = match serde_json::from_slice(bytes) {
            Ok(input) => input,
            Err(e) => return EventReply::error(format!("cannot decode the gateway's input: {e}")),
        };
        let envelope = Envelope {
            from: input.envelope.from,
            event: input.envelope.event.into_owned(),
            original: None,
            app: input.envelope.app.map(|a| Arc::from(a.as_ref())),
        };
        let mut decision = input.decision.into_owned();
        let cx = EventContext {
            envelope: &envelope,
            room: RoomView {
                room: &input.room.room,
                members: &input.room.members,
            },
        };
        match plugin.on_event(&cx, &mut decision) {
            Ok(verdict) => EventReply::ok(verdict, decision),
            Err(e) => EventReply::error(e.0),
        }
    }

    /// `switchboard_plugin_free`: releases a buffer returned by [`create`] or [`on_event`].
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
}

/// Exports the native plugin ABI for a [`PluginFactory`]: put
/// `switchboard_plugin_api::export_plugin!(MyFactory);` in the root of a `cdylib` crate. The
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
        pub static SWITCHBOARD_PLUGIN_ABI_VERSION: u32 = $crate::abi::ABI_VERSION;

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
            unsafe { $crate::abi::export::create(&$factory, settings, len, out_len) }
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
            unsafe { $crate::abi::export::on_event(handle, input, len, out_len) }
        }

        /// Frees a buffer this library returned.
        ///
        /// # Safety
        /// `ptr` and `len` must come from this library's `create` or `on_event`, freed once.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn switchboard_plugin_free(ptr: *mut u8, len: usize) {
            // SAFETY: this function's contract is `free`'s.
            unsafe { $crate::abi::export::free(ptr, len) }
        }

        /// Runs the shutdown hook of instance `handle`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn switchboard_plugin_shutdown(handle: u64) {
            $crate::abi::export::shutdown(handle)
        }

        /// Drops instance `handle`.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn switchboard_plugin_destroy(handle: u64) {
            $crate::abi::export::destroy(handle)
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use switchboard_protocol::{DialectKind, ErrorCode, JoinMode, RoomNotice};

    use super::*;
    use crate::{Payload, Refusal, SessionId};

    #[test]
    fn wire_shapes_are_the_documented_ones() {
        let mut decision = Decision::default();
        decision.deliver(SessionId(2), Payload::Relay);
        decision.send(SessionId(1), Event::Start(RoomNotice { room: "r".into() }));
        let reply = EventReply::ok(
            Verdict::Refuse(Refusal::new(ErrorCode::RoomFull, "full")),
            decision.clone(),
        );
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({
                "verdict": {"refuse": {"code": "room_full", "message": "full"}},
                "decision": {"deliveries": [
                    {"to": 2, "payload": "relay"},
                    {"to": 1, "payload": {"event": {"event": "start", "room": "r"}}},
                ]},
            })
        );
        assert_eq!(serde_json::to_value(Verdict::Stop).unwrap(), json!("stop"));
        let back: EventReply =
            serde_json::from_value(serde_json::to_value(&reply).unwrap()).unwrap();
        assert_eq!(back, reply);
        assert_eq!(
            serde_json::to_value(CreateReply::Ok(Created {
                name: "x".into(),
                handle: 3
            }))
            .unwrap(),
            json!({"ok": {"name": "x", "handle": 3}})
        );
    }

    #[test]
    fn replies_must_be_a_result_or_an_error() {
        let garbage: EventReply = serde_json::from_str("{}").unwrap();
        assert!(matches!(
            garbage.into_result(),
            Err(ReplyError::Malformed(_))
        ));
        assert!(serde_json::from_str::<EventReply>(r#"{"verdict":"go"}"#).is_err());
        assert_eq!(
            EventReply::error("x").into_result(),
            Err(ReplyError::Failed("x".into()))
        );
    }

    #[test]
    fn event_input_round_trips_from_borrowed_to_owned() {
        let from = Peer {
            session: SessionId(7),
            dialect: DialectKind::Raw,
            mode: JoinMode::Both,
        };
        let envelope = Envelope {
            from,
            event: Event::notice(Event::Left, "r"),
            original: Some("secret wire text".into()),
            app: Some(Arc::from("LiveApp")),
        };
        let members = [from];
        let cx = EventContext {
            envelope: &envelope,
            room: RoomView {
                room: "r",
                members: &members,
            },
        };
        let decision = Decision::default();
        let text = serde_json::to_string(&EventInput::new(&cx, &decision)).unwrap();
        assert!(
            !text.contains("secret"),
            "the wire text stays in the gateway"
        );
        let owned: EventInput<'static> = serde_json::from_str(&text).unwrap();
        assert_eq!(owned.room.members.as_ref(), &members);
        assert_eq!(owned.envelope.event.as_ref(), &envelope.event);
        assert_eq!(owned.envelope.app.as_deref(), Some("LiveApp"));
    }
}
