//! The plugin interface of the Switchboard gateway.
//!
//! Every event a peer sends goes through the plugin pipeline, in config order, before anything
//! is delivered. Each plugin sees the event, the sender and the room as it stands before the
//! event, and may add, remove or redirect deliveries in the [`Decision`], stop the pipeline, or
//! refuse the event with a reason that reaches the sender as an error in its own dialect.
//! Routing itself is a plugin: the room router turns a join into `joined`/`start` notices and a
//! signal into a relay to the partner.
//!
//! A plugin depends on the event vocabulary, never on the dialect codecs: what a peer's frame
//! looked like on the wire, and how an event is rendered for each receiver, stay in the
//! gateway.
//!
//! # Layout
//! - [`Plugin`] and [`PluginFactory`]: what a plugin implements and how config builds it.
//! - [`Outbox`] ([`Deliver`]): how a started plugin delivers events later, outside a hook
//!   ([`Plugin::start`]); [`Plugin::on_session_closed`] tells it a connection ended.
//! - [`EventContext`], [`Decision`], [`Delivery`], [`Verdict`]: the data a hook sees and returns.
//! - [`SessionId`], [`Peer`], [`RoomView`]: who is who.
//! - [`event`]: the normalized events a hook sees and composes.
//!
//! Native (shared-library) plugins implement the same traits; the crate
//! `switchboard-plugin-abi` turns a [`PluginFactory`] into the C ABI the gateway loads, so
//! that this crate has no `unsafe` code.
//!
//! # Concurrency and ordering
//!
//! What a plugin may assume (built-in and native alike):
//!
//! - **One room at a time.** [`Plugin::on_event`] (and [`Plugin::on_unanswered`]) runs with the
//!   event's room locked, and only that room. Hooks for events of one room never run at the
//!   same time, and each sees the room ([`EventContext::room`]) as the events before it left
//!   it: the gateway adds an accepted joiner and removes an accepted leaver before it releases
//!   the room.
//! - **Different rooms in parallel.** Hooks for events of different rooms run at the same time
//!   on different threads. State a plugin keeps across rooms (a map by room, counters, a rate
//!   bucket per address) must take concurrent calls, and its locks must be short: never block
//!   or wait for I/O in a hook, as a blocked hook holds its room, its sender, and a runtime
//!   thread. A plugin that does I/O hands the work to its own task ([`Plugin::start`]).
//! - **Order.** A session's events reach the pipeline one at a time, in the order its peer sent
//!   them, whichever rooms they are for. Events of different senders in one room run in the
//!   order they take the room's lock; nothing orders them otherwise. The deliveries of one
//!   decision reach each receiver in the decision's order, and a sender's deliveries reach a
//!   receiver in the order it sent its events; deliveries caused by different senders may
//!   interleave.
//! - **Outside a room.** [`Plugin::start`] runs once before any event. [`Plugin::on_session_closed`]
//!   runs after the session's leaves went through the pipeline, with no room locked, possibly
//!   while other rooms' hooks run. [`Plugin::shutdown`] runs once, after the sessions drained.
//!   The [`Outbox`] may be called from any thread, inside a hook or not: it takes no room lock,
//!   so it cannot deadlock with one. A plugin has no other way into the gateway.
//! - **Reloads.** A reload that changes `[[plugin]]` builds a new pipeline; events already
//!   being dispatched finish on the old one, so a retired plugin may still get a few hooks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod event;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{DialectKind, ErrorCode, Event, JoinMode};

/// Identifies one peer connection for the lifetime of the gateway process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A peer as plugins see it: which connection, which dialect, and whether it sends media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The connection.
    pub session: SessionId,
    /// The dialect it speaks.
    pub dialect: DialectKind,
    /// Its join mode in this room (`Both` for anything but an Ant Media play-only peer).
    pub mode: JoinMode,
}

/// A room as it stands before the event being processed; members in join order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RoomView<'a> {
    /// The room id.
    pub room: &'a str,
    /// Current members, oldest first. Empty when the room does not exist yet.
    pub members: &'a [Peer],
}

