//! Hostile input: every dialect answers in its own terms, and nobody else notices.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchboard_tests::{TestGateway, WsClient, field};

/// A pair that keeps relaying while someone else misbehaves.
async fn healthy_pair(gw: &TestGateway) -> (WsClient, WsClient) {
    let mut a = WsClient::connect(&gw.raw_url("healthy")).await;
    a.recv_text().await;
    let mut b = WsClient::connect(&gw.raw_url("healthy")).await;
    a.recv_text().await;
    b.recv_text().await;
    b.recv_text().await;
    (a, b)
}

async fn assert_still_relaying(a: &mut WsClient, b: &mut WsClient) {
    a.send_text("still there?").await;
    assert_eq!(b.recv_text().await, "still there?");
}

#[tokio::test]
async fn ant_peer_gets_clear_errors_and_keeps_its_connection() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = healthy_pair(&gw).await;
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let cases: &[(&str, &str)] = &[
        ("{not json", "malformed_message"),
        ("[1,2,3]", "malformed_message"),
        ("42", "malformed_message"),
        ("null", "malformed_message"),
        (r#"{"streamId":"x"}"#, "unknown_command"),
        (r#"{"command":7}"#, "unknown_command"),
        (r#"{"command":"join","streamId":12}"#, "invalid_field"),
        (
            r#"{"command":"join","streamId":"r","mode":5}"#,
            "invalid_field",
        ),
        (
            r#"{"command":"takeCandidate","streamId":"r","label":"zero","candidate":"c"}"#,
            "invalid_field",
        ),
        (
            r#"{"command":"takeConfiguration","streamId":"r","type":"offer","sdp":{"x":1}}"#,
            "invalid_field",
        ),
    ];
    for (frame, definition) in cases {
        ant.send_text(frame).await;
        let err = ant.recv_json().await;
        assert_eq!(field(&err, "command"), "error", "{frame}");
        assert_eq!(field(&err, "definition"), *definition, "{frame} -> {err}");
    }
    let deep = format!(
        "{}{}",
        r#"{"command":"ping","x":"#.to_owned() + &"[".repeat(5000),
        "]".repeat(5000) + "}"
    );
    ant.send_text(&deep).await;
    assert_eq!(
        field(&ant.recv_json().await, "definition"),
        "malformed_message"
    );

    ant.send_binary(vec![0, 1, 2, 255]).await;
    assert_eq!(
        field(&ant.recv_json().await, "definition"),
        "binary_not_supported"
    );

    ant.send_json(json!({"command":"ping"})).await;
    assert_eq!(ant.recv_text().await, r#"{"command":"pong"}"#);
    assert_still_relaying(&mut a, &mut b).await;
    gw.stop().await;
}

#[tokio::test]
async fn an_ant_offer_of_80_kb_fits_and_an_oversized_frame_closes_with_1009() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = healthy_pair(&gw).await;
    let mut x = WsClient::connect(&gw.ant_url("LiveApp")).await;
    x.send_json(json!({"command":"join","streamId":"big"}))
        .await;
    x.recv_text().await;
    let mut y = WsClient::connect(&gw.ant_url("LiveApp")).await;
    y.send_json(json!({"command":"join","streamId":"big"}))
        .await;
    x.recv_text().await;
    y.recv_text().await;

    let sdp = format!("v=0\r\n{}", "a=x\r\n".repeat(80 * 1024 / 5));
    x.send_json(json!({"command":"takeConfiguration","streamId":"big","type":"offer","sdp":sdp}))
        .await;
    assert_eq!(
        y.recv_json().await["sdp"].as_str().unwrap().len(),
        sdp.len()
    );

    let huge = "x".repeat(300 * 1024);
    x.send_json(
        json!({"command":"peerMessageCommand","streamId":"big","definition":"d","data":huge}),
    )
    .await;
    let frame = x.recv_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), 1009);
    // Never relayed: the partner only learns that the sender left.
    assert_eq!(
        y.recv_text().await,
        r#"{"command":"stop","streamId":"big"}"#
    );
    assert_still_relaying(&mut a, &mut b).await;
    gw.stop().await;
}

#[tokio::test]
async fn raw_peer_gets_errors_for_binary_and_deep_json() {
    let gw = TestGateway::start().await;
    let (mut a, mut b) = healthy_pair(&gw).await;
    let mut r = WsClient::connect(&gw.raw_url("lonely")).await;
    r.recv_text().await;
    r.send_binary(vec![1, 2, 3]).await;
    assert_eq!(field(&r.recv_json().await, "code"), "binary_not_supported");
    r.send_text(&format!("{{\"a\":{}", "[".repeat(1000))).await;
    assert_eq!(field(&r.recv_json().await, "code"), "malformed_message");
    r.send_json(json!({"type":"offer","sdp":5})).await;
    assert_eq!(field(&r.recv_json().await, "code"), "invalid_field");
    assert_still_relaying(&mut a, &mut b).await;
    gw.stop().await;
}
