//! Conference media across a cluster (room homing): two real `switchboard` nodes on one real
//! `redis-server`, Ant Media signaling over real WebSockets and real WebRTC media from str0m
//! peers on loopback (`switchboard_tests::media`). Each room's media is served by the node
//! that first needed it: a participant on the other node is answered by the home node's SFU
//! (its answer announces the home's UDP port) and its media flows there; a room first needed
//! on the other node is homed there. A toggle or `forceStreamQuality` on the other node
//! reaches the home's SFU. When
//! the home node is SIGKILLed, its remote publishers and players get
//! `publish_finished`/`play_finished` once, and the room re-homes on the next publish; when a
//! participant's node is SIGKILLed, the home drops its publisher and renegotiates the players.
//! A raw-dialect publisher on the other node gets the home's answers in its own dialect.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::WsClient;
use switchboard_tests::cluster::{HEARTBEAT_MS, NODE_TTL_MS, Node, RedisServer, node_config};
use switchboard_tests::field;
use switchboard_tests::media::{
    MediaPeer, flow, next_ant as next, next_media, publish_ant, tracks,
};

const WAIT: Duration = Duration::from_secs(10);

/// A test node with the conference plugin, the SFU on a free loopback port, and the router.
fn media_config(redis: &RedisServer, name: &str) -> String {
    node_config(&redis.url(), name).replace(
        "[[plugin]]\ntype = \"room-router\"",
        "[[plugin]]\ntype = \"conference\"\n\n[[plugin]]\ntype = \"sfu\"\n[plugin.settings]\nudp_bind = \"127.0.0.1:0\"\n\n[[plugin]]\ntype = \"room-router\"",
    )
}

async fn two_nodes() -> (RedisServer, Node, Node) {
    let redis = RedisServer::start().await;
    let mut nodes = Vec::new();
    for name in ["media-a", "media-b"] {
        let node = Node::spawn(&media_config(&redis, name), name).await;
        node.wait_health("cluster: ok", WAIT).await;
        nodes.push(node);
    }
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    (redis, a, b)
}

/// The UDP port of the host candidates an SDP announces (one SFU socket: one port).
fn candidate_port(sdp: &str) -> u16 {
    let ports: Vec<u16> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .map(|l| l.split_whitespace().nth(5).unwrap().parse().unwrap())
        .collect();
    assert!(!ports.is_empty(), "no candidate in {sdp}");
    assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
    ports[0]
}

/// A publisher of `stream` into `room` through `node`, up to `publish_started`; with the
/// port the answering SFU announced.
struct Publisher {
    ws: WsClient,
    peer: MediaPeer,
    port: u16,
}

async fn publish(node: &Node, stream: &str, room: &str, epoch: Instant) -> Publisher {
    let (ws, peer, answer) = publish_ant(&node.ant_url("LiveApp"), stream, room, epoch, WAIT).await;
    let port = candidate_port(&answer);
    Publisher { ws, peer, port }
}

/// A player of `room` through `node`, up to `play_started`: its connection, its media peer,
/// the port the offer announced and the offer.
async fn play(node: &Node, room: &str, epoch: Instant) -> (WsClient, MediaPeer, u16, Value) {
    let mut ws = WsClient::connect(&node.ant_url("LiveApp")).await;
    ws.send_json(json!({"command":"play","streamId":room,"token":"","room":room,"trackList":[],"subscriberId":"","subscriberCode":"","viewerInfo":"","role":"","userPublishId":""})).await;
    let offer = next(&mut ws).await;
    assert_eq!(offer["command"], "takeConfiguration", "{offer}");
    assert_eq!(
        (&offer["type"], &offer["streamId"]),
        (&json!("offer"), &json!(room))
    );
    let port = candidate_port(field(&offer, "sdp"));
    let mut peer = MediaPeer::new(epoch).await;
    let sdp = peer.answer(field(&offer, "sdp"));
    ws.send_json(json!({"command":"takeConfiguration","streamId":room,"type":"answer","sdp":sdp}))
        .await;
    assert!(
        peer.pump_until(WAIT, |p| p.connected).await,
        "player connects"
    );
    assert_eq!(
        next(&mut ws).await,
        json!({"command":"notification","definition":"play_started","streamId":room})
    );
    (ws, peer, port, offer)
}

/// The instance id `redis` lists as the media home of `room`.
async fn home_of(redis: &RedisServer, room: &str) -> String {
    redis
        .cli(&["GET", &format!("switchboard:media-home:{room}")])
        .await
        .trim()
        .to_owned()
}

