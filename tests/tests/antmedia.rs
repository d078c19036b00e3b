//! Ant Media P2P over real WebSockets: every rule of antmedia.md 4.1, and the 4.2 session bytes.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use switchboard_tests::{TestGateway, WsClient, field};

fn join(room: &str) -> Value {
    json!({"command":"join","streamId":room,"multiPeer":false,"mode":"both"})
}

async fn joined_pair(gw: &TestGateway, room: &str) -> (WsClient, WsClient) {
    let mut a = WsClient::connect(&format!("{}?target=origin", gw.ant_url("LiveApp"))).await;
    a.send_json(join(room)).await;
    assert_eq!(
        a.recv_text().await,
        format!(r#"{{"command":"notification","definition":"joined","streamId":"{room}"}}"#)
    );
    let mut b = WsClient::connect(&gw.ant_url("LiveApp")).await;
    b.send_json(join(room)).await;
    assert_eq!(
        a.recv_text().await,
        format!(r#"{{"command":"start","streamId":"{room}"}}"#)
    );
    assert_eq!(
        b.recv_text().await,
        format!(r#"{{"command":"notification","definition":"joined","streamId":"{room}"}}"#)
    );
    (a, b)
}

/// The two-peer session of antmedia.md 4.2, byte for byte on the server side.
#[tokio::test]
async fn two_peer_session_matches_the_captured_bytes() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = joined_pair(&gw, "room1").await;

    let offer_sdp = "v=0\r\no=- 3057583230842636777 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n";
    a.send_json(
        json!({"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":offer_sdp}),
    )
    .await;
    let relayed = b.recv_json().await;
    assert_eq!(
        relayed,
        json!({"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":offer_sdp,"idMapping":{}})
    );

    let candidate = r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"candidate:835302670 1 udp 2122194687 192.0.2.2 56557 typ host generation 0 ufrag dK+1 network-id 1"}"#;
    a.send_text(candidate).await;
    assert_eq!(
        b.recv_text().await,
        candidate,
        "Ant-to-Ant candidates are relayed unchanged"
    );

    b.send_json(json!({"command":"takeConfiguration","streamId":"room1","type":"answer","sdp":"v=0\r\nanswer\r\n"})).await;
    assert_eq!(field(&a.recv_json().await, "type"), "answer");

    a.send_json(json!({"command":"ping"})).await;
    assert_eq!(a.recv_text().await, r#"{"command":"pong"}"#);

    let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
    c.send_json(join("room1")).await;
    assert_eq!(
        c.recv_text().await,
        r#"{"command":"error","definition":"NoSpaceForNewPeer","streamId":"room1"}"#
    );

    a.send_json(json!({"command":"leave","streamId":"room1"}))
        .await;
    assert_eq!(
        b.recv_text().await,
        r#"{"command":"stop","streamId":"room1"}"#
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"command":"notification","definition":"leaved","streamId":"room1"}"#
    );
    gw.stop().await;
}

#[tokio::test]
async fn peer_message_is_relayed_with_stream_id() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = joined_pair(&gw, "pm").await;
    let msg = r#"{"command":"peerMessageCommand","streamId":"pm","definition":"myDefinition","data":{"n":[1,2]}}"#;
    b.send_text(msg).await;
    assert_eq!(a.recv_text().await, msg);
    gw.stop().await;
}

#[tokio::test]
async fn candidate_label_stays_a_number_and_offer_gains_id_mapping() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = joined_pair(&gw, "lbl").await;
    b.send_json(
        json!({"command":"takeCandidate","streamId":"lbl","label":2,"id":"2","candidate":""}),
    )
    .await;
    let got = a.recv_json().await;
    assert_eq!(got["label"], json!(2));
    assert!(got["label"].is_number());
    assert_eq!(got["candidate"], json!(""));
    gw.stop().await;
}

#[tokio::test]
async fn stop_and_socket_close_count_as_leave_and_the_room_can_be_rejoined() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = joined_pair(&gw, "rejoin").await;

    // `stop` hangs up: the partner gets `stop`, the sender no acknowledgement.
    b.send_json(json!({"command":"stop","streamId":"rejoin"}))
        .await;
    assert_eq!(
        a.recv_text().await,
        r#"{"command":"stop","streamId":"rejoin"}"#
    );
    b.expect_silence(200).await;

    // B re-joins on the same socket: A, waiting, becomes the offerer again.
    b.send_json(join("rejoin")).await;
    assert_eq!(
        a.recv_text().await,
        r#"{"command":"start","streamId":"rejoin"}"#
    );
    assert_eq!(field(&b.recv_json().await, "definition"), "joined");

    // Closing the socket is a leave too.
    a.close().await;
    assert_eq!(
        b.recv_text().await,
        r#"{"command":"stop","streamId":"rejoin"}"#
    );

    // A new peer can join and B, now waiting, gets `start`.
    let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
    c.send_json(join("rejoin")).await;
    assert_eq!(
        b.recv_text().await,
        r#"{"command":"start","streamId":"rejoin"}"#
    );
    assert_eq!(field(&c.recv_json().await, "definition"), "joined");
    gw.stop().await;
}

