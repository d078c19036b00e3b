//! The real binary behind a real nginx (X-Forwarded-For), a real haproxy (PROXY protocol v2)
//! and nginx's stream proxy (PROXY protocol v1), all run from the configs in docs/deploy/ with
//! free loopback ports: the REST API's
//! `allowed_cidrs` and the per-IP caps see the real client (127.0.0.2 or 127.0.0.3), not the
//! proxy (127.0.0.1); forged headers and direct connections are not believed; malformed PROXY
//! and forwarding headers close the connection and are counted; Ant WebSocket calls and
//! socket.io (long-polling and WebSocket, the real npm clients) work through every proxy.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use switchboard_tests::cluster::free_port;
use switchboard_tests::front::{
    GatewayProcess, closed_within, connect_from, metric, process_config_tail,
};
use switchboard_tests::{WsClient, field, http_exchange_on, node, repo_root, temp_dir};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// Not in `[rest] allowed_cidrs`.
const OUTSIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The only address in `[rest] allowed_cidrs`.
const INSIDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// The gateway: a plain listener (behind nginx) and a PROXY-protocol one (behind haproxy or
/// nginx's stream proxy).
fn gateway_config(max_per_ip: usize) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "none"

[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]
pages = "none"
proxy_protocol = true

[proxy]
trusted = ["127.0.0.1/32"]

[rest]
allowed_cidrs = ["127.0.0.3/32"]

{}"#,
        process_config_tail(&format!("max_connections_per_ip = {max_per_ip}"))
    )
}

/// A proxy process from a docs/deploy config; killed when dropped.
struct Proxy {
    addr: SocketAddr,
    _child: Child,
}

impl Proxy {
    /// nginx from docs/deploy/nginx.conf in front of `upstream`.
    async fn nginx(upstream: SocketAddr) -> Self {
        Self::nginx_from("nginx.conf", "127.0.0.1:5080", "8080", upstream).await
    }

    /// nginx's stream proxy from docs/deploy/nginx-stream.conf in front of `upstream`.
    async fn nginx_stream(upstream: SocketAddr) -> Self {
        Self::nginx_from("nginx-stream.conf", "127.0.0.1:5081", "8070", upstream).await
    }

    /// nginx from docs/deploy/`file`, its upstream `documented_upstream` replaced by
    /// `upstream` and its listen port `documented_port` by a free one.
    async fn nginx_from(
        file: &str,
        documented_upstream: &str,
        documented_port: &str,
        upstream: SocketAddr,
    ) -> Self {
        let port = free_port();
        let text = std::fs::read_to_string(repo_root().join("docs/deploy").join(file)).unwrap();
        let text = replace_once(&text, documented_upstream, &upstream.to_string());
        let text = replace_once(
            &text,
            &format!("listen 127.0.0.1:{documented_port}"),
            &format!("listen 127.0.0.1:{port}"),
        );
        let dir = temp_dir("nginx");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, text).unwrap();
        let d = dir.to_str().unwrap();
        let child = Command::new(system_binary("nginx"))
            .args([
                "-p",
                d,
                "-c",
                conf.to_str().unwrap(),
                "-e",
                &format!("{d}/error.log"),
            ])
            .args(["-g", &format!("daemon off; pid {d}/nginx.pid;")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx (Debian package) is installed");
        Self::ready(child, port).await
    }

    /// haproxy from docs/deploy/haproxy.cfg in front of `upstream`.
    async fn haproxy(upstream: SocketAddr) -> Self {
        let port = free_port();
        let text = std::fs::read_to_string(repo_root().join("docs/deploy/haproxy.cfg")).unwrap();
        let text = replace_once(&text, "127.0.0.1:5081", &upstream.to_string());
        let text = replace_once(
            &text,
            "bind 127.0.0.1:8090",
            &format!("bind 127.0.0.1:{port}"),
        );
        let conf = temp_dir("haproxy").join("haproxy.cfg");
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(system_binary("haproxy"))
            .args(["-db", "-f", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("haproxy (Debian package) is installed");
        Self::ready(child, port).await
    }

    async fn ready(child: Child, port: u16) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the proxy never listened on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            addr,
            _child: child,
        }
    }
}

/// A Debian daemon binary: in /usr/sbin, which is not on every user's `PATH`.
fn system_binary(name: &str) -> String {
    let sbin = format!("/usr/sbin/{name}");
    if std::path::Path::new(&sbin).is_file() {
        sbin
    } else {
        name.to_owned()
    }
}

/// The docs config must contain what the test replaces, or it has drifted from the test.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` once in the deploy config"
    );
    text.replace(from, to)
}

