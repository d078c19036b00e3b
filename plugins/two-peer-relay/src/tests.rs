use switchboard_plugin_api::event::{
    Candidate, Description, DialectKind, Join, JoinMode, Leave, Opaque, SdpKind,
};
use switchboard_plugin_api::{Peer, RoomView};

use super::*;

const ROOM: &str = "simplep2p";

fn peer(id: u64) -> Peer {
    Peer {
        session: SessionId(id),
        dialect: DialectKind::Socketio,
        mode: JoinMode::Both,
    }
}

/// Runs one event through `relay` in `room` (members as the gateway would show them).
fn run_in(relay: &TwoPeerRelay, room: &str, from: Peer, event: Event) -> (Verdict, Decision) {
    let cx = EventContext::new(from, &event, RoomView { room, members: &[] });
    let mut decision = Decision::default();
    let verdict = relay
        .on_event(&cx, &mut decision)
        .expect("relay never fails");
    (verdict, decision)
}

fn run(relay: &TwoPeerRelay, from: u64, event: Event) -> (Verdict, Decision) {
    run_in(relay, ROOM, peer(from), event)
}

fn join() -> Event {
    Event::Join(Join {
        room: ROOM.into(),
        mode: JoinMode::Both,
        token: None,
    })
}

fn leave(reason: LeaveReason) -> Event {
    Event::Leave(Leave {
        room: ROOM.into(),
        reason,
    })
}

fn offer() -> Event {
    Event::Description(Description {
        room: ROOM.into(),
        kind: SdpKind::Offer,
        sdp: "v=0".into(),
    })
}

