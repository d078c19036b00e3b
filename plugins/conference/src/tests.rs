use std::sync::Arc;

use switchboard_plugin_api::event::conference::{JoinRoom, MediaRequest, RoomRequest};
use switchboard_plugin_api::event::{
    ConferenceCommand, ConferenceReply, ConferenceRequest, DialectKind, ErrorCode, Event, Leave,
    LeaveReason,
};
use switchboard_plugin_api::{Payload, Peer, RoomView, SessionId};

use super::*;

const ANT: DialectKind = DialectKind::Antmedia;

fn peer(id: u64, dialect: DialectKind, mode: JoinMode) -> Peer {
    Peer {
        session: SessionId(id),
        dialect,
        mode,
    }
}

fn plugin(hub: &Arc<Hub>) -> Conference {
    Conference::new(hub.clone(), ConferenceSettings::default())
}

fn run(c: &Conference, from: Peer, event: Event, members: &[Peer]) -> (Verdict, Decision) {
    let room = event.room().unwrap_or_default().to_owned();
    let cx = EventContext::new(
        from,
        &event,
        RoomView {
            room: &room,
            members,
        },
    );
    let mut decision = Decision::default();
    let verdict = c.on_event(&cx, &mut decision).expect("never fails");
    (verdict, decision)
}

fn request(command: ConferenceCommand) -> Event {
    Event::Conference(Box::new(ConferenceRequest {
        app: "LiveApp".into(),
        command,
    }))
}

fn join(room: &str, stream: Option<&str>) -> Event {
    request(ConferenceCommand::JoinRoom(JoinRoom {
        room: room.into(),
        stream_id: stream.map(str::to_owned),
        mode: None,
        stream_name: Some("Alice".into()),
        role: None,
        meta_data: None,
        token: None,
    }))
}

fn room_info(room: &str) -> Event {
    request(ConferenceCommand::GetRoomInfo(RoomRequest {
        room: room.into(),
        stream_id: None,
    }))
}

fn reply(d: &Decision) -> &ConferenceReply {
    match d.deliveries.as_slice() {
        [delivery] => match &delivery.payload {
            Payload::Event(Event::ConferenceReply(r)) => r.as_ref(),
            other => panic!("not a reply: {other:?}"),
        },
        other => panic!("expected one delivery, got {other:?}"),
    }
}

