//! TURN REST credentials (the scheme of coturn's `use-auth-secret` and the IETF draft "A REST
//! API for access to TURN services"): the username is `<expiry unix time>:<session id>` and the
//! credential is `base64(HMAC-SHA1(secret, username))`. The TURN server, given the same secret,
//! checks the signature and the expiry; nothing is stored.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use switchboard_plugin_api::SessionId;
use switchboard_protocol::{Event, IceServers};

use crate::config::GatewayConfig;

/// Time-limited TURN credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `<expiry unix seconds>:<session id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

/// Mints credentials for `session`, valid for `ttl_secs` from `now`.
pub fn mint(secret: &str, ttl_secs: u64, session: SessionId, now: SystemTime) -> TurnCredentials {
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let username = format!("{}:{}", now.saturating_add(ttl_secs), session.0);
    TurnCredentials {
        credential: sign(secret, &username),
        username,
    }
}

fn sign(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The ICE servers event for `session`: with `[turn] secret`, freshly minted credentials for
/// the `[turn] uris`; otherwise `[ice]` as configured.
pub fn ice_servers(config: &GatewayConfig, session: SessionId, now: SystemTime) -> Event {
    let turn = &config.turn;
    let Some(secret) = &turn.secret else {
        let ice = &config.ice;
        return Event::IceServers(IceServers {
            uri: ice.uri.clone(),
            username: ice.username.clone(),
            credential: ice.credential.clone(),
            ..IceServers::default()
        });
    };
    let creds = mint(secret, turn.ttl_secs, session, now);
    // Ant Media peers take one URI: the first TURN one. Raw and socket.io peers get them all.
    let first = turn
        .uris
        .iter()
        .position(|u| u.starts_with("turn"))
        .unwrap_or(0);
    let mut uris = turn.uris.clone();
    let uri = uris.remove(first);
    Event::IceServers(IceServers {
        uri,
        username: creds.username,
        credential: creds.credential,
        more_uris: uris,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = mint("north", 3600, SessionId(42), now);
        assert_eq!(c.username, "1700003600:42");
        // openssl: printf '1700003600:42' | openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(c.credential, "WO3ZFttCQxBYtA2Ohz7jjGcQStA=");
    }

    #[test]
    fn ice_servers_prefer_minted_turn_credentials() {
        let mut config = GatewayConfig::embedded_default();
        config.ice.uri = "stun:stun.example.org".into();
        let Event::IceServers(ice) = ice_servers(&config, SessionId(1), SystemTime::now()) else {
            panic!("not ice servers");
        };
        assert_eq!(ice.uri, "stun:stun.example.org");
        config.turn.secret = Some("s".into());
        config.turn.uris = vec!["stun:a.example".into(), "turn:a.example:3478".into()];
        let Event::IceServers(ice) = ice_servers(&config, SessionId(7), SystemTime::now()) else {
            panic!("not ice servers");
        };
        assert_eq!(ice.uri, "turn:a.example:3478");
        assert!(ice.username.ends_with(":7"), "{}", ice.username);
        assert_eq!(ice.credential, sign("s", &ice.username));
        assert_eq!(ice.more_uris, vec!["stun:a.example".to_owned()]);
    }
}
