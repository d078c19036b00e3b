//! The `sfu` plugin without a browser: Ant Media signaling over a real WebSocket to an
//! in-process gateway, and real WebRTC media from str0m peers on loopback
//! (`switchboard_tests::media`). Publish → `start` → offer → answer → ICE → `publish_started`;
//! play → the server's offer with its `idMapping` → answer → `play_started`; frames flow;
//! publishers joining and leaving renegotiate the player; the limits and a bad SDP give Ant
//! errors; a raw-dialect publisher (`switchboard.publish`, docs/dialect-spec.md) is played by an
//! Ant player.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::media::{
    MediaPeer, flow, next_ant as next, next_media, publish_ant, tracks,
};
use switchboard_tests::{TestGateway, WsClient, field, http_get, http_request};

const CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "conference"

[[plugin]]
type = "sfu"
[plugin.settings]
udp_bind = "127.0.0.1:0"
max_publishers_per_room = 2

[[plugin]]
type = "room-router"
"#;

const WAIT: Duration = Duration::from_secs(10);

async fn ant(gw: &TestGateway) -> WsClient {
    WsClient::connect(&gw.ant_url("LiveApp")).await
}

/// Publishes `stream` into `room` with a fresh media peer, up to `publish_started`.
async fn publish(
    gw: &TestGateway,
    stream: &str,
    room: &str,
    epoch: Instant,
) -> (WsClient, MediaPeer) {
    let (ws, peer, _) = publish_ant(&gw.ant_url("LiveApp"), stream, room, epoch, WAIT).await;
    (ws, peer)
}

/// Answers a server offer on the play stream.
async fn answer_offer(ws: &mut WsClient, peer: &mut MediaPeer, offer: &Value) {
    assert_eq!(offer["command"], "takeConfiguration", "{offer}");
    assert_eq!(offer["type"], "offer");
    let sdp = peer.answer(field(offer, "sdp"));
    let stream = field(offer, "streamId").to_owned();
    ws.send_json(
        json!({"command":"takeConfiguration","streamId":stream,"type":"answer","sdp":sdp}),
    )
    .await;
}

#[tokio::test]
async fn publish_play_renegotiate_and_stop_with_real_media() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    let (mut ws1, mut p1) = publish(&gw, "p1", "r1", epoch).await;

    let mut player_ws = ant(&gw).await;
    player_ws.send_json(json!({"command":"play","streamId":"r1","token":"","room":"r1","trackList":[],"subscriberId":"","subscriberCode":"","viewerInfo":"","role":"","userPublishId":""})).await;
    let offer = next(&mut player_ws).await;
    assert_eq!(offer["streamId"], "r1");
    assert_eq!(tracks(&offer), ["ARDAMSap1", "ARDAMSvp1"]);
    let mut player = MediaPeer::new(epoch).await;
    answer_offer(&mut player_ws, &mut player, &offer).await;
    assert!(
        player.pump_until(WAIT, |p| p.connected).await,
        "player connects"
    );
    assert_eq!(
        next(&mut player_ws).await,
        json!({"command":"notification","definition":"play_started","streamId":"r1"})
    );
    let frames = flow(&mut [&mut p1], &mut player, 1500).await;
    assert!(frames > 20, "player received {frames} frames from p1");

    // A second publisher: the player is offered its tracks on the same stream id.
    let (ws2, mut p2) = publish(&gw, "p2", "r1", epoch).await;
    let offer = next(&mut player_ws).await;
    assert_eq!(offer["streamId"], "r1");
    assert_eq!(
        tracks(&offer),
        ["ARDAMSap1", "ARDAMSap2", "ARDAMSvp1", "ARDAMSvp2"]
    );
    answer_offer(&mut player_ws, &mut player, &offer).await;
    let before = player.frames.len();
    flow(&mut [&mut p1, &mut p2], &mut player, 1500).await;
    assert!(
        player.frames.len() > before,
        "frames arrive on p2's sections too: {:?}",
        player.frames
    );

    // A third publisher is one too many for this room.
    let mut ws3 = ant(&gw).await;
    ws3.send_json(
        json!({"command":"publish","streamId":"p3","mainTrack":"r1","video":true,"audio":true}),
    )
    .await;
    let err = next(&mut ws3).await;
    assert_eq!(
        err["definition"], "main_track_has_max_subtrack_count__not_allowed_to_add_more_subtracks",
        "{err}"
    );
    assert_eq!(err["streamId"], "p3");

    // p1 stops: publish_finished, and the player is offered the room without p1.
    ws1.send_json(json!({"command":"stop","streamId":"p1"}))
        .await;
    assert_eq!(
        next(&mut ws1).await,
        json!({"command":"notification","definition":"publish_finished","streamId":"p1"})
    );
    let offer = next(&mut player_ws).await;
    assert_eq!(tracks(&offer), ["ARDAMSap2", "ARDAMSvp2"]);
    answer_offer(&mut player_ws, &mut player, &offer).await;
    // The SDK sends `stop` twice; the second is swallowed, not refused.
    ws1.send_json(json!({"command":"stop","streamId":"p1"}))
        .await;
    ws1.expect_silence(300).await;
    let frames = flow(&mut [&mut p2], &mut player, 1000).await;
    assert!(frames > 10, "p2 still flows: {frames}");

    player_ws
        .send_json(json!({"command":"stop","streamId":"r1"}))
        .await;
    assert_eq!(
        next(&mut player_ws).await,
        json!({"command":"notification","definition":"play_finished","streamId":"r1"})
    );
    drop(ws2);
    gw.stop().await;
}

