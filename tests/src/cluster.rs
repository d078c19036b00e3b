//! Cluster test rig: a real `redis-server` on a free loopback port and real `switchboard`
//! processes joined to it by `[cluster]`. Everything is killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{WsClient, http_get, switchboard_bin, temp_dir};

/// The Debian package's server (`scripts/test.sh` installs it when missing).
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Heartbeat interval of test nodes.
pub const HEARTBEAT_MS: u64 = 200;
/// Node TTL of test nodes: a killed node's peers leave within this plus a heartbeat.
pub const NODE_TTL_MS: u64 = 1000;

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` without persistence on a loopback port.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// Arguments after the defaults (later ones win: `--port 0 --tls-port P` serves TLS only).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Starts one on a free port with `extra` arguments (`{port}` in them is replaced by the
    /// port: `--port 0 --tls-port {port}`) and waits until the port accepts connections.
    pub async fn start_with(extra: Vec<String>) -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            child: None,
            dir: temp_dir("redis"),
            extra: extra
                .into_iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect(),
        };
        server.spawn().await;
        server
    }

    /// A free port for a server that is not started yet ([`Self::restart`] starts it).
    pub fn reserve() -> Self {
        Self {
            port: free_port(),
            child: None,
            dir: temp_dir("redis"),
            extra: Vec::new(),
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new(REDIS_SERVER)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.to_str().unwrap(),
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REDIS_SERVER} ({e}): run scripts/test.sh"));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not listen on {addr} within 5 s");
    }

    /// Runs `redis-cli` against the server; returns its output.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .expect("redis-cli runs (package redis-tools, installed with redis-server)");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILLs the server (no shutdown, no save).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the server: a frozen Redis keeps its data and
    /// its connections but answers nothing.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts a fresh (empty) server on the same port (killing the running one, if any).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}

/// A `switchboard` process joined to a cluster.
pub struct Node {
    /// Its listener (all dialects).
    pub main: SocketAddr,
    /// Its `node_id`.
    pub name: String,
    child: Option<Child>,
}

/// The config of a test node: one listener on a free port, JSON logs, generous message rates
/// (the ordering test sends bursts), short heartbeats, the room router.
pub fn node_config(redis_url: &str, name: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "demo"

[log]
format = "json"
level = "info"

[shutdown]
grace_period_secs = 2

[limits]
messages_per_sec = 100000.0
message_burst = 100000

[cluster]
redis_url = "{redis_url}"
node_id = "{name}"
heartbeat_interval_ms = {HEARTBEAT_MS}
node_ttl_ms = {NODE_TTL_MS}

[[plugin]]
type = "room-router"
"#
    )
}

impl Node {
    /// Starts the real binary on [`node_config`] and waits until it serves and reaches Redis.
    pub async fn start(redis_url: &str, name: &str) -> Self {
        let node = Self::spawn(&node_config(redis_url, name), name).await;
        node.wait_health("cluster: ok", Duration::from_secs(10))
            .await;
        node
    }

    /// Starts the real binary on `config` (its first listener must bind port 0) and waits for
    /// its `Listening.` log line.
    pub async fn spawn(config: &str, name: &str) -> Self {
        Self::spawn_env(config, name, &[]).await
    }

    /// [`Self::spawn`] with extra environment variables (secrets given as `{ env = .. }`).
    pub async fn spawn_env(config: &str, name: &str, env: &[(&str, &str)]) -> Self {
        let dir = temp_dir(&format!("node-{name}"));
        let path = dir.join("switchboard.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(switchboard_bin())
            .args(["--config", path.to_str().unwrap()])
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let label = name.to_owned();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("SB_TEST_NODE_LOGS").is_some() {
                    eprintln!("[{label}] {line}");
                }
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let main = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let line = rx.recv().await.expect("the node logs until it listens");
                if line["fields"]["message"] == "Listening." {
                    return line["fields"]["addr"]
                        .as_str()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap();
                }
            }
        })
        .await
        .expect("the node listens within 10 s");
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        Self {
            main,
            name: name.to_owned(),
            child: Some(child),
        }
    }

    /// `ws://ADDR/{app}/websocket`.
    pub fn ant_url(&self, app: &str) -> String {
        format!("ws://{}/{app}/websocket", self.main)
    }

    /// `ws://ADDR/ws/{room}`.
    pub fn raw_url(&self, room: &str) -> String {
        format!("ws://{}/ws/{room}", self.main)
    }

    /// `http://ADDR`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.main)
    }

    /// The `/healthz` body.
    pub async fn health(&self) -> String {
        http_get(self.main, "/healthz").await.1
    }

    /// Waits until `/healthz` contains `needle`.
    pub async fn wait_health(&self, needle: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let body = self.health().await;
            if body.contains(needle) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: /healthz never said `{needle}`; last: {body}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM: a graceful drain; waits (10 s at most) until the process has exited.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().unwrap().to_string();
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap();
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("the node drains and exits within 10 s")
                .unwrap();
            assert!(status.success(), "{}: {status}", self.name);
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process: a stopped node misses its
    /// heartbeats and is taken for dead, then resumes where it was.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGKILLs the process: no drain, no goodbye to Redis.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }
}

/// An Ant `join` (peer-to-peer) for `room`.
pub fn ant_join(room: &str) -> Value {
    json!({"command":"join","streamId":room,"mode":"both"})
}

