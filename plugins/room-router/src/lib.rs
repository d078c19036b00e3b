//! The room router: two-peer rooms shared by every dialect, with Ant Media's P2P rules
//! (`docs/protocol/antmedia.md` 4.1) as the common semantics.
//!
//! - A join to an empty room is acknowledged; a join to a room with one peer makes one of the
//!   two the offerer (`start`) and tells the other a partner arrived; a third peer is refused
//!   with `RoomFull` (Ant `NoSpaceForNewPeer`).
//! - Offers, answers, candidates and peer messages are relayed to the partner; with no partner
//!   the sender gets `NoPeer` (Ant `no_peer_associated_before`).
//! - Opaque frames go only to a partner of the same dialect.
//! - A leave tells the partner (`stop`) and, for an explicit leave, acknowledges it (`leaved`).
//!
//! # Layout
//! Everything is in this file: settings, the offerer choice, and the hook.

use serde::Deserialize;
use switchboard_plugin_api::event::{DialectKind, ErrorCode, Event, JoinMode, LeaveReason};
use switchboard_plugin_api::{
    Decision, EventContext, Payload, Peer, Plugin, PluginError, PluginFactory, Refusal, SessionId,
    SettingsError, Verdict, parse_settings,
};

/// Settings of `[[plugin]] type = "room-router"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomRouterConfig {
    /// Peers per room. Ant Media P2P is one-to-one, so 2 unless a custom plugin handles more.
    #[serde(default = "default_max_peers")]
    pub max_peers: usize,
}

const fn default_max_peers() -> usize {
    2
}

impl Default for RoomRouterConfig {
    fn default() -> Self {
        Self {
            max_peers: default_max_peers(),
        }
    }
}

/// Builds [`RoomRouter`] from `[[plugin]] type = "room-router"`.
#[derive(Debug, Default)]
pub struct RoomRouterFactory;

impl PluginFactory for RoomRouterFactory {
    fn type_name(&self) -> &'static str {
        "room-router"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let config: RoomRouterConfig = parse_settings(settings)?;
        if config.max_peers < 2 {
            return Err(vec![SettingsError {
                key: "max_peers".into(),
                message: format!("must be at least 2, got {}", config.max_peers),
            }]);
        }
        Ok(Box::new(RoomRouter { config }))
    }
}

/// The running room router.
#[derive(Debug)]
pub struct RoomRouter {
    config: RoomRouterConfig,
}

impl RoomRouter {
    /// A router with `config`.
    pub fn new(config: RoomRouterConfig) -> Self {
        Self { config }
    }

    fn on_join(&self, cx: &EventContext<'_>, room: &str, out: &mut Decision) -> Verdict {
        let me = *cx.from();
        if cx.room.contains(me.session) {
            // A repeated join is acknowledged again and changes nothing.
            out.send(me.session, Event::notice(Event::Joined, room));
            return Verdict::Continue;
        }
        if cx.room.members.len() >= self.config.max_peers {
            return Verdict::Refuse(Refusal::new(
                ErrorCode::RoomFull,
                format!("room `{room}` already has {} peers", cx.room.members.len()),
            ));
        }
        let partner = cx.room.members.last().copied();
        if let Some(partner) = partner {
            let offerer = choose_offerer(partner, me);
            // Existing peer first, as Ant Media does: `start` to it, then `joined` to the joiner.
            let notify = |p: Option<SessionId>, out: &mut Decision, to: &Peer| {
                let make = if p == Some(to.session) {
                    Event::Start
                } else {
                    Event::PeerJoined
                };
                out.send(to.session, Event::notice(make, room));
            };
            notify(offerer, out, &partner);
            out.send(me.session, Event::notice(Event::Joined, room));
            notify(offerer, out, &me);
        } else {
            out.send(me.session, Event::notice(Event::Joined, room));
        }
        Verdict::Continue
    }

