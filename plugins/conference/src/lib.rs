//! The conference plugin: Ant Media conference rooms as pure signaling
//! (`docs/protocol/antmedia.md` §3, §5, §6, §7; the design is in `docs/conference.md`).
//!
//! - Answers the conference requests the Ant codec decodes ([`Event::Conference`]):
//!   `joinRoom` → `joinedTheRoom`, `leaveFromRoom` → `leavedFromRoom`, `getRoomInfo` →
//!   `roomInformation` or `no_active_streams_in_room`, `getStreamInfo`, `getTrackList`,
//!   `getBroadcastObject`, `getSubtracks`, `getSubtracksCount`, `getSubscriberCount`,
//!   `updateStreamMetaData`; checks the token of `publish` and `play` and passes them on to the
//!   media plugin (`sfu`, after this one); without one the gateway refuses them with
//!   `media_plugin_not_running`.
//! - Room membership is the gateway's room table, the one the P2P router and the bridge use: a
//!   participant is a member with [`JoinMode::Conference`] (which routers leave out of P2P
//!   pairing), so room information lists every peer in the room, whatever its dialect. The
//!   plugin keeps only what the table has no place for: each participant's stream id, name,
//!   metadata and role.
//! - Rooms created through the REST API have start and end dates; joining outside them gives
//!   `room_not_active_or_expired`. Rooms nobody created are open at any time.
//! - Stream security per application ([`AppSecurityConfig`]): one-time tokens, JWTs (HS256/
//!   384/512, RS256, ES256 through `jsonwebtoken`), hash tokens; failures give
//!   `unauthorized_access`. An Ant peer's every command, its P2P `join` included, is checked
//!   with the application of its URL ([`EventContext::app()`]); requests that name no
//!   application (raw and socket.io peers) are held to the default application's settings
//!   ([`Apps::resolve`]).
//!
//! The REST room catalog and the tokens live in a [`Hub`] the daemon shares with its REST API
//! and persists in a redb file; the hook never waits for the disk. With `[cluster]` they live
//! in the cluster's Redis instead ([`SharedCatalog`]), shared by every node.
//!
//! ```toml
//! [[plugin]]
//! type = "conference"     # before the router
//! [plugin.settings]
//! max_track_count = 6     # maxTrackCount in joinedTheRoom
//! max_participants = 100  # conference participants per room
//! ```
//!
//! # Layout
//! - `lib.rs`: settings, the factory and the hook's dispatch.
//! - `handlers.rs`: one method per request.
//! - `hub.rs`: the shared state and the REST operations.
//! - `records.rs`: rooms and tokens as Ant's REST API shows them.
//! - `security.rs`: token checks.
//! - `store.rs`: the redb file and its writer thread.
//! - `shared.rs`: the catalog a cluster shares ([`SharedCatalog`]) and the hub's cache of it.
//! - `prefetch.rs`: what an event reads from that catalog before its room is locked
//!   ([`prefetch_of`], [`Hub::prepare`], [`Hub::settle`]).

use std::sync::Arc;

use serde::Deserialize;
use switchboard_plugin_api::event::{ConferenceCommand, ErrorCode, Event, JoinMode};
use switchboard_plugin_api::{
    Decision, EventContext, Plugin, PluginError, PluginFactory, Refusal, SettingsError, Verdict,
    parse_settings,
};

mod handlers;
mod hub;
mod prefetch;
mod records;
mod security;
mod shared;
mod store;
#[cfg(test)]
mod tests;

pub use hub::{Hub, HubOptions, MAX_ID_BYTES, MAX_LIST_SIZE, RestError, check_id};
pub use prefetch::{Prefetch, prefetch_of};
pub use records::{DEFAULT_ROOM_DURATION_SECS, NewRoom, RoomRecord, TokenRecord, TokenType};
pub use security::{
    App, AppSecurityConfig, Apps, MIN_JWT_SECRET_BYTES, Resolved, TokenCheck, hash_token,
    list_problems, sign_jwt,
};
pub use shared::{SharedCatalog, SharedStream};
pub use store::StoreError;

/// Settings of `[[plugin]] type = "conference"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConferenceSettings {
    /// `maxTrackCount` in `joinedTheRoom`: how many video tracks a player is sent (Ant's
    /// `maxVideoTrackCount`, default 6).
    #[serde(default = "default_max_track_count")]
    pub max_track_count: u32,
    /// Conference participants per room; one more gets `NoSpaceForNewPeer`.
    #[serde(default = "default_max_participants")]
    pub max_participants: usize,
}

