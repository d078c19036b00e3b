//! TURN REST credentials handed out in every dialect: Ant Media `getIceServerConfig` →
//! `iceServerConfig` with the first TURN URI, raw `{"type":"switchboard.ice-servers"}` and
//! socket.io `switchboard` `{type:"ice-servers"}` → every URI with the same credentials. The
//! username is `<expiry>:<session id>` and the credential base64(HMAC-SHA1(secret, username)),
//! checked here independently of the gateway's code.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use switchboard_tests::{TestGateway, WsClient, field, node};

const SECRET: &str = "coturn-static-auth-secret";
const TTL: u64 = 600;

fn config() -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[turn]
secret = "{SECRET}"
ttl_secs = {TTL}
uris = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]

[[plugin]]
type = "room-router"
"#
    )
}

/// Checks a username/credential pair: signature, expiry about `TTL` from now, the session id.
fn assert_valid(username: &str, credential: &str) {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(credential, expected, "credential of {username}");
    let (expiry, session) = username.split_once(':').unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + TTL - 5..=now + TTL + 5).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert!(session.parse::<u64>().is_ok(), "{username}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_turn_credentials_in_every_dialect() {
    let gw = TestGateway::with_config(&config()).await;

    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_json(json!({"command":"getIceServerConfig"})).await;
    let answer = ant.recv_json().await;
    assert_eq!(field(&answer, "command"), "iceServerConfig", "{answer}");
    assert_eq!(
        field(&answer, "stunServerUri"),
        "turn:turn.example.org:3478?transport=udp"
    );
    assert_valid(
        field(&answer, "turnServerUsername"),
        field(&answer, "turnServerCredential"),
    );
    let ant_username = field(&answer, "turnServerUsername").to_owned();

    let mut raw = WsClient::connect(&gw.raw_url("ice")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    raw.send_text(r#"{"type":"switchboard.ice-servers"}"#).await;
    let answer = raw.recv_json().await;
    assert_eq!(
        field(&answer, "type"),
        "switchboard.ice-servers",
        "{answer}"
    );
    let raw_server = &answer["iceServers"][0];
    assert_eq!(
        raw_server["urls"],
        json!([
            "turn:turn.example.org:3478?transport=udp",
            "turns:turn.example.org:5349"
        ])
    );
    assert_valid(
        field(raw_server, "username"),
        field(raw_server, "credential"),
    );
    // Each session gets its own username.
    assert_ne!(field(raw_server, "username"), ant_username);

    let run = node("sio_ice.mjs", &[&gw.http_url()], Duration::from_secs(30)).await;
    run.assert_success();
    let answer: Value = run
        .stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the answer line");
    let sio_server = &answer["iceServers"][0];
    assert_eq!(sio_server["urls"].as_array().unwrap().len(), 2, "{answer}");
    assert_valid(
        field(sio_server, "username"),
        field(sio_server, "credential"),
    );
    gw.stop().await;
}
