//! Keys from a JWKS document (Ant Media's `jwksURL`): fetched over HTTP or HTTPS when the plugin
//! starts, cached, and refreshed in the background; a token picks its key by `kid`. Only RS256
//! and ES256 (P-256) keys are used; others in the document are skipped.
//!
//! An `https://` URL is checked against the public roots and an optional extra CA file (see
//! [`crate::jwks_tls`]); a certificate that does not verify fails the fetch, never falls back.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::TokenError;

/// Largest JWKS document read, in bytes (a key set is a few KiB).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How long one fetch (connect, request, body) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How soon a failed fetch is tried again (the refresh interval, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a key set cannot be set up; [`Self::key`] names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum JwksSetupError {
    /// `jwks_url` is not an `http://` or `https://` URL with a host.
    #[error("{0}")]
    Url(String),
    /// `jwks_ca_file` cannot be read or holds no CA certificate, or is set for an `http://` URL.
    #[error("{0}")]
    CaFile(String),
}

impl JwksSetupError {
    /// The setting at fault: `jwks_url` or `jwks_ca_file`.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Url(_) => "jwks_url",
            Self::CaFile(_) => "jwks_ca_file",
        }
    }
}

/// One usable key of the document.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    alg: Algorithm,
}

/// A JWKS URL and the keys last fetched from it.
pub struct Jwks {
    url: hyper::Uri,
    refresh: Duration,
    /// Set for an `https://` URL.
    tls: Option<TlsConnector>,
    keys: RwLock<Vec<Key>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// A key set to be fetched from `url` (an `http://` or `https://` URL) every `refresh`; an
    /// `https://` server's certificate must chain to a public root or to a certificate of
    /// `ca_file` (a PEM file, read now). Holds no keys until [`Self::load`] (or the refresh
    /// task) fills it.
    pub fn new(
        url: &str,
        refresh: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, JwksSetupError> {
        let not_a_url =
            || JwksSetupError::Url("must be an http:// or https:// URL with a host".to_owned());
        let url: hyper::Uri = url.parse().map_err(|_| not_a_url())?;
        let Some(host) = url.host() else {
            return Err(not_a_url());
        };
        let tls = match url.scheme_str() {
            Some("https") => {
                crate::jwks_tls::server_name(host).map_err(JwksSetupError::Url)?;
                Some(crate::jwks_tls::connector(ca_file).map_err(JwksSetupError::CaFile)?)
            }
            Some("http") if ca_file.is_some() => {
                return Err(JwksSetupError::CaFile(
                    "applies to an https:// `jwks_url` only".to_owned(),
                ));
            }
            Some("http") => None,
            _ => return Err(not_a_url()),
        };
        Ok(Self {
            url,
            refresh,
            tls,
            keys: RwLock::new(Vec::new()),
        })
    }

    /// Replaces the keys with those of `document` (a JWKS JSON text). Returns how many are
    /// usable; a document that does not parse changes nothing.
    pub fn load(&self, document: &[u8]) -> Result<usize, String> {
        let set: JwkSet =
            serde_json::from_slice(document).map_err(|_| "not a JWKS document".to_owned())?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                    (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_))
                    | (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                    (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(p))
                    | (None, AlgorithmParameters::EllipticCurve(p))
                        if p.curve == EllipticCurve::P256 =>
                    {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some(Key {
                    kid: jwk.common.key_id.clone(),
                    key,
                    alg,
                })
            })
            .collect();
        let count = keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// The key for a token with `kid` (without one: the document's only key).
    pub(crate) fn key(&self, kid: Option<&str>) -> Result<(DecodingKey, Algorithm), TokenError> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        if keys.is_empty() {
            return Err(TokenError::KeysUnavailable);
        }
        let found = match kid {
            Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if keys.len() == 1 => keys.first(),
            None => None,
        };
        found
            .map(|k| (k.key.clone(), k.alg))
            .ok_or(TokenError::Signature)
    }

