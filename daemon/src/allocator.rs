//! The binary's allocator and the runtime that returns its freed memory (a module of `main.rs`,
//! not of the library: the library leaves the global allocator to whoever links it).
//!
//! mimalloc returns a freed page to the OS only when the thread that owns it allocates or frees
//! in that part of its heap again after the purge delay. A worker that goes idle after a burst of
//! connections (handshakes, long-polling requests, their buffers) kept that memory in the
//! process's RSS for as long as it stayed idle. Each worker now purges its own heap when it
//! parks, at most once per [`PURGE_INTERVAL`]: while it is busy nothing changes, and what a burst
//! freed goes back to the OS soon after the burst (BENCHMARKS.md, "Lean idle sessions").

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// mimalloc, not glibc's malloc: a relayed frame is allocated on the reading session's worker
/// thread and freed on the writing one's, and glibc then takes the other arena's lock (futex
/// waits under load); mimalloc frees across threads without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in its v2 `mimalloc.h`, which
/// libmimalloc-sys does not name): how long freed pages wait before they go back to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Purge delay in milliseconds (mimalloc's default: 10). A cluster node's Redis traffic frees
/// and takes back large buffers (a bundle of a hundred frames, the client's pipeline and reply
/// buffers) many times a second; returned at once, every reuse page-faults them back in.
/// Measured in `bench/run.sh --cluster` (BENCHMARKS.md, "Bundles per destination node").
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// The least time between two purges of one worker's heap. A purge visits every page of the
/// heap, so it is not done at every park of a worker that parks between messages; a worker that
/// parks for good within this of its last purge keeps what it freed since (BENCHMARKS.md).
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Sets the allocator's options, before any other thread runs; `MIMALLOC_PURGE_DELAY` in the
/// environment still wins (mimalloc reads it when the option is first used, unless set here).
#[allow(unsafe_code)] // One call into mimalloc's C API, which has no safe wrapper.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` only stores a process-wide integer option; it is called once,
        // at start-up, with an option id and value mimalloc defines.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// The gateway's runtime: tokio's multi-threaded one, as `Runtime::new` builds it, whose
/// workers purge their heaps when they park ([`purge_parked_worker`]).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(purge_parked_worker)
        .build()
}

/// Set while [`wake_workers_later`] is pending.
static WAKE_PENDING: AtomicBool = AtomicBool::new(false);

/// Returns the calling worker's freed pages to the OS, unless it did so within
/// [`PURGE_INTERVAL`]; then it may be parking for good with what it freed since, so the workers
/// are woken once the interval has passed ([`wake_workers_later`]) and each purges as it parks
/// again.
#[allow(unsafe_code)] // One call into mimalloc's C API, which has no safe wrapper.
fn purge_parked_worker() {
    thread_local! {
        static LAST_PURGE: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    if purge_due(LAST_PURGE.get(), now) {
        LAST_PURGE.set(Some(now));
        // SAFETY: `mi_collect` acts on the calling thread's own heap and mimalloc's shared
        // arenas, which it locks itself; a forced collect also returns freed segment pages.
        unsafe { libmimalloc_sys::mi_collect(true) };
    } else if !WAKE_PENDING.swap(true, Ordering::AcqRel) {
        // tokio's hook runs within the runtime's context, where spawning is allowed.
        tokio::spawn(wake_workers_later());
    }
}

/// Whether a worker that last purged at `last` purges when it parks at `now`.
fn purge_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.duration_since(at) >= PURGE_INTERVAL)
}

/// After [`PURGE_INTERVAL`], gives every worker a task: a worker that wakes parks again when it
/// is done, which runs [`purge_parked_worker`] on it (tasks spawned by a worker wake the others
/// to take them).
async fn wake_workers_later() {
    tokio::time::sleep(PURGE_INTERVAL).await;
    WAKE_PENDING.store(false, Ordering::Release);
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    for _ in 0..workers {
        tokio::spawn(async {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_purges_at_its_first_park_and_then_at_most_once_per_interval() {
        let start = Instant::now();
        assert!(purge_due(None, start));
        assert!(!purge_due(Some(start), start));
        assert!(!purge_due(Some(start), start + PURGE_INTERVAL / 2));
        assert!(purge_due(Some(start), start + PURGE_INTERVAL));
    }
}
