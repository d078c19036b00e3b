//! `/metrics` beyond sessions and errors: the rooms gauge, messages in and out by dialect and
//! kind, plugin calls and latency, the relay latency histogram; `/readyz`.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchboard_tests::{TestGateway, WsClient, field, http_get};

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_rooms_messages_plugins_and_relay_latency() {
    let gw = TestGateway::start().await;
    assert_eq!(
        http_get(gw.main, "/readyz").await,
        (200, "running\n".to_owned())
    );
    let mut a = WsClient::connect(&gw.raw_url("obs")).await;
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.joined");
    let mut b = WsClient::connect(&gw.ant_url("LiveApp")).await;
    b.send_json(json!({"command":"join","streamId":"obs","mode":"both"}))
        .await;
    // b: joined, start; a: peer-joined.
    assert_eq!(field(&b.recv_json().await, "definition"), "joined");
    assert_eq!(field(&b.recv_json().await, "command"), "start");
    assert_eq!(
        field(&a.recv_json().await, "type"),
        "switchboard.peer-joined"
    );
    b.send_json(
        json!({"command":"takeConfiguration","streamId":"obs","type":"offer","sdp":"v=0\r\n"}),
    )
    .await;
    assert_eq!(field(&a.recv_json().await, "type"), "offer");
    a.send_text(r#"{"type":"answer","sdp":"v=0\r\n"}"#).await;
    assert_eq!(field(&b.recv_json().await, "command"), "takeConfiguration");

    let (status, m) = http_get(gw.main, "/metrics").await;
    assert_eq!(status, 200);
    let expect = |series: &str, at_least: f64| {
        let v = value(&m, series).unwrap_or_else(|| panic!("no {series} in:\n{m}"));
        assert!(v >= at_least, "{series} = {v}, expected >= {at_least}");
    };
    expect("switchboard_rooms", 1.0);
    expect(
        r#"switchboard_messages_in_total{dialect="antmedia",kind="join"}"#,
        1.0,
    );
    expect(
        r#"switchboard_messages_in_total{dialect="antmedia",kind="description"}"#,
        1.0,
    );
    expect(
        r#"switchboard_messages_in_total{dialect="raw",kind="description"}"#,
        1.0,
    );
    expect(
        r#"switchboard_messages_out_total{dialect="raw",kind="description"}"#,
        1.0,
    );
    expect(
        r#"switchboard_messages_out_total{dialect="antmedia",kind="start"}"#,
        1.0,
    );
    expect(
        r#"switchboard_plugin_calls_total{plugin="room-router"}"#,
        3.0,
    );
    // One call in eight is timed, starting with the first: of three calls, the first.
    expect(
        r#"switchboard_plugin_latency_seconds_bucket{plugin="room-router",le="+Inf"}"#,
        1.0,
    );
    expect(
        r#"switchboard_relay_latency_seconds_bucket{le="+Inf"}"#,
        3.0,
    );
    expect("switchboard_relay_latency_seconds_count", 3.0);
    assert!(m.contains("# TYPE switchboard_relay_latency_seconds histogram"));
    // Buckets are cumulative.
    let buckets: Vec<f64> = m
        .lines()
        .filter(|l| l.starts_with("switchboard_relay_latency_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    gw.stop().await;
}
