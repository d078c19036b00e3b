//! Abuse tests of the application gate, tried as an attacker would against the real gateway:
//! an Ant P2P `join` on a protected application's URL must be checked with that application's
//! security (not the default one's), and the REST API under `/{app}/rest/` must neither serve an
//! application the gateway does not serve nor let one application's path mint one-time tokens
//! that another application's checks accept; a room created through one application's REST
//! path is held to that application's checks on every way in. Every refusal is counted in
//! `/metrics`.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use switchboard_conference::{TokenType, sign_jwt};
use switchboard_tests::ant::{ask, conference_member, tokenless_p2p_join, unauthorized};
use switchboard_tests::metrics::{errors, sample, scrape};
use switchboard_tests::{TestGateway, WsClient, http_request};
use switchboard_tests::{every_dialect_config, unix_now};

const JWT_SECRET: &str = "a-jwt-secret-of-at-least-thirty-two-bytes";

/// LiveApp protected (`live` holds its checks), OpenApp open and the default for peers that name
/// no application; the conference plugin and the router, no media plugin (a request that passes
/// its check is answered `media_plugin_not_running`).
fn two_apps(live: &str) -> String {
    every_dialect_config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
{live}

[[antmedia_app]]
name = "OpenApp"
default = true

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#
    ))
}

/// A REST call under `/{app}/rest/v2/`: status and JSON body.
async fn rest(gw: &TestGateway, method: &str, app: &str, path: &str) -> (u16, Value) {
    let (status, text) =
        http_request(gw.main, method, &format!("/{app}/rest/v2/{path}"), None).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, value)
}

/// A one-time token minted under `/{app}/rest/`.
async fn one_time_token(gw: &TestGateway, app: &str, stream: &str, query: &str) -> String {
    let later = unix_now() + 600;
    let (status, token) = rest(
        gw,
        "GET",
        app,
        &format!("broadcasts/{stream}/token?expireDate={later}&{query}"),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    token["tokenId"].as_str().expect("tokenId").to_owned()
}

#[tokio::test]
async fn an_ant_p2p_join_is_checked_with_the_app_of_its_url() {
    let gw = TestGateway::with_config(&two_apps(&format!(
        "join_room = \"jwt\"\njwt_secret = \"{JWT_SECRET}\""
    )))
    .await;
    let token = sign_jwt("conf1", TokenType::Play, unix_now() + 60, JWT_SECRET);
    // A participant makes conf1 a conference room of LiveApp.
    let mut member = conference_member(&gw.ant_url("LiveApp"), "conf1", &token).await;

    // The attacker: a tokenless P2P `join` on LiveApp's own URL. The default application
    // (OpenApp) checks nothing, but the URL says LiveApp, whose join_room needs a JWT.
    let (mut p2p, err) = tokenless_p2p_join(&gw.ant_url("LiveApp"), "conf1").await;
    assert_eq!(err, unauthorized("conf1"));
    // A JWT signed with another key is refused the same way.
    let forged = sign_jwt("conf1", TokenType::Play, unix_now() + 60, &"x".repeat(40));
    let err = ask(
        &mut p2p,
        json!({"command":"join","streamId":"conf1","mode":"both","token":forged}),
    )
    .await;
    assert_eq!(err, unauthorized("conf1"));
    member.expect_silence(100).await;

    // With LiveApp's token the same join is admitted: the check is LiveApp's, not a refusal
    // of every P2P join.
    let joined = ask(
        &mut p2p,
        json!({"command":"join","streamId":"conf1","mode":"both","token":token}),
    )
    .await;
    assert_eq!(joined["definition"], "joined", "{joined}");

    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "unauthorized")), 2, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn rest_serves_only_configured_apps() {
    let gw = TestGateway::with_config(&two_apps("publish = \"one_time\"")).await;
    let later = unix_now() + 600;
    // Every REST call through an application the gateway does not serve: 404, nothing done.
    let calls = [
        ("GET", "broadcasts/conference-rooms/list/0/10".to_owned()),
        ("POST", "broadcasts/conference-rooms".to_owned()),
        ("GET", "broadcasts/conference-rooms/room9".to_owned()),
        ("DELETE", "broadcasts/conference-rooms/room9".to_owned()),
        (
            "PUT",
            "broadcasts/conference-rooms/room9/add?streamId=s1".to_owned(),
        ),
        (
            "GET",
            format!("broadcasts/s1/token?expireDate={later}&type=publish"),
        ),
        (
            "GET",
            format!("broadcasts/s1/jwt-token?expireDate={later}&type=publish"),
        ),
    ];
    for (method, path) in &calls {
        let body = (*method == "POST").then(|| json!({"roomId":"room9"}).to_string());
        let (status, text) = http_request(
            gw.main,
            method,
            &format!("/OtherApp/rest/v2/{path}"),
            body.as_deref(),
        )
        .await;
        assert_eq!(status, 404, "{method} {path}: {text}");
        assert!(text.contains("unknown application"), "{text}");
        assert!(text.contains("\"success\":false"), "{text}");
    }
    // The refused create made no room.
    let (status, _) = rest(&gw, "GET", "LiveApp", "broadcasts/conference-rooms/room9").await;
    assert_eq!(status, 404);
    let m = scrape(&gw).await;
    assert_eq!(
        sample(&m, &errors("antmedia", "unknown_app")),
        calls.len() as u64,
        "{m}"
    );
    // A configured application is served.
    let (status, list) = rest(
        &gw,
        "GET",
        "LiveApp",
        "broadcasts/conference-rooms/list/0/10",
    )
    .await;
    assert_eq!(status, 200, "{list}");
    gw.stop().await;
}

