//! Ant Media's REST API for conference rooms and tokens, restart persistence of the store, room
//! dates, and stream security (one-time tokens, JWT, hash) as Ant SDK peers see it.

use std::path::Path;

use serde_json::{Value, json};
use switchboard_conference::{TokenType, hash_token};
use switchboard_tests::ant::{ask, unauthorized};
use switchboard_tests::unix_now;
use switchboard_tests::{TestGateway, WsClient, http_request, temp_dir};

const JWT_SECRET: &str = "a-jwt-secret-of-at-least-thirty-two-bytes";

/// The conference plugin and the router; `extra` goes before the plugins.
fn config(extra: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "raw"]
pages = "none"

[shutdown]
grace_period_secs = 2

{extra}

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#
    )
}

fn store(dir: &Path) -> String {
    format!("[store]\npath = {:?}\n", dir.join("switchboard.redb"))
}

/// LiveApp: one-time tokens for publish and joinRoom, JWT for play; HashApp: hash tokens.
fn secured() -> String {
    config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
publish = "one_time"
play = "jwt"
join_room = "one_time"
jwt_secret = "{JWT_SECRET}"

[[antmedia_app]]
name = "HashApp"
publish = "hash"
hash_secret = "hash-secret"
"#
    ))
}

async fn rest(gw: &TestGateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = http_request(
        gw.main,
        method,
        &format!("/LiveApp/rest/v2/{path}"),
        body.as_deref(),
    )
    .await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, value)
}

#[tokio::test]
async fn conference_room_crud() {
    let gw = TestGateway::with_config(&config("")).await;
    let (status, room) = rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"crud1"})),
    )
    .await;
    assert_eq!(status, 200, "{room}");
    assert_eq!(room["roomId"], "crud1");
    let start = room["startDate"].as_i64().expect("startDate");
    assert!((unix_now() - start).abs() < 5, "defaults to now: {room}");
    assert_eq!(room["endDate"].as_i64(), Some(start + 3600));
    assert_eq!(room["roomStreamList"], json!([]));
    assert_eq!(room["mode"], "legacy");

    // Explicit dates, 0 meaning the default.
    let (_, room) = rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"crud2","startDate":2_000_000_000_i64,"endDate":0})),
    )
    .await;
    assert_eq!(room["startDate"], 2_000_000_000_i64);
    assert_eq!(room["endDate"], 2_000_003_600_i64);

    // Failures are HTTP 200 with success:false.
    let (status, dup) = rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"crud1"})),
    )
    .await;
    assert_eq!((status, &dup["success"]), (200, &json!(false)), "{dup}");
    let (_, bad) = rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"crud3","startDate":100,"endDate":50})),
    )
    .await;
    assert_eq!(bad["success"], false);
    let (_, bad) = rest(&gw, "POST", "broadcasts/conference-rooms", None).await;
    assert_eq!(bad["success"], false);

    let (status, got) = rest(&gw, "GET", "broadcasts/conference-rooms/crud1", None).await;
    assert_eq!((status, &got["roomId"]), (200, &json!("crud1")));
    let (status, missing) = rest(&gw, "GET", "broadcasts/conference-rooms/nope", None).await;
    assert_eq!((status, &missing["success"]), (404, &json!(false)));

    let (_, ok) = rest(
        &gw,
        "PUT",
        "broadcasts/conference-rooms/crud1/add?streamId=s9",
        None,
    )
    .await;
    assert_eq!(ok, json!({"success": true}));
    let (_, got) = rest(&gw, "GET", "broadcasts/conference-rooms/crud1", None).await;
    assert_eq!(got["roomStreamList"], json!(["s9"]));
    let (_, bad) = rest(
        &gw,
        "PUT",
        "broadcasts/conference-rooms/nope/add?streamId=s9",
        None,
    )
    .await;
    assert_eq!(bad["success"], false);

    let (_, list) = rest(&gw, "GET", "broadcasts/conference-rooms/list/0/10", None).await;
    let ids: Vec<_> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["roomId"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["crud1", "crud2"]);
    let (_, page) = rest(&gw, "GET", "broadcasts/conference-rooms/list/1/10", None).await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));

    let (_, ok) = rest(&gw, "DELETE", "broadcasts/conference-rooms/crud1", None).await;
    assert_eq!(ok["success"], true);
    let (status, _) = rest(&gw, "GET", "broadcasts/conference-rooms/crud1", None).await;
    assert_eq!(status, 404);
    let (_, again) = rest(&gw, "DELETE", "broadcasts/conference-rooms/crud1", None).await;
    assert_eq!(again["success"], false);
    gw.stop().await;
}

