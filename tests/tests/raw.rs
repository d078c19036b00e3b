//! Raw WebSocket dialect: notices, verbatim relay between raw peers, room-full close.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchboard_tests::{TestGateway, WsClient, field};

#[tokio::test]
async fn raw_pair_gets_notices_and_relays_frames_verbatim() {
    let gw = TestGateway::start().await;
    let mut a = WsClient::connect(&gw.raw_url("r1")).await;
    assert_eq!(
        a.recv_json().await,
        json!({"type":"switchboard.joined","room":"r1"})
    );
    let mut b = WsClient::connect(&gw.raw_url("r1")).await;
    // The waiting raw peer offers (simple-peer initiator), the joiner answers.
    assert_eq!(
        a.recv_json().await,
        json!({"type":"switchboard.start","room":"r1"})
    );
    assert_eq!(
        b.recv_json().await,
        json!({"type":"switchboard.joined","room":"r1"})
    );
    assert_eq!(
        b.recv_json().await,
        json!({"type":"switchboard.peer-joined","room":"r1"})
    );

    // Recognized and unrecognized frames alike reach the raw partner byte-identical.
    for frame in [
        r#"{"type":"offer","sdp":"v=0\r\n","extra":  true}"#,
        r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        r#"{"type":"renegotiate","renegotiate":true}"#,
        "plain text, not JSON",
    ] {
        a.send_text(frame).await;
        assert_eq!(b.recv_text().await, frame);
    }
    b.close().await;
    assert_eq!(
        a.recv_json().await,
        json!({"type":"switchboard.peer-left","room":"r1"})
    );
    gw.stop().await;
}

#[tokio::test]
async fn third_raw_peer_is_closed_with_room_full() {
    let gw = TestGateway::start().await;
    let _a = WsClient::connect(&gw.raw_url("full")).await;
    let _b = WsClient::connect(&gw.raw_url("full")).await;
    let mut c = WsClient::connect(&gw.raw_url("full")).await;
    let err = c.recv_json().await;
    assert_eq!(field(&err, "type"), "switchboard.error");
    assert_eq!(field(&err, "code"), "room_full");
    let frame = c.recv_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 4409);
    gw.stop().await;
}

#[tokio::test]
async fn raw_and_ant_peers_bridge_with_the_ant_peer_offering() {
    let gw = TestGateway::start().await;
    let mut raw = WsClient::connect(&gw.raw_url("mixed")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_json(json!({"command":"join","streamId":"mixed","multiPeer":false,"mode":"both"}))
        .await;
    assert_eq!(
        raw.recv_json().await,
        json!({"type":"switchboard.peer-joined","room":"mixed"})
    );
    let mut ant_got = [ant.recv_json().await, ant.recv_json().await];
    ant_got.sort_by_key(|v| v["command"].as_str().unwrap_or_default().to_owned());
    assert_eq!(ant_got[1], json!({"command":"start","streamId":"mixed"}));

    ant.send_json(json!({"command":"takeConfiguration","streamId":"mixed","type":"offer","sdp":"v=0\r\nA\r\n"})).await;
    assert_eq!(
        raw.recv_json().await,
        json!({"type":"offer","sdp":"v=0\r\nA\r\n"})
    );
    ant.send_json(json!({"command":"takeCandidate","streamId":"mixed","label":1,"id":"1","candidate":"candidate:9 1 udp 5 127.0.0.1 7 typ host"})).await;
    assert_eq!(
        raw.recv_json().await,
        json!({"type":"candidate","candidate":{"candidate":"candidate:9 1 udp 5 127.0.0.1 7 typ host","sdpMid":"1","sdpMLineIndex":1}})
    );

    // simple-peer's answer and candidate shapes, and the other common shapes.
    raw.send_json(json!({"type":"answer","sdp":"v=0\r\nB\r\n"}))
        .await;
    assert_eq!(
        ant.recv_json().await,
        json!({"command":"takeConfiguration","streamId":"mixed","type":"answer","sdp":"v=0\r\nB\r\n","idMapping":{}})
    );
    raw.send_json(json!({"candidate":"candidate:2 1 udp 5 127.0.0.1 8 typ host","sdpMid":"0","sdpMLineIndex":0})).await;
    let cand = ant.recv_json().await;
    assert_eq!(cand["label"], json!(0));
    assert_eq!(
        field(&cand, "candidate"),
        "candidate:2 1 udp 5 127.0.0.1 8 typ host"
    );

    // An unrecognized raw frame cannot reach an Ant peer; the sender is told.
    raw.send_text(r#"{"type":"renegotiate","renegotiate":true}"#)
        .await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.error");
    ant.expect_silence(200).await;

    ant.send_json(json!({"command":"leave","streamId":"mixed"}))
        .await;
    assert_eq!(
        raw.recv_json().await,
        json!({"type":"switchboard.peer-left","room":"mixed"})
    );
    gw.stop().await;
}
