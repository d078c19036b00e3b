//! Direct links between nodes (`[cluster.direct]`), with a real `redis-server`, two real
//! `switchboard` nodes and real WebSocket clients counting every frame:
//!
//! - a call across the nodes goes over the direct link (Redis runs next to no `PUBLISH` for
//!   2,000 frames and a 6 KB Chrome offer), every frame once and in order;
//! - strangers at the listener (garbage, a wrong proof of the link secret, a handshake for
//!   another node, an oversized announcement, a flood of silent connections) are refused and
//!   counted, and the call goes on;
//! - the link killed under a burst (`ss -K` on its sockets) loses nothing: the frames go
//!   through Redis, the receiver asks for what the dead link took, and a new link takes over;
//! - Redis restarted empty under a call over the link: every frame arrives, the link stays.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_tests::cluster::{
    Node, RedisServer, across_a_disruption, ant_pair, both_ways, free_port, start_node_with,
};
use switchboard_tests::http_get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Two nodes on one Redis, each taking direct links on its own port: (redis, a, b, a's port,
/// b's port), both links in use.
async fn two_linked_nodes() -> (RedisServer, Node, Node, u16, u16) {
    let redis = RedisServer::start().await;
    let (pa, pb) = (free_port(), free_port());
    let a = start_node_with(&redis, "node-a", &direct(pa), "").await;
    let b = start_node_with(&redis, "node-b", &direct(pb), "").await;
    links_in_use(&a, 1).await;
    links_in_use(&b, 1).await;
    (redis, a, b, pa, pb)
}

/// The `[cluster]` line for a direct-link listener on `port`.
fn direct(port: u16) -> String {
    format!("direct = {{ listen = \"127.0.0.1:{port}\" }}")
}

/// A metric's value on `node` (0 when never set).
async fn metric(node: &Node, name: &str) -> i64 {
    let (_, metrics) = http_get(node.main, "/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Waits (at most 5 s) until `node` has `n` direct links in use.
async fn links_in_use(node: &Node, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = metric(node, "switchboard_cluster_direct_links").await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} has {now} direct links in use, not {n}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many `PUBLISH`es Redis has run.
async fn publishes(redis: &RedisServer) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]).await;
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// A call across the nodes goes over the link: 1,000 candidates each way arrive once and in
/// order while Redis runs hardly any `PUBLISH` (the link's own acknowledgements go over it too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_across_nodes_goes_over_the_direct_link() {
    let (redis, a, b, _, _) = two_linked_nodes().await;
    let room = "direct-call";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    let before = publishes(&redis).await;
    both_ways(&mut pa, &mut pb, room, 0, 1000).await;
    // A Chrome-shaped offer of about 6 KB (its body goes over the link as a piece of its own,
    // not copied into the bundle) arrives whole, after the candidates sent before it.
    let tag = switchboard_loadgen::sdp::Tag {
        pair: 0,
        side: 0,
        seq: 0,
        sent_ns: 0,
    };
    let sdp = switchboard_loadgen::sdp::offer(&tag);
    assert!(sdp.len() > 5_000, "{}", sdp.len());
    pa.send_json(
        serde_json::json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":sdp}),
    )
    .await;
    let got = pb.recv_json().await;
    assert_eq!(got["command"], "takeConfiguration", "{got}");
    assert_eq!(got["sdp"], sdp.as_str());
    let through_redis = publishes(&redis).await - before;
    assert!(
        through_redis < 20,
        "2,000 frames and an offer crossed, {through_redis} PUBLISHes went through Redis"
    );
    let (_, metrics) = http_get(b.main, "/metrics").await;
    let got = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"switchboard_cluster_frames_total{direction="in"} "#))
        .unwrap();
    assert!(
        got.parse::<u64>().unwrap() >= 1000,
        "b counted {got} frames in"
    );
}

