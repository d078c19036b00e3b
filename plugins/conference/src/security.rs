//! Stream security per Ant Media application (antmedia.md §7): one-time tokens, HS256 JWTs and
//! hash tokens, checked on `publish`, `play` and (when configured) `joinRoom`.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::records::{TokenRecord, TokenType};

/// Shortest JWT secret accepted (Ant Media asks for at least 32 characters).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// How one kind of access is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCheck {
    /// No token needed (Ant's default).
    #[default]
    None,
    /// A one-time token created by `GET .../broadcasts/{id}/token` (Ant
    /// `publishTokenControlEnabled` / `playTokenControlEnabled`).
    OneTime,
    /// An HS256 JWT with `streamId`, `type` and `exp` claims, signed with `jwt_secret` (Ant
    /// `publishJwtControlEnabled` / `playJwtControlEnabled`).
    Jwt,
    /// `hex(sha256(streamId + type + hash_secret))` (Ant `hashControlPublishEnabled` /
    /// `hashControlPlayEnabled`).
    Hash,
}

/// `[[antmedia_app]]`: the stream security of one Ant Media application (the `{app}` of
/// `/{app}/websocket` and `/{app}/rest/`). Applications not listed check no tokens. One
/// mechanism per kind of access: Ant checks every enabled mechanism against the same `token`,
/// so two at once could never both pass.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSecurityConfig {
    /// The application name, e.g. `"LiveApp"`.
    pub name: String,
    /// How `publish` is checked.
    #[serde(default)]
    pub publish: TokenCheck,
    /// How `play` is checked.
    #[serde(default)]
    pub play: TokenCheck,
    /// How `joinRoom` is checked: as a `play` of the room id (a one-time token bound to the
    /// room with `roomId`, or made for the room's id; a JWT or hash for the room's id and type
    /// `play`). The token travels in `joinRoom`'s `token` field.
    #[serde(default)]
    pub join_room: TokenCheck,
    /// HS256 key for JWTs (at least 32 bytes); needed by `jwt` checks and by the REST
    /// `jwt-token` call.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// Secret of hash tokens; needed by `hash` checks.
    #[serde(default)]
    pub hash_secret: Option<String>,
}

impl AppSecurityConfig {
    /// Every problem with these settings, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            out.push((
                "name",
                format!(
                    "`{}` is not an application name ([A-Za-z0-9._-]+)",
                    self.name
                ),
            ));
        }
        let checks = [self.publish, self.play, self.join_room];
        if checks.contains(&TokenCheck::Jwt) {
            match &self.jwt_secret {
                None => out.push(("jwt_secret", "required by a `jwt` check".to_owned())),
                Some(s) if s.len() < MIN_JWT_SECRET_BYTES => out.push((
                    "jwt_secret",
                    format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
                )),
                Some(_) => {}
            }
        } else if let Some(s) = &self.jwt_secret
            && s.len() < MIN_JWT_SECRET_BYTES
        {
            out.push((
                "jwt_secret",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            ));
        }
        if checks.contains(&TokenCheck::Hash)
            && self.hash_secret.as_deref().is_none_or(str::is_empty)
        {
            out.push(("hash_secret", "required by a `hash` check".to_owned()));
        }
        out
    }
}

/// What a token is presented for.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The stream (for `joinRoom`: the room id).
    pub stream: &'a str,
    /// Publish or play.
    pub kind: TokenType,
    /// The room the request names (`publish`'s `mainTrack`, `play`'s `room`, the joined room).
    pub room: Option<&'a str>,
}

