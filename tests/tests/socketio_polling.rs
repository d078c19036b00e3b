//! socket.io clients with their default options on the gateway's own engine.io transport
//! (issue 17 items 2 and 6): long-polling, the upgrade, and long-polling alone all run in the one
//! session loop, and bad input over polling gets the same answers and counts as over WebSocket.
//! Real npm clients (socket.io-client 4 and 2, `ws` for Ant Media and raw peers) and raw HTTP;
//! the scenarios are in `tests/node/sio_polling.mjs`. Counts only, no timing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_tests::metrics::{self, scrape};
use switchboard_tests::{TestGateway, clean_node_scenario, node_scenario};

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
    node_scenario(gw, "sio_polling.mjs", name, DEADLINE).await;
}

/// Runs scenario `name` on a fresh gateway and expects no error counted.
async fn clean_scenario(name: &str) {
    clean_node_scenario(CONFIG, "sio_polling.mjs", name, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_option_clients_burst_to_ant_and_raw_peers_whole_and_in_order() {
    clean_scenario("cross").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_in_the_middle_of_a_burst_loses_nothing() {
    clean_scenario("upgrade").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinned_to_long_polling_relays_both_ways() {
    clean_scenario("polling").await;
}

/// Default-option socket.io-client 2 calls an Ant Media peer and a default-option
/// socket.io-client 4 peer (offer, answer and candidates both ways, in order, byte for byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_option_socket_io_2_calls_ant_and_socket_io_4_peers() {
    clean_scenario("calls").await;
}

/// Engine.io 3 (socket.io-client 2's protocol) over polling at the wire level: the open packet
/// without `maxPayload`, the server's own `40`, the client's ping answered; each bad input is
/// answered in the client's terms or ends the session, and is counted once, by reason, as over
/// WebSocket; JSONP gets a clear 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_3_bad_input_over_polling_is_answered_and_counted_once() {
    let gw = TestGateway::with_config(CONFIG).await;
    scenario(&gw, "bad-input3").await;
    let body = scrape(&gw).await;
    let count = |reason: &str| metrics::sample(&body, &metrics::errors("socketio", reason));
    // The two `msg` with a number.
    assert_eq!(count("invalid_field"), 2, "{body}");
    // `9:40`, `x:40`.
    assert_eq!(count("malformed_packet"), 2, "{body}");
    assert_eq!(count("invalid_utf8"), 1, "{body}");
    assert_eq!(count("frame_too_large"), 1, "{body}");
    let closed = |reason: &str| closed_by(&body, reason);
    assert_eq!(closed("malformed packet"), 2, "{body}");
    assert_eq!(closed("invalid utf-8"), 1, "{body}");
    assert_eq!(closed("frame too large"), 1, "{body}");
    gw.stop().await;
}

/// Engine.io 3 POSTs above `engineio3_max_post_bytes` (announced, counted while read, and a
/// real socket.io-client 2's burst): each gets 413, nothing of it is relayed, and its session
/// ends, counted once as an oversized frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_io_3_posts_above_the_cap_get_413_and_are_counted_once() {
    // The cap the scenario's POST_CAP3 assumes.
    let config = CONFIG.replace(
        "session_queue_len = 32",
        "session_queue_len = 32\nengineio3_max_post_bytes = 100000",
    );
    let gw = TestGateway::with_config(&config).await;
    scenario(&gw, "post-cap3").await;
    let body = scrape(&gw).await;
    let count = |reason: &str| metrics::sample(&body, &metrics::errors("socketio", reason));
    assert_eq!(count("frame_too_large"), 3, "{body}");
    assert_eq!(closed_by(&body, "frame too large"), 3, "{body}");
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
    let closed = |reason: &str| closed_by(&body, reason);
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
    dropped_for_silence(&gw, "vanish", &mut raw, Duration::from_secs(70)).await;
    gw.stop().await;
}

/// An engine.io 3 client pings and the server answers, so a v3 session is dropped when its
/// client sends nothing for pingInterval + pingTimeout (25 s + 20 s): it is still there after
/// 30 s of silence (the server sends no ping of its own to be missed), gone within 70 s, counted
/// once as `ping timeout`, and its partner is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_engine_io_3_client_is_dropped_after_ping_interval_plus_timeout() {
    use switchboard_tests::{WsClient, field, http_get};
    let gw = TestGateway::with_config(CONFIG).await;
    let (status, open) =
        http_get(gw.main, "/socket.io/?EIO=3&transport=polling&room=vanish3").await;
    assert_eq!(status, 200, "{open}");
    assert!(
        open.contains(r#"0{"sid":"#) && open.contains("2:40"),
        "{open}"
    );
    let mut raw = WsClient::connect(&gw.raw_url("vanish3")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.start");
    let members = || {
        gw.running()
            .gateway()
            .dispatcher()
            .room_members("vanish3")
            .len()
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        members(),
        2,
        "a v3 client is given 45 s, not one ping interval"
    );
    // 30 s of silence have passed: 40 s more make the 70 s.
    dropped_for_silence(&gw, "vanish3", &mut raw, Duration::from_secs(40)).await;
    gw.stop().await;
}

/// The upgrade at the wire level, as engine.io's reference server answers it: `2probe` gets
/// `3probe`, the pending GET is released with a `noop` (`6`), and after `5` the session runs on
/// the WebSocket (a later GET is answered `noop`, the session's packets come over the
/// WebSocket). A text frame that is not UTF-8 on the upgraded socket closes it with 1007, counted
/// once, as in every dialect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_probe_noop_and_1007_on_the_upgraded_socket() {
    use switchboard_tests::{WsClient, http_get, http_request};
    let gw = TestGateway::with_config(CONFIG).await;
    let base = "/socket.io/?EIO=4&transport=polling&room=upgrade-wire";
    let (_, open) = http_get(gw.main, base).await;
    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    let sid = open["sid"].as_str().unwrap().to_owned();
    let session = format!("{base}&sid={sid}");
    assert_eq!(
        http_request(gw.main, "POST", &session, Some("40")).await.0,
        200
    );
    let (_, connected) = http_get(gw.main, &session).await;
    assert!(connected.starts_with("40{"), "{connected}");
    let mut payloads = connected;
    while !payloads.contains("joined") {
        payloads.push_str(&http_get(gw.main, &session).await.1);
    }
    // A GET pending while the client probes.
    let addr = gw.main;
    let pending_path = session.clone();
    let pending = tokio::spawn(async move { http_get(addr, &pending_path).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ws_url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&room=upgrade-wire&sid={sid}",
        gw.main
    );
    let mut ws = WsClient::connect(&ws_url).await;
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    let (status, released) = pending.await.unwrap();
    assert_eq!(
        (status, released.as_str()),
        (200, "6"),
        "the pending GET gets a noop"
    );
    ws.send_text("5").await;
    // Upgraded: a GET now gets a noop, and the session answers over the WebSocket.
    assert_eq!(http_get(gw.main, &session).await.1, "6");
    // Its long-polling side is gone: a POST is refused as engine.io refuses it, and the
    // session goes on.
    let (status, body) = http_request(gw.main, "POST", &session, Some("40")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Bad request"), "{body}");
    ws.send_text(r#"42["msg",5]"#).await;
    let error = ws.recv_text().await;
    assert!(
        error.starts_with(r#"42["switchboard""#) && error.contains("invalid_field"),
        "{error}"
    );
    ws.send_raw_text(b"42[\"msg\",\"\x80\xe2\x82\"]".to_vec())
        .await;
    let close = ws.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1007);
    let body = scrape(&gw).await;
    assert_eq!(
        metrics::sample(&body, &metrics::errors("socketio", "invalid_utf8")),
        1,
        "{body}"
    );
    gw.stop().await;
}

/// socket.io sessions that ended by `reason`, from a /metrics body.
fn closed_by(body: &str, reason: &str) -> u64 {
    metrics::sample(
        body,
        &format!(r#"switchboard_sessions_closed_total{{dialect="socketio",reason="{reason}"}}"#),
    )
}

/// The socket.io peer of `room` went silent: within `within` the room is down to the raw
/// partner, the partner is told (`peer-left`), and the session end is counted once as
/// `ping timeout`.
async fn dropped_for_silence(
    gw: &TestGateway,
    room: &str,
    raw: &mut switchboard_tests::WsClient,
    within: Duration,
) {
    use switchboard_tests::field;
    let members = || gw.running().gateway().dispatcher().room_members(room).len();
    let deadline = tokio::time::Instant::now() + within;
    while members() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still 2 members after {within:?} more"
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
    let body = scrape(gw).await;
    assert_eq!(
        metrics::sample(
            &body,
            r#"switchboard_sessions_closed_total{dialect="socketio",reason="ping timeout"}"#
        ),
        1,
        "{body}"
    );
}
