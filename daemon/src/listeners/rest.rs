//! Ant Media's REST API, the conference-room and token calls, under `/{app}/rest/v2/` on
//! listeners that serve the `antmedia` dialect (`docs/protocol/antmedia.md`, REST):
//!
//! | call | path |
//! |---|---|
//! | create a room | `POST .../broadcasts/conference-rooms` `{roomId, startDate?, endDate?, mode?}` |
//! | get a room | `GET .../broadcasts/conference-rooms/{id}` (404 when unknown) |
//! | list rooms | `GET .../broadcasts/conference-rooms/list/{offset}/{size}` |
//! | delete a room | `DELETE .../broadcasts/conference-rooms/{id}` |
//! | add a stream | `PUT .../broadcasts/conference-rooms/{id}/add?streamId=` |
//! | one-time token | `GET .../broadcasts/{id}/token?expireDate=&type=publish\|play[&roomId=]` |
//! | JWT | `GET .../broadcasts/{id}/jwt-token?expireDate=&type=publish\|play` |
//!
//! As Ant does, failures are HTTP 200 with `{"success":false,"message":...}`, except an unknown
//! room on `GET` (404), a client outside `[rest] allowed_cidrs` (403) and an `{app}` that
//! `/{app}/websocket` would refuse (404: not listed in `[[antmedia_app]]` nor covered by `*`).
//! Tokens are minted under the security of the entry that covers `{app}` and are good only for
//! its checks; a room created here belongs to that entry, and other entries' paths do not see it. Writes wait until the store has committed them, on a blocking thread, never
//! under the room lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use switchboard_conference::{Hub, NewRoom, RestError, TokenType};

use super::ListenerContext;
use crate::telemetry;

/// The REST routes of one listener.
pub fn routes(cx: ListenerContext) -> Router {
    const ROOMS: &str = "/{app}/rest/v2/broadcasts/conference-rooms";
    Router::new()
        .route(ROOMS, post(create_room))
        .route(
            &format!("{ROOMS}/list/{{offset}}/{{size}}"),
            get(list_rooms),
        )
        .route(
            &format!("{ROOMS}/{{room_id}}"),
            get(get_room).delete(delete_room),
        )
        .route(&format!("{ROOMS}/{{room_id}}/add"), put(add_stream))
        .route("/{app}/rest/v2/broadcasts/{id}/token", get(token))
        .route("/{app}/rest/v2/broadcasts/{id}/jwt-token", get(jwt_token))
        .with_state(cx)
}

/// Ant's `Result`.
#[derive(Serialize)]
struct AntResult<'a> {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn success() -> Response {
    json(
        StatusCode::OK,
        &AntResult {
            success: true,
            message: None,
        },
    )
}

fn failure(status: StatusCode, message: &str) -> Response {
    json(
        status,
        &AntResult {
            success: false,
            message: Some(message),
        },
    )
}

fn rest_error(e: &RestError) -> Response {
    failure(StatusCode::OK, &e.to_string())
}

/// The 403 for clients outside `[rest] allowed_cidrs`, then the 404 for an application the
/// gateway does not serve (the app gate of `/{app}/websocket`, so that no app name reaches the
/// room catalog or mints tokens around the configured ones); `None` when the call may go on.
fn refused(cx: &ListenerContext, addr: SocketAddr, app: &str) -> Option<Response> {
    let config = cx.gateway.config();
    if !config.rest.cidrs().iter().any(|c| c.contains(addr.ip())) {
        tracing::warn!(peer.addr = %addr, "REST call refused: address not in rest.allowed_cidrs.");
        return Some(failure(
            StatusCode::FORBIDDEN,
            "not allowed: this address is not in the gateway's rest.allowed_cidrs",
        ));
    }
    if !config.admits_app(app) {
        telemetry::app_refused(addr);
        return Some(failure(
            StatusCode::NOT_FOUND,
            "unknown application: it is not configured on this gateway ([[antmedia_app]])",
        ));
    }
    None
}

