//! The C ABI of native plugins: shared libraries (`cdylib`) the gateway loads from a
//! `[[plugin]] path = "..."` entry. Plugin authors do not write any of it by hand: implement
//! [`PluginFactory`] and [`Plugin`] from `switchboard-plugin-api` as for a built-in plugin and
//! call [`export_plugin!`] once in the crate root.
//!
//! This crate holds the plugin side of the ABI (the `unsafe` code [`export_plugin!`] calls)
//! and the wire types both sides share; the host side, which opens libraries and calls them,
//! is `switchboard-native-plugins`. `switchboard-plugin-api` has no `unsafe` code at all.
//!
//! # Symbols (ABI version 4)
//! | symbol | signature | required |
//! | --- | --- | --- |
//! | `SWITCHBOARD_PLUGIN_ABI_VERSION` | `static u32` | yes, read first |
//! | `switchboard_plugin_create` | [`CreateFn`]: settings JSON in, [`CreateReply`] JSON out | yes |
//! | `switchboard_plugin_on_event` | [`OnEventFn`]: [`EventInput`] JSON in, [`EventReply`] JSON out | yes |
//! | `switchboard_plugin_free` | [`FreeFn`]: frees a buffer the plugin returned | yes |
//! | `switchboard_plugin_start` | [`StartFn`]: [`Plugin::start`] with a [`HostOutbox`]; [`HookReply`] out | no |
//! | `switchboard_plugin_on_session_closed` | [`SessionClosedFn`]: [`Plugin::on_session_closed`]; [`HookReply`] out | no |
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
//! - start and session-closed reply ([`HookReply`]): `"ok"` or `{"error":"..."}`.
//!
//! # The outbox
//! `start` hands the plugin a [`HostOutbox`]: a context pointer and two host functions. The
//! plugin calls `deliver(context, session, event_json, len)` to queue an event for a session
//! at any time, from any thread, inside or outside a call from the host; it returns a
//! [`delivery`] status. It calls `release(context)` exactly once when it will not deliver again
//! (the outbox the plugin's code holds was dropped), after which the context is invalid.
//! [`export_plugin!`] wraps all of this in an ordinary [`Outbox`](switchboard_plugin_api::Outbox).
//!
//! # Failures
//! A Rust panic cannot cross from one copy of the standard library into another: a plugin is a
//! `cdylib` with its own, so a panic unwinding out of it makes the gateway abort ("Rust cannot
//! catch foreign exceptions"). The functions [`export_plugin!`] generates therefore catch every
//! panic inside the plugin and turn it into an `{"error":...}` reply; the host's outbox
//! functions likewise catch their own panics. The gateway disables a plugin after its first
//! error, panic or malformed reply.
//!
//! Rust has no stable ABI for anything but these symbols and the JSON, so a plugin may be built
//! with any toolchain; it must be built against a `switchboard-plugin-abi` with the same
//! [`ABI_VERSION`] and the same event vocabulary as the gateway.
//!
//! # Layout
//! - this file: the version, the symbols and their signatures, the wire types.
//! - [`export`]: the plugin side, which [`export_plugin!`] calls.
//! - `macros.rs`: [`export_plugin!`].

use std::borrow::Cow;
use std::ffi::c_void;

use serde::{Deserialize, Serialize};
use switchboard_plugin_api::event::Event;
use switchboard_plugin_api::{Decision, EventContext, Peer, RoomView, SettingsError, Verdict};
#[cfg(doc)]
use switchboard_plugin_api::{Plugin, PluginFactory};

pub mod export;
mod macros;

/// The ABI version this crate speaks; exported by every plugin as
/// `SWITCHBOARD_PLUGIN_ABI_VERSION`. It changes whenever the JSON a plugin receives or returns
/// changes shape, including new `Event` variants or enum values, or a function is added, so
/// that a plugin built against an older ABI is refused at load time instead of failing on
/// the first unfamiliar event.
///
/// History: 1, the first ABI; 2, conference events (`Event::Conference`,
/// `Event::ConferenceReply`) and `JoinMode::Conference`; 3, the sender's Ant Media application
/// (`envelope.app`); 4, `switchboard_plugin_start` (an outbox) and
/// `switchboard_plugin_on_session_closed`.
pub const ABI_VERSION: u32 = 4;

