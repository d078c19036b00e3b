//! The built-in plugins over real WebSockets: room-policy refusals as each dialect renders them,
//! the two-peer relay's SimpleP2P semantics, and the logging plugin's file output.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchboard::GatewayConfig;
use switchboard_room_policy::sign_hs256;
use switchboard_tests::{TestGateway, WsClient, every_dialect_config, field, repo_root};

/// One loopback listener with every dialect, then `plugins` (TOML `[[plugin]]` tables) and the
/// router.
fn config(plugins: &str) -> String {
    every_dialect_config(&format!(
        "{plugins}\n\n[[plugin]]\ntype = \"room-router\"\n"
    ))
}
fn join(room: &str) -> Value {
    json!({"command":"join","streamId":room,"mode":"both"})
}

fn join_with_token(room: &str, token: &str) -> Value {
    json!({"command":"join","streamId":room,"mode":"both","token":token})
}

fn joined(room: &str) -> String {
    format!(r#"{{"command":"notification","definition":"joined","streamId":"{room}"}}"#)
}

async fn ant(gw: &TestGateway) -> WsClient {
    WsClient::connect(&gw.ant_url("LiveApp")).await
}

/// Expects a raw peer's refusal: a `switchboard.error` with `code`, then a close with
/// `close_code`. Returns the error's message.
async fn expect_raw_refusal(c: &mut WsClient, code: &str, close_code: u16) -> String {
    let err = c.recv_json().await;
    assert_eq!(field(&err, "type"), "switchboard.error", "{err}");
    assert_eq!(field(&err, "code"), code, "{err}");
    let frame = c.recv_close().await.expect("close frame");
    assert_eq!(u16::from(frame.code), close_code);
    field(&err, "message").to_owned()
}

/// The Ant peer is still connected and answering.
async fn still_connected(c: &mut WsClient) {
    c.send_json(json!({"command":"ping"})).await;
    assert_eq!(c.recv_text().await, r#"{"command":"pong"}"#);
}

#[tokio::test]
async fn room_policy_room_full_and_pattern_reach_ant_and_raw_peers() {
    let gw = TestGateway::with_config(&config(
        r#"
[[plugin]]
type = "room-policy"
[plugin.settings]
max_peers = 1
room_pattern = "[a-z0-9-]+"
"#,
    ))
    .await;
    let mut a = ant(&gw).await;
    a.send_json(join("solo")).await;
    assert_eq!(a.recv_text().await, joined("solo"));

    let mut b = ant(&gw).await;
    b.send_json(join("solo")).await;
    assert_eq!(
        b.recv_text().await,
        r#"{"command":"error","definition":"NoSpaceForNewPeer","streamId":"solo"}"#
    );
    // A valid Ant stream id that the pattern refuses: Ant's own definition, no `information`.
    b.send_json(join("Bad_Name")).await;
    assert_eq!(
        b.recv_text().await,
        r#"{"command":"error","definition":"invalidStreamName","streamId":"Bad_Name"}"#
    );
    still_connected(&mut b).await;

    let mut r = WsClient::connect(&gw.raw_url("solo")).await;
    expect_raw_refusal(&mut r, "room_full", 4409).await;
    let mut r = WsClient::connect(&gw.raw_url("UPPER")).await;
    let message = expect_raw_refusal(&mut r, "invalid_stream_name", 4403).await;
    assert!(message.contains("[a-z0-9-]+"), "{message}");
    gw.stop().await;
}

fn now_secs() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

const JWT_KEY: &str = "end-to-end-test-key-of-32-bytes-or-more";

#[tokio::test]
async fn jwt_join_tokens_over_ant_and_raw() {
    let gw = TestGateway::with_config(&config(&format!(
        r#"
[[plugin]]
type = "room-policy"
[plugin.settings]
token = {{ jwt_hs256_secret = "{JWT_KEY}" }}
"#
    )))
    .await;
    let key = JWT_KEY.as_bytes();
    let good = sign_hs256(&json!({"exp": now_secs() + 300, "room": "secure"}), key);
    let expired = sign_hs256(&json!({"exp": now_secs() - 10, "room": "secure"}), key);
    let other_room = sign_hs256(&json!({"exp": now_secs() + 300, "room": "other"}), key);
    let forged = sign_hs256(
        &json!({"exp": now_secs() + 300}),
        b"not-the-key-but-also-32-bytes-long!!",
    );
    let unauthorized =
        r#"{"command":"error","definition":"unauthorized_access","streamId":"secure"}"#;

    let mut a = ant(&gw).await;
    a.send_json(join("secure")).await;
    assert_eq!(a.recv_text().await, unauthorized, "no token");
    for bad in [&expired, &other_room, &forged, &"not.a.jwt".to_owned()] {
        a.send_json(join_with_token("secure", bad)).await;
        assert_eq!(a.recv_text().await, unauthorized, "token {bad}");
    }
    a.send_json(join_with_token("secure", &good)).await;
    assert_eq!(a.recv_text().await, joined("secure"));

    // Raw peers give the token in the query.
    let mut r = WsClient::connect(&format!("{}?token={expired}", gw.raw_url("secure"))).await;
    let message = expect_raw_refusal(&mut r, "unauthorized", 4403).await;
    assert_eq!(message, "join token expired");
    let mut r = WsClient::connect(&format!("{}?token={good}", gw.raw_url("secure"))).await;
    assert_eq!(
        r.recv_json().await,
        json!({"type":"switchboard.joined","room":"secure"})
    );
    assert_eq!(
        a.recv_text().await,
        r#"{"command":"start","streamId":"secure"}"#
    );
    gw.stop().await;
}

#[tokio::test]
async fn shared_secret_and_dialect_rules() {
    let gw = TestGateway::with_config(&config(
        r#"
[[plugin]]
type = "room-policy"
[plugin.settings]
rules = [{ rooms = "^ant-", dialects = ["antmedia"] }]
token = { secret = "open-sesame" }
"#,
    ))
    .await;
    let mut r = WsClient::connect(&format!("{}?token=open-sesame", gw.raw_url("ant-1"))).await;
    let message = expect_raw_refusal(&mut r, "refused", 4403).await;
    assert!(message.contains("antmedia"), "{message}");
    let mut r = WsClient::connect(&format!("{}?token=wrong", gw.raw_url("raw-1"))).await;
    expect_raw_refusal(&mut r, "unauthorized", 4403).await;

    let mut a = ant(&gw).await;
    a.send_json(join_with_token("ant-1", "open-sesame")).await;
    assert_eq!(a.recv_text().await, joined("ant-1"));
    gw.stop().await;
}

#[tokio::test]
async fn join_rate_limit_refuses_ant_and_raw_peers() {
    // One join per 1000 s on average: after the burst of 2, nothing more within the test.
    let gw = TestGateway::with_config(&config(
        r#"
[[plugin]]
type = "room-policy"
[plugin.settings]
join_rate_per_sec = 0.001
join_burst = 2
"#,
    ))
    .await;
    let mut a = ant(&gw).await;
    a.send_json(join("rl-1")).await;
    assert_eq!(a.recv_text().await, joined("rl-1"));
    let mut b = ant(&gw).await;
    b.send_json(join("rl-2")).await;
    assert_eq!(b.recv_text().await, joined("rl-2"));
    let mut c = ant(&gw).await;
    c.send_json(join("rl-3")).await;
    let err = c.recv_json().await;
    assert_eq!(field(&err, "command"), "error");
    assert_eq!(field(&err, "definition"), "rate_limited");
    assert_eq!(field(&err, "streamId"), "rl-3");
    assert!(field(&err, "information").contains("per second"), "{err}");
    still_connected(&mut c).await;

    let mut r = WsClient::connect(&gw.raw_url("rl-4")).await;
    expect_raw_refusal(&mut r, "rate_limited", 4403).await;
    gw.stop().await;
}

const RELAY_IGNORE: &str = r#"
[[plugin]]
type = "two-peer-relay"
[plugin.settings]
rooms = ["duo"]
third_peer = "ignore"
"#;

#[tokio::test]
async fn two_peer_relay_ignores_a_third_peer_like_app_js() {
    let gw = TestGateway::with_config(&config(RELAY_IGNORE)).await;
    let notice = |t: &str| json!({"type": format!("switchboard.{t}"), "room": "duo"});
    let mut a = WsClient::connect(&gw.raw_url("duo")).await;
    assert_eq!(a.recv_json().await, notice("joined"));
    let mut b = WsClient::connect(&gw.raw_url("duo")).await;
    // No `start`: the classic page dials by hand.
    assert_eq!(a.recv_json().await, notice("peer-joined"));
    assert_eq!(b.recv_json().await, notice("joined"));
    assert_eq!(b.recv_json().await, notice("peer-joined"));

    // The third peer is accepted, stays connected, hears nothing, and its frames go nowhere.
    let mut c = WsClient::connect(&gw.raw_url("duo")).await;
    c.expect_silence(300).await;
    c.send_text(r#"{"type":"offer","sdp":"v=0\r\nfrom-c\r\n"}"#)
        .await;
    c.send_text("opaque from c").await;
    a.expect_silence(200).await;
    b.expect_silence(200).await;

    // The pair relays verbatim; the third peer hears none of it.
    let frame = r#"{"type":"offer","sdp":"v=0\r\nfrom-a\r\n"}"#;
    a.send_text(frame).await;
    assert_eq!(b.recv_text().await, frame);
    b.send_text("hello a").await;
    assert_eq!(a.recv_text().await, "hello a");
    c.expect_silence(200).await;

    // A leaves: B is told, C is not, and C does not take the free slot.
    a.close().await;
    assert_eq!(b.recv_json().await, notice("peer-left"));
    c.expect_silence(300).await;
    c.send_text("still inert").await;
    b.expect_silence(200).await;

    // A new connection takes the slot.
    let mut d = WsClient::connect(&gw.raw_url("duo")).await;
    assert_eq!(b.recv_json().await, notice("peer-joined"));
    assert_eq!(d.recv_json().await, notice("joined"));
    assert_eq!(d.recv_json().await, notice("peer-joined"));
    d.send_text("hello b").await;
    assert_eq!(b.recv_text().await, "hello b");
    c.expect_silence(200).await;

    // Rooms outside `rooms` still get the room router (which does send `start`).
    let mut e = WsClient::connect(&gw.raw_url("elsewhere")).await;
    assert_eq!(
        e.recv_json().await,
        json!({"type":"switchboard.joined","room":"elsewhere"})
    );
    let _f = WsClient::connect(&gw.raw_url("elsewhere")).await;
    assert_eq!(
        e.recv_json().await,
        json!({"type":"switchboard.start","room":"elsewhere"})
    );
    gw.stop().await;
}

#[tokio::test]
async fn two_peer_relay_refuses_a_third_peer_by_default() {
    let gw = TestGateway::with_config(&config(
        r#"
[[plugin]]
type = "two-peer-relay"
[plugin.settings]
rooms = ["duo"]
"#,
    ))
    .await;
    let mut a = WsClient::connect(&gw.raw_url("duo")).await;
    a.recv_json().await;
    let _b = WsClient::connect(&gw.raw_url("duo")).await;
    a.recv_json().await;
    let mut c = WsClient::connect(&gw.raw_url("duo")).await;
    expect_raw_refusal(&mut c, "room_full", 4409).await;

    // An Ant peer is refused with Ant's own definition.
    let mut d = ant(&gw).await;
    d.send_json(join("duo")).await;
    assert_eq!(
        d.recv_text().await,
        r#"{"command":"error","definition":"NoSpaceForNewPeer","streamId":"duo"}"#
    );
    gw.stop().await;
}

/// A path under the system temp dir, removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn logging_writes_redacted_json_lines_to_a_file() {
    let log = TempFile(std::env::temp_dir().join(format!(
        "switchboard-builtin-plugins-{}.jsonl",
        std::process::id()
    )));
    let _ = std::fs::remove_file(&log.0);
    let gw = TestGateway::with_config(&config(&format!(
        r#"
[[plugin]]
type = "logging"
[plugin.settings]
output = {{ file = {:?} }}
rooms = ["logged"]
"#,
        log.0.display().to_string()
    )))
    .await;
    let mut a = WsClient::connect(&format!("{}?token=tok-123", gw.raw_url("logged"))).await;
    a.recv_json().await;
    let mut b = WsClient::connect(&gw.raw_url("logged")).await;
    a.recv_json().await;
    b.recv_json().await;
    b.recv_json().await;
    let sdp = "v=0\r\nc=IN IP4 198.51.100.23\r\n";
    let offer = json!({"type":"offer","sdp":sdp}).to_string();
    a.send_text(&offer).await;
    assert_eq!(b.recv_text().await, offer, "logging never changes routing");
    let candidate = r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2122260223 198.51.100.23 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#;
    b.send_text(candidate).await;
    assert_eq!(a.recv_text().await, candidate);
    // Another room: filtered out.
    let _other = WsClient::connect(&gw.raw_url("unlogged")).await;
    b.close().await;
    a.recv_json().await;
    gw.stop().await; // shutdown flushes the log

    let text = std::fs::read_to_string(&log.0).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<_> = lines.iter().map(|l| field(l, "event")).collect();
    // `a` may also leave (disconnect) while the gateway stops.
    assert_eq!(
        kinds[..5],
        ["join", "join", "description", "candidate", "leave"],
        "{text}"
    );
    assert!(kinds[5..].iter().all(|k| *k == "leave"), "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["room"] == "logged" && l["dialect"] == "raw")
    );
    assert_eq!(lines[0]["token"], "<redacted>");
    assert_eq!(lines[2]["kind"], "offer");
    assert_eq!(lines[2]["sdp"], format!("<redacted {} bytes>", sdp.len()));
    assert_eq!(
        lines[3]["candidate"],
        "candidate:1 1 udp 2122260223 x.x.x.x 50000 typ host"
    );
    assert_eq!(lines[4]["reason"], "disconnect");
    assert!(
        !text.contains("198.51.100.23") && !text.contains("tok-123"),
        "{text}"
    );
}

#[test]
fn shipped_configs_validate() {
    for name in [
        "config/classic.toml",
        "config/cluster.toml",
        "config/plugins/room-policy.toml",
        "config/plugins/logging.toml",
        "config/plugins/two-peer-relay.toml",
        "config/plugins/sfu.toml",
    ] {
        let text = std::fs::read_to_string(repo_root().join(name)).unwrap();
        // Plugin snippets become a whole config with a listener in front.
        let whole = if name.starts_with("config/plugins/") {
            format!("[[listener]]\nbind = \"127.0.0.1:0\"\n{text}")
        } else {
            text
        };
        if let Err(e) = GatewayConfig::from_toml(&whole) {
            panic!("{name}: {e}");
        }
    }
}
