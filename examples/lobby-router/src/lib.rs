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
//! - a disconnect is handled once the session is gone ([`Plugin::on_session_closed`]): the
//!   partner is told and re-paired the same way, through the [`Outbox`] the gateway handed
//!   the plugin in [`Plugin::start`] (a closed session has no event, so no decision to amend).
//!   `on_session_closed` is called whatever earlier plugins did with the session's leaves, so
//!   no pairing outlives its session.
//!
//! Every event of a lobby room ends the pipeline ([`Verdict::Stop`]), so a room router after this
//! plugin never applies its two-peer limit there; events of other rooms pass on untouched.
//!
//! # Layout
//! Settings and factory, the per-room pairing state ([`Lobby`]), the plugin, the export.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Deserialize;
use switchboard_plugin_api::event::{ErrorCode, Event, LeaveReason};
use switchboard_plugin_api::{
    Decision, EventContext, Outbox, Payload, Plugin, PluginError, PluginFactory, Refusal,
    SessionId, SettingsError, Verdict, parse_settings,
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
    /// for which `is_member` holds, or queues it. Returns the waiting peer it was paired with,
    /// which makes the offer.
    fn place(
        &mut self,
        peer: SessionId,
        is_member: impl Fn(SessionId) -> bool,
    ) -> Option<SessionId> {
        // A waiting peer that is no longer a member (it disconnected and the gateway has not
        // told this plugin yet) is skipped rather than paired.
        while let Some(waiting) = self.waiting.pop_front() {
            if waiting == peer || !is_member(waiting) {
                continue;
            }
            self.partners.insert(waiting, peer);
            self.partners.insert(peer, waiting);
            return Some(waiting);
        }
        self.waiting.push_back(peer);
        None
    }

    /// Forgets `peer`; returns its partner, if it had one.
    fn remove(&mut self, peer: SessionId) -> Option<SessionId> {
        self.waiting.retain(|&s| s != peer);
        let partner = self.partners.remove(&peer)?;
        self.partners.remove(&partner);
        Some(partner)
    }

    /// `peer`'s partner left: the partner is told, then waits again or is paired at once.
    /// Returns the notices in delivery order.
    fn partner_left(
        &mut self,
        peer: SessionId,
        room: &str,
        is_member: impl Fn(SessionId) -> bool,
    ) -> Vec<(SessionId, Event)> {
        let mut notices = vec![(peer, Event::notice(Event::PeerLeft, room))];
        if let Some(waiting) = self.place(peer, is_member) {
            notices.push((waiting, Event::notice(Event::Start, room)));
            notices.push((peer, Event::notice(Event::PeerJoined, room)));
        }
        notices
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.partners.is_empty()
    }
}

/// The running lobby router.
pub struct LobbyRouter {
    config: LobbyRouterConfig,
    /// Pairing state by room. [`Plugin`] hooks take `&self`, hooks of different rooms run in
    /// parallel and `on_session_closed` runs outside any room, so the state has a lock of its
    /// own; it is held only for the lookup and the pairing, not the JSON round trip.
    lobbies: Mutex<HashMap<String, Lobby>>,
    /// Set by [`Plugin::start`]: how a disconnect's partner is told.
    outbox: OnceLock<Outbox>,
}

impl std::fmt::Debug for LobbyRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LobbyRouter")
            .field("config", &self.config)
            .field("lobbies", &self.lobbies)
            .field("started", &self.outbox.get().is_some())
            .finish()
    }
}

impl LobbyRouter {
    /// A router with `config`.
    pub fn new(config: LobbyRouterConfig) -> Self {
        Self {
            config,
            lobbies: Mutex::default(),
            outbox: OnceLock::new(),
        }
    }

