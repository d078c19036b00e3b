//! Scale-out through Redis: a real `redis-server` and two or three real `switchboard`
//! processes with `[cluster]`, driven by real clients. Calls across nodes must look exactly like
//! calls on one node, byte for byte.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_tests::cluster::{HEARTBEAT_MS, NODE_TTL_MS, Node, RedisServer};
use switchboard_tests::{Received, TestGateway, WsClient, http_get, node};

/// Every frame a peer received, in order.
type Transcript = Vec<String>;

async fn recv_n(peer: &mut WsClient, n: usize, into: &mut Transcript) {
    for _ in 0..n {
        into.push(peer.recv_text().await);
    }
}

/// The Ant `join` of `room` in both modes.
fn ant_join(room: &str) -> serde_json::Value {
    json!({"command":"join","streamId":room,"mode":"both"})
}

/// Two Ant peers in `room`, one on `url_a` (joined first) and one on `url_b`, past the
/// `joined`, `joined` and `start` every two-peer call begins with.
async fn ant_pair(url_a: &str, url_b: &str, room: &str) -> (WsClient, WsClient) {
    let mut a = WsClient::connect(url_a).await;
    a.send_json(ant_join(room)).await;
    assert_eq!(a.recv_json().await["definition"], "joined");
    let mut b = WsClient::connect(url_b).await;
    b.send_json(ant_join(room)).await;
    assert_eq!(b.recv_json().await["definition"], "joined");
    assert_eq!(a.recv_json().await["command"], "start");
    (a, b)
}

/// An Ant Media call between a peer on `url_a` and one on `url_b`: join, start, offer, answer,
/// candidates both ways, a peer message, leave. Returns what each peer received.
async fn ant_call(url_a: &str, url_b: &str, room: &str) -> (Transcript, Transcript) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut a = WsClient::connect(url_a).await;
    let mut b = WsClient::connect(url_b).await;
    a.send_json(json!({"command":"join","streamId":room,"multiPeer":false,"mode":"both"}))
        .await;
    recv_n(&mut a, 1, &mut ta).await;
    b.send_json(json!({"command":"join","streamId":room,"multiPeer":false,"mode":"both"}))
        .await;
    recv_n(&mut a, 1, &mut ta).await;
    recv_n(&mut b, 1, &mut tb).await;
    a.send_text(&format!(
        r#"{{"command":"takeConfiguration","streamId":"{room}","type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}"#
    ))
    .await;
    recv_n(&mut b, 1, &mut tb).await;
    b.send_text(&format!(
        r#"{{"command":"takeConfiguration","streamId":"{room}","type":"answer","sdp":"v=0\r\nanswer\r\n"}}"#
    ))
    .await;
    recv_n(&mut a, 1, &mut ta).await;
    a.send_text(&format!(
        r#"{{"command":"takeCandidate","streamId":"{room}","label":0,"id":"0","candidate":"candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host"}}"#
    ))
    .await;
    recv_n(&mut b, 1, &mut tb).await;
    b.send_text(&format!(
        r#"{{"command":"takeCandidate","streamId":"{room}","label":1,"id":"1","candidate":"candidate:2 1 udp 2122260223 127.0.0.1 40001 typ host"}}"#
    ))
    .await;
    recv_n(&mut a, 1, &mut ta).await;
    a.send_json(json!({"command":"ping"})).await;
    recv_n(&mut a, 1, &mut ta).await;
    a.send_json(json!({"command":"leave","streamId":room}))
        .await;
    recv_n(&mut b, 1, &mut tb).await;
    recv_n(&mut a, 1, &mut ta).await;
    a.expect_silence(300).await;
    b.expect_silence(50).await;
    a.close().await;
    b.close().await;
    (ta, tb)
}

