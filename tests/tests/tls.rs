//! TLS listeners with a real rustls client: `wss://` signaling and `https://` endpoints from a
//! certificate and key file, and `switchboard --self-signed` (the real binary) serving a
//! certificate it generated.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_tests::{TestGateway, switchboard_bin};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

/// A rustls client that trusts exactly the certificate in `cert_pem`.
fn connector(cert_pem: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls(connector: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("the certificate verifies")
}

async fn https_get(connector: &TlsConnector, addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tls(connector, addr).await;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("no error");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// An Ant Media and a raw peer call each other over `wss://`.
async fn signal_over_wss(connector: &TlsConnector, addr: SocketAddr) {
    let url = |path: &str| format!("wss://localhost:{}{path}", addr.port());
    let (mut ant, _) =
        tokio_tungstenite::client_async(url("/LiveApp/websocket"), tls(connector, addr).await)
            .await
            .unwrap();
    ant.send(Message::text(
        json!({"command":"join","streamId":"tls1","mode":"both"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ant).await["definition"], "joined");
    let (mut raw, _) = tokio_tungstenite::client_async(url("/ws/tls1"), tls(connector, addr).await)
        .await
        .unwrap();
    assert_eq!(next_json(&mut raw).await["type"], "switchboard.joined");
    assert_eq!(next_json(&mut ant).await["command"], "start");
    ant.send(Message::text(
        json!({"command":"takeConfiguration","streamId":"tls1","type":"offer","sdp":"v=0\r\n"})
            .to_string(),
    ))
    .await
    .unwrap();
    loop {
        let frame = next_json(&mut raw).await;
        if frame["type"] == "offer" {
            assert_eq!(frame["sdp"], "v=0\r\n");
            break;
        }
    }
}

/// One TLS listener on the certificate files, `[limits]` holding `limits`, and the router.
fn tls_config(cert: &Path, key: &Path, limits: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
tls = {{ cert = "{}", key = "{}" }}

[limits]
{limits}

[shutdown]
grace_period_secs = 2

[[plugin]]
type = "room-router"
"#,
        cert.display(),
        key.display()
    )
}

fn write_self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let generated = switchboard::tls::self_signed(&[]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &generated.cert_pem).unwrap();
    std::fs::write(&key, &generated.key_pem).unwrap();
    (cert, key, generated.cert_pem.into_bytes())
}

#[tokio::test]
async fn wss_and_https_from_certificate_files() {
    let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
    let (cert, key, cert_pem) = write_self_signed(&dir);
    let gw = TestGateway::with_config(&tls_config(&cert, &key, "")).await;
    let connector = connector(&cert_pem);
    assert_eq!(
        https_get(&connector, gw.main, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(https_get(&connector, gw.main, "/readyz").await.0, 200);

    // Plain text on the TLS port gets no HTTP answer, and the listener is not disturbed.
    let mut plain = TcpStream::connect(gw.main).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    signal_over_wss(&connector, gw.main).await;
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_self_signed_certificate_with_self_signed() {
    let dir = std::env::temp_dir().join(format!("sb-self-signed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        "[[listener]]\nbind = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\n[[plugin]]\ntype = \"room-router\"\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(switchboard_bin())
        .args(["--self-signed", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut cert, mut addr) = (None, None);
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap();
            if let Some(path) = v["fields"]["cert"].as_str() {
                cert = Some(std::fs::read(path).unwrap());
            }
            if v["fields"]["message"] == "Listening." {
                addr = v["fields"]["addr"]
                    .as_str()
                    .map(|a| a.parse::<SocketAddr>().unwrap());
                break;
            }
        }
    })
    .await
    .expect("the gateway starts");
    let (cert, addr) = (cert.expect("the certificate path is logged"), addr.unwrap());
    let connector = connector(&cert);
    assert_eq!(https_get(&connector, addr, "/healthz").await.0, 200);
    signal_over_wss(&connector, addr).await;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// The header timeout holds on TLS listeners too: a client that completes the handshake and then
/// dribbles its headers is closed, and so is an idle keep-alive connection.
#[tokio::test]
async fn slow_headers_and_idle_connections_over_tls_are_closed() {
    let dir = std::env::temp_dir().join(format!("sb-tls-slow-{}", std::process::id()));
    let (cert, key, cert_pem) = write_self_signed(&dir);
    let gw =
        TestGateway::with_config(&tls_config(&cert, &key, "header_read_timeout_secs = 1")).await;
    let connector = connector(&cert_pem);
    let mut slow = tls(&connector, gw.main).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut idle = tls(&connector, gw.main).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    for (what, stream) in [
        ("slow headers", &mut slow),
        ("an idle keep-alive", &mut idle),
    ] {
        let mut sink = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "{what}: still open after 10 s");
    }
    assert_eq!(https_get(&connector, gw.main, "/healthz").await.0, 200);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
