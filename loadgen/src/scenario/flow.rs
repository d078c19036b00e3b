//! Steady relay load between established pairs: `throughput` (each direction keeps a bounded
//! window of messages in flight, as fast as the server relays them) and `latency` (a fixed
//! offered rate, one-way latency from the send time each message carries).
//!
//! Every message is a realistic signal (one Chrome offer or answer, then seven trickled
//! candidates, over and over) tagged with pair, side, sequence number and send time. Each
//! receiver checks that it gets exactly its partner's messages, in order, none twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ANT_PING, Conn, Dialect, EIO_PONG, FrameTemplate, Target, Ws};
use crate::clock::{cpu_secs, cpu_secs_each, now_ns};
use crate::sdp::{Kind, Tag};
use crate::stats::{Percentiles, percentiles};

/// One SDP every this many messages; the others are candidates.
pub const SDP_EVERY: u64 = 8;
/// How long receivers wait after the senders stop for the last messages.
const DRAIN: Duration = Duration::from_secs(5);
/// Warm-up before the measured window (connections, allocator, caches).
const WARMUP: Duration = Duration::from_secs(1);
/// Ant SDK keep-alive period.
const ANT_PING_EVERY: Duration = Duration::from_secs(3);

/// How the senders pace themselves.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// At most this many unacknowledged messages per direction.
    Window(usize),
    /// This many messages per second in total, spread evenly over every sender.
    Rate(f64),
    /// `burst`: side A of every pair sends this many messages as fast as its socket takes them
    /// (no window), side B only reads. Ends when everything arrived or nothing more does.
    Burst(u64),
}

/// How long a burst receiver waits for more once its sender is done.
const BURST_IDLE: Duration = Duration::from_secs(10);
/// The longest a burst may take.
const BURST_CAP: Duration = Duration::from_secs(300);

/// A throughput or latency run.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Where.
    pub target: Target,
    /// Which dialect every client speaks.
    pub dialect: Dialect,
    /// Pairs.
    pub pairs: u32,
    /// Measured seconds (after a one-second warm-up).
    pub secs: f64,
    /// Pacing.
    pub pace: Pace,
    /// The server's processes (one gateway, or two cluster nodes and their Redis), to report
    /// the CPU time they spend per message, summed.
    pub server_pids: Vec<u32>,
}

/// Results of a flow run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlowReport {
    /// `throughput` or `latency`.
    pub scenario: String,
    /// Server kind.
    pub server: String,
    /// Dialect.
    pub dialect: String,
    /// Pairs.
    pub pairs: u32,
    /// Measured seconds.
    pub secs: f64,
    /// Window per direction (throughput).
    pub window: Option<usize>,
    /// Offered rate (latency), messages per second.
    pub offered_rate: Option<f64>,
    /// Messages sent (whole run).
    pub sent: u64,
    /// Messages received, in order, by the right peer (whole run).
    pub delivered: u64,
    /// Delivered during the measured window.
    pub delivered_in_window: u64,
    /// Delivered messages per second in the window.
    pub msgs_per_sec: f64,
    /// Delivered payload megabytes per second in the window.
    pub mbytes_per_sec: f64,
    /// Sent but never received.
    pub lost: u64,
    /// Received by a peer they were not addressed to.
    pub misrouted: u64,
    /// Received twice.
    pub duplicated: u64,
    /// Received after a later message of the same sender.
    pub out_of_order: u64,
    /// Connections the server closed (or that failed) before their messages were all through.
    pub disconnected: u64,
    /// Tagged frames whose shape did not match their sequence number.
    pub malformed: u64,
    /// Error notices from the server.
    pub errors: u64,
    /// The first error notice or failure, if any.
    pub first_error: Option<String>,
    /// One-way latency of messages sent in the window.
    pub latency: Option<Percentiles>,
    /// Server CPU time (user + system) during the window, in cores (CPU seconds per second).
    pub server_cpu_cores: Option<f64>,
    /// Server CPU time per delivered message in the window, µs.
    pub server_cpu_us_per_msg: Option<f64>,
    /// The same per process, in the order of `--target` (a cluster: node A, node B, Redis), so
    /// the cost of a hop can be split by where it is paid. Absent with a single process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_msg_each: Option<Vec<f64>>,
    /// This load generator's CPU during the window, in cores.
    pub loadgen_cpu_cores: Option<f64>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    delivered: AtomicU64,
    in_window: AtomicU64,
    bytes_in_window: AtomicU64,
    misrouted: AtomicU64,
    duplicated: AtomicU64,
    out_of_order: AtomicU64,
    disconnected: AtomicU64,
    /// [`now_ns`] of the latest delivery (burst: the end of the run).
    last_delivery_ns: AtomicU64,
    malformed: AtomicU64,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, text: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(text.into());
        }
    }
}