#[tokio::test]
async fn bad_descriptions_and_duplicates_get_ant_errors() {
    let gw = TestGateway::with_config(CONFIG).await;
    let mut ws = ant(&gw).await;
    ws.send_json(json!({"command":"publish","streamId":"s1","mainTrack":"r2"}))
        .await;
    assert_eq!(next(&mut ws).await["command"], "start");
    ws.send_json(json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":"v=0\r\nthis is not sdp"})).await;
    let err = next(&mut ws).await;
    assert_eq!(err["definition"], "notSetRemoteDescription", "{err}");
    assert_eq!(err["streamId"], "s1");
    assert!(field(&err, "information").contains("offer"), "{err}");
    // A publisher answers nothing; an answer is refused clearly.
    ws.send_json(
        json!({"command":"takeConfiguration","streamId":"s1","type":"answer","sdp":"v=0\r\n"}),
    )
    .await;
    assert_eq!(next(&mut ws).await["definition"], "notSetRemoteDescription");
    // The same stream id again, from the same and from another connection.
    ws.send_json(json!({"command":"publish","streamId":"s1","mainTrack":"r2"}))
        .await;
    assert_eq!(next(&mut ws).await["definition"], "streamIdInUse");
    let mut other = ant(&gw).await;
    other
        .send_json(json!({"command":"publish","streamId":"s1"}))
        .await;
    assert_eq!(next(&mut other).await["definition"], "streamIdInUse");
    // Candidates for an unknown stream are not the SFU's: the P2P router answers them.
    other.send_json(json!({"command":"takeCandidate","streamId":"zz","label":0,"id":"0","candidate":"garbage"})).await;
    assert_eq!(
        next(&mut other).await["definition"],
        "no_peer_associated_before"
    );
    // Garbage candidates for an SFU stream are ignored.
    ws.send_json(json!({"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":"candidate:garbage"})).await;
    ws.expect_silence(200).await;
    // Closing the connection frees the stream id.
    ws.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    other
        .send_json(json!({"command":"publish","streamId":"s1"}))
        .await;
    assert_eq!(
        next(&mut other).await,
        json!({"command":"start","streamId":"s1"})
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_raw_publisher_is_played_by_an_ant_player() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    // A path of its own: the URL room is a two-place P2P room.
    let mut raw = WsClient::connect(&gw.raw_url("r3.raw")).await;
    raw.send_json(json!({"type":"switchboard.publish","stream":"rawpub","room":"r3"}))
        .await;
    let mut publisher = MediaPeer::new(epoch).await;
    let offer = publisher.publish_offer();
    raw.send_json(json!({"type":"switchboard.media-description","stream":"rawpub","description":{"type":"offer","sdp":offer}})).await;
    let answer = next_media(&mut raw).await;
    assert_eq!(answer["type"], "switchboard.media-answer", "{answer}");
    assert_eq!(answer["stream"], "rawpub");
    assert_eq!(answer["description"]["type"], "answer");
    publisher.accept_answer(answer["description"]["sdp"].as_str().expect("sdp"));
    assert!(publisher.pump_until(WAIT, |p| p.connected).await);
    assert_eq!(
        next_media(&mut raw).await,
        json!({"type":"switchboard.media-started","stream":"rawpub","direction":"publish","room":"r3"})
    );

    let mut ant_ws = ant(&gw).await;
    ant_ws
        .send_json(json!({"command":"play","streamId":"r3","room":"r3","trackList":[]}))
        .await;
    let offer = next(&mut ant_ws).await;
    assert_eq!(tracks(&offer), ["ARDAMSarawpub", "ARDAMSvrawpub"]);
    let mut player = MediaPeer::new(epoch).await;
    answer_offer(&mut ant_ws, &mut player, &offer).await;
    assert!(player.pump_until(WAIT, |p| p.connected).await);
    assert_eq!(next(&mut ant_ws).await["definition"], "play_started");
    let frames = flow(&mut [&mut publisher], &mut player, 1500).await;
    assert!(
        frames > 20,
        "the Ant player received {frames} frames from the raw publisher"
    );

    raw.send_json(json!({"type":"switchboard.stop","stream":"rawpub"}))
        .await;
    assert_eq!(
        next_media(&mut raw).await,
        json!({"type":"switchboard.media-finished","stream":"rawpub","direction":"publish"})
    );
    let offer = next(&mut ant_ws).await;
    assert!(tracks(&offer).is_empty(), "{offer}");
    gw.stop().await;
}

/// Sends `command` and returns the next reply (pongs skipped).
async fn ask(ws: &mut WsClient, command: Value) -> Value {
    ws.send_json(command).await;
    next(ws).await
}

/// Item 3 of issue 18: a page that publishes with the room as main track, without `joinRoom`,
/// is listed wherever Ant lists a room's publishers; item 1: `play` names one stream (its
/// `room` is for the token) and plays only that stream; a `joinRoom` participant's publish
/// without a main track goes into its room, and play of the room carries it.
#[tokio::test]
async fn publishers_are_listed_and_play_names_a_stream_or_a_room() {
    let gw = TestGateway::with_config(CONFIG).await;
    let rooms = "/LiveApp/rest/v2/broadcasts/conference-rooms";
    let (status, _) = http_request(gw.main, "POST", rooms, Some(r#"{"roomId":"r1"}"#)).await;
    assert_eq!(status, 200);
    let epoch = Instant::now();
    let (_ws1, mut p1) = publish(&gw, "p1", "r1", epoch).await;
    let (_ws2, _p2) = publish(&gw, "p2", "r1", epoch).await;

    let mut q = ant(&gw).await;
    let info = ask(
        &mut q,
        json!({"command":"getRoomInfo","room":"r1","streamId":""}),
    )
    .await;
    assert_eq!(info["command"], "roomInformation", "{info}");
    assert_eq!(info["streams"], json!(["p1", "p2"]), "{info}");
    let tracks_of_room = ask(
        &mut q,
        json!({"command":"getTrackList","streamId":"r1","token":""}),
    )
    .await;
    assert_eq!(
        tracks_of_room["trackList"],
        json!(["p1", "p2"]),
        "{tracks_of_room}"
    );
    let room = ask(
        &mut q,
        json!({"command":"getBroadcastObject","streamId":"r1"}),
    )
    .await;
    let broadcast: Value = serde_json::from_str(field(&room, "broadcast")).expect("JSON string");
    assert_eq!(
        broadcast["subTrackStreamIds"],
        json!(["p1", "p2"]),
        "{broadcast}"
    );
    let sub = ask(
        &mut q,
        json!({"command":"getBroadcastObject","streamId":"p1"}),
    )
    .await;
    let broadcast: Value = serde_json::from_str(field(&sub, "broadcast")).expect("JSON string");
    assert_eq!(broadcast["mainTrackStreamId"], "r1", "{broadcast}");
    assert_eq!(broadcast["status"], "broadcasting", "{broadcast}");
    let count = ask(
        &mut q,
        json!({"command":"getSubtracksCount","streamId":"r1","role":"","status":"broadcasting"}),
    )
    .await;
    assert_eq!(count["count"], 2, "{count}");
    let (_, body) = http_request(gw.main, "GET", &format!("{rooms}/r1"), None).await;
    let rest: Value = serde_json::from_str(&body).expect("room JSON");
    assert_eq!(rest["roomStreamList"], json!(["p1", "p2"]), "{rest}");

    // play {streamId: p1, room: r1} plays p1 alone.
    q.send_json(json!({"command":"play","streamId":"p1","token":"","room":"r1","trackList":[],"subscriberId":"","subscriberCode":"","viewerInfo":"","role":"","userPublishId":""})).await;
    let offer = next(&mut q).await;
    assert_eq!(offer["streamId"], "p1", "{offer}");
    assert_eq!(tracks(&offer), ["ARDAMSap1", "ARDAMSvp1"]);
    let mut player = MediaPeer::new(epoch).await;
    answer_offer(&mut q, &mut player, &offer).await;
    assert!(
        player.pump_until(WAIT, |p| p.connected).await,
        "player connects"
    );
    let frames = flow(&mut [&mut p1], &mut player, 1500).await;
    assert!(frames > 20, "the player of p1 received {frames} frames");
    assert_eq!(
        next(&mut q).await,
        json!({"command":"notification","definition":"play_started","streamId":"p1"})
    );

    // The legacy flow: joinRoom(r2, l1), publish(l1) without a main track.
    let mut l = ant(&gw).await;
    let joined = ask(
        &mut l,
        json!({"command":"joinRoom","room":"r2","mainTrack":"r2","streamId":"l1"}),
    )
    .await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");
    l.send_json(json!({"command":"publish","streamId":"l1","subscriberId":"","subscriberCode":"","streamName":"","mainTrack":"","video":true,"audio":true,"metaData":"","role":""})).await;
    assert_eq!(
        next(&mut l).await,
        json!({"command":"start","streamId":"l1"})
    );
    let mut lp = MediaPeer::new(epoch).await;
    let answer = ask(
        &mut l,
        json!({"command":"takeConfiguration","streamId":"l1","type":"offer","sdp":lp.publish_offer()}),
    )
    .await;
    let sdp = field(&answer, "sdp");
    assert!(
        !sdp.contains("a=sendrecv") && sdp.contains("a=recvonly"),
        "a publisher's answer is recvonly: {sdp}"
    );
    lp.accept_answer(sdp);
    assert!(lp.pump_until(WAIT, |p| p.connected).await, "l1 connects");
    let started = next(&mut l).await;
    assert_eq!(
        started,
        json!({"command":"notification","definition":"publish_started","streamId":"l1","ATTR_ROOM_NAME":"r2","room":"r2"})
    );
    let mut r = ant(&gw).await;
    r.send_json(json!({"command":"play","streamId":"r2","token":"","room":"r2","trackList":[]}))
        .await;
    let offer = next(&mut r).await;
    assert_eq!(tracks(&offer), ["ARDAMSal1", "ARDAMSvl1"], "{offer}");
    // l1's own stop reaches the media plugin (it is the participant's own stream).
    let finished = ask(&mut l, json!({"command":"stop","streamId":"l1"})).await;
    assert_eq!(
        finished,
        json!({"command":"notification","definition":"publish_finished","streamId":"l1"})
    );
    // leaveFromRoom ends the leaver's media in the room at once: the SDK closes its
    // connections without a `stop` of each, and the room's lists drop it.
    let joined = ask(
        &mut l,
        json!({"command":"joinRoom","room":"r3","mainTrack":"r3","streamId":"l2"}),
    )
    .await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");
    l.send_json(
        json!({"command":"publish","streamId":"l2","mainTrack":"","video":true,"audio":true}),
    )
    .await;
    assert_eq!(
        next(&mut l).await,
        json!({"command":"start","streamId":"l2"})
    );
    let info = ask(
        &mut q,
        json!({"command":"getRoomInfo","room":"r3","streamId":""}),
    )
    .await;
    assert_eq!(info["streams"], json!(["l2"]), "{info}");
    let left = ask(
        &mut l,
        json!({"command":"leaveFromRoom","room":"r3","mainTrack":"r3","streamId":"l2"}),
    )
    .await;
    assert_eq!(left["definition"], "leavedFromRoom", "{left}");
    l.expect_silence(300).await;
    let info = ask(
        &mut q,
        json!({"command":"getRoomInfo","room":"r3","streamId":""}),
    )
    .await;
    assert_eq!(info["definition"], "no_active_streams_in_room", "{info}");
    // The stream id is free again.
    l.send_json(json!({"command":"publish","streamId":"l2","mainTrack":"r4"}))
        .await;
    assert_eq!(
        next(&mut l).await,
        json!({"command":"start","streamId":"l2"})
    );

    // Video-track assignment is refused with a text that is true while the media plugin runs.
    let err = ask(
        &mut l,
        json!({"streamId":"p1","command":"setMaxVideoTrackCountCommand","maxTrackCount":6}),
    )
    .await;
    assert_eq!(err["definition"], "unsupported_command", "{err}");
    let text = field(&err, "information");
    assert!(
        text.contains("setMaxVideoTrackCount")
            && text.contains("sfu")
            && !text.contains("not running"),
        "{err}"
    );
    gw.stop().await;
}

/// The value of series `series` (name and labels, as rendered) in a `/metrics` text.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
        .parse()
        .expect("an integer")
}

/// Item 6 of issue 18: `/metrics` shows the SFU's peer connections, tracks, room sizes (fixed
/// buckets) and what it forwarded, RTCP feedback included.
#[tokio::test]
async fn metrics_show_connections_tracks_and_forwarding() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    let (_ws1, mut p1) = publish(&gw, "m1", "rm", epoch).await;
    let mut q = ant(&gw).await;
    q.send_json(json!({"command":"play","streamId":"rm","token":"","room":"rm","trackList":[]}))
        .await;
    let offer = next(&mut q).await;
    let mut player = MediaPeer::new(epoch).await;
    answer_offer(&mut q, &mut player, &offer).await;
    assert!(
        player.pump_until(WAIT, |p| p.connected).await,
        "player connects"
    );
    // Longer than the statistics interval (1 s), so str0m reports RTP totals on both legs.
    let frames = flow(&mut [&mut p1], &mut player, 2500).await;
    assert!(frames > 20, "the player received {frames} frames");
    let (status, text) = http_get(gw.main, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &text,
            "switchboard_sfu_peer_connections{direction=\"publish\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "switchboard_sfu_peer_connections{direction=\"play\"}"
        ),
        1
    );
    assert_eq!(metric(&text, "switchboard_sfu_tracks{direction=\"in\"}"), 2);
    assert_eq!(
        metric(&text, "switchboard_sfu_tracks{direction=\"out\"}"),
        2
    );
    assert_eq!(
        metric(&text, "switchboard_sfu_rooms{peer_connections=\"1-2\"}"),
        1
    );
    assert_eq!(
        metric(&text, "switchboard_sfu_rooms{peer_connections=\"3-8\"}"),
        0
    );
    let frames_out = metric(&text, "switchboard_sfu_frames_total{direction=\"out\"}");
    assert!(
        frames_out >= frames,
        "{frames_out} frames forwarded, {frames} received"
    );
    for series in [
        "switchboard_sfu_frames_total{direction=\"in\"}",
        "switchboard_sfu_rtp_packets_total{direction=\"in\"}",
        "switchboard_sfu_rtp_packets_total{direction=\"out\"}",
        "switchboard_sfu_rtp_bytes_total{direction=\"out\"}",
        // The player's first video track makes the SFU ask the publisher for a keyframe.
        "switchboard_sfu_keyframe_requests_total",
        "switchboard_sfu_plis_total{direction=\"sent\"}",
    ] {
        assert!(metric(&text, series) > 0, "{series} is 0:\n{text}");
    }
    for series in [
        "switchboard_sfu_nacks_total{direction=\"sent\"}",
        "switchboard_sfu_nacks_total{direction=\"received\"}",
        "switchboard_sfu_firs_total{direction=\"received\"}",
    ] {
        metric(&text, series);
    }
    gw.stop().await;
}

/// Frames `player` receives per kind while `publisher` sends for `ms`: (audio, video), by the
/// offer's idMapping (mid → `ARDAMSa…`/`ARDAMSv…`).
async fn flow_by_kind(
    publisher: &mut MediaPeer,
    player: &mut MediaPeer,
    mapping: &Value,
    ms: u64,
) -> (u64, u64) {
    let before = player.frames.clone();
    flow(&mut [publisher], player, ms).await;
    let (mut audio, mut video) = (0, 0);
    for (mid, n) in &player.frames {
        let grew = n - before.get(mid).copied().unwrap_or(0);
        match mapping[mid.to_string()].as_str() {
            Some(id) if id.starts_with("ARDAMSa") => audio += grew,
            Some(id) if id.starts_with("ARDAMSv") => video += grew,
            _ => {}
        }
    }
    (audio, video)
}

/// Plays `room` (the stream named as the room) with `player` as the media peer, up to
/// `play_started`; returns the player's connection and the offer's `idMapping`.
async fn play_room(gw: &TestGateway, room: &str, player: &mut MediaPeer) -> (WsClient, Value) {
    let mut q = ant(gw).await;
    q.send_json(json!({"command":"play","streamId":room,"token":"","room":room,"trackList":[]}))
        .await;
    let offer = next(&mut q).await;
    answer_offer(&mut q, player, &offer).await;
    assert!(
        player.pump_until(WAIT, |p| p.connected).await,
        "player connects"
    );
    assert_eq!(
        next(&mut q).await,
        json!({"command":"notification","definition":"play_started","streamId":room})
    );
    (q, offer["idMapping"].clone())
}

/// Item 5 of issue 18: `enableTrack`, `toggleVideo`, `toggleAudio` stop and resume what the
/// gateway sends: a player's for itself, a publisher's for every player of its stream.
#[tokio::test]
async fn track_toggles_pause_and_resume_forwarding() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    let (mut pub_ws, mut p1) = publish(&gw, "t1", "rt", epoch).await;
    let mut player = MediaPeer::new(epoch).await;
    let (mut q, mapping) = play_room(&gw, "rt", &mut player).await;
    let (audio, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1000).await;
    assert!(
        audio > 10 && video > 10,
        "both flow: {audio} audio, {video} video"
    );

    let toggle = |command: &str, stream: &str, enabled: bool| json!({"command":command,"streamId":stream,"trackId":"t1","enabled":enabled});
    // The player: enableTrack off stops the whole track; toggleVideo on brings video back.
    q.send_json(toggle("enableTrack", "rt", false)).await;
    flow(&mut [&mut p1], &mut player, 300).await; // what was in flight
    let (audio, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1000).await;
    assert_eq!((audio, video), (0, 0), "enableTrack false stops both");
    q.send_json(toggle("toggleVideo", "rt", true)).await;
    flow(&mut [&mut p1], &mut player, 300).await;
    let (audio, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1000).await;
    assert!(
        audio == 0 && video > 10,
        "video back, audio still off: {audio}, {video}"
    );
    q.send_json(toggle("toggleAudio", "rt", true)).await;
    flow(&mut [&mut p1], &mut player, 300).await;
    let (audio, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1000).await;
    assert!(audio > 10 && video > 10, "both back: {audio}, {video}");
    // Ant answers nothing to a toggle that worked.
    q.expect_silence(100).await;

    // The publisher: its own toggleAudio off stops its audio to every player.
    pub_ws.send_json(toggle("toggleAudio", "t1", false)).await;
    flow(&mut [&mut p1], &mut player, 300).await;
    let (audio, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1000).await;
    assert!(
        audio == 0 && video > 10,
        "publisher muted its audio: {audio}, {video}"
    );

    // A stream the connection neither plays nor publishes; a toggle without `enabled`.
    let err = ask(&mut q, toggle("toggleVideo", "nope", false)).await;
    assert_eq!(err["definition"], "no_stream_exist", "{err}");
    assert_eq!(err["streamId"], "nope", "{err}");
    let err = ask(
        &mut q,
        json!({"command":"toggleVideo","streamId":"rt","trackId":"t1"}),
    )
    .await;
    assert_eq!(
        err,
        json!({"command":"error","definition":"invalid_field","information":"missing field `enabled`"})
    );
    gw.stop().await;
}

/// The player's received video packets since index `from`: (sequence number, timestamp,
/// first packet of a keyframe), on the SSRC of the section the offer maps to `ARDAMSv…`.
fn video_rtp(player: &mut MediaPeer, mapping: &Value, from: usize) -> Vec<(u16, u32, bool)> {
    let mid = mapping
        .as_object()
        .and_then(|m| {
            m.iter()
                .find(|(_, id)| id.as_str().is_some_and(|id| id.starts_with("ARDAMSv")))
        })
        .map(|(mid, _)| str0m::media::Mid::from(mid.as_str()))
        .expect("a video section in the idMapping");
    let ssrc = player
        .rtc
        .direct_api()
        .stream_rx_by_mid(mid, None)
        .map(|s| *s.ssrc())
        .expect("a video receive stream");
    player.rtp[from..]
        .iter()
        .filter(|p| p.ssrc == ssrc)
        .map(|p| (p.seq, p.timestamp, p.keyframe))
        .collect()
}

/// Whether each sequence number follows the one before (loopback loses and reorders nothing).
fn consecutive(packets: &[(u16, u32, bool)]) -> bool {
    packets.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1))
}