impl RoomView<'_> {
    /// Whether `session` is a member.
    pub fn contains(&self, session: SessionId) -> bool {
        self.members.iter().any(|p| p.session == session)
    }

    /// Members other than `session`.
    pub fn others(&self, session: SessionId) -> impl Iterator<Item = &Peer> {
        self.members.iter().filter(move |p| p.session != session)
    }
}

/// What a plugin hook sees: one event, its sender, and the room it names.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    /// The sender.
    pub from: Peer,
    /// The normalized event.
    pub event: &'a Event,
    /// The Ant Media application of the sender's connection (the `{app}` of
    /// `/{app}/websocket`); `None` for raw and socket.io peers, which name none. Stream
    /// security is per application, so a check of any Ant command (the P2P `join` included,
    /// whose event has no application field) uses this one, the URL's.
    pub app: Option<&'a str>,
    /// The room named by the event, before the event takes effect.
    pub room: RoomView<'a>,
}

impl<'a> EventContext<'a> {
    /// The context of `event` from `from` in `room`, with no Ant Media application.
    pub fn new(from: Peer, event: &'a Event, room: RoomView<'a>) -> Self {
        Self {
            from,
            event,
            app: None,
            room,
        }
    }

    /// The sender.
    pub fn from(&self) -> &Peer {
        &self.from
    }

    /// The event.
    pub fn event(&self) -> &'a Event {
        self.event
    }

    /// The Ant Media application the sender connected to (the `app` field).
    pub fn app(&self) -> Option<&'a str> {
        self.app
    }
}

/// What to deliver to one session. On the native ABI: `"relay"` or `{"event": Event}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// The sender's event itself (relayed; verbatim to a peer of the sender's dialect).
    Relay,
    /// An event composed by a plugin (a notice, an error, a rewritten signal).
    Event(Event),
}

/// One delivery decided by the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The receiving session.
    pub to: SessionId,
    /// What it receives.
    pub payload: Payload,
}

/// The pipeline's running decision for one event. Plugins amend it in order; the gateway carries
/// it out after the last plugin (or after one returns [`Verdict::Stop`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Deliveries in order. Deliveries to one session arrive in this order.
    pub deliveries: Vec<Delivery>,
}

impl Decision {
    /// Queues `payload` for `to`.
    pub fn deliver(&mut self, to: SessionId, payload: Payload) {
        self.deliveries.push(Delivery { to, payload });
    }

    /// Queues a composed event for `to`.
    pub fn send(&mut self, to: SessionId, event: Event) {
        self.deliver(to, Payload::Event(event));
    }
}

/// A refusal, reported to the sender as an error in its own dialect. A refused join does not
/// add the peer to the room; a refused signal is not relayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable code; Ant Media peers see its `definition`.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// How the pipeline continues after a hook. On the native ABI: `"continue"`, `"stop"` or
/// `{"refuse": Refusal}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Hand the event to the next plugin.
    Continue,
    /// Skip the remaining plugins and carry out the decision as it stands.
    Stop,
    /// Refuse the event: drop the decision's deliveries and tell the sender why.
    Refuse(Refusal),
}

/// A plugin failed (as opposed to refusing an event on purpose). The gateway logs it with the
/// plugin's name, counts it, and carries on as if the plugin had returned
/// [`Verdict::Continue`] without touching the decision.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

/// A problem in a plugin's `[plugin.settings]`, reported by `check-config` with the key path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingsError {
    /// Dotted key path inside the settings table (empty for the table itself).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A running plugin. Hooks are synchronous and run on the sender's task while the event's room
/// (only that room) is locked, so they must be quick; a plugin that does I/O spawns its own task
/// and feeds it from the hook. Hooks for different rooms run in parallel: see the crate's
/// "Concurrency and ordering".
pub trait Plugin: Send + Sync {
    /// Name for logs, spans and metrics (the `type` from the config, or a loaded plugin's own).
    fn name(&self) -> &str;

