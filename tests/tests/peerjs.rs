//! The PeerJS endpoint with a WebSocket client speaking the `peerjs` 1.5 client's frames: the
//! `peer` server's registration (`OPEN`, `ID-TAKEN`, `ERROR`), `GET /peerjs/id`, relays between
//! PeerJS peers byte for byte as the `peer` server forwards them (the golden files recorded from
//! the real client and server), calls into rooms of other dialects, bad input answered in
//! PeerJS's own `ERROR` and counted once, and the gateway's limits.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::{Value, json};
use switchboard_tests::metrics::{errors, sample, scrape};
use switchboard_tests::{TestGateway, WsClient, field, http_get};

fn config(limits: &str, peerjs: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw", "peerjs"]
pages = "none"

[shutdown]
grace_period_secs = 2

[limits]
{limits}

[peerjs]
{peerjs}

[[plugin]]
type = "room-router"
"#
    )
}

async fn gateway() -> TestGateway {
    TestGateway::with_config(&config("", "")).await
}

/// The WebSocket URL the `peerjs` client builds for `id` (path `/` and key `peerjs`).
fn peer_url(gw: &TestGateway, id: &str) -> String {
    format!(
        "ws://{}/peerjs?key=peerjs&id={id}&token=tok{id}&version=1.5.5",
        gw.main
    )
}

/// A registered PeerJS connection (its `OPEN` read).
async fn register(gw: &TestGateway, id: &str) -> WsClient {
    let mut ws = WsClient::connect(&peer_url(gw, id)).await;
    assert_eq!(ws.recv_text().await, r#"{"type":"OPEN"}"#, "{id} registers");
    ws
}

/// A golden frame recorded from the real client and server (protocol/tests/golden/peerjs).
fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocol/tests/golden/peerjs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

/// A refusal before the session: the `peer` server's message, then a close with `code`.
async fn refused(url: &str, message: &str, code: u16) {
    let mut ws = WsClient::connect(url).await;
    assert_eq!(ws.recv_text().await, message, "{url}");
    let close = ws.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), code, "{url}");
}

#[tokio::test]
async fn registration_is_the_peer_servers() {
    let gw = gateway().await;
    let mut alice = register(&gw, "alice").await;
    let taken = r#"{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}"#;
    refused(&peer_url(&gw, "alice"), taken, 4403).await;
    let bad_key = format!(
        "ws://{}/peerjs?key=other&id=carol&token=t&version=1.5.5",
        gw.main
    );
    let invalid_key = r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#;
    refused(&bad_key, invalid_key, 4403).await;
    let no_token = format!("ws://{}/peerjs?key=peerjs&id=carol", gw.main);
    let missing =
        r#"{"type":"ERROR","payload":{"msg":"No id, token, or key supplied to websocket server"}}"#;
    refused(&no_token, missing, 4400).await;
    for bad_id in ["a..b", "-a", "a%20%20b", &"x".repeat(129)] {
        let mut ws = WsClient::connect(&peer_url(&gw, bad_id)).await;
        let error: Value = serde_json::from_str(&ws.recv_text().await).unwrap();
        assert_eq!(error["type"], "ERROR", "{bad_id}");
        assert!(field(&error["payload"], "msg").starts_with("ID is invalid"));
        assert_eq!(u16::from(ws.recv_close().await.unwrap().code), 4400);
    }
    // The id is taken while its socket is open, and only then.
    alice.send_text(r#"{"type":"HEARTBEAT"}"#).await;
    alice.expect_silence(200).await;
    alice.close().await;
    let mut again = None;
    for _ in 0..50 {
        let mut ws = WsClient::connect(&peer_url(&gw, "alice")).await;
        if ws.recv_text().await == r#"{"type":"OPEN"}"# {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        again.is_some(),
        "alice is free again once her socket closed"
    );
    // A page with `path: "/peerjs"` (a server mounted there) reaches /peerjs/peerjs.
    let mounted = format!(
        "ws://{}/peerjs/peerjs?key=peerjs&id=dave&token=t&version=1.5.5",
        gw.main
    );
    let mut dave = WsClient::connect(&mounted).await;
    assert_eq!(dave.recv_text().await, r#"{"type":"OPEN"}"#);
    // Each refusal counted once.
    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("peerjs", "id_taken")), 1);
    assert_eq!(sample(&m, &errors("peerjs", "invalid_key")), 1);
    assert_eq!(sample(&m, &errors("peerjs", "missing_parameters")), 1);
    assert_eq!(sample(&m, &errors("peerjs", "invalid_room")), 4);
}

