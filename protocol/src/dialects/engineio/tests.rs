use serde_json::json;

use super::*;
use crate::{ErrorCode, Opaque, SdpKind};

fn connected() -> EngineState {
    EngineState {
        room: "room1".into(),
        connected: true,
        ..EngineState::default()
    }
}

fn relayable(state: &mut EngineState, frame: &str) -> (Decoded<String>, Option<String>) {
    let (decoded, original) = SocketIoWs::decode_relayable(state, frame).expect("decodes");
    (decoded, original.map(Cow::into_owned))
}

#[test]
fn the_open_packet_announces_the_session_and_its_limits() {
    let state = EngineState {
        engine_sid: "e1".into(),
        max_payload: 1000,
        ..EngineState::default()
    };
    let open = SocketIoWs::greeting(&state).expect("an open packet");
    let body: Value = serde_json::from_str(&open[1..]).expect("JSON after the type");
    assert!(open.starts_with('0'));
    assert_eq!(
        body,
        json!({"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000})
    );
}

#[test]
fn a_long_polling_session_s_open_packet_offers_the_upgrade() {
    let state = EngineState {
        engine_sid: "p1".into(),
        max_payload: 1000,
        polling: true,
        ..EngineState::default()
    };
    let open = SocketIoWs::greeting(&state).expect("an open packet");
    let body: Value = serde_json::from_str(&open[1..]).expect("JSON after the type");
    assert_eq!(body["upgrades"], json!(["websocket"]));
    assert_eq!(body["maxPayload"], json!(1000));
}

#[test]
fn a_connect_to_the_main_namespace_joins_the_handshake_room() {
    let mut state = EngineState {
        room: "r".into(),
        token: Some("t".into()),
        socket_sid: "s1".into(),
        ..EngineState::default()
    };
    // The connect's `auth` token (socket.io v4 `io(url, {auth: {token}})`) wins over the
    // query's; an auth payload without a usable token leaves the query's.
    for (frame, token) in [
        ("40", "t"),
        (r#"40{"token":"from-auth"}"#, "from-auth"),
        (r#"40{"token":""}"#, "t"),
        (r#"40{"other":1}"#, "t"),
        ("40not json", "t"),
    ] {
        let (decoded, original) = relayable(&mut state, frame);
        let join = Event::Join(Join {
            room: "r".into(),
            mode: JoinMode::Both,
            token: Some(token.into()),
        });
        assert_eq!(decoded, Decoded::Event(join));
        assert_eq!(original, None);
    }
    assert_eq!(
        SocketIoWs::joined(&mut state).as_deref(),
        Some(r#"40{"sid":"s1"}"#)
    );
    assert!(state.connected);
    // A second connect changes nothing.
    assert_eq!(relayable(&mut state, "40").0, Decoded::Ignore);
}

#[test]
fn a_connect_elsewhere_gets_the_invalid_namespace_error() {
    let mut state = EngineState::default();
    let (decoded, _) = relayable(&mut state, "40/admin,");
    assert_eq!(
        decoded,
        Decoded::Reply(r#"44/admin,{"message":"Invalid namespace"}"#.into())
    );
}

#[test]
fn a_refused_join_is_a_connect_error_and_nothing_else_goes_out_before_connect() {
    let state = EngineState::default();
    let error = Event::error(ErrorCode::RoomFull, Some("r"), "room r is full");
    let frame = SocketIoWs::encode(&state, &error).expect("a connect error");
    assert_eq!(frame, r#"44{"message":"room_full: room r is full"}"#);
    assert_eq!(SocketIoWs::encode(&state, &Event::ServerWillStop), None);
    assert_eq!(SocketIoWs::closing(&state), None);
}

#[test]
fn notices_go_out_on_the_switchboard_event_once_connected() {
    let state = connected();
    let frame = SocketIoWs::encode(&state, &Event::ServerWillStop).expect("a notice");
    assert_eq!(frame, r#"42["switchboard",{"type":"server-will-stop"}]"#);
    assert_eq!(SocketIoWs::closing(&state).as_deref(), Some("41"));
    let error = Event::error(ErrorCode::InvalidField, None, "bad");
    let frame = SocketIoWs::encode(&state, &error).expect("a notice");
    assert_eq!(
        frame,
        r#"42["switchboard",{"code":"invalid_field","message":"bad","room":"room1","type":"error"}]"#
    );
}

#[test]
fn a_simplep2p_msg_decodes_and_forwards_its_literal_unchanged() {
    let mut state = connected();
    let frame = r#"42["msg","{\"sdp\":{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}}"]"#;
    let (decoded, original) = relayable(&mut state, frame);
    let Decoded::Event(Event::Description(d)) = &decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!((d.kind, d.sdp.as_str()), (SdpKind::Offer, "v=0\r\n"));
    let literal = original.expect("a literal");
    assert_eq!(&literal, &frame[9..frame.len() - 1]);
    let Decoded::Event(event) = decoded else {
        unreachable!()
    };
    assert_eq!(
        SocketIoWs::forward(&state, &literal, &event).as_deref(),
        Some(frame)
    );
}

#[test]
fn other_msg_shapes_take_the_general_reader() {
    let mut state = connected();
    // An ack id, extra arguments, spacing: the same argument.
    for frame in [
        r#"421["msg","hello"]"#,
        r#"42["msg","hello",1]"#,
        r#"42[ "msg" , "hello" ]"#,
    ] {
        let (decoded, original) = relayable(&mut state, frame);
        let opaque = Event::Opaque(Opaque {
            room: "room1".into(),
            payload: "hello".into(),
        });
        assert_eq!(decoded, Decoded::Event(opaque), "{frame}");
        assert_eq!(original.as_deref(), Some(r#""hello""#), "{frame}");
    }
    // An object argument is forwarded as its JSON text in a string.
    let frame =
        r#"42["msg",{"candidate":{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}}]"#;
    let (decoded, original) = relayable(&mut state, frame);
    assert!(
        matches!(decoded, Decoded::Event(Event::Candidate(_))),
        "{decoded:?}"
    );
    let literal = original.expect("a literal");
    let text: String = serde_json::from_str(&literal).expect("a string literal");
    assert!(text.starts_with(r#"{"candidate":"#), "{text}");
}

#[test]
fn the_ice_servers_request_and_unknown_events() {
    let mut state = connected();
    let (decoded, _) = relayable(&mut state, r#"42["switchboard",{"type":"ice-servers"}]"#);
    assert_eq!(decoded, Decoded::Event(Event::IceServersRequest));
    assert_eq!(
        relayable(&mut state, r#"42["chat","hi"]"#).0,
        Decoded::Ignore
    );
    assert_eq!(relayable(&mut state, r#"431[]"#).0, Decoded::Ignore);
}

#[test]
fn events_before_the_connect_are_dropped() {
    let mut state = EngineState::default();
    assert_eq!(
        relayable(&mut state, r#"42["msg","hello"]"#).0,
        Decoded::Ignore
    );
}

#[test]
fn engine_packets() {
    let mut state = connected();
    assert_eq!(relayable(&mut state, "3").0, Decoded::Ignore);
    assert_eq!(relayable(&mut state, "6").0, Decoded::Ignore);
    assert_eq!(
        relayable(&mut state, "2probe").0,
        Decoded::Reply("3probe".into())
    );
    assert_eq!(relayable(&mut state, "1").0, Decoded::Close);
    assert_eq!(relayable(&mut state, "41").0, Decoded::Close);
    assert_eq!(relayable(&mut state, "41/admin,").0, Decoded::Ignore);
}

#[test]
fn bad_frames_are_typed_errors() {
    let mut state = connected();
    for (frame, code) in [
        ("", ErrorCode::InvalidField),
        ("9", ErrorCode::InvalidField),
        ("é", ErrorCode::InvalidField),
        ("4", ErrorCode::InvalidField),
        ("47", ErrorCode::InvalidField),
        ("42", ErrorCode::MalformedMessage),
        (r#"42["msg""#, ErrorCode::MalformedMessage),
        (r#"42[1,"x"]"#, ErrorCode::MalformedMessage),
        (r#"42["msg",5]"#, ErrorCode::InvalidField),
        (r#"42["msg"]"#, ErrorCode::InvalidField),
        (
            r#"451-["msg",{"_placeholder":true,"num":0}]"#,
            ErrorCode::InvalidField,
        ),
    ] {
        let error = SocketIoWs::decode(&mut state, frame).expect_err(frame);
        assert_eq!(error.code(), code, "{frame}: {error}");
    }
}

/// Found by the fuzzer: serde's errors quote strings whole, and a peer's string can be as long as
/// the frame limit. An escaped name cannot be borrowed, and event data that is one string is
/// the wrong type; neither may echo more than a bounded part of the input.
#[test]
fn errors_never_echo_a_long_string_whole() {
    let mut state = connected();
    let escaped_name = format!(r#"42["{}",1]"#, r"\u0041".repeat(400));
    let (decoded, _) = relayable(&mut state, &escaped_name);
    assert_eq!(
        decoded,
        Decoded::Ignore,
        "an unknown event, whatever its name"
    );
    let one_string = format!(r#"42"[{}",{{}}]"#, "\u{fffd}".repeat(400));
    let error = SocketIoWs::decode(&mut state, &one_string).expect_err("not an array");
    assert_eq!(error.code(), ErrorCode::MalformedMessage);
    assert!(error.to_string().len() <= 200, "{error}");
}

#[test]
fn only_events_count_against_the_message_rate() {
    for frame in ["3", "2", "6", "1", "40", r#"40{"a":1}"#, "41"] {
        assert!(!SocketIoWs::rate_limited(frame), "{frame}");
    }
    for frame in [r#"42["msg","x"]"#, "431[]", "45", "", "x", "{}"] {
        assert!(SocketIoWs::rate_limited(frame), "{frame}");
    }
}

fn v3() -> EngineState {
    EngineState {
        version: EngineVersion::V3,
        engine_sid: "e3".into(),
        room: "room1".into(),
        max_payload: 1000,
        polling: true,
        ..EngineState::default()
    }
}

#[test]
fn an_engine_io_3_open_packet_has_no_max_payload() {
    let open = SocketIoWs::greeting(&v3()).expect("an open packet");
    assert_eq!(
        open,
        r#"0{"sid":"e3","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}"#
    );
}

#[test]
fn an_engine_io_3_client_pings_and_the_server_only_answers() {
    let keepalive = SocketIoWs::keepalive(&v3()).expect("a keepalive");
    assert_eq!(keepalive.ping, None);
    assert_eq!(
        SocketIoWs::keepalive(&EngineState::default()).map(|k| k.ping),
        Some(Some("2"))
    );
    let mut state = v3();
    assert_eq!(
        SocketIoWs::decode(&mut state, "2").expect("a ping"),
        Decoded::Reply("3".into())
    );
}

#[test]
fn an_engine_io_3_connect_is_a_bare_40_and_a_refusal_a_json_string() {
    let mut state = v3();
    let refusal = Event::error(ErrorCode::RoomFull, Some("room1"), "room is full");
    assert_eq!(
        SocketIoWs::encode(&state, &refusal).as_deref(),
        Some(r#"44"room_full: room is full""#)
    );
    assert_eq!(SocketIoWs::joined(&mut state).as_deref(), Some("40"));
    assert!(state.connected);
    // A connect to a namespace the gateway does not have: socket.io 2's error shape.
    assert_eq!(
        SocketIoWs::decode(&mut state, "40/chat").expect("a connect"),
        Decoded::Reply(r#"44/chat,"Invalid namespace""#.into())
    );
}