/// One direction of a pair: what its sender sent and how many more it may send.
#[derive(Debug)]
struct Direction {
    window: Semaphore,
    sent: AtomicU64,
    done: AtomicBool,
}

type Sink = Arc<Mutex<SplitSink<Ws, Message>>>;

/// The measured window, in [`now_ns`] time.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ns: u64,
    end_ns: u64,
    end: Instant,
}

/// Runs a throughput or latency scenario.
pub async fn run(cfg: FlowConfig) -> anyhow::Result<FlowReport> {
    anyhow::ensure!(
        cfg.target.server.speaks(cfg.dialect),
        "{} does not speak {}",
        cfg.target.server.as_str(),
        cfg.dialect.as_str()
    );
    let pairs = client_pairs(&cfg).await?;
    let counters = Arc::new(Counters::default());
    let secs = Duration::from_secs_f64(cfg.secs.max(0.1));
    let t0 = Instant::now() + Duration::from_millis(200);
    let burst = matches!(cfg.pace, Pace::Burst(_));
    let window = if burst {
        // Everything counts, from the first message to the last delivery.
        let start_ns = now_ns() + 200_000_000;
        Window {
            start_ns,
            end_ns: start_ns + BURST_CAP.as_nanos() as u64,
            end: t0 + BURST_CAP,
        }
    } else {
        let start_ns = now_ns() + 200_000_000 + WARMUP.as_nanos() as u64;
        Window {
            start_ns,
            end_ns: start_ns + secs.as_nanos() as u64,
            end: t0 + WARMUP + secs,
        }
    };
    let senders = 2 * pairs.len();
    let mut tasks = Vec::new();
    for (p, (room, a, b)) in pairs.into_iter().enumerate() {
        let p = p as u32;
        let (a_sink, a_stream) = a.ws.split();
        let (b_sink, b_stream) = b.ws.split();
        let sinks = [Arc::new(Mutex::new(a_sink)), Arc::new(Mutex::new(b_sink))];
        let permits = match cfg.pace {
            Pace::Window(w) => w,
            Pace::Rate(_) | Pace::Burst(_) => 0,
        };
        let dirs: [Arc<Direction>; 2] = std::array::from_fn(|_| {
            Arc::new(Direction {
                window: Semaphore::new(permits),
                sent: AtomicU64::new(0),
                done: AtomicBool::new(false),
            })
        });
        for (side, stream) in [(0u8, a_stream), (1u8, b_stream)] {
            let s = usize::from(side);
            let sender = Sender {
                dialect: cfg.dialect,
                frames: Frames::new(cfg.dialect, &room, side, burst),
                sdp_only: burst,
                pair: p,
                side,
                sink: sinks[s].clone(),
                dir: dirs[s].clone(),
                counters: counters.clone(),
            };
            let pace = match cfg.pace {
                Pace::Window(w) => SenderPace::Window(w),
                Pace::Burst(m) => SenderPace::Burst(if side == 0 { m } else { 0 }),
                Pace::Rate(rate) => {
                    let interval = senders as f64 / rate.max(1.0);
                    let offset = interval * (2 * p as usize + s) as f64 / senders as f64;
                    SenderPace::Rate {
                        interval: Duration::from_secs_f64(interval),
                        first: t0 + Duration::from_secs_f64(offset),
                    }
                }
            };
            tasks.push(tokio::spawn(sender.run(pace, t0, window.end)));
            let receiver = Receiver {
                pair: p,
                from_side: 1 - side,
                from: dirs[1 - s].clone(),
                own: dirs[s].clone(),
                own_sink: sinks[s].clone(),
                counters: counters.clone(),
                record_latency: matches!(cfg.pace, Pace::Rate(_)),
                idle_limit: burst.then_some(BURST_IDLE),
                sdp_only: burst,
            };
            tasks.push(tokio::spawn(receiver.run(stream, window)));
        }
    }
    let cpu_before = (
        cpu_secs_each(&cfg.server_pids),
        cpu_secs(std::process::id()),
    );
    let cpu = (!burst)
        .then(|| tokio::spawn(cpu_during(cfg.server_pids.clone(), t0 + WARMUP, window.end)));
    let mut samples = Vec::new();
    let mut lost = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(outcome)) => {
                samples.extend(outcome.samples);
                lost += outcome.lost;
            }
            Ok(Err(e)) => counters.error(format!("{e:#}")),
            Err(e) => counters.error(format!("task failed: {e}")),
        }
    }
    let c = &counters;
    let (server_cpu, own_cpu) = match cpu {
        Some(cpu) => cpu.await.unwrap_or_default(),
        None => {
            let after = (
                cpu_secs_each(&cfg.server_pids),
                cpu_secs(std::process::id()),
            );
            (
                diff_each(cpu_before.0, after.0),
                diff(cpu_before.1, after.1),
            )
        }
    };
    let in_window = c.in_window.load(Ordering::Relaxed);
    let per_msg = |s: f64| s * 1e6 / in_window.max(1) as f64;
    let server_cpu_total = server_cpu.as_ref().map(|each| each.iter().sum::<f64>());
    let measured = if burst {
        // From the first message to the last delivery.
        let last = c.last_delivery_ns.load(Ordering::Relaxed);
        (last.saturating_sub(window.start_ns) as f64 / 1e9).max(1e-3)
    } else {
        secs.as_secs_f64()
    };
    let first_error = c
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(FlowReport {
        scenario: match cfg.pace {
            Pace::Window(_) => "throughput",
            Pace::Rate(_) => "latency",
            Pace::Burst(_) => "burst",
        }
        .to_owned(),
        server: cfg.target.server.as_str().to_owned(),
        dialect: cfg.dialect.as_str().to_owned(),
        pairs: cfg.pairs,
        secs: measured,
        window: match cfg.pace {
            Pace::Window(w) => Some(w),
            Pace::Rate(_) | Pace::Burst(_) => None,
        },
        offered_rate: match cfg.pace {
            Pace::Rate(r) => Some(r),
            Pace::Window(_) | Pace::Burst(_) => None,
        },
        sent: c.sent.load(Ordering::Relaxed),
        delivered: c.delivered.load(Ordering::Relaxed),
        delivered_in_window: in_window,
        msgs_per_sec: in_window as f64 / measured,
        mbytes_per_sec: c.bytes_in_window.load(Ordering::Relaxed) as f64 / measured / 1e6,
        lost,
        misrouted: c.misrouted.load(Ordering::Relaxed),
        duplicated: c.duplicated.load(Ordering::Relaxed),
        out_of_order: c.out_of_order.load(Ordering::Relaxed),
        disconnected: c.disconnected.load(Ordering::Relaxed),
        malformed: c.malformed.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
        first_error,
        latency: matches!(cfg.pace, Pace::Rate(_)).then(|| percentiles(samples)),
        server_cpu_cores: server_cpu_total.map(|s| s / measured),
        server_cpu_us_per_msg: server_cpu_total.map(per_msg),
        server_cpu_us_per_msg_each: server_cpu
            .filter(|each| each.len() > 1)
            .map(|each| each.into_iter().map(per_msg).collect()),
        loadgen_cpu_cores: own_cpu.map(|s| s / measured),
    })
}

