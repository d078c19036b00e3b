//! A native routing plugin: lobby rooms where any number of peers are paired off in join order.
//!
//! Run with
//! ```text
//! cargo build -p lobby-router            # target/debug/liblobby_router.so
//! cargo run -p switchboard -- --config config/lobby.toml
//! ```
//! then open `http://127.0.0.1:5080/raw.html` (or the Ant page) in four tabs with room `lobby1`.
//!
//! In a room whose name starts with the configured `prefix` (default `lobby`):
//! - every join is accepted; the joiner is paired with the peer that has waited longest. The
//!   waiting peer makes the offer (`Start`); the joiner gets `Joined` and `PeerJoined`. With
//!   nobody waiting, the joiner gets `Joined` and waits.
//! - descriptions, candidates, peer messages and opaque frames go to the sender's partner only
//!   (opaque frames only to a partner of the same dialect); a peer without a partner is told
//!   `NoPeer`.
//! - a leave tells the partner (`PeerLeft`), who waits again and is paired with the next peer to
//!   arrive (or at once with a peer already waiting, which then offers).
//!
//! Every event of a lobby room ends the pipeline ([`Verdict::Stop`]), so a room router after this
//! plugin never applies its two-peer limit there; events of other rooms pass on untouched.
//!
//! # Layout
//! Settings and factory, the per-room pairing state ([`Lobby`]), the plugin, the export.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use switchboard_plugin_api::protocol::{ErrorCode, Event, LeaveReason};
use switchboard_plugin_api::{
    Decision, EventContext, Payload, Plugin, PluginError, PluginFactory, Refusal, SessionId,
    SettingsError, Verdict, parse_settings,
};

/// Settings of the lobby router (`[plugin.settings]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LobbyRouterConfig {
    /// Rooms whose name starts with this are lobbies.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_prefix() -> String {
    "lobby".to_owned()
}

/// Builds [`LobbyRouter`].
#[derive(Debug, Default)]
pub struct LobbyRouterFactory;

impl PluginFactory for LobbyRouterFactory {
    fn type_name(&self) -> &'static str {
        "lobby-router"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let config: LobbyRouterConfig = parse_settings(settings)?;
        if config.prefix.is_empty() {
            return Err(vec![SettingsError {
                key: "prefix".into(),
                message: "must not be empty (every room would be a lobby)".into(),
            }]);
        }
        Ok(Box::new(LobbyRouter::new(config)))
    }
}

/// Who waits and who is paired with whom in one lobby room.
#[derive(Debug, Default)]
pub struct Lobby {
    /// Unpaired peers, longest-waiting first.
    waiting: VecDeque<SessionId>,
    /// Both directions of every pair.
    partners: HashMap<SessionId, SessionId>,
}

impl Lobby {
    /// Pairs `peer` (a joiner, or a peer whose partner just left) with the longest-waiting peer
    /// that is still a member, the waiting peer offering; or queues it.
    fn place(&mut self, peer: SessionId, cx: &EventContext<'_>, out: &mut Decision) {
        let room = cx.room.room;
        // A waiting peer that is no longer a member (its leave never reached this plugin) is
        // skipped rather than paired.
        while let Some(waiting) = self.waiting.pop_front() {
            if waiting == peer || !cx.room.contains(waiting) {
                continue;
            }
            self.partners.insert(waiting, peer);
            self.partners.insert(peer, waiting);
            out.send(waiting, Event::notice(Event::Start, room));
            out.send(peer, Event::notice(Event::PeerJoined, room));
            return;
        }
        self.waiting.push_back(peer);
    }

    /// Forgets `peer`; returns its partner, if it had one.
    fn remove(&mut self, peer: SessionId) -> Option<SessionId> {
        self.waiting.retain(|&s| s != peer);
        let partner = self.partners.remove(&peer)?;
        self.partners.remove(&partner);
        Some(partner)
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.partners.is_empty()
    }
}

