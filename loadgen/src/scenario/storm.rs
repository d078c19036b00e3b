//! Call-setup storm: K pairs at once, each completing join → start → offer → answer → trickled
//! candidates (six from the offerer, two from the answerer, as Chrome gathers them), and an Ant
//! `ping`/`pong` and `getIceServerConfig` on the way, as the SDK does. Every frame a client gets
//! is parsed and checked in full; the report counts what was lost, misrouted, duplicated,
//! reordered or unexpected (all must be zero).
//!
//! Who offers is the server's call: the client told to `start` offers, the other answers the
//! offer it receives. Two socket.io peers have no `start` (the classic page dials by hand), so
//! side A dials once both are connected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{
    self, ANT_ICE_REQUEST, ANT_PING, Conn, Dialect, EIO_PONG, Inbound, Server, Target,
};
use crate::clock::now_ns;
use crate::sdp::{Kind, Tag};
use crate::stats::percentiles;

/// Candidates the offerer trickles (labels 0, 1, 2 over IPv4 and IPv6 before BUNDLE).
pub const OFFERER_CANDIDATES: u64 = 6;
/// Candidates the answerer trickles (bundled: one m-line).
pub const ANSWERER_CANDIDATES: u64 = 2;

/// The dialects of a storm's pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StormDialects {
    /// Every client speaks this dialect.
    Single(Dialect),
    /// Pairs cycle through every ordered pair of dialects (A, B).
    Mixed,
}

impl StormDialects {
    /// Parses `ant`, `socketio`, `raw` or `mixed`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(if s == "mixed" {
            StormDialects::Mixed
        } else {
            match Dialect::parse(s)? {
                Dialect::Peerjs => anyhow::bail!(
                    "the storm runs pairs the server pairs in rooms; PeerJS pairs call each other by id (throughput, latency, burst and idle run them)"
                ),
                d => StormDialects::Single(d),
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            StormDialects::Single(d) => d.as_str(),
            StormDialects::Mixed => "mixed",
        }
    }

    fn of_pair(self, p: u32) -> [Dialect; 2] {
        match self {
            StormDialects::Single(d) => [d, d],
            StormDialects::Mixed => {
                let all = Dialect::ALL;
                let i = p as usize % 9;
                [all[i / 3], all[i % 3]]
            }
        }
    }
}

/// A storm run.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Where.
    pub target: Target,
    /// Dialects of the pairs.
    pub dialects: StormDialects,
    /// Pairs.
    pub pairs: u32,
    /// Connections being opened at once (TCP + WebSocket handshakes).
    pub connect_parallel: usize,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Results of a storm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormReport {
    /// `storm`.
    pub scenario: String,
    /// Server kind.
    pub server: String,
    /// Dialect, or `mixed`.
    pub dialect: String,
    /// Pairs started.
    pub pairs: u32,
    /// Pairs that completed the whole exchange.
    pub completed: u32,
    /// Seconds from the first connect to the last pair done (or the timeout).
    pub secs: f64,
    /// Completed pairs per second.
    pub pairs_per_sec: f64,
    /// Per pair, from its first connect to both sides done: median, ms.
    pub setup_p50_ms: f64,
    /// 99th percentile, ms.
    pub setup_p99_ms: f64,
    /// Signals sent.
    pub sent: u64,
    /// Signals received once, in order, by the right peer.
    pub delivered: u64,
    /// Sent but never received.
    pub lost: u64,
    /// Received by a peer they were not addressed to.
    pub misrouted: u64,
    /// Received twice.
    pub duplicated: u64,
    /// Received after a later one from the same sender.
    pub out_of_order: u64,
    /// Protocol surprises: two offerers, no offerer, a partner leaving, an answer to no offer.
    pub unexpected: u64,
    /// Frames that do not parse as their dialect says.
    pub malformed: u64,
    /// Error notices and failed connections.
    pub errors: u64,
    /// The first problem seen, if any.
    pub first_error: Option<String>,
}

impl StormReport {
    /// Whether nothing was lost, misrouted, duplicated, reordered, unexpected or malformed, no
    /// error was reported and every pair completed.
    pub fn is_clean(&self) -> bool {
        self.completed == self.pairs
            && self.lost == 0
            && self.misrouted == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.unexpected == 0
            && self.malformed == 0
            && self.errors == 0
    }
}

