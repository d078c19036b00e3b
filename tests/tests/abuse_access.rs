//! Abuse tests of the access checks, tried as an attacker would against the real gateway:
//! walking around a protected application through another app name or another dialect,
//! tokenless `joinRoom` floods, 100 KB ids, one connection in unlimited rooms, forged and
//! non-canonical JWTs, RS256/ES256 keys, socket.io v4 `auth` tokens (the real npm client), a
//! failing policy plugin; every refusal counted in `/metrics`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_conference::{TokenType, sign_jwt};
use switchboard_tests::ant::{
    ant_join, ask, ask_until, conference_member, tokenless_p2p_join, unauthorized,
};
use switchboard_tests::jwt::{answer_json, ec_jwk, es256_token, fixture, room_policy_plugins};
use switchboard_tests::metrics::{errors, sample, scrape};
use switchboard_tests::{TestGateway, WsClient, node, repo_root};
use switchboard_tests::{every_dialect_config, unix_now};

const JWT_SECRET: &str = "a-jwt-secret-of-at-least-thirty-two-bytes";

/// LiveApp protected as in the issue: play by JWT, publish and joinRoom by one-time token; the
/// conference plugin and the router; no media plugin, so a request that passes its check is
/// answered `media_plugin_not_running`.
fn protected() -> String {
    every_dialect_config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
play = "jwt"
publish = "one_time"
join_room = "jwt"
jwt_secret = "{JWT_SECRET}"

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#
    ))
}

#[tokio::test]
async fn another_app_name_or_dialect_does_not_walk_around_the_protected_app() {
    let gw = TestGateway::with_config(&protected()).await;
    // On the protected app itself: refused without a token.
    let mut live = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let play = json!({"command":"play","streamId":"room1","room":"room1"});
    assert_eq!(ask(&mut live, play.clone()).await, unauthorized("room1"));
    let publish = json!({"command":"publish","streamId":"s1","mainTrack":"room1"});
    assert_eq!(ask(&mut live, publish.clone()).await, unauthorized("s1"));
    let join_room = json!({"command":"joinRoom","room":"room1"});
    assert_eq!(
        ask(&mut live, join_room.clone()).await,
        unauthorized("room1")
    );

    // The same frames on another app name: that app is not served at all.
    for app in ["OtherApp", "WebRTCAppEE", "liveapp"] {
        let refused = WsClient::try_connect(&gw.ant_url(app), &[]).await;
        let (status, body) = refused.err().expect("an unconfigured app is refused");
        assert_eq!(status, 404, "{app}: {body}");
        assert!(body.contains("unknown application"), "{body}");
    }
    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "unknown_app")), 3, "{m}");

    // Raw: switchboard.play and switchboard.publish are held to LiveApp (the only app).
    let mut raw = WsClient::connect(&gw.raw_url("lobby")).await;
    assert_eq!(raw.recv_json().await["type"], "switchboard.joined");
    raw.send_json(json!({"type":"switchboard.play","stream":"room1","room":"room1"}))
        .await;
    let err = raw.recv_json().await;
    assert_eq!(err["type"], "switchboard.error", "{err}");
    assert_eq!(err["code"], "unauthorized", "{err}");
    raw.send_json(json!({"type":"switchboard.publish","stream":"s2","room":"room1"}))
        .await;
    let err = raw.recv_json().await;
    assert_eq!(err["code"], "unauthorized", "{err}");
    // With a valid play token in its own field, the raw request passes the check (and reaches
    // the missing media plugin).
    let token = sign_jwt("room1", TokenType::Play, unix_now() + 60, JWT_SECRET);
    raw.send_json(json!({"type":"switchboard.play","stream":"room1","room":"room1","token":token}))
        .await;
    let err = raw.recv_json().await;
    assert_eq!(err["code"], "media_unavailable", "{err}");
    // And so does the Ant request with it: the check is the same whichever way in.
    let ok = ask(
        &mut live,
        json!({"command":"play","streamId":"room1","room":"room1","token":token}),
    )
    .await;
    assert_eq!(ok["definition"], "media_plugin_not_running", "{ok}");

    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "unauthorized")), 3, "{m}");
    assert_eq!(sample(&m, &errors("raw", "unauthorized")), 2, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn a_star_entry_opens_other_app_names_with_its_own_checks() {
    let gw = TestGateway::with_config(&every_dialect_config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
play = "jwt"
jwt_secret = "{JWT_SECRET}"
default = true

[[antmedia_app]]
name = "*"
play = "jwt"
jwt_secret = "{JWT_SECRET}"

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#
    )))
    .await;
    let mut other = WsClient::connect(&gw.ant_url("OtherApp")).await;
    let play = json!({"command":"play","streamId":"room1","room":"room1"});
    assert_eq!(ask(&mut other, play).await, unauthorized("room1"));
    gw.stop().await;
}

