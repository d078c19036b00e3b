//! The scenarios: relay throughput, latency at a fixed rate, call-setup storm, idle sessions.
//! Each is bounded in count and time and stops by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio::sync::Semaphore;

use crate::client::{Conn, Dialect, Target};

pub mod abuse;
pub mod flow;
pub mod idle;
pub mod storm;

/// A prefix unique to this run, so rooms never collide with a previous run's leftovers.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("lg{}x{}", std::process::id(), nanos % 1_000_000)
}

/// Hands out connection indexes (which pick the source address).
#[derive(Debug, Default)]
pub struct Indexes(AtomicU64);

impl Indexes {
    /// The next index.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Connects pair `pair`: side A first, in its room, then side B (on `--addr-b` when given: a
/// second cluster node), so that A is the waiting peer and both are in the room when this
/// returns.
pub async fn connect_pair(
    target: &Target,
    dialect: Dialect,
    room: &str,
    indexes: &Indexes,
) -> anyhow::Result<(Conn, Conn)> {
    let mut a = Conn::connect_side(target, dialect, room, 0, indexes.next(), false).await?;
    a.join(target.server).await.context("side A join")?;
    let mut b =
        Conn::connect_side(&target.side_b(), dialect, room, 1, indexes.next(), false).await?;
    b.join(target.server).await.context("side B join")?;
    Ok((a, b))
}

/// Connects `pairs` pairs, `parallel` at a time; fails on the first failure.
pub async fn connect_pairs(
    target: &Target,
    dialect: Dialect,
    pairs: u32,
    parallel: usize,
) -> anyhow::Result<Vec<(String, Conn, Conn)>> {
    let run = run_id();
    let limit = Arc::new(Semaphore::new(parallel.max(1)));
    let indexes = Arc::new(Indexes::default());
    let mut tasks = Vec::new();
    for p in 0..pairs {
        let target = target.clone();
        let limit = limit.clone();
        let indexes = indexes.clone();
        let room = format!("{run}-p{p}");
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await?;
            let (a, b) = connect_pair(&target, dialect, &room, &indexes)
                .await
                .with_context(|| format!("pair {p} ({room})"))?;
            anyhow::Ok((room, a, b))
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await??);
    }
    Ok(out)
}