/// The running lobby router.
#[derive(Debug)]
pub struct LobbyRouter {
    config: LobbyRouterConfig,
    /// Pairing state by room. Hooks of different rooms run in parallel, so this lock is shared
    /// by them; it is held only for the lookup and the pairing, not the JSON round trip.
    lobbies: Mutex<HashMap<String, Lobby>>,
}

impl LobbyRouter {
    /// A router with `config`.
    pub fn new(config: LobbyRouterConfig) -> Self {
        Self {
            config,
            lobbies: Mutex::default(),
        }
    }

    fn on_join(&self, cx: &EventContext<'_>, lobby: &mut Lobby, out: &mut Decision) {
        let me = cx.from().session;
        out.send(me, Event::notice(Event::Joined, cx.room.room));
        if !cx.room.contains(me) {
            lobby.place(me, cx, out);
        }
    }

    fn on_leave(
        &self,
        cx: &EventContext<'_>,
        lobby: &mut Lobby,
        reason: LeaveReason,
        out: &mut Decision,
    ) -> Verdict {
        let (me, room) = (cx.from().session, cx.room.room);
        if !cx.room.contains(me) {
            return match reason {
                LeaveReason::Disconnect => Verdict::Stop,
                _ => Verdict::Refuse(Refusal::new(
                    ErrorCode::NoPeer,
                    format!("you are not in room `{room}`"),
                )),
            };
        }
        if let Some(partner) = lobby.remove(me) {
            out.send(partner, Event::notice(Event::PeerLeft, room));
            lobby.place(partner, cx, out);
        }
        if reason == LeaveReason::Leave {
            out.send(me, Event::notice(Event::Left, room));
        }
        Verdict::Stop
    }

    fn on_signal(&self, cx: &EventContext<'_>, lobby: &Lobby, out: &mut Decision) -> Verdict {
        let (me, room) = (cx.from(), cx.room.room);
        let partner = lobby
            .partners
            .get(&me.session)
            .and_then(|p| cx.room.members.iter().find(|m| m.session == *p));
        let Some(partner) = partner else {
            return Verdict::Refuse(Refusal::new(
                ErrorCode::NoPeer,
                format!(
                    "no partner in room `{room}` yet: you are paired with the next peer to join"
                ),
            ));
        };
        if matches!(cx.event(), Event::Opaque(_)) && partner.dialect != me.dialect {
            return Verdict::Refuse(Refusal::new(
                ErrorCode::NoPeer,
                "your partner speaks another dialect; unrecognized frames are relayed only between peers of the same dialect",
            ));
        }
        out.deliver(partner.session, Payload::Relay);
        Verdict::Stop
    }
}

impl Plugin for LobbyRouter {
    fn name(&self) -> &str {
        "lobby-router"
    }

    fn on_event(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        let room = cx.room.room;
        if !room.starts_with(&self.config.prefix) {
            return Ok(Verdict::Continue);
        }
        let mut lobbies = self.lobbies.lock().unwrap_or_else(PoisonError::into_inner);
        let lobby = lobbies.entry(room.to_owned()).or_default();
        let verdict = match cx.event() {
            Event::Join(_) => {
                self.on_join(cx, lobby, out);
                Verdict::Stop
            }
            Event::Leave(leave) => self.on_leave(cx, lobby, leave.reason, out),
            Event::Description(_)
            | Event::Candidate(_)
            | Event::PeerMessage(_)
            | Event::Opaque(_) => self.on_signal(cx, lobby, out),
            _ => Verdict::Stop,
        };
        if lobby.is_empty() {
            lobbies.remove(room);
        }
        Ok(verdict)
    }
}

