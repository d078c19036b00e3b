//! The Switchboard gateway daemon: it speaks Ant Media, socket.io (SimpleP2P) and raw WebSocket
//! signaling, normalizes every peer message onto one event bus, runs it through the plugin
//! pipeline (routing is a plugin), and renders deliveries in each receiver's dialect.
//!
//! # Layout
//! - [`cluster`]: scale-out through Redis (`[cluster]`): shared rooms, the node bus, failure
//!   detection.
//! - [`config`]: strict TOML config, the embedded default, validation.
//! - [`gateway`]: the session registry (deliver, kick, count) and the dispatcher (the one
//!   dispatch entry point: [`rooms`], each behind its own lock, and the [`pipeline`]; the
//!   cluster membership hook).
//! - [`rooms`]: the room table, one lock per room.
//! - [`session`]: the per-connection task for WebSocket dialects.
//! - [`listeners`]: axum servers, one module per dialect endpoint, and the embedded pages.
//! - [`plugins`]: the registry of built-in plugin factories; `[[plugin]]` entries with a `path`
//!   are native plugins, loaded by `switchboard-native-plugins`.
//! - [`telemetry`]: named log events.
//! - [`lifecycle`]: the phases (starting, running, draining, stopped) on a watch channel.
//! - [`limits`]: message rate, connection caps, allowed origins.
//! - [`reload`]: SIGHUP reload: validate, keep the old config on error, apply what can change.
//! - [`stats`]: hot-path metrics (messages by dialect and kind, latency histograms).
//! - [`tls`]: rustls listeners and the self-signed development certificate.
//! - [`turn`]: TURN REST credentials.
//!
//! Library entry points take a shutdown future so tests control them; `main` wires signals.

pub mod cluster;
pub mod config;
pub mod envelope;
pub mod gateway;
pub mod lifecycle;
pub mod limits;
pub mod listeners;
pub mod metrics;
pub mod pipeline;
pub mod plugins;
pub mod reload;
pub mod rooms;
pub mod session;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod turn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::GatewayConfig;
use gateway::Gateway;
pub use lifecycle::Phase;
use listeners::ListenerContext;
use plugins::PluginRegistry;

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// The bound address of each `[[listener]]`, in config order.
    pub local_addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    gateway: Arc<Gateway>,
    registry: Arc<PluginRegistry>,
}

impl Running {
    /// Starts a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The lifecycle phases: the current one, and every change after it.
    pub fn phases(&self) -> watch::Receiver<Phase> {
        self.gateway.lifecycle().subscribe()
    }

    /// The running gateway (sessions, rooms, configuration).
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Applies a new, already validated configuration (see [`reload`]). On error nothing
    /// changed.
    pub fn reload(&self, config: GatewayConfig) -> Result<reload::Reloaded, String> {
        reload::apply(&self.gateway, &self.registry, config)
    }

    /// Reads, validates and applies a config file; on any error the running configuration
    /// stays and the error is logged and returned.
    pub fn reload_file(&self, path: &std::path::Path) -> Result<reload::Reloaded, String> {
        reload::reload_file(&self.gateway, &self.registry, path)
    }

    /// Waits until the gateway has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("gateway task panicked")?
    }
}

