//! Every way a session ends is true and counted once (issue 17 item 6), on real WebSockets:
//! a text frame that is not UTF-8 closes with 1007 in every dialect; an Ant Media or raw peer
//! that stops answering the gateway's WebSocket pings is dropped, its partner told and the room
//! freed; every end is one count in `switchboard_sessions_closed_total`.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use switchboard_tests::metrics::{self, scrape};
use switchboard_tests::{Received, TestGateway, WsClient, field, http_get, limits_config};

/// Reads until the close frame; returns its code and reason.
async fn close_of(client: &mut WsClient) -> (u16, String) {
    loop {
        match client.recv().await {
            Received::Text(_) => {}
            Received::Closed(Some(frame)) => return (frame.code.into(), frame.reason.to_string()),
            Received::Closed(None) => panic!("closed without a close frame"),
        }
    }
}

/// Not UTF-8: a lone continuation byte and a truncated sequence.
const NOT_UTF8: &[u8] = b"{\"type\":\"offer\",\"sdp\":\"\x80\xe2\x82\"}";

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007_in_every_dialect() {
    let gw = TestGateway::with_config(&limits_config("")).await;
    // Ant Media.
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_raw_text(NOT_UTF8.to_vec()).await;
    assert_eq!(
        close_of(&mut ant).await,
        (1007, "text frame is not UTF-8".to_owned())
    );
    // raw.
    let mut raw = WsClient::connect(&gw.raw_url("utf8")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");
    raw.send_raw_text(NOT_UTF8.to_vec()).await;
    assert_eq!(
        close_of(&mut raw).await,
        (1007, "text frame is not UTF-8".to_owned())
    );
    // socket.io on a direct WebSocket: after the engine.io open and the namespace connect.
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&room=utf8io",
        gw.main
    );
    let mut sio = WsClient::connect(&url).await;
    assert!(sio.recv_text().await.starts_with("0{"));
    sio.send_text("40").await;
    assert!(sio.recv_text().await.starts_with("40"));
    let mut packet = b"42[\"msg\",\"".to_vec();
    packet.extend_from_slice(b"\x80\xe2\x82\"]");
    sio.send_raw_text(packet.clone()).await;
    assert_eq!(
        close_of(&mut sio).await,
        (1007, "text frame is not UTF-8".to_owned())
    );
    // socket.io-client 2 (engine.io 3) on a direct WebSocket: the server connects `/` itself.
    let url = format!(
        "ws://{}/socket.io/?EIO=3&transport=websocket&room=utf8io3",
        gw.main
    );
    let mut sio3 = WsClient::connect(&url).await;
    let open = sio3.recv_text().await;
    assert!(
        open.starts_with("0{") && !open.contains("maxPayload"),
        "{open}"
    );
    assert_eq!(sio3.recv_text().await, "40");
    sio3.send_raw_text(packet).await;
    assert_eq!(
        close_of(&mut sio3).await,
        (1007, "text frame is not UTF-8".to_owned())
    );

    let body = scrape(&gw).await;
    for (dialect, count) in [("antmedia", 1), ("raw", 1), ("socketio", 2)] {
        let errors =
            format!(r#"switchboard_errors_total{{dialect="{dialect}",reason="invalid_utf8"}}"#);
        assert_eq!(metrics::sum(&body, &errors), count, "{errors} in\n{body}");
        let ends = format!(
            r#"switchboard_sessions_closed_total{{dialect="{dialect}",reason="invalid utf-8"}}"#
        );
        assert_eq!(metrics::sum(&body, &ends), count, "{ends} in\n{body}");
    }
    gw.stop().await;
}

/// A raw peer that stops reading stops answering pings: it is dropped within about two ping
/// intervals, its partner gets `switchboard.peer-left`, and the room takes a new peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_peer_that_stops_answering_pings_is_dropped_and_its_room_freed() {
    let gw = TestGateway::with_config(&limits_config("ping_interval_secs = 1")).await;
    let mut a = WsClient::connect(&gw.raw_url("silent")).await;
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.joined");
    let mut gone = WsClient::connect(&gw.raw_url("silent")).await;
    assert_eq!(field(&gone.recv_json().await, "type"), "switchboard.joined");
    assert_eq!(
        field(&gone.recv_json().await, "type"),
        "switchboard.peer-joined"
    );
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.start");
    // `gone` reads nothing from now on, so its client never answers a ping. `a` keeps reading
    // (its client answers every ping), and it is the one that hears about it.
    let left = a.recv_json().await;
    assert_eq!(field(&left, "type"), "switchboard.peer-left", "{left}");
    // The room is free: a third peer joins and is paired with `a`.
    let mut c = WsClient::connect(&gw.raw_url("silent")).await;
    assert_eq!(field(&c.recv_json().await, "type"), "switchboard.joined");
    assert_eq!(
        field(&c.recv_json().await, "type"),
        "switchboard.peer-joined"
    );
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.start");
    let body = scrape(&gw).await;
    assert_eq!(
        metrics::sum(
            &body,
            r#"switchboard_sessions_closed_total{dialect="raw",reason="ping timeout"}"#
        ),
        1,
        "{body}"
    );
    drop(gone);
    gw.stop().await;
}

