//! Graceful drain with live clients of every dialect: the lifecycle phases advance Running →
//! Draining → Stopped; Ant Media peers get `notification/server_will_stop` then close 1001, raw
//! peers `switchboard.server-will-stop` then 1001, socket.io clients the `server-will-stop`
//! notice then a server disconnect. While draining, `/readyz` answers 503 and new sessions are
//! refused (503); a session that cannot be closed does not hold the gateway past the grace
//! period.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use switchboard::Phase;
use switchboard_tests::{TestGateway, WsClient, field, http_get, repo_root};
use tokio::io::{AsyncBufReadExt, BufReader};

fn config(extra: &str) -> String {
    format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"

[shutdown]
grace_period_secs = 2

{extra}

[[plugin]]
type = "room-router"
"#
    )
}

/// Records every phase change until `Stopped`.
fn record_phases(gw: &TestGateway) -> tokio::task::JoinHandle<Vec<Phase>> {
    let mut rx = gw.running().phases();
    let mut seen = vec![*rx.borrow_and_update()];
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let phase = *rx.borrow_and_update();
            seen.push(phase);
            if phase == Phase::Stopped {
                break;
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_tells_every_dialect_then_closes_and_phases_advance() {
    let gw = TestGateway::with_config(&config("")).await;
    assert_eq!(
        http_get(gw.main, "/readyz").await,
        (200, "running\n".to_owned())
    );
    let phases = record_phases(&gw);

    let mut ant = WsClient::connect(&gw.ant_url("LiveApp")).await;
    ant.send_json(json!({"command":"join","streamId":"drain-ant","mode":"both"}))
        .await;
    assert_eq!(field(&ant.recv_json().await, "definition"), "joined");
    let mut raw = WsClient::connect(&gw.raw_url("drain-raw")).await;
    assert_eq!(field(&raw.recv_json().await, "type"), "switchboard.joined");

    // The socket.io clients run in node; the drain starts once they are in their rooms.
    let mut sio = tokio::process::Command::new("node")
        .arg(repo_root().join("tests/node/sio_drain.mjs"))
        .args([gw.http_url(), "drain-sio".to_owned()])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(sio.stdout.take().unwrap()).lines();
    let mut output = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let ready = line == "ready";
            output.push(line);
            if ready {
                break;
            }
        }
    })
    .await
    .expect("the socket.io clients connect");

    gw.begin_shutdown();

    let notice = ant.recv_json().await;
    assert_eq!(
        notice,
        json!({"command":"notification","definition":"server_will_stop"})
    );
    let close = ant.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);

    let notice = raw.recv_json().await;
    assert_eq!(notice, json!({"type":"switchboard.server-will-stop"}));
    let close = raw.recv_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);

    let status = tokio::time::timeout(Duration::from_secs(20), sio.wait())
        .await
        .expect("the socket.io script ends")
        .unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        output.push(line);
    }
    let mut stderr = String::new();
    let _ =
        tokio::io::AsyncReadExt::read_to_string(&mut sio.stderr.take().unwrap(), &mut stderr).await;
    assert!(
        status.success(),
        "sio_drain.mjs failed\n{}\n{stderr}",
        output.join("\n")
    );
    eprintln!("{}", output.join("\n"));

    gw.wait_stopped(Duration::from_secs(10)).await;
    let seen = phases.await.unwrap();
    assert_eq!(seen, [Phase::Running, Phase::Draining, Phase::Stopped]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_readyz_is_503_new_sessions_are_refused_and_the_deadline_holds() {
    let gw = TestGateway::with_config(&config(
        "[limits]\nmessages_per_sec = 100000.0\nmessage_burst = 100000",
    ))
    .await;
    // B never reads; A floods it until the gateway's writes to B block. B's session then
    // cannot finish its close, which keeps the gateway draining until the grace period ends.
    let mut a = WsClient::connect(&gw.raw_url("stuck")).await;
    assert_eq!(field(&a.recv_json().await, "type"), "switchboard.joined");
    let b = WsClient::connect(&gw.raw_url("stuck")).await;
    let frame = format!(r#"{{"app":"{}"}}"#, "x".repeat(100_000));
    for _ in 0..300 {
        a.send_text(&frame).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let phases = record_phases(&gw);
    let started = std::time::Instant::now();
    gw.begin_shutdown();
    let mut readyz = (0, String::new());
    for _ in 0..100 {
        readyz = http_get(gw.main, "/readyz").await;
        if readyz.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(readyz, (503, "draining\n".to_owned()));
    assert_eq!(
        http_get(gw.main, "/healthz").await.0,
        200,
        "alive while draining"
    );
    let Err((status, body)) = WsClient::try_connect(&gw.raw_url("late"), &[]).await else {
        panic!("a new session was accepted while draining");
    };
    assert_eq!(status, 503);
    assert!(body.contains("draining"), "{body}");

    gw.wait_stopped(Duration::from_secs(8)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "stopped after {took:?}: B's session should have held the drain"
    );
    assert_eq!(
        phases.await.unwrap(),
        [Phase::Running, Phase::Draining, Phase::Stopped]
    );
    drop(b);
}

/// A socket.io client that is upgrading when the drain starts (its probe answered, its `5` not
/// yet sent) has paused polling, so it takes no GET: the session's last packets, the drain
/// notice among them, reach it over the WebSocket once it sends `5`, at the wire level as
/// engine.io 3 (socket.io-client 2's default) speaks it. Held in the polling queue, they were
/// dropped with it, and the client saw its transport close without the notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_upgrading_when_the_drain_starts_gets_the_notice_over_its_websocket() {
    use switchboard_tests::Received;
    let gw = TestGateway::with_config(&config("")).await;
    let base = "/socket.io/?EIO=3&transport=polling&room=drain-upgrading";
    let (status, mut payloads) = http_get(gw.main, base).await;
    assert_eq!(status, 200, "{payloads}");
    let sid = payloads
        .split(r#""sid":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an open packet with a sid")
        .to_owned();
    let session = format!("{base}&sid={sid}");
    for _ in 0..20 {
        if payloads.contains("joined") {
            break;
        }
        payloads.push_str(&http_get(gw.main, &session).await.1);
    }
    assert!(payloads.contains("joined"), "{payloads}");

    // The upgrade, up to the client's `5`: the GET pending meanwhile is released.
    let addr = gw.main;
    let pending_path = session.clone();
    let pending = tokio::spawn(async move { http_get(addr, &pending_path).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ws_url = format!(
        "ws://{}/socket.io/?EIO=3&transport=websocket&room=drain-upgrading&sid={sid}",
        gw.main
    );
    let mut ws = WsClient::connect(&ws_url).await;
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    let (status, released) = pending.await.unwrap();
    assert_eq!(status, 200, "{released}");

    // The drain ends the session before the client's `5`.
    gw.begin_shutdown();
    let registry = || gw.running().gateway().registry().len();
    for _ in 0..100 {
        if registry() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(registry(), 0, "the drain ends the session");

    ws.send_text("5").await;
    let mut frames = Vec::new();
    let told = loop {
        match ws.recv().await {
            Received::Text(text) if text.contains("server-will-stop") => break true,
            Received::Text(text) => frames.push(text),
            Received::Closed(_) => break false,
        }
        if frames.len() > 10 {
            break false;
        }
    };
    assert!(
        told,
        "no server-will-stop notice over the upgraded socket; frames: {frames:?}"
    );
    gw.wait_stopped(Duration::from_secs(10)).await;
}
