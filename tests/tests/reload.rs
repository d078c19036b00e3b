//! Configuration reload: a bad file is refused and the running configuration stays; a good one
//! applies its limits to new connections and rebuilds the plugin pipeline; the real binary does
//! it on SIGHUP (and logs JSON lines when `[log] format = "json"`).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use switchboard_tests::binary::{BinaryRun, Lines, listening_addr};
use switchboard_tests::{TestGateway, WsClient, field, http_get, http_with_headers};

const BASE: &str = r#"
[[listener]]
bind = "127.0.0.1:0"

[shutdown]
grace_period_secs = 2
"#;

fn temp_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-reload-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_bad_file_keeps_the_old_config_and_a_good_one_applies() {
    let good = format!("{BASE}[[plugin]]\ntype = \"room-router\"\n");
    let gw = TestGateway::with_config(&good).await;
    let path = temp_config("inproc", &good);

    // Invalid values, an unknown key, broken TOML: each refused, nothing changes.
    for bad in [
        format!("{BASE}[limits]\nmax_frame_bytes = 10\n[[plugin]]\ntype = \"room-router\"\n"),
        format!("{BASE}[limits]\nmax_sesions = 1\n[[plugin]]\ntype = \"room-router\"\n"),
        format!("{BASE}[[plugin]]\ntype = \"no-such-plugin\"\n"),
        "[[listener]\n".to_owned(),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let err = gw.running().reload_file(&path).expect_err(&bad);
        assert!(!err.is_empty());
        assert_eq!(
            gw.running().gateway().config().limits.max_frame_bytes,
            131_072
        );
    }
    let mut a = WsClient::connect(&gw.raw_url("r1")).await;
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.joined");

    // A good file: a per-IP cap of 2 and a room-policy that admits one peer per room.
    std::fs::write(
        &path,
        format!(
            "{BASE}[limits]\nmax_connections_per_ip = 2\n\
             [[plugin]]\ntype = \"room-policy\"\nsettings = {{ max_peers = 1 }}\n\
             [[plugin]]\ntype = \"room-router\"\n"
        ),
    )
    .unwrap();
    let report = gw.running().reload_file(&path).unwrap();
    assert!(
        report.applied.iter().any(|t| t.contains("[limits]")),
        "{report:?}"
    );
    assert!(
        report.applied.iter().any(|t| t.contains("[[plugin]]")),
        "{report:?}"
    );
    assert!(report.needs_restart.is_empty(), "{report:?}");

    // The new pipeline refuses a second peer in r1 (room-policy max_peers = 1)...
    let mut b = WsClient::connect(&gw.raw_url("r1")).await;
    let refused = b.recv_json().await;
    assert_eq!(field(&refused, "code"), "room_full", "{refused}");
    // ...and the new cap (a is open, b is closing) refuses a third connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _c = WsClient::connect(&gw.raw_url("r2")).await;
    let Err((status, _)) = WsClient::try_connect(&gw.raw_url("r3"), &[]).await else {
        panic!("the reloaded per-IP cap is not applied");
    };
    assert_eq!(status, 429);
    // The session from before the reload is still there.
    a.send_text(r#"{"type":"switchboard.ice-servers"}"#).await;
    assert_eq!(
        field(&a.recv_json().await, "type"),
        "switchboard.ice-servers"
    );

    let (_, metrics) = http_get(gw.main, "/metrics").await;
    assert!(
        metrics.contains(r#"switchboard_config_reloads_total{result="error"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_config_reloads_total{result="ok"} 1"#),
        "{metrics}"
    );
    gw.stop().await;
}

/// The real binary: SIGHUP with a broken file logs the error and keeps serving; SIGHUP with a
/// good file enables the admin API; SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_of_the_real_binary() {
    let first = format!(
        "{BASE}[log]\nformat = \"json\"\nlevel = \"info\"\n[[plugin]]\ntype = \"room-router\"\n"
    );
    let path = temp_config("binary", &first);
    let mut run = BinaryRun::start(&path, &[], Lines::Strict);
    let listening = run.wait_for("Listening.").await;
    assert_eq!(listening["level"], "INFO");
    let addr = listening_addr(&listening);
    assert_eq!(
        http_with_headers(addr, "GET", "/api/stats", &[]).await.0,
        404
    );

    std::fs::write(&path, format!("{first}[limits]\nmax_frame_bytes = 1\n")).unwrap();
    assert!(run.signal("-HUP"));
    let failed = run.refused_reload().await;
    assert!(failed.contains("max_frame_bytes"), "{failed}");
    assert_eq!(http_get(addr, "/healthz").await.0, 200, "still serving");

    let token = "reload-test-token-0123456789";
    std::fs::write(&path, format!("{first}[admin]\ntoken = \"{token}\"\n")).unwrap();
    assert!(run.signal("-HUP"));
    run.wait_for("Configuration reloaded.").await;
    let auth = format!("Bearer {token}");
    let (status, body) =
        http_with_headers(addr, "GET", "/api/stats", &[("Authorization", &auth)]).await;
    assert_eq!(status, 200, "{body}");

    // A connection's log lines carry its span (connection id, peer address, dialect).
    let mut ws = WsClient::connect(&format!("ws://{addr}/ws/logged")).await;
    ws.recv_json().await;
    let opened = run.wait_for("Session opened.").await;
    assert_eq!(opened["span"]["dialect"], "raw", "{opened}");
    assert_eq!(opened["span"]["room"], "logged", "{opened}");
    assert!(opened["span"]["conn.id"].is_string() || opened["span"]["conn.id"].is_number());

    assert!(run.signal("-TERM"));
    run.wait_for("Stopped.").await;
    let status = run.exit_status().await;
    assert!(status.success(), "{status}");
}
