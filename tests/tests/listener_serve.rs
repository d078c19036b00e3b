//! `serve = [...]` on `[[listener]]`: the production layout of docs/operations.md, a public
//! listener with signaling only and an internal one with metrics, admin, REST and health. Each
//! route answers on the listener that serves it and 404s on the other.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use serde_json::json;
use switchboard_tests::{TestGateway, WsClient, http_get, http_with_headers};

const TOKEN: &str = "an-admin-token-of-32-bytes-or-so";

/// Public first (`gw.main`), internal second (`gw.classic`).
fn layout() -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
serve = ["signaling"]

[[listener]]
bind = "127.0.0.1:0"
serve = ["metrics", "admin", "rest", "health"]

[admin]
token = "{TOKEN}"

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "room-router"
"#
    )
}

const REST_LIST: &str = "/LiveApp/rest/v2/broadcasts/conference-rooms/list/0/10";

async fn admin_stats(addr: SocketAddr) -> u16 {
    let auth = format!("Bearer {TOKEN}");
    http_with_headers(addr, "GET", "/api/stats", &[("Authorization", &auth)])
        .await
        .0
}

#[tokio::test]
async fn public_listener_serves_signaling_and_nothing_else() {
    let gw = TestGateway::with_config(&layout()).await;
    let public = gw.main;
    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/admin/",
        REST_LIST,
        "/",
        "/ant.html",
        "/peer.html",
    ] {
        assert_eq!(
            http_get(public, path).await.0,
            404,
            "{path} on the public listener"
        );
    }
    assert_eq!(
        admin_stats(public).await,
        404,
        "admin API with a valid token"
    );

    // Every dialect still works there: Ant, raw and socket.io (engine.io handshake).
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_json(json!({"command":"ping"})).await;
    assert_eq!(ant.recv_json().await["command"], "pong");
    let mut raw = WsClient::connect(&gw.raw_url("serve-r1")).await;
    assert_eq!(raw.recv_json().await["type"], "switchboard.joined");
    let (status, body) = http_get(public, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sid\""), "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn internal_listener_serves_operations_and_no_signaling() {
    let gw = TestGateway::with_config(&layout()).await;
    let internal = gw.classic.unwrap();
    assert_eq!(
        http_get(internal, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(http_get(internal, "/readyz").await.0, 200);
    let (status, metrics) = http_get(internal, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE switchboard_rooms gauge"),
        "{metrics}"
    );
    assert_eq!(admin_stats(internal).await, 200);
    assert_eq!(http_get(internal, "/admin/").await.0, 200);
    let (status, body) = http_get(internal, REST_LIST).await;
    assert_eq!(status, 200, "REST without the antmedia dialect: {body}");

    for path in [
        "/",
        "/ant.html",
        "/socket.io/?EIO=4&transport=polling",
        "/socket.io/socket.io.js",
    ] {
        assert_eq!(
            http_get(internal, path).await.0,
            404,
            "{path} on the internal listener"
        );
    }
    let raw = WsClient::try_connect(&format!("ws://{internal}/ws/serve-r2"), &[]).await;
    assert_eq!(
        raw.err().map(|e| e.0),
        Some(404),
        "raw upgrade on the internal listener"
    );
    let ant = WsClient::try_connect(&format!("ws://{internal}/LiveApp/websocket"), &[]).await;
    assert_eq!(
        ant.err().map(|e| e.0),
        Some(404),
        "Ant upgrade on the internal listener"
    );
    gw.stop().await;
}

/// The shipped default config keeps the classic tutorial port to the tutorial: its page, the
/// socket.io relay and health, no metrics or admin.
#[test]
fn default_config_keeps_operations_off_the_classic_port() {
    use switchboard::config::Service;
    let config = switchboard::GatewayConfig::embedded_default();
    let classic = config
        .listeners
        .iter()
        .find(|l| l.bind.port() == 7000)
        .unwrap();
    for service in [Service::Metrics, Service::Admin, Service::Rest] {
        assert!(!classic.serves(service), "{service:?} on port 7000");
    }
    assert!(classic.serves(Service::Signaling) && classic.serves(Service::Pages));
}
