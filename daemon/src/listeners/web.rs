//! Static pages, embedded in the binary so `cargo run --release` alone serves working demos.
//! The Ant SDK and simple-peer are not ours to embed; demo listeners serve the `node_modules/`
//! that `npm ci` installs, and only what is really inside it (no symlinks out, no dotfiles).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::ListenerContext;
use crate::config::{GatewayConfig, Pages};

/// The files the demo pages load from `/node_modules/`, by the npm package that has them.
const PAGE_SDKS: [(&str, &str); 4] = [
    ("@antmedia/webrtc_adaptor", "dist/es/index.js"),
    ("simple-peer", "simplepeer.min.js"),
    ("socket.io-client-v2", "dist/socket.io.js"),
    ("peerjs", "dist/peerjs.min.js"),
];

const INDEX: &str = include_str!("../../../examples/web/index.html");
const ANT: &str = include_str!("../../../examples/web/ant.html");
const CONFERENCE: &str = include_str!("../../../examples/web/conference.html");
const SOCKETIO: &str = include_str!("../../../examples/web/socketio.html");
const RAW: &str = include_str!("../../../examples/web/raw.html");
const PEERJS: &str = include_str!("../../../examples/web/peerjs.html");
const PEER: &str = include_str!("../../../examples/web/peer.html");
/// The missing-SDK notice the Ant, conference, raw and socket.io pages share.
const SDK_MISSING: &str = include_str!("../../../examples/web/sdk-missing.js");
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

fn script(body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/socket.io/socket.io.js`, routed in front of the socket.io layer.
pub fn client_script_route() -> Router {
    Router::new().route("/socket.io/socket.io.js", get(|| async { script(CLIENT) }))
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
                .route("/peerjs.html", get(|| async { html(PEERJS) }))
                .route("/peer.html", get(|| async { html(PEER) }))
                .route("/sdk-missing.js", get(|| async { script(SDK_MISSING) }));
            // Routed even while the directory is missing, so that `npm ci` while the gateway
            // runs is enough: the directory is looked up on every request.
            let dir = Arc::new(cx.gateway.config().web.node_modules_dir.clone());
            router.route(
                "/node_modules/{*path}",
                get(node_module_file).with_state(dir),
            )
        }
    }
}

/// `GET /node_modules/{path}`: the file, or 404 when [`resolve_inside`] refuses the path.
async fn node_module_file(State(dir): State<Arc<PathBuf>>, request: Request) -> Response {
    let relative = request
        .uri()
        .path()
        .strip_prefix("/node_modules/")
        .unwrap_or_default();
    let Some(file) = percent_decode(relative).and_then(|rel| resolve_inside(&dir, &rel)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// Decodes `%XX` escapes (`%2e%2e` is `..` to the file system); `None` if not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The regular file `relative` names inside `root`, after every symlink is followed; `None`
/// when a segment is empty-dot, `..` or any other dotfile (`.bin/`, `.package-lock.json`, an
/// operator's `.env`), when the real file is outside the real root (a symlink out), or when it
/// is not a regular file. The check is on the canonical path, so a link inside the tree to
/// another file inside it still serves.
pub(crate) fn resolve_inside(root: &Path, relative: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let mut path = root.clone();
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        path.push(segment);
    }
    let real = path.canonicalize().ok()?;
    let inside = real.strip_prefix(&root).ok()?;
    let hidden = inside
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    (!hidden && real.is_file()).then_some(real)
}

/// Logs once, at start, when a listener serves the demo pages and `[web] node_modules_dir`
/// lacks an SDK they load: the pages then say so too, but the operator reads the log first.
pub(crate) fn log_missing_sdks(config: &GatewayConfig) {
    let demo = config
        .listeners
        .iter()
        .any(|l| l.pages == Pages::Demo && l.serves(crate::config::Service::Pages));
    if !demo {
        return;
    }
    let dir = &config.web.node_modules_dir;
    let missing: Vec<&str> = PAGE_SDKS
        .iter()
        .filter(|(package, file)| !dir.join(package).join(file).is_file())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    let state = if dir.is_dir() {
        "lacks"
    } else {
        "is missing, so it lacks"
    };
    tracing::warn!(
        dir = %dir.display(),
        missing = ?missing,
        "Demo pages: node_modules_dir {state} the SDKs of the Ant, raw, PeerJS and socket.io 2.x pages; \
         run `npm ci` in the repository root (or point [web] node_modules_dir at an installed \
         node_modules/) and reload the pages."
    );
}