/// `GET target` from `from` to `to` with extra header lines: status and body.
async fn get_from(from: IpAddr, to: SocketAddr, target: &str, headers: &str) -> (u16, String) {
    let stream = connect_from(from, to).await.unwrap();
    let request = format!("GET {target} HTTP/1.0\r\nHost: gw\r\n{headers}\r\n");
    http_exchange_on(stream, &request).await
}

const REST_TOKEN: &str = "/LiveApp/rest/v2/broadcasts/s1/token?expireDate=4102444800&type=play";

async fn assert_rest_sees_the_client(via: SocketAddr) {
    let (status, body) = get_from(OUTSIDER, via, REST_TOKEN, "").await;
    assert_eq!(status, 403, "an outsider through the proxy: {body}");
    let (status, body) = get_from(INSIDER, via, REST_TOKEN, "").await;
    assert_eq!(status, 200, "the allowed client through the proxy: {body}");
    // A forged header from the outsider is not believed: the proxy's own entry is the nearest.
    let forged = "X-Forwarded-For: 127.0.0.3\r\nForwarded: for=127.0.0.3\r\n";
    let (status, _) = get_from(OUTSIDER, via, REST_TOKEN, forged).await;
    assert_eq!(status, 403, "a forged forwarding header was believed");
}

/// An Ant WebSocket through the proxy from `from`.
async fn ant_from(from: IpAddr, via: SocketAddr) -> Result<WsClient, (u16, String)> {
    let stream = connect_from(from, via).await.unwrap();
    WsClient::over(stream, &format!("ws://{via}/LiveApp/websocket")).await
}

/// The per-IP session cap (2) counts the clients behind the proxy, and a call through it relays.
async fn assert_cap_counts_real_clients_and_calls_work(via: SocketAddr) {
    let mut a = ant_from(OUTSIDER, via).await.unwrap();
    let mut b = ant_from(OUTSIDER, via).await.unwrap();
    let third = ant_from(OUTSIDER, via).await;
    assert_eq!(
        third.err().map(|(status, _)| status),
        Some(429),
        "a third from one client"
    );
    let other = ant_from(INSIDER, via).await;
    assert!(
        other.is_ok(),
        "another client behind the same proxy is not capped"
    );
    let join = json!({"command":"join","streamId":"proxied","mode":"both"});
    a.send_json(join.clone()).await;
    assert_eq!(field(&a.recv_json().await, "definition"), "joined");
    b.send_json(join).await;
    assert_eq!(field(&a.recv_json().await, "command"), "start");
    assert_eq!(field(&b.recv_json().await, "definition"), "joined");
    let msg =
        r#"{"command":"peerMessageCommand","streamId":"proxied","definition":"d","data":"x"}"#;
    b.send_text(msg).await;
    assert_eq!(a.recv_text().await, msg);
}

