//! WHIP ingest and WHEP playback over HTTP (RFC 9725), without a browser: real str0m media
//! peers on loopback make the offers, an in-process gateway with the `conference` and `sfu`
//! plugins answers. A WHIP publisher is listed for Ant clients and played by an Ant player and
//! a WHEP player; trickle ICE, ICE restart (422), DELETE; tokens checked like a raw peer's
//! publish token; every kind of bad input answered with its status, counted once, the gateway
//! unaffected. Docs: docs/whip-whep.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::ant::ask;
use switchboard_tests::media::MediaPeer;
use switchboard_tests::metrics::{errors, sample, scrape};
use switchboard_tests::{TestGateway, WsClient, field, http_get, http_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "raw"]

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "conference"

[[plugin]]
type = "sfu"
[plugin.settings]
udp_bind = "127.0.0.1:0"

[[plugin]]
type = "room-router"
"#;

const WAIT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 exchange (`Connection: close`): status, head and body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    /// The value of header `name` (any case), if present.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write head");
    // A refusal may close before the whole body is sent; that is the point of some tests.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .expect("an answer, not a reset");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn post_sdp(addr: SocketAddr, path: &str, sdp: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/sdp")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    exchange(addr, "POST", path, &headers, sdp.as_bytes()).await
}

/// The next Ant frame that is not a pong.
async fn next(ws: &mut WsClient) -> Value {
    loop {
        let v = ws.recv_json().await;
        if v["command"] != "pong" {
            return v;
        }
    }
}

