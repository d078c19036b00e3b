use std::time::Duration;

use serde_json::json;
use switchboard_plugin_api::event::{Description, Join, JoinMode, SdpKind};
use switchboard_plugin_api::{Peer, RoomView, SessionId};

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

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
    let room = event.room().unwrap_or("").to_owned();
    let cx = EventContext::new(
        from,
        &event,
        RoomView {
            room: &room,
            members,
        },
    );
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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn hmac(rules: &ClaimRules) -> JwtVerifier {
    JwtVerifier::hmac(KEY.as_bytes(), rules).expect("key")
}

fn sign_with(
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
    claims: &serde_json::Value,
) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).expect("signs")
}

#[test]
fn jwt_checks() {
    let key = KEY.as_bytes();
    let v = hmac(&ClaimRules::default());
    let t = now();
    let ok = |claims: serde_json::Value| v.verify_join(&sign_hs256(&claims, key), "r");
    assert_eq!(ok(json!({"exp": t + 60})), Ok(()));
    assert_eq!(ok(json!({"exp": t + 60, "room": "r"})), Ok(()));
    assert_eq!(
        ok(json!({"exp": t + 60, "streamId": "r", "type": "play"})),
        Ok(())
    );
    assert_eq!(ok(json!({"exp": t - 1})), Err(TokenError::Expired));
    assert_eq!(ok(json!({"room": "r"})), Err(TokenError::NoExpiry));
    assert_eq!(
        ok(json!({"exp": t + 60, "room": "other"})),
        Err(TokenError::WrongRoom)
    );
    assert_eq!(
        ok(json!({"exp": t + 60, "room": 7})),
        Err(TokenError::WrongRoom)
    );
    // Signed with another key.
    let forged = sign_hs256(&json!({"exp": t + 60}), b"another key of thirty-two bytes!");
    assert_eq!(v.verify_join(&forged, "r"), Err(TokenError::Signature));
    // A tampered payload no longer verifies.
    let good = sign_hs256(&json!({"exp": t + 60, "room": "r"}), key);
    let parts: Vec<_> = good.split('.').collect();
    let other = b64url(format!(r#"{{"exp":{},"room":"x"}}"#, t + 60).as_bytes());
    let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
    assert_eq!(v.verify_join(&tampered, "x"), Err(TokenError::Signature));
}

#[test]
fn jwt_nbf_and_leeway() {
    let key = KEY.as_bytes();
    let t = now();
    let strict = hmac(&ClaimRules::default());
    let lenient = hmac(&ClaimRules {
        leeway_secs: 120,
        ..ClaimRules::default()
    });
    let early = sign_hs256(&json!({"exp": t + 600, "nbf": t + 60}), key);
    assert_eq!(strict.verify(&early).err(), Some(TokenError::NotYetValid));
    assert!(lenient.verify(&early).is_ok(), "nbf within the leeway");
    let late = sign_hs256(&json!({"exp": t - 60}), key);
    assert_eq!(strict.verify(&late).err(), Some(TokenError::Expired));
    assert!(lenient.verify(&late).is_ok(), "exp within the leeway");
    let far = sign_hs256(&json!({"exp": t + 600, "nbf": t + 300}), key);
    assert_eq!(lenient.verify(&far).err(), Some(TokenError::NotYetValid));
}

#[test]
fn jwt_audience_issuer_and_algorithms() {
    let t = now();
    let rules = ClaimRules {
        audience: Some("switchboard".into()),
        issuer: Some("https://issuer.example".into()),
        ..ClaimRules::default()
    };
    let v = hmac(&rules);
    let key = jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()).expect("key");
    let claims = |aud: &str, iss: &str| json!({"exp": t + 60, "aud": aud, "iss": iss});
    for alg in [
        jsonwebtoken::Algorithm::HS256,
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let token = sign_with(alg, &key, &claims("switchboard", "https://issuer.example"));
        assert!(v.verify(&token).is_ok(), "{alg:?}");
    }
    let hs = jsonwebtoken::Algorithm::HS256;
    let other_aud = sign_with(hs, &key, &claims("else", "https://issuer.example"));
    assert_eq!(v.verify(&other_aud).err(), Some(TokenError::Audience));
    let other_iss = sign_with(hs, &key, &claims("switchboard", "https://evil.example"));
    assert_eq!(v.verify(&other_iss).err(), Some(TokenError::Issuer));
    let no_iss = sign_with(hs, &key, &json!({"exp": t + 60, "aud": "switchboard"}));
    assert_eq!(v.verify(&no_iss).err(), Some(TokenError::Issuer));
}

const RS_PRIVATE: &[u8] = include_bytes!("../../../tests/fixtures/jwt/rs256-private.pem");
const RS_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/jwt/rs256-public.pem");
const ES_PRIVATE: &[u8] = include_bytes!("../../../tests/fixtures/jwt/es256-private.pem");
const ES_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/jwt/es256-public.pem");

#[test]
fn jwt_rs256_and_es256_public_keys() {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let claims = json!({"exp": now() + 60, "room": "r"});
    let rules = ClaimRules::default();
    let rs = JwtVerifier::public_key_pem(RS_PUBLIC, &rules).expect("RSA key");
    let es = JwtVerifier::public_key_pem(ES_PUBLIC, &rules).expect("EC key");
    let rs_token = sign_with(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RS_PRIVATE).expect("k"),
        &claims,
    );
    let es_token = sign_with(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(ES_PRIVATE).expect("k"),
        &claims,
    );
    assert_eq!(rs.verify_join(&rs_token, "r"), Ok(()));
    assert_eq!(es.verify_join(&es_token, "r"), Ok(()));
    // Each key verifies only its own tokens; an HMAC token signed with the public key's
    // bytes (the classic algorithm confusion) is refused for its algorithm.
    assert!(rs.verify(&es_token).is_err());
    assert!(es.verify(&rs_token).is_err());
    let confused = sign_hs256(&claims, RS_PUBLIC);
    assert_eq!(rs.verify(&confused).err(), Some(TokenError::Algorithm));
    assert!(JwtVerifier::public_key_pem(b"not a key", &rules).is_err());
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn jwt_rejects_other_algorithms_garbage_and_non_canonical_base64() {
    let v = hmac(&ClaimRules::default());
    let t = now();
    let none_header = b64url(br#"{"alg":"none"}"#);
    let payload = b64url(format!(r#"{{"exp":{}}}"#, t + 60).as_bytes());
    assert!(v.verify(&format!("{none_header}.{payload}.")).is_err());
    for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
        assert!(v.verify(garbage).is_err(), "{garbage}");
    }
    let good = sign_hs256(&json!({"exp": t + 60}), KEY.as_bytes());
    assert!(v.verify(&good).is_ok());
    let parts: Vec<&str> = good.split('.').collect();
    // `=` padding appended to the signature or to the payload: the same bytes, another text.
    assert!(v.verify(&format!("{good}=")).is_err(), "padded signature");
    assert!(v.verify(&format!("{good}==")).is_err(), "padded signature");
    let padded_payload = format!("{}.{}=.{}", parts[0], parts[1], parts[2]);
    assert!(v.verify(&padded_payload).is_err(), "padded payload");
    // A signature whose last character differs only in the unused trailing bits decodes to
    // the same bytes with a lenient decoder; it must be refused.
    let sig = parts[2];
    let last = sig.chars().last().expect("signature");
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = ALPHABET.find(last).expect("base64url");
    // A 32-byte HS256 signature is 43 characters: the last one carries 2 unused bits.
    let sibling = ALPHABET.as_bytes()[index ^ 1] as char;
    let tweaked = format!(
        "{}.{}.{}{sibling}",
        parts[0],
        parts[1],
        &sig[..sig.len() - 1]
    );
    assert!(v.verify(&tweaked).is_err(), "trailing bits");
}

#[test]
fn jwt_token_through_the_hook() {
    let p = policy(&format!(r#"token = {{ jwt_hs256_secret = "{KEY}" }}"#));
    let a = peer(1, ANT);
    let now = now();
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

fn join_room_event(room: &str, token: Option<&str>) -> Event {
    use switchboard_plugin_api::event::ConferenceRequest;
    use switchboard_plugin_api::event::conference::JoinRoom;
    Event::Conference(Box::new(ConferenceRequest {
        app: "LiveApp".into(),
        command: ConferenceCommand::JoinRoom(JoinRoom {
            room: room.into(),
            stream_id: None,
            mode: None,
            stream_name: None,
            role: None,
            meta_data: None,
            token: token.map(str::to_owned),
        }),
    }))
}

#[test]
fn join_room_is_held_to_the_token_and_max_peers() {
    let p = policy(&format!(
        "max_peers = 2\ntoken = {{ jwt_hs256_secret = \"{KEY}\" }}"
    ));
    let a = peer(1, ANT);
    let v = run(&p, a, join_room_event("r", None), &[]);
    assert_eq!(refused_code(&v), Some(ErrorCode::Unauthorized));
    let good = sign_hs256(&json!({"exp": now() + 60, "room": "r"}), KEY.as_bytes());
    assert_eq!(
        run(&p, a, join_room_event("r", Some(&good)), &[]),
        Verdict::Continue
    );
    let full = [peer(2, ANT), peer(3, ANT)];
    let v = run(&p, a, join_room_event("r", Some(&good)), &full);
    assert_eq!(refused_code(&v), Some(ErrorCode::RoomFull));
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
