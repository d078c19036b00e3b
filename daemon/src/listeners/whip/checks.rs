//! The checks a WHIP/WHEP request meets before anything is spent on it, and the refusal
//! each failure becomes: the path's application, the origin, the content type, the declared
//! and the read length, the session caps.

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchboard_protocol::DialectKind;

use super::{Endpoint, SDP, SDPFRAG};
use crate::lifecycle::Phase;
use crate::limits::{ConnectRefusal, Permit};
use crate::listeners::ListenerContext;
use crate::telemetry;

/// A refusal: the status, the counted reason and the sentence the client reads.
#[derive(Debug)]
pub struct Refusal {
    pub(super) status: StatusCode,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }

    /// Counts it once for `endpoint` and renders it as plain text.
    pub fn respond(self, endpoint: Endpoint, origin: Option<&HeaderValue>) -> Response {
        telemetry::http_media_refused(endpoint.as_str(), self.reason, self.status.as_u16());
        let mut response =
            (self.status, format!("{}: {}\n", self.reason, self.message)).into_response();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            let accept = if self.reason == "wrong_content_type_patch" {
                "accept-patch"
            } else {
                "accept-post"
            };
            let value = if accept == "accept-patch" {
                SDPFRAG
            } else {
                SDP
            };
            response
                .headers_mut()
                .insert(accept, HeaderValue::from_static(value));
        }
        cors(&mut response, origin);
        response
    }
}

/// Lets a page from another origin read the answer and its headers (RFC 9725 §4.2 asks
/// servers to support CORS); the origin itself was checked against `allowed_origins`.
pub fn cors(response: &mut Response, origin: Option<&HeaderValue>) {
    let headers = response.headers_mut();
    let allow = origin
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("location, etag, link, accept-patch, accept-post"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
}

/// The request's `Origin`, if it passes `[limits] allowed_origins` (absent: not a browser).
pub fn checked_origin(
    cx: &ListenerContext,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, Refusal> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let config = cx.gateway.config();
    let allowed = origin
        .to_str()
        .is_ok_and(|o| crate::limits::origin_allowed(&config.limits.allowed_origins, o));
    if !allowed {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin is not in the gateway's allowed_origins",
        ));
    }
    Ok(Some(origin.clone()))
}

/// Under `/{app}/`: refuses an application the gateway does not serve (`[[antmedia_app]]`),
/// before anything else, as `/{app}/websocket` is refused.
pub fn check_app(cx: &ListenerContext, app: Option<&str>) -> Result<(), Refusal> {
    match app {
        Some(app) if !cx.gateway.config().admits_app(app) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "unknown_app",
            "unknown application: it is not configured on this gateway ([[antmedia_app]])",
        )),
        _ => Ok(()),
    }
}

/// A place under the session caps (`max_sessions`, `max_connections_per_ip`), as every
/// session takes one; refused while draining. Counted by the caller, as WHIP's or WHEP's
/// (`admission::admit` would count it as a raw connection's as well).
pub fn admit(cx: &ListenerContext, addr: SocketAddr) -> Result<Permit, Refusal> {
    let refusal = if cx.gateway.phase() >= Phase::Draining {
        ConnectRefusal::Draining
    } else {
        let config = cx.gateway.config();
        match cx
            .gateway
            .connections()
            .try_acquire(addr.ip(), &config.limits)
        {
            Ok(permit) => return Ok(permit),
            Err(refusal) => refusal,
        }
    };
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    Err(Refusal::new(status, refusal.as_str(), refusal.message()))
}

/// Whether the body's declared type is `expected` (parameters such as `charset` ignored).
pub fn has_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The largest body either endpoint reads: a raw signaling frame's limit
/// (`[limits] max_frame_bytes`), which an SDP offer also fits.
pub fn body_limit(cx: &ListenerContext) -> usize {
    cx.gateway.config().max_frame_bytes(DialectKind::Raw)
}

/// Refuses a body whose declared length is above `limit` before any of it is read.
pub fn check_declared_length(headers: &HeaderMap, limit: usize) -> Result<(), Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: usize) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

/// Reads at most `limit` bytes of UTF-8 (a chunked body that grows past it is cut off).
pub async fn read_text(body: Body, limit: usize) -> Result<String, Refusal> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "the body is not UTF-8 text",
        )
    })
}
