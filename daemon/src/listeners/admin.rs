//! The admin API under `/api/` and the live dashboard at `/admin/`. Both exist only when
//! `[admin] token` is set (otherwise they answer 404); every API call needs
//! `Authorization: Bearer TOKEN` (401 without it). The dashboard page itself holds no data: it
//! asks for the token and polls the API.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /api/stats` | phase, uptime, sessions and messages by dialect, rooms |
//! | `GET /api/rooms` | every room with its members (session, dialect, mode) |
//! | `GET /api/rooms/{room}` | one room, 404 if it has no members |
//! | `GET /api/sessions` | every session: dialect, address, rooms, age, message counts |
//! | `DELETE /api/sessions/{id}` | kicks the session (closed in its dialect); 404 if unknown |
//! | `POST /api/drain` | starts a graceful shutdown, as SIGTERM does; 202 |

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_plugin_api::{Peer, SessionId};

use super::ListenerContext;
use crate::{stats, telemetry};

const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// A JSON body (axum's `Json` needs a feature the workspace leaves off).
struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [
                (CONTENT_TYPE, "application/json"),
                (CACHE_CONTROL, "no-store"),
            ],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// The admin routes of one listener.
pub fn routes(cx: ListenerContext) -> Router {
    let api = Router::new()
        .route("/api/stats", get(get_stats))
        .route("/api/rooms", get(list_rooms))
        .route("/api/rooms/{room}", get(show_room))
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{id}", delete(kick_session))
        .route("/api/drain", post(drain))
        .route_layer(middleware::from_fn_with_state(cx.clone(), require_token));
    let page = Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/", get(dashboard))
        .route_layer(middleware::from_fn_with_state(cx.clone(), require_enabled));
    api.merge(page).with_state(cx)
}

/// 404 unless `[admin] token` is set.
async fn require_enabled(
    State(cx): State<ListenerContext>,
    request: Request,
    next: Next,
) -> Response {
    if cx.gateway.config().admin.token.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
}

/// 404 unless `[admin] token` is set; 401 unless the request carries it.
async fn require_token(
    State(cx): State<ListenerContext>,
    request: Request,
    next: Next,
) -> Response {
    let config = cx.gateway.config();
    let Some(token) = &config.admin.token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !bearer_matches(request.headers(), token) {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "missing or wrong bearer token" })),
        )
            .into_response();
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"switchboard\""),
        );
        return response;
    }
    next.run(request).await
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dashboard() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD,
    )
}

fn member_json(p: &Peer) -> Value {
    json!({ "session": p.session.0, "dialect": p.dialect, "mode": p.mode })
}

async fn get_stats(State(cx): State<ListenerContext>) -> impl IntoResponse {
    let gw = &cx.gateway;
    let mut sessions: HashMap<&str, usize> =
        stats::DIALECTS.iter().map(|d| (d.as_str(), 0)).collect();
    for s in gw.registry().sessions() {
        *sessions.entry(s.dialect.as_str()).or_default() += 1;
    }
    let messages: serde_json::Map<String, Value> = stats::totals()
        .iter()
        .map(|(d, i, o)| (d.as_str().to_owned(), json!({ "in": i, "out": o })))
        .collect();
    Json(json!({
        "phase": gw.phase().as_str(),
        "uptime_secs": gw.uptime().as_secs(),
        "sessions": sessions,
        "rooms": gw.dispatcher().room_count(),
        "messages": messages,
    }))
}

async fn list_rooms(State(cx): State<ListenerContext>) -> impl IntoResponse {
    let rooms: Vec<Value> = cx
        .gateway
        .dispatcher()
        .rooms_snapshot()
        .iter()
        .map(|(room, members)| {
            json!({ "room": room, "members": members.iter().map(member_json).collect::<Vec<_>>() })
        })
        .collect();
    Json(json!({ "rooms": rooms }))
}

async fn show_room(State(cx): State<ListenerContext>, Path(room): Path<String>) -> Response {
    let members = cx.gateway.dispatcher().room_members(&room);
    if members.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such room (rooms exist while they have members)" })),
        )
            .into_response();
    }
    Json(json!({
        "room": room,
        "members": members.iter().map(member_json).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn list_sessions(State(cx): State<ListenerContext>) -> impl IntoResponse {
    let mut rooms_of: HashMap<SessionId, Vec<String>> = HashMap::new();
    for (room, members) in cx.gateway.dispatcher().rooms_snapshot() {
        for m in members {
            rooms_of.entry(m.session).or_default().push(room.clone());
        }
    }
    let now = SystemTime::now();
    let sessions: Vec<Value> = cx
        .gateway
        .registry()
        .sessions()
        .iter()
        .map(|s| {
            json!({
                "session": s.id.0,
                "dialect": s.dialect,
                "addr": s.addr.map(|a| a.to_string()),
                "rooms": rooms_of.remove(&s.id).unwrap_or_default(),
                "connected_secs": now.duration_since(s.opened).map_or(0, |d| d.as_secs()),
                "messages_in": s.messages_in.load(Ordering::Relaxed),
                "messages_out": s.messages_out.load(Ordering::Relaxed),
            })
        })
        .collect();
    Json(json!({ "sessions": sessions }))
}

#[derive(Debug, Deserialize)]
struct KickQuery {
    reason: Option<String>,
}

async fn kick_session(
    State(cx): State<ListenerContext>,
    Path(id): Path<u64>,
    Query(query): Query<KickQuery>,
) -> Response {
    let reason = query
        .reason
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "kicked by an operator".to_owned());
    let reason: String = reason.chars().take(100).collect();
    if cx.gateway.registry().kick(SessionId(id), &reason) {
        telemetry::session_kicked(SessionId(id), &reason);
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such session" })),
        )
            .into_response()
    }
}

async fn drain(State(cx): State<ListenerContext>) -> impl IntoResponse {
    tracing::info!("Drain requested through the admin API.");
    cx.gateway.shutdown_token().cancel();
    (StatusCode::ACCEPTED, Json(json!({ "phase": "draining" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let mut headers = HeaderMap::new();
        assert!(!bearer_matches(&headers, "secret-token-0123"));
        headers.insert(
            AUTHORIZATION,
            "Bearer secret-token-0123"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(bearer_matches(&headers, "secret-token-0123"));
        assert!(!bearer_matches(&headers, "secret-token-0124"));
        assert!(!bearer_matches(&headers, "secret-token-01234"));
        headers.insert(
            AUTHORIZATION,
            "Basic secret-token-0123"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(!bearer_matches(&headers, "secret-token-0123"));
    }
}
