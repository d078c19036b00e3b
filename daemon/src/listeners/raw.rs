//! The raw endpoint: `ws://HOST:PORT/ws/{room}`. Connecting joins the room; a refused join gets a
//! `switchboard.error` frame and a 4xxx close.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use switchboard_protocol::dialects::raw::{Raw, RawState};
use switchboard_protocol::{DialectKind, Join, JoinMode};
use tracing::Instrument;

use super::{ListenerContext, admission};
use crate::{rooms, session};

/// Query parameters of the raw endpoint.
#[derive(Debug, Deserialize)]
struct RawQuery {
    /// Join token, checked by a room-policy plugin if one is configured.
    token: Option<String>,
}

pub fn routes(cx: ListenerContext) -> Router {
    Router::new()
        .route("/ws/{room}", get(upgrade))
        .with_state(cx)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Path(room): Path<String>,
    Query(query): Query<RawQuery>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(cx): State<ListenerContext>,
) -> Response {
    if let Err(problem) = rooms::check_room_name(&room) {
        crate::telemetry::room_name_refused(DialectKind::Raw);
        return (StatusCode::BAD_REQUEST, format!("{problem}\n")).into_response();
    }
    let permit = match admission::admit(&cx, DialectKind::Raw, addr) {
        Ok(permit) => permit,
        Err(refusal) => return admission::refusal_response(refusal),
    };
    let limit = cx.gateway.config().max_frame_bytes(DialectKind::Raw);
    let ws = super::small_buffers(ws);
    // One boxed capture: measured, the session's RSS was lower with the callback's captures in
    // one box than inline in axum's upgrade task (BENCHMARKS.md, "Lean idle sessions", sixth
    // step), although that task now ends at the upgrade.
    let captured = Box::new((cx, room, query, permit, addr));
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        let (cx, room, query, permit, addr) = *captured;
        let handle = cx.gateway.register(DialectKind::Raw, Some(addr));
        let span = tracing::info_span!("conn", conn.id = %handle.id, peer.addr = %addr, dialect = "raw", room = %room);
        let state = RawState { room: room.clone() };
        let token = query.token.filter(|t| !t.is_empty());
        let join = Join { room, mode: JoinMode::Both, token };
        let session = session::run_websocket::<Raw>(
            socket,
            session::WsSession {
                gateway: cx.gateway.clone(),
                handle,
                state,
                join: Some(join),
                permit,
                app: None,
            },
        );
        super::spawn_session(&cx.tracker, session.instrument(span))
    })
}