#[tokio::test]
async fn joins_into_a_protected_conference_room_are_checked_in_every_dialect() {
    let gw = TestGateway::with_config(&protected()).await;
    let token = sign_jwt("conf1", TokenType::Play, unix_now() + 60, JWT_SECRET);
    let mut member = conference_member(&gw.ant_url("LiveApp"), "conf1", &token).await;

    // Ant P2P `join` of the room's id without a token: refused.
    let (_p2p, err) = tokenless_p2p_join(&gw.ant_url("LiveApp"), "conf1").await;
    assert_eq!(err, unauthorized("conf1"));
    // Raw `/ws/conf1`: refused with 4403.
    let mut raw = WsClient::connect(&gw.raw_url("conf1")).await;
    let err = raw.recv_json().await;
    assert_eq!(err["code"], "unauthorized", "{err}");
    let close = raw.recv_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 4403);
    // Raw with the token in its URL: admitted.
    let mut raw = WsClient::connect(&format!("{}?token={token}", gw.raw_url("conf1"))).await;
    let joined = raw.recv_json().await;
    assert_eq!(joined["type"], "switchboard.joined", "{joined}");
    member.expect_silence(100).await;
    gw.stop().await;
}

#[tokio::test]
async fn tokenless_join_room_floods_are_refused_and_max_peers_holds() {
    let key = "k".repeat(32);
    let gw = TestGateway::with_config(&every_dialect_config(&format!(
        r#"
[[plugin]]
type = "room-policy"
[plugin.settings]
max_peers = 2
token = {{ jwt_hs256_secret = "{key}" }}

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#
    )))
    .await;
    let mut flood = Vec::new();
    for _ in 0..22 {
        let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
        let err = ask(&mut c, json!({"command":"joinRoom","room":"jwtroom"})).await;
        assert_eq!(err, unauthorized("jwtroom"));
        flood.push(c);
    }
    let token = switchboard_room_policy::sign_hs256(
        &json!({"exp": unix_now() + 60, "room": "jwtroom"}),
        key.as_bytes(),
    );
    let join = json!({"command":"joinRoom","room":"jwtroom","token":token});
    let mut legit = Vec::new();
    for _ in 0..2 {
        let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
        assert_eq!(
            ask(&mut c, join.clone()).await["definition"],
            "joinedTheRoom"
        );
        legit.push(c);
    }
    let mut third = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let err = ask(&mut third, join).await;
    assert_eq!(err["definition"], "NoSpaceForNewPeer", "{err}");
    // P2P joins of the same room are held to the same token.
    let err = ask(&mut third, json!({"command":"join","streamId":"jwtroom"})).await;
    assert_eq!(err, unauthorized("jwtroom"));

    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "unauthorized")), 23, "{m}");
    assert_eq!(sample(&m, &errors("antmedia", "room_full")), 1, "{m}");
    gw.stop().await;
}

