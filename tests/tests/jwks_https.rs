//! `https://` JWKS URLs (room-policy `token.jwks_url`, `[[antmedia_app]] jwks_url`) against a
//! real TLS server the test starts on loopback, with a certificate issued by a test CA made
//! here: trusted through `jwks_ca_file`, the keys are fetched and a token verifies; without it
//! the certificate is refused, the gateway logs why, and tokens stay refused.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::ant::{ant_join, ask, ask_until, unauthorized};
use switchboard_tests::jwt::{answer_json, ec_jwk, es256_token, room_policy_plugins};
use switchboard_tests::pki::{TestPki, test_pki};
use switchboard_tests::{TestGateway, WsClient, switchboard_bin, temp_dir};
use switchboard_tests::{every_dialect_config, unix_now};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A loopback HTTPS server with the certificate of `pki` that answers every request with a
/// JWKS document of the fixture key under kid `k1`; counts the requests it answered (a client
/// that refuses the certificate never gets that far). At most 100 connections, then it stops.
async fn https_jwks_server(pki: &TestPki) -> (SocketAddr, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    let document = json!({"keys":[ec_jwk("es256-public.pem", "k1")]}).to_string();
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            answer_json(&mut tls, &document).await;
            let _ = tls.shutdown().await;
        }
    });
    (addr, answered)
}

#[tokio::test]
async fn room_policy_fetches_an_https_jwks_trusted_through_jwks_ca_file() {
    let dir = temp_dir("jwks-https");
    let pki = test_pki(&dir, "Switchboard test CA");
    let (addr, answered) = https_jwks_server(&pki).await;
    // By name, as a real identity provider is addressed: the certificate names `localhost`.
    let token = format!(
        "jwks_url = \"https://localhost:{}/.well-known/jwks.json\", jwks_ca_file = {:?}",
        addr.port(),
        pki.ca_file.display().to_string()
    );
    let gw = TestGateway::with_config(&every_dialect_config(&room_policy_plugins(&token))).await;
    let url = gw.ant_url("LiveApp");
    let good = es256_token("k1", &json!({"exp": unix_now() + 60}));
    // The first fetch may still be on its way: bounded retries.
    let mut joined = false;
    for i in 0..50 {
        if ant_join(&url, &format!("https{i}"), &good).await["definition"] == "joined" {
            joined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(joined, "a token signed with the JWKS key is admitted");
    assert!(answered.load(Ordering::SeqCst) >= 1);
    let unknown_kid = es256_token("k9", &json!({"exp": unix_now() + 60}));
    assert_eq!(
        ant_join(&url, "httpsx", &unknown_kid).await,
        unauthorized("httpsx"),
        "a kid the document does not hold is refused"
    );
    let expired = es256_token("k1", &json!({"exp": unix_now() - 60}));
    assert_eq!(
        ant_join(&url, "httpsy", &expired).await,
        unauthorized("httpsy")
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_ant_app_fetches_its_https_jwks_trusted_through_jwks_ca_file() {
    let dir = temp_dir("jwks-https-app");
    let pki = test_pki(&dir, "Switchboard test CA");
    let (addr, answered) = https_jwks_server(&pki).await;
    let gw = TestGateway::with_config(&every_dialect_config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
play = "jwt"
jwks_url = "https://127.0.0.1:{}/jwks.json"
jwks_ca_file = {:?}

[[plugin]]
type = "conference"

[[plugin]]
type = "room-router"
"#,
        addr.port(),
        pki.ca_file.display().to_string()
    )))
    .await;
    let token = es256_token(
        "k1",
        &json!({"streamId":"s1","type":"play","exp": unix_now() + 60}),
    );
    let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
    let play = json!({"command":"play","streamId":"s1","room":"","token":token});
    // Passing the check means reaching the (absent) media plugin. Bounded retries while the
    // first fetch is on its way.
    assert!(
        ask_until(&mut c, &play, "media_plugin_not_running").await,
        "a token signed with the JWKS key passes the play check"
    );
    assert!(answered.load(Ordering::SeqCst) >= 1);
    let other = json!({"command":"play","streamId":"s2","room":"","token":token});
    assert_eq!(ask(&mut c, other).await, unauthorized("s2"));
    gw.stop().await;
}

/// The real binary, JSON logs on stderr; a channel of its log lines and its first listener.
async fn spawn_gateway(
    config: &str,
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<Value>,
    SocketAddr,
) {
    let dir = temp_dir("jwks-https-bin");
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = tokio::process::Command::new(switchboard_bin())
        .arg("--config")
        .arg(&path)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(value);
            }
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = rx.recv().await.expect("the gateway logs until it listens");
            if line["fields"]["message"] == "Listening." {
                break line["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("the gateway listens within 10 s");
    (child, rx, addr)
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused_with_a_clear_log() {
    let dir = temp_dir("jwks-https-untrusted");
    let pki = test_pki(&dir, "Switchboard test CA");
    let (addr, answered) = https_jwks_server(&pki).await;
    // No `jwks_ca_file`: the test CA is in no trust store the gateway uses.
    let token = format!(
        "jwks_url = \"https://127.0.0.1:{}/jwks.json\", jwks_refresh_secs = 1",
        addr.port()
    );
    let rest = format!(
        "[log]\nformat = \"json\"\nlevel = \"info\"\n\n{}",
        room_policy_plugins(&token)
    );
    let (mut child, mut logs, gateway) = spawn_gateway(&every_dialect_config(&rest)).await;
    let refused = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = logs.recv().await.expect("the gateway keeps logging");
            if line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Cannot fetch the JWKS document"))
            {
                break line;
            }
        }
    })
    .await
    .expect("the failed fetch is logged");
    assert_eq!(refused["level"], "WARN", "{refused}");
    let error = refused["fields"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TLS handshake with 127.0.0.1")
            && error.contains("invalid peer certificate")
            && error.contains("jwks_ca_file"),
        "the log says the certificate was refused and how to trust the CA: {refused}"
    );
    let url = format!("ws://{gateway}/LiveApp/websocket");
    let good = es256_token("k1", &json!({"exp": unix_now() + 60}));
    assert_eq!(
        ant_join(&url, "untrusted", &good).await,
        unauthorized("untrusted"),
        "no keys were loaded, so no token verifies"
    );
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "no request crossed the refused handshake"
    );
    child.kill().await.unwrap();
}

/// `check-config` names `jwks_ca_file` when that file is missing, in both places it is set.
#[tokio::test]
async fn check_config_names_a_missing_jwks_ca_file() {
    let dir = temp_dir("jwks-ca-check");
    let missing = dir.join("no-such-ca.pem");
    let missing = missing.display().to_string();
    let text = every_dialect_config(&format!(
        r#"
[[antmedia_app]]
name = "LiveApp"
play = "jwt"
jwks_url = "https://id.example.com/jwks.json"
jwks_ca_file = {missing:?}

{}"#,
        room_policy_plugins(&format!(
            "jwks_url = \"https://id.example.com/jwks.json\", jwks_ca_file = {missing:?}"
        ))
    ));
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    let output = tokio::process::Command::new(switchboard_bin())
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(64), "{report}");
    assert!(
        report.contains(&format!(
            "antmedia_app[0].jwks_ca_file: cannot read {missing}"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("token.jwks_ca_file: cannot read {missing}")),
        "{report}"
    );
}