/// Checks `token` for `access` with mechanism `check` of `app`. One-time tokens are looked up in
/// `tokens`; one not bound to a room is removed from it (single use) and its id returned so the
/// caller can delete it on disk too. The error is the reason, for logs and raw peers (Ant peers
/// get `unauthorized_access` without it, as AMS sends it).
pub fn check(
    app: &AppSecurityConfig,
    check: TokenCheck,
    token: Option<&str>,
    access: Access<'_>,
    tokens: &mut HashMap<String, TokenRecord>,
    now: i64,
) -> Result<Option<String>, String> {
    if check == TokenCheck::None {
        return Ok(None);
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(format!(
            "application `{}` requires a token to {}",
            app.name,
            access.kind.as_str()
        ));
    };
    match check {
        TokenCheck::None => Ok(None),
        TokenCheck::OneTime => one_time(token, access, tokens, now),
        TokenCheck::Jwt => {
            let key = app.jwt_secret.as_deref().unwrap_or_default();
            jwt(token, key.as_bytes(), access, now).map(|()| None)
        }
        TokenCheck::Hash => {
            let secret = app.hash_secret.as_deref().unwrap_or_default();
            let expected = hash_token(access.stream, access.kind, secret);
            switchboard_room_policy::check_shared_secret(token, &expected)
                .map(|()| None)
                .map_err(|_| "hash token does not match".to_owned())
        }
    }
}

/// Ant's one-time token rules (`validateToken`): the token exists, has the requested type and
/// has not expired. A token bound to a room is good for that room (the joined room, the
/// request's `room`/`mainTrack`, or a stream id equal to the room) and is not used up; any other
/// token is good once, for its own stream.
fn one_time(
    token: &str,
    access: Access<'_>,
    tokens: &mut HashMap<String, TokenRecord>,
    now: i64,
) -> Result<Option<String>, String> {
    let record = tokens
        .get(token)
        .ok_or_else(|| "token is not valid (unknown or already used)".to_owned())?;
    if record.kind != access.kind {
        return Err(format!(
            "token is a {} token, not a {} token",
            record.kind.as_str(),
            access.kind.as_str()
        ));
    }
    if now >= record.expire_date {
        return Err("token expired".to_owned());
    }
    match &record.room_id {
        Some(room) => {
            if access.room == Some(room.as_str()) || access.stream == room {
                Ok(None)
            } else {
                Err(format!("token is for room `{room}`"))
            }
        }
        None if record.stream_id == access.stream => {
            tokens.remove(token);
            Ok(Some(token.to_owned()))
        }
        None => Err(format!("token is for stream `{}`", record.stream_id)),
    }
}

/// An HS256 JWT whose `streamId` and `type` claims are the stream and kind asked for.
fn jwt(token: &str, key: &[u8], access: Access<'_>, now: i64) -> Result<(), String> {
    let claims =
        switchboard_room_policy::verify_hs256(token, key, now).map_err(|e| e.to_string())?;
    let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    if claim("streamId") != Some(access.stream) {
        return Err(format!("token is not for stream `{}`", access.stream));
    }
    if claim("type") != Some(access.kind.as_str()) {
        return Err(format!("token is not a {} token", access.kind.as_str()));
    }
    Ok(())
}

