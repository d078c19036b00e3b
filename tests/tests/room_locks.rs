//! Rooms are locked one by one (issue 19): a plugin hook holds only its own room, so events of
//! other rooms go on while it runs, and joins racing into one room never overfill it.
//!
//! Two tiers: the gateway's own dispatcher driven from several OS threads (a plugin that blocks
//! on a gate the test controls shows what runs while a hook is held), and real raw WebSocket
//! clients connecting at once to a gateway on a multi-threaded runtime.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use switchboard::GatewayConfig;
use switchboard::envelope::Envelope;
use switchboard::gateway::{Dispatched, Gateway, Outbound, SessionHandle};
use switchboard::pipeline::Pipeline;
use switchboard::plugins::PluginRegistry;
use switchboard_plugin_api::event::{
    Candidate, DialectKind, Event, Join, JoinMode, Leave, LeaveReason,
};
use switchboard_plugin_api::{Decision, EventContext, Peer, Plugin, PluginError, Verdict};
use switchboard_tests::{TestGateway, WsClient, field};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that must happen (a failure, not a measurement).
const MUST_HAPPEN: Duration = Duration::from_secs(10);

/// Holds every event of rooms named `held-*` in its hook until the test opens the gate: it
/// reports each entry on `entered`, then waits for one message on `gate`.
struct Gate {
    entered: std::sync::Mutex<std_mpsc::Sender<String>>,
    gate: std::sync::Mutex<std_mpsc::Receiver<()>>,
    /// Hooks running in `held-*` rooms right now, at most one per room if rooms are locked.
    inside: AtomicUsize,
}

impl Plugin for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    fn on_event(&self, cx: &EventContext<'_>, _: &mut Decision) -> Result<Verdict, PluginError> {
        if !cx.room.room.starts_with("held-") || !matches!(cx.event(), Event::Candidate(_)) {
            return Ok(Verdict::Continue);
        }
        self.inside.fetch_add(1, Ordering::SeqCst);
        let _ = self.entered.lock().unwrap().send(cx.room.room.to_owned());
        // Waiting on the gate with the room locked is the point: a slow plugin.
        let _ = self.gate.lock().unwrap().recv_timeout(MUST_HAPPEN);
        self.inside.fetch_sub(1, Ordering::SeqCst);
        Ok(Verdict::Continue)
    }
}

fn config() -> Arc<GatewayConfig> {
    let mut config = GatewayConfig::parse("").expect("the default config parses");
    // Every delivery fits in a queue: the test reads them after the fact.
    config.limits.session_queue_len = 4096;
    Arc::new(config)
}

/// A gateway whose pipeline is `first` (if any), then the built-in room router.
fn gateway(first: Option<Box<dyn Plugin>>, router_settings: &str) -> Arc<Gateway> {
    let settings: toml::Table = toml::from_str(router_settings).unwrap();
    let router = PluginRegistry::builtin()
        .build("room-router", &settings)
        .expect("room-router builds");
    let plugins = first.into_iter().chain([router]).collect();
    Arc::new(Gateway::new(
        config(),
        Pipeline::new(plugins),
        CancellationToken::new(),
    ))
}

fn peer(handle: &SessionHandle) -> Peer {
    Peer {
        session: handle.id,
        dialect: DialectKind::Raw,
        mode: JoinMode::Both,
    }
}

/// Dispatches `event` from `from`; without `[cluster]` nothing waits, so one poll completes it.
fn dispatch(gateway: &Gateway, from: Peer, event: Event) -> Dispatched {
    gateway
        .dispatcher()
        .dispatch(Envelope {
            from,
            event,
            original: None,
            app: None,
        })
        .now_or_never()
        .expect("a dispatch without [cluster] never waits")
}

fn join(room: &str) -> Event {
    Event::Join(Join {
        room: room.to_owned(),
        mode: JoinMode::Both,
        token: None,
    })
}

fn candidate(room: &str, n: usize) -> Event {
    Event::Candidate(Candidate {
        room: room.to_owned(),
        candidate: format!("candidate:{n} 1 udp 2122194687 127.0.0.1 {n} typ host").into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    })
}

/// Relayed candidates waiting in a session's queue.
fn relays(handle: &mut SessionHandle) -> usize {
    let mut n = 0;
    while let Ok(out) = handle.rx.try_recv() {
        if matches!(&out, Outbound::Relay(env) if matches!(env.event, Event::Candidate(_))) {
            n += 1;
        }
    }
    n
}