fn candidate() -> Event {
    Event::Candidate(Candidate {
        room: ROOM.into(),
        candidate: "candidate:1 1 udp 1 192.0.2.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    })
}

fn sends(d: &Decision) -> Vec<(u64, &'static str)> {
    d.deliveries
        .iter()
        .map(|del| match &del.payload {
            Payload::Event(e) => (del.to.0, e.kind()),
            Payload::Relay => (del.to.0, "relay"),
        })
        .collect()
}

fn relay(third_peer: ThirdPeer) -> TwoPeerRelay {
    TwoPeerRelay::new(TwoPeerRelayConfig {
        third_peer,
        ..TwoPeerRelayConfig::default()
    })
}

#[test]
fn pair_is_announced_without_start() {
    let r = relay(ThirdPeer::Refuse);
    let (v, d) = run(&r, 1, join());
    assert_eq!(v, Verdict::Stop);
    assert_eq!(sends(&d), [(1, "joined")]);
    let (v, d) = run(&r, 2, join());
    assert_eq!(v, Verdict::Stop);
    assert_eq!(
        sends(&d),
        [(1, "peer_joined"), (2, "joined"), (2, "peer_joined")]
    );
    // A repeated join is acknowledged and changes nothing.
    let (_, d) = run(&r, 2, join());
    assert_eq!(sends(&d), [(2, "joined")]);
}

#[test]
fn signals_go_to_the_other_slot_or_nowhere() {
    let r = relay(ThirdPeer::Refuse);
    run(&r, 1, join());
    // Alone: dropped silently, as app.js does.
    let (v, d) = run(&r, 1, offer());
    assert_eq!(v, Verdict::Stop);
    assert!(d.deliveries.is_empty());
    run(&r, 2, join());
    let (_, d) = run(&r, 1, offer());
    assert_eq!(sends(&d), [(2, "relay")]);
    let (_, d) = run(&r, 2, candidate());
    assert_eq!(sends(&d), [(1, "relay")]);
    let opaque = Event::Opaque(Opaque {
        room: ROOM.into(),
        payload: "hello".into(),
    });
    let (_, d) = run(&r, 2, opaque);
    assert_eq!(sends(&d), [(1, "relay")]);
}

#[test]
fn third_peer_is_refused_as_room_full() {
    let r = relay(ThirdPeer::Refuse);
    run(&r, 1, join());
    run(&r, 2, join());
    let (v, d) = run(&r, 3, join());
    assert!(
        matches!(v, Verdict::Refuse(ref f) if f.code == ErrorCode::RoomFull),
        "{v:?}"
    );
    assert!(d.deliveries.is_empty());
    // A refused peer never joined: its signals are refused too.
    let (v, _) = run(&r, 3, offer());
    assert!(matches!(v, Verdict::Refuse(ref f) if f.code == ErrorCode::NoPeer));
}

#[test]
fn ignored_third_peer_is_inert_and_never_takes_a_slot() {
    let r = relay(ThirdPeer::Ignore);
    run(&r, 1, join());
    run(&r, 2, join());
    let (v, d) = run(&r, 3, join());
    assert_eq!(v, Verdict::Stop);
    assert!(d.deliveries.is_empty());
    let (v, d) = run(&r, 3, offer());
    assert_eq!(v, Verdict::Stop);
    assert!(d.deliveries.is_empty());
    // Slot 1 frees; the inert peer stays inert and the next new peer takes the slot.
    let (_, d) = run(&r, 1, leave(LeaveReason::Disconnect));
    assert_eq!(sends(&d), [(2, "peer_left")]);
    let (_, d) = run(&r, 3, offer());
    assert!(d.deliveries.is_empty());
    let (_, d) = run(&r, 3, join());
    assert!(d.deliveries.is_empty());
    let (_, d) = run(&r, 4, join());
    assert_eq!(
        sends(&d),
        [(2, "peer_joined"), (4, "joined"), (4, "peer_joined")]
    );
    let (_, d) = run(&r, 2, offer());
    assert_eq!(sends(&d), [(4, "relay")]);
    // The inert peer's disconnect is silent.
    let (v, d) = run(&r, 3, leave(LeaveReason::Disconnect));
    assert_eq!(v, Verdict::Stop);
    assert!(d.deliveries.is_empty());
}

#[test]
fn leave_frees_the_slot_and_acknowledges_explicit_leave() {
    let r = relay(ThirdPeer::Refuse);
    run(&r, 1, join());
    run(&r, 2, join());
    let (_, d) = run(&r, 1, leave(LeaveReason::Leave));
    assert_eq!(sends(&d), [(2, "peer_left"), (1, "left")]);
    let (_, d) = run(&r, 2, leave(LeaveReason::Stop));
    assert!(d.deliveries.is_empty());
    // The room is forgotten once empty.
    assert!(r.state().is_empty());
    // Leaving a room one is not in: a disconnect is quiet, an explicit leave is refused.
    let (v, _) = run(&r, 5, leave(LeaveReason::Disconnect));
    assert_eq!(v, Verdict::Stop);
    let (v, _) = run(&r, 5, leave(LeaveReason::Leave));
    assert!(matches!(v, Verdict::Refuse(ref f) if f.code == ErrorCode::NoPeer));
}

#[test]
fn first_free_slot_is_filled() {
    let r = relay(ThirdPeer::Refuse);
    run(&r, 1, join());
    run(&r, 2, join());
    run(&r, 1, leave(LeaveReason::Disconnect));
    run(&r, 3, join());
    assert_eq!(
        r.state()[ROOM].slots,
        [Some(SessionId(3)), Some(SessionId(2))]
    );
}

#[test]
fn other_rooms_pass_through() {
    let r = relay(ThirdPeer::Refuse);
    let other_join = Event::Join(Join {
        room: "other".into(),
        mode: JoinMode::Both,
        token: None,
    });
    let (v, d) = run_in(&r, "other", peer(1), other_join);
    assert_eq!(v, Verdict::Continue);
    assert!(d.deliveries.is_empty());
    assert!(r.state().is_empty());
}

#[test]
fn canonical_example_config_builds() {
    let text = include_str!("../../../config/plugins/two-peer-relay.toml");
    let doc: toml::Table = toml::from_str(text).expect("example is TOML");
    let plugins = doc["plugin"].as_array().expect("[[plugin]] array");
    assert_eq!(plugins.len(), 1);
    let table = plugins[0].as_table().expect("table");
    assert_eq!(
        table["type"].as_str(),
        Some(TwoPeerRelayFactory.type_name())
    );
    let settings = table["settings"].as_table().expect("[plugin.settings]");
    let plugin = TwoPeerRelayFactory.build(settings).expect("example builds");
    assert_eq!(plugin.name(), "two-peer-relay");
}

#[test]
fn bad_settings_are_all_reported() {
    let settings: toml::Table = toml::from_str(r#"rooms = ["a", "", "a"]"#).expect("TOML");
    let errors = TwoPeerRelayFactory.build(&settings).err().expect("invalid");
    let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["rooms[1]", "rooms[2]"]);
    let settings: toml::Table = toml::from_str(r#"third_peer = "queue""#).expect("TOML");
    assert!(TwoPeerRelayFactory.build(&settings).is_err());
    let settings: toml::Table = toml::from_str(r#"room = ["a"]"#).expect("TOML");
    let errors = TwoPeerRelayFactory
        .build(&settings)
        .err()
        .expect("unknown key");
    assert!(errors[0].message.contains("unknown field"), "{errors:?}");
    let settings: toml::Table = toml::from_str("rooms = []").expect("TOML");
    let errors = TwoPeerRelayFactory.build(&settings).err().expect("empty");
    assert_eq!(errors[0].key, "rooms");
}