#[tokio::test]
async fn rooms_are_global_across_app_names() {
    let gw = TestGateway::start().await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    a.send_json(join("global")).await;
    a.recv_text().await;
    let mut b = WsClient::connect(&gw.ant_url("WebRTCAppEE")).await;
    b.send_json(join("global")).await;
    assert_eq!(field(&a.recv_json().await, "command"), "start");
    gw.stop().await;
}

#[tokio::test]
async fn play_only_waiting_peer_lets_the_joiner_offer() {
    let gw = TestGateway::start().await;
    let mut player = WsClient::connect(&gw.ant_url("LiveApp")).await;
    player
        .send_json(json!({"command":"join","streamId":"play1","multiPeer":false,"mode":"play"}))
        .await;
    player.recv_text().await;
    let mut both = WsClient::connect(&gw.ant_url("LiveApp")).await;
    both.send_json(join("play1")).await;
    let mut got = [both.recv_json().await, both.recv_json().await];
    got.sort_by_key(|v| v["command"].as_str().unwrap_or_default().to_owned());
    assert_eq!(field(&got[0], "definition"), "joined");
    assert_eq!(got[1], json!({"command":"start","streamId":"play1"}));
    player.expect_silence(200).await;
    gw.stop().await;
}

#[tokio::test]
async fn housekeeping_commands_and_errors() {
    let gw = TestGateway::start().await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;

    a.send_json(json!({"command":"getIceServerConfig"})).await;
    let ice = a.recv_json().await;
    assert_eq!(
        field(&ice, "command"),
        "iceServerConfig",
        "never noStreamNameSpecified: {ice}"
    );

    a.send_json(json!({"command":"join"})).await;
    assert_eq!(
        a.recv_text().await,
        r#"{"command":"error","definition":"noStreamNameSpecified"}"#
    );
    a.send_json(json!({"command":"join","streamId":""})).await;
    assert_eq!(
        field(&a.recv_json().await, "definition"),
        "noStreamNameSpecified"
    );

    a.send_json(json!({"command":"join","streamId":"bad room!"}))
        .await;
    let err = a.recv_json().await;
    assert_eq!(field(&err, "definition"), "invalidStreamName");
    assert_eq!(field(&err, "streamId"), "bad room!");

    a.send_json(
        json!({"command":"takeConfiguration","streamId":"nobody","type":"offer","sdp":"v=0"}),
    )
    .await;
    assert_eq!(
        field(&a.recv_json().await, "definition"),
        "no_peer_associated_before"
    );
    a.send_json(json!({"command":"leave","streamId":"nobody"}))
        .await;
    assert_eq!(
        field(&a.recv_json().await, "definition"),
        "no_peer_associated_before"
    );

    a.send_json(json!({"command":"join","streamId":"alone"}))
        .await;
    a.recv_text().await;
    a.send_json(
        json!({"command":"takeCandidate","streamId":"alone","label":0,"id":"0","candidate":"x"}),
    )
    .await;
    assert_eq!(
        field(&a.recv_json().await, "definition"),
        "no_peer_associated_before"
    );

    a.send_json(json!({"command":"frobnicate","streamId":"alone"}))
        .await;
    let err = a.recv_json().await;
    assert_eq!(field(&err, "command"), "error");
    assert!(field(&err, "information").contains("frobnicate"), "{err}");

    a.send_json(json!({"command":"publish","streamId":"alone"}))
        .await;
    let err = a.recv_json().await;
    assert_eq!(field(&err, "command"), "error");
    assert!(field(&err, "information").contains("conference"), "{err}");

    // The connection is still usable after all of that.
    a.send_json(json!({"command":"ping"})).await;
    assert_eq!(a.recv_text().await, r#"{"command":"pong"}"#);
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() {
    let gw = TestGateway::start().await;
    let (mut a, _b) = joined_pair(&gw, "bye").await;
    gw.stop().await;
    let frame = a.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
}
