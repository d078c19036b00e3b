use std::time::Duration;

use serde_json::json;
use switchboard_plugin_api::protocol::{Description, JoinMode, SdpKind};
use switchboard_plugin_api::{Envelope, Peer, RoomView, SessionId};

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_900_000_000;

fn peer(id: u64, dialect: DialectKind) -> Peer {
    Peer {
        session: SessionId(id),
        dialect,
        mode: JoinMode::Both,
    }
}

fn join_event(room: &str, token: Option<&str>) -> Event {
    Event::Join(Join {
        room: room.into(),
        mode: JoinMode::Both,
        token: token.map(str::to_owned),
    })
}

fn policy(toml_text: &str) -> RoomPolicy {
    let settings: toml::Table = toml::from_str(toml_text).expect("TOML");
    let config: RoomPolicyConfig = parse_settings(&settings).expect("parses");
    RoomPolicy::new(&config).expect("valid")
}

/// Runs `event` from `from` through the hook with `members` in the room.
fn run(p: &RoomPolicy, from: Peer, event: Event, members: &[Peer]) -> Verdict {
    let envelope = Envelope {
        from,
        event,
        original: None,
    };
    let room = envelope.event.room().unwrap_or("").to_owned();
    let cx = EventContext {
        envelope: &envelope,
        room: RoomView {
            room: &room,
            members,
        },
    };
    let mut decision = Decision::default();
    let verdict = p.on_event(&cx, &mut decision).expect("policy never fails");
    assert!(decision.deliveries.is_empty(), "the policy never delivers");
    verdict
}

fn refused_code(v: &Verdict) -> Option<ErrorCode> {
    match v {
        Verdict::Refuse(r) => Some(r.code),
        _ => None,
    }
}

fn refusal_message(v: &Verdict) -> &str {
    match v {
        Verdict::Refuse(r) => &r.message,
        _ => panic!("not refused: {v:?}"),
    }
}

const ANT: DialectKind = DialectKind::Antmedia;

#[test]
fn empty_settings_admit_everything() {
    let p = policy("");
    let v = run(&p, peer(1, ANT), join_event("any room", None), &[]);
    assert_eq!(v, Verdict::Continue);
}

#[test]
fn max_peers_refuses_as_room_full_but_not_a_repeated_join() {
    let p = policy("max_peers = 2");
    let (a, b, c) = (peer(1, ANT), peer(2, ANT), peer(3, ANT));
    assert_eq!(run(&p, b, join_event("r", None), &[a]), Verdict::Continue);
    let v = run(&p, c, join_event("r", None), &[a, b]);
    assert_eq!(refused_code(&v), Some(ErrorCode::RoomFull));
    assert_eq!(
        run(&p, a, join_event("r", None), &[a, b]),
        Verdict::Continue
    );
}

#[test]
fn room_pattern_is_a_full_match() {
    let p = policy(r#"room_pattern = "room[0-9]+""#);
    let a = peer(1, ANT);
    assert_eq!(
        run(&p, a, join_event("room42", None), &[]),
        Verdict::Continue
    );
    for bad in ["xroom42", "room42x", "room"] {
        let v = run(&p, a, join_event(bad, None), &[]);
        assert_eq!(
            refused_code(&v),
            Some(ErrorCode::InvalidStreamName),
            "{bad}"
        );
        assert!(refusal_message(&v).contains("room[0-9]+"));
    }
}

#[test]
fn dialect_rules_first_match_decides() {
    let p = policy(
        r#"rules = [
            { rooms = "^classic-", dialects = ["socketio"] },
            { rooms = "^classic-open", dialects = ["raw"] },
        ]"#,
    );
    let sio = peer(1, DialectKind::Socketio);
    let raw = peer(2, DialectKind::Raw);
    assert_eq!(
        run(&p, sio, join_event("classic-1", None), &[]),
        Verdict::Continue
    );
    let v = run(&p, raw, join_event("classic-open", None), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::Refused));
    assert!(refusal_message(&v).contains("socketio"), "{v:?}");
    // Rooms no rule matches admit everyone.
    assert_eq!(
        run(&p, raw, join_event("other", None), &[]),
        Verdict::Continue
    );
}