    fn on_leave(
        &self,
        cx: &EventContext<'_>,
        room: &str,
        reason: LeaveReason,
        out: &mut Decision,
    ) -> Verdict {
        let me = cx.from().session;
        if !cx.room.contains(me) {
            return match reason {
                LeaveReason::Disconnect => Verdict::Continue,
                _ => Verdict::Refuse(no_peer(room)),
            };
        }
        for other in cx.room.others(me) {
            out.send(other.session, Event::notice(Event::PeerLeft, room));
        }
        if reason == LeaveReason::Leave {
            out.send(me, Event::notice(Event::Left, room));
        }
        Verdict::Continue
    }

    fn on_signal(&self, cx: &EventContext<'_>, room: &str, out: &mut Decision) -> Verdict {
        let me = cx.from();
        if !cx.room.contains(me.session) {
            return Verdict::Refuse(no_peer(room));
        }
        let opaque = matches!(cx.event(), Event::Opaque(_));
        let mut relayed = false;
        for other in cx.room.others(me.session) {
            if opaque && other.dialect != me.dialect {
                continue;
            }
            out.deliver(other.session, Payload::Relay);
            relayed = true;
        }
        if relayed {
            Verdict::Continue
        } else if opaque && cx.room.members.len() > 1 {
            Verdict::Refuse(Refusal::new(
                ErrorCode::NoPeer,
                format!(
                    "your partner in room `{room}` speaks another dialect; unrecognized frames are relayed only between peers of the same dialect"
                ),
            ))
        } else {
            Verdict::Refuse(no_peer(room))
        }
    }
}

fn no_peer(room: &str) -> Refusal {
    Refusal::new(ErrorCode::NoPeer, format!("no peer in room `{room}` yet"))
}

/// How able a peer is to make a useful offer when told to. PeerJS peers offer on their own
/// (joining is calling); Ant Media peers act on `start`; raw
/// peers act on the `start` notice; the classic socket.io page cannot be told at all (its user
/// dials). A play-only Ant peer is never told: its offer would carry no media sections
/// (antmedia.md 4.1-7), so it waits for its partner's offer and answers it.
fn offer_rank(p: &Peer) -> u8 {
    match (p.dialect, p.mode) {
        // A PeerJS peer joins a room by calling into it: its offer is already on its way.
        (DialectKind::Peerjs, _) => 3,
        (DialectKind::Antmedia, JoinMode::Both) => 2,
        (DialectKind::Raw, JoinMode::Both | JoinMode::Play) => 1,
        _ => 0,
    }
}

/// Picks who makes the offer when `joiner` completes a pair with `existing`: the better-ranked
/// peer, the existing one on a tie (Ant Media's rule). `None` when neither can be told
/// (two socket.io pages: a user dials by hand).
fn choose_offerer(existing: Peer, joiner: Peer) -> Option<SessionId> {
    let (e, j) = (offer_rank(&existing), offer_rank(&joiner));
    if e == 0 && j == 0 {
        None
    } else if j > e {
        Some(joiner.session)
    } else {
        Some(existing.session)
    }
}

impl Plugin for RoomRouter {
    fn name(&self) -> &str {
        "room-router"
    }

    fn on_event(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        // Conference participants (Ant `joinRoom`) share the room table, so that room
        // information lists every peer, but they are not P2P partners: route as if they were
        // not there.
        if cx
            .room
            .members
            .iter()
            .any(|p| p.mode == JoinMode::Conference)
        {
            let p2p: Vec<Peer> = cx
                .room
                .members
                .iter()
                .filter(|p| p.mode != JoinMode::Conference)
                .copied()
                .collect();
            let cx = EventContext {
                room: switchboard_plugin_api::RoomView {
                    room: cx.room.room,
                    members: &p2p,
                },
                ..*cx
            };
            return self.route(&cx, out);
        }
        self.route(cx, out)
    }
}

impl RoomRouter {
    fn route(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        let room = cx.room.room;
        Ok(match cx.event() {
            Event::Join(_) => self.on_join(cx, room, out),
            Event::Leave(l) => self.on_leave(cx, room, l.reason, out),
            Event::Description(_)
            | Event::Candidate(_)
            | Event::PeerMessage(_)
            | Event::Opaque(_) => self.on_signal(cx, room, out),
            _ => Verdict::Continue,
        })
    }
}

#[cfg(test)]
mod tests;
