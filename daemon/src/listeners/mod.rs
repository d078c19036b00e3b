//! HTTP listeners: one axum server per `[[listener]]`, each carrying the dialects and pages its
//! config names. Every upgraded WebSocket session is spawned on the gateway's task tracker with a
//! child cancellation token, because axum's graceful shutdown does not see upgraded connections.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use socketioxide::SocketIo;
use switchboard_protocol::DialectKind;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerConfig;
use crate::gateway::Gateway;

mod antmedia;
mod raw;
mod socketio;
mod web;

/// What every handler of one listener shares.
#[derive(Debug, Clone)]
pub struct ListenerContext {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// Sessions are spawned here so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// This listener's config.
    pub config: Arc<ListenerConfig>,
}

async fn metrics() -> impl axum::response::IntoResponse {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        crate::metrics::global().render(),
    )
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct BoundListener {
    /// The address actually bound (port 0 resolved).
    pub local_addr: SocketAddr,
    listener: TcpListener,
    router: Router,
    /// The socket.io instance, closed on shutdown.
    pub socketio: Option<SocketIo>,
}

/// Binds one listener and builds its routes.
pub async fn bind(cx: ListenerContext) -> std::io::Result<BoundListener> {
    let listener = TcpListener::bind(cx.config.bind).await?;
    let local_addr = listener.local_addr()?;
    let dialects = &cx.config.dialects;
    let mut inner = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics));
    if dialects.contains(&DialectKind::Antmedia) {
        inner = inner.merge(antmedia::routes(cx.clone()));
    }
    if dialects.contains(&DialectKind::Raw) {
        inner = inner.merge(raw::routes(cx.clone()));
    }
    inner = inner.merge(web::pages(&cx));
    let (router, socketio) = if dialects.contains(&DialectKind::Socketio) {
        let (layer, io) = socketio::layer(cx.clone());
        // The socket.io layer answers every path under /socket.io/, so the client script has to
        // be routed in front of it.
        (
            web::client_script_route().fallback_service(inner.layer(layer)),
            Some(io),
        )
    } else {
        (inner, None)
    };
    Ok(BoundListener {
        local_addr,
        listener,
        router,
        socketio,
    })
}

impl BoundListener {
    /// Serves until `shutdown` is cancelled (new connections stop; sessions are closed by their
    /// own tokens).
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}
