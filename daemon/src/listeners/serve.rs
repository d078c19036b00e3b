//! The accept loop of every listener, plain or TLS: each limit is checked before its resource
//! is spent.
//!
//! 1. At accept: the descriptor budget (past it, a health place only for health-check networks
//!    and trusted proxies) and `max_tcp_connections_per_ip` ([`FrontDoor`]); a refused
//!    connection is closed at once.
//! 2. On `proxy_protocol` listeners: the PROXY header from a trusted proxy, read within the
//!    header timeout; the client it names is counted against the per-IP cap in turn.
//! 3. TLS, within its handshake timeout.
//! 4. HTTP/1.1 with hyper's timer, so `header_read_timeout` fires: slow headers and idle
//!    keep-alive connections are closed.
//! 5. Per request: the client address (behind a trusted proxy, from `Forwarded` /
//!    `X-Forwarded-For`) becomes `ConnectInfo`, which every handler, cap and log uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::debug;

use super::ListenerContext;
use super::burst_io::BurstIo;
use super::front_door::{AcceptRefusal, Admitted, Counted, TcpSlot};
use super::proxy::{TrustedProxies, read_proxy_header};
use crate::telemetry;

/// How long a client gets to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Header timeout of a connection admitted from the health reserve: it is there for one quick
/// probe, and an attacker holding it long would starve the probes.
const HEALTH_ONLY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound listener's socket and what it serves.
pub(super) struct Door {
    pub listener: TcpListener,
    pub router: Router,
    /// What a connection from the health reserve may ask for.
    pub health: Router,
    pub tls: Option<TlsAcceptor>,
    pub cx: ListenerContext,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// What one connection knows about where it comes from.
#[derive(Debug, Clone)]
struct Origin {
    /// The TCP peer.
    peer: SocketAddr,
    /// The client: the peer, or who the PROXY header named.
    client: SocketAddr,
    /// Per request, believe `Forwarded` / `X-Forwarded-For` (a trusted peer without PROXY).
    forwarded: Option<TrustedProxies>,
}

/// Accepts until `shutdown`, then lets in-flight requests finish; upgraded sessions close on
/// their own tokens.
pub(super) async fn serve(door: Door, shutdown: CancellationToken) -> std::io::Result<()> {
    let door = Arc::new(door);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = door.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors despite the budget (another part of the process used
                    // them): back off instead of spinning.
                    telemetry::accept_failed(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = door.admit(peer) else {
            continue;
        };
        let door = Arc::clone(&door);
        connections.spawn(door.serve_connection(tcp, peer, slot, shutdown.clone()));
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

impl Door {
    /// The accept-time check; `None`: refused, counted, and the socket closed.
    fn admit(&self, peer: SocketAddr) -> Option<TcpSlot> {
        let config = self.cx.gateway.config();
        let trusted = TrustedProxies::new(&config.proxy).contains(peer.ip());
        // A trusted proxy carries many clients; they are counted once known.
        let ip = (!trusted).then_some(peer.ip());
        let may_use_reserve = trusted || config.may_use_health_reserve(peer.ip());
        match self.cx.front_door.admit(
            ip,
            config.limits.max_tcp_connections_per_ip,
            may_use_reserve,
        ) {
            Ok(slot) => Some(slot),
            Err(refusal) => {
                telemetry::accept_refused(refusal, peer, None);
                None
            }
        }
    }

    async fn serve_connection(
        self: Arc<Self>,
        mut tcp: TcpStream,
        peer: SocketAddr,
        mut slot: TcpSlot,
        shutdown: CancellationToken,
    ) {
        let config = self.cx.gateway.config();
        let limits = &config.limits;
        let trusted = TrustedProxies::new(&config.proxy);
        let mut header_timeout = Duration::from_secs(limits.header_read_timeout_secs.max(1));
        if slot.admitted == Admitted::HealthOnly {
            header_timeout = header_timeout.min(HEALTH_ONLY_HEADER_TIMEOUT);
        }
        let mut origin = Origin {
            peer,
            client: peer,
            forwarded: trusted.contains(peer.ip()).then(|| trusted.clone()),
        };
        if self.cx.config.proxy_protocol {
            if origin.forwarded.is_none() {
                return telemetry::accept_refused(AcceptRefusal::ProxyUntrusted, peer, None);
            }
            match read_proxy_header(&mut tcp, peer, header_timeout).await {
                Ok(client) => origin.client = client,
                Err(e) => {
                    let refusal = AcceptRefusal::ProxyHeaderMalformed;
                    return telemetry::accept_refused(refusal, peer, Some(&e));
                }
            }
            origin.forwarded = None;
            if origin.client != peer
                && let Err(refusal) =
                    slot.claim_ip(origin.client.ip(), limits.max_tcp_connections_per_ip)
            {
                return telemetry::accept_refused(refusal, origin.client, None);
            }
        }
        let router = match slot.admitted {
            Admitted::Full => self.router.clone(),
            Admitted::HealthOnly => self.health.clone(),
        };
        let keep_alive = slot.admitted == Admitted::Full;
        // The slot goes with the stream, into an upgraded WebSocket too: its place is held
        // until the session ends.
        let io = Counted::new(BurstIo::new(tcp), slot);
        let Some(tls) = &self.tls else {
            return serve_http(io, origin, router, header_timeout, keep_alive, shutdown).await;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(io)).await {
            Ok(Ok(stream)) => {
                serve_http(stream, origin, router, header_timeout, keep_alive, shutdown).await;
            }
            Ok(Err(e)) => debug!(peer.addr = %origin.client, error = %e, "TLS handshake failed."),
            Err(_) => debug!(peer.addr = %origin.client, "TLS handshake timed out."),
        }
    }
}

/// Serves HTTP/1.1 with upgrades on one connection until it ends or `shutdown`.
async fn serve_http<S>(
    stream: S,
    origin: Origin,
    router: Router,
    header_timeout: Duration,
    keep_alive: bool,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = origin.client;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        let origin = origin.clone();
        async move { Ok::<_, std::convert::Infallible>(route(router, &origin, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(keep_alive);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                debug!(peer.addr = %client, error = %e, "Connection ended with an error.");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Sets the request's client address and hands it to the router; a trusted proxy's malformed
/// forwarding header gets 400 and the connection is closed.
async fn route(
    router: Router,
    origin: &Origin,
    mut request: Request<Incoming>,
) -> Response<axum::body::Body> {
    let client = match &origin.forwarded {
        Some(trusted) => match trusted.client_of(origin.peer, request.headers()) {
            Ok(client) => client,
            Err(e) => {
                telemetry::accept_refused(AcceptRefusal::ForwardedMalformed, origin.peer, Some(&e));
                let mut response =
                    (StatusCode::BAD_REQUEST, format!("bad request: {e}\n")).into_response();
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                return response;
            }
        },
        None => origin.client,
    };
    request.extensions_mut().insert(ConnectInfo(client));
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
