//! Test harness for end-to-end tests: an in-process gateway on loopback ports, a WebSocket
//! client with timeouts, and a runner for the node scripts in `tests/node/` that drive the real
//! npm clients (socket.io-client v2 and v4, the Ant SDK, simple-peer).
//!
//! # Layout
//! - [`TestGateway`]: starts the gateway from a config string on `127.0.0.1:0`.
//! - [`WsClient`]: text-frame WebSocket client whose receives time out instead of hanging.
//! - [`node`]: runs a node script with a deadline and returns its output.
//! - [`cluster`]: a real `redis-server` and real `switchboard` processes joined by `[cluster]`.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    missing_debug_implementations
)]

pub mod ant;
pub mod binary;
pub mod cluster;
pub mod front;
pub mod jwt;
pub mod media;
pub mod metrics;
pub mod pki;

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

    /// The running gateway (phases, reload, sessions).
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the gateway is running")
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        self.running().shutdown();
    }

    /// Waits until the gateway has stopped (after [`Self::begin_shutdown`] or an admin drain).
    pub async fn wait_stopped(mut self, within: Duration) {
        if let Some(running) = self.running.take() {
            tokio::time::timeout(within, running.wait())
                .await
                .expect("gateway stops in time")
                .expect("gateway stops cleanly");
        }
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

/// The HTTP status and body of a refused WebSocket upgrade; any other failure (`what`: connect
/// or upgrade) fails the test.
fn refusal(error: tokio_tungstenite::tungstenite::Error, what: &str) -> (u16, String) {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            (response.status().as_u16(), body)
        }
        e => panic!("websocket {what} failed without an HTTP answer: {e}"),
    }
}

impl WsClient {
    /// Connects with extra request headers (`Origin`, ...); a refused upgrade gives its HTTP
    /// status and body.
    pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, (u16, String)> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = url.into_client_request().expect("valid url");
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                value.parse().expect("header value"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Self { ws }),
            Err(e) => Err(refusal(e, "connect")),
        }
    }

    /// Upgrades an open TCP connection (one from a chosen source address, say); a refused
    /// upgrade gives its HTTP status and body.
    pub async fn over(stream: TcpStream, url: &str) -> Result<Self, (u16, String)> {
        match tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await {
            Ok((ws, _)) => Ok(Self { ws }),
            Err(e) => Err(refusal(e, "upgrade")),
        }
    }

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

    /// Sends a text frame whose payload is `bytes` as they are, UTF-8 or not (a broken peer).
    pub async fn send_raw_text(&mut self, bytes: Vec<u8>) {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        let frame = Frame::message(bytes, OpCode::Data(Data::Text), true);
        self.ws.send(Message::Frame(frame)).await.expect("send");
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

/// Runs scenario `name` of `tests/node/<script>` against `gw` (the script takes the gateway's
/// HTTP URL and the scenario's name), echoes its output, and fails the test if it failed.
pub async fn node_scenario(gw: &TestGateway, script: &str, name: &str, deadline: Duration) {
    let run = node(script, &[&gw.http_url(), name], deadline).await;
    eprintln!("--- {script} {name}\n{}{}", run.stdout, run.stderr);
    run.assert_success();
}

/// Starts a gateway with `config`, runs scenario `name` of `tests/node/<script>` against it, and
/// fails the test unless the scenario passed with no error counted anywhere.
pub async fn clean_node_scenario(config: &str, script: &str, name: &str, deadline: Duration) {
    let gw = TestGateway::with_config(config).await;
    node_scenario(&gw, script, name, deadline).await;
    let body = metrics::scrape(&gw).await;
    assert_eq!(metrics::sum(&body, "switchboard_errors_total"), 0, "{body}");
    gw.stop().await;
}

/// Reads a JSON frame's string field, or fails.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
}

/// Sends one HTTP/1.0 request (the whole text) and reads the response to its end: status and
/// body. No client library needed; HTTP/1.0 makes the server close after answering.
async fn http_exchange(addr: SocketAddr, request: String) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    http_exchange_on(stream, &request).await
}

/// [`http_exchange`] over a stream the caller connected (from a chosen source address, say).
pub async fn http_exchange_on(mut stream: TcpStream, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(RECV_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response before timeout")
        .expect("an answer, not a reset");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A request with extra headers and no body (admin API calls with a bearer token): status and
/// body.
pub async fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    http_exchange(addr, request).await
}

/// A GET against the gateway: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_exchange(addr, format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")).await
}

/// A request with an optional JSON body (the REST API): status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_exchange(addr, request).await
}

/// One listener on a free loopback port with every dialect and no pages, a 2 s shutdown grace,
/// then `rest` (TOML tables: plugins, apps, limits).
pub fn every_dialect_config(rest: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "none"

[shutdown]
grace_period_secs = 2

{rest}
"#
    )
}

