//! A room's deliveries reach every member in the order the pipeline dispatched them
//! (docs/plugins.md, "Concurrency and ordering"), with several senders in one lobby and full
//! queues: real raw WebSocket clients on the real binary, a room router that relays to every
//! other member, a small session queue, and observers with small TCP receive buffers that stop
//! reading for a while (so the gateway's queues to them fill). A pinger and a ponger make a
//! causal chain (the ponger answers each ping it reads); every other member must get each ping
//! before its pong, and every sender's numbered messages in the order it sent them.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_tests::cluster::Node;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// Pings of the causal chain (and so pongs).
const PINGS: u64 = 1000;
/// Numbered messages each observer sends.
const SEQS: u64 = 500;
/// Bytes every message carries besides its numbers: enough that a pause of an observer fills
/// the gateway's socket buffers to it, and then its queue.
const PAD: usize = 1000;
/// Observers (members that only send numbered messages and check what they get).
const OBSERVERS: usize = 3;
/// Longest the test waits for every delivery (a failure, not a measurement).
const DEADLINE: Duration = Duration::from_secs(60);

fn config() -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["raw"]
pages = "none"

[log]
format = "json"
level = "info"

[limits]
messages_per_sec = 1000000.0
message_burst = 1000000
session_queue_len = 2

[[plugin]]
type = "room-router"
[plugin.settings]
max_peers = {}
"#,
        OBSERVERS + 2
    )
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A raw client of `room` whose TCP receive buffer is small, so that a pause in its reading
/// fills the gateway's queue to it quickly.
async fn connect(node: &Node, room: &str) -> Ws {
    let url = node.raw_url(room);
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws
}

fn pad() -> String {
    "x".repeat(PAD)
}

/// A peer's message of the test (the gateway's own notices have no `k`).
fn ours(msg: Message) -> Option<Value> {
    let Message::Text(text) = msg else {
        return None;
    };
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("k").is_some().then_some(value)
}

/// What one member saw wrong, if anything.
#[derive(Default)]
struct Check {
    /// The last number seen of each sender's numbered messages.
    last: HashMap<String, u64>,
    /// Pings seen so far.
    pings: u64,
    pongs: u64,
    faults: Vec<String>,
}

impl Check {
    fn saw(&mut self, v: &Value) {
        let n = v["n"].as_u64().unwrap();
        match v["k"].as_str().unwrap() {
            "ping" => {
                if n != self.pings {
                    self.faults
                        .push(format!("ping {n} after {} pings", self.pings));
                }
                self.pings += 1;
            }
            "pong" => {
                if n >= self.pings {
                    self.faults
                        .push(format!("pong {n} before its ping ({} pings)", self.pings));
                }
                if n != self.pongs {
                    self.faults
                        .push(format!("pong {n} after {} pongs", self.pongs));
                }
                self.pongs += 1;
            }
            _ => {
                let from = v["from"].as_str().unwrap().to_owned();
                let last = self.last.insert(from.clone(), n);
                if last.map_or(n != 0, |l| n != l + 1) {
                    self.faults
                        .push(format!("{from}'s message {n} after {last:?}"));
                }
            }
        }
    }

    fn done(&self, expected_seqs: u64) -> bool {
        self.pings == PINGS
            && self.pongs == PINGS
            && self.last.values().map(|l| l + 1).sum::<u64>() == expected_seqs
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_gets_the_rooms_deliveries_in_dispatch_order() {
    let node = Node::spawn(&config(), "room-order").await;
    let room = "lobby";
    let pinger = connect(&node, room).await;
    let ponger = connect(&node, room).await;
    let mut observers = Vec::new();
    for _ in 0..OBSERVERS {
        observers.push(connect(&node, room).await);
    }
    // Let every join land before anyone sends (a pause, not a measurement).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The ponger answers each ping as it reads it, and drains everything else.
    let ponger = tokio::spawn(async move {
        let (mut tx, mut rx) = ponger.split();
        let mut answered = 0;
        while answered < PINGS {
            let Some(Ok(msg)) = rx.next().await else {
                break;
            };
            if let Some(v) = ours(msg)
                && v["k"] == "ping"
            {
                tx.send(Message::text(
                    json!({"k":"pong","n":v["n"],"pad":pad()}).to_string(),
                ))
                .await
                .unwrap();
                answered += 1;
            }
        }
        // Keep reading so the room's other deliveries to it never fill its queue.
        tokio::spawn(async move { while rx.next().await.is_some() {} });
        answered
    });
    // The pinger sends its pings, reading what comes to it meanwhile.
    let pinger = tokio::spawn(async move {
        let (mut tx, mut rx) = pinger.split();
        tokio::spawn(async move { while rx.next().await.is_some() {} });
        for n in 0..PINGS {
            tx.send(Message::text(
                json!({"k":"ping","n":n,"pad":pad()}).to_string(),
            ))
            .await
            .unwrap();
        }
        tx
    });
    // Each observer sends its numbered messages and checks everything it gets; it stops
    // reading for 50 ms every 100 messages, so the gateway's queue to it fills.
    let mut checks = Vec::new();
    for (i, ws) in observers.into_iter().enumerate() {
        checks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let from = format!("o{i}");
            let sender = tokio::spawn(async move {
                for n in 0..SEQS {
                    tx.send(Message::text(
                        json!({"k":"seq","from":from,"n":n,"pad":pad()}).to_string(),
                    ))
                    .await
                    .unwrap();
                }
                tx
            });
            let expected = SEQS * (OBSERVERS as u64 - 1);
            let mut check = Check::default();
            let mut read = 0u64;
            let outcome = tokio::time::timeout(DEADLINE, async {
                while !check.done(expected) {
                    let Some(Ok(msg)) = rx.next().await else {
                        break;
                    };
                    if let Some(v) = ours(msg) {
                        check.saw(&v);
                    }
                    read += 1;
                    if read.is_multiple_of(100) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
            .await;
            let _tx = sender.await.unwrap();
            (i, outcome.is_ok() && check.done(expected), check)
        }));
    }
    let mut faults = Vec::new();
    for check in checks {
        let (i, complete, check) = check.await.unwrap();
        assert!(
            complete,
            "observer {i} got {} pings, {} pongs, {:?} of the others' messages",
            check.pings, check.pongs, check.last
        );
        faults.extend(check.faults.iter().map(|f| format!("observer {i}: {f}")));
    }
    assert_eq!(ponger.await.unwrap(), PINGS, "the ponger read every ping");
    let _pinger_tx = pinger.await.unwrap();
    assert!(
        faults.is_empty(),
        "{} deliveries out of dispatch order, first: {:?}",
        faults.len(),
        &faults[..faults.len().min(5)]
    );
}
