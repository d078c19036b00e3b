//! With `[cluster]` the sfu plugin claims a conference room's media home in Redis; that claim
//! is made before the gateway locks the room (the dispatcher's prefetch), so a Redis that stops
//! answering (SIGSTOP: its connections stay open, nothing is answered) delays the `publish`
//! that needs the claim and nothing else: requests of the same room that need no Redis, and a
//! participant of another room, are answered at once all the while. A claim the decision did
//! not use (the conference plugin refused the publish first) is given back. One real node with
//! two runtime workers, the conference and sfu plugins, a real `redis-server` frozen and
//! resumed, real WebSocket clients.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::WsClient;
use switchboard_tests::cluster::{
    HEARTBEAT_MS, NODE_TTL_MS, Node, RedisServer, node_config, participant,
};

/// Longer than a probe may take: the claim's wait is the 2 s command timeout, so a probe that
/// waited behind it under the room's lock takes about that long.
const PROBE_BOUND: Duration = Duration::from_millis(1500);
/// The longest the frozen Redis may keep the publish unanswered before the test gives up (the
/// catalog's reads and the claim, each bounded by the command timeout).
const PUBLISH_BOUND: Duration = Duration::from_secs(30);

/// A node with the conference and sfu plugins before the router, and a 2 s command timeout
/// (the longest one Redis call waits), so that a claim waiting under the room's lock would
/// hold it for seconds.
fn config(redis: &RedisServer) -> String {
    let base = node_config(&redis.url(), "media-stall");
    let heartbeat = format!("heartbeat_interval_ms = {HEARTBEAT_MS}");
    let ttl = format!("node_ttl_ms = {NODE_TTL_MS}");
    assert!(base.contains(&heartbeat) && base.contains(&ttl));
    base.replace(&heartbeat, "heartbeat_interval_ms = 2000")
        .replace(&ttl, "node_ttl_ms = 5000")
        .replace(
        "[[plugin]]\ntype = \"room-router\"",
        "[[plugin]]\ntype = \"conference\"\n\n[[plugin]]\ntype = \"sfu\"\n[plugin.settings]\nudp_bind = \"127.0.0.1:0\"\n\n[[plugin]]\ntype = \"room-router\"",
    )
}

/// `getSubscriberCount` of `room` by `c` (decided from the node's memory, under the room's
/// lock): its answer and how long it took.
async fn probe(c: &mut WsClient, room: &str) -> (Value, Duration) {
    let sent = Instant::now();
    c.send_json(json!({"command":"getSubscriberCount","streamId":room}))
        .await;
    let answer = c.recv_json().await;
    (answer, sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_delays_only_the_publish_that_claims_the_rooms_media_home() {
    let redis = RedisServer::start().await;
    let node = Node::spawn_env(
        &config(&redis),
        "media-stall",
        &[("TOKIO_WORKER_THREADS", "2")],
    )
    .await;
    node.wait_health("cluster: ok", Duration::from_secs(10))
        .await;
    let (room, other) = ("conf-x", "conf-y");
    let mut stays = participant(&node, room, "stays").await;
    let mut elsewhere = participant(&node, other, "elsewhere").await;
    let mut publisher = WsClient::connect(&node.ant_url("LiveApp")).await;

    redis.signal("STOP");
    publisher
        .send_json(json!({"command":"publish","streamId":"cam","subscriberId":"","subscriberCode":"","streamName":"cam","mainTrack":room,"video":true,"audio":true,"metaData":"","role":""}))
        .await;
    // Probe the rooms, one request at a time, until the publish is answered: its claim of the
    // room's home (whenever it is made) falls between two probes. The publish is dispatched
    // in the room of its stream id (that room's lock is the one its hook runs under); its
    // media is homed by its main track, the conference room.
    let probed = [(room, 1), ("cam", 0), (other, 1)];
    let started = Instant::now();
    let mut slowest = [Duration::ZERO; 3];
    let mut probes = 0;
    let answer = loop {
        for (i, (r, members)) in probed.into_iter().enumerate() {
            let c = if r == other {
                &mut elsewhere
            } else {
                &mut stays
            };
            let (count, took) = probe(c, r).await;
            assert_eq!(count["definition"], "subscriberCount", "{count}");
            assert_eq!(count["count"], members, "{count}");
            slowest[i] = slowest[i].max(took);
        }
        probes += 1;
        if let Ok(answer) =
            tokio::time::timeout(Duration::from_millis(100), publisher.recv_json()).await
        {
            break answer;
        }
        assert!(
            started.elapsed() < PUBLISH_BOUND,
            "the publish was not answered within {PUBLISH_BOUND:?} of a frozen Redis"
        );
    };
    let waited = started.elapsed();
    redis.signal("CONT");
    eprintln!(
        "publish answered after {} ms of a frozen Redis; {probes} probes of each room, slowest (ms): {}",
        waited.as_millis(),
        probed
            .iter()
            .zip(slowest)
            .map(|((r, _), d)| format!("{r} {}", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Redis did not answer the claim: the room is served here (the cluster is degraded).
    assert_eq!(answer, json!({"command":"start","streamId":"cam"}));
    for ((r, _), took) in probed.iter().zip(slowest) {
        assert!(
            took < PROBE_BOUND,
            "a request in room {r} waited {took:?} while the publish waited on Redis"
        );
    }
    // Nothing else came meanwhile.
    stays.expect_silence(200).await;
    elsewhere.expect_silence(200).await;
}

/// The media-home keys in Redis, sorted.
async fn homes(redis: &RedisServer) -> Vec<String> {
    let keys = redis.cli(&["--scan", "--pattern", "*media-home:*"]).await;
    let mut keys: Vec<String> = keys.lines().map(str::to_owned).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_claim_the_refused_publish_did_not_use_is_given_back() {
    let redis = RedisServer::start().await;
    // Publishing through LiveApp takes a one-time token; any other application is open.
    let apps = "[[antmedia_app]]\nname = \"LiveApp\"\npublish = \"one_time\"\n\n[[antmedia_app]]\nname = \"*\"\n\n[[plugin]]\ntype = \"conference\"";
    let config = config(&redis).replacen("[[plugin]]\ntype = \"conference\"", apps, 1);
    let node = Node::spawn(&config, "media-claim").await;
    node.wait_health("cluster: ok", Duration::from_secs(10))
        .await;
    let publish = |stream: &str, room: &str| json!({"command":"publish","streamId":stream,"subscriberId":"","subscriberCode":"","streamName":stream,"mainTrack":room,"video":true,"audio":true,"metaData":"","role":""});

    // Without its token: the claim made before the room's lock is not used, and given back.
    let mut refused = WsClient::connect(&node.ant_url("LiveApp")).await;
    refused.send_json(publish("cam-z", "conf-z")).await;
    let answer = refused.recv_json().await;
    assert_eq!(answer["command"], "error", "{answer}");
    // Through the open application: served here, and the claim stays.
    let mut served = WsClient::connect(&node.ant_url("OpenApp")).await;
    served.send_json(publish("cam-o", "conf-open")).await;
    assert_eq!(
        served.recv_json().await,
        json!({"command":"start","streamId":"cam-o"})
    );
    // The give-back follows the refusal's answer (after the room's lock is released); a claim
    // left behind would live for `node_ttl_ms` (5 s), longer than this wait.
    let deadline = Instant::now() + Duration::from_secs(2);
    let keys = loop {
        let keys = homes(&redis).await;
        if keys.len() == 1 || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        keys.len(),
        1,
        "only the served room keeps its claim: {keys:?}"
    );
    assert!(keys[0].ends_with(":media-home:conf-open"), "{keys:?}");
}
