//! The conference plugin decides with the cluster's catalog in Redis (a room's dates, the
//! other nodes' streams, one-time tokens), with blocking calls bounded by the command timeout.
//! A Redis that stops answering (SIGSTOP: its connections stay open, nothing is answered) must
//! cost those requests their wait and nothing more: the other rooms of the node go on. One real
//! node with two runtime workers, a real `redis-server` frozen and resumed, real WebSocket
//! clients; every delivery counted. Those reads happen before the room is locked, so a request
//! waiting on them holds neither its own room nor the conference state.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use switchboard_tests::WsClient;
use switchboard_tests::cluster::{
    HEARTBEAT_MS, NODE_TTL_MS, Node, RedisServer, ant_pair, node_config, numbered_candidate,
    participant,
};

/// Conference requests waiting on the frozen Redis at once: more than the node's workers.
const ASKERS: usize = 4;
/// Requests each of them sends.
const ASKS: usize = 3;
/// Candidates the call in another room relays while Redis is frozen.
const CANDIDATES: usize = 50;

/// A node with the conference plugin and a 2 s command timeout (the longest the catalog waits
/// per call), so that requests waiting on a frozen Redis would hold workers for seconds.
fn config(redis: &RedisServer) -> String {
    let base = node_config(&redis.url(), "stall");
    let heartbeat = format!("heartbeat_interval_ms = {HEARTBEAT_MS}");
    let ttl = format!("node_ttl_ms = {NODE_TTL_MS}");
    let router = "[[plugin]]\ntype = \"room-router\"";
    assert!(base.contains(&heartbeat) && base.contains(&ttl) && base.contains(router));
    base.replace(&heartbeat, "heartbeat_interval_ms = 2000")
        .replace(&ttl, "node_ttl_ms = 5000")
        .replace(
            router,
            "[[plugin]]\ntype = \"conference\"\n\n[[plugin]]\ntype = \"room-router\"",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_does_not_stall_other_rooms_on_the_node() {
    let redis = RedisServer::start().await;
    // Two workers whatever the machine has: the requests below outnumber them.
    let node = Node::spawn_env(&config(&redis), "stall", &[("TOKIO_WORKER_THREADS", "2")]).await;
    node.wait_health("cluster: ok", Duration::from_secs(10))
        .await;
    let room = "p2p-call";
    let (mut pa, mut pb) = ant_pair(&node, &node, room).await;
    let mut askers = Vec::new();
    for _ in 0..ASKERS {
        askers.push(WsClient::connect(&node.ant_url("LiveApp")).await);
    }

    redis.signal("STOP");
    // Each asker's conference requests, each in a room of its own, wait on Redis in the hook.
    for (i, asker) in askers.iter_mut().enumerate() {
        for _ in 0..ASKS {
            asker
                .send_json(json!({"command":"getRoomInfo","room":format!("conf-{i}"),"streamId":format!("asker-{i}")}))
                .await;
        }
    }
    // Let them reach the hook before the call sends (a pause, not a measurement).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The call in another room, on the same node, goes on meanwhile: counted while Redis is
    // still frozen (the requests above queue for ASKERS x ASKS x 2 s at least).
    for n in 0..CANDIDATES {
        pa.send_json(numbered_candidate(room, n)).await;
    }
    // Within the clients' own receive timeout (5 s), so a stall is counted, not a panic.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(4500);
    let mut delivered = Vec::new();
    while delivered.len() < CANDIDATES {
        match tokio::time::timeout_at(deadline, pb.recv_json()).await {
            Ok(frame) => delivered.push(frame),
            Err(_) => break,
        }
    }
    redis.signal("CONT");
    assert_eq!(
        delivered.len(),
        CANDIDATES,
        "candidates delivered in the other room while Redis was frozen"
    );
    for (n, frame) in delivered.iter().enumerate() {
        assert_eq!(frame["command"], "takeCandidate", "{frame}");
        assert_eq!(frame["label"], n, "in order: {frame}");
    }

    // The conference requests waited, and each is answered once, as Ant answers a room
    // nobody is in.
    for (i, asker) in askers.iter_mut().enumerate() {
        for _ in 0..ASKS {
            assert_eq!(
                asker.recv_json().await,
                json!({"command":"error","definition":"no_active_streams_in_room","room":format!("conf-{i}")}),
                "asker {i}"
            );
        }
        asker.expect_silence(200).await;
    }
    // And the call still relays once Redis answers again.
    pb.send_json(numbered_candidate(room, 0)).await;
    assert_eq!(pa.recv_json().await["label"], 0);
}

/// `leaveFromRoom` of `room` by `c`: its answer, if it comes within `bound`. Logs how long it
/// took (a figure for the record, not a check).
async fn leave_within(c: &mut WsClient, room: &str, bound: Duration) -> Option<serde_json::Value> {
    let sent = std::time::Instant::now();
    c.send_json(json!({"command":"leaveFromRoom","room":room}))
        .await;
    let answer = tokio::time::timeout(bound, c.recv_json()).await.ok();
    eprintln!(
        "leaveFromRoom of {room} while Redis is frozen: {}",
        match answer {
            Some(_) => format!("answered in {} ms", sent.elapsed().as_millis()),
            None => format!("not answered within {} ms", bound.as_millis()),
        }
    );
    answer
}

/// A conference request waiting on a frozen Redis (its room's record and the other nodes'
/// streams are read before the room is locked) holds neither its room nor the conference
/// plugin's state: a participant of the same room, and one of another room, leave and are
/// answered while Redis is still frozen, each within less than one command timeout; the
/// waiting requests are answered once it resumes, with the room as it is then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_does_not_stall_the_room_of_a_waiting_request() {
    let redis = RedisServer::start().await;
    let node = Node::spawn_env(&config(&redis), "stall", &[("TOKIO_WORKER_THREADS", "2")]).await;
    node.wait_health("cluster: ok", Duration::from_secs(10))
        .await;
    let (room, other) = ("conf-x", "conf-y");
    let _stays = participant(&node, room, "stays").await;
    let mut leaver = participant(&node, room, "leaver").await;
    let mut elsewhere = participant(&node, other, "elsewhere").await;
    let mut asker = WsClient::connect(&node.ant_url("LiveApp")).await;

    redis.signal("STOP");
    for _ in 0..ASKS {
        asker
            .send_json(json!({"command":"getRoomInfo","room":room,"streamId":"asker"}))
            .await;
    }
    // Let them reach the dispatcher before the leaves (a pause, not a measurement).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Less than the 2 s command timeout: before the reads left the room's lock, the leave
    // waited for every one of them (2 s each at least).
    let bound = Duration::from_millis(1500);
    let same_room = leave_within(&mut leaver, room, bound).await;
    let other_room = leave_within(&mut elsewhere, other, bound).await;
    redis.signal("CONT");
    let same_room = same_room.expect("the leave in the waiting request's room was answered");
    assert_eq!(same_room["definition"], "leavedFromRoom", "{same_room}");
    assert_eq!(same_room["streamId"], "leaver", "{same_room}");
    let other_room = other_room.expect("the leave in another room was answered");
    assert_eq!(other_room["definition"], "leavedFromRoom", "{other_room}");

    // Each waiting request is answered once, with the room as it is now.
    for n in 0..ASKS {
        let info = asker.recv_json().await;
        assert_eq!(info["command"], "roomInformation", "request {n}: {info}");
        assert_eq!(info["streams"], json!(["stays"]), "request {n}: {info}");
    }
    asker.expect_silence(200).await;
}
