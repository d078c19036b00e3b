//! The binary's allocator and the runtime that returns its freed memory (a module of `main.rs`,
//! not of the library: the library leaves the global allocator to whoever links it).
//!
//! mimalloc returns a freed page to the OS only when the thread that owns it allocates or frees
//! in that part of its heap again after the purge delay. A worker that goes idle after a burst of
//! connections (handshakes, long-polling requests, their buffers) kept that memory in the
//! process's RSS for as long as it stayed idle. So a worker that has rested (stayed parked for
//! [`REST`]) purges its heap when it parks again; a worker that parks after work arranges to
//! be woken after [`REST`] to find out. A busy worker never rests and never purges: a forced
//! purge also returns the pages a busy node takes back at once (a cluster node's bundle
//! buffers, which the purge delay is there for), and purging at each park cost a cluster node
//! CPU per message (BENCHMARKS.md, "Lean idle sessions").

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// How long a worker stays parked before it counts as idle and purges its heap.
const REST: Duration = Duration::from_secs(1);

/// Wake-ups [`wake_workers_later`] gives at most, [`REST`] apart, while a worker still owes a
/// purge (one that parked after work and was not woken since: tokio wakes whichever worker it
/// chooses).
const WAKE_ROUNDS: u32 = 8;

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
/// workers purge their heaps once they have rested ([`worker_parks`], [`worker_unparks`]).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(worker_parks)
        .on_thread_unpark(worker_unparks)
        .build()
}

/// Workers that parked after work and have not purged since.
static OWING: AtomicUsize = AtomicUsize::new(0);
/// Set while [`wake_workers_later`] runs.
static WAKE_PENDING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// When this worker last parked.
    static PARKED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Its last park lasted [`REST`] or more.
    static RESTED: Cell<bool> = const { Cell::new(false) };
    /// It worked since it last purged.
    static OWES: Cell<bool> = const { Cell::new(false) };
}

/// A worker wakes: was it idle long enough to count as rested?
fn worker_unparks() {
    if let Some(at) = PARKED_AT.take() {
        RESTED.set(at.elapsed() >= REST);
    }
}

/// A worker parks: a rested one that owes a purge purges; one that worked owes one, and is
/// woken after [`REST`] to see whether it rested.
fn worker_parks() {
    PARKED_AT.set(Some(Instant::now()));
    match (RESTED.replace(false), OWES.get()) {
        (true, true) => {
            OWES.set(false);
            OWING.fetch_sub(1, Ordering::AcqRel);
            purge_own_heap();
        }
        (_, owes) => {
            if !owes {
                OWES.set(true);
                OWING.fetch_add(1, Ordering::AcqRel);
            }
            if !WAKE_PENDING.swap(true, Ordering::AcqRel) {
                // tokio's hook runs within the runtime's context, where spawning is allowed.
                tokio::spawn(wake_workers_later());
            }
        }
    }
}

/// Returns the calling thread's freed pages to the OS.
#[allow(unsafe_code)] // One call into mimalloc's C API, which has no safe wrapper.
fn purge_own_heap() {
    // SAFETY: `mi_collect` acts on the calling thread's own heap and mimalloc's shared arenas,
    // which it locks itself; a forced collect also returns freed segment pages.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Every [`REST`] while a worker owes a purge (at most [`WAKE_ROUNDS`] times), gives every
/// worker a task: a worker that wakes and finds it parked for [`REST`] purges when it parks
/// again (tasks spawned by a worker wake the others to take them).
async fn wake_workers_later() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    loop {
        for _ in 0..WAKE_ROUNDS {
            tokio::time::sleep(REST).await;
            if OWING.load(Ordering::Acquire) == 0 {
                break;
            }
            for _ in 0..workers {
                tokio::spawn(async {});
            }
        }
        WAKE_PENDING.store(false, Ordering::Release);
        // A worker that began to owe while this ended saw it pending: go on for it.
        if OWING.load(Ordering::Acquire) == 0 || WAKE_PENDING.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}