#[tokio::test]
async fn behind_nginx_the_forwarded_client_is_the_client() {
    let gw = GatewayProcess::spawn(&gateway_config(2), 2, None).await;
    let nginx = Proxy::nginx(gw.listeners[0]).await;
    assert_rest_sees_the_client(nginx.addr).await;
    // Straight to the gateway, the same forged header from an untrusted peer is ignored.
    let forged = "X-Forwarded-For: 127.0.0.3\r\n";
    let (status, _) = get_from(OUTSIDER, gw.listeners[0], REST_TOKEN, forged).await;
    assert_eq!(status, 403);
    assert_cap_counts_real_clients_and_calls_work(nginx.addr).await;
    // A malformed forwarding header from the trusted proxy: 400, connection closed, counted.
    let (status, body) = get_from(
        PROXY,
        gw.listeners[0],
        "/healthz",
        "X-Forwarded-For: nope\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let counted = metric(
        gw.listeners[0],
        r#"switchboard_connections_refused_total{reason="forwarded_header_malformed"}"#,
    )
    .await;
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn behind_haproxy_the_proxy_protocol_client_is_the_client() {
    let gw = GatewayProcess::spawn(&gateway_config(2), 2, None).await;
    let haproxy = Proxy::haproxy(gw.listeners[1]).await;
    assert_rest_sees_the_client(haproxy.addr).await;
    assert_cap_counts_real_clients_and_calls_work(haproxy.addr).await;
    // Direct connections to the PROXY listener: an untrusted peer is closed; a trusted peer's
    // malformed PROXY line is closed too. Each is counted.
    let mut direct = connect_from(OUTSIDER, gw.listeners[1]).await.unwrap();
    direct
        .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut direct, Duration::from_secs(5)).await);
    let mut bad = connect_from(PROXY, gw.listeners[1]).await.unwrap();
    bad.write_all(b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET / HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut bad, Duration::from_secs(5)).await);
    for reason in ["proxy_untrusted", "proxy_header_malformed"] {
        let series = format!(r#"switchboard_connections_refused_total{{reason="{reason}"}}"#);
        assert_eq!(metric(gw.listeners[0], &series).await, 1.0, "{reason}");
    }
}

#[tokio::test]
async fn behind_nginx_stream_the_proxy_protocol_v1_client_is_the_client() {
    let gw = GatewayProcess::spawn(&gateway_config(2), 2, None).await;
    let nginx = Proxy::nginx_stream(gw.listeners[1]).await;
    assert_rest_sees_the_client(nginx.addr).await;
    assert_cap_counts_real_clients_and_calls_work(nginx.addr).await;
    // The refusals and the cap were decided on the clients' addresses, not nginx's: nothing was
    // refused as an untrusted or malformed PROXY peer.
    for reason in ["proxy_untrusted", "proxy_header_malformed"] {
        let series = format!(r#"switchboard_connections_refused_total{{reason="{reason}"}}"#);
        assert_eq!(metric(gw.listeners[0], &series).await, 0.0, "{reason}");
    }
}

/// socket.io v2 and v4, long-polling and WebSocket (the real npm clients), relay through every
/// proxy.
#[tokio::test]
async fn socketio_polling_and_websocket_work_through_every_proxy() {
    let gw = GatewayProcess::spawn(&gateway_config(64), 2, None).await;
    let nginx = Proxy::nginx(gw.listeners[0]).await;
    let haproxy = Proxy::haproxy(gw.listeners[1]).await;
    let nginx_stream = Proxy::nginx_stream(gw.listeners[1]).await;
    for via in [nginx.addr, haproxy.addr, nginx_stream.addr] {
        let run = node(
            "sio_relay.mjs",
            &[&format!("http://{via}")],
            Duration::from_secs(60),
        )
        .await;
        run.assert_success();
    }
}

/// docs/operations.md shows the deploy configs these tests run, unchanged.
#[test]
fn the_operations_guide_shows_the_deploy_configs_verbatim() {
    let guide = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    for file in [
        "docs/deploy/nginx.conf",
        "docs/deploy/haproxy.cfg",
        "docs/deploy/nginx-stream.conf",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(
            guide.contains(&text),
            "docs/operations.md does not show {file} as it is"
        );
    }
}
