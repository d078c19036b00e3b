//! Test harness for end-to-end tests: an in-process gateway on loopback ports, a WebSocket
//! client with timeouts, and a runner for the node scripts in `tests/node/` that drive the real
//! npm clients (socket.io-client v2 and v4, the Ant SDK, simple-peer).
//!
//! # Layout
//! - [`TestGateway`]: starts the gateway from a config string on `127.0.0.1:0`.
//! - [`WsClient`]: text-frame WebSocket client whose receives time out instead of hanging.
//! - [`node`]: runs a node script with a deadline and returns its output.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    missing_debug_implementations
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard::{GatewayConfig, Running};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a receive waits before the test fails.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A main listener (all dialects, demo pages) and a classic socket.io listener, both on free
/// loopback ports, with the room router.
pub const TEST_CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "demo"

[[listener]]
bind = "127.0.0.1:0"
dialects = ["socketio"]
socketio_room = "simplep2p"
pages = "classic"

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "room-router"
"#;

/// The repository root (where `node_modules/` and `tests/node/` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// An in-process gateway on loopback.
pub struct TestGateway {
    /// The first listener (all dialects).
    pub main: SocketAddr,
    /// The second listener, if the config has one (classic socket.io).
    pub classic: Option<SocketAddr>,
    running: Option<Running>,
}

impl TestGateway {
    /// Starts the gateway with [`TEST_CONFIG`].
    pub async fn start() -> Self {
        Self::with_config(TEST_CONFIG).await
    }

    /// Starts the gateway with a config string (listeners should bind `127.0.0.1:0`).
    pub async fn with_config(toml: &str) -> Self {
        let config = GatewayConfig::from_toml(toml).expect("test config is valid");
        let running = switchboard::start(config).await.expect("gateway starts");
        let main = running.local_addrs[0];
        let classic = running.local_addrs.get(1).copied();
        Self {
            main,
            classic,
            running: Some(running),
        }
    }

    /// `ws://127.0.0.1:PORT/{app}/websocket`.
    pub fn ant_url(&self, app: &str) -> String {
        format!("ws://{}/{app}/websocket", self.main)
    }

    /// `ws://127.0.0.1:PORT/ws/{room}`.
    pub fn raw_url(&self, room: &str) -> String {
        format!("ws://{}/ws/{room}", self.main)
    }

    /// `http://127.0.0.1:PORT` of the main listener.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.main)
    }

    /// `http://127.0.0.1:PORT` of the classic listener.
    pub fn classic_url(&self) -> String {
        format!(
            "http://{}",
            self.classic.expect("config has a second listener")
        )
    }

    /// Shuts down gracefully and waits.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
            tokio::time::timeout(Duration::from_secs(10), running.wait())
                .await
                .expect("gateway stops within 10 s")
                .expect("gateway stops cleanly");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.shutdown();
        }
    }
}

/// A WebSocket test client.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a receive produced.
#[derive(Debug)]
pub enum Received {
    /// A text frame.
    Text(String),
    /// The server closed the connection (with its close frame, if any).
    Closed(Option<CloseFrame>),
}

impl WsClient {
    /// Connects or fails the test.
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Self { ws }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send");
    }

    /// Next text frame or close, skipping pings; fails the test after [`RECV_TIMEOUT`].
    pub async fn recv(&mut self) -> Received {
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a frame arrives before the timeout");
            match next {
                None => return Received::Closed(None),
                Some(Err(_)) => return Received::Closed(None),
                Some(Ok(Message::Text(t))) => return Received::Text(t.to_string()),
                Some(Ok(Message::Close(frame))) => return Received::Closed(frame),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Next text frame; fails the test on close or timeout.
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Received::Text(t) => t,
            Received::Closed(frame) => {
                panic!("expected a text frame, connection closed: {frame:?}")
            }
        }
    }

    /// Next text frame parsed as JSON.
    pub async fn recv_json(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Expects the server to close; returns the close frame.
    pub async fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.recv().await {
                Received::Closed(frame) => return frame,
                Received::Text(_) => continue,
            }
        }
    }

    /// Asserts that nothing arrives for `ms` milliseconds.
    pub async fn expect_silence(&mut self, ms: u64) {
        if let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_millis(ms), self.ws.next()).await
        {
            panic!("expected silence, got {msg:?}");
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Output of a node script.
#[derive(Debug)]
pub struct NodeRun {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `node tests/node/<script> args...` from the repository root with a deadline. Fails the
/// test with a clear message when `node_modules/` is missing (run `npm ci`).
pub async fn node(script: &str, args: &[&str], deadline: Duration) -> NodeRun {
    let root = repo_root();
    assert!(
        root.join("node_modules").is_dir(),
        "node_modules/ is missing: run `npm ci` in {} (scripts/test.sh does)",
        root.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(root.join("tests/node").join(script))
        .args(args)
        .current_dir(&root)
        .kill_on_drop(true);
    let output = tokio::time::timeout(deadline, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("node {script} did not finish within {deadline:?}"))
        .expect("node runs");
    NodeRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl NodeRun {
    /// Fails the test (printing both streams) unless the script succeeded.
    pub fn assert_success(&self) {
        assert!(
            self.success,
            "node script failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
    }
}

/// Reads a JSON frame's string field, or fails.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

/// A minimal HTTP/1.0 GET against the gateway (no client library needed): status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(RECV_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response before timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}
