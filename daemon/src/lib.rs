//! The Switchboard gateway daemon: it speaks Ant Media, socket.io (SimpleP2P) and raw WebSocket
//! signaling, normalizes every peer message onto one event bus, runs it through the plugin
//! pipeline (routing is a plugin), and renders deliveries in each receiver's dialect.
//!
//! # Layout
//! - [`config`]: strict TOML config, the embedded default, validation.
//! - [`gateway`]: sessions registry, rooms, dispatch through the [`pipeline`].
//! - [`session`]: the per-connection task for WebSocket dialects.
//! - [`listeners`]: axum servers, one module per dialect endpoint, and the embedded pages.
//! - [`plugins`]: the registry of built-in plugin factories; `[[plugin]]` entries with a `path`
//!   are native plugins, loaded by `switchboard-native-plugins`.
//! - [`telemetry`]: named log events.
//!
//! Library entry points take a shutdown future so tests control them; `main` wires signals.

pub mod config;
pub mod gateway;
pub mod listeners;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod rooms;
pub mod session;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::GatewayConfig;
use gateway::Gateway;
use listeners::ListenerContext;
use pipeline::Pipeline;
use plugins::PluginRegistry;

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// The bound address of each `[[listener]]`, in config order.
    pub local_addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the gateway has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("gateway task panicked")?
    }
}

/// Binds every listener and starts serving. Returns once all sockets are bound.
pub async fn start(config: GatewayConfig) -> anyhow::Result<Running> {
    let plugins = PluginRegistry::builtin()
        .build_all(&config.plugins)
        .map_err(|e| anyhow::anyhow!("cannot build plugins:\n  {}", e.join("\n  ")))?;
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    let gateway = Arc::new(Gateway::new(
        config.clone(),
        Pipeline::new(plugins),
        shutdown.clone(),
    ));
    let tracker = TaskTracker::new();
    let mut bound = Vec::new();
    for listener in &config.listeners {
        let cx = ListenerContext {
            gateway: gateway.clone(),
            tracker: tracker.clone(),
            config: Arc::new(listener.clone()),
        };
        let b = listeners::bind(cx)
            .await
            .with_context(|| format!("cannot bind listener {}", listener.bind))?;
        info!(addr = %b.local_addr, dialects = ?listener.dialects, "Listening.");
        bound.push(b);
    }
    let local_addrs = bound.iter().map(|b| b.local_addr).collect();
    let grace = Duration::from_secs(config.shutdown.grace_period_secs);
    let task = tokio::spawn(serve_all(bound, gateway, tracker, shutdown.clone(), grace));
    Ok(Running {
        local_addrs,
        shutdown,
        task,
    })
}

/// Runs the gateway until `signal` completes, then shuts down gracefully.
pub async fn run(config: GatewayConfig, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    signal.await;
    running.shutdown();
    running.wait().await
}

async fn serve_all(
    bound: Vec<listeners::BoundListener>,
    gateway: Arc<Gateway>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut servers = Vec::new();
    let mut socketios = Vec::new();
    for b in bound {
        socketios.extend(b.socketio.clone());
        servers.push(tokio::spawn(b.serve(shutdown.clone())));
    }
    shutdown.cancelled().await;
    info!(sessions = gateway.session_count(), "Shutting down.");
    // Sessions hold child tokens of `shutdown`, so they are closing now (WebSocket 1001). socket.io
    // sockets, including long-polling requests the HTTP server would otherwise wait for, close here.
    for io in socketios {
        io.close().await;
    }
    tracker.close();
    let drained = tokio::time::timeout(grace, async {
        for server in servers {
            let _ = server.await;
        }
        tracker.wait().await;
    })
    .await;
    if drained.is_err() {
        warn!(
            grace_secs = grace.as_secs(),
            "Shutdown deadline passed with sessions still open."
        );
    }
    gateway.shutdown_plugins();
    info!("Stopped.");
    Ok(())
}
