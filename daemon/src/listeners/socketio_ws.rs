//! socket.io clients that open a WebSocket at once (`GET /socket.io/?EIO=4&transport=websocket`
//! without a `sid`: Switchboard's own client, and socket.io clients 2 to 4 with
//! `transports: ["websocket"]`, `EIO=3` or `4`). They are served by the session loop the other
//! WebSocket dialects use, reading engine.io frames ([`SocketIoWs`]) with no socket.io server in
//! between: under relay load socketioxide's own parse, re-serialization and per-socket writer
//! task cost more than the rest of the gateway. Every other engine.io request (long-polling and
//! the upgrade from it) goes to [`super::engineio`], the same session loop over a polling
//! transport. Peers of all of them are `socketio` peers on the bus and relay to each other
//! verbatim.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State, WebSocketUpgrade};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use switchboard_protocol::DialectKind;
use switchboard_protocol::dialects::TextFrames;
use switchboard_protocol::dialects::engineio::polling::RequestError;
use switchboard_protocol::dialects::engineio::{
    EngineState, EngineVersion, SocketIoWs, connect_error_for,
};
use tracing::Instrument;

use super::{ListenerContext, admission};
use crate::limits::Permit;
use crate::{rooms, session};

/// Serves engine.io 3 and 4 requests itself (a direct WebSocket here; long-polling and its upgrade in
/// [`super::engineio`]); passes any other request on.
pub async fn intercept(
    State(cx): State<ListenerContext>,
    request: Request,
    next: Next,
) -> Response {
    let (version, mut query) = match engineio_query(&request) {
        Engine::Request(version, query) => (version, query),
        Engine::Refused(sid) => return admission::refused_session_reply(&request, &sid),
        Engine::Unsupported => {
            return super::engineio::refuse(RequestError::UnsupportedProtocolVersion);
        }
        Engine::Other => return next.run(request).await,
    };
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let direct =
        query.get("transport").is_some_and(|v| v == "websocket") && !query.contains_key("sid");
    if !direct {
        return super::engineio::serve(cx, request, addr, version, query).await;
    }
    query.remove("transport");
    let (mut parts, _) = request.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade(cx, ws, addr, version, query)
}

/// What a request under `/socket.io/` is.
enum Engine {
    /// An engine.io 3 or 4 request (socket.io clients 2 to 4), with its query.
    Request(EngineVersion, HashMap<String, String>),
    /// A follow-up of a handshake refused under the caps (its `sid`), which `admission`
    /// answers without any state kept.
    Refused(String),
    /// An engine.io request of another version (or none): engine.io's error.
    Unsupported,
    /// Not an engine.io request (the client script, other paths).
    Other,
}

fn engineio_query(request: &Request) -> Engine {
    let path = request.uri().path();
    if path != "/socket.io/" && path != "/socket.io" {
        return Engine::Other;
    }
    let Ok(Query(query)) = Query::<HashMap<String, String>>::try_from_uri(request.uri()) else {
        return Engine::Unsupported;
    };
    if let Some(sid) = query
        .get("sid")
        .filter(|sid| sid.starts_with(admission::REFUSED_SID_PREFIX))
    {
        return Engine::Refused(sid.clone());
    }
    match query.get("EIO").map(String::as_str) {
        Some("3") => Engine::Request(EngineVersion::V3, query),
        Some("4") => Engine::Request(EngineVersion::V4, query),
        _ => Engine::Unsupported,
    }
}

