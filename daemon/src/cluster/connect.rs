//! How a node reaches Redis: one server by URL (`redis://`, or `rediss://` for TLS with the
//! system's roots or `redis_ca_file`), or the primary Redis Sentinel names; as an ACL user
//! with a password when configured. The link asks [`Target::client`] on every (re)connect, so
//! after a failover the node follows the sentinels to the new primary.

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisError, TlsCertificates, TlsMode};
use tokio::sync::Mutex;

use super::config::{ClusterConfig, SentinelConfig, parse_host_port};

/// Why the Redis client could not be set up from the config.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `redis_ca_file` could not be read.
    #[error("cannot read [cluster] redis_ca_file {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The URL, CA or sentinel list was refused by the Redis client.
    #[error("cannot set up the Redis client: {0}")]
    Client(#[from] RedisError),
}

/// Where the node's connections go.
pub enum Target {
    /// One server.
    Direct(Client),
    /// The primary the sentinels name now (asked again on every connect).
    Sentinel(Mutex<SentinelClient>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither client prints its password; the variant is all a log needs.
        match self {
            Target::Direct(_) => f.write_str("Target::Direct"),
            Target::Sentinel(_) => f.write_str("Target::Sentinel"),
        }
    }
}

impl Target {
    /// The target `config` (validated) names.
    pub fn new(config: &ClusterConfig) -> Result<Self, TargetError> {
        if let Some(sentinel) = &config.sentinel {
            return sentinel_client(config, sentinel).map(|c| Target::Sentinel(Mutex::new(c)));
        }
        let certificates = certificates(config)?;
        let url = config.redis_url.as_deref().unwrap_or_default();
        let mut info = url.into_connection_info()?;
        let mut redis = info.redis_settings().clone();
        if let Some(user) = &config.redis_username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &config.redis_password {
            redis = redis.set_password(password);
        }
        info = info.set_redis_settings(redis);
        Ok(Target::Direct(match certificates {
            Some(certs) => Client::build_with_tls(info, certs)?,
            None => Client::open(info)?,
        }))
    }

    /// A client for the server to use now: the configured one, or the current primary.
    pub async fn client(&self) -> redis::RedisResult<Client> {
        match self {
            Target::Direct(client) => Ok(client.clone()),
            Target::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }
}

/// The CA of `redis_ca_file`, if set.
fn certificates(config: &ClusterConfig) -> Result<Option<TlsCertificates>, TargetError> {
    let Some(path) = &config.redis_ca_file else {
        return Ok(None);
    };
    let root_cert = std::fs::read(path).map_err(|source| TargetError::CaFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    }))
}

/// A Sentinel client for `sentinel`, with the credentials and CA of `config`.
fn sentinel_client(
    config: &ClusterConfig,
    sentinel: &SentinelConfig,
) -> Result<SentinelClient, TargetError> {
    let certificates = certificates(config)?;
    let nodes = sentinel.nodes.iter().filter_map(|node| {
        // Validated with the config; an unparsable entry cannot get here.
        let (host, port) = parse_host_port(node).ok()?;
        Some(if sentinel.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        })
    });
    let mut builder =
        SentinelClientBuilder::new(nodes, &sentinel.master, SentinelServerType::Master)?;
    if sentinel.tls {
        builder = builder
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certs) = certificates {
            builder = builder
                .set_client_to_sentinel_certificates(certs.clone())
                .set_client_to_redis_certificates(certs);
        }
    }
    if let Some(user) = &config.redis_username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = &config.redis_password {
        builder = builder.set_client_to_redis_password(password);
    }
    Ok(builder.build()?)
}

/// Whether `e` says the node's credentials or the server's certificate are wrong: retrying
/// cannot help, so at start-up the gateway stops with this error instead of waiting.
pub fn is_refusal(e: &RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
    {
        return true;
    }
    // A TLS handshake that failed on the certificate (unknown CA, wrong name, expired). The
    // rustls error sits in an io::Error behind the client's `Arc`, and neither's `source()`
    // yields it: unwrap both by hand.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let unshared = err
            .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
            .map(|inner| &**inner as &(dyn std::error::Error + 'static))
            .unwrap_or(err);
        let inner = unshared
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static))
            .unwrap_or(unshared);
        if let Some(tls) = inner.downcast_ref::<tokio_rustls::rustls::Error>() {
            return matches!(
                tls,
                tokio_rustls::rustls::Error::InvalidCertificate(_)
                    | tokio_rustls::rustls::Error::NoCertificatesPresented
            );
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_a_refusal_and_a_refused_connection_is_not() {
        let tls = std::io::Error::other(tokio_rustls::rustls::Error::InvalidCertificate(
            tokio_rustls::rustls::CertificateError::UnknownIssuer,
        ));
        assert!(is_refusal(&RedisError::from(tls)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_refusal(&RedisError::from(refused)));
        let auth = RedisError::from((redis::ErrorKind::AuthenticationFailed, "auth failed"));
        assert!(is_refusal(&auth));
    }
}
