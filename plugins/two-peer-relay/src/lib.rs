//! The two-peer relay: the SimpleP2P tutorial's `app.js` as a routing plugin.
//!
//! The original server keeps two global slots, A and B. A new connection fills the first free
//! slot; every `msg` from a slot is forwarded to the other slot, and dropped silently while the
//! other slot is empty; a third connection is ignored (it stays connected, inert); a disconnect
//! frees its slot. This plugin does exactly that for each room named in `rooms`:
//!
//! - A join fills the first free slot. The joiner gets `joined`; when it completes the pair, the
//!   waiting peer gets `peer_joined`, then the joiner gets `joined` and `peer_joined`, as the room
//!   router would tell two socket.io pages. Nobody ever gets `start`: the classic page dials by
//!   hand (so Ant Media peers, which wait for `start`, belong in rooms the room router handles).
//! - Offers, answers, candidates, peer messages and opaque frames from a slot go to the other
//!   slot (rendered by the receiver's dialect, which drops what it cannot express), or nowhere
//!   while it is empty.
//! - A third join is refused with `RoomFull` (Ant `NoSpaceForNewPeer`) when
//!   `third_peer = "refuse"`, the default. With `third_peer = "ignore"` it is accepted and the
//!   session stays connected but inert: it receives nothing, what it sends goes nowhere, and it
//!   never takes a slot later, even when one frees (`app.js` fills slots only on new
//!   connections).
//! - A leave (or a disconnect) frees the slot and tells the other slot `peer_left`; an explicit
//!   leave is acknowledged (`left`), as the room router does.
//!
//! For its rooms the plugin returns [`Verdict::Stop`], so plugins after it (the room router)
//! do not run; other rooms pass through untouched.
//!
//! ```toml
//! [[plugin]]
//! type = "two-peer-relay"
//! [plugin.settings]
//! rooms = ["simplep2p"]     # exact room names; default ["simplep2p"]
//! third_peer = "ignore"     # "refuse" (default) or "ignore"
//! ```
//!
//! # Layout
//! Everything is in this file: settings, the per-room slot state, and the hook. Unit tests are
//! in `tests.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Deserialize;
use switchboard_plugin_api::event::{ErrorCode, Event, LeaveReason};
use switchboard_plugin_api::{
    Decision, EventContext, Payload, Plugin, PluginError, PluginFactory, Refusal, SessionId,
    SettingsError, Verdict, parse_settings,
};

/// Settings of `[[plugin]] type = "two-peer-relay"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwoPeerRelayConfig {
    /// Exact names of the rooms this plugin routes; every other room is left to the plugins
    /// after it.
    #[serde(default = "default_rooms")]
    pub rooms: Vec<String>,
    /// What happens to a join when both slots are taken: `"refuse"` (`RoomFull`) or `"ignore"`
    /// (accepted but inert, as `app.js` does).
    #[serde(default)]
    pub third_peer: ThirdPeer,
}

fn default_rooms() -> Vec<String> {
    vec!["simplep2p".to_owned()]
}

impl Default for TwoPeerRelayConfig {
    fn default() -> Self {
        Self {
            rooms: default_rooms(),
            third_peer: ThirdPeer::default(),
        }
    }
}

/// What to do with a third peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThirdPeer {
    /// Refuse the join with `RoomFull` (Ant `NoSpaceForNewPeer`).
    #[default]
    Refuse,
    /// Accept the join and keep the session inert: it receives nothing and its signals are
    /// dropped. It never takes a slot later.
    Ignore,
}

/// Builds [`TwoPeerRelay`] from `[[plugin]] type = "two-peer-relay"`.
#[derive(Debug, Default)]
pub struct TwoPeerRelayFactory;

impl PluginFactory for TwoPeerRelayFactory {
    fn type_name(&self) -> &'static str {
        "two-peer-relay"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let config: TwoPeerRelayConfig = parse_settings(settings)?;
        let mut errors = Vec::new();
        if config.rooms.is_empty() {
            errors.push(SettingsError {
                key: "rooms".into(),
                message: "must name at least one room (the plugin would route nothing)".into(),
            });
        }
        let mut seen = HashSet::new();
        for (i, room) in config.rooms.iter().enumerate() {
            if room.is_empty() {
                errors.push(SettingsError {
                    key: format!("rooms[{i}]"),
                    message: "room name is empty".into(),
                });
            } else if !seen.insert(room.as_str()) {
                errors.push(SettingsError {
                    key: format!("rooms[{i}]"),
                    message: format!("room `{room}` is listed twice"),
                });
            }
        }
        if errors.is_empty() {
            Ok(Box::new(TwoPeerRelay::new(config)))
        } else {
            Err(errors)
        }
    }
}

/// One relayed room: two slots and the inert sessions (`third_peer = "ignore"`).
#[derive(Debug, Default)]
struct Slots {
    slots: [Option<SessionId>; 2],
    inert: HashSet<SessionId>,
}