fn upgrade(
    cx: ListenerContext,
    ws: WebSocketUpgrade,
    addr: SocketAddr,
    version: EngineVersion,
    query: HashMap<String, String>,
) -> Response {
    let Some(state) = super::engineio::new_state(&cx, query, version, false) else {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let limit = state.max_payload;
    let admitted = admit(&cx, &state.room, addr);
    let ws = super::small_buffers(ws)
        .max_message_size(limit)
        .max_frame_size(limit);
    // One boxed capture: measured, the session's RSS was lower with the callback's captures in
    // one box than inline in axum's upgrade task (BENCHMARKS.md, "Lean idle sessions", sixth
    // step), although that task now ends at the upgrade.
    let captured = Box::new((cx, state, admitted, addr));
    ws.on_upgrade(move |socket| {
        let (cx, state, admitted, addr) = *captured;
        let tracker = cx.tracker.clone();
        super::spawn_session(&tracker, serve(cx, socket, addr, state, admitted))
    })
}

/// The session of an admitted client, or the refusal of a refused one. Not an `async fn`: one
/// would keep its own copy of the socket and the state beside the session's for the session's
/// whole life (BENCHMARKS.md, "Profiling figures (moved from code comments)"). The refusal is
/// boxed: its future (the socket, the state and a timeout) is larger than the session's, and
/// inline it set the size of every session's task (BENCHMARKS.md, "Lean idle sessions",
/// seventh step).
fn serve(
    cx: ListenerContext,
    socket: WebSocket,
    addr: SocketAddr,
    state: EngineState,
    admitted: Result<Permit, String>,
) -> impl Future<Output = ()> + Send {
    let permit = match admitted {
        Ok(permit) => permit,
        Err(message) => return Either::Right(Box::pin(refuse(socket, state, message))),
    };
    let (ws_session, span) = super::engineio::start_session(&cx, addr, state, permit, "websocket");
    let session = session::run_websocket::<SocketIoWs>(socket, ws_session);
    Either::Left(session.instrument(span))
}

/// The room name check and the connection caps, as socketioxide's connect middleware does them:
/// a refusal is told as a connect error, in the client's own terms.
fn admit(cx: &ListenerContext, room: &str, addr: SocketAddr) -> Result<Permit, String> {
    rooms::check_room_name(room).map_err(|e| {
        crate::telemetry::room_name_refused(DialectKind::Socketio);
        format!("invalid_room: {e}")
    })?;
    admission::admit(cx, DialectKind::Socketio, addr)
        .map_err(|r| format!("{}: {}", r.as_str(), r.message()))
}

/// Opens the engine.io session and refuses the connect at once: the client's `connect_error`
/// handler gets `message`, and the socket is closed.
async fn refuse(mut socket: WebSocket, state: EngineState, message: String) {
    let frames = SocketIoWs::greeting(&state)
        .into_iter()
        .chain([connect_error_for(state.version, &message)]);
    let say = async {
        for frame in frames {
            socket.send(Message::Text(frame.into())).await?;
        }
        socket.send(Message::Close(None)).await
    };
    // Bounded like every session write: a client that does not read cannot hold the task.
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, say).await;
}

/// How long a refused client gets to take its connect error.
const REFUSAL_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: &str, uri: &str) -> &'static str {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        match engineio_query(&request) {
            Engine::Request(EngineVersion::V3, _) => "eio3",
            Engine::Request(EngineVersion::V4, _) => "eio4",
            Engine::Refused(_) => "refused",
            Engine::Unsupported => "unsupported",
            Engine::Other => "other",
        }
    }

    #[test]
    fn engine_io_requests_are_told_apart_by_version() {
        let cases = [
            ("GET", "/socket.io/?EIO=4&transport=polling", "eio4"),
            ("GET", "/socket.io/?transport=polling&EIO=3&t=x", "eio3"),
            ("GET", "/socket.io/?EIO=3&transport=websocket", "eio3"),
            (
                "POST",
                "/socket.io/?EIO=4&transport=polling&sid=abc",
                "eio4",
            ),
            ("GET", "/socket.io?EIO=3&transport=polling", "eio3"),
            ("GET", "/socket.io/?EIO=2&transport=polling", "unsupported"),
            ("GET", "/socket.io/?transport=polling", "unsupported"),
            ("GET", "/socket.io/socket.io.js", "other"),
            ("GET", "/healthz?EIO=4", "other"),
            (
                "GET",
                "/socket.io/?EIO=4&sid=sbrefused-server_full",
                "refused",
            ),
            (
                "POST",
                "/socket.io/?EIO=4&sid=sbrefused-too_many_connections",
                "refused",
            ),
        ];
        for (method, uri, want) in cases {
            assert_eq!(kind(method, uri), want, "{method} {uri}");
        }
    }
}
