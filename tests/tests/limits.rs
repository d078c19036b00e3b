//! `[limits]` end to end: per-dialect frame size, per-connection message rate (error in the
//! dialect, then close 1008), per-IP and global connection caps (HTTP 429 / 503 before the
//! upgrade), allowed origins (403), the join timeout (Ant `join_timeout` then close 4408), and
//! a metric for every refusal. socket.io is covered by `tests/node/sio_limits.mjs` and an
//! engine.io client that never connects to its namespace.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use switchboard_tests::metrics::scrape;
use switchboard_tests::{TestGateway, WsClient, field, http_get, limits_config, node};

fn assert_metric(body: &str, line: &str) {
    assert!(body.contains(line), "no `{line}` in:\n{body}");
}

#[tokio::test]
async fn frame_limits_apply_per_dialect() {
    let gw = TestGateway::with_config(&limits_config(
        "max_frame_bytes = 65536\ndialect_max_frame_bytes = { raw = 2048 }",
    ))
    .await;
    let pad = "x".repeat(4000);
    // 4 KB is within the default for Ant Media...
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_json(json!({"command":"ping","pad":pad})).await;
    assert_eq!(field(&ant.recv_json().await, "command"), "pong");
    // ...and above the raw override: the raw session is closed with 1009.
    let mut raw = WsClient::connect(&gw.raw_url("frames")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    raw.send_text(&format!(r#"{{"app":"{pad}"}}"#)).await;
    let close = raw.recv_close().await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1009));
    assert_metric(
        &scrape(&gw).await,
        r#"switchboard_errors_total{dialect="raw",reason="frame_too_large"} 1"#,
    );
    gw.stop().await;
}

#[tokio::test]
async fn message_rate_is_refused_in_the_dialect_then_closed() {
    let gw = TestGateway::with_config(&limits_config(
        "messages_per_sec = 0.5\nmessage_burst = 3\nrate_limit_close_after = 3",
    ))
    .await;
    // Ant Media: three pings pass, the fourth is refused with `rate_limited`...
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    for _ in 0..3 {
        ant.send_json(json!({"command":"ping"})).await;
        assert_eq!(field(&ant.recv_json().await, "command"), "pong");
    }
    ant.send_json(json!({"command":"ping"})).await;
    let error = ant.recv_json().await;
    assert_eq!(field(&error, "command"), "error", "{error}");
    assert_eq!(field(&error, "definition"), "rate_limited", "{error}");
    assert!(field(&error, "information").contains("messages per second"));
    // ...and after three refusals in a row the connection is closed with 1008.
    ant.send_json(json!({"command":"ping"})).await;
    assert_eq!(field(&ant.recv_json().await, "definition"), "rate_limited");
    ant.send_json(json!({"command":"ping"})).await;
    let close = ant.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);

    // raw: the refusal is a `switchboard.error` frame with code `rate_limited`.
    let mut raw = WsClient::connect(&gw.raw_url("rate")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    for _ in 0..3 {
        raw.send_text(r#"{"type":"switchboard.ice-servers"}"#).await;
        let answer = raw.recv_json().await;
        assert_eq!(
            field(&answer, "type"),
            "switchboard.ice-servers",
            "{answer}"
        );
    }
    raw.send_text(r#"{"type":"switchboard.ice-servers"}"#).await;
    let error = raw.recv_json().await;
    assert_eq!(field(&error, "type"), "switchboard.error", "{error}");
    assert_eq!(field(&error, "code"), "rate_limited", "{error}");

    let body = scrape(&gw).await;
    assert_metric(
        &body,
        r#"switchboard_errors_total{dialect="antmedia",reason="rate_limited"} 2"#,
    );
    assert_metric(
        &body,
        r#"switchboard_errors_total{dialect="antmedia",reason="rate_limit_closed"} 1"#,
    );
    assert_metric(
        &body,
        r#"switchboard_errors_total{dialect="raw",reason="rate_limited"} 1"#,
    );
    gw.stop().await;
}

#[tokio::test]
async fn per_ip_cap_refuses_the_upgrade_with_429_until_a_place_frees() {
    let gw = TestGateway::with_config(&limits_config("max_connections_per_ip = 2")).await;
    let a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let _b = WsClient::connect(&gw.raw_url("cap")).await;
    let refused = WsClient::try_connect(&gw.ant_url("LiveApp"), &[]).await;
    let Err((status, body)) = refused else {
        panic!("a third connection from one address was accepted");
    };
    assert_eq!(status, 429);
    assert!(body.contains("too_many_connections"), "{body}");
    a.close().await;
    // The place frees when the session ends.
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = WsClient::try_connect(&gw.ant_url("LiveApp"), &[]).await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the freed place was never given again");
    assert_metric(
        &scrape(&gw).await,
        r#"switchboard_errors_total{dialect="antmedia",reason="too_many_connections"}"#,
    );
    gw.stop().await;
}

#[tokio::test]
async fn global_session_cap_refuses_the_upgrade_with_503() {
    let gw = TestGateway::with_config(&limits_config("max_sessions = 1")).await;
    let _a = WsClient::connect(&gw.raw_url("one")).await;
    let Err((status, body)) = WsClient::try_connect(&gw.raw_url("two"), &[]).await else {
        panic!("a second session was accepted");
    };
    assert_eq!(status, 503);
    assert!(body.contains("server_full"), "{body}");
    assert_metric(
        &scrape(&gw).await,
        r#"switchboard_errors_total{dialect="raw",reason="server_full"} 1"#,
    );
    gw.stop().await;
}

#[tokio::test]
async fn origins_outside_the_allow_list_get_403() {
    let gw = TestGateway::with_config(&limits_config(
        r#"allowed_origins = ["https://app.example", "https://*.corp.example"]"#,
    ))
    .await;
    for origin in ["https://evil.example", "http://app.example"] {
        let Err((status, body)) =
            WsClient::try_connect(&gw.ant_url("LiveApp"), &[("Origin", origin)]).await
        else {
            panic!("{origin} was accepted");
        };
        assert_eq!(status, 403, "{origin}");
        assert!(body.contains("origin_not_allowed"), "{body}");
    }
    for origin in ["https://app.example", "https://team.corp.example"] {
        assert!(
            WsClient::try_connect(&gw.raw_url("o"), &[("Origin", origin)])
                .await
                .is_ok(),
            "{origin} was refused"
        );
    }
    // Not from a browser page: no Origin, allowed.
    assert!(
        WsClient::try_connect(&gw.ant_url("LiveApp"), &[])
            .await
            .is_ok()
    );
    // Page loads are not checked (the list guards connections, not pages).
    assert_eq!(http_get(gw.main, "/healthz").await.0, 200);
    assert_metric(
        &scrape(&gw).await,
        r#"switchboard_errors_total{dialect="antmedia",reason="origin_not_allowed"} 2"#,
    );
    gw.stop().await;
}

#[tokio::test]
async fn ant_peers_that_never_join_are_closed_after_the_join_timeout() {
    let gw = TestGateway::with_config(&limits_config("join_timeout_secs = 1")).await;
    let mut idle = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let mut joined = WsClient::connect(&gw.ant_url("LiveApp")).await;
    joined
        .send_json(json!({"command":"join","streamId":"jt","mode":"both"}))
        .await;
    assert_eq!(field(&joined.recv_json().await, "definition"), "joined");
    // A keep-alive is not a join.
    idle.send_json(json!({"command":"ping"})).await;
    assert_eq!(field(&idle.recv_json().await, "command"), "pong");
    let error = idle.recv_json().await;
    assert_eq!(field(&error, "definition"), "join_timeout", "{error}");
    let close = idle.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4408);
    // The peer that joined stays.
    joined.expect_silence(700).await;
    joined.send_json(json!({"command":"ping"})).await;
    assert_eq!(field(&joined.recv_json().await, "command"), "pong");
    assert_metric(
        &scrape(&gw).await,
        r#"switchboard_errors_total{dialect="antmedia",reason="join_timeout"} 1"#,
    );
    gw.stop().await;
}

#[tokio::test]
async fn socketio_clients_that_never_connect_to_a_namespace_are_closed() {
    let gw = TestGateway::with_config(&limits_config("join_timeout_secs = 1")).await;
    // engine.io v4 over WebSocket: the server opens (`0{...}`), the client never sends the
    // namespace CONNECT (`40`).
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", gw.main);
    let mut eio = WsClient::connect(&url).await;
    let open = eio.recv_text().await;
    assert!(open.starts_with('0'), "{open}");
    let started = std::time::Instant::now();
    eio.recv_close().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_limits_rate_cap_and_origin() {
    let gw = TestGateway::with_config(&limits_config(
        "messages_per_sec = 0.5\nmessage_burst = 2\nrate_limit_close_after = 2\n\
         max_connections_per_ip = 2\nallowed_origins = [\"https://app.example\"]",
    ))
    .await;
    let run = node("sio_limits.mjs", &[&gw.http_url()], Duration::from_secs(60)).await;
    if run.success {
        eprintln!("{}{}", run.stdout, run.stderr);
    }
    run.assert_success();
    let body = scrape(&gw).await;
    for reason in [
        "rate_limited",
        "rate_limit_closed",
        "too_many_connections",
        "origin_not_allowed",
    ] {
        assert_metric(
            &body,
            &format!(r#"switchboard_errors_total{{dialect="socketio",reason="{reason}"}}"#),
        );
    }
    gw.stop().await;
}

/// A peer that stops reading cannot hold its session: once its TCP buffers are full the
/// gateway's write blocks, and after `write_timeout_secs` the session is closed and its partner
/// told, instead of the write (and every message queued behind it) waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_after_the_write_timeout() {
    let gw = TestGateway::with_config(&limits_config(
        "write_timeout_secs = 1\nmessages_per_sec = 100000.0\nmessage_burst = 100000",
    ))
    .await;
    let mut sender = WsClient::connect(&gw.raw_url("stalled")).await;
    sender.recv_text().await; // joined
    let mut stalled = WsClient::connect(&gw.raw_url("stalled")).await;
    stalled.recv_text().await; // joined
    stalled.recv_text().await; // peer-joined
    sender.recv_text().await; // start
    // 30 MB towards a peer that reads nothing: well past loopback's socket buffers.
    let frame = format!("{{\"type\":\"bulk\",\"pad\":\"{}\"}}", "x".repeat(60_000));
    for _ in 0..500 {
        sender.send_text(&frame).await;
    }
    // The stalled session is closed within about a second of its write blocking; the sender is
    // told its partner left (frames it sent after that are refused with `no_peer`).
    let mut seen = Vec::new();
    let left = loop {
        let v = sender.recv_json().await;
        if v["type"] == "switchboard.peer-left" {
            break true;
        }
        seen.push(v);
        assert!(
            seen.len() < 1000,
            "no peer-left among {} frames",
            seen.len()
        );
    };
    assert!(left);
    let body = scrape(&gw).await;
    assert!(
        body.contains(r#"switchboard_errors_total{dialect="raw",reason="write_timeout"} 1"#),
        "{body}"
    );
    drop(stalled);
    gw.stop().await;
}