/// The same for an Ant Media peer: its partner gets the Ant leave signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ant_peer_that_stops_answering_pings_is_dropped_and_its_partner_told() {
    let gw = TestGateway::with_config(&limits_config("ping_interval_secs = 1")).await;
    let join = json!({"command":"join","streamId":"silent-ant","multiPeer":false,"mode":"both"});
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    a.send_json(join.clone()).await;
    assert_eq!(field(&a.recv_json().await, "definition"), "joined");
    let mut gone = WsClient::connect(&gw.ant_url("LiveApp")).await;
    gone.send_json(join).await;
    assert_eq!(field(&gone.recv_json().await, "definition"), "joined");
    assert_eq!(field(&a.recv_json().await, "command"), "start");
    let left = a.recv_json().await;
    assert_eq!(field(&left, "command"), "stop", "{left}");
    let body = scrape(&gw).await;
    assert_eq!(
        metrics::sum(
            &body,
            r#"switchboard_sessions_closed_total{dialect="antmedia",reason="ping timeout"}"#
        ),
        1,
        "{body}"
    );
    drop(gone);
    gw.stop().await;
}

/// Pings go out while a session is busy relaying: the keepalive timer is polled only once it has
/// fired (`session.rs`, `expiry`), and firing must still be seen while the session's loop is
/// kept turning by a steady stream of deliveries. `b` reads with a bare client that shows the
/// WebSocket pings it gets (and answers them, as tungstenite does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_go_out_while_a_session_is_busy_relaying() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let gw = TestGateway::with_config(&limits_config("ping_interval_secs = 1")).await;
    let mut a = WsClient::connect(&gw.raw_url("busy")).await;
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.joined");
    let (mut b, _) = tokio_tungstenite::connect_async(gw.raw_url("busy"))
        .await
        .unwrap();
    // 3.5 s of a frame every 20 ms from `a` to `b`: about three ping intervals.
    const FRAMES: usize = 175;
    let sender = async {
        for n in 0..FRAMES {
            a.send_json(json!({"type":"candidate","candidate":format!("candidate:{n}")}))
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        a
    };
    let reader = async {
        let (mut relayed, mut pings) = (0, 0);
        while relayed < FRAMES {
            match b.next().await.unwrap().unwrap() {
                Message::Ping(_) => pings += 1,
                Message::Text(text) if text.contains("candidate:") => relayed += 1,
                _ => {}
            }
        }
        (relayed, pings)
    };
    let (a, (relayed, pings)) = tokio::join!(sender, reader);
    assert_eq!(relayed, FRAMES);
    assert!(
        pings >= 2,
        "{pings} pings in 3.5 s of relaying at a 1 s interval"
    );
    drop((a, b));
    gw.stop().await;
}

/// The `sid` of an engine.io open packet.
fn sid_of(open: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(open.trim_start_matches('0')).unwrap();
    json["sid"].as_str().unwrap().to_owned()
}

/// Over long-polling, a payload engine.io or socket.io cannot parse ends the
/// session as over WebSocket: counted once as `malformed_packet`, one session end by that
/// reason, and the room is left (before: no count, no reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_long_polling_payload_is_counted_once_and_ends_the_session() {
    let gw = TestGateway::with_config(&limits_config("")).await;
    let bodies: [&str; 3] = [r#"42["msg","#, "42[\"msg\",\"a\u{0}b\"]", "\u{0}"];
    for (n, body) in bodies.iter().enumerate() {
        let base = format!("/socket.io/?EIO=4&transport=polling&room=poll-bad-{n}");
        let (status, open) = http_get(gw.main, &base).await;
        assert_eq!(status, 200, "{open}");
        let session = format!("{base}&sid={}", sid_of(&open));
        let (status, _) =
            switchboard_tests::http_request(gw.main, "POST", &session, Some("40")).await;
        assert_eq!(status, 200);
        // The connect reply; an engine.io ping (`2`) may come first on a busy machine.
        let mut polls = Vec::new();
        for _ in 0..5 {
            let (status, body) = http_get(gw.main, &session).await;
            let connected = status == 200 && body.contains("40{");
            polls.push((status, body));
            if connected || polls.last().is_some_and(|(s, b)| *s != 200 || b != "2") {
                break;
            }
        }
        let (status, connected) = polls.last().cloned().unwrap_or_default();
        assert!(
            status == 200 && connected.contains("40{"),
            "{status} {connected} (polls: {polls:?})"
        );
        let room = format!("poll-bad-{n}");
        assert_eq!(
            gw.running()
                .gateway()
                .dispatcher()
                .room_members(&room)
                .len(),
            1
        );
        switchboard_tests::http_request(gw.main, "POST", &session, Some(body)).await;
        // The session is gone: its room is empty.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !gw
            .running()
            .gateway()
            .dispatcher()
            .room_members(&room)
            .is_empty()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{room} still has its member"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let body = scrape(&gw).await;
    assert_eq!(
        metrics::sum(
            &body,
            r#"switchboard_errors_total{dialect="socketio",reason="malformed_packet"}"#
        ),
        3,
        "{body}"
    );
    assert_eq!(
        metrics::sum(
            &body,
            r#"switchboard_sessions_closed_total{dialect="socketio",reason="malformed packet"}"#
        ),
        3,
        "{body}"
    );
    gw.stop().await;
}