#[tokio::test]
async fn one_app_cannot_mint_one_time_tokens_for_another() {
    let gw = TestGateway::with_config(&two_apps(
        "publish = \"one_time\"\njoin_room = \"one_time\"",
    ))
    .await;
    let mut live = WsClient::connect(&gw.ant_url("LiveApp")).await;
    // Minted through OpenApp's REST path (OpenApp checks nothing), presented on LiveApp.
    let foreign = one_time_token(&gw, "OpenApp", "s1", "type=publish").await;
    let err = ask(
        &mut live,
        json!({"command":"publish","streamId":"s1","token":foreign}),
    )
    .await;
    assert_eq!(err, unauthorized("s1"));
    let foreign_room = one_time_token(&gw, "OpenApp", "conf1", "type=play&roomId=conf1").await;
    let err = ask(
        &mut live,
        json!({"command":"joinRoom","room":"conf1","token":foreign_room}),
    )
    .await;
    assert_eq!(err, unauthorized("conf1"));

    // Minted through LiveApp's own path, the same requests pass its checks.
    let own = one_time_token(&gw, "LiveApp", "s1", "type=publish").await;
    let ok = ask(
        &mut live,
        json!({"command":"publish","streamId":"s1","token":own}),
    )
    .await;
    assert_eq!(ok["definition"], "media_plugin_not_running", "{ok}");
    let own_room = one_time_token(&gw, "LiveApp", "conf1", "type=play&roomId=conf1").await;
    let joined = ask(
        &mut live,
        json!({"command":"joinRoom","room":"conf1","token":own_room}),
    )
    .await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");

    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "unauthorized")), 2, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn a_rest_room_is_held_to_the_checks_of_the_app_that_created_it() {
    let gw = TestGateway::with_config(&two_apps(&format!(
        "join_room = \"jwt\"\nplay = \"jwt\"\njwt_secret = \"{JWT_SECRET}\""
    )))
    .await;
    let (status, room) = http_request(
        gw.main,
        "POST",
        "/LiveApp/rest/v2/broadcasts/conference-rooms",
        Some(&json!({"roomId":"vip"}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{room}");
    let later = unix_now() + 600;

    // OpenApp's REST path neither sees, deletes nor mints tokens for LiveApp's room.
    let (status, _) = rest(&gw, "GET", "OpenApp", "broadcasts/conference-rooms/vip").await;
    assert_eq!(status, 404);
    let (_, list) = rest(
        &gw,
        "GET",
        "OpenApp",
        "broadcasts/conference-rooms/list/0/10",
    )
    .await;
    assert_eq!(list, json!([]));
    let (_, deleted) = rest(&gw, "DELETE", "OpenApp", "broadcasts/conference-rooms/vip").await;
    assert_eq!(deleted["success"], false, "{deleted}");
    for path in [
        format!("broadcasts/s1/token?expireDate={later}&type=play&roomId=vip"),
        format!("broadcasts/vip/token?expireDate={later}&type=play"),
    ] {
        let (_, token) = rest(&gw, "GET", "OpenApp", &path).await;
        assert_eq!(token["success"], false, "{path}: {token}");
    }
    let (status, kept) = rest(&gw, "GET", "LiveApp", "broadcasts/conference-rooms/vip").await;
    assert_eq!(status, 200, "{kept}");

    // Through OpenApp's URL, every way into the room is held to LiveApp's checks.
    let mut open = WsClient::connect(&gw.ant_url("OpenApp")).await;
    let err = ask(&mut open, json!({"command":"joinRoom","room":"vip"})).await;
    assert_eq!(err, unauthorized("vip"));
    let err = ask(&mut open, json!({"command":"join","streamId":"vip"})).await;
    assert_eq!(err, unauthorized("vip"));
    let err = ask(
        &mut open,
        json!({"command":"play","streamId":"vip","room":"vip"}),
    )
    .await;
    assert_eq!(err, unauthorized("vip"));
    // With LiveApp's token, the same joinRoom through OpenApp is admitted.
    let token = sign_jwt("vip", TokenType::Play, unix_now() + 60, JWT_SECRET);
    let joined = ask(
        &mut open,
        json!({"command":"joinRoom","room":"vip","token":token}),
    )
    .await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");

    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "unauthorized")), 3, "{m}");
    gw.stop().await;
}