/// `hex(sha256(streamId + type + secret))`, Ant's hash token.
pub fn hash_token(stream: &str, kind: TokenType, secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(stream.as_bytes())
        .chain_update(kind.as_str().as_bytes())
        .chain_update(secret.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs an Ant stream JWT (`streamId`, `type`, `exp`).
pub fn sign_jwt(stream: &str, kind: TokenType, exp: i64, key: &str) -> String {
    let claims = serde_json::json!({ "streamId": stream, "type": kind.as_str(), "exp": exp });
    switchboard_room_policy::sign_hs256(&claims, key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(publish: TokenCheck) -> AppSecurityConfig {
        AppSecurityConfig {
            name: "LiveApp".into(),
            publish,
            play: TokenCheck::None,
            join_room: TokenCheck::None,
            jwt_secret: Some("k".repeat(32)),
            hash_secret: Some("hs".into()),
        }
    }

    fn publish(stream: &str) -> Access<'_> {
        Access {
            stream,
            kind: TokenType::Publish,
            room: None,
        }
    }

    fn tokens(list: &[TokenRecord]) -> HashMap<String, TokenRecord> {
        list.iter()
            .map(|t| (t.token_id.clone(), t.clone()))
            .collect()
    }

    fn token(id: &str, stream: &str, kind: TokenType, room: Option<&str>) -> TokenRecord {
        TokenRecord {
            token_id: id.into(),
            stream_id: stream.into(),
            expire_date: 100,
            kind,
            room_id: room.map(str::to_owned),
        }
    }

    #[test]
    fn one_time_tokens_follow_ant_rules() {
        let a = app(TokenCheck::OneTime);
        let mut t = tokens(&[
            token("t1", "s1", TokenType::Publish, None),
            token("t2", "s1", TokenType::Play, None),
            token("t3", "x", TokenType::Publish, Some("room1")),
        ]);
        let c = TokenCheck::OneTime;
        assert!(check(&a, c, None, publish("s1"), &mut t, 50).is_err());
        assert!(
            check(&a, c, Some("t2"), publish("s1"), &mut t, 50).is_err(),
            "type"
        );
        assert!(
            check(&a, c, Some("t1"), publish("s2"), &mut t, 50).is_err(),
            "stream"
        );
        assert!(
            check(&a, c, Some("t1"), publish("s1"), &mut t, 100).is_err(),
            "expired"
        );
        assert_eq!(
            check(&a, c, Some("t1"), publish("s1"), &mut t, 50),
            Ok(Some("t1".into()))
        );
        assert!(
            check(&a, c, Some("t1"), publish("s1"), &mut t, 50).is_err(),
            "used"
        );
        let in_room = Access {
            room: Some("room1"),
            ..publish("any")
        };
        for _ in 0..2 {
            assert_eq!(check(&a, c, Some("t3"), in_room, &mut t, 50), Ok(None));
        }
        let other_room = Access {
            room: Some("room2"),
            ..publish("any")
        };
        assert!(check(&a, c, Some("t3"), other_room, &mut t, 50).is_err());
    }

    #[test]
    fn jwt_and_hash_tokens() {
        let key = "k".repeat(32);
        let a = app(TokenCheck::Jwt);
        let mut none = HashMap::new();
        let good = sign_jwt("s1", TokenType::Publish, 100, &key);
        assert_eq!(
            check(
                &a,
                TokenCheck::Jwt,
                Some(&good),
                publish("s1"),
                &mut none,
                50
            ),
            Ok(None)
        );
        assert!(
            check(
                &a,
                TokenCheck::Jwt,
                Some(&good),
                publish("s1"),
                &mut none,
                100
            )
            .is_err()
        );
        assert!(
            check(
                &a,
                TokenCheck::Jwt,
                Some(&good),
                publish("s2"),
                &mut none,
                50
            )
            .is_err()
        );
        let play = sign_jwt("s1", TokenType::Play, 100, &key);
        assert!(
            check(
                &a,
                TokenCheck::Jwt,
                Some(&play),
                publish("s1"),
                &mut none,
                50
            )
            .is_err()
        );
        let forged = sign_jwt("s1", TokenType::Publish, 100, &"x".repeat(32));
        assert!(
            check(
                &a,
                TokenCheck::Jwt,
                Some(&forged),
                publish("s1"),
                &mut none,
                50
            )
            .is_err()
        );

        let hash = hash_token("s1", TokenType::Publish, "hs");
        assert_eq!(hash.len(), 64);
        assert_eq!(
            check(
                &a,
                TokenCheck::Hash,
                Some(&hash),
                publish("s1"),
                &mut none,
                50
            ),
            Ok(None)
        );
        assert!(
            check(
                &a,
                TokenCheck::Hash,
                Some(&hash),
                publish("s2"),
                &mut none,
                50
            )
            .is_err()
        );
    }

    #[test]
    fn settings_problems() {
        let mut a = app(TokenCheck::Jwt);
        a.jwt_secret = Some("short".into());
        a.play = TokenCheck::Hash;
        a.hash_secret = None;
        a.name = "bad name".into();
        let keys: Vec<_> = a.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["name", "jwt_secret", "hash_secret"]);
    }
}