/// `static u32`: the ABI version the library was built for.
pub const ABI_VERSION_SYMBOL: &str = "SWITCHBOARD_PLUGIN_ABI_VERSION";
/// [`CreateFn`].
pub const CREATE_SYMBOL: &str = "switchboard_plugin_create";
/// [`OnEventFn`].
pub const ON_EVENT_SYMBOL: &str = "switchboard_plugin_on_event";
/// [`FreeFn`].
pub const FREE_SYMBOL: &str = "switchboard_plugin_free";
/// [`StartFn`], optional: runs [`Plugin::start`] of one instance with the host's outbox.
pub const START_SYMBOL: &str = "switchboard_plugin_start";
/// [`SessionClosedFn`], optional: runs [`Plugin::on_session_closed`] of one instance.
pub const ON_SESSION_CLOSED_SYMBOL: &str = "switchboard_plugin_on_session_closed";
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
/// `start(handle, outbox, out_len) -> reply`: called once, before any event. The plugin owns
/// `outbox` from the call on (it must `release` it exactly once, possibly during the call).
/// Reply: [`HookReply`]; an error stops the gateway from starting.
pub type StartFn =
    unsafe extern "C-unwind" fn(handle: u64, outbox: HostOutbox, out_len: *mut usize) -> *mut u8;
/// `on_session_closed(handle, session, out_len) -> reply`: session `session` closed, after its
/// room leaves went through the pipeline. Reply: [`HookReply`].
pub type SessionClosedFn =
    unsafe extern "C-unwind" fn(handle: u64, session: u64, out_len: *mut usize) -> *mut u8;
/// `shutdown(handle)` and `destroy(handle)`.
pub type HandleFn = unsafe extern "C-unwind" fn(handle: u64);

/// `deliver(context, session, event_json, len) -> status`: the host queues the [`Event`] in
/// `event_json` for `session`. Returns a [`delivery`] status. Callable from any thread until
/// `release`.
pub type DeliverFn = unsafe extern "C-unwind" fn(
    context: *const c_void,
    to: u64,
    event: *const u8,
    len: usize,
) -> u32;
/// `release(context)`: the plugin will not call `deliver` with `context` again.
pub type ReleaseFn = unsafe extern "C-unwind" fn(context: *const c_void);

/// The host's outbox, as `start` receives it: an opaque context and the two functions to call
/// with it. Passed by value; the host keeps the context alive until `release`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct HostOutbox {
    /// The host's state behind this outbox; the plugin passes it back and never reads it.
    pub context: *const c_void,
    /// Queues an event for a session.
    pub deliver: DeliverFn,
    /// Ends the plugin's use of `context`.
    pub release: ReleaseFn,
}

/// What [`DeliverFn`] returns.
pub mod delivery {
    /// The event was queued for the session.
    pub const DELIVERED: u32 = 0;
    /// No such session (it closed), or the gateway is gone; the event was dropped.
    pub const NO_SESSION: u32 = 1;
    /// The buffer was not the JSON of an event; nothing was delivered.
    pub const NOT_AN_EVENT: u32 = 2;
    /// The host failed while delivering; nothing was delivered.
    pub const FAILED: u32 = 3;
}

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

/// The reply of `switchboard_plugin_start` and `switchboard_plugin_on_session_closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookReply {
    /// The hook returned `Ok`.
    Ok,
    /// The hook returned `Err`, or panicked.
    Error(String),
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

/// The event and its sender, as [`EventContext`] holds them (the sender's wire text stays in
/// the gateway: a relay still forwards it, the plugin need not see it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireEnvelope<'a> {
    /// The sender.
    pub from: Peer,
    /// The event.
    pub event: Cow<'a, Event>,
    /// The sender's Ant Media application ([`EventContext::app`]); absent for other dialects.
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
                from: cx.from,
                event: Cow::Borrowed(cx.event),
                app: cx.app.map(Cow::Borrowed),
            },
            room: WireRoom {
                room: Cow::Borrowed(cx.room.room),
                members: Cow::Borrowed(cx.room.members),
            },
            decision: Cow::Borrowed(decision),
        }
    }

    /// The context this input describes, borrowing it.
    pub fn context(&self) -> EventContext<'_> {
        EventContext {
            from: self.envelope.from,
            event: &self.envelope.event,
            app: self.envelope.app.as_deref(),
            room: RoomView {
                room: &self.room.room,
                members: &self.room.members,
            },
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

#[cfg(test)]
mod tests;