/// A room's media is served by the node that first needed it, for participants on either
/// node; a room first needed on the other node is served there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_media_is_served_by_its_home_node_for_both_nodes() {
    let (redis, a, b) = two_nodes().await;
    let epoch = Instant::now();
    // Room r1: first needed on A.
    let mut p1 = publish(&a, "p1", "r1", epoch).await;
    assert!(home_of(&redis, "r1").await.starts_with("media-a@"));
    // B's publisher into r1 is answered by A's SFU (A's port) and connects to it.
    let mut p2 = publish(&b, "p2", "r1", epoch).await;
    assert_eq!(p2.port, p1.port, "B's publisher is served by A's SFU");
    // A player on B gets A's offer with both publishers, and their frames through A.
    let (mut player_ws, mut player, port, offered) = play(&b, "r1", epoch).await;
    assert_eq!(port, p1.port, "B's player is served by A's SFU");
    assert_eq!(
        tracks(&offered),
        ["ARDAMSap1", "ARDAMSap2", "ARDAMSvp1", "ARDAMSvp2"]
    );
    flow(&mut [&mut p1.peer, &mut p2.peer], &mut player, 1500).await;
    let per_section: Vec<u64> = player.frames.values().copied().collect();
    assert_eq!(
        per_section.len(),
        4,
        "frames on every section: {:?}",
        player.frames
    );
    assert!(per_section.iter().all(|n| *n > 10), "{:?}", player.frames);

    // Room r2: first needed on B, so B's SFU serves it, A's participants included.
    let p3 = publish(&b, "p3", "r2", epoch).await;
    assert_ne!(p3.port, p1.port, "B has its own SFU");
    assert!(home_of(&redis, "r2").await.starts_with("media-b@"));
    let p4 = publish(&a, "p4", "r2", epoch).await;
    assert_eq!(
        p4.port, p3.port,
        "A's publisher into r2 is served by B's SFU"
    );

    // B's publisher stops: the stop goes to A, whose SFU answers and renegotiates B's player;
    // the SDK's second `stop` is swallowed on B.
    p2.ws
        .send_json(json!({"command":"stop","streamId":"p2"}))
        .await;
    assert_eq!(
        next(&mut p2.ws).await,
        json!({"command":"notification","definition":"publish_finished","streamId":"p2"})
    );
    let offer = next(&mut player_ws).await;
    assert_eq!(tracks(&offer), ["ARDAMSap1", "ARDAMSvp1"], "{offer}");
    p2.ws
        .send_json(json!({"command":"stop","streamId":"p2"}))
        .await;
    p2.ws.expect_silence(300).await;
    // The homes are kept by the heartbeat (a TTL of node_ttl_ms, refreshed).
    tokio::time::sleep(Duration::from_millis(NODE_TTL_MS * 2)).await;
    assert!(home_of(&redis, "r1").await.starts_with("media-a@"));
    assert!(home_of(&redis, "r2").await.starts_with("media-b@"));
    drop(p4);
}

/// The home node dies: B's publisher and player of its room get `publish_finished` and
/// `play_finished`, once each; B's publisher publishing again (as the SDK retries) re-homes
/// the room on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_home_ends_its_remote_streams_and_the_room_rehomes() {
    let (redis, mut a, b) = two_nodes().await;
    let epoch = Instant::now();
    let p1 = publish(&a, "p1", "r1", epoch).await;
    let mut p2 = publish(&b, "p2", "r1", epoch).await;
    assert_eq!(p2.port, p1.port);
    let (mut player_ws, player, port, _) = play(&b, "r1", epoch).await;
    assert_eq!(port, p1.port);
    // Kept open: p1's connection closing would renegotiate B's player before A dies.
    let kept = (p1, player);

    let killed = Instant::now();
    a.kill().await;
    assert_eq!(
        next(&mut p2.ws).await,
        json!({"command":"notification","definition":"publish_finished","streamId":"p2"})
    );
    assert_eq!(
        next(&mut player_ws).await,
        json!({"command":"notification","definition":"play_finished","streamId":"r1"})
    );
    let told = killed.elapsed();
    let bound = Duration::from_millis(NODE_TTL_MS + 3 * HEARTBEAT_MS + 500);
    assert!(told <= bound, "told after {told:?} (bound {bound:?})");
    // Once: nothing more on either connection.
    p2.ws.expect_silence(1000).await;
    player_ws.expect_silence(100).await;
    drop(kept);

    // The SDK publishes again: the room is B's now, served by B's own SFU.
    let mut again = publish(&b, "p2", "r1", epoch).await;
    assert_ne!(
        again.port, p2.port,
        "served by B's SFU, not the dead A's port"
    );
    assert!(home_of(&redis, "r1").await.starts_with("media-b@"));
    let (_ws, mut player, port, offered) = play(&b, "r1", epoch).await;
    assert_eq!(port, again.port);
    assert_eq!(tracks(&offered), ["ARDAMSap2", "ARDAMSvp2"]);
    let frames = flow(&mut [&mut again.peer], &mut player, 1000).await;
    assert!(
        frames > 20,
        "frames through B after the re-homing: {frames}"
    );
}

