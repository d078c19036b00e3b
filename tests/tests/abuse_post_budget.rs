//! The budget of undelivered engine.io 3 POST bytes (issue 17's security defect): an engine.io 3
//! POST is read whole and answered at once, so without a bound above the session one address
//! with 64 sessions whose partners do not read could pin 64 POST caps (1 GiB at the 16 MiB
//! default). Now a POST reserves its bytes under its address's budget and the gateway's before
//! its body is read, waits for room (its body unread) up to `write_timeout_secs`, and is then
//! refused, counted once. Real parts: the `switchboard` binary, raw HTTP for the attacker (what
//! an attacker uses), socket.io-client 2 for the legitimate peers. Counts and RSS bounds only.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use switchboard_tests::front::{
    EVERY_DIALECT_LISTENER, GatewayProcess, connect_from, metric, parse_answer,
    process_config_tail, rss_kib,
};
use switchboard_tests::{clean_node_scenario, node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The attacker's address; the legitimate peers come from 127.0.0.2.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Rooms the attacker opens: a sender and a partner each, 64 sessions, its whole
/// `max_connections_per_ip`.
const ROOMS: usize = 32;

/// The defaults the bound below is derived from: `engineio3_max_post_bytes` and
/// `engineio3_undelivered_bytes_per_ip`.
const POST_CAP: usize = 16 << 20;
const PER_IP_BUDGET: u64 = 64 << 20;

/// Rate limits raised so that none of the attacker's packets is refused for the rate (a refused
/// packet is taken from the session at once, which would free its bytes: the attack is hardest
/// without them). A short receiver queue: a receiver's queue is bounded in deliveries, not bytes
/// (1,024 of these 5 KB offers are 5 MiB per partner at the default), which is not what this
/// test measures. Every other limit is at its default.
const LIMITS: &str =
    "messages_per_sec = 1000000.0\nmessage_burst = 1000000\nsession_queue_len = 32";

/// One HTTP/1.1 request on a fresh connection from `from`; the status and body of the answer,
/// `None` if the connection closed first. The body is written while the answer is read, so a
/// POST answered before it is read whole (a refusal) is seen as the client sees it.
async fn try_request(
    from: IpAddr,
    to: SocketAddr,
    method: &str,
    target: &str,
    body: Option<Arc<Vec<u8>>>,
) -> Option<(u16, String)> {
    let stream = connect_from(from, to).await.ok()?;
    let (mut reader, mut writer) = stream.into_split();
    let length = body.as_ref().map_or(0, |b| b.len());
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let send = tokio::spawn(async move {
        if let Some(body) = body {
            // A refused POST's connection is closed with its body unread: the rest fails.
            let _ = writer.write_all(&body).await;
        }
        writer
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let status_and_body = loop {
        let n = reader.read(&mut buf).await.unwrap_or(0);
        answer.extend_from_slice(&buf[..n]);
        if let Some(parsed) = parse_answer(&answer) {
            break Some(parsed);
        }
        if n == 0 {
            break None;
        }
    };
    send.abort();
    status_and_body
}

/// [`try_request`], failing the test if the connection closed unanswered.
async fn request(
    from: IpAddr,
    to: SocketAddr,
    method: &str,
    target: &str,
    body: Option<Arc<Vec<u8>>>,
) -> (u16, String) {
    try_request(from, to, method, target, body)
        .await
        .unwrap_or_else(|| panic!("{method} {target}: closed unanswered"))
}

/// An engine.io 3 session opened in `room` from the attacker: its `sid` (the gateway connects
/// it to `/` and joins the room at once).
async fn open_session3(addr: SocketAddr, room: &str) -> String {
    let (status, open) = request(
        ATTACKER,
        addr,
        "GET",
        &format!("/socket.io/?EIO=3&transport=polling&room={room}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{open}");
    let start = open.find(r#""sid":""#).unwrap() + 7;
    open[start..start + open[start..].find('"').unwrap()].to_owned()
}

/// The socket.io `msg` argument of a 6 KB offer numbered `seq`.
fn offer(seq: usize) -> String {
    let sdp = format!("v=0\r\n{}\r\n", "a=x-padding:0123456789abcdef".repeat(200));
    serde_json::json!({"sdp": {"type": "offer", "sdp": format!("{sdp}a=x-seq:{seq}")}}).to_string()
}

/// An engine.io 3 payload of socket.io `msg` packets (6 KB offers), just under `bytes`.
fn offers3(bytes: usize) -> Vec<u8> {
    let mut body = String::new();
    for seq in 1.. {
        let packet = format!("42{}", serde_json::json!(["msg", offer(seq)]));
        let framed = format!("{}:{packet}", packet.len());
        if body.len() + framed.len() > bytes {
            break;
        }
        body.push_str(&framed);
    }
    body.into_bytes()
}

/// Samples the gateway's RSS and the budget's held bytes every 100 ms until `stop`; the
/// highest of each.
fn sample_peaks(
    gw: &GatewayProcess,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (rss, held) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (pid, addr) = (gw.pid, gw.main());
    let task = tokio::spawn({
        let (rss, held) = (rss.clone(), held.clone());
        async move {
            // Bounded: the attack ends within two write timeouts; 60 s at most.
            for _ in 0..600 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                rss.fetch_max(rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
                let bytes = metric(addr, "switchboard_engineio3_post_bytes").await;
                held.fetch_max(bytes as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    (task, rss, held)
}

/// One address, 32 rooms of two engine.io 3 sessions: each sender POSTs a body just under the
/// 16 MiB cap at once, and each partner reads slowly (a GET every 3 s, so it is never given up
/// on for not reading). Before the budget every body was read: 32 × 16 MiB pinned. Now four fit
/// the address's 64 MiB; the others wait, their bodies unread, and after `write_timeout_secs`
/// (10 s) are refused with 503, each session ended and counted once. Meanwhile socket.io-client 2
/// peers on 127.0.0.2 relay bursts both ways, pinned to polling and upgrading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_pin_more_than_its_budget_and_others_relay_meanwhile() {
    let config = format!("{EVERY_DIALECT_LISTENER}{}", process_config_tail(LIMITS));
    let gw = GatewayProcess::spawn(&config, 1, None).await;
    let addr = gw.main();
    let rss_before = gw.rss_kib();
    let body = Arc::new(offers3(POST_CAP));
    let mut senders = Vec::new();
    let mut partners = Vec::new();
    for i in 0..ROOMS {
        let room = format!("pin-{i}");
        partners.push(open_session3(addr, &room).await);
        senders.push(open_session3(addr, &room).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (sampler, rss_peak, held_peak) = sample_peaks(&gw, stop.clone());
    // Each sender POSTs at once; a partner whose sender's POST was taken then reads slowly
    // (never stuck long enough to be closed, never draining much).
    let (outcomes, mut outcome) = tokio::sync::mpsc::unbounded_channel();
    let rooms: Vec<_> = senders
        .into_iter()
        .zip(partners)
        .map(|(sender, partner)| {
            let (body, stop, outcomes) = (body.clone(), stop.clone(), outcomes.clone());
            tokio::spawn(async move {
                let at = |sid: &str| format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
                let (post, poll) = (at(&sender), at(&partner));
                let answer = request(ATTACKER, addr, "POST", &post, Some(body)).await;
                let taken = answer.0 == 200;
                let _ = outcomes.send(answer);
                // Bounded: 20 polls at most, each bounded too.
                for _ in 0..20 {
                    if !taken || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let get = try_request(ATTACKER, addr, "GET", &poll, None);
                    let _ = tokio::time::timeout(Duration::from_secs(5), get).await;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
            })
        })
        .collect();
    drop(outcomes);
    // The attack is under way once POSTs wait; then the legitimate peers relay beside it.
    for _ in 0..200 {
        if metric(addr, "switchboard_engineio3_posts_waiting").await > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting = metric(addr, "switchboard_engineio3_posts_waiting").await;
    assert!(
        waiting > 0.0,
        "no POST waits: the budget did not bind (RSS {rss_before} KiB -> peak {} KiB so far)",
        rss_peak.load(Ordering::Relaxed)
    );
    let url = format!("http://{addr}");
    let legit = node("post_budget.mjs", &[&url, "legit"], Duration::from_secs(90)).await;
    eprintln!(
        "--- post_budget.mjs legit\n{}{}",
        legit.stdout, legit.stderr
    );
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..ROOMS {
        let answer = tokio::time::timeout(Duration::from_secs(60), outcome.recv())
            .await
            .expect("every POST is answered within the write timeout")
            .expect("an answer per room");
        match answer {
            (200, body) => {
                assert_eq!(body, "ok");
                answered += 1;
            }
            (503, body) => {
                assert!(body.contains("post_budget_full"), "{body}");
                refused += 1;
            }
            (status, body) => panic!("a POST answered {status}: {body}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    for room in rooms {
        room.await.unwrap();
    }
    legit.assert_success();

    let rss_peak = rss_peak.load(Ordering::Relaxed);
    let held_peak = held_peak.load(Ordering::Relaxed);
    eprintln!(
        "answered {answered}, refused {refused}; RSS {rss_before} KiB -> peak {rss_peak} KiB; \
         budget held at most {held_peak} B"
    );
    // The gauge counts every address: the legitimate peers' bursts (300 offers, 1.6 MB in one
    // POST) may be held beside the attacker's budget.
    assert!(
        held_peak <= PER_IP_BUDGET + (4 << 20),
        "held {held_peak} B: more than the address's budget and the legitimate peers' bursts"
    );
    assert!(
        answered >= 4,
        "the address's budget holds four bodies: {answered}"
    );
    assert!(
        refused >= ROOMS / 2,
        "most of the 32 POSTs found no room within the write timeout: {refused} refused"
    );
    // The budget, the four partners' poll queues (1 MiB each) and session queues, the copies
    // the allocator keeps, and the legitimate peers: under twice the budget above the start.
    // Before the budget, 32 bodies of 16 MiB were read: over 512 MiB.
    let bound = rss_before + 2 * PER_IP_BUDGET / 1024;
    assert!(
        rss_peak < bound,
        "RSS {rss_before} KiB -> {rss_peak} KiB, above {bound} KiB"
    );
    let series = |reason: &str| {
        format!(r#"switchboard_errors_total{{dialect="socketio",reason="{reason}"}}"#)
    };
    assert_eq!(
        metric(addr, &series("post_budget_full")).await as usize,
        refused,
        "each refusal counted once"
    );
    assert_eq!(
        metric(
            addr,
            r#"switchboard_sessions_closed_total{dialect="socketio",reason="post budget full"}"#
        )
        .await as usize,
        refused,
        "each refused session ended once, by that reason"
    );
    assert_eq!(metric(addr, &series("frame_too_large")).await, 0.0);
}

/// An engine.io 4 session opened in `room` from the attacker and connected to `/` (its `40`
/// POSTed): its `sid`.
async fn open_session4(addr: SocketAddr, room: &str) -> String {
    let (status, open) = request(
        ATTACKER,
        addr,
        "GET",
        &format!("/socket.io/?EIO=4&transport=polling&room={room}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{open}");
    let start = open.find(r#""sid":""#).unwrap() + 7;
    let sid = open[start..start + open[start..].find('"').unwrap()].to_owned();
    let at = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let connect = Arc::new(b"40".to_vec());
    assert_eq!(
        request(ATTACKER, addr, "POST", &at, Some(connect)).await.0,
        200
    );
    sid
}

/// An engine.io 4 payload of socket.io `msg` packets (6 KB offers), just under `bytes`.
fn offers4(bytes: usize) -> Vec<u8> {
    let mut body = String::new();
    for seq in 1.. {
        let packet = format!("42{}", serde_json::json!(["msg", offer(seq)]));
        if body.len() + packet.len() + 1 > bytes {
            break;
        }
        if !body.is_empty() {
            body.push('\x1e');
        }
        body.push_str(&packet);
    }
    body.into_bytes()
}

/// The `maxPayload` of the engine.io 4 test: socket.io's own default (`maxHttpBufferSize`,
/// 1e6), which an operator moving from a node server may well set.
const MAX_PAYLOAD4: usize = 1_000_000;

/// One address, 32 rooms of two engine.io 4 sessions (socket.io-client 3 and 4 on
/// long-polling): each sender POSTs bodies just under `maxPayload` one after the other, and each
/// partner reads slowly (a GET every 3 s). Without a bound above the session every sender's
/// bodies wait in the gateway (the one being relayed and those queued behind it: main's release
/// grew by 276 MiB); with them under the address's POST budget, what one address pins is that
/// budget and its partners' queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_pin_more_than_its_budget_through_engine_io_4_posts() {
    let limits = format!("{LIMITS}\ndialect_max_frame_bytes = {{ socketio = {MAX_PAYLOAD4} }}");
    let config = format!("{EVERY_DIALECT_LISTENER}{}", process_config_tail(&limits));
    let gw = GatewayProcess::spawn(&config, 1, None).await;
    let addr = gw.main();
    let rss_before = gw.rss_kib();
    let body = Arc::new(offers4(MAX_PAYLOAD4));
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let room = format!("pin4-{i}");
        let partner = open_session4(addr, &room).await;
        rooms.push((open_session4(addr, &room).await, partner));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (sampler, rss_peak, held_peak) = sample_peaks(&gw, stop.clone());
    let (outcomes, mut outcome) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = rooms
        .into_iter()
        .map(|(sender, partner)| {
            let (body, stop, outcomes) = (body.clone(), stop.clone(), outcomes.clone());
            tokio::spawn(async move {
                let at = |sid: &str| format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
                let (post, poll) = (at(&sender), at(&partner));
                let reader = tokio::spawn({
                    let stop = stop.clone();
                    async move {
                        // Bounded: 10 polls at most, each bounded too.
                        for _ in 0..10 {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let get = try_request(ATTACKER, addr, "GET", &poll, None);
                            let _ = tokio::time::timeout(Duration::from_secs(5), get).await;
                        }
                    }
                });
                // Bounded: 12 POSTs at most; the first that is not answered 200 ends the room.
                for _ in 0..12 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let answer = try_request(ATTACKER, addr, "POST", &post, Some(body.clone()));
                    match tokio::time::timeout(Duration::from_secs(30), answer).await {
                        Ok(Some((200, _))) => {}
                        Ok(Some((status, _))) => {
                            let _ = outcomes.send(status);
                            break;
                        }
                        _ => break,
                    }
                }
                reader.abort();
            })
        })
        .collect();
    drop(outcomes);
    // The attack's bodies pile up for a few of the partners' slow reads.
    tokio::time::sleep(Duration::from_secs(15)).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(40), task).await;
    }
    let mut refused = 0;
    while let Ok(status) = outcome.try_recv() {
        assert_eq!(status, 503, "a POST refused otherwise than for the budget");
        refused += 1;
    }
    let rss_peak = rss_peak.load(Ordering::Relaxed);
    let held_peak = held_peak.load(Ordering::Relaxed);
    eprintln!(
        "refused {refused}; RSS {rss_before} KiB -> peak {rss_peak} KiB; budget held at most \
         {held_peak} B"
    );
    assert!(
        held_peak <= PER_IP_BUDGET,
        "held {held_peak} B: more than the address's budget"
    );
    // The budget, and what it does not hold: each partner's poll queue (1 MiB), the payload of
    // its GET being answered (1 MiB) and its session queue (32 offers), and what hyper buffers
    // for each sender's connection (its read-ahead of a waiting POST: 512 KiB allowed). Before
    // the budget, every sender's bodies were read: the one being relayed and up to five queued
    // behind it, 32 x 6 MB.
    let outside = ROOMS as u64 * ((3 << 20) + (512 << 10));
    let bound = rss_before + (PER_IP_BUDGET + outside) / 1024;
    assert!(
        rss_peak < bound,
        "RSS {rss_before} KiB -> {rss_peak} KiB, above {bound} KiB"
    );
}

/// A v2 POST that does not fit its address's budget waits, its body unread, and completes once
/// the partner that holds the budget up reads: both bursts arrive whole and in order, and
/// nothing is refused or counted as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_over_the_budget_waits_and_completes_once_the_partner_reads() {
    // A 4 MiB budget for the address (and so for one POST), a short queue, and a write timeout
    // far above the scenario's pause so that nothing is given up on.
    let config = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]

[shutdown]
grace_period_secs = 2

[limits]
messages_per_sec = 1000000.0
message_burst = 1000000
session_queue_len = 32
write_timeout_secs = 60
engineio3_undelivered_bytes_per_ip = 4194304

[[plugin]]
type = "room-router"
"#;
    clean_node_scenario(config, "post_budget.mjs", "waits", Duration::from_secs(100)).await;
}

/// A POST larger than its address's whole budget could never be reserved: it gets 413 at once
/// (before its body is read, nothing reserved), its session ends with the engine.io close
/// packet, counted once as an oversized frame, as a POST above `engineio3_max_post_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_larger_than_the_address_s_whole_budget_gets_413_at_once() {
    use switchboard_tests::TestGateway;
    use switchboard_tests::metrics::{self, scrape};
    // A 1 MiB budget, under the 16 MiB cap.
    let gw = TestGateway::with_config(&format!(
        "{EVERY_DIALECT_LISTENER}{}",
        process_config_tail("engineio3_undelivered_bytes_per_ip = 1048576")
    ))
    .await;
    let addr = gw.main;
    let sid = open_session3(addr, "too-big").await;
    let at = format!("/socket.io/?EIO=3&transport=polling&sid={sid}");
    let body = Arc::new(offers3(2 << 20));
    let (status, _) = request(ATTACKER, addr, "POST", &at, Some(body)).await;
    assert_eq!(status, 413, "a body above the address's budget");
    // The session ended: a poll takes what was queued before (its join), then the close packet.
    let mut seen = String::new();
    for _ in 0..5 {
        let (status, payload) = request(ATTACKER, addr, "GET", &at, None).await;
        seen.push_str(&payload);
        if status != 200 || payload.ends_with("1:1") {
            break;
        }
    }
    assert!(seen.ends_with("1:1"), "no engine.io close packet: {seen:?}");
    let body = scrape(&gw).await;
    let errors = |reason: &str| metrics::sample(&body, &metrics::errors("socketio", reason));
    assert_eq!(errors("frame_too_large"), 1, "{body}");
    assert_eq!(errors("post_budget_full"), 0, "{body}");
    assert_eq!(
        metrics::sample(
            &body,
            r#"switchboard_sessions_closed_total{dialect="socketio",reason="frame too large"}"#
        ),
        1,
        "{body}"
    );
    assert_eq!(
        metrics::sample(&body, "switchboard_engineio3_post_bytes"),
        0,
        "nothing was reserved: {body}"
    );
    gw.stop().await;
}
