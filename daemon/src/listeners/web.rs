//! Static pages, embedded in the binary so `cargo run --release` alone serves working demos.
//! The Ant SDK and simple-peer are not ours to embed; demo listeners serve the `node_modules/`
//! that `npm ci` installs, when it is there.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use tower_http::services::ServeDir;

use super::ListenerContext;
use crate::config::Pages;

const INDEX: &str = include_str!("../../../examples/web/index.html");
const ANT: &str = include_str!("../../../examples/web/ant.html");
const CONFERENCE: &str = include_str!("../../../examples/web/conference.html");
const SOCKETIO: &str = include_str!("../../../examples/web/socketio.html");
const RAW: &str = include_str!("../../../examples/web/raw.html");
const PEER: &str = include_str!("../../../examples/web/peer.html");
/// Switchboard's own small socket.io client (engine.io v4 over WebSocket).
const CLIENT: &str = include_str!("../../assets/socket.io.js");

fn html(body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/socket.io/socket.io.js`, routed in front of the socket.io layer.
pub fn client_script_route() -> Router {
    Router::new().route(
        "/socket.io/socket.io.js",
        get(|| async {
            (
                [
                    (CONTENT_TYPE, "text/javascript; charset=utf-8"),
                    (CACHE_CONTROL, "no-cache"),
                ],
                CLIENT,
            )
        }),
    )
}

/// The pages a listener's config asks for.
pub fn pages(cx: &ListenerContext) -> Router {
    match cx.config.pages {
        Pages::None => Router::new(),
        Pages::Classic => Router::new()
            .route("/", get(|| async { Redirect::temporary("/peer.html") }))
            .route("/peer.html", get(|| async { html(PEER) })),
        Pages::Demo => {
            let router = Router::new()
                .route("/", get(|| async { html(INDEX) }))
                .route("/index.html", get(|| async { html(INDEX) }))
                .route("/ant.html", get(|| async { html(ANT) }))
                .route("/conference.html", get(|| async { html(CONFERENCE) }))
                .route("/socketio.html", get(|| async { html(SOCKETIO) }))
                .route("/raw.html", get(|| async { html(RAW) }))
                .route("/peer.html", get(|| async { html(PEER) }));
            let dir = &cx.gateway.config().web.node_modules_dir;
            if dir.is_dir() {
                router.nest_service("/node_modules", ServeDir::new(dir))
            } else {
                router
            }
        }
    }
}