/// A raw call: joined notices, an offer, an unrecognized frame and a non-JSON frame (relayed
/// verbatim), a close.
async fn raw_call(url_a: &str, url_b: &str) -> (Transcript, Transcript) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut a = WsClient::connect(url_a).await;
    recv_n(&mut a, 1, &mut ta).await;
    let mut b = WsClient::connect(url_b).await;
    recv_n(&mut b, 2, &mut tb).await;
    recv_n(&mut a, 1, &mut ta).await;
    a.send_text(r#"{"type":"offer","sdp":"v=0\r\nraw\r\n"}"#)
        .await;
    recv_n(&mut b, 1, &mut tb).await;
    b.send_text(r#"{ "app":"chat",  "text":"héllo", "n":[1,2.50] }"#)
        .await;
    recv_n(&mut a, 1, &mut ta).await;
    a.send_text("plain text, not JSON").await;
    recv_n(&mut b, 1, &mut tb).await;
    b.close().await;
    recv_n(&mut a, 1, &mut ta).await;
    a.expect_silence(300).await;
    a.close().await;
    (ta, tb)
}

async fn two_nodes() -> (RedisServer, Node, Node) {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis.url(), "node-a").await;
    let b = Node::start(&redis.url(), "node-b").await;
    (redis, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ant_call_across_nodes_is_byte_identical_to_one_node() {
    let single = TestGateway::start().await;
    let (_redis, a, b) = two_nodes().await;
    let room = "cluster-ant-1";
    let alone = ant_call(&single.ant_url("LiveApp"), &single.ant_url("LiveApp"), room).await;
    let across = ant_call(&a.ant_url("LiveApp"), &b.ant_url("WebRTCAppEE"), room).await;
    assert_eq!(across, alone, "what each peer receives across nodes");
    // The transcript is the Ant call itself: start to the first peer, relays, stop.
    assert!(alone.0[1].contains(r#""command":"start""#), "{:?}", alone.0);
    assert!(alone.1[3].contains(r#""command":"stop""#), "{:?}", alone.1);
    single.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_call_across_nodes_relays_verbatim() {
    let single = TestGateway::start().await;
    let (_redis, a, b) = two_nodes().await;
    let room = "cluster-raw-1";
    let alone = raw_call(&single.raw_url(room), &single.raw_url(room)).await;
    let across = raw_call(&a.raw_url(room), &b.raw_url(room)).await;
    assert_eq!(across, alone);
    assert!(
        across
            .0
            .contains(&r#"{ "app":"chat",  "text":"héllo", "n":[1,2.50] }"#.to_owned()),
        "{:?}",
        across.0
    );
    assert!(across.1.contains(&"plain text, not JSON".to_owned()));
    single.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_and_ant_call_across_nodes() {
    let (_redis, a, b) = two_nodes().await;
    node(
        "sio_cluster.mjs",
        &[&a.http_url(), &b.http_url()],
        Duration::from_secs(40),
    )
    .await
    .assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_peer_on_a_third_node_is_refused() {
    let (redis, a, b) = two_nodes().await;
    let c = Node::start(&redis.url(), "node-c").await;
    let room = "cluster-full";
    let (mut pa, mut pb) = ant_pair(&a.ant_url("LiveApp"), &b.ant_url("LiveApp"), room).await;
    let mut pc = WsClient::connect(&c.ant_url("LiveApp")).await;
    pc.send_json(ant_join(room)).await;
    let refused = pc.recv_json().await;
    assert_eq!(refused["command"], "error", "{refused}");
    assert_eq!(refused["definition"], "NoSpaceForNewPeer", "{refused}");
    pa.expect_silence(200).await;
    pb.expect_silence(50).await;
    // A raw peer on the third node is refused with the room-full close code.
    let mut raw = WsClient::connect(&c.raw_url(room)).await;
    let _error_notice = raw.recv_text().await;
    match raw.recv().await {
        Received::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), 4409),
        other => panic!("expected close 4409, got {other:?}"),
    }
    // Once a place frees, the third node admits its peer.
    pb.send_json(json!({"command":"leave","streamId":room}))
        .await;
    assert_eq!(pb.recv_json().await["definition"], "leaved");
    assert_eq!(pa.recv_json().await["command"], "stop");
    pc.send_json(ant_join(room)).await;
    assert_eq!(pc.recv_json().await["definition"], "joined");
    assert_eq!(pa.recv_json().await["command"], "start");
}

/// Joiners racing for one room on two nodes: exactly two get in, whatever the interleaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_joins_on_two_nodes_never_overfill_a_room() {
    let (_redis, a, b) = two_nodes().await;
    for round in 0..10 {
        let room = format!("cluster-race-{round}");
        let mut peers = Vec::new();
        for i in 0..6 {
            let url = if i % 2 == 0 {
                a.ant_url("LiveApp")
            } else {
                b.ant_url("LiveApp")
            };
            peers.push(WsClient::connect(&url).await);
        }
        let join = ant_join(&room);
        futures_util::future::join_all(peers.iter_mut().map(|p| p.send_json(join.clone()))).await;
        let mut joined = Vec::new();
        for (i, p) in peers.iter_mut().enumerate() {
            let first = p.recv_json().await;
            match first["definition"].as_str() {
                Some("joined") => joined.push(i),
                Some("NoSpaceForNewPeer") => {}
                _ => panic!("round {round}: a peer's first frame is {first}"),
            }
        }
        assert_eq!(
            joined.len(),
            2,
            "round {round}: exactly two peers get into the room"
        );
        // The pair is told once: one `start`, to one of the two; nobody else hears anything.
        let mut starts = 0;
        for (i, p) in peers.iter_mut().enumerate() {
            if joined.contains(&i)
                && let Ok(frame) =
                    tokio::time::timeout(Duration::from_millis(300), p.recv_json()).await
            {
                assert_eq!(frame["command"], "start", "round {round}: {frame}");
                starts += 1;
            }
            p.expect_silence(20).await;
        }
        assert_eq!(starts, 1, "round {round}: one start for the pair");
    }
}

/// Sends `n` numbered frames from `from`, then reads `n` frames and checks nothing more comes.
async fn exchange(peer: &mut WsClient, from: &str, n: usize) -> Vec<String> {
    for i in 0..n {
        peer.send_text(&format!(r#"{{"seq":{i},"from":"{from}"}}"#))
            .await;
    }
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(peer.recv_text().await);
    }
    peer.expect_silence(300).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_messages_across_nodes_arrive_in_order_exactly_once() {
    let (_redis, a, b) = two_nodes().await;
    let room = "cluster-order";
    let mut pa = WsClient::connect(&a.raw_url(room)).await;
    pa.recv_text().await;
    let mut pb = WsClient::connect(&b.raw_url(room)).await;
    pb.recv_text().await;
    pb.recv_text().await;
    pa.recv_text().await;
    const N: usize = 1000;
    let (at_a, at_b) = tokio::join!(exchange(&mut pa, "a", N), exchange(&mut pb, "b", N));
    let expect = |from: &str| -> Vec<String> {
        (0..N)
            .map(|i| format!(r#"{{"seq":{i},"from":"{from}"}}"#))
            .collect()
    };
    assert_eq!(at_a, expect("b"), "b's messages at a, in order, once");
    assert_eq!(at_b, expect("a"), "a's messages at b, in order, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_peers_leave_and_can_rejoin_elsewhere() {
    let (redis, a, mut b) = two_nodes().await;
    let c = Node::start(&redis.url(), "node-c").await;
    let room = "cluster-kill";
    let (mut pa, pb) = ant_pair(&a.ant_url("LiveApp"), &b.ant_url("LiveApp"), room).await;
    // Mid-call: B is killed without a word.
    b.kill().await;
    let killed = Instant::now();
    let stop = tokio::time::timeout(Duration::from_secs(5), pa.recv_json())
        .await
        .expect("the partner hears of the dead node");
    assert_eq!(
        stop,
        json!({"command":"stop","streamId":room}),
        "the same stop a local leave produces"
    );
    let bound = Duration::from_millis(NODE_TTL_MS + 2 * HEARTBEAT_MS + 500);
    assert!(
        killed.elapsed() <= bound,
        "stop after {:?}, bound {bound:?}",
        killed.elapsed()
    );
    drop(pb);
    // The peer reconnects to node C and re-joins: the room has a place for it again.
    let mut pb2 = WsClient::connect(&c.ant_url("LiveApp")).await;
    pb2.send_json(ant_join(room)).await;
    assert_eq!(pb2.recv_json().await["definition"], "joined");
    assert_eq!(pa.recv_json().await["command"], "start");
    pa.send_json(json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":"v=0"}))
        .await;
    let offer = pb2.recv_json().await;
    assert_eq!(offer["type"], "offer", "{offer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_loss_degrades_then_recovers() {
    let (mut redis, a, b) = two_nodes().await;
    // A local pair on A, set up before the outage.
    let (mut l1, mut l2) =
        ant_pair(&a.ant_url("LiveApp"), &a.ant_url("LiveApp"), "local-before").await;

    // A call across the nodes, set up before the outage.
    let (mut x, mut y) =
        ant_pair(&a.ant_url("LiveApp"), &b.ant_url("LiveApp"), "cross-before").await;

    redis.kill().await;
    a.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    let (_, metrics) = http_get(a.main, "/metrics").await;
    assert!(
        metrics.contains("switchboard_cluster_redis_up 0"),
        "{metrics}"
    );
    let (status, _) = http_get(a.main, "/readyz").await;
    assert_eq!(status, 200, "a degraded node still serves its local rooms");

    // The local call goes on.
    l1.send_json(
        json!({"command":"takeConfiguration","streamId":"local-before","type":"offer","sdp":"v=0"}),
    )
    .await;
    assert_eq!(l2.recv_json().await["type"], "offer");
    // A new local call starts.
    let (mut n1, mut n2) =
        ant_pair(&a.ant_url("LiveApp"), &a.ant_url("LiveApp"), "local-during").await;
    n2.send_json(json!({"command":"takeConfiguration","streamId":"local-during","type":"answer","sdp":"v=0"}))
        .await;
    assert_eq!(n1.recv_json().await["type"], "answer");

    redis.restart().await;
    a.wait_health("cluster: ok", Duration::from_secs(5)).await;
    b.wait_health("cluster: ok", Duration::from_secs(5)).await;
    let (_, metrics) = http_get(a.main, "/metrics").await;
    assert!(
        metrics.contains("switchboard_cluster_redis_up 1"),
        "{metrics}"
    );
    // Redis came back empty: both nodes re-assert their members and keep their proxies, so the
    // call that spans them goes on (tests/tests/cluster_redis_loss.rs counts every frame).
    x.send_json(
        json!({"command":"takeConfiguration","streamId":"cross-before","type":"offer","sdp":"v=0"}),
    )
    .await;
    assert_eq!(y.recv_json().await["type"], "offer");
    y.send_json(json!({"command":"takeConfiguration","streamId":"cross-before","type":"answer","sdp":"v=0"}))
        .await;
    assert_eq!(x.recv_json().await["type"], "answer");
    // The local call is untouched.
    l2.send_json(json!({"command":"takeCandidate","streamId":"local-before","label":0,"id":"0","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}))
        .await;
    assert_eq!(l1.recv_json().await["command"], "takeCandidate");
    // A's local members are registered again: the room is full for a peer on B.
    let mut third = WsClient::connect(&b.ant_url("LiveApp")).await;
    third.send_json(ant_join("local-during")).await;
    assert_eq!(third.recv_json().await["definition"], "NoSpaceForNewPeer");
    // Cross-node calls work again.
    let (ta, tb) = ant_call(
        &a.ant_url("LiveApp"),
        &b.ant_url("LiveApp"),
        "after-recovery",
    )
    .await;
    assert!(ta[1].contains(r#""command":"start""#), "{ta:?}");
    assert!(tb[1].contains(r#""type":"offer""#), "{tb:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_config_is_checked() {
    let bad = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["raw"]
[cluster]
redis_url = "http://localhost"
node_id = "bad id"
heartbeat_interval_ms = 1000
node_ttl_ms = 1500
[[plugin]]
type = "room-router"
"#;
    let text = switchboard::GatewayConfig::from_toml(bad)
        .unwrap_err()
        .to_string();
    for key in [
        "cluster.redis_url",
        "cluster.node_id",
        "cluster.node_ttl_ms",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let unknown = bad.replace("node_ttl_ms = 1500", "node_tll_ms = 5000");
    assert!(switchboard::GatewayConfig::from_toml(&unknown).is_err());
}

/// A `left` frame lost on the way (here: the record removed behind the nodes' back, as a leave
/// during a Redis hiccup leaves it) is repaired from Redis: the partner gets its leave signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gone_from_redis_leaves_on_the_other_nodes() {
    let (redis, a, b) = two_nodes().await;
    let room = "cluster-sweep";
    // x stays connected: only its record in Redis goes.
    let (_x, mut y) = ant_pair(&a.ant_url("LiveApp"), &b.ant_url("LiveApp"), room).await;
    let key = format!("switchboard:room:{room}");
    let records = redis.cli(&["LRANGE", &key, "0", "-1"]).await;
    let x_record = records
        .lines()
        .find(|r| r.starts_with("node-a@"))
        .unwrap_or_else(|| panic!("no node-a record in {records}"))
        .to_owned();
    assert_eq!(redis.cli(&["LREM", &key, "0", &x_record]).await.trim(), "1");
    let stop = tokio::time::timeout(Duration::from_millis(4 * HEARTBEAT_MS + 500), y.recv_json())
        .await
        .expect("the partner on B is told within a few heartbeats");
    assert_eq!(stop, json!({"command":"stop","streamId":room}));
}

/// A node that stops gracefully (SIGTERM) hands its peers' leaves to the other nodes at once:
/// its own peers get `server_will_stop`, their partners `stop`, and the node is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_tells_partners_on_other_nodes() {
    let (redis, a, mut b) = two_nodes().await;
    let room = "cluster-drain";
    let (mut x, mut y) = ant_pair(&a.ant_url("LiveApp"), &b.ant_url("LiveApp"), room).await;
    let (_, ()) = tokio::join!(
        async {
            assert_eq!(y.recv_json().await["definition"], "server_will_stop");
        },
        b.terminate()
    );
    assert_eq!(
        x.recv_json().await,
        json!({"command":"stop","streamId":room})
    );
    // B removed its records and heartbeat on the way out.
    let key = format!("switchboard:room:{room}");
    let records = redis.cli(&["LRANGE", &key, "0", "-1"]).await;
    assert!(!records.contains("node-b@"), "{records}");
    let nodes = redis.cli(&["SMEMBERS", "switchboard:nodes"]).await;
    assert!(!nodes.contains("node-b@"), "{nodes}");
}

/// A node whose Redis is not there yet serves local calls, says so, and joins the cluster by
/// itself when Redis comes up (registering the members it admitted meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_without_redis_and_joins_when_it_comes() {
    let mut redis = RedisServer::reserve();
    let a = Node::spawn(
        &switchboard_tests::cluster::node_config(&redis.url(), "node-a"),
        "node-a",
    )
    .await;
    a.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    let (_p1, _p2) = ant_pair(&a.ant_url("LiveApp"), &a.ant_url("LiveApp"), "early").await;

    redis.restart().await;
    a.wait_health("cluster: ok", Duration::from_secs(5)).await;
    let records = redis
        .cli(&["LRANGE", "switchboard:room:early", "0", "-1"])
        .await;
    assert_eq!(
        records.lines().count(),
        2,
        "both members registered: {records}"
    );
    let b = Node::start(&redis.url(), "node-b").await;
    let mut third = WsClient::connect(&b.ant_url("LiveApp")).await;
    third.send_json(ant_join("early")).await;
    assert_eq!(
        third.recv_json().await["definition"],
        "NoSpaceForNewPeer",
        "the room admitted before Redis came counts on the other node"
    );
}

/// `switchboard_cluster_frames_total{direction="dropped"}` on `node` (0 when never counted).
async fn dropped_frames(node: &Node) -> u64 {
    let (_, metrics) = http_get(node.main, "/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"switchboard_cluster_frames_total{direction="dropped"} "#))
        .map_or(0, |v| v.parse().expect("a count"))
}

/// `PUBLISH channel <bytes>` through `redis-cli -x` (the payload from stdin, binary-safe).
async fn publish_bytes(redis: &RedisServer, channel: &str, payload: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "-x", "PUBLISH", channel])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    let mut stdin = child.stdin.take().expect("a piped stdin");
    stdin
        .write_all(payload)
        .await
        .expect("redis-cli reads its stdin");
    drop(stdin);
    let out = child.wait_with_output().await.expect("redis-cli ends");
    assert!(out.status.success(), "redis-cli PUBLISH: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A node of another release (node protocol 3: one frame per message, no bundle) publishes
/// into a node's channel: each of its messages is refused by version and counted as dropped
/// once, nothing reaches a peer, and the call across the nodes goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_another_node_protocol_version_are_refused_and_counted() {
    let (redis, a, b) = two_nodes().await;
    let room = "versions";
    let (mut pa, mut pb) = switchboard_tests::cluster::ant_pair(&a, &b, room).await;
    switchboard_tests::cluster::both_ways(&mut pa, &mut pb, room, 0, 3).await;
    assert_eq!(dropped_frames(&b).await, 0);
    let channels = redis
        .cli(&["PUBSUB", "CHANNELS", "switchboard:node:node-b@*"])
        .await;
    let channel = channels.lines().next().expect("node-b's channel").trim();
    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/golden/cluster/v3/forward_ant_offer.frame"
    ))
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            publish_bytes(&redis, channel, &old).await,
            "1",
            "node-b hears it"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while dropped_frames(&b).await < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        dropped_frames(&b).await,
        3,
        "each refused message counted once"
    );
    pb.expect_silence(200).await;
    switchboard_tests::cluster::both_ways(&mut pa, &mut pb, room, 3, 5).await;
    assert_eq!(dropped_frames(&b).await, 3);
    assert_eq!(dropped_frames(&a).await, 0);
}