/// One listener on a free loopback port (default dialects and pages), a 2 s shutdown grace,
/// `[limits]` holding `limits` (TOML lines), and the room router.
pub fn limits_config(limits: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[shutdown]
grace_period_secs = 2

[limits]
{limits}

[[plugin]]
type = "room-router"
"#
    )
}

/// Seconds since the Unix epoch, as token claims (`exp`, `iat`) count them.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A fresh, empty directory under the system temp dir, for a test's files (a store, ...).
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("sb-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

// === browser tests ===

/// The `switchboard` binary the browser tests run: `$SWITCHBOARD_BIN`, else the one cargo built
/// next to this test executable (`target/<profile>/switchboard`), else
/// `$CARGO_TARGET_DIR/debug/switchboard` or `<repo>/target/debug/switchboard`. Fails the test
/// when it is missing, or older than a file it was built from (the pages are embedded, and
/// `cargo nextest run -p switchboard-tests` does not rebuild another package's binary).
pub fn switchboard_bin() -> PathBuf {
    let bin = std::env::var_os("SWITCHBOARD_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            // target/<profile>/deps/<test binary> -> target/<profile>/switchboard
            let exe = std::env::current_exe().ok()?;
            let candidate = exe.parent()?.parent()?.join("switchboard");
            candidate.is_file().then_some(candidate)
        })
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"))
                .join("debug/switchboard")
        });
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "no gateway binary at {}: run cargo build --workspace first",
                bin.display()
            )
        });
    // Cargo's dep-info next to the binary lists every source file, included pages too.
    let dep_info = std::fs::read_to_string(bin.with_extension("d")).unwrap_or_default();
    let sources = dep_info
        .lines()
        .next()
        .and_then(|line| line.split_once(": "))
        .map(|(_, deps)| deps.replace("\\ ", "\0"))
        .unwrap_or_default();
    for source in sources.split_whitespace().map(|s| s.replace('\0', " ")) {
        let newer = std::fs::metadata(&source)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built);
        assert!(
            !newer,
            "{} is older than {source}: run cargo build --workspace first",
            bin.display()
        );
    }
    bin
}

/// Whether this process may create a network namespace and bring `lo` up in it (`unshare -n`
/// needs CAP_SYS_ADMIN: root).
pub fn netns_available() -> bool {
    std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one case of the browser matrix, `node tests/browser/matrix.mjs CASE`, against the
/// [`switchboard_bin`] binary: inside a fresh network namespace with only `lo` up when
/// [`netns_available`] (the gateway then runs on its embedded default config, ports 5080 and
/// 7000, and no packet leaves loopback), otherwise directly (the script then picks free loopback
/// ports). The script and everything it started are killed at `deadline`.
pub async fn browser_case(case: &str, deadline: Duration) -> NodeRun {
    browser_script("tests/browser/matrix.mjs", case, deadline).await
}

/// Runs `node SCRIPT CASE` with [`browser_script`] and fails the test unless it passed; on a
/// pass, echoes what the script reported (its figures and steps) to the test's output.
pub async fn assert_browser_script(script: &str, case: &str, deadline: Duration) {
    let run = browser_script(script, case, deadline).await;
    if run.success {
        eprintln!("{}", run.stdout.trim_end());
    }
    run.assert_success();
}

/// Runs `node SCRIPT CASE` like [`browser_case`] does for the matrix (same binary, namespace,
/// environment and deadline handling), for another script in `tests/browser/` that takes a case
/// name, e.g. `tests/browser/conference.mjs`.
pub async fn browser_script(script: &str, case: &str, deadline: Duration) -> NodeRun {
    let root = repo_root();
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "node_modules/ is missing: run `npm ci` in {} (scripts/test.sh does)",
        root.display()
    );
    let bin = switchboard_bin();
    let mut cmd = if netns_available() {
        let in_netns = r#"ip link set lo up && exec node "$0" "$1""#;
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["-n", "sh", "-c", in_netns, script, case])
            .env("SWITCHBOARD_NETNS", "1");
        cmd
    } else {
        let mut cmd = tokio::process::Command::new("node");
        cmd.args([script, case]);
        cmd
    };
    // Its own process group, so that a timeout also takes down the gateway the script started
    // (Chromium exits by itself when the script's DevTools pipe closes).
    cmd.current_dir(&root)
        .env("SWITCHBOARD_BIN", &bin)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("node runs");
    let pid = child.id();
    let Ok(output) = tokio::time::timeout(deadline, child.wait_with_output()).await else {
        if let Some(pid) = pid {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        panic!(
            "browser case {case} did not finish within {deadline:?}; see tests/artifacts/{case}/"
        );
    };
    let output = output.expect("node runs");
    NodeRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