#[test]
fn shared_secret_token() {
    let p = policy(r#"token = { secret = "s3cret" }"#);
    let a = peer(1, ANT);
    assert_eq!(
        run(&p, a, join_event("r", Some("s3cret")), &[]),
        Verdict::Continue
    );
    for token in [None, Some("s3cre"), Some("s3cretx"), Some("")] {
        let v = run(&p, a, join_event("r", token), &[]);
        assert_eq!(refused_code(&v), Some(ErrorCode::Unauthorized), "{token:?}");
    }
}

#[test]
fn jwt_checks() {
    let key = KEY.as_bytes();
    let ok = |claims: serde_json::Value| check_jwt_hs256(&sign_hs256(&claims, key), key, "r", NOW);
    assert_eq!(ok(json!({"exp": NOW + 60})), Ok(()));
    assert_eq!(ok(json!({"exp": NOW + 60, "room": "r"})), Ok(()));
    assert_eq!(
        ok(json!({"exp": NOW + 60, "streamId": "r", "type": "play"})),
        Ok(())
    );
    assert_eq!(ok(json!({"exp": (NOW + 60) as f64 + 0.5})), Ok(()));
    assert_eq!(ok(json!({"exp": NOW})), Err(TokenError::Expired));
    assert_eq!(ok(json!({"room": "r"})), Err(TokenError::NoExpiry));
    assert_eq!(ok(json!({"exp": "soon"})), Err(TokenError::NoExpiry));
    assert!(matches!(
        ok(json!({"exp": NOW + 60, "room": "other"})),
        Err(TokenError::WrongRoom { .. })
    ));
    assert!(matches!(
        ok(json!({"exp": NOW + 60, "room": 7})),
        Err(TokenError::WrongRoom { .. })
    ));
    // Signed with another key.
    let forged = sign_hs256(
        &json!({"exp": NOW + 60}),
        b"another key of thirty-two bytes!",
    );
    assert_eq!(
        check_jwt_hs256(&forged, key, "r", NOW),
        Err(TokenError::Signature)
    );
    // A tampered payload no longer verifies.
    let good = sign_hs256(&json!({"exp": NOW + 60, "room": "r"}), key);
    let parts: Vec<_> = good.split('.').collect();
    let other = b64url(br#"{"exp":1999999999,"room":"x"}"#);
    let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
    assert_eq!(
        check_jwt_hs256(&tampered, key, "x", NOW),
        Err(TokenError::Signature)
    );
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn jwt_rejects_other_algorithms_and_garbage() {
    let key = KEY.as_bytes();
    let none_header = b64url(br#"{"alg":"none"}"#);
    let payload = b64url(format!(r#"{{"exp":{}}}"#, NOW + 60).as_bytes());
    assert_eq!(
        check_jwt_hs256(&format!("{none_header}.{payload}."), key, "r", NOW),
        Err(TokenError::Algorithm("none".into()))
    );
    for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
        let result = check_jwt_hs256(garbage, key, "r", NOW);
        assert!(
            matches!(result, Err(TokenError::Malformed(_))),
            "{garbage}: {result:?}"
        );
    }
}

#[test]
fn jwt_token_through_the_hook() {
    let p = policy(&format!(r#"token = {{ jwt_hs256_secret = "{KEY}" }}"#));
    let a = peer(1, ANT);
    let now = unix_now_secs();
    let good = sign_hs256(&json!({"exp": now + 60, "room": "r"}), KEY.as_bytes());
    assert_eq!(
        run(&p, a, join_event("r", Some(&good)), &[]),
        Verdict::Continue
    );
    let expired = sign_hs256(&json!({"exp": now - 1}), KEY.as_bytes());
    let v = run(&p, a, join_event("r", Some(&expired)), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::Unauthorized));
    assert_eq!(refusal_message(&v), "join token expired");
    let v = run(&p, a, join_event("r", None), &[]);
    assert_eq!(refusal_message(&v), "this room requires a join token");
}

#[test]
fn token_bucket_refills_at_the_rate() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::full(2);
    assert!(bucket.take(1.0, 2, t0));
    assert!(bucket.take(1.0, 2, t0));
    assert!(!bucket.take(1.0, 2, t0));
    assert!(!bucket.take(1.0, 2, t0 + Duration::from_millis(900)));
    assert!(bucket.take(1.0, 2, t0 + Duration::from_millis(1100)));
    assert!(!bucket.is_full(1.0, 2, t0 + Duration::from_millis(1100)));
    assert!(bucket.is_full(1.0, 2, t0 + Duration::from_secs(10)));
    // Never more than `burst` after a long pause.
    let later = t0 + Duration::from_secs(100);
    assert!(bucket.take(1.0, 2, later));
    assert!(bucket.take(1.0, 2, later));
    assert!(!bucket.take(1.0, 2, later));
}

#[test]
fn rate_limit_global_and_per_room() {
    let p = policy("join_rate_per_sec = 0.001\njoin_burst = 2");
    let a = peer(1, ANT);
    assert_eq!(run(&p, a, join_event("r1", None), &[]), Verdict::Continue);
    assert_eq!(run(&p, a, join_event("r2", None), &[]), Verdict::Continue);
    let v = run(&p, a, join_event("r3", None), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::RateLimited));

    let p = policy("join_rate_per_sec = 0.001\njoin_burst = 1\nper_room = true");
    assert_eq!(run(&p, a, join_event("r1", None), &[]), Verdict::Continue);
    assert_eq!(run(&p, a, join_event("r2", None), &[]), Verdict::Continue);
    let v = run(&p, a, join_event("r1", None), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::RateLimited));
    assert!(refusal_message(&v).contains("room `r1`"));
}

#[test]
fn rate_limit_counts_attempts_refused_for_other_reasons() {
    let p = policy("join_rate_per_sec = 0.001\njoin_burst = 1\ntoken = { secret = \"s\" }");
    let a = peer(1, ANT);
    let v = run(&p, a, join_event("r", Some("guess")), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::Unauthorized));
    let v = run(&p, a, join_event("r", Some("s")), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::RateLimited));
}

#[test]
fn other_events_pass() {
    let p = policy("max_peers = 1\nroom_pattern = \"x\"\ntoken = { secret = \"s\" }");
    let offer = Event::Description(Description {
        room: "not-x".into(),
        kind: SdpKind::Offer,
        sdp: "v=0".into(),
    });
    let a = peer(1, ANT);
    assert_eq!(run(&p, a, offer, &[a, peer(2, ANT)]), Verdict::Continue);
}

#[test]
fn every_settings_problem_is_reported_with_its_key() {
    let settings: toml::Table = toml::from_str(
        r#"
        max_peers = 0
        room_pattern = "("
        rules = [{ rooms = "[", dialects = [] }]
        join_burst = 0
        per_room = true
        token = { secret = "a", jwt_hs256_secret = "b" }
        "#,
    )
    .expect("TOML");
    let errors = RoomPolicyFactory.build(&settings).err().expect("invalid");
    let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "max_peers",
            "room_pattern",
            "rules[0].rooms",
            "rules[0].dialects",
            "token",
            "join_burst",
            "per_room"
        ]
    );
    let settings: toml::Table =
        toml::from_str("join_rate_per_sec = -1.0\ntoken = { jwt_hs256_secret = \"short\" }")
            .expect("TOML");
    let errors = RoomPolicyFactory.build(&settings).err().expect("invalid");
    let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["token.jwt_hs256_secret", "join_rate_per_sec"]);
    let settings: toml::Table = toml::from_str("max_peer = 2").expect("TOML");
    let errors = RoomPolicyFactory
        .build(&settings)
        .err()
        .expect("unknown key");
    assert!(errors[0].message.contains("unknown field"), "{errors:?}");
    let settings: toml::Table = toml::from_str("token = {}").expect("TOML");
    let errors = RoomPolicyFactory
        .build(&settings)
        .err()
        .expect("empty token");
    assert_eq!(errors[0].key, "token");
}

#[test]
fn canonical_example_config_builds() {
    let text = include_str!("../../../config/plugins/room-policy.toml");
    let doc: toml::Table = toml::from_str(text).expect("example is TOML");
    let plugins = doc["plugin"].as_array().expect("[[plugin]] array");
    assert_eq!(plugins.len(), 1);
    let table = plugins[0].as_table().expect("table");
    assert_eq!(table["type"].as_str(), Some(RoomPolicyFactory.type_name()));
    let settings = table["settings"].as_table().expect("[plugin.settings]");
    let plugin = RoomPolicyFactory.build(settings).expect("example builds");
    assert_eq!(plugin.name(), "room-policy");
}