switchboard_plugin_api::export_plugin!(LobbyRouterFactory);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use switchboard_plugin_api::protocol::{DialectKind, Join, JoinMode, Leave};
    use switchboard_plugin_api::{Envelope, Peer, RoomView};

    use super::*;

    fn peer(n: u64) -> Peer {
        Peer {
            session: SessionId(n),
            dialect: DialectKind::Raw,
            mode: JoinMode::Both,
        }
    }

    /// Runs one event from `from` with `members` in the room; returns (verdict, deliveries).
    fn run(
        router: &LobbyRouter,
        from: u64,
        event: Event,
        members: &[u64],
    ) -> (Verdict, Vec<String>) {
        let members: Vec<Peer> = members.iter().map(|&n| peer(n)).collect();
        let envelope = Envelope {
            from: peer(from),
            event,
            original: None,
            app: None,
        };
        let cx = EventContext {
            envelope: &envelope,
            room: RoomView {
                room: "lobby1",
                members: &members,
            },
        };
        let mut out = Decision::default();
        let verdict = router.on_event(&cx, &mut out).unwrap();
        let got = out
            .deliveries
            .iter()
            .map(|d| match &d.payload {
                Payload::Relay => format!("{}:relay", d.to),
                Payload::Event(e) => format!("{}:{}", d.to, e.kind()),
            })
            .collect();
        (verdict, got)
    }

    fn join() -> Event {
        Event::Join(Join {
            room: "lobby1".into(),
            mode: JoinMode::Both,
            token: None,
        })
    }

    fn offer() -> Event {
        Event::Opaque(switchboard_plugin_api::protocol::Opaque {
            room: "lobby1".into(),
            payload: "x".into(),
        })
    }

    #[test]
    fn pairs_in_join_order_and_re_pairs_after_a_leave() {
        let router = LobbyRouter::new(LobbyRouterConfig {
            prefix: default_prefix(),
        });
        assert_eq!(run(&router, 1, join(), &[]).1, ["1:joined"]);
        assert_eq!(
            run(&router, 2, join(), &[1]).1,
            ["2:joined", "1:start", "2:peer_joined"]
        );
        assert_eq!(run(&router, 3, join(), &[1, 2]).1, ["3:joined"]);
        assert_eq!(
            run(&router, 3, offer(), &[1, 2, 3]).0,
            Verdict::Refuse(Refusal::new(
                ErrorCode::NoPeer,
                "no partner in room `lobby1` yet: you are paired with the next peer to join",
            ))
        );
        assert_eq!(
            run(&router, 4, join(), &[1, 2, 3]).1,
            ["4:joined", "3:start", "4:peer_joined"]
        );
        assert_eq!(run(&router, 4, offer(), &[1, 2, 3, 4]).1, ["3:relay"]);
        assert_eq!(run(&router, 1, offer(), &[1, 2, 3, 4]).1, ["2:relay"]);
        let leave = Event::Leave(Leave {
            room: "lobby1".into(),
            reason: LeaveReason::Leave,
        });
        assert_eq!(
            run(&router, 1, leave, &[1, 2, 3, 4]),
            (Verdict::Stop, vec!["2:peer_left".into(), "1:left".into()])
        );
        assert_eq!(
            run(&router, 5, join(), &[2, 3, 4]).1,
            ["5:joined", "2:start", "5:peer_joined"]
        );
    }

    #[test]
    fn other_rooms_pass_through_and_settings_are_strict() {
        let router = LobbyRouterFactory.build(&toml::Table::new()).unwrap();
        let envelope = Envelope {
            from: peer(1),
            event: Event::notice(Event::Left, "room1"),
            original: None,
            app: None,
        };
        let cx = EventContext {
            envelope: &envelope,
            room: RoomView {
                room: "room1",
                members: &[],
            },
        };
        assert_eq!(
            router.on_event(&cx, &mut Decision::default()).unwrap(),
            Verdict::Continue
        );
        let bad: toml::Table = toml::from_str("prefix = \"\"\nmax = 3").unwrap();
        assert!(LobbyRouterFactory.build(&bad).is_err());
        let empty: toml::Table = toml::from_str("prefix = \"\"").unwrap();
        let Err(errors) = LobbyRouterFactory.build(&empty) else {
            panic!("an empty prefix is refused");
        };
        assert_eq!(errors[0].key, "prefix");
    }
}