    /// Fetches the document now and loads it.
    pub async fn fetch_once(&self) -> Result<usize, String> {
        let body = tokio::time::timeout(FETCH_TIMEOUT, fetch(&self.url, self.tls.as_ref()))
            .await
            .map_err(|_| "timed out".to_owned())??;
        self.load(&body)
    }

    /// Fetches the document at once and then every `refresh` (every few seconds while fetches
    /// fail), until the task is aborted. Failures are logged; the last good keys stay in use.
    pub async fn refresh_forever(self: Arc<Self>) {
        loop {
            let wait = match self.fetch_once().await {
                Ok(count) => {
                    tracing::info!(url = %self.url, keys = count, "Loaded JWKS keys.");
                    self.refresh
                }
                Err(error) => {
                    tracing::warn!(url = %self.url, %error, "Cannot fetch the JWKS document; keeping the last keys.");
                    self.refresh.min(RETRY_AFTER)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// `GET url` over HTTP/1.1, through TLS when `tls` is set; the body when the status is 2xx, at
/// most [`MAX_DOCUMENT_BYTES`].
async fn fetch(url: &hyper::Uri, tls: Option<&TlsConnector>) -> Result<Bytes, String> {
    let host = url.host().unwrap_or_default();
    let default_port = if tls.is_some() { 443 } else { 80 };
    let port = url.port_u16().unwrap_or(default_port);
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((connect_host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let Some(tls) = tls else {
        return get(stream, url).await;
    };
    let name = crate::jwks_tls::server_name(host)?;
    let stream = tls.connect(name, stream).await.map_err(|e| {
        format!("TLS handshake with {host}: {e} (an internal CA is trusted with `jwks_ca_file`)")
    })?;
    get(stream, url).await
}

/// The request of [`fetch`] on an open connection.
async fn get<S>(io: S, url: &hyper::Uri) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let authority = url
        .authority()
        .map_or_else(|| url.host().unwrap_or_default(), |a| a.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    if !response.status().is_success() {
        driver.abort();
        return Err(format!("HTTP status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|_| format!("body unreadable or over {MAX_DOCUMENT_BYTES} bytes"))?
        .to_bytes();
    driver.abort();
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH: Duration = Duration::from_secs(60);

    #[test]
    fn https_urls_are_accepted_and_other_schemes_refused() {
        assert!(Jwks::new("https://id.example.com/jwks.json", REFRESH, None).is_ok());
        assert!(Jwks::new("http://127.0.0.1:8080/jwks.json", REFRESH, None).is_ok());
        let ftp = Jwks::new("ftp://id.example.com/jwks.json", REFRESH, None).unwrap_err();
        assert_eq!(ftp.key(), "jwks_url");
        assert!(ftp.to_string().contains("http:// or https://"), "{ftp}");
    }

    /// Each problem of the CA file is reported against `jwks_ca_file`, when the settings are
    /// built (so `check-config` shows it).
    #[test]
    fn a_ca_file_is_checked_when_the_settings_are_built() {
        let https = "https://id.example.com/jwks.json";
        let missing = Path::new("/nonexistent/switchboard-ca.pem");
        let e = Jwks::new(https, REFRESH, Some(missing)).unwrap_err();
        assert_eq!(e.key(), "jwks_ca_file");
        let text = e.to_string();
        assert!(
            text.contains("cannot read /nonexistent/switchboard-ca.pem"),
            "{text}"
        );
        let e = Jwks::new("http://127.0.0.1/jwks.json", REFRESH, Some(missing)).unwrap_err();
        assert_eq!(e.key(), "jwks_ca_file");
        assert!(e.to_string().contains("https:// `jwks_url` only"), "{e}");
        let empty = std::env::temp_dir().join(format!("sb-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap_or_default();
        let e = Jwks::new(https, REFRESH, Some(&empty)).unwrap_err();
        let _ = std::fs::remove_file(&empty);
        assert_eq!(e.key(), "jwks_ca_file");
        assert!(e.to_string().contains("no usable CA certificate"), "{e}");
    }
}
