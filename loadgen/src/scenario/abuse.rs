//! One attacker address against the front door: how many engine.io handshakes or TCP
//! connections per second it gets the server to take, how many it holds at the end, and what
//! they cost in the server's resident memory. Bounded in time and in count.
//!
//! - `handshakes`: `--conns` keep-alive connections send `GET /socket.io/?EIO=4&transport=polling`
//!   back to back; an answer whose `sid` is not a refusal counts as admitted (a session the
//!   gateway holds until its connect timeout).
//! - `connections`: TCP connections are opened (`--parallel` at a time) and held; at the end each
//!   is checked for having been closed by the server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::idle::rss_kib;

/// What the attacker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbuseKind {
    /// Bare engine.io handshakes over keep-alive connections.
    Handshakes,
    /// TCP connections opened and held.
    Connections,
}

impl AbuseKind {
    /// `handshakes` or `connections`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "handshakes" => Ok(Self::Handshakes),
            "connections" => Ok(Self::Connections),
            other => bail!("unknown abuse kind `{other}` (handshakes, connections)"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Handshakes => "handshakes",
            Self::Connections => "connections",
        }
    }
}

/// An abuse run.
#[derive(Debug, Clone)]
pub struct AbuseConfig {
    /// The server.
    pub addr: SocketAddr,
    /// The one source address of the attack (a loopback address).
    pub source: IpAddr,
    /// What to send.
    pub kind: AbuseKind,
    /// How long.
    pub secs: f64,
    /// Keep-alive connections (handshakes) or connections opened at once (connections).
    pub parallel: usize,
    /// At most this many handshakes or connections in all.
    pub max: u64,
    /// The server's process id, whose RSS is read.
    pub pid: u32,
}

/// Results of an abuse run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbuseReport {
    /// `abuse`.
    pub scenario: String,
    /// `handshakes` or `connections`.
    pub kind: String,
    /// The attacker's address.
    pub source: String,
    /// Seconds the attack ran.
    pub secs: f64,
    /// Handshakes sent or connections opened.
    pub attempted: u64,
    /// Admitted by the server (handshakes given a session; connections not closed at once).
    pub admitted: u64,
    /// Refused (handshakes refused; connections closed by the server, or that failed).
    pub refused: u64,
    /// `attempted / secs`.
    pub attempted_per_sec: f64,
    /// `admitted / secs`.
    pub admitted_per_sec: f64,
    /// Connections still open at the end (connections).
    pub held_at_end: u64,
    /// Server RSS before, KiB.
    pub rss_before_kib: u64,
    /// Server RSS at the end of the attack, KiB.
    pub rss_after_kib: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Runs the attack and reads the server's RSS before and right after it.
pub async fn run(cfg: AbuseConfig) -> anyhow::Result<AbuseReport> {
    let rss_before_kib = rss_kib(cfg.pid)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(cfg.secs);
    let mut report = match cfg.kind {
        AbuseKind::Handshakes => handshakes(&cfg, deadline).await,
        AbuseKind::Connections => connections(&cfg, deadline).await,
    };
    report.secs = start.elapsed().as_secs_f64();
    if report.rss_after_kib == 0 {
        report.rss_after_kib = rss_kib(cfg.pid)?;
    }
    report.rss_before_kib = rss_before_kib;
    report.scenario = "abuse".to_owned();
    report.kind = cfg.kind.as_str().to_owned();
    report.source = cfg.source.to_string();
    report.attempted_per_sec = report.attempted as f64 / report.secs.max(1e-9);
    report.admitted_per_sec = report.admitted as f64 / report.secs.max(1e-9);
    Ok(report)
}

async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

// === handshakes ===

async fn handshakes(cfg: &AbuseConfig, deadline: Instant) -> AbuseReport {
    let per_task = cfg.max / cfg.parallel.max(1) as u64;
    let tasks: Vec<_> = (0..cfg.parallel.max(1))
        .map(|_| tokio::spawn(handshake_loop(cfg.addr, cfg.source, deadline, per_task)))
        .collect();
    let mut report = AbuseReport::default();
    for task in tasks {
        match task.await {
            Ok(r) => {
                report.attempted += r.attempted;
                report.admitted += r.admitted;
                report.refused += r.refused;
                if report.first_error.is_none() {
                    report.first_error = r.first_error;
                }
            }
            Err(e) => report.first_error = Some(e.to_string()),
        }
    }
    report
}

async fn handshake_loop(
    addr: SocketAddr,
    source: IpAddr,
    deadline: Instant,
    max: u64,
) -> AbuseReport {
    let mut report = AbuseReport::default();
    let mut stream = None;
    while Instant::now() < deadline && report.attempted < max {
        let conn = match &mut stream {
            Some(conn) => conn,
            None => match connect_from(source, addr).await {
                Ok(conn) => stream.insert(conn),
                Err(e) => {
                    report.first_error.get_or_insert(format!("connect: {e}"));
                    report.refused += 1;
                    report.attempted += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        report.attempted += 1;
        let answer = tokio::time::timeout(Duration::from_secs(5), handshake(conn)).await;
        match answer {
            Ok(Ok(true)) => report.admitted += 1,
            Ok(Ok(false)) => report.refused += 1,
            Ok(Err(e)) => {
                report.refused += 1;
                report.first_error.get_or_insert(e.to_string());
                stream = None;
            }
            Err(_) => {
                report.refused += 1;
                report
                    .first_error
                    .get_or_insert("no answer within 5 s".to_owned());
                stream = None;
            }
        }
    }
    report
}

/// One handshake on a keep-alive connection: `true` when the server gave a real session.
async fn handshake(conn: &mut TcpStream) -> anyhow::Result<bool> {
    conn.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await? == 0 {
            bail!("closed by the server");
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            bail!("response head over 16 KiB");
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .context("no Content-Length")?;
    let mut body = vec![0u8; length.min(64 * 1024)];
    conn.read_exact(&mut body).await?;
    Ok(status == 200 && !String::from_utf8_lossy(&body).contains("sbrefused"))
}

// === connections ===

async fn connections(cfg: &AbuseConfig, deadline: Instant) -> AbuseReport {
    let mut report = AbuseReport::default();
    let mut held = Vec::new();
    let mut opening = tokio::task::JoinSet::new();
    while Instant::now() < deadline && report.attempted < cfg.max {
        while opening.len() < cfg.parallel.max(1) && report.attempted < cfg.max {
            report.attempted += 1;
            opening.spawn(connect_from(cfg.source, cfg.addr));
        }
        match opening.join_next().await {
            Some(Ok(Ok(stream))) => held.push(stream),
            Some(Ok(Err(e))) => {
                report.refused += 1;
                report.first_error.get_or_insert(format!("connect: {e}"));
            }
            Some(Err(e)) => {
                report.refused += 1;
                report.first_error.get_or_insert(e.to_string());
            }
            None => break,
        }
    }
    opening.abort_all();
    // A refused connection is closed right after accept: let the last ones see it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut buf = [0u8; 64];
    let mut still_open = Vec::new();
    for mut stream in held {
        let closed =
            match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => true,
                Ok(Ok(_)) | Err(_) => false,
            };
        if closed {
            report.refused += 1;
        } else {
            report.admitted += 1;
            report.held_at_end += 1;
            still_open.push(stream);
        }
    }
    // Read while the attacker still holds its connections.
    report.rss_after_kib = rss_kib(cfg.pid).unwrap_or(0);
    drop(still_open);
    report
}
