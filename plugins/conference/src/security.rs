//! Stream security per Ant Media application (antmedia.md §7): one-time tokens, JWTs and hash
//! tokens, checked on `publish`, `play` and (when configured) `joinRoom` and joins into a
//! conference room; and which application's settings apply to a request ([`Apps::resolve`]).

use std::collections::HashMap;
use std::path::PathBuf;

use std::sync::Arc;

use switchboard_room_policy::{ClaimRules, Jwks, JwtVerifier};

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
    /// A JWT with `streamId`, `type` and `exp` claims: HS256/384/512 signed with `jwt_secret`,
    /// or RS256/ES256 verified with `jwt_public_key_file` (Ant `publishJwtControlEnabled` /
    /// `playJwtControlEnabled`).
    Jwt,
    /// `hex(sha256(streamId + type + hash_secret))` (Ant `hashControlPublishEnabled` /
    /// `hashControlPlayEnabled`).
    Hash,
}

/// `[[antmedia_app]]`: the stream security of one Ant Media application (the `{app}` of
/// `/{app}/websocket` and `/{app}/rest/`), or with `name = "*"` of every application not
/// listed. Once any is listed, `/{app}/websocket` of an application neither listed nor covered
/// by `*` is refused. One mechanism per kind of access: Ant checks every enabled mechanism
/// against the same `token`, so two at once could never both pass.
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
    /// A PEM file with the RSA (RS256) or P-256 EC (ES256) public key of JWTs, instead of
    /// `jwt_secret`. A relative path is relative to the gateway's working directory.
    #[serde(default)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Instead of `jwt_secret`/`jwt_public_key_file`: an `http://` or `https://` URL of a JWKS document
    /// (Ant's `jwksURL`) whose RS256/ES256 keys verify JWTs by `kid`; fetched when the
    /// conference plugin starts and every `jwks_refresh_secs`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` `jwks_url`, besides the public
    /// roots (an identity provider behind an internal CA).
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Seconds between two fetches of `jwks_url`. Default 300.
    #[serde(default = "default_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// Seconds of clock skew allowed on a JWT's `exp` and `nbf`. Default 0.
    #[serde(default)]
    pub jwt_leeway_secs: u64,
    /// When set, a JWT's `aud` must contain it.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// When set, a JWT's `iss` must be it.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// This application's settings also apply to requests that name no application: raw
    /// (`/ws/{room}`, `switchboard.publish`/`play`) and socket.io peers, and Ant Media P2P
    /// `join`s into a conference room. At most one application sets it; when only one is
    /// listed it is the default without it.
    #[serde(default)]
    pub default: bool,
}

const fn default_jwks_refresh_secs() -> u64 {
    300
}