#[test]
fn a_hook_held_in_one_room_does_not_stall_another_room() {
    let (entered_tx, entered) = std_mpsc::channel();
    let (open, gate_rx) = std_mpsc::channel();
    let gate = Arc::new(Gate {
        entered: std::sync::Mutex::new(entered_tx),
        gate: std::sync::Mutex::new(gate_rx),
        inside: AtomicUsize::new(0),
    });
    struct Shared(Arc<Gate>);
    impl Plugin for Shared {
        fn name(&self) -> &str {
            "gate"
        }
        fn on_event(
            &self,
            cx: &EventContext<'_>,
            d: &mut Decision,
        ) -> Result<Verdict, PluginError> {
            self.0.on_event(cx, d)
        }
    }
    let gw = gateway(Some(Box::new(Shared(Arc::clone(&gate)))), "");
    let [a1, mut a2, b1, mut b2] = [(); 4].map(|()| gw.register(DialectKind::Raw, None));
    for (h, room) in [(&a1, "held-a"), (&a2, "held-a"), (&b1, "b"), (&b2, "b")] {
        assert!(dispatch(&gw, peer(h), join(room)).refusal.is_none());
    }
    relays(&mut a2);
    relays(&mut b2);

    std::thread::scope(|s| {
        // Room A: a candidate whose hook blocks on the gate, with room A locked.
        let (gw_a, from_a) = (&gw, peer(&a1));
        let held = s.spawn(move || dispatch(gw_a, from_a, candidate("held-a", 0)));
        assert_eq!(entered.recv_timeout(MUST_HAPPEN).unwrap(), "held-a");
        // A second event of room A, from another thread, waits for room A's lock: its hook
        // must not run while the first one holds the room.
        let queued = s.spawn(move || dispatch(gw_a, from_a, candidate("held-a", 1)));

        // Room B, meanwhile: every dispatch completes and is delivered.
        const B_EVENTS: usize = 500;
        for n in 0..B_EVENTS {
            let out = dispatch(&gw, peer(&b1), candidate("b", n));
            assert!(out.refusal.is_none() && out.blocked.is_empty());
        }
        assert_eq!(
            relays(&mut b2),
            B_EVENTS,
            "room B went on while room A's hook was held"
        );
        assert!(
            !held.is_finished(),
            "room A's first event is still in its hook"
        );
        assert_eq!(
            gate.inside.load(Ordering::SeqCst),
            1,
            "one hook inside room A"
        );
        assert_eq!(relays(&mut a2), 0, "nothing of room A was delivered yet");

        // Open the gate twice: each of room A's events goes through, one after the other.
        open.send(()).unwrap();
        assert!(held.join().unwrap().refusal.is_none());
        assert_eq!(entered.recv_timeout(MUST_HAPPEN).unwrap(), "held-a");
        open.send(()).unwrap();
        assert!(queued.join().unwrap().refusal.is_none());
    });
    assert_eq!(
        relays(&mut a2),
        2,
        "both of room A's candidates were relayed"
    );
}

#[test]
fn joins_racing_into_one_room_from_many_threads_never_overfill_it() {
    const THREADS: usize = 8;
    const ROOMS: usize = 40;
    let gw = gateway(None, "max_peers = 3");
    let handles: Vec<Vec<SessionHandle>> = (0..THREADS)
        .map(|_| {
            (0..ROOMS)
                .map(|_| gw.register(DialectKind::Raw, None))
                .collect()
        })
        .collect();
    let admitted = AtomicUsize::new(0);
    let barrier = std::sync::Barrier::new(THREADS);
    std::thread::scope(|s| {
        for mine in &handles {
            let (gw, admitted, barrier) = (&gw, &admitted, &barrier);
            s.spawn(move || {
                barrier.wait();
                for (room, h) in mine.iter().enumerate() {
                    let out = dispatch(gw, peer(h), join(&format!("race-{room}")));
                    match out.refusal {
                        None => {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(refusal) => assert_eq!(refusal.code.as_str(), "room_full"),
                    }
                    // Every fourth admitted peer leaves again at once, so rooms empty, go,
                    // and are made anew while other threads join them.
                    if room % 4 == 0 && h.id.0 % 2 == 0 {
                        let leave = Event::Leave(Leave {
                            room: format!("race-{room}"),
                            reason: LeaveReason::Leave,
                        });
                        let _ = dispatch(gw, peer(h), leave);
                    }
                }
            });
        }
    });
    let rooms = gw.dispatcher().rooms_snapshot();
    let mut members_total = 0;
    for (room, members) in &rooms {
        assert!(members.len() <= 3, "{room} holds {} members", members.len());
        members_total += members.len();
    }
    // Rooms nobody left end full: every join was either admitted or refused as full.
    for room in (0..ROOMS).filter(|r| r % 4 != 0) {
        assert_eq!(
            gw.dispatcher().room_members(&format!("race-{room}")).len(),
            3
        );
    }
    // No admission was lost either: what was admitted is in the rooms or left them.
    assert!(admitted.load(Ordering::Relaxed) >= members_total);
    assert_eq!(gw.dispatcher().room_count(), rooms.len());
}

/// The first frame a raw client gets after connecting: admitted (`switchboard.joined`) or
/// refused (`room_full`, then close 4409).
async fn admitted(url: String) -> (bool, Option<WsClient>) {
    let mut client = WsClient::connect(&url).await;
    let first: Value = client.recv_json().await;
    match field(&first, "type") {
        "switchboard.joined" => (true, Some(client)),
        "switchboard.error" => {
            assert_eq!(field(&first, "code"), "room_full", "{first}");
            let frame = client.recv_close().await.expect("a close frame");
            assert_eq!(u16::from(frame.code), 4409);
            (false, None)
        }
        other => panic!("unexpected first frame {other}: {first}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_peers_connecting_at_once_fill_each_room_to_two_exactly() {
    const ROOMS: usize = 10;
    const PER_ROOM: usize = 6;
    let gw = TestGateway::start().await;
    let tasks: Vec<_> = (0..ROOMS * PER_ROOM)
        .map(|i| tokio::spawn(admitted(gw.raw_url(&format!("rush-{}", i % ROOMS)))))
        .collect();
    let mut kept = Vec::new();
    let mut per_room = [0usize; ROOMS];
    for (i, task) in tasks.into_iter().enumerate() {
        let (ok, client) = task.await.expect("the client task ends");
        if ok {
            per_room[i % ROOMS] += 1;
        }
        kept.extend(client);
    }
    assert_eq!(per_room, [2; ROOMS], "each room admitted two peers");
    let dispatcher = gw.running().gateway().dispatcher();
    for room in 0..ROOMS {
        assert_eq!(dispatcher.room_members(&format!("rush-{room}")).len(), 2);
    }
    assert_eq!(dispatcher.room_count(), ROOMS);
    for client in kept {
        client.close().await;
    }
    gw.stop().await;
}
