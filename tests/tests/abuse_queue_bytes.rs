//! Memory stays bounded per session (issue 17): one address opens a few rooms, each with a raw
//! WebSocket receiver that never reads and a sender that floods it with frames near the largest
//! allowed (`max_frame_bytes`, 128 KiB). Bounded by a count of messages alone, each receiver's
//! queue pinned up to `session_queue_len` such frames (a release build reached about 1 GB of
//! RSS with eight of them); bounded by `session_queue_bytes` (1 MiB by default) as well, the
//! senders wait after a few frames instead.
//!
//! Counts and bounds only: the gateway process's peak RSS (`VmHWM`) over its RSS before the
//! flood, every receiver closed for not reading (1008, counted in `/metrics`) and its sender
//! told, and a legitimate pair in another room that relays every message, in order, meanwhile.
//! Runs the binary `switchboard_bin()` finds (`SWITCHBOARD_BIN` to try another build).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use switchboard_tests::front::{EVERY_DIALECT_LISTENER, GatewayProcess, process_config_tail};
use switchboard_tests::{Received, WsClient, field};

/// Rooms flooded, each by one sender for one receiver that never reads.
const PAIRS: usize = 6;
/// Frames each sender sends: fewer than `session_queue_len` (1024), so that a queue bounded by
/// count alone takes them all while its receiver reads nothing.
const FLOOD_FRAMES: usize = 300;
/// Each flood frame's length: just under the default `max_frame_bytes` (131072).
const FRAME_BYTES: usize = 130_000;
/// Messages of the legitimate pair, sent while the flood runs.
const LEGIT_MESSAGES: usize = 200;
/// KiB the gateway's peak RSS may exceed its RSS before the flood by. Six receivers' queues of
/// 1 MiB (the flood frame and its relayed copy count), the frame each session holds in its
/// socket's buffers and each sender's waiting frame make a few MiB each; the allocator keeps
/// some freed pages. Bounded by count alone this flood pins about 6 x 300 x 2 x 130 KB
/// (BENCHMARKS.md, "Queue bytes", has both figures).
const PEAK_GROWTH_KIB: u64 = 48 * 1024;
/// Limit on each phase of the flood (a failure guard, never a measurement).
const PHASE: Duration = Duration::from_secs(90);

/// Rate limits raised (an operator's setting for busy rooms) so that only the queue bounds
/// act; a short write timeout so that the receivers are given up on soon. The queue bounds
/// are the defaults.
fn config() -> String {
    let limits = "messages_per_sec = 1000000.0
message_burst = 1000000
write_timeout_secs = 3";
    format!("{EVERY_DIALECT_LISTENER}{}", process_config_tail(limits))
}

fn raw_url(addr: SocketAddr, room: &str) -> String {
    format!("ws://{addr}/ws/{room}")
}

/// Connects a raw peer to `room` and reads its `joined` notice.
async fn joined(addr: SocketAddr, room: &str) -> WsClient {
    let mut ws = WsClient::connect(&raw_url(addr, room)).await;
    assert_eq!(field(&ws.recv_json().await, "type"), "switchboard.joined");
    ws
}

/// Reads until the `switchboard.peer-joined` notice (a partner arrived), passing over others.
async fn told_peer_joined(ws: &mut WsClient) -> bool {
    for _ in 0..10 {
        if ws.recv_text().await.contains("\"switchboard.peer-joined\"") {
            return true;
        }
    }
    false
}

/// Reads until the `switchboard.peer-left` notice (what its sender is told when its receiver
/// is closed); false if the connection closes first.
async fn told_peer_left(ws: &mut WsClient) -> bool {
    for _ in 0..1000 {
        match ws.recv().await {
            Received::Text(text) if text.contains("\"switchboard.peer-left\"") => return true,
            Received::Text(_) => {}
            Received::Closed(_) => return false,
        }
    }
    false
}