impl AppSecurityConfig {
    /// Every problem with these settings, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.name != "*"
            && (self.name.is_empty()
                || !self
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            out.push((
                "name",
                format!(
                    "`{}` is not an application name ([A-Za-z0-9._-]+, or `*`)",
                    self.name
                ),
            ));
        }
        let checks = [self.publish, self.play, self.join_room];
        if let Some(path) = &self.jwt_public_key_file {
            if self.jwt_secret.is_some() {
                out.push((
                    "jwt_public_key_file",
                    "set either `jwt_secret` or `jwt_public_key_file`, not both".to_owned(),
                ));
            } else if let Some(Err(e)) = self.verifier() {
                out.push(("jwt_public_key_file", format!("{}: {e}", path.display())));
            }
        }
        let jwt_keys = [
            self.jwt_secret.is_some(),
            self.jwt_public_key_file.is_some(),
            self.jwks_url.is_some(),
        ];
        if let Some(url) = &self.jwks_url {
            if jwt_keys.iter().filter(|k| **k).count() > 1 {
                out.push((
                    "jwks_url",
                    "set one of `jwt_secret`, `jwt_public_key_file`, `jwks_url`".to_owned(),
                ));
            }
            if self.jwks_refresh_secs == 0 {
                out.push(("jwks_refresh_secs", "must be at least 1".to_owned()));
            }
            let refresh = std::time::Duration::from_secs(1);
            if let Err(e) = Jwks::new(url, refresh, self.jwks_ca_file.as_deref()) {
                out.push((e.key(), e.to_string()));
            }
        }
        if checks.contains(&TokenCheck::Jwt)
            && self.jwt_public_key_file.is_none()
            && self.jwks_url.is_none()
        {
            match &self.jwt_secret {
                None => out.push((
                    "jwt_secret",
                    "required by a `jwt` check (or set `jwt_public_key_file`)".to_owned(),
                )),
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

impl AppSecurityConfig {
    /// The JWT verifier of these settings: `None` without JWT keys, the error of a key that
    /// cannot be read or used.
    pub fn verifier(&self) -> Option<Result<JwtVerifier, String>> {
        let rules = ClaimRules {
            leeway_secs: self.jwt_leeway_secs,
            audience: self.jwt_audience.clone(),
            issuer: self.jwt_issuer.clone(),
        };
        if let Some(url) = &self.jwks_url {
            let refresh = std::time::Duration::from_secs(self.jwks_refresh_secs.max(1));
            let ca_file = self.jwks_ca_file.as_deref();
            return Some(
                Jwks::new(url, refresh, ca_file)
                    .map(|j| JwtVerifier::jwks(Arc::new(j), &rules))
                    .map_err(|e| e.to_string()),
            );
        }
        if let Some(path) = &self.jwt_public_key_file {
            return Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read it: {e}"))
                    .and_then(|pem| JwtVerifier::public_key_pem(&pem, &rules)),
            );
        }
        let secret = self.jwt_secret.as_deref()?;
        Some(JwtVerifier::hmac(secret.as_bytes(), &rules))
    }
}

/// One application's settings and its compiled JWT verifier.
#[derive(Debug)]
pub struct App {
    /// The settings.
    pub config: AppSecurityConfig,
    /// Verifies its JWTs (`None` without JWT keys, or keys that failed to load: logged, and
    /// every `jwt` check then refuses).
    pub jwt: Option<JwtVerifier>,
}

/// Every `[[antmedia_app]]`, and the rules for which one applies to a request.
#[derive(Debug, Default)]
pub struct Apps {
    by_name: HashMap<String, App>,
    /// The name of the application whose settings apply to requests that name none.
    default: Option<String>,
}

/// Which settings apply to a request.
#[derive(Debug)]
pub enum Resolved<'a> {
    /// No `[[antmedia_app]]` at all: nothing is checked (an open gateway).
    Open,
    /// These settings.
    App(&'a App),
    /// Nothing applies, and since security is configured the request is refused.
    Refused(&'static str),
}

impl Apps {
    /// Compiles `configs`; a JWT key that cannot be loaded is logged (config validation
    /// reports it before the gateway starts).
    pub fn new(configs: Vec<AppSecurityConfig>) -> Self {
        let default = match configs.iter().find(|a| a.default) {
            Some(a) => Some(a.name.clone()),
            None if configs.len() == 1 => Some(configs[0].name.clone()),
            None => None,
        };
        let by_name = configs
            .into_iter()
            .map(|config| {
                let jwt = match config.verifier() {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(e)) => {
                        tracing::error!(app = %config.name, error = %e, "Cannot load the application's JWT key; its jwt checks refuse every token.");
                        None
                    }
                };
                (config.name.clone(), App { config, jwt })
            })
            .collect();
        Self { by_name, default }
    }

    /// The JWKS key sets the applications' JWTs are verified with, to fetch and refresh.
    pub fn key_sets(&self) -> Vec<Arc<Jwks>> {
        self.by_name
            .values()
            .filter_map(|a| a.jwt.as_ref()?.key_set().cloned())
            .collect()
    }

    /// The settings listed under exactly `name` (the REST API's application).
    pub fn get(&self, name: &str) -> Option<&App> {
        self.by_name.get(name)
    }

    /// Whether `/{name}/websocket` is served: no application is listed, or `name` is, or a
    /// `*` entry covers it.
    pub fn admits(&self, name: &str) -> bool {
        self.by_name.is_empty() || self.by_name.contains_key(name) || self.by_name.contains_key("*")
    }

    /// The settings that apply to a request made through application `name` (empty: the
    /// request names none; raw and socket.io peers, Ant P2P joins). Streams and rooms are
    /// shared by every application and dialect, so a request that names no application is
    /// held to the default application's settings rather than let through unchecked.
    pub fn resolve(&self, name: &str) -> Resolved<'_> {
        if self.by_name.is_empty() {
            return Resolved::Open;
        }
        let app = if name.is_empty() {
            self.default.as_deref().and_then(|d| self.by_name.get(d))
        } else {
            self.by_name.get(name).or_else(|| self.by_name.get("*"))
        };
        match (app, name.is_empty()) {
            (Some(app), _) => Resolved::App(app),
            (None, true) => Resolved::Refused(
                "stream security is configured, and no application is the default for peers that name none",
            ),
            (None, false) => {
                Resolved::Refused("this application is not configured on this gateway")
            }
        }
    }
}

/// Every problem with a list of `[[antmedia_app]]`s as a whole, as `(index, key, message)`.
pub fn list_problems(apps: &[AppSecurityConfig]) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    let defaults: Vec<usize> = (0..apps.len()).filter(|i| apps[*i].default).collect();
    for i in defaults.iter().skip(1) {
        out.push((
            *i,
            "default",
            "only one application may be the default".to_owned(),
        ));
    }
    out
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
    app: &App,
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
        return Err(format!("a token is required to {}", access.kind.as_str()));
    };
    match check {
        TokenCheck::None => Ok(None),
        TokenCheck::OneTime => one_time(token, &app.config.name, access, tokens, now),
        TokenCheck::Jwt => match &app.jwt {
            Some(verifier) => jwt(token, verifier, access).map(|()| None),
            None => Err("JWT keys are not available".to_owned()),
        },
        TokenCheck::Hash => {
            let secret = app.config.hash_secret.as_deref().unwrap_or_default();
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
/// token is good once, for its own stream. A token minted under one application's entry is good
/// only for that entry's checks (`app`).
fn one_time(
    token: &str,
    app: &str,
    access: Access<'_>,
    tokens: &mut HashMap<String, TokenRecord>,
    now: i64,
) -> Result<Option<String>, String> {
    let record = tokens
        .get(token)
        .ok_or_else(|| "token is not valid (unknown or already used)".to_owned())?;
    if record.app.as_deref().is_some_and(|minted| minted != app) {
        return Err("token was minted for another application".to_owned());
    }
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
                Err("token is for another room".to_owned())
            }
        }
        None if record.stream_id == access.stream => {
            tokens.remove(token);
            Ok(Some(token.to_owned()))
        }
        None => Err("token is for another stream".to_owned()),
    }
}