/// Two Ant peers in `room`, the first on `a`, the second on `b`, past `joined`, `joined` and
/// `start`.
pub async fn ant_pair(a: &Node, b: &Node, room: &str) -> (WsClient, WsClient) {
    let mut pa = WsClient::connect(&a.ant_url("LiveApp")).await;
    pa.send_json(ant_join(room)).await;
    assert_eq!(pa.recv_json().await["definition"], "joined");
    let mut pb = WsClient::connect(&b.ant_url("LiveApp")).await;
    pb.send_json(ant_join(room)).await;
    assert_eq!(pb.recv_json().await["definition"], "joined");
    assert_eq!(pa.recv_json().await["command"], "start");
    (pa, pb)
}

/// A numbered ICE candidate: `label` carries the number, so order and loss are visible.
pub fn numbered_candidate(room: &str, n: usize) -> Value {
    json!({"command":"takeCandidate","streamId":room,"label":n,"id":"0",
        "candidate":format!("candidate:{n} 1 udp 1 127.0.0.1 9 typ host")})
}

/// Sends candidates `from..from + n` from `peer`.
pub async fn send_candidates(peer: &mut WsClient, room: &str, from: usize, n: usize) {
    for i in from..from + n {
        peer.send_json(numbered_candidate(room, i)).await;
    }
}

/// Reads `n` frames from `peer` and checks they are the candidates `from..from + n` in order.
pub async fn expect_candidates(peer: &mut WsClient, room: &str, from: usize, n: usize) {
    for i in from..from + n {
        let got = peer.recv_json().await;
        assert_eq!(got["command"], "takeCandidate", "candidate {i}: {got}");
        assert_eq!(got["label"], i, "candidate {i} in order: {got}");
        assert_eq!(got["streamId"], room);
    }
}

/// `n` candidates each way between `pa` and `pb`, every one received once, in order.
pub async fn both_ways(pa: &mut WsClient, pb: &mut WsClient, room: &str, from: usize, n: usize) {
    send_candidates(pa, room, from, n).await;
    send_candidates(pb, room, from, n).await;
    expect_candidates(pb, room, from, n).await;
    expect_candidates(pa, room, from, n).await;
}

/// A conference participant of `room` with stream id `stream` (its `joinRoom` answered
/// `joinedTheRoom`) on a fresh connection to `node`'s `LiveApp`.
pub async fn participant(node: &Node, room: &str, stream: &str) -> WsClient {
    let mut c = WsClient::connect(&node.ant_url("LiveApp")).await;
    c.send_json(json!({"command":"joinRoom","room":room,"streamId":stream}))
        .await;
    let joined = c.recv_json().await;
    assert_eq!(joined["definition"], "joinedTheRoom", "{joined}");
    c
}

/// A test node on `redis` whose `[cluster]` table gets the `extra` lines and whose config ends
/// with `tail` (another table), started and reporting `cluster: ok`.
pub async fn start_node_with(redis: &RedisServer, name: &str, extra: &str, tail: &str) -> Node {
    let ttl = format!("node_ttl_ms = {NODE_TTL_MS}\n");
    let config = node_config(&redis.url(), name).replace(&ttl, &format!("{ttl}{extra}\n")) + tail;
    let node = Node::spawn(&config, name).await;
    node.wait_health("cluster: ok", Duration::from_secs(10))
        .await;
    node
}

/// `switchboard_cluster_frames_total{direction}` on `node` (0 when never counted).
pub async fn frames(node: &Node, direction: &str) -> u64 {
    let (_, metrics) = http_get(node.main, "/metrics").await;
    let name = format!(r#"switchboard_cluster_frames_total{{direction="{direction}"}} "#);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .map_or(0, |v| v.parse().unwrap())
}

/// Frames each peer sends in one burst while Redis is disrupted under it.
const BURST: usize = 1200;

/// An Ant call between `a` and `b` in `room`: `BURST` candidates each way (a short pause every
/// ten, so that the burst outlasts a heartbeat or two), `disrupt` run once the burst is
/// crossing, then every frame checked (once, in order), `settle_ms` of silence, and ten more
/// each way. Returns the two peers for the caller's own checks.
pub async fn across_a_disruption(
    a: &Node,
    b: &Node,
    room: &'static str,
    settle_ms: u64,
    disrupt: impl AsyncFnOnce(),
) -> (WsClient, WsClient) {
    let (pa, pb) = ant_pair(a, b, room).await;
    let (mid_a, at_a) = tokio::sync::oneshot::channel();
    let (mid_b, at_b) = tokio::sync::oneshot::channel();
    let side_a = tokio::spawn(burst(pa, room, mid_a));
    let side_b = tokio::spawn(burst(pb, room, mid_b));
    // Whichever side is further along: the other's frames are still crossing.
    tokio::select! {
        _ = at_a => {}
        _ = at_b => {}
    }
    disrupt().await;
    let mut pa = side_a.await.unwrap();
    let mut pb = side_b.await.unwrap();
    pa.expect_silence(settle_ms).await;
    pb.expect_silence(50).await;
    both_ways(&mut pa, &mut pb, room, BURST, 10).await;
    (pa, pb)
}

/// Sends `BURST` candidates from `peer`, then reads its partner's `BURST`, checking each is the
/// next in order; `mid` fires when the 50th has arrived (the burst is in flight both ways).
async fn burst(
    mut peer: WsClient,
    room: &'static str,
    mid: tokio::sync::oneshot::Sender<()>,
) -> WsClient {
    for from in (0..BURST).step_by(10) {
        send_candidates(&mut peer, room, from, 10).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut mid = Some(mid);
    for i in 0..BURST {
        let got = peer.recv_json().await;
        assert_eq!(got["command"], "takeCandidate", "candidate {i}: {got}");
        assert_eq!(got["label"], i, "candidate {i} in order, once: {got}");
        if i == 50
            && let Some(mid) = mid.take()
        {
            let _ = mid.send(());
        }
    }
    peer
}