    /// Called for every event a peer sends, in config order, before anything is delivered.
    /// Return [`Verdict::Refuse`] to refuse it; `Err` means the plugin itself failed (it is
    /// logged and counted, the decision is kept as it was before this call, and the pipeline
    /// goes on). Default: pass the event on unchanged.
    fn on_event(
        &self,
        cx: &EventContext<'_>,
        decision: &mut Decision,
    ) -> Result<Verdict, PluginError> {
        let _ = (cx, decision);
        Ok(Verdict::Continue)
    }

    /// Called once after the gateway has built the pipeline, before any event, with the
    /// [`Outbox`] through which the plugin may deliver events later, outside any hook (a media
    /// plugin's `publish_started` once ICE connects, a renegotiation offer when a publisher
    /// joins). Start background tasks here, not in [`PluginFactory::build`] (which
    /// `check-config` also calls). An `Err` stops the gateway from starting. Default: nothing.
    fn start(&self, outbox: Outbox) -> Result<(), PluginError> {
        let _ = outbox;
        Ok(())
    }

    /// Called once when a session has closed, after its room leaves went through the pipeline,
    /// so a plugin can drop what it kept for the session outside rooms (a media plugin's peer
    /// connections). It is called whatever earlier plugins did with those leaves, so it is the
    /// one reliable place to forget a session. Must be quick, like every hook; it has no
    /// [`Decision`], so what it tells peers goes through the [`Outbox`] from [`Plugin::start`].
    /// `Err` means the plugin failed: it is logged and counted, and the gateway goes on.
    /// Default: nothing.
    fn on_session_closed(&self, session: SessionId) -> Result<(), PluginError> {
        let _ = session;
        Ok(())
    }

    /// Called when the pipeline accepted a request whose sender expects an answer (an Ant
    /// conference command) and no plugin answered or took it: a plugin that knows why (it
    /// passed the request on for another plugin, which is not running) returns the refusal the
    /// sender gets. The first `Some`, in config order, wins; when every plugin returns `None`
    /// the gateway refuses with [`ErrorCode::Unsupported`]. Runs with the event's room locked,
    /// like [`Self::on_event`]. Default: `None`.
    fn on_unanswered(&self, cx: &EventContext<'_>) -> Option<Refusal> {
        let _ = cx;
        None
    }

    /// Called once during graceful shutdown, in reverse config order. Default: nothing.
    fn shutdown(&self) {}

    /// Whether the plugin has stopped working for good (a native plugin disables itself after
    /// a failure). The gateway then no longer calls it and applies its failure policy
    /// (`on_failure`) to every event instead. Default: never.
    fn is_disabled(&self) -> bool {
        false
    }
}

/// Delivers events to sessions outside a hook. The gateway implements it; deliveries go to the
/// session's bounded queue like a hook's deliveries do (a session whose queue is full is closed,
/// as it is for any delivery).
pub trait Deliver: Send + Sync {
    /// Queues `event` for session `to`. Returns `false` when the session no longer exists (or
    /// the gateway is gone); the event is dropped then.
    fn deliver(&self, to: SessionId, event: Event) -> bool;
}

/// The handle [`Plugin::start`] receives.
pub type Outbox = Arc<dyn Deliver>;

/// Builds a plugin from its validated settings.
pub trait PluginFactory: Send + Sync {
    /// Matches `type = "..."` in a `[[plugin]]` table.
    fn type_name(&self) -> &'static str;

    /// Builds the plugin, or reports every problem in `settings` at once.
    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>>;
}

/// Deserializes a plugin's settings table into its strict settings struct, turning the error
/// into a [`SettingsError`]. Use `#[serde(deny_unknown_fields)]` on `T`.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &toml::Table,
) -> Result<T, Vec<SettingsError>> {
    T::deserialize(toml::Value::Table(settings.clone())).map_err(|e| {
        vec![SettingsError {
            key: String::new(),
            message: e.to_string(),
        }]
    })
}