const fn default_max_track_count() -> u32 {
    6
}

const fn default_max_participants() -> usize {
    100
}

impl Default for ConferenceSettings {
    fn default() -> Self {
        Self {
            max_track_count: default_max_track_count(),
            max_participants: default_max_participants(),
        }
    }
}

/// Builds [`Conference`] plugins that share one [`Hub`].
#[derive(Debug, Clone)]
pub struct ConferenceFactory {
    hub: Arc<Hub>,
}

impl ConferenceFactory {
    /// A factory whose plugins use `hub` (the daemon's, shared with its REST API).
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl PluginFactory for ConferenceFactory {
    fn type_name(&self) -> &'static str {
        "conference"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let settings: ConferenceSettings = parse_settings(settings)?;
        let mut errors = Vec::new();
        if !(1..=64).contains(&settings.max_track_count) {
            errors.push(SettingsError {
                key: "max_track_count".into(),
                message: format!("must be 1 to 64, got {}", settings.max_track_count),
            });
        }
        if !(1..=10_000).contains(&settings.max_participants) {
            errors.push(SettingsError {
                key: "max_participants".into(),
                message: format!("must be 1 to 10000, got {}", settings.max_participants),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(Conference::new(self.hub.clone(), settings)))
    }
}

/// The running conference plugin.
#[derive(Debug)]
pub struct Conference {
    hub: Arc<Hub>,
    settings: ConferenceSettings,
    /// The JWKS refresh tasks, started by `start` and aborted by `shutdown`.
    refreshers: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Conference {
    /// A plugin on `hub` with `settings`.
    pub fn new(hub: Arc<Hub>, settings: ConferenceSettings) -> Self {
        Self {
            hub,
            settings,
            refreshers: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Plugin for Conference {
    fn name(&self) -> &str {
        "conference"
    }

    /// Starts fetching the JWKS documents of applications whose JWT keys come from one.
    fn start(&self, _outbox: switchboard_plugin_api::Outbox) -> Result<(), PluginError> {
        let key_sets = self.hub.apps().key_sets();
        if key_sets.is_empty() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| PluginError("a JWKS URL needs the gateway's runtime".into()))?;
        let mut tasks = self
            .refreshers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for jwks in key_sets {
            tasks.push(runtime.spawn(jwks.refresh_forever()).abort_handle());
        }
        Ok(())
    }

    fn shutdown(&self) {
        let tasks = std::mem::take(
            &mut *self
                .refreshers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
        }
    }

    fn on_event(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        // With a cluster catalog, what Redis has for this event (the room's dates and owner,
        // the other nodes' streams, a one-time token) was read before the room was locked
        // (`Hub::prepare`): the hook reads memory only.
        Ok(match cx.event() {
            Event::Conference(request) => self.on_request(cx, request, out),
            Event::Leave(leave) => self.on_leave(cx, leave.reason, out),
            Event::Join(_) if is_participant(cx) => refuse(
                ErrorCode::Refused,
                format!(
                    "you are a conference participant of room `{}`; leaveFromRoom before joining it peer-to-peer",
                    cx.room.room
                ),
            ),
            Event::Join(join) => self.on_join(cx, join.token.as_deref()),
            _ => Verdict::Continue,
        })
    }

    fn on_unanswered(&self, cx: &EventContext<'_>) -> Option<Refusal> {
        // This plugin passes media requests on, after its token check, to the media plugin
        // after it; nobody answered, so that plugin is not running.
        let Event::Conference(request) = cx.event() else {
            return None;
        };
        matches!(
            request.command,
            ConferenceCommand::Publish(_)
                | ConferenceCommand::Play(_)
                | ConferenceCommand::ToggleTrack(_)
                | ConferenceCommand::ForceQuality(_)
        )
        .then(|| Refusal::new(ErrorCode::MediaUnavailable, NO_MEDIA))
    }
}

/// Why a `publish` or `play` that passed this plugin's token check is refused when no media
/// plugin takes it (antmedia.md §6 has no such definition; `media_plugin_not_running`).
const NO_MEDIA: &str = "conference media needs the media plugin (not running)";

/// Whether the sender is a conference participant of the event's room.
fn is_participant(cx: &EventContext<'_>) -> bool {
    let me = cx.from().session;
    cx.room
        .members
        .iter()
        .any(|p| p.session == me && p.mode == JoinMode::Conference)
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Verdict {
    Verdict::Refuse(Refusal::new(code, message))
}

/// Now, in Unix seconds.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