/// CPU seconds each of the server's processes (`pids`, in order) and this process use between
/// `from` and `to`.
async fn cpu_during(pids: Vec<u32>, from: Instant, to: Instant) -> (Option<Vec<f64>>, Option<f64>) {
    let me = std::process::id();
    tokio::time::sleep_until(from).await;
    let before = (cpu_secs_each(&pids), cpu_secs(me));
    tokio::time::sleep_until(to).await;
    let after = (cpu_secs_each(&pids), cpu_secs(me));
    (diff_each(before.0, after.0), diff(before.1, after.1))
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// Per process CPU seconds between two readings of the same processes.
fn diff_each(a: Option<Vec<f64>>, b: Option<Vec<f64>>) -> Option<Vec<f64>> {
    Some(a?.iter().zip(b?).map(|(a, b)| b - a).collect())
}

async fn client_pairs(cfg: &FlowConfig) -> anyhow::Result<Vec<(String, Conn, Conn)>> {
    super::connect_pairs(&cfg.target, cfg.dialect, cfg.pairs, 64).await
}

/// What a message with sequence number `seq` from `side` is: in a burst (`sdp_only`) every
/// message is an offer (the large signal, about 6 KB), otherwise an offer or answer every
/// [`SDP_EVERY`] messages and candidates between.
fn kind_in(sdp_only: bool, seq: u64, side: u8) -> Kind {
    if sdp_only {
        return Kind::Offer;
    }
    kind_of(seq, side)
}

/// What a message with sequence number `seq` from `side` is in steady flows.
fn kind_of(seq: u64, side: u8) -> Kind {
    match (seq % SDP_EVERY, side) {
        (0, 0) => Kind::Offer,
        (0, _) => Kind::Answer,
        _ => Kind::Candidate,
    }
}

enum SenderPace {
    Window(usize),
    Rate {
        interval: Duration,
        first: Instant,
    },
    /// Send this many, as fast as the socket takes them.
    Burst(u64),
}

/// Messages a burst sender writes before each flush.
const BURST_BATCH: u64 = 16;

/// How many candidate frames a sender cycles through (four shapes on three m-lines).
const CANDIDATE_SHAPES: u64 = 12;

/// The frames one side sends, built once: its offer or answer and its candidates.
struct Frames {
    sdp: FrameTemplate,
    candidates: Vec<FrameTemplate>,
}

impl Frames {
    fn new(dialect: Dialect, room: &str, side: u8, sdp_only: bool) -> Self {
        let offerer = side == 0;
        let sdp_kind = kind_in(sdp_only, 0, side);
        Frames {
            sdp: FrameTemplate::new(dialect, room, sdp_kind, 0, offerer),
            candidates: (0..CANDIDATE_SHAPES)
                .map(|n| FrameTemplate::new(dialect, room, Kind::Candidate, n, offerer))
                .collect(),
        }
    }

    fn get(&self, kind: Kind, seq: u64) -> &FrameTemplate {
        match kind {
            Kind::Offer | Kind::Answer => &self.sdp,
            // The index is below the vector's length by construction.
            Kind::Candidate => &self.candidates[(seq % CANDIDATE_SHAPES) as usize],
        }
    }
}

struct Sender {
    dialect: Dialect,
    frames: Frames,
    /// Burst: every message an offer.
    sdp_only: bool,
    pair: u32,
    side: u8,
    sink: Sink,
    dir: Arc<Direction>,
    counters: Arc<Counters>,
}

impl Sender {
    fn frame(&self, seq: u64) -> Message {
        let tag = Tag {
            pair: self.pair,
            side: self.side,
            seq,
            sent_ns: now_ns(),
        };
        let kind = kind_in(self.sdp_only, seq, self.side);
        Message::text(self.frames.get(kind, seq).render(&tag))
    }

    async fn run(self, pace: SenderPace, t0: Instant, end: Instant) -> anyhow::Result<Outcome> {
        let result = self.send_loop(pace, t0, end).await;
        self.dir.done.store(true, Ordering::Release);
        result.map(|()| Outcome::default())
    }

    async fn send_loop(&self, pace: SenderPace, t0: Instant, end: Instant) -> anyhow::Result<()> {
        tokio::time::sleep_until(t0).await;
        let mut seq = 0u64;
        let mut next_ping = Instant::now() + ANT_PING_EVERY;
        let mut next_send = match pace {
            SenderPace::Rate { first, .. } => first,
            SenderPace::Window(_) | SenderPace::Burst(_) => t0,
        };
        loop {
            let batch = match pace {
                SenderPace::Burst(total) => {
                    if seq >= total {
                        break;
                    }
                    BURST_BATCH.min(total - seq) as usize
                }
                SenderPace::Window(w) => {
                    let Ok(permit) = tokio::time::timeout_at(end, self.dir.window.acquire()).await
                    else {
                        break;
                    };
                    permit?.forget();
                    let mut n = 1;
                    while n < w.min(16) {
                        match self.dir.window.try_acquire() {
                            Ok(p) => {
                                p.forget();
                                n += 1;
                            }
                            Err(_) => break,
                        }
                    }
                    n
                }
                SenderPace::Rate { interval, .. } => {
                    if next_send >= end {
                        break;
                    }
                    tokio::time::sleep_until(next_send).await;
                    next_send += interval;
                    1
                }
            };
            let mut sink = self.sink.lock().await;
            for _ in 0..batch {
                // Counted before the write, so a receiver never sees more than was sent.
                self.dir.sent.fetch_add(1, Ordering::AcqRel);
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                client::bounded(sink.feed(self.frame(seq))).await?;
                seq += 1;
            }
            if self.dialect == Dialect::Ant && Instant::now() >= next_ping {
                next_ping += ANT_PING_EVERY;
                client::bounded(sink.feed(Message::text(ANT_PING))).await?;
            }
            client::bounded(sink.flush()).await?;
            if Instant::now() >= end {
                break;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Outcome {
    samples: Vec<u64>,
    lost: u64,
}

struct Receiver {
    pair: u32,
    from_side: u8,
    from: Arc<Direction>,
    /// This side's own sending direction: the socket closes only once its sender is done.
    own: Arc<Direction>,
    own_sink: Sink,
    counters: Arc<Counters>,
    record_latency: bool,
    /// Burst: stop once the partner's sender is done and nothing arrived for this long.
    idle_limit: Option<Duration>,
    /// Burst: every message an offer.
    sdp_only: bool,
}

impl Receiver {
    /// Whether the partner's sender is done and everything it sent has arrived.
    fn complete(&self, unique: u64) -> bool {
        self.from.done.load(Ordering::Acquire) && unique >= self.from.sent.load(Ordering::Acquire)
    }

    async fn run(self, mut stream: SplitStream<Ws>, window: Window) -> anyhow::Result<Outcome> {
        let c = &self.counters;
        let mut next = 0u64;
        let mut unique = 0u64;
        let mut samples = Vec::new();
        let give_up = window.end + DRAIN;
        let mut progress = Instant::now();
        loop {
            if self.complete(unique) {
                break;
            }
            let frame = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
            let text = match frame {
                Err(_) => {
                    let idle = self.idle_limit.is_some_and(|limit| {
                        self.from.done.load(Ordering::Acquire) && progress.elapsed() >= limit
                    });
                    if idle || Instant::now() >= give_up {
                        break;
                    }
                    continue;
                }
                Ok(None | Some(Ok(Message::Close(_)))) => {
                    // The partner may close first once it has everything (relays without
                    // rooms close both ends); that is only a failure if messages are missing.
                    if !self.complete(unique) {
                        c.disconnected.fetch_add(1, Ordering::Relaxed);
                        c.error("server closed the connection");
                    }
                    break;
                }
                Ok(Some(Err(e))) => {
                    if !self.complete(unique) {
                        c.disconnected.fetch_add(1, Ordering::Relaxed);
                        c.error(format!("read failed: {e}"));
                    }
                    break;
                }
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
            };
            let Some((tag, in_sdp)) = client::fast_tag(&text) else {
                if text.as_str() == "2" {
                    let mut sink = self.own_sink.lock().await;
                    client::bounded(sink.send(Message::text(EIO_PONG))).await?;
                } else if client::is_error_frame(&text) {
                    c.error(text.chars().take(200).collect::<String>());
                }
                continue;
            };
            let recv_ns = now_ns();
            if tag.pair != self.pair || tag.side != self.from_side {
                c.misrouted.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if in_sdp != kind_in(self.sdp_only, tag.seq, tag.side).is_sdp() {
                c.malformed.fetch_add(1, Ordering::Relaxed);
            }
            if tag.seq < next {
                c.duplicated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if tag.seq > next {
                c.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            next = tag.seq + 1;
            unique += 1;
            progress = Instant::now();
            c.last_delivery_ns.fetch_max(recv_ns, Ordering::Relaxed);
            self.from.window.add_permits(1);
            c.delivered.fetch_add(1, Ordering::Relaxed);
            if (window.start_ns..window.end_ns).contains(&recv_ns) {
                c.in_window.fetch_add(1, Ordering::Relaxed);
                c.bytes_in_window
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
            }
            if self.record_latency && (window.start_ns..window.end_ns).contains(&tag.sent_ns) {
                samples.push(recv_ns.saturating_sub(tag.sent_ns));
            }
        }
        let lost = self
            .from
            .sent
            .load(Ordering::Acquire)
            .saturating_sub(unique);
        while !self.own.done.load(Ordering::Acquire) && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Best effort: a polite close.
        let _ = client::bounded(self.own_sink.lock().await.close()).await;
        Ok(Outcome { samples, lost })
    }
}