/// Resident memory of this process (the in-process gateway and its test clients), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn long_ids_are_refused_in_every_dialect_and_memory_stays_bounded() {
    const CONNECTIONS: usize = 25;
    const JOINS: usize = 200;
    let gw = TestGateway::with_config(&every_dialect_config(
        "[limits]\nmessages_per_sec = 1000.0\nmessage_burst = 1000\n\n[[plugin]]\ntype = \"conference\"\n\n[[plugin]]\ntype = \"room-router\"\n",
    ))
    .await;
    let before = rss_kib();
    let long = "a".repeat(100_010);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (url, long) = (gw.ant_url("LiveApp"), long.clone());
        tasks.push(tokio::spawn(async move {
            let mut ws = WsClient::connect(&url).await;
            for j in 0..JOINS {
                let id = format!("{c}-{j}-{long}");
                let command = if j % 2 == 0 { "join" } else { "joinRoom" };
                let key = if j % 2 == 0 { "streamId" } else { "room" };
                let err = ask(&mut ws, json!({"command":command, key:id})).await;
                assert_eq!(err["definition"], "invalidStreamName", "{command}");
                // The refusal names the id cut short, never the whole 100 KB.
                assert!(err.to_string().len() < 1024);
            }
            ws.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = rss_kib();
    // 5,000 joins of 100 KB ids held ~1 GB before the cap; now nothing is kept.
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "RSS {} MiB before, {} MiB after 5,000 joins of 100 KB ids",
        before / 1024,
        after / 1024
    );
    assert!(grown_mib < 150, "RSS grew by {grown_mib} MiB");
    // 129 bytes is over the cap in every dialect; 128 is not.
    let over = "b".repeat(129);
    let refused = WsClient::try_connect(&gw.raw_url(&over), &[]).await;
    assert_eq!(
        refused.err().map(|(s, _)| s),
        Some(400),
        "raw room over 128 bytes"
    );
    let mut raw = WsClient::connect(&gw.raw_url("lobby")).await;
    assert_eq!(raw.recv_json().await["type"], "switchboard.joined");
    raw.send_json(json!({"type":"switchboard.play","stream":over,"room":"lobby"}))
        .await;
    assert_eq!(raw.recv_json().await["code"], "invalid_stream_name");
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let ok = ask(
        &mut ant,
        json!({"command":"join","streamId":"c".repeat(128)}),
    )
    .await;
    assert_eq!(ok["definition"], "joined", "{ok}");

    let m = scrape(&gw).await;
    assert_eq!(
        sample(&m, &errors("antmedia", "invalid_stream_name")),
        (CONNECTIONS * JOINS) as u64,
        "{m}"
    );
    assert_eq!(sample(&m, &errors("raw", "invalid_stream_name")), 1, "{m}");
    assert_eq!(sample(&m, &errors("raw", "invalid_room")), 1, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn one_connection_is_in_at_most_max_rooms_per_session_rooms() {
    let gw = TestGateway::with_config(&every_dialect_config(
        "[limits]\nmax_rooms_per_session = 4\n\n[[plugin]]\ntype = \"room-router\"\n",
    ))
    .await;
    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    for i in 0..4 {
        let ok = ask(
            &mut ant,
            json!({"command":"join","streamId":format!("r{i}")}),
        )
        .await;
        assert_eq!(ok["definition"], "joined", "{ok}");
    }
    let err = ask(&mut ant, json!({"command":"join","streamId":"r4"})).await;
    assert_eq!(err["definition"], "refused", "{err}");
    // A repeated join of a room it is in is not one more room.
    let again = ask(&mut ant, json!({"command":"join","streamId":"r0"})).await;
    assert_ne!(again["definition"], "refused", "{again}");
    // After leaving one, there is a place again.
    ant.send_json(json!({"command":"leave","streamId":"r1"}))
        .await;
    assert_eq!(ant.recv_json().await["definition"], "leaved");
    let ok = ask(&mut ant, json!({"command":"join","streamId":"r4"})).await;
    assert_eq!(ok["definition"], "joined", "{ok}");
    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "refused")), 1, "{m}");
    gw.stop().await;
}

