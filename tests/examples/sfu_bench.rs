//! Benchmark of the `sfu` plugin: N publishers × M subscribers in one room on loopback, real
//! WebRTC (ICE, DTLS, SRTP) from str0m peers in this process, Ant Media signaling over
//! WebSocket, against the real `switchboard` binary in its own process (so its CPU time can be
//! read from /proc). Prints forwarded frames per second (each frame here is one RTP packet),
//! the send-to-receive latency (p50/p99, publisher → SFU → subscriber on one clock), and the
//! gateway's CPU time per forwarded packet.
//!
//! ```text
//! cargo build --release -p switchboard
//! SWITCHBOARD_BIN=target/release/switchboard \
//!   cargo run -p switchboard-tests --example sfu_bench -- [PUBLISHERS] [SUBSCRIBERS] [SECONDS]
//! ```
//!
//! Each publisher sends an audio and a video frame of 1000 bytes every 20 ms (100 frames/s).
//! Every stream stops by itself after the measured window.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_tests::media::{MediaPeer, next_ant as next};
use switchboard_tests::{WsClient, field, switchboard_bin};

const FRAME_BYTES: usize = 1000;
const FRAME_INTERVAL: Duration = Duration::from_millis(20);
const WARMUP: Duration = Duration::from_secs(2);
const ROOM: &str = "bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let publishers = args.first().copied().unwrap_or(4) as usize;
    let subscribers = args.get(1).copied().unwrap_or(8) as usize;
    let secs = args.get(2).copied().unwrap_or(10);

    let (mut gateway, addr) = start_gateway().await?;
    let pid = gateway.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let epoch = Instant::now();
    let url = format!("ws://{addr}/LiveApp/websocket");

    let mut pubs = Vec::new();
    for i in 0..publishers {
        pubs.push(publish(&url, &format!("pub{i}"), epoch).await);
    }
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        subs.push(play(&url, epoch).await);
    }

    // Everyone runs in its own task until `end`; counters are read at `measure_from` and `end`.
    let measure_from = Instant::now() + WARMUP;
    let end = measure_from + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (ws, mut peer) in pubs {
        tasks.push(tokio::spawn(async move {
            let mut t = 0;
            let mut next = Instant::now();
            while Instant::now() < end {
                if Instant::now() >= next {
                    peer.send_frames(FRAME_BYTES, t);
                    t += FRAME_INTERVAL.as_millis() as u64;
                    next += FRAME_INTERVAL;
                }
                peer.pump(next.min(end)).await;
            }
            drop(ws);
            (0, Vec::new())
        }));
    }
    let cpu_before = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        cpu_ticks(pid)
    });
    for (ws, mut peer) in subs {
        tasks.push(tokio::spawn(async move {
            peer.pump(measure_from).await;
            let frames = peer.frames_total();
            peer.latencies_us.clear();
            peer.pump(end).await;
            drop(ws);
            (peer.frames_total() - frames, peer.latencies_us)
        }));
    }
    let mut forwarded = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (frames, lat) = task.await?;
        forwarded += frames;
        latencies.extend(lat);
    }
    let cpu_after = cpu_ticks(pid);
    let cpu_before = cpu_before.await?;
    let _ = gateway.kill().await;

    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i] as f64 / 1000.0
    };
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_secs = (cpu_after.saturating_sub(cpu_before)) as f64 / ticks_per_sec;
    let pps = forwarded as f64 / secs as f64;
    let expected =
        (publishers * subscribers * 2) as f64 * (1000.0 / FRAME_INTERVAL.as_millis() as f64);
    let report = json!({
        "publishers": publishers,
        "subscribers": subscribers,
        "seconds": secs,
        "frame_bytes": FRAME_BYTES,
        "forwarded_packets_per_sec": pps.round(),
        "expected_packets_per_sec": expected,
        "delivered_packets": forwarded,
        // What the window should have delivered; the difference is what was lost (dropped by a
        // full socket buffer, or sent but not yet received when the window closed).
        "expected_packets": (expected * secs as f64).round(),
        "latency_ms_p50": pct(0.5),
        "latency_ms_p99": pct(0.99),
        "gateway_cpu_percent": (cpu_secs / secs as f64 * 100.0).round(),
        "gateway_cpu_us_per_packet": if forwarded > 0 { (cpu_secs * 1e6 / forwarded as f64 * 10.0).round() / 10.0 } else { f64::NAN },
    });
    println!("{report}");
    Ok(())
}

/// The gateway on a free loopback port with conference + sfu; returns it and its address.
async fn start_gateway() -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("sfu-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[listener]]
bind = "127.0.0.1:{port}"
dialects = ["antmedia"]

[limits]
max_frame_bytes = 131072

[[plugin]]
type = "conference"

[[plugin]]
type = "sfu"
[plugin.settings]
udp_bind = "127.0.0.1:0"
max_publishers_per_room = 64

[[plugin]]
type = "room-router"
"#
        ),
    )?;
    let child = tokio::process::Command::new(switchboard_bin())
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok((child, addr));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the gateway did not listen on {addr}")
}

async fn publish(url: &str, stream: &str, epoch: Instant) -> (WsClient, MediaPeer) {
    let mut ws = WsClient::connect(url).await;
    ws.send_json(
        json!({"command":"publish","streamId":stream,"mainTrack":ROOM,"video":true,"audio":true}),
    )
    .await;
    assert_eq!(next(&mut ws).await["command"], "start");
    let mut peer = MediaPeer::new(epoch).await;
    let offer = peer.publish_offer();
    ws.send_json(
        json!({"command":"takeConfiguration","streamId":stream,"type":"offer","sdp":offer}),
    )
    .await;
    let answer = next(&mut ws).await;
    peer.accept_answer(field(&answer, "sdp"));
    assert!(
        peer.pump_until(Duration::from_secs(10), |p| p.connected)
            .await,
        "{stream} connects"
    );
    assert_eq!(next(&mut ws).await["definition"], "publish_started");
    (ws, peer)
}

async fn play(url: &str, epoch: Instant) -> (WsClient, MediaPeer) {
    let mut ws = WsClient::connect(url).await;
    ws.send_json(json!({"command":"play","streamId":ROOM,"room":ROOM,"trackList":[]}))
        .await;
    let offer = next(&mut ws).await;
    let mut peer = MediaPeer::new(epoch).await;
    let sdp = peer.answer(field(&offer, "sdp"));
    ws.send_json(json!({"command":"takeConfiguration","streamId":ROOM,"type":"answer","sdp":sdp}))
        .await;
    assert!(
        peer.pump_until(Duration::from_secs(10), |p| p.connected)
            .await,
        "player connects"
    );
    assert_eq!(next(&mut ws).await["definition"], "play_started");
    (ws, peer)
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the first after the name is field 3.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}