/// A JWT whose `streamId` and `type` claims are the stream and kind asked for.
fn jwt(token: &str, verifier: &JwtVerifier, access: Access<'_>) -> Result<(), String> {
    let claims = verifier.verify(token).map_err(|e| e.to_string())?;
    let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    if claim("streamId") != Some(access.stream) {
        return Err("token is not for this stream".to_owned());
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

/// Test settings: an application named `name` that checks nothing and has no keys, to be
/// completed with struct update syntax.
#[cfg(test)]
impl AppSecurityConfig {
    pub(crate) fn unchecked(name: &str) -> Self {
        Self {
            name: name.into(),
            publish: TokenCheck::None,
            play: TokenCheck::None,
            join_room: TokenCheck::None,
            jwt_secret: None,
            hash_secret: None,
            jwt_public_key_file: None,
            jwks_url: None,
            jwks_ca_file: None,
            jwks_refresh_secs: 300,
            jwt_leeway_secs: 0,
            jwt_audience: None,
            jwt_issuer: None,
            default: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(publish: TokenCheck) -> AppSecurityConfig {
        AppSecurityConfig {
            publish,
            jwt_secret: Some("k".repeat(32)),
            hash_secret: Some("hs".into()),
            ..AppSecurityConfig::unchecked("LiveApp")
        }
    }

    fn app(publish: TokenCheck) -> App {
        let config = settings(publish);
        App {
            jwt: config.verifier().map(|v| v.expect("key")),
            config,
        }
    }

    fn unix_now() -> i64 {
        crate::now()
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
            app: None,
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
    fn one_time_tokens_are_good_only_for_the_entry_they_were_minted_under() {
        let a = app(TokenCheck::OneTime);
        let minted = |id: &str, app: Option<&str>| TokenRecord {
            app: app.map(str::to_owned),
            ..token(id, "s1", TokenType::Publish, None)
        };
        let mut t = tokens(&[
            minted("other", Some("OtherApp")),
            minted("own", Some("LiveApp")),
        ]);
        let c = TokenCheck::OneTime;
        assert_eq!(
            check(&a, c, Some("other"), publish("s1"), &mut t, 50),
            Err("token was minted for another application".to_owned())
        );
        assert!(t.contains_key("other"), "a refused token is not used up");
        assert_eq!(
            check(&a, c, Some("own"), publish("s1"), &mut t, 50),
            Ok(Some("own".into()))
        );
    }

    #[test]
    fn jwt_and_hash_tokens() {
        let key = "k".repeat(32);
        let a = app(TokenCheck::Jwt);
        let mut none = HashMap::new();
        let exp = unix_now() + 100;
        let jwt = |token: &str, access| {
            check(
                &a,
                TokenCheck::Jwt,
                Some(token),
                access,
                &mut HashMap::new(),
                0,
            )
        };
        let good = sign_jwt("s1", TokenType::Publish, exp, &key);
        assert_eq!(jwt(&good, publish("s1")), Ok(None));
        let expired = sign_jwt("s1", TokenType::Publish, unix_now() - 1, &key);
        assert!(jwt(&expired, publish("s1")).is_err(), "expired");
        assert!(jwt(&good, publish("s2")).is_err(), "stream");
        let play = sign_jwt("s1", TokenType::Play, exp, &key);
        assert!(jwt(&play, publish("s1")).is_err(), "type");
        let forged = sign_jwt("s1", TokenType::Publish, exp, &"x".repeat(32));
        assert!(jwt(&forged, publish("s1")).is_err(), "key");
        let padded = format!("{good}=");
        assert!(jwt(&padded, publish("s1")).is_err(), "padding");

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
    fn requests_resolve_to_the_application_that_covers_them() {
        let mut live = settings(TokenCheck::Jwt);
        live.default = true;
        let mut other = settings(TokenCheck::None);
        other.name = "Other".into();
        let apps = Apps::new(vec![live.clone(), other.clone()]);
        assert!(apps.admits("LiveApp") && apps.admits("Other") && !apps.admits("Else"));
        let name = |r: Resolved<'_>| match r {
            Resolved::App(a) => a.config.name.clone(),
            Resolved::Open => "open".into(),
            Resolved::Refused(_) => "refused".into(),
        };
        assert_eq!(name(apps.resolve("Other")), "Other");
        assert_eq!(name(apps.resolve("Else")), "refused");
        assert_eq!(name(apps.resolve("")), "LiveApp", "the default");
        live.default = false;
        let apps = Apps::new(vec![live.clone(), other]);
        assert_eq!(name(apps.resolve("")), "refused", "two and no default");
        let mut star = settings(TokenCheck::Hash);
        star.name = "*".into();
        let apps = Apps::new(vec![live.clone(), star]);
        assert!(apps.admits("Else"));
        assert_eq!(name(apps.resolve("Else")), "*");
        assert_eq!(
            name(Apps::new(vec![live]).resolve("")),
            "LiveApp",
            "the only one"
        );
        assert_eq!(name(Apps::new(Vec::new()).resolve("Else")), "open");
    }

    #[test]
    fn settings_problems() {
        let mut a = settings(TokenCheck::Jwt);
        a.jwt_secret = Some("short".into());
        a.play = TokenCheck::Hash;
        a.hash_secret = None;
        a.name = "bad name".into();
        let keys: Vec<_> = a.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["name", "jwt_secret", "hash_secret"]);
    }
}