fn refusal(v: &Verdict) -> ErrorCode {
    match v {
        Verdict::Refuse(r) => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn join_lists_every_member_of_the_room_whatever_its_dialect() {
    let hub = Arc::new(Hub::in_memory());
    let c = plugin(&hub);
    let raw = peer(1, DialectKind::Raw, JoinMode::Both);
    let a = peer(2, ANT, JoinMode::Conference);
    let (v, d) = run(&c, a, join("r1", Some("s1")), &[raw]);
    assert_eq!(v, Verdict::Stop);
    let ConferenceReply::JoinedRoom(j) = reply(&d) else {
        panic!("{d:?}")
    };
    assert_eq!(j.stream_id, "s1");
    assert_eq!(j.streams.len(), 1);
    assert_eq!(j.streams[0].stream_id, "raw-1");

    // A second participant without a stream id gets one made up, and sees the first.
    let b = peer(3, ANT, JoinMode::Conference);
    let (_, d) = run(&c, b, join("r1", None), &[raw, a]);
    let ConferenceReply::JoinedRoom(j) = reply(&d) else {
        panic!("{d:?}")
    };
    assert!(!j.stream_id.is_empty() && j.stream_id != "s1");
    let ids: Vec<_> = j.streams.iter().map(|s| s.stream_id.as_str()).collect();
    assert_eq!(ids, ["raw-1", "s1"]);
    assert_eq!(j.streams[1].stream_name, "Alice");

    // A stream id in use is refused.
    let c3 = peer(4, ANT, JoinMode::Conference);
    let (v, _) = run(&c, c3, join("r1", Some("s1")), &[raw, a, b]);
    assert_eq!(refusal(&v), ErrorCode::StreamIdInUse);

    // Room information leaves out the asker.
    let (_, d) = run(&c, a, room_info("r1"), &[raw, a, b]);
    let ConferenceReply::RoomInfo(info) = reply(&d) else {
        panic!("{d:?}")
    };
    assert_eq!(info.streams.len(), 2);
    assert!(info.streams.iter().all(|s| s.stream_id != "s1"));
}

#[test]
fn empty_room_information_is_an_error_naming_the_room() {
    let hub = Arc::new(Hub::in_memory());
    let c = plugin(&hub);
    let a = peer(1, ANT, JoinMode::Both);
    let (v, _) = run(&c, a, room_info("nobody"), &[]);
    assert_eq!(refusal(&v), ErrorCode::RoomEmpty);
}

#[test]
fn leaving_and_disconnecting_forget_the_participant() {
    let hub = Arc::new(Hub::in_memory());
    let c = plugin(&hub);
    let a = peer(1, ANT, JoinMode::Conference);
    let b = peer(2, ANT, JoinMode::Conference);
    run(&c, a, join("r1", Some("s1")), &[]);
    run(&c, b, join("r1", Some("s2")), &[a]);
    let leave = request(ConferenceCommand::LeaveRoom(RoomRequest {
        room: "r1".into(),
        stream_id: None,
    }));
    let (v, d) = run(&c, a, leave, &[a, b]);
    // Answered, and passed on so that the media plugin ends the leaver's streams in the room.
    assert_eq!(v, Verdict::Continue);
    assert!(
        matches!(reply(&d), ConferenceReply::LeftRoom(l) if l.stream_id.as_deref() == Some("s1"))
    );
    // s1 is free again.
    let (_, d) = run(&c, a, join("r1", Some("s1")), &[b]);
    assert!(matches!(reply(&d), ConferenceReply::JoinedRoom(_)));
    let disconnect = Event::Leave(Leave {
        room: "r1".into(),
        reason: LeaveReason::Disconnect,
    });
    let (v, d) = run(&c, b, disconnect, &[a, b]);
    assert_eq!(v, Verdict::Stop);
    assert!(d.deliveries.is_empty());
    assert!(!hub.state().streams.contains_key("s2"));
}

#[test]
fn rest_rooms_have_dates() {
    let hub = Arc::new(Hub::in_memory());
    let c = plugin(&hub);
    let future = now() + 3600;
    hub.create_room(
        "LiveApp",
        NewRoom {
            room_id: Some("later".into()),
            start_date: future,
            end_date: future + 60,
            mode: None,
        },
        now(),
    )
    .expect("created");
    let a = peer(1, ANT, JoinMode::Conference);
    let (v, _) = run(&c, a, join("later", None), &[]);
    assert_eq!(refusal(&v), ErrorCode::RoomNotActive);
    // A room nobody created is open.
    let (v, _) = run(&c, a, join("adhoc", None), &[]);
    assert_eq!(v, Verdict::Stop);
}

#[test]
fn media_is_refused_after_the_token_check() {
    let hub = Arc::new(Hub::open(
        HubOptions {
            store: None,
            apps: vec![AppSecurityConfig {
                publish: TokenCheck::OneTime,
                ..AppSecurityConfig::unchecked("LiveApp")
            }],
            shared: None,
        },
        0,
    ));
    let c = plugin(&hub);
    let a = peer(1, ANT, JoinMode::Both);
    let publish = |token: Option<&str>| {
        request(ConferenceCommand::Publish(MediaRequest {
            stream_id: "s1".into(),
            token: token.map(str::to_owned),
            room: None,
        }))
    };
    let (v, _) = run(&c, a, publish(None), &[]);
    assert_eq!(refusal(&v), ErrorCode::Unauthorized);
    let token = hub
        .create_token("LiveApp", "s1", now() + 60, TokenType::Publish, None)
        .expect("token");
    // A good token passes the request on to the media plugin.
    let (v, _) = run(&c, a, publish(Some(&token.token_id)), &[]);
    assert_eq!(v, Verdict::Continue);
    let (v, _) = run(&c, a, publish(Some(&token.token_id)), &[]);
    assert_eq!(
        refusal(&v),
        ErrorCode::Unauthorized,
        "one-time token reused"
    );
    // Play is not checked for this application.
    let play = request(ConferenceCommand::Play(MediaRequest {
        stream_id: "s1".into(),
        token: None,
        room: None,
    }));
    let (v, _) = run(&c, a, play, &[]);
    assert_eq!(v, Verdict::Continue);
}

#[test]
fn p2p_and_conference_membership_do_not_mix() {
    let hub = Arc::new(Hub::in_memory());
    let c = plugin(&hub);
    let p2p = peer(1, ANT, JoinMode::Both);
    let (v, _) = run(&c, p2p, join("r1", None), &[p2p]);
    assert_eq!(refusal(&v), ErrorCode::Refused);
    let a = peer(2, ANT, JoinMode::Conference);
    run(&c, a, join("r1", Some("s1")), &[p2p]);
    let p2p_join = Event::Join(switchboard_plugin_api::event::Join {
        room: "r1".into(),
        mode: JoinMode::Both,
        token: None,
    });
    let (v, _) = run(&c, a, p2p_join, &[p2p, a]);
    assert_eq!(refusal(&v), ErrorCode::Refused);
    // P2P events of P2P peers pass through to the router.
    let leave = Event::Leave(Leave {
        room: "r1".into(),
        reason: LeaveReason::Leave,
    });
    let (v, _) = run(&c, p2p, leave, &[p2p, a]);
    assert_eq!(v, Verdict::Continue);
}

#[test]
fn canonical_example_config_builds() {
    let text = include_str!("../../../config/plugins/conference.toml");
    let doc: toml::Table = toml::from_str(text).expect("example is TOML");
    let plugin = &doc["plugin"].as_array().expect("[[plugin]]")[0];
    assert_eq!(plugin["type"].as_str(), Some("conference"));
    let settings = plugin["settings"].as_table().expect("settings");
    let factory = ConferenceFactory::new(Arc::new(Hub::in_memory()));
    assert!(factory.build(settings).is_ok());
    assert!(factory.build(&toml::Table::new()).is_ok(), "defaults");
    let bad: toml::Table = toml::from_str("max_track_count = 0\nextra = 1").expect("TOML");
    assert!(factory.build(&bad).is_err());
}

#[test]
fn joins_of_any_dialect_into_a_conference_room_are_held_to_join_room() {
    use switchboard_plugin_api::event::Join;
    let secret = "s".repeat(32);
    let hub = Arc::new(Hub::open(
        HubOptions {
            store: None,
            apps: vec![AppSecurityConfig {
                join_room: TokenCheck::Jwt,
                jwt_secret: Some(secret.clone()),
                ..AppSecurityConfig::unchecked("LiveApp")
            }],
            shared: None,
        },
        0,
    ));
    let c = plugin(&hub);
    let p2p_join = |room: &str, token: Option<String>| {
        Event::Join(Join {
            room: room.into(),
            mode: JoinMode::Both,
            token,
        })
    };
    let participant = peer(1, ANT, JoinMode::Conference);
    for dialect in [ANT, DialectKind::Raw, DialectKind::Socketio] {
        let joiner = peer(2, dialect, JoinMode::Both);
        // A room with a participant is a conference room: no token, no entry.
        let (v, _) = run(&c, joiner, p2p_join("conf", None), &[participant]);
        assert!(
            matches!(&v, Verdict::Refuse(r) if r.code == ErrorCode::Unauthorized),
            "{dialect:?}: {v:?}"
        );
        let token = sign_jwt("conf", TokenType::Play, now() + 60, &secret);
        let (v, _) = run(&c, joiner, p2p_join("conf", Some(token)), &[participant]);
        assert_eq!(v, Verdict::Continue, "{dialect:?}");
        // A P2P room is not this plugin's.
        let (v, _) = run(&c, joiner, p2p_join("p2p", None), &[]);
        assert_eq!(v, Verdict::Continue, "{dialect:?}");
    }
}