/// Issue 18 item 7: the SFU forwards RTP packets (str0m's RTP mode), each player's video on
/// its own numbering. A publisher that sends VP8 interframes except when asked for a keyframe:
/// the player's video starts with the keyframe the SFU asked for (nothing before it), runs on
/// consecutive sequence numbers, and after the player paused and resumed it (`toggleVideo`),
/// goes on with the next sequence number (no gap for what the SFU chose not to send), a later
/// timestamp, and again a keyframe first.
#[tokio::test]
async fn forwarded_video_starts_at_a_keyframe_and_keeps_its_numbering_across_a_pause() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    let (_pub_ws, mut p1) = publish(&gw, "k1", "rk", epoch).await;
    p1.interframes = true;
    let mut player = MediaPeer::recording(epoch).await;
    let (mut q, mapping) = play_room(&gw, "rk", &mut player).await;
    let (_, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1500).await;
    assert!(video > 10, "video flows: {video} frames");
    assert!(
        p1.keyframe_requests > 0,
        "the SFU asked the publisher for a keyframe"
    );
    let first = video_rtp(&mut player, &mapping, 0);
    assert!(
        first.first().is_some_and(|p| p.2),
        "the first video packet starts a keyframe: {:?}",
        first.first()
    );
    assert!(
        consecutive(&first),
        "consecutive sequence numbers: {first:?}"
    );
    assert_eq!(
        first.iter().filter(|p| p.2).count(),
        1,
        "one keyframe, then interframes"
    );

    let toggle = |enabled: bool| json!({"command":"toggleVideo","streamId":"rk","trackId":"k1","enabled":enabled});
    q.send_json(toggle(false)).await;
    flow(&mut [&mut p1], &mut player, 300).await; // what was in flight
    let paused_at = player.rtp.len();
    let (_, video) = flow_by_kind(&mut p1, &mut player, &mapping, 700).await;
    assert_eq!(video, 0, "paused");
    let requests = p1.keyframe_requests;
    q.send_json(toggle(true)).await;
    let (_, video) = flow_by_kind(&mut p1, &mut player, &mapping, 1500).await;
    assert!(video > 10, "video resumed: {video} frames");
    assert!(
        p1.keyframe_requests > requests,
        "resuming asked for a keyframe"
    );
    let before = video_rtp(&mut player, &mapping, 0);
    let after = video_rtp(&mut player, &mapping, paused_at);
    assert!(
        after.first().is_some_and(|p| p.2),
        "the first packet after the pause starts a keyframe: {:?}",
        after.first()
    );
    assert!(
        consecutive(&before),
        "the numbers run on across the pause: {before:?}"
    );
    let last_before = before[before.len() - after.len() - 1];
    assert!(
        after[0].1.wrapping_sub(last_before.1) > 0
            && after[0].1.wrapping_sub(last_before.1) < u32::MAX / 2,
        "the timestamp moves on: {last_before:?} then {:?}",
        after[0]
    );
    gw.stop().await;
}