/// Frames `player` received per track id of `mapping` (the offer's `idMapping`) while the
/// publishers sent for `ms`.
async fn flow_by_track(
    publishers: &mut [&mut MediaPeer],
    player: &mut MediaPeer,
    mapping: &Value,
    ms: u64,
) -> std::collections::BTreeMap<String, u64> {
    let before = player.frames.clone();
    flow(publishers, player, ms).await;
    let mut grew = std::collections::BTreeMap::new();
    for (mid, n) in &player.frames {
        if let Some(id) = mapping[mid.to_string()].as_str() {
            grew.insert(id.to_owned(), n - before.get(mid).copied().unwrap_or(0));
        }
    }
    grew
}

/// [`flow_by_track`] for 1 s after a toggle, once what was in flight before it has arrived
/// (300 ms of flow first).
async fn flow_by_track_after_toggle(
    publishers: &mut [&mut MediaPeer],
    player: &mut MediaPeer,
    mapping: &Value,
) -> std::collections::BTreeMap<String, u64> {
    flow(publishers, player, 300).await;
    flow_by_track(publishers, player, mapping, 1000).await
}

/// A publisher on B turns its video off and on (`toggleVideo`, forwarded to the home A): A's
/// player stops and resumes receiving it; a toggle of a stream B's connection does not have is
/// refused on B. Then B dies: the home drops B's publisher and renegotiates its player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggles_reach_the_home_and_a_dead_participant_node_leaves_it() {
    let (_redis, a, mut b) = two_nodes().await;
    let epoch = Instant::now();
    let mut p1 = publish(&a, "p1", "r1", epoch).await;
    let mut p2 = publish(&b, "p2", "r1", epoch).await;
    assert_eq!(p2.port, p1.port);
    let (mut player_ws, mut player, _, offer) = play(&a, "r1", epoch).await;
    let mapping = offer["idMapping"].clone();
    let grew = flow_by_track(
        &mut [&mut p1.peer, &mut p2.peer],
        &mut player,
        &mapping,
        1000,
    )
    .await;
    assert!(
        grew.values().all(|n| *n > 10),
        "every track flows: {grew:?}"
    );

    let toggle = |enabled: bool| json!({"command":"toggleVideo","streamId":"p2","trackId":"p2","enabled":enabled});
    p2.ws.send_json(toggle(false)).await;
    let grew =
        flow_by_track_after_toggle(&mut [&mut p1.peer, &mut p2.peer], &mut player, &mapping).await;
    assert_eq!(grew["ARDAMSvp2"], 0, "p2's video is off: {grew:?}");
    assert!(grew["ARDAMSap2"] > 10 && grew["ARDAMSvp1"] > 10, "{grew:?}");
    p2.ws.send_json(toggle(true)).await;
    let grew =
        flow_by_track_after_toggle(&mut [&mut p1.peer, &mut p2.peer], &mut player, &mapping).await;
    assert!(grew["ARDAMSvp2"] > 10, "p2's video is back: {grew:?}");
    // A toggle that worked is answered with nothing (as Ant); one of a stream this connection
    // does not have is refused by B itself.
    p2.ws.expect_silence(100).await;
    p2.ws
        .send_json(
            json!({"command":"toggleVideo","streamId":"nope","trackId":"nope","enabled":false}),
        )
        .await;
    let err = next(&mut p2.ws).await;
    assert_eq!(
        (&err["definition"], &err["streamId"]),
        (&json!("no_stream_exist"), &json!("nope")),
        "{err}"
    );

    // B dies: A's player is offered the room without p2, within the failure bound.
    let killed = Instant::now();
    b.kill().await;
    let offer = loop {
        let v = tokio::time::timeout(WAIT, next(&mut player_ws))
            .await
            .unwrap();
        if v["command"] == "takeConfiguration" {
            break v;
        }
    };
    assert_eq!(tracks(&offer), ["ARDAMSap1", "ARDAMSvp1"], "{offer}");
    let told = killed.elapsed();
    let bound = Duration::from_millis(NODE_TTL_MS + 3 * HEARTBEAT_MS + 500);
    assert!(
        told <= bound,
        "renegotiated after {told:?} (bound {bound:?})"
    );
    drop(p1);
}