#[tokio::test]
async fn ids_are_handed_out_at_the_peer_servers_paths() {
    let gw = gateway().await;
    let uuid = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
            && parts[2].starts_with('4')
    };
    let (status, first) = http_get(gw.main, "/peerjs/id?ts=1&version=1.5.5").await;
    assert_eq!(status, 200);
    assert!(uuid(&first), "{first}");
    let (status, second) = http_get(gw.main, "/peerjs/peerjs/id?ts=2&version=1.5.5").await;
    assert_eq!(status, 200);
    assert!(uuid(&second), "{second}");
    assert_ne!(first, second);
    // A handed-out id registers like a chosen one.
    register(&gw, &first).await;
    let (status, _) = http_get(gw.main, "/peerjs/peers").await;
    assert_eq!(status, 401, "no discovery, as the peer server by default");

    // Another key moves the id route and is required on the socket.
    let other = TestGateway::with_config(&config("", r#"key = "myapp""#)).await;
    assert_eq!(http_get(other.main, "/myapp/id").await.0, 200);
    assert_eq!(http_get(other.main, "/peerjs/id").await.0, 404);
    let wrong = format!("ws://{}/peerjs?key=peerjs&id=x&token=t", other.main);
    let invalid_key = r#"{"type":"ERROR","payload":{"msg":"Invalid key provided"}}"#;
    refused(&wrong, invalid_key, 4403).await;
    let right = format!("ws://{}/peerjs?key=myapp&id=x&token=t", other.main);
    let mut ws = WsClient::connect(&right).await;
    assert_eq!(ws.recv_text().await, r#"{"type":"OPEN"}"#);
}

#[tokio::test]
async fn two_peerjs_peers_relay_as_the_peer_server_does() {
    let gw = gateway().await;
    let mut alice = register(&gw, "alice").await;
    let mut bob = register(&gw, "bob").await;
    // What the real client sent, and what the real `peer` server forwarded, byte for byte:
    // a media call and a data connection.
    for case in [
        "fwd_offer_media",
        "fwd_candidate_media",
        "fwd_offer_data",
        "fwd_candidate_data",
    ] {
        alice
            .send_text(&golden(&format!("{case}.original.wire.json")))
            .await;
        let expected = golden(&format!("{case}.expected.wire.json"));
        assert_eq!(bob.recv_text().await, expected, "{case}");
    }
    // Bob answers: to alice, from bob, the payload untouched.
    let answer = golden("answer_media.wire.json");
    bob.send_text(&answer).await;
    let got: Value = serde_json::from_str(&alice.recv_text().await).unwrap();
    let sent: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(got["type"], "ANSWER");
    assert_eq!(got["src"], "bob");
    assert_eq!(got["dst"], "alice");
    assert_eq!(got["payload"], sent["payload"]);
    // A claimed `src` is replaced by the sender's id.
    bob.send_text(r#"{"type":"LEAVE","src":"mallory","dst":"alice"}"#)
        .await;
    assert_eq!(
        alice.recv_text().await,
        r#"{"type":"LEAVE","src":"bob","dst":"alice"}"#
    );
    alice.expect_silence(200).await;
    bob.expect_silence(200).await;
}

#[tokio::test]
async fn a_call_to_nobody_expires_and_the_connection_stays() {
    let gw = gateway().await;
    let mut alice = register(&gw, "alice").await;
    let offer = json!({
        "type": "OFFER",
        "payload": {"sdp": {"sdp": "v=0\r\n", "type": "offer"}, "type": "media", "connectionId": "mc_1"},
        "dst": "nobody"
    });
    alice.send_json(offer.clone()).await;
    let expire: Value = alice.recv_json().await;
    assert_eq!(expire["type"], "EXPIRE");
    assert_eq!(expire["src"], "nobody");
    assert_eq!(expire["dst"], "alice");
    assert!(!field(&expire["payload"], "msg").is_empty());
    // Still registered and able to call.
    let mut bob = register(&gw, "bob").await;
    let mut to_bob = offer;
    to_bob["dst"] = json!("bob");
    alice.send_json(to_bob).await;
    let got = bob.recv_json().await;
    assert_eq!(got["type"], "OFFER");
    assert_eq!(got["src"], "alice");
}

#[tokio::test]
async fn a_peerjs_caller_meets_a_raw_peer_in_the_room_it_calls() {
    let gw = gateway().await;
    let mut raw = WsClient::connect(&gw.raw_url("r1")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    let mut alice = register(&gw, "alice").await;
    alice
        .send_text(&golden("fwd_offer_media.original.wire.json").replace("\"bob\"", "\"r1\""))
        .await;
    // The raw peer is told a partner arrived who offers, then gets the offer, simple-peer style.
    assert_eq!(
        field(&raw.recv_json().await, "type"),
        "switchboard.peer-joined"
    );
    let offer = raw.recv_json().await;
    assert_eq!(field(&offer, "type"), "offer");
    assert!(field(&offer, "sdp").starts_with("v=0\r\n"));
    raw.send_json(json!({"type": "answer", "sdp": "v=0\r\nanswer\r\n"}))
        .await;
    let answer = alice.recv_json().await;
    assert_eq!(
        answer,
        json!({
            "type": "ANSWER", "src": "r1", "dst": "alice",
            "payload": {"sdp": {"sdp": "v=0\r\nanswer\r\n", "type": "answer"}, "type": "media", "connectionId": "mc_7qoezz5moaw"}
        })
    );
    raw.send_json(json!({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}))
        .await;
    let candidate = alice.recv_json().await;
    assert_eq!(candidate["type"], "CANDIDATE");
    assert_eq!(candidate["src"], "r1");
    assert_eq!(candidate["payload"]["connectionId"], "mc_7qoezz5moaw");
    assert_eq!(
        candidate["payload"]["candidate"],
        json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0})
    );
    raw.close().await;
    assert_eq!(
        alice.recv_text().await,
        r#"{"type":"LEAVE","src":"r1","dst":"alice"}"#
    );
}

#[tokio::test]
async fn bad_input_gets_peerjs_errors_counted_once_and_nobody_else_notices() {
    let gw = gateway().await;
    let mut alice = register(&gw, "alice").await;
    let mut bob = register(&gw, "bob").await;
    let mut mallory = register(&gw, "mallory").await;
    let cases: &[(&str, &str)] = &[
        ("{not json", "malformed_message"),
        ("[1,2]", "malformed_message"),
        (r#"{"type":"CALL","dst":"bob"}"#, "unknown_command"),
        (r#"{"dst":"bob"}"#, "invalid_field"),
        (r#"{"type":"OFFER","dst":"bob"}"#, "invalid_field"),
        (
            r#"{"type":"OFFER","dst":"bob","payload":{"sdp":{"sdp":"v=0","type":"answer"}}}"#,
            "invalid_field",
        ),
        (
            r#"{"type":"CANDIDATE","dst":"","payload":{"candidate":{"candidate":"c"}}}"#,
            "invalid_field",
        ),
    ];
    for (frame, code) in cases {
        mallory.send_text(frame).await;
        let error = mallory.recv_json().await;
        assert_eq!(error["type"], "ERROR", "{frame}");
        let msg = field(&error["payload"], "msg");
        assert!(msg.starts_with(&format!("{code}: ")), "{frame} -> {msg}");
    }
    mallory.send_binary(vec![1, 2, 3]).await;
    let error = mallory.recv_json().await;
    assert!(field(&error["payload"], "msg").starts_with("binary_not_supported: "));
    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("peerjs", "malformed_message")), 2);
    assert_eq!(sample(&m, &errors("peerjs", "unknown_command")), 1);
    assert_eq!(sample(&m, &errors("peerjs", "invalid_field")), 4);
    // An oversized frame closes only its sender.
    let big = format!(
        r#"{{"type":"OFFER","dst":"bob","payload":{{"sdp":{{"sdp":"{}","type":"offer"}}}}}}"#,
        "a".repeat(200 * 1024)
    );
    mallory.send_text(&big).await;
    let close = mallory.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    bob.expect_silence(100).await;
    // alice and bob relay as before; the gateway is healthy.
    alice
        .send_text(&golden("fwd_offer_media.original.wire.json"))
        .await;
    assert_eq!(
        bob.recv_text().await,
        golden("fwd_offer_media.expected.wire.json")
    );
    assert_eq!(http_get(gw.main, "/healthz").await.0, 200);
    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("peerjs", "frame_too_large")), 1);
}

#[tokio::test]
async fn the_gateways_limits_hold_for_peerjs() {
    let gw = TestGateway::with_config(&config(
        "max_connections_per_ip = 2\nmax_rooms_per_session = 2\n\
         messages_per_sec = 0.5\nmessage_burst = 4\nrate_limit_close_after = 100",
        "",
    ))
    .await;
    let mut alice = register(&gw, "alice").await;
    let _bob = register(&gw, "bob").await;
    // The per-IP cap refuses the third connection before the upgrade.
    let refused = WsClient::try_connect(&peer_url(&gw, "carol"), &[]).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(429));
    // Own room + one called room fill the session's two rooms; a third id is refused.
    let offer = |dst: &str| {
        json!({"type": "OFFER", "dst": dst,
               "payload": {"sdp": {"sdp": "v=0\r\n", "type": "offer"}, "type": "media", "connectionId": "mc_1"}})
    };
    alice.send_json(offer("bob")).await;
    alice.send_json(offer("r2")).await;
    let expire = alice.recv_json().await;
    assert_eq!(expire["type"], "EXPIRE", "{expire}");
    assert_eq!(expire["src"], "r2");
    assert!(
        field(&expire["payload"], "msg").contains("rooms"),
        "{expire}"
    );
    // The message rate: past the burst, frames are dropped with an error.
    let mut limited = false;
    for _ in 0..6 {
        alice.send_text(r#"{"type":"HEARTBEAT"}"#).await;
    }
    for _ in 0..6 {
        match tokio::time::timeout(std::time::Duration::from_millis(500), alice.recv_json()).await {
            Ok(v) if field(&v["payload"], "msg").starts_with("rate_limited: ") => {
                limited = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(
        limited,
        "a PeerJS peer past the burst is told it is rate limited"
    );
}
