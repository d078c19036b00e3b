//! socket.io clients with their default options on the gateway's own engine.io transport
//! (issue 17 items 2 and 6): long-polling, the upgrade, and long-polling alone all run in the one
//! session loop, and bad input over polling gets the same answers and counts as over WebSocket.
//! Real npm clients (socket.io-client 4 and 2, `ws` for Ant Media and raw peers) and raw HTTP;
//! the scenarios are in `tests/node/sio_polling.mjs`. Counts only, no timing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_tests::metrics::{self, scrape};
use switchboard_tests::{TestGateway, node};

/// Rate limits raised so that a burst is never rate-limited; the frame limit at its default.
const CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]

[shutdown]
grace_period_secs = 2

[limits]
messages_per_sec = 1000000.0
message_burst = 1000000
session_queue_len = 32

[[plugin]]
type = "room-router"
"#;

const DEADLINE: Duration = Duration::from_secs(110);

async fn scenario(gw: &TestGateway, name: &str) {
    let run = node("sio_polling.mjs", &[&gw.http_url(), name], DEADLINE).await;
    eprintln!("--- sio_polling.mjs {name}\n{}{}", run.stdout, run.stderr);
    run.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_option_clients_burst_to_ant_and_raw_peers_whole_and_in_order() {
    let gw = TestGateway::with_config(CONFIG).await;
    scenario(&gw, "cross").await;
    let body = scrape(&gw).await;
    assert_eq!(metrics::sum(&body, "switchboard_errors_total"), 0, "{body}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_in_the_middle_of_a_burst_loses_nothing() {
    let gw = TestGateway::with_config(CONFIG).await;
    scenario(&gw, "upgrade").await;
    let body = scrape(&gw).await;
    assert_eq!(metrics::sum(&body, "switchboard_errors_total"), 0, "{body}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinned_to_long_polling_relays_both_ways() {
    let gw = TestGateway::with_config(CONFIG).await;
    scenario(&gw, "polling").await;
    let body = scrape(&gw).await;
    assert_eq!(metrics::sum(&body, "switchboard_errors_total"), 0, "{body}");
    gw.stop().await;
}

/// Each bad input over polling is answered (the script checks the answers) and counted once,
/// by reason, as over WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_over_polling_is_answered_and_counted_once() {
    let gw = TestGateway::with_config(CONFIG).await;
    scenario(&gw, "bad-input").await;
    let body = scrape(&gw).await;
    let count = |reason: &str| metrics::sample(&body, &metrics::errors("socketio", reason));
    // The two `msg` with a number.
    assert_eq!(count("invalid_field"), 2, "{body}");
    // `4zz`, the NUL packet, the truncated event.
    assert_eq!(count("malformed_packet"), 3, "{body}");
    assert_eq!(count("concurrent_polls"), 1, "{body}");
    assert_eq!(count("invalid_utf8"), 1, "{body}");
    assert_eq!(count("frame_too_large"), 1, "{body}");
    let closed = |reason: &str| {
        metrics::sample(
            &body,
            &format!(
                r#"switchboard_sessions_closed_total{{dialect="socketio",reason="{reason}"}}"#
            ),
        )
    };
    assert_eq!(closed("malformed packet"), 3, "{body}");
    assert_eq!(closed("concurrent polls"), 1, "{body}");
    assert_eq!(closed("invalid utf-8"), 1, "{body}");
    assert_eq!(closed("frame too large"), 1, "{body}");
    gw.stop().await;
}

/// A long-polling client that vanishes (no more GETs or POSTs, no FIN: nothing to notice) is
/// closed `pingTimeout` after the ping it never answered (25 s + 20 s, engine.io's defaults),
/// counted once as `ping timeout`, and its partner is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_client_that_vanishes_is_closed_after_the_ping_timeout_and_its_partner_told() {
    use switchboard_tests::{WsClient, field, http_get, http_request};
    let gw = TestGateway::with_config(CONFIG).await;
    let base = "/socket.io/?EIO=4&transport=polling&room=vanish";
    let (status, open) = http_get(gw.main, base).await;
    assert_eq!(status, 200, "{open}");
    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    let session = format!("{base}&sid={}", open["sid"].as_str().unwrap());
    assert_eq!(
        http_request(gw.main, "POST", &session, Some("40")).await.0,
        200
    );
    let (status, connected) = http_get(gw.main, &session).await;
    assert!(status == 200 && connected.starts_with("40{"), "{connected}");
    let mut raw = WsClient::connect(&gw.raw_url("vanish")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    // The raw peer is told to offer (the socket.io page dials by hand).
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.start");
    // From here the polling client is gone. The raw peer is told within the ping interval and
    // timeout (45 s), with room to spare on a loaded machine.
    let members = || {
        gw.running()
            .gateway()
            .dispatcher()
            .room_members("vanish")
            .len()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(70);
    while members() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still 2 members after 70 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = loop {
        let frame = raw.recv_json().await;
        if field(&frame, "type") != "switchboard.peer-joined" {
            break frame;
        }
    };
    assert_eq!(field(&left, "type"), "switchboard.peer-left", "{left}");
    let body = scrape(&gw).await;
    assert_eq!(
        metrics::sample(
            &body,
            r#"switchboard_sessions_closed_total{dialect="socketio",reason="ping timeout"}"#
        ),
        1,
        "{body}"
    );
    gw.stop().await;
}