#[tokio::test]
async fn live_participants_show_in_the_rest_room() {
    let gw = TestGateway::with_config(&config("")).await;
    rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"live1"})),
    )
    .await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let joined = ask(
        &mut a,
        json!({"command":"joinRoom","room":"live1","streamId":"a1"}),
    )
    .await;
    assert_eq!(joined["definition"], "joinedTheRoom");
    let (_, room) = rest(&gw, "GET", "broadcasts/conference-rooms/live1", None).await;
    assert_eq!(room["roomStreamList"], json!(["a1"]));
    gw.stop().await;
}

#[tokio::test]
async fn rooms_and_tokens_survive_a_restart() {
    let dir = temp_dir("conference-restart");
    let text = config(&store(&dir));
    let gw = TestGateway::with_config(&text).await;
    let (_, created) = rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"kept","startDate":1_900_000_000_i64,"endDate":1_900_000_100_i64})),
    )
    .await;
    rest(
        &gw,
        "PUT",
        "broadcasts/conference-rooms/kept/add?streamId=s1",
        None,
    )
    .await;
    rest(
        &gw,
        "POST",
        "broadcasts/conference-rooms",
        Some(json!({"roomId":"gone"})),
    )
    .await;
    rest(&gw, "DELETE", "broadcasts/conference-rooms/gone", None).await;
    let expire = unix_now() + 600;
    let (_, token) = rest(
        &gw,
        "GET",
        &format!("broadcasts/s1/token?expireDate={expire}&type=publish"),
        None,
    )
    .await;
    assert_eq!(token["streamId"], "s1");
    assert_eq!(token["type"], "publish");
    assert_eq!(token["expireDate"], expire);
    gw.stop().await;

    let gw = TestGateway::with_config(&text).await;
    let (status, room) = rest(&gw, "GET", "broadcasts/conference-rooms/kept", None).await;
    assert_eq!(status, 200, "{room}");
    let mut expected = created.clone();
    expected["roomStreamList"] = json!(["s1"]);
    assert_eq!(room, expected);
    let (status, _) = rest(&gw, "GET", "broadcasts/conference-rooms/gone", None).await;
    assert_eq!(status, 404);
    gw.stop().await;

    // The token is still there: with one-time publish tokens on, it is accepted once.
    let secured = format!("{}\n{}", store(&dir), secured_apps());
    let gw = TestGateway::with_config(&config(&secured)).await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let publish = json!({"command":"publish","streamId":"s1","token":token["tokenId"]});
    let err = ask(&mut a, publish.clone()).await;
    assert_eq!(err["definition"], "media_plugin_not_running", "{err}");
    gw.stop().await;
    // Used up before the restart, still used up after it.
    let gw = TestGateway::with_config(&config(&secured)).await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let err = ask(&mut a, publish).await;
    assert_eq!(err["definition"], "unauthorized_access", "{err}");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn secured_apps() -> String {
    format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
publish = "one_time"
play = "jwt"
join_room = "one_time"
jwt_secret = "{JWT_SECRET}"
"#
    )
}

#[tokio::test]
async fn joining_outside_the_room_dates_is_refused() {
    let gw = TestGateway::with_config(&config("")).await;
    let t = unix_now();
    for (id, start, end) in [
        ("early", t + 3600, t + 7200),
        ("late", t - 7200, t - 3600),
        ("open", t - 60, t + 60),
    ] {
        let (_, room) = rest(
            &gw,
            "POST",
            "broadcasts/conference-rooms",
            Some(json!({"roomId":id,"startDate":start,"endDate":end})),
        )
        .await;
        assert_eq!(room["roomId"], id, "{room}");
    }
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    for room in ["early", "late"] {
        let err = ask(&mut a, json!({"command":"joinRoom","room":room})).await;
        assert_eq!(
            err,
            json!({"command":"error","definition":"room_not_active_or_expired","streamId":room})
        );
    }
    let ok = ask(&mut a, json!({"command":"joinRoom","room":"open"})).await;
    assert_eq!(ok["definition"], "joinedTheRoom");
    // A room nobody created is open at any time.
    let ok = ask(&mut a, json!({"command":"joinRoom","room":"adhoc"})).await;
    assert_eq!(ok["definition"], "joinedTheRoom");
    gw.stop().await;
}

