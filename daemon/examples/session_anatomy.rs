//! What an idle session holds: the gateway in this process, under an allocator that counts live
//! heap blocks by size, so the heap a session keeps can be read block by block.
//!
//! ```text
//! cargo run --release -p switchboard --example session_anatomy -- --config bench/switchboard.toml --sessions 5000
//! switchboard-loadgen idle --addr 127.0.0.1:15080 --server switchboard --dialect ant \
//!     --sessions 5000 --settle-secs 8 --target <PID printed by the example>
//! ```
//!
//! It prints the sizes of the session's parts (the session loop's future, the WebSocket, the
//! queue's items), then, once `--sessions` sessions are registered and have settled, the heap
//! blocks that appeared per session (count and bytes per size), live heap bytes and the process
//! RSS, both per session. BENCHMARKS.md ("What an idle session holds") is made from its output.

// A measuring tool: its report is its standard output.
#![allow(clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use switchboard::config::GatewayConfig;
use switchboard::session::{WsSession, run_websocket};
use switchboard_protocol::dialects::antmedia::AntMedia;
use switchboard_protocol::dialects::engineio::SocketIoWs;
use switchboard_protocol::dialects::raw::Raw;

/// Live blocks are counted per 16-byte size step up to this size; larger ones share a bucket.
const TRACKED: usize = 64 * 1024;
const STEP: usize = 16;
const BUCKETS: usize = TRACKED / STEP + 1;

/// mimalloc, as the gateway runs, counting every live block.
struct Counting;

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicI64 = AtomicI64::new(0);
static LIVE_COUNT: [AtomicI64; BUCKETS] = [ZERO; BUCKETS];
static LIVE_BYTES: [AtomicI64; BUCKETS] = [ZERO; BUCKETS];

fn bucket(size: usize) -> usize {
    size.div_ceil(STEP).min(BUCKETS - 1)
}

fn add(size: usize, sign: i64) {
    let b = bucket(size);
    LIVE_COUNT[b].fetch_add(sign, Ordering::Relaxed);
    LIVE_BYTES[b].fetch_add(sign * size as i64, Ordering::Relaxed);
}

// SAFETY: every call is passed on unchanged to mimalloc, which upholds `GlobalAlloc`'s contract;
// the counters are atomics and never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller's layout, passed on.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller's layout, passed on.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(layout.size(), -1);
        // SAFETY: a block this allocator returned, with its layout.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(layout.size(), -1);
        add(new_size, 1);
        // SAFETY: a block this allocator returned, with its layout.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live blocks per bucket: (count, bytes).
fn snapshot() -> Vec<(i64, i64)> {
    (0..BUCKETS)
        .map(|b| {
            (
                LIVE_COUNT[b].load(Ordering::Relaxed),
                LIVE_BYTES[b].load(Ordering::Relaxed),
            )
        })
        .collect()
}

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The size of the future `f` returns, without calling it.
fn future_size<A, B, F, Fut>(_: &F) -> usize
where
    F: FnOnce(A, B) -> Fut,
{
    std::mem::size_of::<Fut>()
}

fn print_sizes() {
    use std::mem::size_of;
    println!("## sizes (bytes)");
    println!(
        "run_websocket::<AntMedia> future   {}",
        future_size(&|s: axum::extract::ws::WebSocket, w: WsSession<AntMedia>| {
            run_websocket::<AntMedia>(s, w)
        })
    );
    println!(
        "run_websocket::<Raw> future        {}",
        future_size(&|s: axum::extract::ws::WebSocket, w: WsSession<Raw>| {
            run_websocket::<Raw>(s, w)
        })
    );
    println!(
        "run_websocket::<SocketIoWs> future {}",
        future_size(
            &|s: axum::extract::ws::WebSocket, w: WsSession<SocketIoWs>| {
                run_websocket::<SocketIoWs>(s, w)
            }
        )
    );
    println!(
        "WsSession<AntMedia>                {}",
        size_of::<WsSession<AntMedia>>()
    );
    println!(
        "axum WebSocket                     {}",
        size_of::<axum::extract::ws::WebSocket>()
    );
    println!(
        "axum ws Message                    {}",
        size_of::<axum::extract::ws::Message>()
    );
    println!(
        "hyper Upgraded                     {}",
        size_of::<hyper::upgrade::Upgraded>()
    );
    println!(
        "gateway Outbound (queue item)      {}",
        size_of::<switchboard::gateway::Outbound>()
    );
    println!(
        "tracing Span                       {}",
        size_of::<tracing::Span>()
    );
    println!(
        "tokio Sleep                        {}",
        size_of::<tokio::time::Sleep>()
    );
    println!(
        "CancellationToken                  {}",
        size_of::<tokio_util::sync::CancellationToken>()
    );
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let sessions: i64 = arg(&args, "--sessions").map_or(Ok(1000), |s| s.parse())?;
    let config = match arg(&args, "--config") {
        Some(path) => GatewayConfig::load(std::path::Path::new(&path))?,
        None => GatewayConfig::from_toml(switchboard::config::DEFAULT_CONFIG)?,
    };
    // As `bench/run.sh` runs the gateway (RUST_LOG=warn) unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    print_sizes();
    println!("pid {}", std::process::id());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let running = switchboard::start(config).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (before, rss_before) = (snapshot(), rss_kib());
        let registry = || running.gateway().registry().len() as i64;
        while registry() < sessions {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Let the last sessions finish their first reads and writes.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (after, rss_after) = (snapshot(), rss_kib());
        let open = registry();
        report(&before, &after, open, rss_after - rss_before);
        running.shutdown();
        running.wait().await
    })
}

fn report(before: &[(i64, i64)], after: &[(i64, i64)], open: i64, rss_kib: i64) {
    let per = |x: i64| x as f64 / open as f64;
    println!("## {open} sessions: heap blocks that appeared, per session");
    println!("| block size (bytes) | blocks | bytes |");
    println!("|---|---:|---:|");
    let (mut count, mut bytes) = (0, 0);
    for (b, ((c0, b0), (c1, b1))) in before.iter().zip(after).enumerate() {
        let (dc, db) = (c1 - c0, b1 - b0);
        count += dc;
        bytes += db;
        if per(dc).abs() >= 0.05 {
            let size = if b == BUCKETS - 1 {
                format!("> {TRACKED}")
            } else {
                format!("{}-{}", (b.max(1) - 1) * STEP + 1, b * STEP)
            };
            println!("| {size} | {:.2} | {:.0} |", per(dc), per(db));
        }
    }
    println!(
        "live heap per session: {:.2} blocks, {:.0} bytes ({:.2} KiB)",
        per(count),
        per(bytes),
        per(bytes) / 1024.0
    );
    println!(
        "RSS per session: {:.2} KiB ({} KiB in all)",
        per(rss_kib),
        rss_kib
    );
}
