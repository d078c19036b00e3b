//! The `sfu` plugin: an embedded selective forwarding unit, so that Ant Media conference pages
//! (`publish` into a room, `play` of the room) work with three or more people
//! (`docs/protocol/antmedia.md` §5; the design is in `docs/conference.md`).
//!
//! - `publish(streamId, …, mainTrack=room)` → `start` → the client's offer → the server's
//!   answer → ICE → `publish_started`; `stop` → `publish_finished`.
//! - `play(id)` of a room or of one stream (`room` is only for the token check) → the server's
//!   offer (`takeConfiguration` with an `idMapping` of mid → `ARDAMSv<id>`/`ARDAMSa<id>`) → the
//!   client's answer → ICE → `play_started`; publishers joining or leaving renegotiate the same
//!   stream id; `stop` → `play_finished`.
//! - A `publish` without `mainTrack` of a `joinRoom` participant's own stream goes into its
//!   room (Ant's legacy conference flow); publishers are listed in the conference [`Hub`], so
//!   room queries show them. A publisher's answer is `recvonly`.
//! - `toggleVideo`/`toggleAudio`/`enableTrack` pause and resume forwarding (a publisher's own
//!   toggle is announced to its players as Ant's `CAM_TURNED_OFF`/`MIC_MUTED`/… data-channel
//!   events); a simulcast publisher's layers are chosen per player (`layers.rs`,
//!   `forceStreamQuality`); a publisher's data-channel messages reach the players of its
//!   stream; `leaveFromRoom` ends the leaver's streams in the room.
//! - Media is forwarded as RTP packets in str0m's RTP mode (nothing is depacketized, decoded
//!   or transcoded): each player's track has its own SSRC, payload type, sequence numbers and
//!   timestamps (`engine/rewrite.rs`). NACK/RTX are answered per leg by str0m; a subscriber's
//!   keyframe request (PLI/FIR) goes to the publisher, and a publisher is asked for a keyframe
//!   whenever a subscriber's video starts, resumes or switches layer.
//! - One UDP socket carries every peer connection (ICE, DTLS, SRTP multiplexed); incoming
//!   datagrams go to the connection whose `Rtc::accepts` them.
//!
//! The hook only checks and records (quick, under the room lock); a tokio task owns the socket
//! and every `Rtc` and tells sessions what happens later through the gateway's
//! [`Outbox`](switchboard_plugin_api::Outbox).
//!
//! ```toml
//! [[plugin]]
//! type = "sfu"                    # after "conference" (which checks tokens), before the router
//! [plugin.settings]
//! udp_bind = "127.0.0.1:0"        # the one media port (0: any free port)
//! candidates = ["127.0.0.1"]      # addresses announced as ICE host candidates
//! max_publishers_per_room = 16
//! max_rooms = 100
//! max_peer_connections = 400
//! bandwidth_estimation = false    # true: players' link estimate (TWCC) for the simulcast layer
//! send_batch_ms = 0               # forwarded packets gather this long before they are sent
//! ```
//!
//! # Layout
//! - `lib.rs`: settings, the factory and the plugin.
//! - `hook.rs`: the hook's work, for local sessions and for other nodes' requests.
//! - `homing.rs`: room homing in a cluster (the daemon's [`homing::Homing`]); `remote.rs`: the
//!   home node's side, requests of other nodes' sessions.
//! - `registry.rs`: the streams the plugin serves and its limits (shared by hook and task).
//! - `engine/`: the task: socket, commands, timeouts, forwarding (`mod.rs`); track toggles, the
//!   data-channel relay, `forceStreamQuality` and the gauges' snapshot (`control.rs`); each
//!   player's layer plan and its estimator's desired bitrate and probes (`downlink.rs`).
//! - `conn.rs`: one peer connection (publisher or player) and forwarding between them.
//! - `layers.rs`: simulcast layer selection per player; `layers/downlink.rs`: what a player's
//!   link takes (str0m's TWCC estimate, or receiver-report loss).
//! - `metrics.rs`: the `switchboard_sfu_*` figures on `/metrics`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Deserialize;
use switchboard_conference::Hub;
use switchboard_plugin_api::event::ErrorCode;
use switchboard_plugin_api::{
    Decision, EventContext, Outbox, Plugin, PluginError, PluginFactory, Refusal, SessionId,
    SettingsError, Verdict, parse_settings,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod conn;
mod engine;
pub mod homing;
mod hook;
mod layers;
mod metrics;
mod registry;
mod remote;

pub use engine::{Command, Stats};
use homing::{Forwarded, Homing, RemoteMedia};
pub use metrics::render as render_metrics;
use registry::Registry;

/// The largest `send_batch_ms`: beyond this the wait is audible in a call.
const MAX_SEND_BATCH_MS: u64 = 20;

/// Commands queued from hooks to the media task; one more is refused as `highResourceUsage`.
const COMMAND_QUEUE: usize = 1024;

/// Settings of `[[plugin]] type = "sfu"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SfuSettings {
    /// The UDP socket every peer connection shares. Port 0 picks a free port (it is announced
    /// in each SDP, so nothing needs to know it in advance).
    #[serde(default = "default_udp_bind")]
    pub udp_bind: SocketAddr,
    /// The addresses announced as ICE host candidates, each with the bound port. Empty: the
    /// `udp_bind` address, which then must not be unspecified (`0.0.0.0`).
    #[serde(default)]
    pub candidates: Vec<IpAddr>,
    /// Publishers per room; one more gets
    /// `main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks`.
    #[serde(default = "default_max_publishers")]
    pub max_publishers_per_room: usize,
    /// Rooms with media at once; a new one beyond gets `highResourceUsage`.
    #[serde(default = "default_max_rooms")]
    pub max_rooms: usize,
    /// Peer connections (publishers plus players) at once; one more gets `highResourceUsage`.
    #[serde(default = "default_max_peer_connections")]
    pub max_peer_connections: usize,
    /// str0m's send-side bandwidth estimator on every player connection (TWCC feedback,
    /// pacing, probing), which the automatic simulcast layer choice fits layers into. Off, the
    /// choice follows the loss in players' receiver reports only, and forwarding costs less CPU
    /// (str0m paces nothing).
    #[serde(default = "default_bandwidth_estimation")]
    pub bandwidth_estimation: bool,
    /// How long (milliseconds) forwarded packets may gather before the players are polled
    /// and their datagrams sent: one poll of a player and one `sendmmsg` then cover every
    /// packet that arrived meanwhile, instead of the few of one wake-up. 0: after every
    /// wake-up. Adds at most this much latency to a forwarded packet.
    #[serde(default = "default_send_batch_ms")]
    pub send_batch_ms: u64,
}

