//! Keys from a JWKS document (Ant Media's `jwksURL`): fetched over HTTP when the plugin starts,
//! cached, and refreshed in the background; a token picks its key by `kid`. Only RS256 and
//! ES256 (P-256) keys are used; others in the document are skipped.
//!
//! The URL must be `http://` (a JWKS served on loopback or an internal network, or by a local
//! caching proxy in front of an `https://` one): this crate carries no TLS roots.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::TokenError;

/// Largest JWKS document read, in bytes (a key set is a few KiB).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How long one fetch (connect, request, body) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How soon a failed fetch is tried again (the refresh interval, if shorter).
const RETRY_AFTER: Duration = Duration::from_secs(5);

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
    /// A key set to be fetched from `url` (an `http://` URL) every `refresh`. Holds no keys
    /// until [`Self::load`] (or the refresh task) fills it.
    pub fn new(url: &str, refresh: Duration) -> Result<Self, String> {
        let url: hyper::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err("must be an http:// URL with a host".to_owned());
        }
        Ok(Self {
            url,
            refresh,
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
        let body = tokio::time::timeout(FETCH_TIMEOUT, fetch(&self.url))
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

/// `GET url` over HTTP/1.1; the body when the status is 2xx, at most [`MAX_DOCUMENT_BYTES`].
async fn fetch(url: &hyper::Uri) -> Result<Bytes, String> {
    let host = url.host().unwrap_or_default();
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let authority = url.authority().map_or(host, |a| a.as_str());
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
