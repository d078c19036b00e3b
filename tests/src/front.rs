//! Helpers for the front-door tests (`abuse_connections.rs`, `abuse_post_budget.rs`,
//! `proxy.rs`): the real `switchboard` binary in its own process (optionally under a low
//! open-files limit), its RSS, raw TCP connections from a chosen loopback source address, HTTP
//! answers read off them, and metric lookups.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};

use crate::{http_get, switchboard_bin, temp_dir};

/// A listener on a free loopback port with every dialect and no pages.
pub const EVERY_DIALECT_LISTENER: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "none"
"#;

/// What a [`GatewayProcess`] config ends with: the JSON log that [`GatewayProcess::spawn`]
/// reads, a 1 s shutdown grace, `[limits]` holding `limits` (TOML lines), and the room router.
pub fn process_config_tail(limits: &str) -> String {
    format!(
        r#"
[log]
format = "json"
level = "info"

[shutdown]
grace_period_secs = 1

[limits]
{limits}

[[plugin]]
type = "room-router"
"#
    )
}

/// A `switchboard` process; killed when dropped.
pub struct GatewayProcess {
    /// Its listeners, in config order.
    pub listeners: Vec<SocketAddr>,
    /// Its process id (for `/proc/PID/status`).
    pub pid: u32,
    _child: Child,
}

impl GatewayProcess {
    /// Starts the binary on `config` (which must set `[log] format = "json"` and bind port 0)
    /// and waits until its `listeners` listeners are up. With `nofile`, it runs under
    /// `ulimit -n nofile` (soft and hard).
    pub async fn spawn(config: &str, listeners: usize, nofile: Option<u64>) -> Self {
        let dir = temp_dir("front");
        let path = dir.join("switchboard.toml");
        std::fs::write(&path, config).unwrap();
        let bin = switchboard_bin();
        let mut command = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" --config \"$1\""),
                ])
                .arg(&bin)
                .arg(&path);
                c
            }
            None => {
                let mut c = Command::new(&bin);
                c.arg("--config").arg(&path);
                c
            }
        };
        let mut child = command
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("SB_TEST_NODE_LOGS").is_some() {
                    eprintln!("[gateway] {line}");
                }
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let mut addrs = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while addrs.len() < listeners {
                let line = rx.recv().await.expect("the gateway logs until it listens");
                if line["fields"]["message"] == "Listening." {
                    addrs.push(line["fields"]["addr"].as_str().unwrap().parse().unwrap());
                }
            }
        })
        .await
        .expect("the gateway listens within 10 s");
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        Self {
            listeners: addrs,
            pid,
            _child: child,
        }
    }

    /// The first listener.
    pub fn main(&self) -> SocketAddr {
        self.listeners[0]
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid).expect("VmRSS in /proc/PID/status")
    }

    /// The most resident memory the process ever had, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid, "VmHWM:").expect("VmHWM in /proc/PID/status")
    }

    /// Open descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, Iterator::count)
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS`); `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` line's value in KiB (`key` with its colon).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The status code and `Content-Length` (0 if absent) of an HTTP answer's head.
fn head_fields(head: &str) -> (u16, usize) {
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (status, length)
}

/// The status and body of a whole HTTP/1.1 answer with a `Content-Length` body; `None` while
/// `answer` holds less than all of it.
pub fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let (status, length) = head_fields(head);
    (status != 0 && body.len() >= length).then(|| (status, body[..length].to_owned()))
}

/// A TCP connection to `to` from the loopback address `from`.
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Whether the server closes `stream` (end of stream or reset) within `within`; what it sent
/// before is discarded.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// One HTTP/1.1 keep-alive request on `stream`: the status and body (`Content-Length` bodies).
pub async fn keep_alive_get(stream: &mut TcpStream, target: &str) -> (u16, String) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: gw\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("a response within 5 s")
            .unwrap_or(0);
        assert_eq!(
            n,
            1,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let (status, length) = head_fields(&String::from_utf8_lossy(&head));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the metric line starting with `series` (name and labels), 0 when absent.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "/metrics: {body}");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `GET target` over HTTP/1.0 where the gateway may close the connection unanswered (a
/// refusal at accept): `None` then, else the status and body.
pub async fn try_http_get(addr: SocketAddr, target: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {target} HTTP/1.0\r\nHost: gw\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
