//! A cluster whose Redis goes away mid-call: a real `redis-server` SIGKILLed and started again
//! empty (`--save "" --appendonly no`, the same port), two real `switchboard` nodes, real
//! WebSocket clients. Every frame each peer receives is counted: after an empty restart the
//! call across nodes goes on with nothing lost, frames sent while Redis is down arrive in order
//! once it is back, and an outage past `replay_window_ms` ends the call for both peers
//! explicitly, with the room free again. A Redis killed mid-burst loses no frame either.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::cluster::{
    HEARTBEAT_MS, NODE_TTL_MS, Node, RedisServer, across_a_disruption, ant_join, ant_pair,
    both_ways, expect_candidates, frames, send_candidates, start_node_with,
};
use switchboard_tests::{Received, WsClient, http_get, http_with_headers};

const TOKEN: &str = "cluster-admin-token-0123456789";

/// A test node with the admin API, and `extra` lines added to its `[cluster]` table.
async fn start_node(redis: &RedisServer, name: &str, extra: &str) -> Node {
    let admin = format!("\n[admin]\ntoken = \"{TOKEN}\"\n");
    start_node_with(redis, name, extra, &admin).await
}

/// `/api/rooms/{room}` on `node`: the member list.
async fn members(node: &Node, room: &str) -> Vec<Value> {
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http_with_headers(
        node.main,
        "GET",
        &format!("/api/rooms/{room}"),
        &[("Authorization", &auth)],
    )
    .await;
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{body}");
    let room: Value = serde_json::from_str(&body).unwrap();
    room["members"].as_array().unwrap().clone()
}