#[derive(Debug)]
struct Pair {
    present: [watch::Sender<bool>; 2],
    sent: [AtomicU64; 2],
    starts: AtomicU32,
    first_connect_ns: AtomicU64,
    done_ns: [AtomicU64; 2],
    done_sides: AtomicU32,
}

impl Pair {
    fn new() -> Self {
        Self {
            present: [watch::channel(false).0, watch::channel(false).0],
            sent: [AtomicU64::new(0), AtomicU64::new(0)],
            starts: AtomicU32::new(0),
            first_connect_ns: AtomicU64::new(u64::MAX),
            done_ns: [AtomicU64::new(0), AtomicU64::new(0)],
            done_sides: AtomicU32::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct PeerOutcome {
    unique: u64,
    duplicated: u64,
    misrouted: u64,
    out_of_order: u64,
    unexpected: u64,
    malformed: u64,
    errors: u64,
    first_error: Option<String>,
}

impl PeerOutcome {
    fn error(&mut self, text: String) {
        self.errors += 1;
        self.first_error.get_or_insert(text);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Offerer,
    Answerer,
}

impl Role {
    /// Signals this role receives from its partner.
    fn expects(self) -> u64 {
        match self {
            Role::Offerer => 1 + ANSWERER_CANDIDATES,
            Role::Answerer => 1 + OFFERER_CANDIDATES,
        }
    }
}

/// Runs a storm.
pub async fn run(cfg: StormConfig) -> anyhow::Result<StormReport> {
    for p in 0..cfg.pairs.min(9) {
        for d in cfg.dialects.of_pair(p) {
            anyhow::ensure!(
                cfg.target.server.speaks(d),
                "{} does not speak {}",
                cfg.target.server.as_str(),
                d.as_str()
            );
        }
    }
    let run = super::run_id();
    let limit = Arc::new(Semaphore::new(cfg.connect_parallel.max(1)));
    let indexes = Arc::new(super::Indexes::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let done_pairs = Arc::new(AtomicU32::new(0));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut pairs = Vec::new();
    let mut tasks = Vec::new();
    for p in 0..cfg.pairs {
        let pair = Arc::new(Pair::new());
        pairs.push(pair.clone());
        let dialects = cfg.dialects.of_pair(p);
        let room = format!("{run}-s{p}");
        for side in 0..2u8 {
            let peer = Peer {
                target: cfg.target.clone(),
                dialect: dialects[usize::from(side)],
                sio_pair: dialects == [Dialect::Socketio; 2],
                room: room.clone(),
                pair_index: p,
                side,
                pair: pair.clone(),
                done_pairs: done_pairs.clone(),
                total_pairs: cfg.pairs,
                all_done: all_done.clone(),
            };
            let limit = limit.clone();
            let indexes = indexes.clone();
            let stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                peer.run(&limit, &indexes, stop).await
            }));
        }
    }
    if cfg.pairs > 0 {
        let _ = tokio::time::timeout(cfg.timeout, all_done.notified()).await;
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);

    let mut report = StormReport {
        scenario: "storm".into(),
        server: cfg.target.server.as_str().into(),
        dialect: cfg.dialects.name().into(),
        pairs: cfg.pairs,
        ..Default::default()
    };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(match task.await {
            Ok(o) => o,
            Err(e) => {
                let mut o = PeerOutcome::default();
                o.error(format!("peer task failed: {e}"));
                o
            }
        });
    }
    let mut setups = Vec::new();
    for (p, pair) in pairs.iter().enumerate() {
        let [a, b] = [&outcomes[2 * p], &outcomes[2 * p + 1]];
        let sent = [
            pair.sent[0].load(Ordering::Relaxed),
            pair.sent[1].load(Ordering::Relaxed),
        ];
        report.sent += sent[0] + sent[1];
        report.lost += sent[0].saturating_sub(b.unique) + sent[1].saturating_sub(a.unique);
        let done = [
            pair.done_ns[0].load(Ordering::Relaxed),
            pair.done_ns[1].load(Ordering::Relaxed),
        ];
        if done[0] > 0 && done[1] > 0 {
            report.completed += 1;
            let first = pair.first_connect_ns.load(Ordering::Relaxed);
            setups.push(done[0].max(done[1]).saturating_sub(first));
        }
        let starts = pair.starts.load(Ordering::Relaxed);
        let sio_pair = cfg.dialects.of_pair(p as u32) == [Dialect::Socketio; 2];
        let wanted_starts = u32::from(!sio_pair && cfg.target.server == Server::Switchboard);
        if starts != wanted_starts {
            report.unexpected += 1;
        }
    }
    for o in &outcomes {
        report.delivered += o.unique;
        report.duplicated += o.duplicated;
        report.misrouted += o.misrouted;
        report.out_of_order += o.out_of_order;
        report.unexpected += o.unexpected;
        report.malformed += o.malformed;
        report.errors += o.errors;
        if report.first_error.is_none() {
            report.first_error.clone_from(&o.first_error);
        }
    }
    let last_done = pairs
        .iter()
        .flat_map(|p| p.done_ns.iter().map(|d| d.load(Ordering::Relaxed)))
        .max()
        .unwrap_or(0);
    let first = pairs
        .iter()
        .map(|p| p.first_connect_ns.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    report.secs = if report.completed == cfg.pairs && last_done > first {
        (last_done - first) as f64 / 1e9
    } else {
        elapsed.as_secs_f64()
    };
    report.pairs_per_sec = f64::from(report.completed) / report.secs.max(1e-9);
    let p = percentiles(setups);
    report.setup_p50_ms = p.p50_us / 1000.0;
    report.setup_p99_ms = p.p99_us / 1000.0;
    Ok(report)
}

struct Peer {
    target: Target,
    dialect: Dialect,
    sio_pair: bool,
    room: String,
    pair_index: u32,
    side: u8,
    pair: Arc<Pair>,
    done_pairs: Arc<AtomicU32>,
    total_pairs: u32,
    all_done: Arc<tokio::sync::Notify>,
}

/// A peer's progress through the exchange.
struct State {
    role: Option<Role>,
    next: u64,
    got_pong: bool,
    done: bool,
    out: PeerOutcome,
}

impl Peer {
    async fn run(
        self,
        limit: &Semaphore,
        indexes: &super::Indexes,
        mut stop: watch::Receiver<bool>,
    ) -> PeerOutcome {
        let mut st = State {
            role: None,
            next: 0,
            got_pong: self.dialect != Dialect::Ant,
            done: false,
            out: PeerOutcome::default(),
        };
        let conn = {
            let Ok(_permit) = limit.acquire().await else {
                return st.out;
            };
            self.pair
                .first_connect_ns
                .fetch_min(now_ns(), Ordering::Relaxed);
            Conn::connect(
                &self.target,
                self.dialect,
                &self.room,
                indexes.next(),
                false,
            )
            .await
        };
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                st.out.error(format!("connect: {e:#}"));
                return st.out;
            }
        };
        if let Err(e) = self.exchange(&mut conn, &mut st, &mut stop).await {
            st.out.error(format!("{e:#}"));
        }
        let _ = client::bounded(conn.ws.close(None)).await;
        st.out
    }