/// Runs a hub call that may wait for the store (or the cluster's Redis) on a blocking thread
/// and renders its outcome.
async fn blocking<T: Send + 'static>(
    hub: &Arc<Hub>,
    call: impl FnOnce(&Hub) -> Result<T, RestError> + Send + 'static,
    render: impl FnOnce(T) -> Response,
) -> Response {
    let hub = hub.clone();
    match tokio::task::spawn_blocking(move || call(&hub)).await {
        Ok(Ok(value)) => render(value),
        Ok(Err(e)) => rest_error(&e),
        Err(_) => failure(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn create_room(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(app): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&cx, addr, &app) {
        return r;
    }
    let new: NewRoom = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => return failure(StatusCode::OK, &format!("invalid room JSON: {e}")),
    };
    blocking(
        &cx.conference,
        move |hub| hub.create_room(&app, new, now()),
        |room| json(StatusCode::OK, &room),
    )
    .await
}

async fn get_room(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((app, room_id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refused(&cx, addr, &app) {
        return r;
    }
    // Blocking: with [cluster] the room is read from Redis.
    let id = room_id.clone();
    blocking(
        &cx.conference,
        move |hub| Ok(hub.room(&app, &id)),
        move |room| match room {
            Some(room) => json(StatusCode::OK, &room),
            None => failure(
                StatusCode::NOT_FOUND,
                &format!("no conference room `{room_id}`"),
            ),
        },
    )
    .await
}

async fn list_rooms(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((app, offset, size)): Path<(String, usize, usize)>,
) -> Response {
    if let Some(r) = refused(&cx, addr, &app) {
        return r;
    }
    blocking(
        &cx.conference,
        move |hub| Ok(hub.list_rooms(&app, offset, size)),
        |rooms| json(StatusCode::OK, &rooms),
    )
    .await
}

async fn delete_room(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((app, room_id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refused(&cx, addr, &app) {
        return r;
    }
    blocking(
        &cx.conference,
        move |hub| hub.delete_room(&app, &room_id),
        |()| success(),
    )
    .await
}

async fn add_stream(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((app, room_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refused(&cx, addr, &app) {
        return r;
    }
    let Some(stream_id) = query.get("streamId").cloned() else {
        return failure(StatusCode::OK, "streamId is required");
    };
    blocking(
        &cx.conference,
        move |hub| hub.add_stream(&app, &room_id, &stream_id),
        |()| success(),
    )
    .await
}

/// The checks both token calls start with: the caller's address is allowed, and `expireDate`
/// and `type` are valid. Either the parsed values or the response to send instead.
fn token_request(
    cx: &ListenerContext,
    addr: SocketAddr,
    app: &str,
    query: &HashMap<String, String>,
) -> Result<(i64, TokenType), Box<Response>> {
    if let Some(r) = refused(cx, addr, app) {
        return Err(Box::new(r));
    }
    let expire = query
        .get("expireDate")
        .and_then(|e| e.parse::<i64>().ok())
        .filter(|e| *e > 0)
        .ok_or_else(|| {
            failure(
                StatusCode::OK,
                "expireDate (Unix seconds, positive) is required",
            )
        })?;
    let kind = query
        .get("type")
        .and_then(|t| TokenType::parse(t))
        .ok_or_else(|| Box::new(failure(StatusCode::OK, "type must be `publish` or `play`")))?;
    Ok((expire, kind))
}

async fn token(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((app, stream_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (expire, kind) = match token_request(&cx, addr, &app, &query) {
        Ok(q) => q,
        Err(response) => return *response,
    };
    let room = query.get("roomId").filter(|r| !r.is_empty()).cloned();
    blocking(
        &cx.conference,
        move |hub| hub.create_token(&app, &stream_id, expire, kind, room.as_deref()),
        |token| json(StatusCode::OK, &token),
    )
    .await
}

async fn jwt_token(
    State(cx): State<ListenerContext>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path((app, stream_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (expire, kind) = match token_request(&cx, addr, &app, &query) {
        Ok(q) => q,
        Err(response) => return *response,
    };
    match cx.conference.create_jwt(&app, &stream_id, expire, kind) {
        Ok(token) => json(StatusCode::OK, &token),
        Err(e) => rest_error(&e),
    }
}