/// The records Redis lists for `room`.
async fn records(redis: &RedisServer, room: &str) -> Vec<String> {
    redis
        .cli(&["LRANGE", &format!("switchboard:room:{room}"), "0", "-1"])
        .await
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Frames `node` could not deliver (0 when never counted).
async fn dropped(node: &Node) -> u64 {
    frames(node, "dropped").await
}

/// How many `PUBLISH` commands `redis` has run since it started (`INFO commandstats`).
async fn publish_calls(redis: &RedisServer) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]).await;
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Waits until `node` has Redis's reply for `n` published frames: a frame whose reply is lost
/// with the connection is held and published again, so its fate is known only then.
async fn wait_out(node: &Node, n: u64) {
    for _ in 0..200 {
        if frames(node, "out").await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{}: {n} frames never acknowledged", node.name);
}

/// Waits until `node`'s `/metrics` has the line `line`.
async fn wait_metric(node: &Node, line: &str) {
    for _ in 0..200 {
        let (_, metrics) = http_get(node.main, "/metrics").await;
        if metrics.lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{}: /metrics never had `{line}`", node.name);
}

/// A third Ant peer on `node` tries `room`: refused as full.
async fn third_is_refused(node: &Node, room: &str) {
    let mut third = WsClient::connect(&node.ant_url("LiveApp")).await;
    third.send_json(ant_join(room)).await;
    assert_eq!(
        third.recv_json().await["definition"],
        "NoSpaceForNewPeer",
        "{}: the room holds two",
        node.name
    );
}

/// Long enough for any node to take another for dead, and for anti-entropy to act on a
/// missing record (two sweeps): anything wrong would have been sent by then.
const SETTLE_MS: u64 = NODE_TTL_MS * 2 + HEARTBEAT_MS * 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_redis_restart_keeps_a_call_across_nodes() {
    let mut redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "restart-empty";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 20).await;

    // Redis dies and comes back with nothing: no heartbeats, no member records, no locks.
    redis.restart().await;
    assert!(
        records(&redis, room).await.is_empty(),
        "a fresh, empty Redis"
    );
    a.wait_health("cluster: ok", Duration::from_secs(5)).await;
    b.wait_health("cluster: ok", Duration::from_secs(5)).await;

    // The call goes on: every candidate each way, in order, and nothing else (no `stop`),
    // through the grace the nodes give each other and past it.
    both_ways(&mut pa, &mut pb, room, 20, 20).await;
    pa.expect_silence(SETTLE_MS).await;
    pb.expect_silence(50).await;
    both_ways(&mut pa, &mut pb, room, 40, 20).await;

    // Both nodes re-asserted their member: Redis and the admin API show the two true members.
    assert_eq!(records(&redis, room).await.len(), 2, "one record per peer");
    assert_eq!(members(&a, room).await.len(), 2);
    assert_eq!(members(&b, room).await.len(), 2);
    // The room is full for a third peer on either node.
    third_is_refused(&a, room).await;
    third_is_refused(&b, room).await;

    // When a peer leaves, its partner is told and the place frees at once.
    pb.send_json(json!({"command":"leave","streamId":room}))
        .await;
    assert_eq!(pb.recv_json().await["definition"], "leaved");
    assert_eq!(
        pa.recv_json().await,
        json!({"command":"stop","streamId":room})
    );
    let mut third = WsClient::connect(&b.ant_url("LiveApp")).await;
    third.send_json(ant_join(room)).await;
    assert_eq!(third.recv_json().await["definition"], "joined");
    assert_eq!(pa.recv_json().await["command"], "start");
    assert_eq!(dropped(&a).await, 0, "no frame lost on A");
    assert_eq!(dropped(&b).await, 0, "no frame lost on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_while_redis_is_down_arrive_in_order_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "down-frames";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 5).await;

    redis.kill().await;
    a.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    b.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    // Each peer sends while Redis is down: nothing can cross yet, and nothing else comes.
    send_candidates(&mut pa, room, 5, 30).await;
    send_candidates(&mut pb, room, 5, 30).await;
    // Each node holds exactly its peer's 30 frames.
    wait_metric(&a, "switchboard_cluster_frames_held 30").await;
    wait_metric(&b, "switchboard_cluster_frames_held 30").await;
    pa.expect_silence(300).await;
    pb.expect_silence(50).await;

    // Redis returns (empty, well inside the replay window): each peer gets exactly the 30
    // candidates its partner sent, in order, then the call carries on.
    redis.restart().await;
    expect_candidates(&mut pb, room, 5, 30).await;
    expect_candidates(&mut pa, room, 5, 30).await;
    // The 30 frames each node held crossed in bundles: a few `PUBLISH` calls on the restarted
    // server (a bundle that found its receiver not yet subscribed goes again), not one per
    // frame (60 and more before node protocol 4).
    let publishes = publish_calls(&redis).await;
    assert!(
        (2..=8).contains(&publishes),
        "{publishes} PUBLISH calls carried the 60 held frames"
    );
    pa.expect_silence(SETTLE_MS).await;
    pb.expect_silence(50).await;
    both_ways(&mut pa, &mut pb, room, 35, 10).await;
    wait_metric(&a, "switchboard_cluster_frames_held 0").await;
    wait_metric(&b, "switchboard_cluster_frames_held 0").await;
    assert_eq!(dropped(&a).await, 0, "no frame lost on A");
    assert_eq!(dropped(&b).await, 0, "no frame lost on B");
    assert_eq!(records(&redis, room).await.len(), 2);
}

/// Reads what `peer` gets once its call across nodes is ended: its partner's `stop`, then the
/// close of its own connection (the room is given up on both nodes).
async fn expect_call_ended(peer: &mut WsClient, room: &str) {
    assert_eq!(
        peer.recv_json().await,
        json!({"command":"stop","streamId":room}),
        "the partner left, in Ant's own words"
    );
    loop {
        match peer.recv().await {
            Received::Closed(_) => return,
            Received::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(
                    v["command"], "error",
                    "only the kick's notice before the close: {v}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_past_the_replay_window_ends_the_call_for_both_peers() {
    let mut redis = RedisServer::start().await;
    let window = "replay_window_ms = 1000";
    let a = start_node(&redis, "node-a", window).await;
    let b = start_node(&redis, "node-b", window).await;
    let room = "long-outage";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 1).await;
    // B published `joined`, `start` and a candidate; A a candidate.
    wait_out(&b, 3).await;
    wait_out(&a, 1).await;

    redis.kill().await;
    a.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    send_candidates(&mut pa, room, 1, 7).await;
    send_candidates(&mut pb, room, 1, 4).await;
    // Past the window both peers are told, neither gets a frame of the other.
    expect_call_ended(&mut pa, room).await;
    expect_call_ended(&mut pb, room).await;
    assert_eq!(dropped(&a).await, 7, "A's held frames, each counted once");
    assert_eq!(dropped(&b).await, 4, "B's held frames, each counted once");

    // Redis returns empty: no phantom member anywhere, the room takes a new pair at once.
    redis.restart().await;
    a.wait_health("cluster: ok", Duration::from_secs(5)).await;
    b.wait_health("cluster: ok", Duration::from_secs(5)).await;
    assert!(members(&a, room).await.is_empty());
    assert!(members(&b, room).await.is_empty());
    let (mut qa, mut qb) = ant_pair(&b, &a, room).await;
    both_ways(&mut qa, &mut qb, room, 0, 5).await;
    assert_eq!(records(&redis, room).await.len(), 2);
    third_is_refused(&a, room).await;
}

/// `n` numbered raw frames from `from`, as the peer sends them.
fn numbered(from: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!(r#"{{"seq":{i},"from":"{from}"}}"#))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_frames_sent_across_an_empty_restart_arrive_verbatim_in_order() {
    let mut redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "raw-restart";
    let mut pa = WsClient::connect(&a.raw_url(room)).await;
    pa.recv_text().await;
    let mut pb = WsClient::connect(&b.raw_url(room)).await;
    pb.recv_text().await;
    pb.recv_text().await;
    pa.recv_text().await;

    redis.kill().await;
    a.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    b.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    for text in numbered("a", 0..50) {
        pa.send_text(&text).await;
    }
    for text in numbered("b", 0..50) {
        pb.send_text(&text).await;
    }
    redis.restart().await;
    // Exactly the 50 frames of the partner, byte for byte, in order; then nothing else.
    let mut at_b = Vec::new();
    let mut at_a = Vec::new();
    for _ in 0..50 {
        at_b.push(pb.recv_text().await);
    }
    for _ in 0..50 {
        at_a.push(pa.recv_text().await);
    }
    assert_eq!(at_b, numbered("a", 0..50));
    assert_eq!(at_a, numbered("b", 0..50));
    pa.expect_silence(SETTLE_MS).await;
    pb.expect_silence(50).await;
    // And the call goes on.
    for text in numbered("a", 50..60) {
        pa.send_text(&text).await;
    }
    for _ in 50..60 {
        at_b.push(pb.recv_text().await);
    }
    assert_eq!(at_b, numbered("a", 0..60));
    assert_eq!(dropped(&a).await, 0);
    assert_eq!(dropped(&b).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_that_outlives_the_node_ttl_keeps_the_call() {
    let redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "frozen";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 5).await;

    // Frozen (SIGSTOP) with its data: every heartbeat key expires while it is stopped, so when
    // it resumes each node finds the other's key gone.
    redis.signal("STOP");
    a.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    b.wait_health("cluster: degraded", Duration::from_secs(3))
        .await;
    send_candidates(&mut pa, room, 5, 15).await;
    send_candidates(&mut pb, room, 5, 15).await;
    pa.expect_silence(NODE_TTL_MS * 2).await;
    redis.signal("CONT");

    // Nobody is taken for dead: the 15 candidates each way arrive in order, once, and the call
    // carries on past the grace.
    expect_candidates(&mut pb, room, 5, 15).await;
    expect_candidates(&mut pa, room, 5, 15).await;
    pa.expect_silence(SETTLE_MS).await;
    pb.expect_silence(50).await;
    both_ways(&mut pa, &mut pb, room, 20, 5).await;
    assert_eq!(records(&redis, room).await.len(), 2);
    assert_eq!(dropped(&a).await, 0);
    assert_eq!(dropped(&b).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_taken_for_dead_ends_its_calls_and_the_room_frees() {
    let redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "taken-for-dead";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;

    // B freezes past the node TTL: A takes it for dead, removes its member, tells its partner.
    b.signal("STOP");
    assert_eq!(
        pa.recv_json().await,
        json!({"command":"stop","streamId":room})
    );
    // B resumes and finds it was reaped: its side of the call ends too (stop, then closed), so
    // neither node keeps a member the other has forgotten.
    b.signal("CONT");
    expect_call_ended(&mut pb, room).await;
    for _ in 0..200 {
        if records(&redis, room).await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let left = records(&redis, room).await;
    assert_eq!(left.len(), 1, "only A's peer is left: {left:?}");
    assert!(members(&b, room).await.is_empty(), "no phantom on B");
    assert_eq!(members(&a, room).await.len(), 1);
    // The place is free: a new peer on B joins A's peer, and they talk.
    let mut pc = WsClient::connect(&b.ant_url("LiveApp")).await;
    pc.send_json(ant_join(room)).await;
    assert_eq!(pc.recv_json().await["definition"], "joined");
    assert_eq!(pa.recv_json().await["command"], "start");
    both_ways(&mut pa, &mut pc, room, 0, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_for_a_dead_node_are_held_then_counted_once_when_it_is_found_dead() {
    let redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let mut b = start_node(&redis, "node-b", "").await;
    let room = "dead-receiver";
    let (mut pa, _pb) = ant_pair(&a, &b, room).await;
    b.kill().await;
    // Once Redis has seen B's subscription go, nothing A publishes for B reaches anyone.
    for _ in 0..200 {
        if redis
            .cli(&["PUBSUB", "CHANNELS", "switchboard:node:node-b*"])
            .await
            .trim()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    send_candidates(&mut pa, room, 0, 10).await;
    // A holds them (no subscriber) until it finds B dead: then its peer gets `stop` and the
    // ten frames are counted as dropped, once each.
    wait_metric(&a, "switchboard_cluster_frames_held 10").await;
    assert_eq!(
        pa.recv_json().await,
        json!({"command":"stop","streamId":room})
    );
    wait_metric(&a, "switchboard_cluster_frames_held 0").await;
    assert_eq!(dropped(&a).await, 10);
    pa.expect_silence(300).await;
    assert_eq!(dropped(&a).await, 10, "counted once");
    // Waiting for B's subscription (PUBSUB NUMSUB each retry) never cost A its Redis link.
    let (_, metrics) = http_get(a.main, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "switchboard_cluster_redis_up 1")
    );
    assert!(
        !metrics.contains("switchboard_cluster_redis_up 0"),
        "{metrics}"
    );
}

/// An Ant call across two nodes on `redis` in `room`: a burst both ways with `disrupt` run
/// while it crosses ([`across_a_disruption`]), then the call going on, nothing counted as
/// dropped, and both records in Redis.
async fn mid_burst(
    redis: &mut RedisServer,
    room: &'static str,
    disrupt: impl AsyncFnOnce(&mut RedisServer),
) {
    let a = start_node(redis, "node-a", "").await;
    let b = start_node(redis, "node-b", "").await;
    // The peers stay connected for the checks below: their records are still in Redis.
    let _peers = across_a_disruption(&a, &b, room, SETTLE_MS, async || disrupt(redis).await).await;
    assert_eq!(dropped(&a).await, 0, "no frame lost on A");
    assert_eq!(dropped(&b).await, 0, "no frame lost on B");
    assert_eq!(records(redis, room).await.len(), 2);
}

/// Redis SIGKILLed while frames stream both ways between two nodes (some published and not yet
/// read by the receiving node, some queued, some held), then started again empty on its port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_killed_mid_burst_loses_no_frame() {
    let mut redis = RedisServer::start().await;
    mid_burst(&mut redis, "mid-burst", async |redis| redis.restart().await).await;
}

/// Redis emptied under live connections (`FLUSHALL`) mid-burst: each node finds the epoch gone
/// on its next heartbeat and subscribes again while the other's frames keep coming. A
/// subscription that is dropped is unsubscribed and read to its end first: what Redis handed
/// it (its sender saw `PUBLISH` reach a subscriber and will not send it again) is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_emptied_mid_burst_loses_no_frame() {
    let mut redis = RedisServer::start().await;
    mid_burst(&mut redis, "flushed-burst", async |redis| {
        let ok = redis.cli(&["FLUSHALL"]).await;
        assert_eq!(ok.trim(), "OK");
    })
    .await;
}