fn sign(alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).unwrap()
}

/// A room-policy gateway whose token key is `token` (a TOML inline table's keys).
fn policy_gateway(token: &str) -> String {
    every_dialect_config(&room_policy_plugins(token))
}

#[tokio::test]
async fn rs256_and_es256_join_tokens_from_pem_files() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    for (alg, private, public) in [
        (Algorithm::RS256, "rs256-private.pem", "rs256-public.pem"),
        (Algorithm::ES256, "es256-private.pem", "es256-public.pem"),
    ] {
        let path = fixture(public);
        let gw = TestGateway::with_config(&policy_gateway(&format!(
            "jwt_public_key_file = {:?}",
            path.display().to_string()
        )))
        .await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let good = sign(alg, &key, &json!({"exp": unix_now() + 60, "room": "pk"}));
        assert_eq!(
            ant_join(&gw.ant_url("LiveApp"), "pk", &good).await["definition"],
            "joined"
        );
        let other_room = sign(alg, &key, &json!({"exp": unix_now() + 60, "room": "else"}));
        assert_eq!(
            ant_join(&gw.ant_url("LiveApp"), "pk", &other_room).await,
            unauthorized("pk")
        );
        // An HS256 token keyed with the public key's bytes (algorithm confusion).
        let pem_public = std::fs::read(&path).unwrap();
        let confused = switchboard_room_policy::sign_hs256(
            &json!({"exp": unix_now() + 60, "room": "pk"}),
            &pem_public,
        );
        assert_eq!(
            ant_join(&gw.ant_url("LiveApp"), "pk", &confused).await,
            unauthorized("pk")
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn nbf_leeway_and_non_canonical_tokens() {
    let key = "k".repeat(32);
    let strict =
        TestGateway::with_config(&policy_gateway(&format!("jwt_hs256_secret = \"{key}\""))).await;
    let lenient = TestGateway::with_config(&policy_gateway(&format!(
        "jwt_hs256_secret = \"{key}\", jwt_leeway_secs = 120"
    )))
    .await;
    let sign = |claims: Value| switchboard_room_policy::sign_hs256(&claims, key.as_bytes());
    let t = unix_now();
    let early = sign(json!({"exp": t + 600, "nbf": t + 60, "room": "n"}));
    assert_eq!(
        ant_join(&strict.ant_url("LiveApp"), "n", &early).await,
        unauthorized("n")
    );
    assert_eq!(
        ant_join(&lenient.ant_url("LiveApp"), "n", &early).await["definition"],
        "joined"
    );
    let late = sign(json!({"exp": t - 60, "room": "n2"}));
    assert_eq!(
        ant_join(&strict.ant_url("LiveApp"), "n2", &late).await,
        unauthorized("n2")
    );
    assert_eq!(
        ant_join(&lenient.ant_url("LiveApp"), "n2", &late).await["definition"],
        "joined"
    );
    // `=` padding appended to a good token: the same bytes, another token; refused.
    let good = sign(json!({"exp": t + 60, "room": "n3"}));
    for padded in [format!("{good}="), format!("{good}==")] {
        assert_eq!(
            ant_join(&strict.ant_url("LiveApp"), "n3", &padded).await,
            unauthorized("n3")
        );
    }
    assert_eq!(
        ant_join(&strict.ant_url("LiveApp"), "n3", &good).await["definition"],
        "joined"
    );
    let m = scrape(&strict).await;
    assert_eq!(sample(&m, &errors("antmedia", "unauthorized")), 4, "{m}");
    strict.stop().await;
    lenient.stop().await;
}

#[tokio::test]
async fn socketio_v4_clients_pass_the_token_in_auth() {
    let key = "k".repeat(32);
    let gw =
        TestGateway::with_config(&policy_gateway(&format!("jwt_hs256_secret = \"{key}\""))).await;
    let room = "sioauth";
    let token = switchboard_room_policy::sign_hs256(
        &json!({"exp": unix_now() + 60, "room": room}),
        key.as_bytes(),
    );
    let run = node(
        "sio_auth_token.mjs",
        &[&gw.http_url(), room, &token],
        Duration::from_secs(30),
    )
    .await;
    run.assert_success();
    let m = scrape(&gw).await;
    // Two refused connects: no token, and a forged one.
    assert_eq!(sample(&m, &errors("socketio", "unauthorized")), 2, "{m}");
    gw.stop().await;
}

/// The deliberately panicking native plugin (tests/plugins/panicking-plugin), built next to
/// this test binary by `cargo build --workspace`.
fn panicking_plugin() -> std::path::PathBuf {
    let file = "libpanicking_plugin.so";
    let exe = std::env::current_exe().unwrap();
    let next_to_exe = exe.parent().and_then(|p| p.parent()).map(|p| p.join(file));
    next_to_exe
        .filter(|p| p.is_file())
        .unwrap_or_else(|| repo_root().join("target/debug").join(file))
}

#[tokio::test]
async fn a_failing_policy_plugin_refuses_instead_of_failing_open() {
    let lib = panicking_plugin();
    assert!(
        lib.is_file(),
        "{} missing: cargo build --workspace",
        lib.display()
    );
    let gw = TestGateway::with_config(&every_dialect_config(&format!(
        "[[plugin]]\ntype = \"policy\"\npath = {:?}\non_failure = \"refuse\"\n\n[[plugin]]\ntype = \"room-router\"\n",
        lib.display().to_string()
    )))
    .await;
    let mut a = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let calm = ask(&mut a, json!({"command":"join","streamId":"calm"})).await;
    assert_eq!(calm["definition"], "joined", "{calm}");
    let boom = ask(&mut a, json!({"command":"join","streamId":"boom"})).await;
    assert_eq!(boom["definition"], "server_error_check_logs", "{boom}");
    let text = boom.to_string();
    assert!(!text.contains("panic") && !text.contains("0x"), "{text}");
    // The plugin is now disabled; fail closed means every later event is refused too.
    let mut b = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let later = ask(&mut b, json!({"command":"join","streamId":"calm2"})).await;
    assert_eq!(later["definition"], "server_error_check_logs", "{later}");
    // Leaving still works (a leave is never refused).
    a.send_json(json!({"command":"leave","streamId":"calm"}))
        .await;
    assert_eq!(a.recv_json().await["definition"], "leaved");
    let m = scrape(&gw).await;
    assert_eq!(sample(&m, &errors("antmedia", "internal")), 2, "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn sdp_errors_carry_fixed_texts() {
    let gw = TestGateway::with_config(&every_dialect_config(
        "[[plugin]]\ntype = \"conference\"\n\n[[plugin]]\ntype = \"sfu\"\n[plugin.settings]\nudp_bind = \"127.0.0.1:0\"\n\n[[plugin]]\ntype = \"room-router\"\n",
    ))
    .await;
    let mut ws = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ws.send_json(json!({"command":"publish","streamId":"s1","mainTrack":"r1"}))
        .await;
    assert_eq!(ws.recv_json().await["command"], "start");
    for garbage in ["v=0\r\nthis is not sdp", "not sdp at all"] {
        ws.send_json(
            json!({"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":garbage}),
        )
        .await;
        let err = loop {
            let v = ws.recv_json().await;
            if v["command"] != "pong" {
                break v;
            }
        };
        assert_eq!(err["definition"], "notSetRemoteDescription", "{err}");
        assert_eq!(
            err["information"], "the offer is not a readable SDP",
            "{err}"
        );
    }
    gw.stop().await;
}

/// A loopback HTTP server that answers every request with the current `document`; counts
/// requests. Serves at most 200 connections, then stops by itself.
async fn jwks_server(
    document: std::sync::Arc<std::sync::Mutex<String>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        for _ in 0..200 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = document.lock().unwrap().clone();
            answer_json(&mut tcp, &body).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn jwks_keys_are_fetched_cached_and_refreshed() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let document = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys":[ec_jwk("es256-public.pem", "k1")]}).to_string(),
    ));
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (addr, server) = jwks_server(document.clone(), requests.clone()).await;
    let started = std::time::Instant::now();
    let gw = TestGateway::with_config(&policy_gateway(&format!(
        "jwks_url = \"http://{addr}/.well-known/jwks.json\", jwks_refresh_secs = 1"
    )))
    .await;
    let signed = |private: &str, kid: &str| {
        let key = EncodingKey::from_ec_pem(&std::fs::read(fixture(private)).unwrap()).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &json!({"exp": unix_now() + 60}), &key).unwrap()
    };
    let k1 = signed("es256-private.pem", "k1");
    let k2 = signed("es256-rotated-private.pem", "k2");
    let mut attempt = 0;
    // Joins until one is admitted (the first fetch may still be on its way), bounded.
    let mut joins_until = |gw: &TestGateway, token: String| {
        let (url, token) = (gw.ant_url("LiveApp"), token);
        attempt += 1;
        let first = attempt * 100;
        async move {
            for i in 0..50 {
                let mut c = WsClient::connect(&url).await;
                let room = format!("jwks{}", first + i);
                let reply = ask(
                    &mut c,
                    json!({"command":"join","streamId":room,"token":token}),
                )
                .await;
                c.close().await;
                if reply["definition"] == "joined" {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(
        joins_until(&gw, k1.clone()).await,
        "a k1 token is admitted once the keys are in"
    );
    assert_eq!(
        ant_join(&gw.ant_url("LiveApp"), "jwksx", &k2).await,
        unauthorized("jwksx"),
        "k2 is not in the set yet"
    );
    // Key rotation: the document now has k2 only; the refresh picks it up.
    *document.lock().unwrap() =
        json!({"keys":[ec_jwk("es256-rotated-public.pem", "k2")]}).to_string();
    assert!(
        joins_until(&gw, k2.clone()).await,
        "the rotated key is picked up by the refresh"
    );
    assert_eq!(
        ant_join(&gw.ant_url("LiveApp"), "jwksy", &k1).await,
        unauthorized("jwksy"),
        "k1 was rotated out"
    );
    // Cached: about one fetch per refresh interval, not one per token.
    let fetched = requests.load(std::sync::atomic::Ordering::SeqCst) as u64;
    let elapsed = started.elapsed().as_secs();
    assert!(
        fetched >= 2 && fetched <= elapsed + 3,
        "{fetched} fetches in {elapsed} s"
    );
    gw.stop().await;
    server.abort();
}

#[tokio::test]
async fn an_ant_app_takes_its_jwt_keys_from_its_jwks_url() {
    let document = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys":[ec_jwk("es256-public.pem", "app-key")]}).to_string(),
    ));
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (addr, server) = jwks_server(document, requests.clone()).await;
    let gw = TestGateway::with_config(&every_dialect_config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
play = "jwt"
jwks_url = "http://{addr}/jwks.json"

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#
    )))
    .await;
    let claims = json!({"streamId":"s1","type":"play","exp": unix_now() + 60});
    let token = es256_token("app-key", &claims);
    let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let play = json!({"command":"play","streamId":"s1","room":"","token":token});
    // The first fetch may still be on its way; bounded.
    assert!(
        ask_until(&mut c, &play, "media_plugin_not_running").await,
        "a token signed with the JWKS key passes the play check"
    );
    let other = json!({"command":"play","streamId":"s2","room":"","token":token});
    assert_eq!(ask(&mut c, other).await, unauthorized("s2"));
    assert!(requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    gw.stop().await;
    server.abort();
}