/// Binds every listener and starts serving. Returns once all sockets are bound.
pub async fn start(config: GatewayConfig) -> anyhow::Result<Running> {
    // The conference plugin and the REST API share one hub; opening it loads the store.
    let cluster = match &config.cluster {
        Some(c) => Some(start_cluster(c).await?),
        None => None,
    };
    // With [cluster], REST rooms, one-time tokens and the live streams of conference rooms
    // live in the cluster's Redis.
    let shared = cluster
        .as_ref()
        .map(|c| Arc::clone(c.catalog()) as Arc<dyn switchboard_conference::SharedCatalog>);
    let conference = Arc::new(switchboard_conference::Hub::open(
        switchboard_conference::HubOptions {
            store: config.store.as_ref().map(|s| s.path.clone()),
            apps: config.antmedia_apps.clone(),
            shared,
        },
        unix_now(),
    ));
    // With [cluster], each conference room's media is served by its home node, and the
    // conference and sfu plugins come with their reads of Redis before a room is locked.
    let registry = Arc::new(PluginRegistry::builtin_in(
        conference.clone(),
        cluster.as_deref(),
    ));
    let pipeline = registry
        .pipeline(&config.plugins)
        .map_err(|e| anyhow::anyhow!("cannot build plugins:\n  {}", e.join("\n  ")))?;
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    let gateway = Arc::new(Gateway::new(config.clone(), pipeline, shutdown.clone()));
    gateway
        .start_plugins()
        .map_err(|e| anyhow::anyhow!("cannot start plugins: {e}"))?;
    let tracker = TaskTracker::new();
    // The cluster link runs on its own tracker: it must outlive the sessions' drain, so that
    // their leaves reach the other nodes.
    let cluster_tasks = TaskTracker::new();
    if let Some(cluster) = cluster {
        info!(node = %cluster.node(), "Cluster: joining through Redis.");
        // This node's membership in Redis is the dispatcher's cluster hook.
        gateway.join_cluster(Arc::new(gateway::RedisMembership::new(Arc::clone(
            &cluster,
        ))));
        cluster::link::start(&cluster, &gateway, &cluster_tasks);
    }
    let nofile = listeners::front_door::raise_nofile_limit();
    let front_door = Arc::new(listeners::FrontDoor::with_descriptors(
        nofile,
        listeners::front_door::open_descriptors(),
        config.limits.reserved_fds,
    ));
    let peerjs_ids = Arc::new(listeners::PeerIds::default());
    let post_budget = Arc::new(listeners::engineio::PostBudget::new(
        config.limits.engineio3_undelivered_bytes_per_ip,
        config.limits.engineio3_undelivered_bytes_total,
    ));
    let mut bound = Vec::new();
    for listener in &config.listeners {
        let cx = ListenerContext {
            gateway: gateway.clone(),
            tracker: tracker.clone(),
            config: Arc::new(listener.clone()),
            conference: conference.clone(),
            front_door: front_door.clone(),
            peerjs_ids: peerjs_ids.clone(),
            engineio: Default::default(),
            post_budget: post_budget.clone(),
        };
        let b = listeners::bind(cx)
            .await
            .with_context(|| format!("cannot bind listener {}", listener.bind))?;
        info!(addr = %b.local_addr, dialects = ?listener.dialects, "Listening.");
        bound.push(b);
    }
    listeners::log_missing_sdks(&config);
    let local_addrs = bound.iter().map(|b| b.local_addr).collect();
    let grace = Duration::from_secs(config.shutdown.grace_period_secs);
    gateway.lifecycle().advance(Phase::Running);
    let served = serve_all(bound, gateway.clone(), tracker, shutdown.clone(), grace);
    let stopped = gateway.clone();
    let task = tokio::spawn(async move {
        let result = served.await;
        // After the plugins' shutdown: commit queued store writes and close the file.
        let _ = tokio::task::spawn_blocking(move || conference.close()).await;
        stopped.lifecycle().advance(Phase::Stopped);
        info!("Stopped.");
        result
    });
    Ok(Running {
        local_addrs,
        shutdown,
        task,
        gateway,
        registry,
    })
}

/// This node's part of the cluster `c`, once Redis has not refused it (see
/// [`cluster::link::check_access`]). Nothing runs yet.
async fn start_cluster(c: &cluster::ClusterConfig) -> anyhow::Result<Arc<cluster::Cluster>> {
    let cluster = Arc::new(
        cluster::Cluster::new(c.clone()).context("cannot set up the [cluster] Redis client")?,
    );
    cluster.bind_direct().await.with_context(|| {
        format!(
            "cannot listen for direct links on [cluster.direct] listen = {:?}",
            c.direct.as_ref().map_or("", |d| d.listen.as_str())
        )
    })?;
    cluster::link::check_access(&cluster).await.map_err(|e| {
        anyhow::anyhow!(
            "[cluster] Redis at {} refused this node: {e} (check redis_username, \
             redis_password and redis_ca_file)",
            c.redacted_target()
        )
    })?;
    Ok(cluster)
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
    // The HTTP servers outlive the sessions, so that /readyz can answer 503 while draining.
    let http_stop = CancellationToken::new();
    let mut servers = Vec::new();
    for b in bound {
        servers.push(tokio::spawn(b.serve(http_stop.clone())));
    }
    shutdown.cancelled().await;
    let deadline = tokio::time::Instant::now() + grace;
    // 1. Stop accepting sessions: admission refuses upgrades (503) and socket.io connections
    //    (`connect_error`); /readyz answers 503 so load balancers take the node out.
    gateway.lifecycle().advance(Phase::Draining);
    info!(
        sessions = gateway.registry().len(),
        grace_secs = grace.as_secs(),
        "Draining."
    );
    // 2. Sessions hold child tokens of `shutdown`, so they are closing now: Ant peers get
    //    `server_will_stop`, raw peers `switchboard.server-will-stop`, then WebSocket 1001;
    //    socket.io writers send their notice and disconnect.
    tracker.close();
    // 3. Every socket.io session (long-polling ones too) is a session of the tracker, so
    //    waiting for it covers them; then the HTTP servers stop.
    let drained = tokio::time::timeout_at(deadline, tracker.wait()).await;
    if let Some(cluster) = gateway.cluster() {
        cluster.shutdown().await;
    }
    http_stop.cancel();
    let _ = tokio::time::timeout_at(deadline, async {
        for server in servers {
            let _ = server.await;
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            grace_secs = grace.as_secs(),
            sessions = gateway.registry().len(),
            "Shutdown deadline passed with sessions still open."
        );
    }
    // 4. Plugins finish (reverse order), within what is left of the grace period (at least a
    //    second, so a plugin that flushes a file gets to).
    let plugins = gateway.clone();
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_secs(1));
    let finished = tokio::time::timeout(
        left,
        tokio::task::spawn_blocking(move || plugins.shutdown_plugins()),
    )
    .await;
    if finished.is_err() {
        warn!("Plugins did not finish their shutdown in time.");
    }
    Ok(())
}

/// Now, in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