impl Slots {
    fn slot_of(&self, session: SessionId) -> Option<usize> {
        self.slots.iter().position(|s| *s == Some(session))
    }

    fn other(&self, slot: usize) -> Option<SessionId> {
        self.slots[1 - slot]
    }

    fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none) && self.inert.is_empty()
    }
}

/// The running relay.
#[derive(Debug)]
pub struct TwoPeerRelay {
    config: TwoPeerRelayConfig,
    /// Slots by room. Hooks of one room run one at a time under the gateway's room lock; hooks
    /// of different rooms run in parallel and share this lock, held only for a slot update.
    rooms: Mutex<HashMap<String, Slots>>,
}

impl TwoPeerRelay {
    /// A relay with `config`.
    pub fn new(config: TwoPeerRelayConfig) -> Self {
        Self {
            config,
            rooms: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, HashMap<String, Slots>> {
        // Every update is a single field assignment or set insert/remove, so a poisoned map is
        // still consistent.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_join(&self, me: SessionId, room: &str, out: &mut Decision) -> Verdict {
        let mut rooms = self.state();
        let slots = rooms.entry(room.to_owned()).or_default();
        if slots.slot_of(me).is_some() {
            // A repeated join is acknowledged again and changes nothing.
            out.send(me, Event::notice(Event::Joined, room));
            return Verdict::Stop;
        }
        if slots.inert.contains(&me) {
            return Verdict::Stop;
        }
        let Some(free) = slots.slots.iter().position(Option::is_none) else {
            return match self.config.third_peer {
                ThirdPeer::Refuse => Verdict::Refuse(Refusal::new(
                    ErrorCode::RoomFull,
                    format!("room `{room}` already has its two peers"),
                )),
                ThirdPeer::Ignore => {
                    slots.inert.insert(me);
                    Verdict::Stop
                }
            };
        };
        slots.slots[free] = Some(me);
        match slots.other(free) {
            Some(partner) => {
                out.send(partner, Event::notice(Event::PeerJoined, room));
                out.send(me, Event::notice(Event::Joined, room));
                out.send(me, Event::notice(Event::PeerJoined, room));
            }
            None => out.send(me, Event::notice(Event::Joined, room)),
        }
        Verdict::Stop
    }

    fn on_leave(
        &self,
        me: SessionId,
        room: &str,
        reason: LeaveReason,
        out: &mut Decision,
    ) -> Verdict {
        let mut rooms = self.state();
        let Some(slots) = rooms.get_mut(room) else {
            return not_a_member(room, reason);
        };
        if let Some(slot) = slots.slot_of(me) {
            slots.slots[slot] = None;
            if let Some(partner) = slots.other(slot) {
                out.send(partner, Event::notice(Event::PeerLeft, room));
            }
            if reason == LeaveReason::Leave {
                out.send(me, Event::notice(Event::Left, room));
            }
        } else if !slots.inert.remove(&me) {
            return not_a_member(room, reason);
        }
        if slots.is_empty() {
            rooms.remove(room);
        }
        Verdict::Stop
    }

    fn on_signal(&self, me: SessionId, room: &str, out: &mut Decision) -> Verdict {
        let rooms = self.state();
        let Some(slots) = rooms.get(room) else {
            return Verdict::Refuse(not_joined(room));
        };
        match slots.slot_of(me) {
            Some(slot) => {
                // With the other slot empty the signal is dropped silently, as `app.js` does.
                if let Some(partner) = slots.other(slot) {
                    out.deliver(partner, Payload::Relay);
                }
                Verdict::Stop
            }
            None if slots.inert.contains(&me) => Verdict::Stop,
            None => Verdict::Refuse(not_joined(room)),
        }
    }
}

fn not_joined(room: &str) -> Refusal {
    Refusal::new(
        ErrorCode::NoPeer,
        format!("you have not joined room `{room}`"),
    )
}

/// A leave from a session the relay does not know: a disconnect is fine (nothing to clean up);
/// an explicit leave is refused as the room router refuses it.
fn not_a_member(room: &str, reason: LeaveReason) -> Verdict {
    match reason {
        LeaveReason::Disconnect => Verdict::Stop,
        _ => Verdict::Refuse(not_joined(room)),
    }
}

impl Plugin for TwoPeerRelay {
    fn name(&self) -> &str {
        "two-peer-relay"
    }

    fn on_event(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        let room = cx.room.room;
        if !self.config.rooms.iter().any(|r| r == room) {
            return Ok(Verdict::Continue);
        }
        let me = cx.from().session;
        Ok(match cx.event() {
            Event::Join(_) => self.on_join(me, room, out),
            Event::Leave(l) => self.on_leave(me, room, l.reason, out),
            Event::Description(_)
            | Event::Candidate(_)
            | Event::PeerMessage(_)
            | Event::Opaque(_) => self.on_signal(me, room, out),
            _ => Verdict::Continue,
        })
    }
}

#[cfg(test)]
mod tests;
