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

/// The `sid` a refused engine.io 4 handshake is given: it names the refusal, so its follow-up
/// requests are answered without any state kept.
pub(super) const REFUSED_SID_PREFIX: &str = "sbrefused-";

/// Answers a refused engine.io 4 long-polling handshake with a session that exists only in its
/// `sid`: the client's namespace connect is acknowledged and its poll gets the socket.io
/// `CONNECT_ERROR` with the reason, exactly what a refusal at the namespace sends.
pub(super) fn refused_handshake(refusal: ConnectRefusal) -> Response {
    let open = serde_json::json!({
        "sid": format!("{REFUSED_SID_PREFIX}{}", refusal.as_str()),
        "upgrades": [],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 1_000_000,
    });
    polling_text(format!("0{open}"))
}

/// The stateless rest of a [`refused_handshake`] session: `ok` to what the client posts, the
/// `CONNECT_ERROR` to its poll.
pub(super) fn refused_session_reply(request: &Request, sid: &str) -> Response {
    if request.method() != axum::http::Method::GET {
        return polling_text("ok".to_owned());
    }
    let reason = &sid[REFUSED_SID_PREFIX.len()..];
    let refusal = [
        ConnectRefusal::TooManyFromIp,
        ConnectRefusal::ServerFull,
        ConnectRefusal::Draining,
    ]
    .into_iter()
    .find(|r| r.as_str() == reason)
    .unwrap_or(ConnectRefusal::ServerFull);
    let error = serde_json::json!({
        "message": format!("{}: {}", refusal.as_str(), refusal.message()),
    });
    polling_text(format!("44{error}"))
}

fn polling_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], body).into_response()
}

/// engine.io's own error shape (`{"code":..,"message":..}`), with the cap's status.
pub(super) fn engineio_refusal(refusal: ConnectRefusal) -> Response {
    let mut response = refusal_response(refusal);
    let body = serde_json::json!({
        "code": 4,
        "message": format!("{}: {}", refusal.as_str(), refusal.message()),
    });
    *response.body_mut() = axum::body::Body::from(body.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
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
            } else if path == "/peerjs" || path == "/peerjs/peerjs" {
                DialectKind::Peerjs
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await;
        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
    }

    #[tokio::test]
    async fn a_refused_session_tells_its_poll_the_reason() {
        let open = body(refused_handshake(ConnectRefusal::TooManyFromIp)).await;
        assert!(
            open.starts_with("0{") && open.contains(r#""sid":"sbrefused-too_many_connections""#),
            "{open}"
        );
        let poll = Request::builder()
            .uri("/socket.io/?EIO=4&transport=polling&sid=sbrefused-too_many_connections")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let reply = body(refused_session_reply(
            &poll,
            "sbrefused-too_many_connections",
        ))
        .await;
        assert_eq!(
            reply,
            r#"44{"message":"too_many_connections: too many connections from your address"}"#
        );
        let post = Request::builder()
            .method("POST")
            .uri("/socket.io/?EIO=4&transport=polling&sid=sbrefused-server_full")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        assert_eq!(
            body(refused_session_reply(&post, "sbrefused-server_full")).await,
            "ok"
        );
    }
}
