//! Receiver acknowledgements and the sender's replay window, with a real `redis-server`, two
//! real `switchboard` nodes and real WebSocket clients counting every frame.
//!
//! Redis is made to lose a frame *after* `PUBLISH` counted its subscriber: the subscriber's
//! output buffer limit is lowered to 1 KiB (`CONFIG SET client-output-buffer-limit`) just
//! before one 24 KB offer crosses (Redis counts a subscriber's output past the 16 KiB of its
//! own buffer), so Redis closes the receiving node's subscription with the
//! offer in its buffer, then the limit is restored. The sender saw `PUBLISH` answer 1; only the
//! receiver's acknowledgement (or its request for what it lacks) can bring the offer back. With
//! the sender's window large enough the offer arrives once, in order, before the candidates
//! sent after it; with a window too small to hold it the call ends on both sides with Ant's
//! leave signal and the lost frame is counted once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::cluster::{
    NODE_TTL_MS, Node, RedisServer, across_a_disruption, ant_pair, both_ways, expect_candidates,
    frames, send_candidates, start_node_with,
};
use switchboard_tests::{Received, WsClient};

/// A test node with `extra` lines added to its `[cluster]` table.
async fn start_node(redis: &RedisServer, name: &str, extra: &str) -> Node {
    start_node_with(redis, name, extra, "").await
}

/// The client ids of Redis's pub/sub connections (one subscription per node).
async fn subscribers(redis: &RedisServer) -> Vec<String> {
    redis
        .cli(&["CLIENT", "LIST", "TYPE", "pubsub"])
        .await
        .lines()
        .filter_map(|l| l.split(' ').next()?.strip_prefix("id="))
        .map(str::to_owned)
        .collect()
}

/// An Ant offer of about 24 KB (a browser's SDP with many codecs and tracks): larger than the
/// 16 KiB Redis writes into a client's own buffer before its output limit counts anything.
fn big_offer(room: &str) -> Value {
    let sdp = format!("v=0\r\n{}", "a=x-filler:0123456789abcdef\r\n".repeat(840));
    assert!(sdp.len() > 24_000);
    json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":sdp})
}

/// `pa` sends the big offer, then candidates `first..first + 5`, while Redis closes any
/// subscriber whose output passes 1 KiB: the offer is counted as delivered to B's subscription
/// and never written to it. The limit is restored once Redis has closed that subscription.
async fn lose_the_offer(redis: &RedisServer, pa: &mut WsClient, room: &str, first: usize) {
    let limit = redis
        .cli(&["CONFIG", "GET", "client-output-buffer-limit"])
        .await;
    let pubsub = limit
        .lines()
        .skip_while(|l| *l != "client-output-buffer-limit")
        .nth(1)
        .unwrap()
        .split(" pubsub ")
        .nth(1)
        .unwrap()
        .to_owned();
    let before = subscribers(redis).await;
    assert_eq!(before.len(), 2, "one subscription per node");
    let ok = redis
        .cli(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1kb 0 0",
        ])
        .await;
    assert_eq!(ok.trim(), "OK");
    pa.send_json(big_offer(room)).await;
    send_candidates(pa, room, first, 5).await;
    // Redis closed B's subscriber (A's got nothing large): one of the two is gone.
    for _ in 0..200 {
        let now = subscribers(redis).await;
        if before.iter().filter(|id| now.contains(id)).count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let now = subscribers(redis).await;
    assert_eq!(
        before.iter().filter(|id| now.contains(id)).count(),
        1,
        "Redis closed the receiving node's subscriber"
    );
    let ok = redis
        .cli(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            &format!("pubsub {pubsub}"),
        ])
        .await;
    assert_eq!(ok.trim(), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_redis_took_but_never_wrote_arrives_once_in_order() {
    let redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "lost-offer";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 5).await;

    lose_the_offer(&redis, &mut pa, room, 5).await;
    b.wait_health("cluster: ok", Duration::from_secs(5)).await;
    // The offer Redis dropped comes back, once, before the candidates sent after it.
    let offer = pb.recv_json().await;
    assert_eq!(offer["command"], "takeConfiguration", "{offer}");
    assert_eq!(offer["type"], "offer");
    assert_eq!(offer["sdp"], big_offer(room)["sdp"], "the offer, whole");
    expect_candidates(&mut pb, room, 5, 5).await;
    pb.expect_silence(NODE_TTL_MS * 2).await;
    pa.expect_silence(50).await;
    // The call goes on both ways, nothing counted as dropped on either node.
    both_ways(&mut pa, &mut pb, room, 10, 10).await;
    assert_eq!(frames(&a, "dropped").await, 0, "nothing dropped on A");
    assert_eq!(frames(&b, "dropped").await, 0, "nothing dropped on B");
}

/// Reads Ant's leave signal for `room` on `peer`, skipping nothing else.
async fn expect_stop(peer: &mut WsClient, room: &str) {
    assert_eq!(
        peer.recv_json().await,
        json!({"command":"stop","streamId":room}),
        "the partner left, in Ant's own words"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_gone_from_a_full_window_ends_the_call_on_both_sides() {
    let redis = RedisServer::start().await;
    // A's window cannot hold the 24 KB offer: it goes as soon as Redis takes it.
    let a = start_node(&redis, "node-a", "replay_window_bytes = 1024").await;
    let b = start_node(&redis, "node-b", "").await;
    let room = "window-overflow";
    let (mut pa, mut pb) = ant_pair(&a, &b, room).await;
    both_ways(&mut pa, &mut pb, room, 0, 5).await;

    lose_the_offer(&redis, &mut pa, room, 5).await;
    // A cannot send the offer again: its peer gets its partner's `stop`, then is closed; B's
    // peer gets `stop` (A's peer left); neither gets the offer or a candidate sent after it.
    expect_stop(&mut pa, room).await;
    loop {
        match pa.recv().await {
            Received::Closed(_) => break,
            Received::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["command"], "error", "only the kick's notice: {v}");
            }
        }
    }
    expect_stop(&mut pb, room).await;
    pb.expect_silence(NODE_TTL_MS * 2).await;
    // What the call lost counted once, on the node that lost it.
    assert_eq!(
        frames(&a, "dropped").await,
        6,
        "the offer and the five candidates sent after it (the ended call's), each counted once"
    );
    // The room takes a new pair at once.
    let mut pc = WsClient::connect(&a.ant_url("LiveApp")).await;
    pc.send_json(switchboard_tests::cluster::ant_join(room))
        .await;
    assert_eq!(pc.recv_json().await["definition"], "joined");
    assert_eq!(pb.recv_json().await["command"], "start");
    both_ways(&mut pc, &mut pb, room, 0, 5).await;
}

/// Redis closes both nodes' subscriptions (`CLIENT KILL TYPE pubsub`) while candidates stream
/// both ways: whatever was in their output buffers, counted by `PUBLISH` and never written, is
/// gone from Redis. Every frame still arrives, once, in order, nothing more comes, and nothing
/// is counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_redis_closes_mid_burst_lose_no_frame() {
    let redis = RedisServer::start().await;
    let a = start_node(&redis, "node-a", "").await;
    let b = start_node(&redis, "node-b", "").await;
    let _peers = across_a_disruption(&a, &b, "killed-subscribers", NODE_TTL_MS * 2, async || {
        let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
        assert_eq!(killed.trim(), "2", "both subscriptions closed");
    })
    .await;
    assert_eq!(frames(&a, "dropped").await, 0, "nothing dropped on A");
    assert_eq!(frames(&b, "dropped").await, 0, "nothing dropped on B");
}