/// Publishes over WHIP with a fresh str0m peer until it is connected: the peer and the
/// resource's `Location`.
async fn whip_publish(gw: &TestGateway, path: &str, epoch: Instant) -> (MediaPeer, String, String) {
    let mut peer = MediaPeer::new(epoch).await;
    let offer = peer.publish_offer();
    let ufrag = offer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .expect("the offer has an ICE ufrag")
        .to_owned();
    let reply = post_sdp(gw.main, path, &offer, None).await;
    assert_eq!(reply.status, 201, "{}{}", reply.head, reply.body);
    assert_eq!(reply.header("content-type"), Some("application/sdp"));
    assert_eq!(
        reply.header("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    let location = reply.header("location").expect("a Location").to_owned();
    peer.accept_answer(&reply.body);
    assert!(
        peer.pump_until(WAIT, |p| p.connected).await,
        "WHIP publisher connects"
    );
    (peer, location, ufrag)
}

/// Sends frames from `publisher` for `ms` while pumping `players`; frames each received.
async fn flow(publisher: &mut MediaPeer, players: &mut [&mut MediaPeer], ms: u64) -> Vec<u64> {
    let before: Vec<u64> = players.iter().map(|p| p.frames_total()).collect();
    let mut t = 0;
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        publisher.send_frames(300, t);
        publisher
            .pump(Instant::now() + Duration::from_millis(2))
            .await;
        for p in players.iter_mut() {
            p.pump(Instant::now() + Duration::from_millis(8)).await;
        }
        t += 20;
    }
    players
        .iter()
        .zip(before)
        .map(|(p, b)| p.frames_total() - b)
        .collect()
}

/// An Ant player of `room` with a str0m peer, up to `play_started`.
async fn ant_player(gw: &TestGateway, room: &str, epoch: Instant) -> (WsClient, MediaPeer, Value) {
    let mut ws = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ws.send_json(json!({"command":"play","streamId":room,"token":"","room":room,"trackList":[]}))
        .await;
    let offer = next(&mut ws).await;
    assert_eq!(offer["command"], "takeConfiguration", "{offer}");
    let mut peer = MediaPeer::new(epoch).await;
    let answer = peer.answer(field(&offer, "sdp"));
    ws.send_json(
        json!({"command":"takeConfiguration","streamId":room,"type":"answer","sdp":answer}),
    )
    .await;
    assert!(
        peer.pump_until(WAIT, |p| p.connected).await,
        "Ant player connects"
    );
    (ws, peer, offer)
}

#[tokio::test]
async fn a_whip_publisher_is_listed_and_played_by_ant_and_whep_until_deleted() {
    let gw = TestGateway::with_config(CONFIG).await;
    let epoch = Instant::now();
    let (mut obs, location, ufrag) = whip_publish(&gw, "/whip/r1?streamId=obs1", epoch).await;
    assert!(location.starts_with("/whip/r1/"), "{location}");

    // Ant clients see a participant of the room, by the stream id the URL gave.
    let mut q = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let info = ask(
        &mut q,
        json!({"command":"getRoomInfo","room":"r1","streamId":""}),
    )
    .await;
    assert_eq!(info["streams"], json!(["obs1"]), "{info}");
    let tracks = ask(
        &mut q,
        json!({"command":"getTrackList","streamId":"r1","token":""}),
    )
    .await;
    assert_eq!(tracks["trackList"], json!(["obs1"]), "{tracks}");
    let object = ask(
        &mut q,
        json!({"command":"getBroadcastObject","streamId":"obs1"}),
    )
    .await;
    let broadcast: Value = serde_json::from_str(field(&object, "broadcast")).expect("JSON");
    assert_eq!(broadcast["mainTrackStreamId"], "r1", "{broadcast}");

    // An Ant player of the room is offered the WHIP publisher's tracks, and a WHEP player
    // gets them in its own offer's sections.
    let (_ant_ws, mut ant, offer) = ant_player(&gw, "r1", epoch).await;
    let mapped: Vec<&str> = offer["idMapping"]
        .as_object()
        .expect("idMapping")
        .values()
        .filter_map(Value::as_str)
        .collect();
    assert!(mapped.contains(&"ARDAMSvobs1"), "{offer}");
    let mut whep = MediaPeer::new(epoch).await;
    let reply = post_sdp(gw.main, "/whep/r1", &whep.play_offer(), None).await;
    assert_eq!(reply.status, 201, "{}{}", reply.head, reply.body);
    let whep_location = reply.header("location").expect("Location").to_owned();
    assert!(whep_location.starts_with("/whep/r1/"), "{whep_location}");
    whep.accept_answer(&reply.body);
    assert!(
        whep.pump_until(WAIT, |p| p.connected).await,
        "WHEP player connects"
    );
    let got = flow(&mut obs, &mut [&mut ant, &mut whep], 2000).await;
    assert!(got[0] > 20, "the Ant player received {} frames", got[0]);
    assert!(got[1] > 20, "the WHEP player received {} frames", got[1]);

    // Trickle ICE: a fragment with the offer's credentials is taken (204); one with others
    // is an ICE restart, which is not supported (422).
    let frag = format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:whatever-the-pwd-is-here\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
    );
    let sdpfrag = [("Content-Type", "application/trickle-ice-sdpfrag")];
    let r = exchange(gw.main, "PATCH", &location, &sdpfrag, frag.as_bytes()).await;
    assert_eq!(r.status, 204, "{}{}", r.head, r.body);
    let restart = frag.replace(&format!("ice-ufrag:{ufrag}"), "ice-ufrag:other");
    let r = exchange(gw.main, "PATCH", &location, &sdpfrag, restart.as_bytes()).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let with_star = [sdpfrag[0], ("If-Match", "*")];
    let r = exchange(gw.main, "PATCH", &location, &with_star, frag.as_bytes()).await;
    assert_eq!(r.status, 422, "{}", r.body);

    // DELETE ends it: the Ant player is offered the room without it, room queries forget it,
    // and the resource is gone.
    let r = exchange(gw.main, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut info = Value::Null;
    for _ in 0..50 {
        let ask_info = json!({"command":"getRoomInfo","room":"r1","streamId":""});
        info = ask(&mut q, ask_info).await;
        // The room has no one left: Ant's answer for an empty room.
        if info["definition"] == "no_active_streams_in_room" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        info,
        json!({"command":"error","definition":"no_active_streams_in_room","room":"r1"}),
        "the WHIP publisher left"
    );
    let r = exchange(gw.main, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = exchange(gw.main, "DELETE", &whep_location, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.stop().await;
}

/// One bad request: method, path, headers, body, the status and the counted reason.
type BadCase = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

/// Every malformed request gets its own status and a plain sentence, counted once under
/// `switchboard_errors_total{dialect="whip"|"whep"}`, before any session place is taken or any
/// body is read beyond the limit; the gateway goes on serving.
#[tokio::test]
async fn bad_whip_and_whep_requests_are_refused_clearly_and_counted_once() {
    let gw = TestGateway::with_config(CONFIG).await;
    let sdp =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    let cases: Vec<BadCase> = vec![
        (
            "POST",
            "/whip/r1",
            vec![("Content-Type", "application/json")],
            br#"{"sdp":"v=0"}"#.to_vec(),
            415,
            "wrong_content_type",
        ),
        (
            "POST",
            "/whip/r1",
            vec![],
            sdp.as_bytes().to_vec(),
            415,
            "wrong_content_type",
        ),
        (
            "POST",
            "/whip/r1",
            vec![("Content-Type", "application/sdp")],
            b"hello, not SDP".to_vec(),
            400,
            "not_sdp",
        ),
        (
            "POST",
            "/whep/r1",
            vec![("Content-Type", "application/sdp")],
            b"{\"type\":\"offer\"}".to_vec(),
            400,
            "not_sdp",
        ),
        (
            "POST",
            "/whip/r1",
            vec![("Content-Type", "application/sdp")],
            vec![0xff, 0xfe, b'v'],
            400,
            "malformed_body",
        ),
        (
            "POST",
            "/whip/bad%20room",
            vec![("Content-Type", "application/sdp")],
            sdp.as_bytes().to_vec(),
            400,
            "invalid_stream_name",
        ),
        (
            "POST",
            "/whip/r1?streamId=a/b",
            vec![("Content-Type", "application/sdp")],
            sdp.as_bytes().to_vec(),
            400,
            "invalid_stream_name",
        ),
        (
            "POST",
            "/whip/r1?bogus=1",
            vec![("Content-Type", "application/sdp")],
            sdp.as_bytes().to_vec(),
            400,
            "bad_query",
        ),
        (
            "PATCH",
            "/whip/r1/0123456789abcdef0123456789abcdef",
            vec![("Content-Type", "application/trickle-ice-sdpfrag")],
            b"a=ice-ufrag:x\r\na=ice-pwd:y\r\n".to_vec(),
            404,
            "no_such_resource",
        ),
        (
            "DELETE",
            "/whep/r1/nope",
            vec![],
            Vec::new(),
            404,
            "no_such_resource",
        ),
        // An SDP that passes the first look but that the media library cannot read.
        (
            "POST",
            "/whip/r1",
            vec![("Content-Type", "application/sdp")],
            b"v=0\r\nm=video x y z\r\n".to_vec(),
            400,
            "bad_description",
        ),
    ];
    for (method, path, headers, body, status, reason) in &cases {
        let endpoint = if path.starts_with("/whep") {
            "whep"
        } else {
            "whip"
        };
        let before = sample(&scrape(&gw).await, &errors(endpoint, reason));
        let r = exchange(gw.main, method, path, headers, body).await;
        assert_eq!(r.status, *status, "{method} {path}: {}{}", r.head, r.body);
        assert!(
            r.body.starts_with(&format!("{reason}: ")),
            "{method} {path}: {}",
            r.body
        );
        assert!(r.body.len() < 400, "a bounded sentence: {}", r.body);
        let after = sample(&scrape(&gw).await, &errors(endpoint, reason));
        assert_eq!(
            after,
            before + 1,
            "{method} {path} counted once as {reason}"
        );
    }
    // A declared length above the limit is refused before the body is read.
    let before = sample(&scrape(&gw).await, &errors("whip", "body_too_large"));
    let r = declared_only(gw.main, "/whip/r1", 200_000).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("body_too_large: "), "{r}");
    let after = sample(&scrape(&gw).await, &errors("whip", "body_too_large"));
    assert_eq!(after, before + 1);
    // 415 says what the endpoint takes.
    let r = exchange(
        gw.main,
        "POST",
        "/whip/r1",
        &[("Content-Type", "text/plain")],
        b"v=0",
    )
    .await;
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    // A chunked body that grows past the limit is cut off with 413 as well.
    let r = chunked_post(gw.main, "/whip/r1", 300_000).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Methods the resource does not have: 405.
    let r = exchange(gw.main, "GET", "/whip/r1", &[], b"").await;
    assert_eq!(r.status, 405);

    // CORS preflight (RFC 9725 §4.2) on the endpoint and on a resource.
    let origin = [
        ("Origin", "http://127.0.0.1:9"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let r = exchange(gw.main, "OPTIONS", "/whip/r1", &origin, b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:9")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization"))
    );
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    let r = exchange(gw.main, "OPTIONS", "/whep/r1/any", &origin, b"").await;
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("PATCH, DELETE, OPTIONS")
    );

    // Nothing of that touched the gateway: it is healthy and holds no session.
    let (status, _) = http_get(gw.main, "/healthz").await;
    assert_eq!(status, 200);
    gw.stop().await;
}

/// A POST whose head declares `length` bytes of SDP and that sends none: the raw response.
async fn declared_only(addr: SocketAddr, path: &str, length: usize) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/sdp\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// A chunked POST of `size` bytes of `v`: the raw response head.
async fn chunked_post(addr: SocketAddr, path: &str, size: usize) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/sdp\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'v'; 16_384];
    let mut sent = 0;
    while sent < size {
        let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
        piece.extend_from_slice(&chunk);
        piece.extend_from_slice(b"\r\n");
        if stream.write_all(&piece).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// With stream security, a WHIP publish needs the default application's publish token as a
/// bearer token (one-time tokens minted by the REST API, as for a raw peer), and the
/// resource's PATCH and DELETE need the same token.
#[tokio::test]
async fn whip_bearer_tokens_are_checked_like_publish_tokens() {
    let config =
        format!("{CONFIG}\n[[antmedia_app]]\nname = \"LiveApp\"\npublish = \"one_time\"\n");
    let gw = TestGateway::with_config(&config).await;
    let epoch = Instant::now();
    let mut peer = MediaPeer::new(epoch).await;
    let offer = peer.publish_offer();
    let before = sample(&scrape(&gw).await, &errors("whip", "unauthorized"));
    let r = post_sdp(gw.main, "/whip/r1?streamId=cam1", &offer, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = post_sdp(
        gw.main,
        "/whip/r1?streamId=cam1",
        &offer,
        Some("not-a-token"),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let after = sample(&scrape(&gw).await, &errors("whip", "unauthorized"));
    assert_eq!(after, before + 2);

    let mint = "/LiveApp/rest/v2/broadcasts/cam1/token?expireDate=4102444800&type=publish";
    let (status, body) = http_request(gw.main, "GET", mint, None).await;
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).expect("JSON");
    let token = field(&token, "tokenId").to_owned();
    let r = post_sdp(gw.main, "/whip/r1?streamId=cam1", &offer, Some(&token)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").expect("Location").to_owned();
    // The resource answers only to the token it was made with.
    let r = exchange(gw.main, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let bearer = format!("Bearer {token}");
    let r = exchange(
        gw.main,
        "DELETE",
        &location,
        &[("Authorization", &bearer)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Under an application's path (as Ant Media Server serves WHIP): an application the
    // gateway does not serve is refused before anything else; a served one's checks apply,
    // and the resource lives under the same prefix.
    let r = post_sdp(gw.main, "/OtherApp/whip/r1?streamId=cam2", &offer, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.starts_with("unknown_app: "), "{}", r.body);
    let r = post_sdp(gw.main, "/LiveApp/whip/r1?streamId=cam2", &offer, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let mint = "/LiveApp/rest/v2/broadcasts/cam2/token?expireDate=4102444800&type=publish";
    let (_, body) = http_request(gw.main, "GET", mint, None).await;
    let token: Value = serde_json::from_str(&body).expect("JSON");
    let token = field(&token, "tokenId").to_owned();
    let r = post_sdp(
        gw.main,
        "/LiveApp/whip/r1?streamId=cam2",
        &offer,
        Some(&token),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").expect("Location").to_owned();
    assert!(location.starts_with("/LiveApp/whip/r1/"), "{location}");
    let bearer = [("Authorization", format!("Bearer {token}"))];
    let bearer: Vec<(&str, &str)> = bearer.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let plain = location.trim_start_matches("/LiveApp");
    let r = exchange(gw.main, "DELETE", plain, &bearer, b"").await;
    assert_eq!(
        r.status, 404,
        "a resource is reached at its own Location only"
    );
    let r = exchange(gw.main, "DELETE", &location, &bearer, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Each refusal was counted once, as WHIP's (three POSTs without a good token, a DELETE
    // without the token): none as a raw peer's.
    let metrics = scrape(&gw).await;
    assert_eq!(
        sample(&metrics, &errors("whip", "unauthorized")),
        before + 4
    );
    assert_eq!(sample(&metrics, &errors("whip", "unknown_app")), 1);
    assert_eq!(sample(&metrics, &errors("raw", "unauthorized")), 0);
    gw.stop().await;
}

/// A resource holds one session place for its life: with `max_connections_per_ip = 1`, a
/// second POST from the same address is refused (429, `Retry-After`) before its body is read,
/// counted once as WHIP's; DELETE gives the place back.
#[tokio::test]
async fn a_whip_resource_holds_a_session_place_under_the_per_ip_cap() {
    let config = format!("{CONFIG}\n[limits]\nmax_connections_per_ip = 1\n");
    let gw = TestGateway::with_config(&config).await;
    let epoch = Instant::now();
    let (_peer, location, _) = whip_publish(&gw, "/whip/r1?streamId=one", epoch).await;
    let mut second = MediaPeer::new(epoch).await;
    let offer = second.publish_offer();
    let r = post_sdp(gw.main, "/whip/r1?streamId=two", &offer, None).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.starts_with("too_many_connections: "), "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    let metrics = scrape(&gw).await;
    assert_eq!(sample(&metrics, &errors("whip", "too_many_connections")), 1);
    assert_eq!(sample(&metrics, &errors("raw", "too_many_connections")), 0);

    let r = exchange(gw.main, "DELETE", &location, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The place is released when the resource's task ends (at once, but on another task).
    let mut status = 0;
    for _ in 0..50 {
        status = post_sdp(gw.main, "/whip/r1?streamId=two", &offer, None)
            .await
            .status;
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201, "the place came back");
    gw.stop().await;
}

/// Without the `sfu` plugin there is no media to publish into: a clear 503 at once (the
/// conference plugin's `media_unavailable`), counted once, and no session left behind.
#[tokio::test]
async fn without_the_sfu_plugin_whip_is_refused_at_once() {
    let config = CONFIG.replace(
        "[[plugin]]\ntype = \"sfu\"\n[plugin.settings]\nudp_bind = \"127.0.0.1:0\"\n",
        "",
    );
    assert!(!config.contains("sfu"), "{config}");
    let gw = TestGateway::with_config(&config).await;
    let mut peer = MediaPeer::new(Instant::now()).await;
    let r = post_sdp(gw.main, "/whip/r1", &peer.publish_offer(), None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.starts_with("media_unavailable: "), "{}", r.body);
    let metrics = scrape(&gw).await;
    assert_eq!(sample(&metrics, &errors("whip", "media_unavailable")), 1);
    gw.stop().await;
}