/// A stream nobody created through REST is held to the checks of the application its publisher
/// was admitted under, and a room to those of its participants': with LiveApp's play needing a
/// JWT, a tokenless `play` of LiveApp's live stream (or of a room LiveApp's participants hold)
/// through OpenApp's URL, or through the raw dialect (the default application, OpenApp), is
/// refused; LiveApp's own token is accepted on either path.
#[tokio::test]
async fn a_live_stream_is_held_to_the_checks_of_its_publishers_app() {
    let config = two_apps(&format!("play = \"jwt\"\njwt_secret = \"{JWT_SECRET}\"")).replace(
        "[[plugin]]\ntype = \"room-router\"",
        "[[plugin]]\ntype = \"sfu\"\n\n[[plugin]]\ntype = \"room-router\"",
    );
    let gw = TestGateway::with_config(&config).await;
    let mut publisher = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let start = ask(
        &mut publisher,
        json!({"command":"publish","streamId":"cam1"}),
    )
    .await;
    assert_eq!(start["command"], "start", "{start}");
    let mut member = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let joined = ask(&mut member, json!({"command":"joinRoom","room":"adhoc1"})).await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");

    let before = sample(&scrape(&gw).await, &errors("antmedia", "unauthorized"));
    for stream in ["cam1", "adhoc1"] {
        let mut attacker = WsClient::connect(&gw.ant_url("OpenApp")).await;
        let refused = ask(&mut attacker, json!({"command":"play","streamId":stream})).await;
        assert_eq!(
            refused,
            unauthorized(stream),
            "play of {stream} via OpenApp"
        );
    }
    let after = sample(&scrape(&gw).await, &errors("antmedia", "unauthorized"));
    assert_eq!(after - before, 2, "each refusal counted once");

    let mut raw = WsClient::connect(&gw.raw_url("lobby9")).await;
    let _joined = raw.recv_json().await;
    raw.send_json(json!({"type":"switchboard.play","stream":"cam1"}))
        .await;
    let refused = raw.recv_json().await;
    assert_eq!(refused["type"], "switchboard.error", "{refused}");
    assert_eq!(refused["code"], "unauthorized", "{refused}");

    // LiveApp's own play token passes the check through OpenApp's URL: the play reaches the
    // media plugin, which offers the stream (`takeConfiguration`), not an error.
    let token = sign_jwt("cam1", TokenType::Play, unix_now() + 60, JWT_SECRET);
    let mut viewer = WsClient::connect(&gw.ant_url("OpenApp")).await;
    let offer = ask(
        &mut viewer,
        json!({"command":"play","streamId":"cam1","token":token}),
    )
    .await;
    assert_ne!(offer["command"], "error", "{offer}");
    gw.stop().await;
}
