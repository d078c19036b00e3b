//! Plain HTTP endpoints: health, metrics, embedded pages.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchboard_tests::{TestGateway, WsClient, http_get};

#[tokio::test]
async fn healthz_and_metrics_count_sessions_and_refusals() {
    let gw = TestGateway::start().await;
    assert_eq!(
        http_get(gw.main, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_text("not json").await;
    ant.recv_text().await;
    ant.send_json(json!({"command":"ping"})).await;
    ant.recv_text().await;
    let (status, body) = http_get(gw.main, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"switchboard_sessions{dialect="antmedia"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"switchboard_errors_total{dialect="antmedia",reason="malformed_message"} 1"#
        ),
        "{body}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn pages_and_client_script_are_embedded() {
    let gw = TestGateway::start().await;
    for path in [
        "/",
        "/ant.html",
        "/conference.html",
        "/socketio.html",
        "/raw.html",
        "/peerjs.html",
        "/peer.html",
    ] {
        let (status, body) = http_get(gw.main, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.to_lowercase().contains("<!doctype html"), "{path}");
    }
    let (status, script) = http_get(gw.main, "/socket.io/socket.io.js").await;
    assert_eq!(status, 200);
    assert!(
        script.contains("Switchboard"),
        "our own client, not the npm bundle"
    );
    let classic = gw.classic.unwrap();
    assert_eq!(http_get(classic, "/peer.html").await.0, 200);
    assert_eq!(http_get(classic, "/socket.io/socket.io.js").await.0, 200);
    assert_eq!(
        http_get(classic, "/ant.html").await.0,
        404,
        "the classic listener serves only its page"
    );
    gw.stop().await;
}
