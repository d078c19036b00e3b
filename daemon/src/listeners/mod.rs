//! HTTP listeners: one axum server per `[[listener]]`, each carrying the dialects and pages its
//! config names. Every upgraded WebSocket session is spawned on the gateway's task tracker with a
//! child cancellation token, because axum's graceful shutdown does not see upgraded connections.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use switchboard_protocol::DialectKind;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ListenerConfig, Service};
use crate::gateway::Gateway;
pub use front_door::{AcceptRefusal, FrontDoor};
pub use peerjs::PeerIds;

mod admin;
mod admission;
mod antmedia;
pub(crate) mod burst_io;
pub(crate) mod engineio;
pub mod front_door;
mod peerjs;
mod proxy;
mod raw;
mod rest;
mod serve;
mod socketio_ws;
mod web;
mod whip;

pub(crate) use web::log_missing_sdks;

/// Bytes of each WebSocket session's read buffer. axum's default is 128 KiB, and tungstenite
/// zero-fills all of it on the first read and keeps it for the session's life, so every idle
/// session held all of it; signaling frames are a few KiB. tungstenite grows the buffer to fit
/// a larger frame and reads at most this much per call; under load the socket itself is read
/// 64 KiB at a time by [`burst_io::BurstIo`] beneath, so this size does not set the number of
/// `recv` calls, but it does set the number of read calls through tokio-tungstenite, hyper's
/// upgraded socket and `BurstIo`, and how often tungstenite reallocates the buffer. Smaller
/// costs instructions on every relayed message, larger costs memory in every idle session:
/// 512 bytes cost most of what a relayed message had gained since 035dd51, and 1 KiB gives it
/// back for a little more memory per idle session (BENCHMARKS.md, "The relay cost since
/// 035dd51", and "Profiling figures (moved from code comments)"). tungstenite sizes the read
/// per call and the buffer an idle session keeps by this one value; it offers no way to have a
/// large read while busy and a small buffer while idle.
pub(crate) const WS_READ_BUFFER_BYTES: usize = 1024;
/// Outgoing bytes tungstenite gathers before handing them on (sessions flush after each batch
/// of deliveries; the buffer grows only to the largest frame sent). [`burst_io::BurstIo`]
/// gathers a whole batch into one `send`.
pub(crate) const WS_WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Connections the kernel queues per listener before they are accepted. tokio's
/// `TcpListener::bind` asks for 128, which a call-setup storm overflows: the dropped handshakes
/// are retried by the clients after a second. (The kernel caps it at `net.core.somaxconn`.)
const LISTEN_BACKLOG: u32 = 4096;

/// What every handler of one listener shares.
#[derive(Debug, Clone)]
pub struct ListenerContext {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// Sessions are spawned here so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// This listener's config.
    pub config: Arc<ListenerConfig>,
    /// Conference rooms and tokens, shared with the conference plugin (the REST API's data).
    pub conference: Arc<switchboard_conference::Hub>,
    /// Accept-time accounting, shared by every listener of the gateway.
    pub front_door: Arc<FrontDoor>,
    /// The ids of open PeerJS connections, shared by every listener of the gateway.
    pub peerjs_ids: Arc<peerjs::PeerIds>,
    /// This listener's engine.io long-polling sessions, by `sid`.
    pub engineio: Arc<engineio::Sessions>,
    /// The budget of engine.io 3 POST bytes not yet taken, shared by every listener.
    pub post_budget: Arc<engineio::PostBudget>,
}

async fn metrics(
    axum::extract::State(cx): axum::extract::State<ListenerContext>,
) -> impl axum::response::IntoResponse {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    let mut text = crate::metrics::global().render();
    crate::stats::render(&mut text, cx.gateway.dispatcher().room_count());
    crate::metrics::process::render(&mut text);
    cx.post_budget.render(&mut text);
    switchboard_sfu::render_metrics(&mut text);
    ([(axum::http::header::CONTENT_TYPE, content_type)], text)
}