/// 0: on a quiet machine the wait bought no CPU that GSO had not already saved, and cost a
/// forwarded packet about a millisecond (BENCHMARKS.md, "GSO and batched polls").
const fn default_send_batch_ms() -> u64 {
    0
}

const fn default_bandwidth_estimation() -> bool {
    false
}

fn default_udp_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

const fn default_max_publishers() -> usize {
    16
}

const fn default_max_rooms() -> usize {
    100
}

const fn default_max_peer_connections() -> usize {
    400
}

impl Default for SfuSettings {
    fn default() -> Self {
        Self {
            udp_bind: default_udp_bind(),
            candidates: Vec::new(),
            max_publishers_per_room: default_max_publishers(),
            max_rooms: default_max_rooms(),
            max_peer_connections: default_max_peer_connections(),
            bandwidth_estimation: default_bandwidth_estimation(),
            send_batch_ms: default_send_batch_ms(),
        }
    }
}

impl SfuSettings {
    /// Every problem with these settings.
    pub fn validate(&self) -> Vec<SettingsError> {
        let mut errors = Vec::new();
        let mut bad = |key: &str, message: String| {
            errors.push(SettingsError {
                key: key.into(),
                message,
            })
        };
        if self.candidates.is_empty() && self.udp_bind.ip().is_unspecified() {
            bad(
                "candidates",
                format!(
                    "udp_bind {} listens on every address; list the addresses browsers reach this host at",
                    self.udp_bind
                ),
            );
        }
        if let Some(ip) = self.candidates.iter().find(|ip| ip.is_unspecified()) {
            bad(
                "candidates",
                format!("{ip} is not an address a peer can reach"),
            );
        }
        if self.send_batch_ms > MAX_SEND_BATCH_MS {
            bad(
                "send_batch_ms",
                format!(
                    "must be 0 to {MAX_SEND_BATCH_MS} (milliseconds a forwarded packet may wait), got {}",
                    self.send_batch_ms
                ),
            );
        }
        for (key, value, max) in [
            ("max_publishers_per_room", self.max_publishers_per_room, 256),
            ("max_rooms", self.max_rooms, 100_000),
            ("max_peer_connections", self.max_peer_connections, 100_000),
        ] {
            if !(1..=max).contains(&value) {
                bad(key, format!("must be 1 to {max}, got {value}"));
            }
        }
        errors
    }
}

/// Builds [`Sfu`] plugins that list their publishers in one conference [`Hub`].
#[derive(Debug, Clone)]
pub struct SfuFactory {
    hub: Arc<Hub>,
    homing: Option<Arc<dyn Homing>>,
}

impl SfuFactory {
    /// A factory whose plugins tell `hub` (the conference plugin's) who publishes into which
    /// room, and ask it which room a participant's stream belongs to.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub, homing: None }
    }

    /// The same, in a cluster: each room's media is served by its home node (`homing`).
    pub fn with_homing(hub: Arc<Hub>, homing: Arc<dyn Homing>) -> Self {
        Self {
            hub,
            homing: Some(homing),
        }
    }
}

