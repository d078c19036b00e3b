//! The Ant Media endpoint: `ws://HOST:PORT/{app}/websocket`, query ignored. Any app name while
//! no `[[antmedia_app]]` is configured; once one is, only the configured names (or any, with a
//! `name = "*"` entry), so that no app name escapes the configured stream security.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use switchboard_protocol::DialectKind;
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use tracing::Instrument;

use super::{ListenerContext, admission};
use crate::{session, telemetry};

pub fn routes(cx: ListenerContext) -> Router {
    Router::new()
        .route("/{app}/websocket", get(upgrade))
        .with_state(cx)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Path(app): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(cx): State<ListenerContext>,
) -> Response {
    // Before the connection caps and the upgrade: nothing is spent on an app not served.
    if !cx.gateway.config().admits_app(&app) {
        telemetry::app_refused(addr);
        return (
            StatusCode::NOT_FOUND,
            "unknown application: it is not configured on this gateway ([[antmedia_app]])\n",
        )
            .into_response();
    }
    let permit = match admission::admit(&cx, DialectKind::Antmedia, addr) {
        Ok(permit) => permit,
        Err(refusal) => return admission::refusal_response(refusal),
    };
    let limit = cx.gateway.config().max_frame_bytes(DialectKind::Antmedia);
    let ws = super::small_buffers(ws);
    // One boxed capture: measured, the session's RSS was lower with the callback's captures in
    // one box than inline in axum's upgrade task (BENCHMARKS.md, "Lean idle sessions", sixth
    // step), although that task now ends at the upgrade.
    let captured = Box::new((cx, app, permit, addr));
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        let (cx, app, permit, addr) = *captured;
        let handle = cx.gateway.register(DialectKind::Antmedia, Some(addr));
        let span = tracing::info_span!("conn", conn.id = %handle.id, peer.addr = %addr, dialect = "antmedia", app = %app);
        let session = session::run_websocket::<AntMedia>(
            socket,
            session::WsSession {
                gateway: cx.gateway.clone(),
                handle,
                state: AntState { app: app.clone() },
                join: None,
                permit,
                app: Some(std::sync::Arc::from(app.as_str())),
            },
        );
        super::spawn_session(&cx.tracker, session.instrument(span))
    })
}
