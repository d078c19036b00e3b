//! `[peerjs]`: what the PeerJS endpoint (`/peerjs`) asks of its clients.

use serde::Deserialize;

/// Settings of the PeerJS dialect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerjsConfig {
    /// The API key clients must send (`key` of their URL; `/{key}/id` hands out ids). The
    /// `peerjs` client's default is `"peerjs"`, as is the `peer` server's.
    #[serde(default = "default_key")]
    pub key: String,
}

fn default_key() -> String {
    switchboard_protocol::dialects::peerjs::DEFAULT_KEY.to_owned()
}

impl Default for PeerjsConfig {
    fn default() -> Self {
        Self { key: default_key() }
    }
}

impl PeerjsConfig {
    /// Whether `key` is usable in a URL path segment (`/{key}/id`): the client puts it there
    /// unescaped.
    pub fn key_problem(&self) -> Option<String> {
        let ok = !self.key.is_empty()
            && self.key.len() <= 64
            && self
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        (!ok).then(|| {
            format!(
                "must be 1 to 64 characters of [A-Za-z0-9._-], got {:?}",
                self.key
            )
        })
    }
}