/// Item 5 of issue 18: `forceStreamQuality` (the SDK's `forceStreamQuality(streamId, height)`)
/// on what a connection plays; bad values get Ant errors and change nothing. (The layers
/// themselves are chosen in Chromium: tests/tests/browser_simulcast.rs.)
#[tokio::test]
async fn force_stream_quality_refuses_bad_values_in_ant_errors() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    let (mut pub_ws, mut p1) = publish(&gw, "fq1", "rfq", epoch).await;
    let mut q = ant(&gw).await;
    q.send_json(json!({"command":"play","streamId":"rfq","token":"","room":"rfq","trackList":[]}))
        .await;
    let offer = next(&mut q).await;
    let mut player = MediaPeer::new(epoch).await;
    answer_offer(&mut q, &mut player, &offer).await;
    assert!(
        player.pump_until(WAIT, |p| p.connected).await,
        "player connects"
    );
    assert_eq!(next(&mut q).await["definition"], "play_started");
    assert!(
        flow(&mut [&mut p1], &mut player, 500).await > 10,
        "frames flow"
    );

    let force = |stream: &str, height: Value| json!({"command":"forceStreamQuality","streamId":stream,"streamHeight":height});
    // A stream this connection does not play, and a publisher's own stream.
    let err = ask(&mut q, force("nope", json!(240))).await;
    assert_eq!(err["definition"], "no_stream_exist", "{err}");
    assert_eq!(err["streamId"], "nope", "{err}");
    let err = ask(&mut pub_ws, force("fq1", json!(240))).await;
    assert_eq!(err["definition"], "no_stream_exist", "{err}");
    // A height no layer has: this publisher sends no simulcast layers at all.
    let err = ask(&mut q, force("rfq", json!(240))).await;
    assert_eq!(err["definition"], "invalid_field", "{err}");
    assert_eq!(err["streamId"], "rfq", "{err}");
    assert_eq!(
        field(&err, "information"),
        "no simulcast layer of `rfq` has height 240 (layers: none known); 0 is automatic"
    );
    // A publisher the play stream does not carry.
    let err = ask(
        &mut q,
        json!({"command":"forceStreamQuality","streamId":"rfq","trackId":"other","streamHeight":0}),
    )
    .await;
    assert_eq!(err["definition"], "no_stream_exist", "{err}");
    // Heights that are no height.
    for bad in [json!("240"), json!(-1), json!(2.5), json!(100_000)] {
        let err = ask(&mut q, force("rfq", bad.clone())).await;
        assert_eq!(err["definition"], "invalid_field", "{bad}: {err}");
    }
    let err = ask(
        &mut q,
        json!({"command":"forceStreamQuality","streamId":"rfq"}),
    )
    .await;
    assert_eq!(
        err,
        json!({"command":"error","definition":"invalid_field","information":"missing field `streamHeight`"})
    );
    // Automatic (0) is accepted without an answer, as Ant's, and nothing stopped flowing.
    q.send_json(force("rfq", json!(0))).await;
    q.expect_silence(200).await;
    assert!(
        flow(&mut [&mut p1], &mut player, 500).await > 10,
        "frames still flow"
    );
    gw.stop().await;
}
