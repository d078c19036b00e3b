//! Ant Media conference rooms over real WebSockets: every conference command the gateway
//! serves, with the reply shapes the Ant SDK reads, and every error (antmedia.md §3, §5, §6).

use serde_json::{Value, json};
use switchboard_tests::ant::ask;
use switchboard_tests::{TestGateway, WsClient, field};

/// All dialects, the conference plugin before the router, no pages.
pub const CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "none"

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#;

async fn ant(gw: &TestGateway) -> WsClient {
    WsClient::connect(&gw.ant_url("LiveApp")).await
}

async fn join_room(c: &mut WsClient, room: &str, stream: Option<&str>) -> Value {
    let mut request = json!({"command": "joinRoom", "room": room, "mainTrack": room});
    if let Some(s) = stream {
        request["streamId"] = json!(s);
    }
    let reply = ask(c, request).await;
    assert_eq!(reply["definition"], "joinedTheRoom", "{reply}");
    reply
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[tokio::test]
async fn join_room_makes_up_a_stream_id_and_says_everything_the_sdk_reads() {
    let gw = TestGateway::with_config(CONFIG).await;
    let mut a = ant(&gw).await;
    let reply = join_room(&mut a, "conf-join", None).await;
    assert_eq!(reply["command"], "notification");
    assert!(!field(&reply, "streamId").is_empty());
    assert_eq!(reply["streams"], json!([]));
    assert_eq!(reply["streamList"], json!([]));
    assert_eq!(reply["ATTR_ROOM_NAME"], "conf-join");
    assert_eq!(reply["room"], "conf-join");
    assert_eq!(reply["maxTrackCount"], 6);

    let mut b = ant(&gw).await;
    b.send_text(r#"{"command":"joinRoom","room":"conf-join","mainTrack":"conf-join","streamId":"bob","streamName":"Bob","metadata":"{\"mic\":true}"}"#).await;
    let reply = b.recv_json().await;
    assert_eq!(reply["streamId"], "bob");
    assert_eq!(
        ids(&reply["streams"]),
        [field(&reply["streamList"][0], "streamId")]
    );
    // A repeated joinRoom is acknowledged with the same stream id.
    let again = join_room(&mut b, "conf-join", None).await;
    assert_eq!(again["streamId"], "bob");
    gw.stop().await;
}

#[tokio::test]
async fn room_information_lists_peers_of_every_dialect() {
    let gw = TestGateway::with_config(CONFIG).await;
    let room = "conf-mixed";
    // A raw peer and an Ant P2P peer pair up in the room...
    let mut raw = WsClient::connect(&gw.raw_url(room)).await;
    assert_eq!(raw.recv_json().await["type"], "switchboard.joined");
    let mut p2p = ant(&gw).await;
    p2p.send_json(json!({"command":"join","streamId":room,"mode":"both"}))
        .await;
    assert_eq!(p2p.recv_json().await["definition"], "joined");
    assert_eq!(p2p.recv_json().await["command"], "start");
    assert_eq!(raw.recv_json().await["type"], "switchboard.peer-joined");

    // ...and a conference participant sees both in joinedTheRoom and roomInformation.
    let mut a = ant(&gw).await;
    let joined = join_room(&mut a, room, Some("alice")).await;
    let streams = ids(&joined["streams"]);
    assert_eq!(streams.len(), 2, "{joined}");
    assert!(streams[0].starts_with("raw-"), "{streams:?}");
    assert!(streams[1].starts_with("antmedia-"), "{streams:?}");
    assert_eq!(joined["streamList"][0]["streamName"], "raw");

    let mut b = ant(&gw).await;
    join_room(&mut b, room, Some("bob")).await;
    let info = ask(
        &mut a,
        json!({"command":"getRoomInfo","streamId":"alice","room":room}),
    )
    .await;
    assert_eq!(info["command"], "roomInformation", "{info}");
    assert_eq!(info["room"], room);
    assert_eq!(info["ATTR_ROOM_NAME"], room);
    let streams = ids(&info["streams"]);
    assert_eq!(streams.len(), 3, "{info}");
    assert!(streams.contains(&"bob".to_owned()) && !streams.contains(&"alice".to_owned()));
    assert_eq!(info["streamList"][2]["streamId"], "bob");

    // The P2P pair still relays only between its two peers.
    p2p.send_json(
        json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":"v=0\r\n"}),
    )
    .await;
    assert_eq!(raw.recv_json().await["type"], "offer");
    a.expect_silence(200).await;
    // A conference participant is nobody's P2P partner.
    let err = ask(
        &mut a,
        json!({"command":"takeCandidate","streamId":room,"label":0,"id":"0","candidate":""}),
    )
    .await;
    assert_eq!(err["definition"], "no_peer_associated_before", "{err}");
    gw.stop().await;
}

#[tokio::test]
async fn room_information_of_an_empty_room_is_an_error_naming_the_room() {
    let gw = TestGateway::with_config(CONFIG).await;
    let mut a = ant(&gw).await;
    let err = ask(
        &mut a,
        json!({"command":"getRoomInfo","room":"conf-empty","streamId":"x"}),
    )
    .await;
    assert_eq!(
        err,
        json!({"command":"error","definition":"no_active_streams_in_room","room":"conf-empty"})
    );
    // Alone in the room: still nobody else.
    join_room(&mut a, "conf-empty", Some("me")).await;
    let err = ask(
        &mut a,
        json!({"command":"getRoomInfo","room":"conf-empty","streamId":"me"}),
    )
    .await;
    assert_eq!(err["definition"], "no_active_streams_in_room");
    gw.stop().await;
}

#[tokio::test]
async fn leaving_and_disconnecting_remove_the_participant() {
    let gw = TestGateway::with_config(CONFIG).await;
    let room = "conf-leave";
    let mut a = ant(&gw).await;
    let mut b = ant(&gw).await;
    let mut c = ant(&gw).await;
    join_room(&mut a, room, Some("a1")).await;
    join_room(&mut b, room, Some("b1")).await;
    join_room(&mut c, room, Some("c1")).await;
    let left = ask(
        &mut a,
        json!({"command":"leaveFromRoom","room":room,"mainTrack":room,"streamId":"a1"}),
    )
    .await;
    assert_eq!(
        left,
        json!({"command":"notification","definition":"leavedFromRoom","streamId":"a1","ATTR_ROOM_NAME":room,"room":room})
    );
    c.close().await;
    // Give the gateway a moment to process the close.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let err = ask(
        &mut b,
        json!({"command":"getRoomInfo","room":room,"streamId":"b1"}),
    )
    .await;
    assert_eq!(err["definition"], "no_active_streams_in_room", "{err}");
    // a1 and c1 are free again.
    join_room(&mut a, room, Some("c1")).await;
    // Leaving a room one is not in is acknowledged too.
    let left = ask(
        &mut a,
        json!({"command":"leaveFromRoom","room":"elsewhere"}),
    )
    .await;
    assert_eq!(left["definition"], "leavedFromRoom");
    gw.stop().await;
}

#[tokio::test]
async fn stream_queries() {
    let gw = TestGateway::with_config(CONFIG).await;
    let room = "conf-streams";
    let mut a = ant(&gw).await;
    let mut b = ant(&gw).await;
    a.send_text(&format!(
        r#"{{"command":"joinRoom","room":"{room}","streamId":"a1","streamName":"Alice","role":"host"}}"#
    ))
    .await;
    a.recv_json().await;
    join_room(&mut b, room, Some("b1")).await;

    let info = ask(&mut a, json!({"command":"getStreamInfo","streamId":"b1"})).await;
    assert_eq!(
        info,
        json!({"command":"streamInformation","streamId":"b1","streamInfo":[]})
    );
    let err = ask(
        &mut a,
        json!({"command":"getStreamInfo","streamId":"nobody"}),
    )
    .await;
    assert_eq!(
        err,
        json!({"command":"error","definition":"no_stream_exist","error_code":"404","streamId":"nobody"})
    );

    let tracks = ask(
        &mut a,
        json!({"command":"getTrackList","streamId":room,"token":""}),
    )
    .await;
    assert_eq!(
        tracks,
        json!({"command":"trackList","streamId":room,"trackList":["a1","b1"]})
    );

    let main = ask(
        &mut a,
        json!({"command":"getBroadcastObject","streamId":room}),
    )
    .await;
    assert_eq!(main["definition"], "broadcastObject");
    let broadcast: Value =
        serde_json::from_str(field(&main, "broadcast")).expect("broadcast is a JSON string");
    assert_eq!(broadcast["streamId"], room);
    assert_eq!(broadcast["subTrackStreamIds"], json!(["a1", "b1"]));
    let sub = ask(
        &mut b,
        json!({"command":"getBroadcastObject","streamId":"a1"}),
    )
    .await;
    let broadcast: Value = serde_json::from_str(field(&sub, "broadcast")).expect("JSON");
    assert_eq!(broadcast["mainTrackStreamId"], room);
    assert_eq!(broadcast["name"], "Alice");
    assert_eq!(broadcast["role"], "host");
    let err = ask(
        &mut b,
        json!({"command":"getBroadcastObject","streamId":"nobody"}),
    )
    .await;
    assert_eq!(err["definition"], "no_stream_exist");

    let list = ask(
        &mut b,
        json!({"command":"getSubtracks","streamId":room,"role":null,"offset":1,"size":10}),
    )
    .await;
    assert_eq!(list["definition"], "subtrackList", "{list}");
    let subtracks = list["subtrackList"].as_array().expect("array");
    assert_eq!(subtracks.len(), 1);
    let only: Value = serde_json::from_str(subtracks[0].as_str().expect("string")).expect("JSON");
    assert_eq!(only["streamId"], "b1");
    let hosts = ask(
        &mut b,
        json!({"command":"getSubtracks","streamId":room,"role":"host","offset":0,"size":10}),
    )
    .await;
    assert_eq!(hosts["subtrackList"].as_array().map(Vec::len), Some(1));

    let count = ask(
        &mut b,
        json!({"command":"getSubtracksCount","streamId":room,"role":null,"status":null}),
    )
    .await;
    assert_eq!(
        count,
        json!({"command":"notification","definition":"subtrackCount","streamId":room,"count":2})
    );
    let count = ask(
        &mut b,
        json!({"command":"getSubscriberCount","streamId":room}),
    )
    .await;
    assert_eq!(count["definition"], "subscriberCount");
    assert_eq!(count["count"], 2);
    gw.stop().await;
}

#[tokio::test]
async fn metadata_updates_show_in_the_stream_list() {
    let gw = TestGateway::with_config(CONFIG).await;
    let room = "conf-meta";
    let mut a = ant(&gw).await;
    let mut b = ant(&gw).await;
    join_room(&mut a, room, Some("a1")).await;
    join_room(&mut b, room, Some("b1")).await;
    let ack = ask(
        &mut a,
        json!({"command":"updateStreamMetaData","streamId":"a1","metaData":"{\"cam\":false}"}),
    )
    .await;
    assert_eq!(
        ack,
        json!({"command":"notification","definition":"streamMetaDataUpdated","streamId":"a1","metaData":"{\"cam\":false}"})
    );
    let info = ask(
        &mut b,
        json!({"command":"getRoomInfo","room":room,"streamId":"b1"}),
    )
    .await;
    assert_eq!(info["streamList"][0]["metaData"], "{\"cam\":false}");
    let err = ask(
        &mut a,
        json!({"command":"updateStreamMetaData","streamId":"b1","metaData":"x"}),
    )
    .await;
    assert_eq!(err["definition"], "refused", "{err}");
    let err = ask(
        &mut a,
        json!({"command":"updateStreamMetaData","streamId":"zz","metaData":"x"}),
    )
    .await;
    assert_eq!(err["definition"], "no_stream_exist");
    gw.stop().await;
}

#[tokio::test]
async fn publish_and_play_say_media_needs_the_media_plugin() {
    let gw = TestGateway::with_config(CONFIG).await;
    let mut a = ant(&gw).await;
    a.send_text(r#"{"command":"publish","streamId":"pubStream1","subscriberId":"","subscriberCode":"","streamName":"","mainTrack":"","video":true,"audio":true,"metaData":"","role":""}"#).await;
    let err = a.recv_json().await;
    assert_eq!(
        err,
        json!({"command":"error","definition":"media_plugin_not_running","streamId":"pubStream1","information":"conference media needs the media plugin (not running)"})
    );
    a.send_text(r#"{"command":"play","streamId":"playStream1","token":"","room":"","trackList":[],"subscriberId":"","subscriberCode":"","viewerInfo":"","role":"","userPublishId":""}"#).await;
    let err = a.recv_json().await;
    assert_eq!(err["definition"], "media_plugin_not_running");
    assert_eq!(err["streamId"], "playStream1");
    // The SDK stops a publish it retries; stopping one's own participant stream is quiet.
    join_room(&mut a, "conf-media", Some("mine")).await;
    a.send_json(json!({"command":"stop","streamId":"mine"}))
        .await;
    a.expect_silence(300).await;
    // Track control is the media plugin's too: without it, the same refusal as publish/play.
    let err = ask(
        &mut a,
        json!({"command":"enableTrack","streamId":"conf-media","trackId":"x","enabled":true}),
    )
    .await;
    assert_eq!(err["definition"], "media_plugin_not_running", "{err}");
    assert_eq!(err["streamId"], "conf-media", "{err}");
    assert!(field(&err, "information").contains("media plugin"), "{err}");
    gw.stop().await;
}

#[tokio::test]
async fn malformed_conference_commands() {
    let gw = TestGateway::with_config(CONFIG).await;
    let mut a = ant(&gw).await;
    let err = ask(&mut a, json!({"command":"joinRoom","streamId":"s"})).await;
    assert_eq!(
        err,
        json!({"command":"error","definition":"no_room_specified"})
    );
    let err = ask(&mut a, json!({"command":"joinRoom","room":"a b"})).await;
    assert_eq!(err["definition"], "invalidStreamName");
    let err = ask(&mut a, json!({"command":"getStreamInfo"})).await;
    assert_eq!(err["definition"], "noStreamNameSpecified");
    let err = ask(
        &mut a,
        json!({"command":"getSubtracks","streamId":"r","offset":"zero"}),
    )
    .await;
    assert_eq!(err["definition"], "invalid_field");

    // A stream id another participant uses.
    let mut b = ant(&gw).await;
    join_room(&mut b, "conf-bad", Some("taken")).await;
    let err = ask(
        &mut a,
        json!({"command":"joinRoom","room":"conf-bad","streamId":"taken"}),
    )
    .await;
    assert_eq!(err, json!({"command":"error","definition":"streamIdInUse"}));
    // A P2P peer of the room cannot also join it as a participant.
    let mut p = ant(&gw).await;
    p.send_json(json!({"command":"join","streamId":"conf-p2p"}))
        .await;
    assert_eq!(p.recv_json().await["definition"], "joined");
    let err = ask(&mut p, json!({"command":"joinRoom","room":"conf-p2p"})).await;
    assert_eq!(err["definition"], "refused");
    // And the connection is fine afterwards.
    assert_eq!(
        ask(&mut a, json!({"command":"ping"})).await["command"],
        "pong"
    );
    gw.stop().await;
}

#[tokio::test]
async fn without_the_conference_plugin_conference_commands_are_refused_clearly() {
    let gw = TestGateway::start().await;
    let mut a = ant(&gw).await;
    let err = ask(
        &mut a,
        json!({"command":"joinRoom","room":"r1","mainTrack":"r1"}),
    )
    .await;
    assert_eq!(err["definition"], "unsupported_command", "{err}");
    assert_eq!(err["streamId"], "r1");
    assert!(
        field(&err, "information").contains("conference plugin"),
        "{err}"
    );
    let err = ask(&mut a, json!({"command":"publish","streamId":"s1"})).await;
    assert_eq!(err["definition"], "unsupported_command");
    // Nothing joined: a P2P join of the same room is still a first peer.
    a.send_json(json!({"command":"join","streamId":"r1"})).await;
    assert_eq!(a.recv_json().await["definition"], "joined");
    gw.stop().await;
}