    fn on_join(&self, cx: &EventContext<'_>, lobby: &mut Lobby, out: &mut Decision) {
        let (me, room) = (cx.from().session, cx.room.room);
        out.send(me, Event::notice(Event::Joined, room));
        if cx.room.contains(me) {
            return;
        }
        if let Some(waiting) = lobby.place(me, |s| cx.room.contains(s)) {
            out.send(waiting, Event::notice(Event::Start, room));
            out.send(me, Event::notice(Event::PeerJoined, room));
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
        if reason == LeaveReason::Disconnect {
            // Handled in `on_session_closed`, once the session is gone: the gateway takes the
            // peer out of the room after this pipeline whatever plugins say.
            return Verdict::Stop;
        }
        if !cx.room.contains(me) {
            return Verdict::Refuse(Refusal::new(
                ErrorCode::NoPeer,
                format!("you are not in room `{room}`"),
            ));
        }
        if let Some(partner) = lobby.remove(me) {
            let notices = lobby.partner_left(partner, room, |s| cx.room.contains(s));
            for (to, event) in notices {
                out.send(to, event);
            }
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

    /// Forgets `session` in every lobby; returns what its partners are to be told.
    fn forget(&self, session: SessionId) -> Vec<(SessionId, Event)> {
        let mut lobbies = self.lobbies.lock().unwrap_or_else(PoisonError::into_inner);
        let mut notices = Vec::new();
        lobbies.retain(|room, lobby| {
            if let Some(partner) = lobby.remove(session) {
                // Every peer this plugin still lists is connected: a closed one is forgotten
                // here, a departed one at its leave.
                notices.extend(lobby.partner_left(partner, room, |_| true));
            }
            !lobby.is_empty()
        });
        notices
    }
}

impl Plugin for LobbyRouter {
    fn name(&self) -> &str {
        "lobby-router"
    }

    fn start(&self, outbox: Outbox) -> Result<(), PluginError> {
        self.outbox
            .set(outbox)
            .map_err(|_| PluginError("started twice".into()))
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

    fn on_session_closed(&self, session: SessionId) -> Result<(), PluginError> {
        // Collected under the lock, delivered after it: the outbox queues to sessions and
        // needs none of this plugin's state.
        let notices = self.forget(session);
        if notices.is_empty() {
            return Ok(());
        }
        let outbox = self
            .outbox
            .get()
            .ok_or_else(|| PluginError("not started: no outbox to tell partners".into()))?;
        for (to, event) in notices {
            // A partner that closed meanwhile is told nothing; its own close is handled next.
            outbox.deliver(to, event);
        }
        Ok(())
    }
}

switchboard_plugin_abi::export_plugin!(LobbyRouterFactory);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use switchboard_plugin_api::event::{DialectKind, Join, JoinMode, Leave};

    use switchboard_plugin_api::{Deliver, Peer, RoomView};

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
        let room = RoomView {
            room: "lobby1",
            members: &members,
        };
        let cx = EventContext::new(peer(from), &event, room);
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
        Event::Opaque(switchboard_plugin_api::event::Opaque {
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
        let event = Event::notice(Event::Left, "room1");
        let room = RoomView {
            room: "room1",
            members: &[],
        };
        let cx = EventContext::new(peer(1), &event, room);
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

    /// Records what the plugin delivers outside hooks.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl Deliver for Recorder {
        fn deliver(&self, to: SessionId, event: Event) -> bool {
            self.0
                .lock()
                .unwrap()
                .push(format!("{to}:{}", event.kind()));
            true
        }
    }

    #[test]
    fn a_disconnect_tells_the_partner_through_the_outbox_and_re_pairs_it() {
        let router = LobbyRouter::new(LobbyRouterConfig {
            prefix: default_prefix(),
        });
        run(&router, 1, join(), &[]);
        run(&router, 2, join(), &[1]);
        run(&router, 3, join(), &[1, 2]);
        let disconnect = Event::Leave(Leave {
            room: "lobby1".into(),
            reason: LeaveReason::Disconnect,
        });
        assert_eq!(
            run(&router, 2, disconnect, &[1, 2, 3]),
            (Verdict::Stop, vec![]),
            "nothing is said until the session is gone"
        );
        assert!(
            router.on_session_closed(SessionId(2)).is_err(),
            "without an outbox the partner cannot be told: a failure, not silence"
        );
        let recorder = Arc::new(Recorder::default());
        let router = LobbyRouter::new(LobbyRouterConfig {
            prefix: default_prefix(),
        });
        router.start(recorder.clone()).unwrap();
        assert!(router.start(recorder.clone()).is_err(), "started once");
        run(&router, 1, join(), &[]);
        run(&router, 2, join(), &[1]);
        run(&router, 3, join(), &[1, 2]);
        router.on_session_closed(SessionId(2)).unwrap();
        assert_eq!(
            *recorder.0.lock().unwrap(),
            ["1:peer_left", "3:start", "1:peer_joined"]
        );
        assert_eq!(run(&router, 1, offer(), &[1, 3]).1, ["3:relay"]);
        router.on_session_closed(SessionId(7)).unwrap();
        assert_eq!(
            recorder.0.lock().unwrap().len(),
            3,
            "a stranger's close says nothing"
        );
    }
}