/// `GET .../broadcasts/{stream}/token` on `gw`.
async fn one_time(
    gw: &TestGateway,
    stream: &str,
    expire: i64,
    kind: &str,
    room: Option<&str>,
) -> String {
    let room = room.map(|r| format!("&roomId={r}")).unwrap_or_default();
    let (_, token) = rest(
        gw,
        "GET",
        &format!("broadcasts/{stream}/token?expireDate={expire}&type={kind}{room}"),
        None,
    )
    .await;
    token["tokenId"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {token}"))
        .to_owned()
}

#[tokio::test]
async fn one_time_tokens() {
    let gw = TestGateway::with_config(&secured()).await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let publish = |token: &str| json!({"command":"publish","streamId":"s1","token":token});
    let later = unix_now() + 600;

    // No token, an unknown one.
    let err = ask(&mut a, json!({"command":"publish","streamId":"s1"})).await;
    assert_eq!(err, unauthorized("s1"));
    assert_eq!(ask(&mut a, publish("made-up")).await, unauthorized("s1"));
    // Expired.
    let expired = one_time(&gw, "s1", unix_now() - 10, "publish", None).await;
    assert_eq!(ask(&mut a, publish(&expired)).await, unauthorized("s1"));
    // Wrong type.
    let play = one_time(&gw, "s1", later, "play", None).await;
    assert_eq!(ask(&mut a, publish(&play)).await, unauthorized("s1"));
    // Wrong stream.
    let other = one_time(&gw, "s2", later, "publish", None).await;
    assert_eq!(ask(&mut a, publish(&other)).await, unauthorized("s1"));
    // Good once: the check passes (and media is what is missing), then it is used up.
    let good = one_time(&gw, "s1", later, "publish", None).await;
    let err = ask(&mut a, publish(&good)).await;
    assert_eq!(err["definition"], "media_plugin_not_running", "{err}");
    assert_eq!(ask(&mut a, publish(&good)).await, unauthorized("s1"));

    // A room token is good for its room, any number of times, and for no other room.
    let room_token = one_time(&gw, "whatever", later, "play", Some("roomA")).await;
    let join = |room: &str| json!({"command":"joinRoom","room":room,"token":room_token});
    let ok = ask(&mut a, join("roomA")).await;
    assert_eq!(ok["definition"], "joinedTheRoom", "{ok}");
    let mut b = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let ok = ask(&mut b, join("roomA")).await;
    assert_eq!(ok["definition"], "joinedTheRoom", "{ok}");
    let err = ask(&mut b, join("roomB")).await;
    assert_eq!(err, unauthorized("roomB"));
    // Bound to a room, publishing into it (mainTrack) works too.
    let room_publish = one_time(&gw, "x", later, "publish", Some("roomA")).await;
    let err = ask(
        &mut b,
        json!({"command":"publish","streamId":"s7","token":room_publish,"mainTrack":"roomA"}),
    )
    .await;
    assert_eq!(err["definition"], "media_plugin_not_running", "{err}");
    let err = ask(
        &mut b,
        json!({"command":"publish","streamId":"s7","token":room_publish,"mainTrack":"roomB"}),
    )
    .await;
    assert_eq!(err, unauthorized("s7"));
    // Without a token, joining is refused where join_room is configured.
    let err = ask(&mut b, json!({"command":"joinRoom","room":"roomC"})).await;
    assert_eq!(err, unauthorized("roomC"));
    // Streams are global: an application that is not configured is not a way around the
    // configured ones; it is refused before the upgrade.
    let refused = WsClient::try_connect(&gw.ant_url("OpenApp"), &[]).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(404));
    gw.stop().await;
}

