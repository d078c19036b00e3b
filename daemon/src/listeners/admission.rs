//! Admission before a session exists: the allowed-origins check on WebSocket upgrades and
//! socket.io requests (a middleware on the whole listener), and the lifecycle phase and
//! connection caps on each upgrade. Refusals are plain HTTP statuses with a one-line reason, so
//! they happen before any dialect is spoken (socket.io caps are checked in its connect
//! middleware instead, and refused with `connect_error`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::DialectKind;

use super::ListenerContext;
use crate::lifecycle::Phase;
use crate::limits::{ConnectRefusal, Permit, origin_allowed};
use crate::telemetry;

/// The HTTP answer to a refused connection.
pub fn refusal_response(refusal: ConnectRefusal) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (
        status,
        format!("{}: {}\n", refusal.as_str(), refusal.message()),
    )
        .into_response();
    if matches!(
        refusal,
        ConnectRefusal::ServerFull | ConnectRefusal::TooManyFromIp
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    response
}

/// Admits one new session of `dialect` from `addr`: not draining, under the global and per-IP
/// caps. The permit must live as long as the session.
pub fn admit(
    cx: &ListenerContext,
    dialect: DialectKind,
    addr: SocketAddr,
) -> Result<Permit, ConnectRefusal> {
    let refused = |refusal| {
        telemetry::connection_refused(dialect, Some(addr), refusal);
        refusal
    };
    if cx.gateway.phase() >= Phase::Draining {
        return Err(refused(ConnectRefusal::Draining));
    }
    let config = cx.gateway.config();
    cx.gateway
        .connections()
        .try_acquire(addr.ip(), &config.limits)
        .map_err(refused)
}

/// Refuses WebSocket upgrades and socket.io requests whose `Origin` is not allowed. Requests
/// without `Origin` (not from a browser page) and plain page loads pass.
pub async fn check_origin(
    State(cx): State<ListenerContext>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let path = request.uri().path();
    let socketio = path.starts_with("/socket.io/") && path != "/socket.io/socket.io.js";
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if let (true, Some(origin)) = (socketio || upgrade, headers.get(header::ORIGIN)) {
        let config = cx.gateway.config();
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(&config.limits.allowed_origins, o));
        if !allowed {
            let dialect = if socketio {
                DialectKind::Socketio
            } else if path.starts_with("/ws/") {
                DialectKind::Raw
            } else {
                DialectKind::Antmedia
            };
            let addr = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            let refusal = ConnectRefusal::OriginNotAllowed;
            telemetry::connection_refused(dialect, addr, refusal);
            return refusal_response(refusal);
        }
    }
    next.run(request).await
}