/// Sends `bytes` to the listener at `port` and returns what it answers before closing (or
/// what came within 3 s).
async fn knock(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A RESP array of bulk strings.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Strangers at b's listener are refused with a reason, each counted, before anything of theirs
/// is trusted; a flood of silent connections holds at most a few handshake places, the rest
/// closed at once; the call over the link goes on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_at_the_direct_listener_are_refused_and_the_call_goes_on() {
    let (redis, a, b, _, port) = two_linked_nodes().await;
    let room = "direct-strangers";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    let nodes = redis.cli(&["SMEMBERS", "switchboard:nodes"]).await;
    let b_id = nodes.lines().find(|n| n.starts_with("node-b@")).unwrap();
    let a_id = nodes.lines().find(|n| n.starts_with("node-a@")).unwrap();

    let garbage = knock(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(garbage.starts_with("-ERR not a handshake"), "{garbage:?}");
    let wrong_proof = command(&[b"NODE", &[7u8; 20], a_id.as_bytes(), b_id.as_bytes()]);
    let answer = knock(port, &wrong_proof).await;
    assert_eq!(answer, "-ERR wrong proof of the link secret\r\n");
    let other_node = command(&[b"NODE", &[7u8; 20], a_id.as_bytes(), b"node-b@1"]);
    let answer = knock(port, &other_node).await;
    assert_eq!(answer, "-ERR not the node dialed\r\n");
    // A frame announcing 100 MB is refused after at most a handshake's bytes.
    let huge = knock(port, b"*4\r\n$100000000\r\nNODE").await;
    assert!(huge.starts_with("-ERR not a handshake"), "{huge:?}");
    both_ways(&mut pa, &mut pb, room, 0, 100).await;

    // 40 silent connections: 16 hold the handshake places (until their 2 s are up), the others
    // are closed at accept.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let mut closed_at_once = 0;
    for s in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(300), s.read(&mut byte)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            closed_at_once += 1;
        }
    }
    assert!(
        (24..=40).contains(&closed_at_once),
        "{closed_at_once} of 40 silent connections were closed at once"
    );
    both_ways(&mut pa, &mut pb, room, 100, 100).await;
    // The ones that held a place are closed when their handshake time is up.
    for s in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a silent connection stayed open: {read:?}"
        );
    }
    let refused = metric(&b, "switchboard_cluster_direct_refused_total").await;
    assert_eq!(refused, 44, "refusals counted once each");
    links_in_use(&a, 1).await;
    both_ways(&mut pa, &mut pb, room, 200, 100).await;
}

/// Kills the TCP connections of the direct-link listener on `port` (both ends).
fn kill_links(port: u16) {
    let out = std::process::Command::new("ss")
        .args(["-K", &format!("( sport = :{port} or dport = :{port} )")])
        .output()
        .unwrap();
    assert!(out.status.success(), "ss -K: {out:?}");
}

/// Both links killed under a burst each way: every frame arrives once, in order (what the dead
/// links took is sent again through Redis), and new links take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_link_killed_under_a_burst_loses_nothing() {
    let (redis, a, b, pa_port, pb_port) = two_linked_nodes().await;
    let before = publishes(&redis).await;
    let (mut x, mut y) = across_a_disruption(&a, &b, "direct-killed", 300, async || {
        kill_links(pa_port);
        kill_links(pb_port);
    })
    .await;
    assert!(
        publishes(&redis).await > before,
        "the frames after the kill went through Redis"
    );
    links_in_use(&a, 1).await;
    links_in_use(&b, 1).await;
    let settled = publishes(&redis).await;
    both_ways(&mut x, &mut y, "direct-killed", 2000, 500).await;
    let after = publishes(&redis).await - settled;
    assert!(
        after < 20,
        "{after} PUBLISHes after the new links took over"
    );
}

/// Redis restarted empty under a call over the link: every frame arrives once, in order, and
/// the link is still in use afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_under_a_direct_call_loses_nothing() {
    let (mut redis, a, b, _, _) = two_linked_nodes().await;
    let redis = &mut redis;
    let (mut x, mut y) = across_a_disruption(&a, &b, "direct-redis", 300, async || {
        redis.restart().await;
    })
    .await;
    a.wait_health("cluster: ok", Duration::from_secs(10)).await;
    b.wait_health("cluster: ok", Duration::from_secs(10)).await;
    links_in_use(&a, 1).await;
    links_in_use(&b, 1).await;
    both_ways(&mut x, &mut y, "direct-redis", 2000, 100).await;
}