#[tokio::test]
async fn jwt_and_hash_tokens() {
    let gw = TestGateway::with_config(&secured()).await;
    let later = unix_now() + 600;
    let (_, jwt) = rest(
        &gw,
        "GET",
        &format!("broadcasts/s1/jwt-token?expireDate={later}&type=play"),
        None,
    )
    .await;
    assert_eq!(jwt["streamId"], "s1");
    let jwt = jwt["tokenId"].as_str().expect("jwt").to_owned();
    assert_eq!(jwt.split('.').count(), 3);
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let play = |stream: &str, token: &str| json!({"command":"play","streamId":stream,"token":token,"room":""});
    // Reusable until it expires; only for its stream.
    for _ in 0..2 {
        let err = ask(&mut a, play("s1", &jwt)).await;
        assert_eq!(err["definition"], "media_plugin_not_running", "{err}");
    }
    assert_eq!(ask(&mut a, play("s2", &jwt)).await, unauthorized("s2"));
    // Wrong type: a publish JWT for play.
    let (_, publish_jwt) = rest(
        &gw,
        "GET",
        &format!("broadcasts/s1/jwt-token?expireDate={later}&type=publish"),
        None,
    )
    .await;
    let publish_jwt = publish_jwt["tokenId"].as_str().expect("jwt").to_owned();
    assert_eq!(
        ask(&mut a, play("s1", &publish_jwt)).await,
        unauthorized("s1")
    );
    // Expired.
    let expired =
        switchboard_conference::sign_jwt("s1", TokenType::Play, unix_now() - 1, JWT_SECRET);
    assert_eq!(ask(&mut a, play("s1", &expired)).await, unauthorized("s1"));
    // Signed with another key.
    let forged = switchboard_conference::sign_jwt("s1", TokenType::Play, later, &"x".repeat(40));
    assert_eq!(ask(&mut a, play("s1", &forged)).await, unauthorized("s1"));
    // An application without a jwt_secret cannot mint JWTs.
    let (_, err) = http_request(
        gw.main,
        "GET",
        &format!("/OpenApp/rest/v2/broadcasts/s1/jwt-token?expireDate={later}&type=play"),
        None,
    )
    .await;
    assert!(err.contains("\"success\":false"), "{err}");

    // Hash tokens: hex(sha256(streamId + type + secret)).
    let mut h = WsClient::connect(&gw.ant_url("HashApp")).await;
    let good = hash_token("s1", TokenType::Publish, "hash-secret");
    let err = ask(
        &mut h,
        json!({"command":"publish","streamId":"s1","token":good}),
    )
    .await;
    assert_eq!(err["definition"], "media_plugin_not_running", "{err}");
    let err = ask(
        &mut h,
        json!({"command":"publish","streamId":"s2","token":good}),
    )
    .await;
    assert_eq!(err, unauthorized("s2"));
    let play_hash = hash_token("s1", TokenType::Play, "hash-secret");
    let err = ask(
        &mut h,
        json!({"command":"publish","streamId":"s1","token":play_hash}),
    )
    .await;
    assert_eq!(err, unauthorized("s1"));
    gw.stop().await;
}

#[tokio::test]
async fn token_calls_check_their_arguments() {
    let gw = TestGateway::with_config(&config("")).await;
    for query in [
        "broadcasts/s1/token?type=publish",
        "broadcasts/s1/token?expireDate=abc&type=publish",
        "broadcasts/s1/token?expireDate=100&type=watch",
        "broadcasts/bad%20id/token?expireDate=100&type=play",
    ] {
        let (status, body) = rest(&gw, "GET", query, None).await;
        assert_eq!(
            (status, &body["success"]),
            (200, &json!(false)),
            "{query}: {body}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn rest_answers_only_allowed_addresses() {
    let gw = TestGateway::with_config(&config("[rest]\nallowed_cidrs = [\"10.0.0.0/8\"]\n")).await;
    let (status, body) = rest(&gw, "GET", "broadcasts/conference-rooms/list/0/10", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["success"], false);
    gw.stop().await;
}

#[tokio::test]
async fn config_problems_are_reported() {
    let text = config(
        r#"
[rest]
allowed_cidrs = ["300.1.1.1/8"]

[[antmedia_app]]
name = "LiveApp"
publish = "jwt"
jwt_secret = "short"

[[antmedia_app]]
name = "LiveApp"
play = "hash"
"#,
    );
    let err = switchboard::GatewayConfig::from_toml(&text)
        .expect_err("invalid")
        .to_string();
    for needle in [
        "rest.allowed_cidrs[0]",
        "antmedia_app[0].jwt_secret",
        "antmedia_app[1].hash_secret",
        "antmedia_app[1].name",
    ] {
        assert!(err.contains(needle), "{needle} missing in {err}");
    }
    let err = switchboard::GatewayConfig::from_toml(&config("[store]\npaht = \"x\"\n"))
        .expect_err("typo")
        .to_string();
    assert!(err.contains("paht"), "{err}");
}
