//! The admin API: disabled (404) without `[admin] token`, 401 without the right bearer token;
//! rooms with their members and dialects, one room, sessions, kicking a peer of each dialect
//! (closed in its own terms), and draining the node.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::{TestGateway, WsClient, field, http_with_headers, repo_root};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "admin-test-token-0123456789";

fn config(admin: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[shutdown]
grace_period_secs = 2

{admin}

[[plugin]]
type = "room-router"
"#
    )
}

async fn api(gw: &TestGateway, method: &str, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, body) =
        http_with_headers(gw.main, method, path, &[("Authorization", &auth)]).await;
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    };
    (status, value)
}

#[tokio::test]
async fn without_a_token_in_the_config_the_admin_api_does_not_exist() {
    let gw = TestGateway::with_config(&config("")).await;
    for path in ["/api/stats", "/api/rooms", "/api/sessions", "/admin/"] {
        let auth = format!("Bearer {TOKEN}");
        let (status, _) =
            http_with_headers(gw.main, "GET", path, &[("Authorization", &auth)]).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(
        http_with_headers(gw.main, "POST", "/api/drain", &[])
            .await
            .0,
        404
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let gw = TestGateway::with_config(&config(&format!("[admin]\ntoken = \"{TOKEN}\""))).await;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-0123456789xx")],
        vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
    ] {
        for (method, path) in [
            ("GET", "/api/rooms"),
            ("POST", "/api/drain"),
            ("DELETE", "/api/sessions/1"),
        ] {
            let (status, body) = http_with_headers(gw.main, method, path, &headers).await;
            assert_eq!(status, 401, "{method} {path} with {headers:?}: {body}");
        }
    }
    // The dashboard page holds no data; it asks for the token itself.
    let (status, page) = http_with_headers(gw.main, "GET", "/admin/", &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("sessionStorage"), "the dashboard page");
    assert_eq!(api(&gw, "GET", "/api/rooms").await.0, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_sessions_and_kicks_in_every_dialect() {
    let gw = TestGateway::with_config(&config(&format!("[admin]\ntoken = \"{TOKEN}\""))).await;
    let mut raw = WsClient::connect(&gw.raw_url("adm")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_json(json!({"command":"join","streamId":"adm","mode":"play"}))
        .await;
    assert_eq!(field(&ant.recv_json().await, "definition"), "joined");
    // The raw peer offers to the play-only Ant peer.
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.start");

    let (status, rooms) = api(&gw, "GET", "/api/rooms").await;
    assert_eq!(status, 200);
    let room = &rooms["rooms"][0];
    assert_eq!(room["room"], "adm", "{rooms}");
    let dialects: Vec<&str> = room["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dialect"].as_str().unwrap())
        .collect();
    assert_eq!(dialects, ["raw", "antmedia"]);
    assert_eq!(room["members"][1]["mode"], "play");

    let (status, one) = api(&gw, "GET", "/api/rooms/adm").await;
    assert_eq!(status, 200);
    assert_eq!(one["members"].as_array().unwrap().len(), 2);
    assert_eq!(api(&gw, "GET", "/api/rooms/nope").await.0, 404);

    let (status, sessions) = api(&gw, "GET", "/api/sessions").await;
    assert_eq!(status, 200);
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{sessions}");
    let id_of = |dialect: &str| {
        list.iter()
            .find(|s| s["dialect"] == dialect)
            .map(|s| s["session"].as_u64().unwrap())
            .unwrap()
    };
    let (raw_id, ant_id) = (id_of("raw"), id_of("antmedia"));
    let ant_entry = list.iter().find(|s| s["dialect"] == "antmedia").unwrap();
    assert_eq!(ant_entry["rooms"], json!(["adm"]));
    assert!(ant_entry["messages_in"].as_u64().unwrap() >= 1);
    assert!(
        ant_entry["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    let (status, stats) = api(&gw, "GET", "/api/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["phase"], "running");
    assert_eq!(stats["rooms"], 1);
    assert_eq!(stats["sessions"]["raw"], 1);
    assert!(stats["messages"]["antmedia"]["in"].as_u64().unwrap() >= 1);

    // Kick the Ant peer: an error in its dialect, then close 1008.
    assert_eq!(
        api(
            &gw,
            "DELETE",
            &format!("/api/sessions/{ant_id}?reason=maintenance")
        )
        .await
        .0,
        204
    );
    let error = ant.recv_json().await;
    assert_eq!(field(&error, "definition"), "refused", "{error}");
    assert!(
        field(&error, "information").contains("maintenance"),
        "{error}"
    );
    let close = ant.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    // Its partner hears that it left.
    let left = raw.recv_json().await;
    assert_eq!(field(&left, "type"), "switchboard.peer-left", "{left}");
    // Kick the raw peer.
    assert_eq!(
        api(&gw, "DELETE", &format!("/api/sessions/{raw_id}"))
            .await
            .0,
        204
    );
    let error = raw.recv_json().await;
    assert_eq!(field(&error, "type"), "switchboard.error");
    assert_eq!(field(&error, "code"), "refused");
    assert_eq!(u16::from(raw.recv_close().await.unwrap().code), 1008);
    assert_eq!(api(&gw, "DELETE", "/api/sessions/999999").await.0, 404);

    // socket.io: the node script waits to be kicked.
    let mut sio = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/node/sio_kicked.mjs"))
        .args([gw.http_url(), "adm-sio".to_owned()])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(sio.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "ready" {
                break;
            }
        }
    })
    .await
    .expect("the socket.io client connects");
    let (_, sessions) = api(&gw, "GET", "/api/sessions").await;
    let sio_id = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["dialect"] == "socketio")
        .map(|s| s["session"].as_u64().unwrap())
        .expect("the socket.io session is listed");
    assert_eq!(
        api(&gw, "DELETE", &format!("/api/sessions/{sio_id}"))
            .await
            .0,
        204
    );
    let status = tokio::time::timeout(Duration::from_secs(20), sio.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "sio_kicked.mjs failed");
    gw.stop().await;
}

#[tokio::test]
async fn drain_through_the_api_stops_the_node() {
    let gw = TestGateway::with_config(&config(&format!("[admin]\ntoken = \"{TOKEN}\""))).await;
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let (status, body) = api(&gw, "POST", "/api/drain").await;
    assert_eq!(status, 202);
    assert_eq!(body["phase"], "draining");
    assert_eq!(
        field(&ant.recv_json().await, "definition"),
        "server_will_stop"
    );
    assert_eq!(u16::from(ant.recv_close().await.unwrap().code), 1001);
    gw.wait_stopped(Duration::from_secs(10)).await;
}
