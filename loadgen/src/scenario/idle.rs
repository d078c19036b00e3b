//! Idle concurrency: N sessions, each alone in its own room, held open while the server's
//! resident memory is read from `/proc/PID/status`; the report gives KiB per session.
//!
//! Client sockets are bound to 127.0.0.1 ..= 127.0.0.x before connecting, so that tens of
//! thousands of connections do not exhaust one source address's ephemeral ports.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::client::{Conn, Dialect, EIO_PONG, Target};

/// An idle run.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// Where.
    pub target: Target,
    /// Dialect of every session.
    pub dialect: Dialect,
    /// Sessions to open.
    pub sessions: u32,
    /// The server's process id, whose RSS is read.
    pub pid: u32,
    /// Connections being opened at once.
    pub connect_parallel: usize,
    /// How long to wait after the last session opened before reading the RSS.
    pub settle: Duration,
    /// Give up opening after this long.
    pub timeout: Duration,
}

/// Results of an idle run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleReport {
    /// `idle`.
    pub scenario: String,
    /// Server kind.
    pub server: String,
    /// Dialect.
    pub dialect: String,
    /// Sessions asked for.
    pub sessions: u32,
    /// Sessions open (joined) when the RSS was read.
    pub opened: u32,
    /// Sessions that failed to open.
    pub failed: u32,
    /// Server RSS before, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every session open, KiB.
    pub rss_after_kib: u64,
    /// (after − before) / opened.
    pub kib_per_session: f64,
    /// Seconds to open every session.
    pub open_secs: f64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kib = rest.trim().trim_end_matches("kB").trim();
            return kib.parse().with_context(|| format!("VmRSS `{rest}`"));
        }
    }
    bail!("no VmRSS in {path}")
}

/// Raises this process's open-file limit to at least `want` (the hard limit too, when allowed:
/// root may raise it). Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    use rlimit::Resource;
    if let Ok((soft, _)) = rlimit::getrlimit(Resource::NOFILE)
        && soft >= want
    {
        return soft;
    }
    if rlimit::setrlimit(Resource::NOFILE, want, want).is_ok() {
        return want;
    }
    rlimit::increase_nofile_limit(want).unwrap_or(0)
}

/// Runs an idle scenario.
pub async fn run(cfg: IdleConfig) -> anyhow::Result<IdleReport> {
    anyhow::ensure!(
        cfg.target.server.speaks(cfg.dialect),
        "{} does not speak {}",
        cfg.target.server.as_str(),
        cfg.dialect.as_str()
    );
    let limit = raise_nofile(u64::from(cfg.sessions) + 1024);
    anyhow::ensure!(
        limit >= u64::from(cfg.sessions) + 64,
        "open-file limit {limit} is too low for {} sessions (run as root or raise `ulimit -n`)",
        cfg.sessions
    );
    let rss_before = rss_kib(cfg.pid)?;
    let run = super::run_id();
    let permits = Arc::new(Semaphore::new(cfg.connect_parallel.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, mut opened_rx) = mpsc::channel::<Result<(), String>>(1024);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.sessions as usize);
    for i in 0..cfg.sessions {
        let target = cfg.target.clone();
        let permits = permits.clone();
        let opened = opened_tx.clone();
        let stop = stop_rx.clone();
        let room = format!("{run}-i{i}");
        let dialect = cfg.dialect;
        tasks.push(tokio::spawn(async move {
            let conn = {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                let conn = async {
                    let mut conn =
                        Conn::connect(&target, dialect, &room, u64::from(i), true).await?;
                    conn.join(target.server).await?;
                    anyhow::Ok(conn)
                }
                .await;
                match conn {
                    Ok(conn) => {
                        let _ = opened.send(Ok(())).await;
                        conn
                    }
                    Err(e) => {
                        let _ = opened.send(Err(format!("{e:#}"))).await;
                        return;
                    }
                }
            };
            hold(conn, stop).await;
        }));
    }
    drop(opened_tx);
    let mut report = IdleReport {
        scenario: "idle".into(),
        server: cfg.target.server.as_str().into(),
        dialect: cfg.dialect.as_str().into(),
        sessions: cfg.sessions,
        rss_before_kib: rss_before,
        ..Default::default()
    };
    let deadline = started + cfg.timeout;
    while report.opened + report.failed < cfg.sessions {
        match tokio::time::timeout_at(deadline, opened_rx.recv()).await {
            Ok(Some(Ok(()))) => report.opened += 1,
            Ok(Some(Err(e))) => {
                report.failed += 1;
                report.first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) => {
                report.first_error.get_or_insert_with(|| {
                    format!("timed out after {:?} opening sessions", cfg.timeout)
                });
                break;
            }
        }
    }
    report.open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(cfg.settle).await;
    report.rss_after_kib = rss_kib(cfg.pid)?;
    report.kib_per_session =
        report.rss_after_kib.saturating_sub(rss_before) as f64 / f64::from(report.opened.max(1));
    let _ = stop_tx.send(true);
    let closing = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), closing).await;
    Ok(report)
}

/// Keeps a session open: answers engine.io pings, drops everything else, closes on `stop`.
async fn hold(mut conn: Conn, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            text = conn.next_text() => match text {
                Ok(Some(t)) if t == "2" => {
                    if conn.send(EIO_PONG.to_owned()).await.is_err() {
                        return;
                    }
                }
                Ok(Some(_)) => {}
                _ => return,
            },
            _ = stop.changed() => break,
        }
    }
    let _ = crate::client::bounded(conn.ws.close(None)).await;
}