/// 200 while running; 503 while starting, draining or stopped (take the node out of a load
/// balancer's rotation).
async fn readyz(
    axum::extract::State(cx): axum::extract::State<ListenerContext>,
) -> impl axum::response::IntoResponse {
    let phase = cx.gateway.phase();
    let status = if phase == crate::lifecycle::Phase::Running {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{phase}\n{}", cluster_line(&cx.gateway)))
}

/// `cluster: ok` or `cluster: degraded ...` when `[cluster]` is set; empty otherwise.
fn cluster_line(gateway: &crate::gateway::Gateway) -> String {
    match gateway.cluster() {
        Some(c) if c.healthy() => format!("cluster: ok ({})\n", c.node()),
        Some(c) => format!(
            "cluster: degraded, Redis unreachable; local rooms only ({})\n",
            c.node()
        ),
        None => String::new(),
    }
}

/// `ok` (200) on a node that serves; with `[cluster]` the second line says whether the node
/// reaches Redis (`degraded` still answers 200: local rooms work, a load balancer should keep
/// the node).
async fn healthz(
    axum::extract::State(cx): axum::extract::State<ListenerContext>,
) -> impl axum::response::IntoResponse {
    format!("ok\n{}", cluster_line(&cx.gateway))
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct BoundListener {
    /// The address actually bound (port 0 resolved).
    pub local_addr: SocketAddr,
    door: serve::Door,
}

/// Binds one listener and builds its routes.
pub async fn bind(cx: ListenerContext) -> std::io::Result<BoundListener> {
    let listener = listen(cx.config.bind)?;
    let local_addr = listener.local_addr()?;
    let tls = match &cx.config.tls {
        Some(tls) => Some(crate::tls::load_server_config(tls).map_err(std::io::Error::other)?),
        None => None,
    };
    let inner = service_routes(&cx);
    let serves_socketio =
        cx.config.serves(Service::Signaling) && cx.config.dialects.contains(&DialectKind::Socketio);
    // engine.io requests (socket.io clients 2 to 4, every transport) are served in front of
    // the other routes, by the one session loop; the client script is a route of its own.
    let router = if serves_socketio {
        web::client_script_route().fallback_service(inner).layer(
            axum::middleware::from_fn_with_state(cx.clone(), socketio_ws::intercept),
        )
    } else {
        inner
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        cx.clone(),
        admission::check_origin,
    ));
    let door = serve::Door {
        listener,
        router,
        health: health_routes(cx.clone()),
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        cx,
    };
    Ok(BoundListener { local_addr, door })
}

/// The routes of every [`Service`] the listener's `serve` names except socket.io, which is a
/// layer around them (see [`bind`]). A service left out is not routed at all: its paths 404.
fn service_routes(cx: &ListenerContext) -> Router {
    let config = &cx.config;
    let mut router = Router::new();
    if config.serves(Service::Health) {
        router = router.merge(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/readyz", get(readyz))
                .with_state(cx.clone()),
        );
    }
    if config.serves(Service::Metrics) {
        let metrics_route = Router::new().route("/metrics", get(metrics));
        router = router.merge(metrics_route.with_state(cx.clone()));
    }
    if config.serves(Service::Admin) {
        router = router.merge(admin::routes(cx.clone()));
    }
    if config.serves(Service::Rest) {
        router = router.merge(rest::routes(cx.clone()));
    }
    if config.serves(Service::Signaling) {
        if config.dialects.contains(&DialectKind::Antmedia) {
            router = router.merge(antmedia::routes(cx.clone()));
        }
        if config.dialects.contains(&DialectKind::Raw) {
            // WHIP/WHEP resources are sessions of the raw kind (docs/whip-whep.md).
            router = router.merge(raw::routes(cx.clone()));
            router = router.merge(whip::routes(cx.clone()));
        }
        if config.dialects.contains(&DialectKind::Peerjs) {
            router = router.merge(peerjs::routes(cx.clone()));
        }
    }
    if config.serves(Service::Pages) {
        router = router.merge(web::pages(cx));
    }
    router
}

/// What a connection admitted from the descriptor reserve may ask for: the probes and the
/// metrics an operator reads during a flood, where the listener serves them.
fn health_routes(cx: ListenerContext) -> Router {
    let mut router = Router::new();
    if cx.config.serves(Service::Health) {
        router = router
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
    }
    if cx.config.serves(Service::Metrics) {
        router = router.route("/metrics", get(metrics));
    }
    router
        .fallback(async || {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "server_full: the gateway is at its connection limit; try again later\n",
            )
        })
        .with_state(cx)
}

/// Spawns an upgraded WebSocket's session as a task of its own on the tracker; what an upgrade
/// callback returns, so that axum's upgrade task ends at once. Run inside that task, every
/// session also kept axum's upgrade future around its own for its whole life (the upgrade
/// handle, the socket's configuration and protocol, the callback), which put an idle Ant or
/// raw session's task block in mimalloc's 2,048-byte class instead of 1,792 (BENCHMARKS.md,
/// "Lean idle sessions", sixth step).
pub(crate) fn spawn_session<F>(tracker: &TaskTracker, session: F) -> std::future::Ready<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tracker.spawn(session);
    std::future::ready(())
}

/// A session's WebSocket with [`WS_READ_BUFFER_BYTES`] and [`WS_WRITE_BUFFER_BYTES`].
pub(crate) fn small_buffers(
    ws: axum::extract::WebSocketUpgrade,
) -> axum::extract::WebSocketUpgrade {
    ws.read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(WS_WRITE_BUFFER_BYTES)
}

/// Binds `addr` with [`LISTEN_BACKLOG`] and `TCP_NODELAY` (otherwise as `TcpListener::bind`
/// does).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Accepted connections inherit it: signaling frames are small and latency-bound, and with
    // Nagle a frame written while an earlier one is unacknowledged waited (the p99 cost is in
    // BENCHMARKS.md, "What was done about the misses").
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl BoundListener {
    /// Serves until `shutdown` is cancelled (new connections stop; sessions are closed by their
    /// own tokens).
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        serve::serve(self.door, shutdown).await
    }
}