    fn me(&self) -> usize {
        usize::from(self.side)
    }

    async fn exchange(
        &self,
        conn: &mut Conn,
        st: &mut State,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        match self.dialect {
            Dialect::Ant => {
                // What the SDK puts on the wire right after `initialized`.
                conn.send(client::ant_join(&self.room)).await?;
                conn.send(ANT_ICE_REQUEST.to_owned()).await?;
                conn.send(ANT_PING.to_owned()).await?;
            }
            Dialect::Raw if self.target.server == Server::Switchboard => {}
            // socket.io: connected means in the room; raw to a relay without notices likewise.
            _ => {
                self.pair.present[self.me()].send_replace(true);
            }
        }
        let mut partner = self.pair.present[1 - self.me()].subscribe();
        let dials = self.sio_pair && self.side == 0;
        loop {
            if dials && st.role.is_none() && *partner.borrow_and_update() {
                self.offer(conn, st).await?;
            }
            tokio::select! {
                text = conn.next_text() => {
                    let Some(text) = text? else {
                        if !*stop.borrow() {
                            anyhow::bail!("server closed the connection");
                        }
                        return Ok(());
                    };
                    if *stop.borrow() {
                        // Partners are closing: their `stop`/peer-left notices are expected now.
                        return Ok(());
                    }
                    self.handle(conn, st, &text).await?;
                }
                changed = partner.changed(), if dials && st.role.is_none() => {
                    if changed.is_err() {
                        anyhow::bail!("partner gone");
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    fn tag(&self, seq: u64) -> Tag {
        Tag {
            pair: self.pair_index,
            side: self.side,
            seq,
            sent_ns: now_ns(),
        }
    }

    async fn send_signals(
        &self,
        conn: &mut Conn,
        kind: Kind,
        candidates: u64,
    ) -> anyhow::Result<()> {
        let offerer = kind == Kind::Offer;
        for seq in 0..=candidates {
            let k = if seq == 0 { kind } else { Kind::Candidate };
            let frame =
                client::signal_frame(self.dialect, &self.room, k, seq, offerer, &self.tag(seq));
            self.pair.sent[self.me()].fetch_add(1, Ordering::Relaxed);
            client::bounded(conn.ws.feed(Message::text(frame))).await?;
        }
        client::bounded(conn.ws.flush()).await?;
        Ok(())
    }

    async fn offer(&self, conn: &mut Conn, st: &mut State) -> anyhow::Result<()> {
        st.role = Some(Role::Offerer);
        self.send_signals(conn, Kind::Offer, OFFERER_CANDIDATES)
            .await
    }

    async fn handle(&self, conn: &mut Conn, st: &mut State, text: &str) -> anyhow::Result<()> {
        let inbound = match client::parse(self.dialect, &self.room, text) {
            Ok(i) => i,
            Err(e) => {
                st.out.malformed += 1;
                st.out.first_error.get_or_insert_with(|| {
                    format!("malformed {}: {e}: {text:.120}", self.dialect.as_str())
                });
                return Ok(());
            }
        };
        match inbound {
            Inbound::Signal { kind, tag } => self.on_signal(conn, st, kind, tag).await?,
            Inbound::Joined => {
                self.pair.present[self.me()].send_replace(true);
            }
            Inbound::Start => {
                self.pair.starts.fetch_add(1, Ordering::Relaxed);
                if st.role.is_none() {
                    self.offer(conn, st).await?;
                } else {
                    st.out.unexpected += 1;
                }
            }
            Inbound::PeerLeft => {
                st.out.unexpected += 1;
                st.out
                    .first_error
                    .get_or_insert_with(|| "partner left".into());
            }
            Inbound::Pong => st.got_pong = true,
            Inbound::Error(e) => st.out.error(format!("error notice: {e}")),
            Inbound::EioPing => conn.send(EIO_PONG.to_owned()).await?,
            Inbound::PeerJoined | Inbound::IceServers | Inbound::Other => {}
        }
        self.check_done(st);
        Ok(())
    }

    async fn on_signal(
        &self,
        conn: &mut Conn,
        st: &mut State,
        kind: Kind,
        tag: Tag,
    ) -> anyhow::Result<()> {
        if tag.pair != self.pair_index || usize::from(tag.side) != 1 - self.me() {
            st.out.misrouted += 1;
            return Ok(());
        }
        if tag.seq < st.next {
            st.out.duplicated += 1;
            return Ok(());
        }
        if tag.seq > st.next {
            st.out.out_of_order += 1;
        }
        st.next = tag.seq + 1;
        st.out.unique += 1;
        match (tag.seq, kind, st.role) {
            (0, Kind::Offer, None) => {
                st.role = Some(Role::Answerer);
                self.send_signals(conn, Kind::Answer, ANSWERER_CANDIDATES)
                    .await?;
            }
            (0, Kind::Answer, Some(Role::Offerer)) => {}
            (s, Kind::Candidate, Some(_)) if s > 0 => {}
            _ => st.out.unexpected += 1,
        }
        Ok(())
    }

    fn check_done(&self, st: &mut State) {
        if st.done || !st.got_pong {
            return;
        }
        let Some(role) = st.role else { return };
        if st.out.unique < role.expects() {
            return;
        }
        st.done = true;
        self.pair.done_ns[self.me()].store(now_ns(), Ordering::Relaxed);
        // The side that finishes second counts the pair.
        if self.pair.done_sides.fetch_add(1, Ordering::AcqRel) == 1 {
            let counted = self.done_pairs.fetch_add(1, Ordering::AcqRel) + 1;
            if counted >= self.total_pairs {
                self.all_done.notify_one();
            }
        }
    }
}
