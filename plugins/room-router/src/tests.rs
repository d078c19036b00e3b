use switchboard_plugin_api::RoomView;
use switchboard_plugin_api::event::{Description, Join, Leave, Opaque, SdpKind};

use super::*;

fn peer(id: u64, dialect: DialectKind, mode: JoinMode) -> Peer {
    Peer {
        session: SessionId(id),
        dialect,
        mode,
    }
}

fn run(from: Peer, event: Event, members: &[Peer]) -> (Verdict, Decision) {
    let router = RoomRouter::new(RoomRouterConfig::default());
    let cx = EventContext::new(
        from,
        &event,
        RoomView {
            room: "r1",
            members,
        },
    );
    let mut decision = Decision::default();
    let verdict = router
        .on_event(&cx, &mut decision)
        .expect("router never fails");
    (verdict, decision)
}

fn join(mode: JoinMode) -> Event {
    Event::Join(Join {
        room: "r1".into(),
        mode,
        token: None,
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

const ANT: DialectKind = DialectKind::Antmedia;

#[test]
fn first_join_is_acknowledged() {
    let a = peer(1, ANT, JoinMode::Both);
    let (v, d) = run(a, join(JoinMode::Both), &[]);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(sends(&d), [(1, "joined")]);
}

#[test]
fn second_ant_join_starts_the_waiting_peer_first() {
    let a = peer(1, ANT, JoinMode::Both);
    let b = peer(2, ANT, JoinMode::Both);
    let (_, d) = run(b, join(JoinMode::Both), &[a]);
    assert_eq!(sends(&d), [(1, "start"), (2, "joined"), (2, "peer_joined")]);
}

#[test]
fn play_only_waiting_peer_lets_the_joiner_offer() {
    let a = peer(1, ANT, JoinMode::Play);
    let b = peer(2, ANT, JoinMode::Both);
    let (_, d) = run(b, join(JoinMode::Both), &[a]);
    assert_eq!(sends(&d), [(1, "peer_joined"), (2, "joined"), (2, "start")]);
}

#[test]
fn ant_peer_offers_in_a_mixed_pair() {
    let s = peer(1, DialectKind::Socketio, JoinMode::Both);
    let a = peer(2, ANT, JoinMode::Both);
    let (_, d) = run(a, join(JoinMode::Both), &[s]);
    assert_eq!(sends(&d), [(1, "peer_joined"), (2, "joined"), (2, "start")]);
    let r = peer(3, DialectKind::Raw, JoinMode::Both);
    let (_, d) = run(r, join(JoinMode::Both), &[a]);
    assert_eq!(sends(&d), [(2, "start"), (3, "joined"), (3, "peer_joined")]);
}

#[test]
fn two_socketio_peers_get_no_start() {
    let s1 = peer(1, DialectKind::Socketio, JoinMode::Both);
    let s2 = peer(2, DialectKind::Socketio, JoinMode::Both);
    let (_, d) = run(s2, join(JoinMode::Both), &[s1]);
    assert_eq!(
        sends(&d),
        [(1, "peer_joined"), (2, "joined"), (2, "peer_joined")]
    );
}

#[test]
fn third_peer_is_refused_as_room_full() {
    let a = peer(1, ANT, JoinMode::Both);
    let b = peer(2, ANT, JoinMode::Both);
    let c = peer(3, ANT, JoinMode::Both);
    let (v, _) = run(c, join(JoinMode::Both), &[a, b]);
    assert!(matches!(v, Verdict::Refuse(r) if r.code == ErrorCode::RoomFull));
}

#[test]
fn signals_relay_to_partner_or_refuse_without_one() {
    let a = peer(1, ANT, JoinMode::Both);
    let b = peer(2, DialectKind::Raw, JoinMode::Both);
    let offer = Event::Description(Description {
        room: "r1".into(),
        kind: SdpKind::Offer,
        sdp: "v=0".into(),
    });
    let (v, d) = run(a, offer.clone(), &[a, b]);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(sends(&d), [(2, "relay")]);
    let (v, _) = run(a, offer.clone(), &[a]);
    assert!(matches!(v, Verdict::Refuse(r) if r.code == ErrorCode::NoPeer));
    let (v, _) = run(a, offer, &[]);
    assert!(matches!(v, Verdict::Refuse(r) if r.code == ErrorCode::NoPeer));
}

#[test]
fn opaque_frames_stay_within_their_dialect() {
    let r1 = peer(1, DialectKind::Raw, JoinMode::Both);
    let a = peer(2, ANT, JoinMode::Both);
    let frame = Event::Opaque(Opaque {
        room: "r1".into(),
        payload: "hello".into(),
    });
    let (v, d) = run(r1, frame, &[r1, a]);
    assert!(matches!(v, Verdict::Refuse(_)));
    assert!(d.deliveries.is_empty());
}

#[test]
fn leave_stops_partner_and_acknowledges_only_explicit_leave() {
    let a = peer(1, ANT, JoinMode::Both);
    let b = peer(2, ANT, JoinMode::Both);
    let leave = |reason| {
        Event::Leave(Leave {
            room: "r1".into(),
            reason,
        })
    };
    let (_, d) = run(a, leave(LeaveReason::Leave), &[a, b]);
    assert_eq!(sends(&d), [(2, "peer_left"), (1, "left")]);
    let (_, d) = run(a, leave(LeaveReason::Stop), &[a, b]);
    assert_eq!(sends(&d), [(2, "peer_left")]);
    let (v, _) = run(a, leave(LeaveReason::Leave), &[b]);
    assert!(matches!(v, Verdict::Refuse(r) if r.code == ErrorCode::NoPeer));
    let (v, d) = run(a, leave(LeaveReason::Disconnect), &[b]);
    assert_eq!(v, Verdict::Continue);
    assert!(d.deliveries.is_empty());
}

#[test]
fn play_only_ant_peer_never_gets_start() {
    let player = peer(1, ANT, JoinMode::Play);
    let s = peer(2, DialectKind::Socketio, JoinMode::Both);
    let (_, d) = run(s, join(JoinMode::Both), &[player]);
    assert_eq!(
        sends(&d),
        [(1, "peer_joined"), (2, "joined"), (2, "peer_joined")]
    );
    let r = peer(3, DialectKind::Raw, JoinMode::Both);
    let (_, d) = run(r, join(JoinMode::Both), &[player]);
    assert_eq!(sends(&d), [(1, "peer_joined"), (3, "joined"), (3, "start")]);
}

#[test]
fn conference_participants_are_not_p2p_partners() {
    let conf = peer(1, ANT, JoinMode::Conference);
    let a = peer(2, ANT, JoinMode::Both);
    // Alone with a conference participant: a P2P joiner waits, as in an empty room.
    let (_, d) = run(a, join(JoinMode::Both), &[conf]);
    assert_eq!(sends(&d), [(2, "joined")]);
    // Two P2P peers pair up beside any number of conference participants.
    let b = peer(3, DialectKind::Raw, JoinMode::Both);
    let (v, d) = run(b, join(JoinMode::Both), &[conf, a]);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(sends(&d), [(2, "start"), (3, "joined"), (3, "peer_joined")]);
    // Signals go to the partner only; a conference participant has no partner.
    let offer = Event::Description(Description {
        room: "r1".into(),
        kind: SdpKind::Offer,
        sdp: "v=0".into(),
    });
    let (_, d) = run(a, offer.clone(), &[conf, a, b]);
    assert_eq!(d.deliveries.len(), 1);
    assert_eq!(d.deliveries[0].to, SessionId(3));
    let (v, _) = run(conf, offer, &[conf, a, b]);
    assert!(matches!(v, Verdict::Refuse(r) if r.code == ErrorCode::NoPeer));
}

#[test]
fn a_peerjs_caller_offers_and_the_ant_peer_it_calls_waits_for_the_offer() {
    let ant = peer(1, ANT, JoinMode::Both);
    let caller = peer(2, DialectKind::Peerjs, JoinMode::Both);
    let (v, d) = run(caller, join(JoinMode::Both), &[ant]);
    assert_eq!(v, Verdict::Continue);
    // Ant, existing, is told a partner arrived (no `start`: it would offer too); the PeerJS
    // caller is "told" to offer, which it renders as nothing and does anyway.
    assert_eq!(
        sends(&d),
        vec![(1, "peer_joined"), (2, "joined"), (2, "start")]
    );
}