/// Reads a receiver's socket to its end (what the gateway had written before it gave up);
/// returns the close code if a close frame came.
async fn close_code(ws: &mut WsClient) -> Option<u16> {
    // At most what the socket buffers held: a few MiB of flood frames.
    for _ in 0..FLOOD_FRAMES + 1 {
        if let Received::Closed(frame) = ws.recv().await {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

/// Sends [`LEGIT_MESSAGES`] numbered messages from `a` to `b`; returns how many `b` received
/// in order.
async fn legit_exchange(a: &mut WsClient, b: &mut WsClient) -> usize {
    let data = "y".repeat(4000);
    let mut in_order = 0;
    for n in 0..LEGIT_MESSAGES {
        a.send_json(json!({"type": "chat", "n": n, "data": data}))
            .await;
        let got = b.recv_json().await;
        if got["type"] == "chat" && got["n"] == n {
            in_order += 1;
        }
    }
    in_order
}

/// Closed sessions counted for a raw receiver that stopped reading (its write timed out, or
/// its queue stayed full): both close it with 1008 `stopped reading its messages`.
async fn closed_for_not_reading(addr: SocketAddr) -> u64 {
    let mut total = 0.0;
    for reason in ["write timeout", "stuck"] {
        let series =
            format!(r#"switchboard_sessions_closed_total{{dialect="raw",reason="{reason}"}}"#);
        total += switchboard_tests::front::metric(addr, &series).await;
    }
    total as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_that_never_read_pin_a_bounded_number_of_bytes() {
    let gw = GatewayProcess::spawn(&config(), 1, None).await;
    let addr = gw.main();

    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for i in 0..PAIRS {
        let room = format!("flood{i}");
        receivers.push(joined(addr, &room).await);
        senders.push(joined(addr, &room).await);
    }
    let mut legit_a = joined(addr, "legit").await;
    let mut legit_b = joined(addr, "legit").await;
    // b is told of a (the partner that makes the offer): the pair is set up.
    assert!(told_peer_joined(&mut legit_b).await);
    let before = gw.rss_kib();

    let frame = format!("bulk:{}", "x".repeat(FRAME_BYTES - 5));
    let floods: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let frame = frame.clone();
            tokio::spawn(async move {
                for _ in 0..FLOOD_FRAMES {
                    sender.send_text(&frame).await;
                }
                sender
            })
        })
        .collect();
    let legit = tokio::time::timeout(PHASE, legit_exchange(&mut legit_a, &mut legit_b))
        .await
        .expect("the legitimate pair is not held up");
    let mut senders = Vec::new();
    for flood in floods {
        let sender = tokio::time::timeout(PHASE, flood)
            .await
            .expect("every sender gets its frames out");
        senders.push(sender.unwrap());
    }
    let mut closed = 0;
    for _ in 0..(PHASE.as_millis() / 100) {
        closed = closed_for_not_reading(addr).await;
        if closed >= PAIRS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak = gw.peak_rss_kib();

    let mut told = 0;
    for sender in &mut senders {
        told += usize::from(told_peer_left(sender).await);
    }
    let mut codes = Vec::new();
    for receiver in &mut receivers {
        codes.push(close_code(receiver).await);
    }
    // After the flood, a new pair still relays.
    let mut c = joined(addr, "after").await;
    let mut d = joined(addr, "after").await;
    assert!(told_peer_joined(&mut d).await);
    c.send_json(json!({"type": "chat", "n": 0})).await;
    let after = d.recv_json().await;

    eprintln!(
        "RSS before the flood {before} KiB, peak {peak} KiB (+{} KiB); \
         receivers closed for not reading: {closed}; senders told: {told}; close codes: {codes:?}",
        peak.saturating_sub(before)
    );
    assert_eq!(legit, LEGIT_MESSAGES, "the legitimate pair lost messages");
    assert_eq!(
        closed, PAIRS as u64,
        "every receiver that never read is closed"
    );
    assert_eq!(told, PAIRS, "every sender is told its receiver left");
    assert!(
        codes.iter().flatten().all(|&code| code == 1008),
        "a receiver's close frame, when it got one, is 1008: {codes:?}"
    );
    assert_eq!(after["n"], 0, "a new pair relays after the flood");
    assert!(
        peak.saturating_sub(before) <= PEAK_GROWTH_KIB,
        "peak RSS {peak} KiB grew more than {PEAK_GROWTH_KIB} KiB over {before} KiB"
    );
}
