//! The threaded part of the pipeline benchmark: T threads, each dispatching the call workload
//! into a room of its own through the gateway's dispatcher (room lock, pipeline, queuing the
//! deliveries), each also draining its receiver's queue as the receiving session would.
//! Events of different rooms share no lock the dispatcher holds while a plugin runs, so the
//! throughput should grow with T as long as T cores are free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use switchboard::GatewayConfig;
use switchboard::envelope::Envelope;
use switchboard::gateway::{Gateway, SessionHandle};
use switchboard::pipeline::Pipeline;
use switchboard_plugin_api::{Peer, Plugin};
use switchboard_protocol::{DialectKind, Event, Join, JoinMode};
use tokio_util::sync::CancellationToken;

/// One measurement: events dispatched per second of wall time, and the cores the process used
/// meanwhile (its CPU time over the wall time).
#[derive(Clone, Copy)]
pub struct Throughput {
    pub events_per_sec: f64,
    pub cores: f64,
}

fn cpu_secs() -> f64 {
    let stat = procfs::process::Process::myself()
        .and_then(|p| p.stat())
        .expect("/proc/self/stat is readable");
    #[allow(clippy::cast_precision_loss)]
    let ticks = (stat.utime + stat.stime) as f64;
    #[allow(clippy::cast_precision_loss)]
    let per_sec = procfs::ticks_per_second() as f64;
    ticks / per_sec
}

fn dispatch(gateway: &Gateway, from: Peer, event: Event) {
    let out = gateway
        .dispatcher()
        .dispatch(Envelope {
            from,
            event,
            original: None,
            app: None,
        })
        .now_or_never()
        .expect("no [cluster]: a dispatch never waits");
    assert!(out.refusal.is_none(), "the workload is routed, not refused");
    assert!(
        out.blocked.is_empty(),
        "the receivers are drained after every event"
    );
}

/// A room of two joined sessions for one thread.
struct Pair {
    peers: [Peer; 2],
    handles: [SessionHandle; 2],
}

fn pair(gateway: &Gateway, room: &str) -> Pair {
    let dialects = [DialectKind::Antmedia, DialectKind::Raw];
    let handles = dialects.map(|d| gateway.register(d, None));
    let peers = [0, 1].map(|i| Peer {
        session: handles[i].id,
        dialect: dialects[i],
        mode: JoinMode::Both,
    });
    let join = Event::Join(Join {
        room: room.to_owned(),
        mode: JoinMode::Both,
        token: None,
    });
    for p in peers {
        dispatch(gateway, p, join.clone());
    }
    let mut pair = Pair { peers, handles };
    pair.drain();
    pair
}

impl Pair {
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for h in &mut self.handles {
            while h.rx.try_recv().is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// Runs `workload(room)` in cycles on each of `threads` threads, each in its own room
/// (`{prefix}-t{n}`), through a fresh gateway on the pipeline `plugins()` builds, for `window`
/// of wall time (every thread stops at the same moment, so a thread the machine ran less
/// than the other does not leave it idling at the end of the round).
pub fn measure(
    plugins: &dyn Fn() -> Vec<Box<dyn Plugin>>,
    prefix: &str,
    threads: usize,
    window: Duration,
    workload: &dyn Fn(&str) -> Vec<(usize, Event)>,
) -> Throughput {
    let config = Arc::new(GatewayConfig::parse("").expect("the default config parses"));
    let gateway = Gateway::new(config, Pipeline::new(plugins()), CancellationToken::new());
    let mut pairs: Vec<(Pair, Vec<(usize, Event)>)> = (0..threads)
        .map(|t| {
            let room = format!("{prefix}-t{t}");
            (pair(&gateway, &room), workload(&room))
        })
        .collect();
    let start = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let (elapsed, cpu, events) = std::thread::scope(|s| {
        let workers: Vec<_> = pairs
            .iter_mut()
            .map(|(pair, events)| {
                let (gateway, start, stop) = (&gateway, &start, &stop);
                s.spawn(move || {
                    start.wait();
                    let (mut sent, mut delivered) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        for (who, event) in events.iter() {
                            dispatch(gateway, pair.peers[*who], event.clone());
                            delivered += pair.drain();
                        }
                        sent += events.len();
                    }
                    assert_eq!(delivered, sent, "each event reaches the partner");
                    sent
                })
            })
            .collect();
        let cpu_before = cpu_secs();
        start.wait();
        let began = Instant::now();
        std::thread::sleep(window);
        stop.store(true, Ordering::Relaxed);
        let events: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        (began.elapsed(), cpu_secs() - cpu_before, events)
    });
    throughput(events, elapsed, cpu)
}

fn throughput(events: usize, elapsed: Duration, cpu: f64) -> Throughput {
    let wall = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let events = events as f64;
    Throughput {
        events_per_sec: events / wall,
        cores: cpu / wall,
    }
}
