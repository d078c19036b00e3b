//! The descriptor reserve under a flood from many addresses, against the real `switchboard`
//! binary under `ulimit -n 256`: the flood (127.0.0.2 to 127.0.0.101, outside the configured
//! health-check network) fills the descriptor budget and keeps re-connecting; every `/healthz`
//! probe from the health-check network (127.0.0.1) is still answered, the established call
//! relays, and the flood's refusals are counted. Every loop is bounded in count and time.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use switchboard_tests::ant::ant_call;
use switchboard_tests::field;
use switchboard_tests::front::{
    EVERY_DIALECT_LISTENER, GatewayProcess, connect_from, metric, process_config_tail, try_http_get,
};

fn config() -> String {
    let limits = r#"max_tcp_connections_per_ip = 100000
header_read_timeout_secs = 60
health_check_cidrs = ["127.0.0.1/32"]"#;
    format!("{EVERY_DIALECT_LISTENER}{}", process_config_tail(limits))
}

/// Flood addresses: 100 of them.
const FLOOD_ADDRESSES: u8 = 100;
/// Most connection attempts the flood makes.
const FLOOD_ATTEMPTS: usize = 400_000;
/// Longest the flood runs.
const FLOOD_TIME: Duration = Duration::from_secs(20);
/// Connections the flood holds at once on its side; past that it drops its oldest and dials
/// again, so the places the gateway frees are taken again at once.
const FLOOD_HELD: usize = 300;
/// Probes of `/healthz` during the flood.
const PROBES: usize = 15;

/// Dials from the flood addresses in turn until `stop`, the attempt cap or the time cap,
/// counting its attempts in `attempts`.
async fn flood(addr: SocketAddr, stop: Arc<AtomicBool>, attempts: Arc<AtomicUsize>) {
    let deadline = tokio::time::Instant::now() + FLOOD_TIME;
    let mut held = VecDeque::new();
    for i in 0..FLOOD_ATTEMPTS {
        if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= deadline {
            break;
        }
        let host = 2 + u8::try_from(i % usize::from(FLOOD_ADDRESSES)).unwrap();
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
        if let Ok(stream) = connect_from(from, addr).await {
            held.push_back(stream);
        }
        if held.len() > FLOOD_HELD {
            held.pop_front();
        }
        attempts.fetch_add(1, Ordering::Relaxed);
        // Let the gateway's accept loop and the probes run between dials.
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_flood_from_many_addresses_cannot_crowd_healthz_out_of_the_reserve() {
    let gw = GatewayProcess::spawn(&config(), 1, Some(256)).await;
    let addr = gw.main();
    let (mut a, mut b) = ant_call(addr, "reserve").await;

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let attacker = tokio::spawn(flood(addr, Arc::clone(&stop), Arc::clone(&attempts)));
    // Let the flood fill the budget before probing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while attempts.load(Ordering::Relaxed) < 1_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood did not get going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every probe from the health-check network is answered while the flood goes on.
    let mut answered = 0;
    for _ in 0..PROBES {
        if let Some((200, body)) = try_http_get(addr, "/healthz").await {
            assert!(body.starts_with("ok"), "{body}");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still_flooding = !attacker.is_finished();
    stop.store(true, Ordering::Relaxed);
    attacker.await.unwrap();
    assert!(still_flooding, "the flood ended before the probes did");
    assert_eq!(
        answered, PROBES,
        "/healthz probes answered during the flood"
    );
    assert!(
        gw.open_fds() < 256,
        "the gateway reached its descriptor limit"
    );

    // The established call goes on, and the flood's refusals were counted.
    a.send_json(json!({"command":"takeCandidate","streamId":"reserve","label":0,"id":"0","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}))
        .await;
    assert_eq!(field(&b.recv_json().await, "command"), "takeCandidate");
    let refused = metric(
        addr,
        r#"switchboard_connections_refused_total{reason="fd_headroom"}"#,
    )
    .await;
    assert!(
        refused >= 1.0,
        "fd_headroom refusals not counted: {refused}"
    );
}