impl PluginFactory for SfuFactory {
    fn type_name(&self) -> &'static str {
        "sfu"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let settings: SfuSettings = parse_settings(settings)?;
        let errors = settings.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut sfu = Sfu::new(settings, Arc::clone(&self.hub));
        if let Some(homing) = &self.homing
            && let Some(core) = Arc::get_mut(&mut sfu.core)
        {
            core.homing = Some(Arc::clone(homing));
        }
        Ok(Box::new(sfu))
    }
}

/// The running plugin: the hook's side. [`Plugin::start`] binds the socket and spawns the task.
#[derive(Debug)]
pub struct Sfu {
    core: Arc<Core>,
}

/// What the hook and the requests of other nodes share (see [`homing`]).
pub struct Core {
    settings: SfuSettings,
    registry: Arc<Mutex<Registry>>,
    commands: OnceLock<mpsc::Sender<Command>>,
    cancel: CancellationToken,
    stats: Arc<Stats>,
    hub: Arc<Hub>,
    /// `[cluster]`: where each room's media is served.
    homing: Option<Arc<dyn Homing>>,
    /// Streams of this node's sessions that other nodes serve.
    forwarded: Mutex<Forwarded>,
    /// The outbox the media task uses (set at start): answers to other nodes' requests.
    outbox: OnceLock<Outbox>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("settings", &self.settings)
            .field("homing", &self.homing)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Sfu {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Sfu {
    /// A plugin with `settings` that lists its publishers in `hub`, not started.
    pub fn new(settings: SfuSettings, hub: Arc<Hub>) -> Self {
        let stats = Arc::new(Stats::default());
        metrics::register(Arc::downgrade(&stats));
        Self {
            core: Arc::new(Core {
                settings,
                registry: Arc::new(Mutex::new(Registry::new(Arc::clone(&hub)))),
                hub,
                commands: OnceLock::new(),
                cancel: CancellationToken::new(),
                stats,
                homing: None,
                forwarded: Mutex::default(),
                outbox: OnceLock::new(),
            }),
        }
    }
}

impl Plugin for Sfu {
    fn name(&self) -> &str {
        "sfu"
    }

    fn on_event(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        let from = cx.from();
        Ok(self.handle(
            from.session,
            from.dialect,
            cx.app().unwrap_or_default(),
            cx.event(),
            None,
            out,
        ))
    }

    fn start(&self, outbox: Outbox) -> Result<(), PluginError> {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        if self.commands.set(tx).is_err() {
            return Err(PluginError("started twice".into()));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| PluginError("needs a tokio runtime".into()))?;
        let outbox = match &self.homing {
            Some(homing) => {
                let media: Arc<dyn RemoteMedia> = self.core.clone();
                homing.attach(Arc::downgrade(&media), outbox)
            }
            None => outbox,
        };
        let _ = self.outbox.set(Arc::clone(&outbox));
        let engine = engine::Engine::new(
            self.settings.clone(),
            outbox,
            Arc::clone(&self.registry),
            Arc::clone(&self.stats),
        );
        runtime.spawn(engine.run(rx, self.cancel.clone()));
        Ok(())
    }

    fn on_session_closed(&self, session: SessionId) -> Result<(), PluginError> {
        self.session_closed(session);
        Ok(())
    }

    fn shutdown(&self) {
        self.cancel.cancel();
    }
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Verdict {
    Verdict::Refuse(Refusal::new(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_example_config_builds() {
        let text = include_str!("../../../config/plugins/sfu.toml");
        let doc: toml::Table = toml::from_str(text).expect("example is TOML");
        let plugin = &doc["plugin"].as_array().expect("[[plugin]]")[0];
        assert_eq!(plugin["type"].as_str(), Some("sfu"));
        let settings = plugin["settings"].as_table().expect("settings");
        let factory = SfuFactory::new(Arc::new(Hub::in_memory()));
        assert!(factory.build(settings).is_ok());
        assert!(factory.build(&toml::Table::new()).is_ok(), "defaults");
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let bad: toml::Table = toml::from_str(
            "udp_bind = \"0.0.0.0:5000\"\nmax_rooms = 0\nmax_publishers_per_room = 1000\nsend_batch_ms = 21",
        )
        .expect("TOML");
        let factory = SfuFactory::new(Arc::new(Hub::in_memory()));
        let Err(errors) = factory.build(&bad) else {
            panic!("bad settings accepted");
        };
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "candidates",
                "send_batch_ms",
                "max_publishers_per_room",
                "max_rooms"
            ]
        );
        let unknown: toml::Table = toml::from_str("port = 1").expect("TOML");
        assert!(factory.build(&unknown).is_err());
        let unspecified: toml::Table = toml::from_str("candidates = [\"0.0.0.0\"]").expect("TOML");
        assert!(factory.build(&unspecified).is_err());
    }
}
