//! CI's short version of the benchmark (`bench/run.sh`): the load generator's call-setup storm in
//! every dialect and mixed, and a short relay-throughput run per dialect, against an in-process
//! gateway; the PeerJS run also against the real `peer` server (npm), the benchmark's PeerJS
//! baseline, so that both sides of that comparison carry the same frames. Correctness only: nothing lost, misrouted, duplicated, reordered or malformed, no
//! error notice. No timing is asserted.

use std::time::Duration;

use switchboard_loadgen::{
    Dialect, FlowConfig, FlowReport, Pace, Server, StormConfig, StormDialects, Target,
};
use switchboard_tests::TestGateway;

/// [`switchboard_tests::TEST_CONFIG`]'s main listener with the abuse limits raised as in
/// `bench/switchboard.toml`: the default 50 messages/s per connection and 64 connections per
/// address would (rightly) refuse a load generator.
const LOAD_CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw", "peerjs"]
pages = "none"

[limits]
max_sessions = 10000
max_connections_per_ip = 10000
messages_per_sec = 1000000.0
message_burst = 1000000

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "room-router"
"#;

const PAIRS: u32 = 50;

fn target(gw: &TestGateway) -> Target {
    Target::new(gw.main, Server::Switchboard)
        .expect("loopback target")
        .with_sources(4)
}

async fn storm(dialects: StormDialects) {
    let gw = TestGateway::with_config(LOAD_CONFIG).await;
    let report = switchboard_loadgen::scenario::storm::run(StormConfig {
        target: target(&gw),
        dialects,
        pairs: PAIRS,
        connect_parallel: 32,
        timeout: Duration::from_secs(60),
    })
    .await
    .expect("storm runs");
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.completed, PAIRS, "{report:#?}");
    // Offer + 6 candidates one way, answer + 2 the other, per pair.
    assert_eq!(report.delivered, u64::from(PAIRS) * 10, "{report:#?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_ant() {
    storm(StormDialects::Single(Dialect::Ant)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_socketio() {
    storm(StormDialects::Single(Dialect::Socketio)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_raw() {
    storm(StormDialects::Single(Dialect::Raw)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_mixed_dialects() {
    storm(StormDialects::Mixed).await;
}

fn assert_clean(r: &FlowReport) {
    assert!(r.sent > 0 && r.delivered == r.sent, "{r:#?}");
    assert_eq!(
        (
            r.lost,
            r.misrouted,
            r.duplicated,
            r.out_of_order,
            r.malformed,
            r.errors
        ),
        (0, 0, 0, 0, 0, 0),
        "{r:#?}"
    );
}

async fn throughput(dialect: Dialect) {
    let gw = TestGateway::with_config(LOAD_CONFIG).await;
    throughput_at(target(&gw), dialect).await;
    gw.stop().await;
}

async fn throughput_at(target: Target, dialect: Dialect) {
    let report = switchboard_loadgen::scenario::flow::run(FlowConfig {
        target,
        dialect,
        pairs: 20,
        secs: 1.0,
        pace: Pace::Window(32),
        server_pids: Vec::new(),
    })
    .await
    .expect("throughput runs");
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_ant() {
    throughput(Dialect::Ant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_socketio() {
    throughput(Dialect::Socketio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_raw() {
    throughput(Dialect::Raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_peerjs() {
    throughput(Dialect::Peerjs).await;
}

/// The same PeerJS pairs against the `peer` server itself (`bench/peer-server/server.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_peerjs_against_the_peer_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let root = switchboard_tests::repo_root();
    let mut server = tokio::process::Command::new("node")
        .arg("bench/peer-server/server.mjs")
        .arg(port.to_string())
        .arg("127.0.0.1")
        .current_dir(&root)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs the peer server");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the peer server listens on {addr} within 10 s");
    let target = Target::new(addr, Server::Peer)
        .expect("loopback target")
        .with_sources(4);
    throughput_at(target, Dialect::Peerjs).await;
    let _ = server.kill().await;
}