/// `forceStreamQuality` of a player on the other node is served by the home's SFU, like a
/// toggle: a height no layer has is refused there with the home's own text (B does not know
/// the player's tracks; it would refuse a stream it does not forward as not played), 0 is
/// accepted silently and the media keeps flowing; a stream the player does not play is refused
/// by B itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_stream_quality_on_the_other_node_reaches_the_home() {
    let (_redis, a, b) = two_nodes().await;
    let epoch = Instant::now();
    let mut p1 = publish(&a, "p1", "r1", epoch).await;
    let (mut player_ws, mut player, port, _) = play(&b, "r1", epoch).await;
    assert_eq!(port, p1.port, "B's player is served by A's SFU");
    assert!(flow(&mut [&mut p1.peer], &mut player, 800).await > 10);

    let force = |stream: &str, height: u32| json!({"command":"forceStreamQuality","streamId":stream,"streamHeight":height});
    player_ws.send_json(force("r1", 240)).await;
    let err = next(&mut player_ws).await;
    assert_eq!(
        (&err["definition"], &err["streamId"]),
        (&json!("invalid_field"), &json!("r1")),
        "{err}"
    );
    assert_eq!(
        field(&err, "information"),
        "no simulcast layer of `r1` has height 240 (layers: none known); 0 is automatic"
    );
    player_ws.send_json(force("r1", 0)).await;
    player_ws.expect_silence(300).await;
    assert!(
        flow(&mut [&mut p1.peer], &mut player, 800).await > 10,
        "frames still flow"
    );
    player_ws.send_json(force("nope", 0)).await;
    let err = next(&mut player_ws).await;
    assert_eq!(
        (&err["definition"], &err["streamId"]),
        (&json!("no_stream_exist"), &json!("nope")),
        "{err}"
    );
    drop(b);
}

/// A raw-dialect publisher (`switchboard.publish`, docs/dialect-spec.md) on B into a room homed
/// on A: A's SFU answers in the raw dialect through B (its port in the answer), an Ant player
/// on A receives its frames, and its `switchboard.stop` ends it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_publisher_on_the_other_node_is_served_by_the_home() {
    let (_redis, a, b) = two_nodes().await;
    let epoch = Instant::now();
    let home = publish(&a, "p1", "r1", epoch).await;
    // A path of its own: the URL room is a two-place P2P room.
    let mut raw = WsClient::connect(&b.raw_url("r1.raw")).await;
    raw.send_json(json!({"type":"switchboard.publish","stream":"rawpub","room":"r1"}))
        .await;
    let mut publisher = MediaPeer::new(epoch).await;
    let offer = publisher.publish_offer();
    raw.send_json(json!({"type":"switchboard.media-description","stream":"rawpub","description":{"type":"offer","sdp":offer}})).await;
    let answer = next_media(&mut raw).await;
    assert_eq!(answer["type"], "switchboard.media-answer", "{answer}");
    let sdp = answer["description"]["sdp"].as_str().unwrap();
    assert_eq!(candidate_port(sdp), home.port, "served by A's SFU");
    publisher.accept_answer(sdp);
    assert!(publisher.pump_until(WAIT, |p| p.connected).await);
    assert_eq!(
        next_media(&mut raw).await,
        json!({"type":"switchboard.media-started","stream":"rawpub","direction":"publish","room":"r1"})
    );
    let (mut player_ws, mut player, _, offer) = play(&a, "r1", epoch).await;
    assert_eq!(
        tracks(&offer),
        ["ARDAMSap1", "ARDAMSarawpub", "ARDAMSvp1", "ARDAMSvrawpub"]
    );
    let mapping = offer["idMapping"].clone();
    let grew = flow_by_track(&mut [&mut publisher], &mut player, &mapping, 1500).await;
    assert!(grew["ARDAMSvrawpub"] > 20, "{grew:?}");
    raw.send_json(json!({"type":"switchboard.stop","stream":"rawpub"}))
        .await;
    assert_eq!(
        next_media(&mut raw).await,
        json!({"type":"switchboard.media-finished","stream":"rawpub","direction":"publish"})
    );
    let offer = next(&mut player_ws).await;
    assert_eq!(tracks(&offer), ["ARDAMSap1", "ARDAMSvp1"], "{offer}");
}
