//! Native plugins loaded from shared libraries: the example lobby router changing routing for
//! Ant Media and raw peers, deliberately broken plugins that must not take the gateway down,
//! and load errors at start-up.
//!
//! The libraries are the workspace's own `cdylib` crates (`examples/lobby-router`,
//! `tests/plugins/*`), built by `cargo build --workspace` (scripts/test.sh runs it first).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchboard::GatewayConfig;
use switchboard_tests::binary::{BinaryRun, Lines, listening_addr};
use switchboard_tests::every_dialect_config;
use switchboard_tests::metrics::scrape;
use switchboard_tests::{TestGateway, WsClient, field, http_get, repo_root, temp_dir};

/// The shared library of workspace crate `name`: next to this test binary's profile directory
/// (`target/<profile>/deps/..`), else under `$CARGO_TARGET_DIR/debug` or `<repo>/target/debug`.
fn plugin_lib(name: &str) -> PathBuf {
    let file = format!("lib{}.so", name.replace('-', "_"));
    let next_to_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join(&file)));
    let fallback = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("debug")
        .join(&file);
    next_to_exe
        .filter(|p| p.is_file())
        .or_else(|| fallback.is_file().then_some(fallback.clone()))
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run cargo build --workspace first",
                fallback.display()
            )
        })
}

/// A native plugin from `lib` in front of the room router.
fn native_then_router(label: &str, lib: &Path) -> String {
    every_dialect_config(&format!(
        r#"
[[plugin]]
type = "{label}"
path = {path}

[[plugin]]
type = "room-router"
"#,
        path = toml_string(lib)
    ))
}

fn toml_string(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn ant_join(room: &str) -> Value {
    json!({"command":"join","streamId":room,"multiPeer":false,"mode":"both"})
}

fn ant_notice(definition: &str, room: &str) -> Value {
    json!({"command":"notification","definition":definition,"streamId":room})
}

fn raw_notice(kind: &str, room: &str) -> Value {
    json!({"type": format!("switchboard.{kind}"), "room": room})
}

async fn ant_peer(gw: &TestGateway, room: &str) -> WsClient {
    let mut peer = WsClient::connect(&gw.ant_url("LiveApp")).await;
    peer.send_json(ant_join(room)).await;
    assert_eq!(peer.recv_json().await, ant_notice("joined", room));
    peer
}

async fn raw_peer(gw: &TestGateway, room: &str) -> WsClient {
    let mut peer = WsClient::connect(&gw.raw_url(room)).await;
    assert_eq!(peer.recv_json().await, raw_notice("joined", room));
    peer
}

/// Two raw peers in `room` that relay a frame: the room router is routing.
async fn raw_call_completes(gw: &TestGateway, room: &str) {
    let mut a = raw_peer(gw, room).await;
    let mut b = raw_peer(gw, room).await;
    assert_eq!(a.recv_json().await, raw_notice("start", room));
    assert_eq!(b.recv_json().await, raw_notice("peer-joined", room));
    let offer = r#"{"type":"offer","sdp":"v=0\r\n"}"#;
    a.send_text(offer).await;
    assert_eq!(b.recv_text().await, offer);
    b.close().await;
    assert_eq!(a.recv_json().await, raw_notice("peer-left", room));
}

#[tokio::test]
async fn lobby_router_pairs_ant_and_raw_peers_in_join_order() {
    let lib = plugin_lib("lobby-router");
    let gw = TestGateway::with_config(&native_then_router("lobby", &lib)).await;
    let room = "lobby1";

    // A (Ant) waits; B (raw) is paired with it and A, the waiting peer, offers.
    let mut a = ant_peer(&gw, room).await;
    let mut b = raw_peer(&gw, room).await;
    assert_eq!(
        a.recv_json().await,
        json!({"command":"start","streamId":room})
    );
    assert_eq!(b.recv_json().await, raw_notice("peer-joined", room));

    // A third and a fourth peer are not refused: C (raw) waits, D (Ant) is paired with it.
    let mut c = raw_peer(&gw, room).await;
    let mut d = ant_peer(&gw, room).await;
    assert_eq!(c.recv_json().await, raw_notice("start", room));

    // Signals reach the partner only, translated across dialects.
    a.send_json(
        json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":"v=0\r\nA\r\n"}),
    )
    .await;
    assert_eq!(
        b.recv_json().await,
        json!({"type":"offer","sdp":"v=0\r\nA\r\n"})
    );
    c.send_json(json!({"type":"offer","sdp":"v=0\r\nC\r\n"}))
        .await;
    assert_eq!(
        d.recv_json().await,
        json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":"v=0\r\nC\r\n","idMapping":{}})
    );
    d.send_json(json!({"command":"takeCandidate","streamId":room,"label":0,"id":"0","candidate":"candidate:1 1 udp 5 127.0.0.1 9 typ host"}))
        .await;
    assert_eq!(
        field(&c.recv_json().await, "type"),
        "candidate",
        "D's candidate reaches C"
    );
    b.send_json(json!({"type":"answer","sdp":"v=0\r\nB\r\n"}))
        .await;
    assert_eq!(field(&a.recv_json().await, "type"), "answer");
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_silence(150).await;
    }

    // A leaves: B is told and waits again; E (raw) arrives and is paired with B, who offers.
    a.send_json(json!({"command":"leave","streamId":room}))
        .await;
    assert_eq!(a.recv_json().await, ant_notice("leaved", room));
    assert_eq!(b.recv_json().await, raw_notice("peer-left", room));
    let mut e = raw_peer(&gw, room).await;
    assert_eq!(b.recv_json().await, raw_notice("start", room));
    assert_eq!(e.recv_json().await, raw_notice("peer-joined", room));
    b.send_text("a frame only E understands").await;
    assert_eq!(e.recv_text().await, "a frame only E understands");
    for peer in [&mut c, &mut d] {
        peer.expect_silence(150).await;
    }

    // Outside the lobby prefix the room router still rules: a third peer is refused.
    let _x = raw_peer(&gw, "room1").await;
    let _y = raw_peer(&gw, "room1").await;
    let mut z = WsClient::connect(&gw.raw_url("room1")).await;
    let refused = z.recv_json().await;
    assert_eq!(field(&refused, "code"), "room_full");
    gw.stop().await;
}

/// ABI 4 end to end, in the real binary loading the example plugin from a config file: the
/// gateway starts the plugin with an outbox (`switchboard_plugin_start`) and tells it of each
/// closed session (`switchboard_plugin_on_session_closed`). The lobby router handles a
/// disconnect there, outside any event, so everything the peers get after B's connection
/// closes went through both calls: A is told B left and is paired with C, who waited.
#[tokio::test]
async fn the_binary_starts_the_plugin_with_an_outbox_and_tells_it_of_closed_sessions() {
    let dir = temp_dir("native-abi4");
    let config = dir.join("switchboard.toml");
    let plugins = format!(
        "[log]\nformat = \"json\"\nlevel = \"info\"\n{}[[plugin]]\ntype = \"room-router\"\n",
        native("lobby", &plugin_lib("lobby-router"))
    );
    std::fs::write(&config, every_dialect_config(&plugins)).unwrap();
    let mut run = BinaryRun::start(&config, &[], Lines::JsonOnly);
    let addr = listening_addr(&run.wait_for("Listening.").await);
    let room = "lobby1";
    let raw = |room: &str| format!("ws://{addr}/ws/{room}");

    // A and B (raw) are paired, A offering; C (Ant) waits.
    let mut a = WsClient::connect(&raw(room)).await;
    assert_eq!(a.recv_json().await, raw_notice("joined", room));
    let mut b = WsClient::connect(&raw(room)).await;
    assert_eq!(b.recv_json().await, raw_notice("joined", room));
    assert_eq!(a.recv_json().await, raw_notice("start", room));
    assert_eq!(b.recv_json().await, raw_notice("peer-joined", room));
    let mut c = WsClient::connect(&format!("ws://{addr}/LiveApp/websocket")).await;
    c.send_json(ant_join(room)).await;
    assert_eq!(c.recv_json().await, ant_notice("joined", room));
    c.expect_silence(150).await;

    // B's connection closes without a leave: the plugin's `on_session_closed` tells A through
    // the outbox `start` gave it, and pairs A with C, the waiting peer, who offers.
    b.close().await;
    assert_eq!(a.recv_json().await, raw_notice("peer-left", room));
    assert_eq!(
        c.recv_json().await,
        json!({"command":"start","streamId":room})
    );
    assert_eq!(a.recv_json().await, raw_notice("peer-joined", room));

    // The new pair is the plugin's routing state: C's offer reaches A, translated.
    c.send_json(
        json!({"command":"takeConfiguration","streamId":room,"type":"offer","sdp":"v=0\r\nC\r\n"}),
    )
    .await;
    assert_eq!(
        a.recv_json().await,
        json!({"type":"offer","sdp":"v=0\r\nC\r\n"})
    );

    // Neither call failed (a failure would disable the plugin and be counted).
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("switchboard_plugin_failures_total") && l.contains("lobby"))
            .all(|l| l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(run.signal("-TERM"));
    assert!(run.exit_status().await.success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_the_lobby_router_a_third_peer_is_refused() {
    let gw =
        TestGateway::with_config(&every_dialect_config("[[plugin]]\ntype = \"room-router\"")).await;
    let _a = ant_peer(&gw, "lobby1").await;
    let _b = raw_peer(&gw, "lobby1").await;
    let mut c = WsClient::connect(&gw.ant_url("LiveApp")).await;
    c.send_json(ant_join("lobby1")).await;
    assert_eq!(
        c.recv_json().await,
        json!({"command":"error","definition":"NoSpaceForNewPeer","streamId":"lobby1"})
    );
    gw.stop().await;
}

/// A broken plugin in front of the room router: a call in another room works before it
/// breaks; the call in `bad_room` that breaks it completes through the room router; calls go on
/// afterwards; the failure is counted once (every later event of `bad_room` would break it
/// again, were it still called).
async fn broken_plugin_is_disabled_and_calls_go_on(crate_name: &str, bad_room: &str) {
    let lib = plugin_lib(crate_name);
    let gw = TestGateway::with_config(&native_then_router(crate_name, &lib)).await;
    raw_call_completes(&gw, "before").await;
    raw_call_completes(&gw, bad_room).await;
    raw_call_completes(&gw, "after").await;
    let body = scrape(&gw).await;
    let line = format!(r#"switchboard_plugin_failures_total{{plugin="{crate_name}"}} 1"#);
    assert!(
        body.lines().any(|l| l == line),
        "expected `{line}` in\n{body}"
    );
    assert_eq!(http_get(gw.main, "/healthz").await.0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn panicking_plugin_is_disabled_and_calls_go_on() {
    broken_plugin_is_disabled_and_calls_go_on("panicking-plugin", "boom").await;
}

#[tokio::test]
async fn garbage_replying_plugin_is_disabled_and_calls_go_on() {
    broken_plugin_is_disabled_and_calls_go_on("garbage-plugin", "garbage").await;
}

fn load_error(plugins: &str) -> String {
    match GatewayConfig::from_toml(&every_dialect_config(plugins)) {
        Ok(_) => panic!("config with {plugins} must be refused"),
        Err(e) => e.to_string(),
    }
}

fn native(label: &str, path: &Path) -> String {
    format!(
        "[[plugin]]\ntype = \"{label}\"\npath = {}\n",
        toml_string(path)
    )
}

#[test]
fn wrong_abi_version_is_refused_with_both_versions() {
    let lib = plugin_lib("wrong-abi-plugin");
    let error = load_error(&native("old", &lib));
    assert!(error.contains("plugin[0] (old)"), "{error}");
    let expected = format!(
        "built for ABI 999, this gateway speaks ABI {}",
        switchboard_plugin_abi::ABI_VERSION
    );
    assert!(error.contains(&expected), "{error}");
}

#[test]
fn missing_library_is_refused_with_its_path() {
    let missing = repo_root().join("target/no-such-plugin.so");
    let error = load_error(&format!(
        "[[plugin]]\ntype = \"room-router\"\n{}",
        native("gone", &missing)
    ));
    assert!(error.contains("plugin[1] (gone)"), "{error}");
    assert!(error.contains(&missing.display().to_string()), "{error}");
}

#[test]
fn library_that_is_not_a_plugin_is_refused() {
    let libm = Path::new("/lib/x86_64-linux-gnu/libm.so.6");
    if !libm.is_file() {
        eprintln!("skipped: {} does not exist on this machine", libm.display());
        return;
    }
    let error = load_error(&native("math", libm));
    assert!(
        error.contains("does not export SWITCHBOARD_PLUGIN_ABI_VERSION"),
        "{error}"
    );
    let not_elf = repo_root().join("config/lobby.toml");
    let error = load_error(&native("text", &not_elf));
    assert!(
        error.contains("is not a loadable shared library"),
        "{error}"
    );
}

#[test]
fn native_plugin_settings_are_checked_by_the_plugin() {
    let lib = plugin_lib("lobby-router");
    let error = load_error(&format!(
        "{}[plugin.settings]\nprefix = \"\"\n",
        native("lobby", &lib)
    ));
    assert!(
        error.contains("plugin[0] (lobby): settings.prefix: must not be empty"),
        "{error}"
    );
}

#[tokio::test]
async fn gateway_refuses_to_start_with_a_broken_plugin() {
    let lib = plugin_lib("wrong-abi-plugin");
    let config = GatewayConfig::parse(&native_then_router("old", &lib)).unwrap();
    let error = switchboard::start(config).await.unwrap_err();
    assert!(format!("{error:#}").contains("ABI 999"), "{error:#}");
}

#[test]
fn lobby_config_file_loads_its_plugin_relative_to_the_file() {
    // `path` in config/lobby.toml is relative to config/: ../target/debug/liblobby_router.so.
    let expected = repo_root().join("target/debug/liblobby_router.so");
    assert!(
        expected.is_file(),
        "{} is missing: run cargo build --workspace first",
        expected.display()
    );
    let config = GatewayConfig::load(&repo_root().join("config/lobby.toml"))
        .unwrap_or_else(|e| panic!("config/lobby.toml: {e}"));
    assert_eq!(config.plugins.len(), 2);
    assert_eq!(
        config.plugins[0].path.as_deref(),
        Some(
            repo_root()
                .join("config/../target/debug/liblobby_router.so")
                .as_path()
        )
    );
}

/// The wrapper itself, without a gateway: the failure is reported once with a clear reason,
/// then the library is never called again.
#[test]
fn wrapper_reports_a_panic_once_then_passes_events_on() {
    use switchboard_plugin_api::event::{DialectKind, Event, JoinMode};
    use switchboard_plugin_api::{Decision, EventContext, Peer, RoomView, SessionId, Verdict};

    let lib = plugin_lib("panicking-plugin");
    let plugin = switchboard_native_plugins::load(&lib, &toml::Table::new()).unwrap();
    assert_eq!(plugin.name(), "panicking-plugin");
    let from = Peer {
        session: SessionId(1),
        dialect: DialectKind::Raw,
        mode: JoinMode::Both,
    };
    let run = |room: &str| {
        let event = Event::notice(Event::Left, room);
        let members = [from];
        let cx = EventContext::new(
            from,
            &event,
            RoomView {
                room,
                members: &members,
            },
        );
        plugin.on_event(&cx, &mut Decision::default())
    };
    assert_eq!(run("calm").unwrap(), Verdict::Continue);
    let error = run("boom").unwrap_err().to_string();
    assert!(
        error.contains("plugin panicked: boom: this plugin panics on purpose")
            && error.contains("disabled")
            && error.contains(&lib.display().to_string()),
        "{error}"
    );
    assert_eq!(run("boom").unwrap(), Verdict::Continue, "not called again");
}

/// The host side of ABI 4 in-process, through the example library: `start` hands the plugin
/// an outbox whose deliveries come back as events, the plugin's `on_session_closed` uses it,
/// dropping the instance releases the outbox exactly once, and a failing `on_session_closed`
/// disables the plugin with a clear reason.
#[test]
fn wrapper_passes_the_outbox_and_session_closes_through_the_abi() {
    use std::sync::{Arc, Mutex};

    use switchboard_plugin_api::event::{DialectKind, Event, Join, JoinMode};
    use switchboard_plugin_api::{
        Decision, Deliver, EventContext, Outbox, Peer, Plugin, RoomView, SessionId, Verdict,
    };

    /// What the plugin delivered through its outbox.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(SessionId, Event)>>);

    impl Deliver for Recorder {
        fn deliver(&self, to: SessionId, event: Event) -> bool {
            self.0.lock().unwrap().push((to, event));
            to != SessionId(404)
        }
    }

    let peer = |n| Peer {
        session: SessionId(n),
        dialect: DialectKind::Raw,
        mode: JoinMode::Both,
    };
    let join = |plugin: &dyn Plugin, n: u64, members: &[Peer]| {
        let event = Event::Join(Join {
            room: "lobby1".into(),
            mode: JoinMode::Both,
            token: None,
        });
        let room = RoomView {
            room: "lobby1",
            members,
        };
        let cx = EventContext::new(peer(n), &event, room);
        plugin.on_event(&cx, &mut Decision::default()).unwrap()
    };
    let lib = plugin_lib("lobby-router");

    let recorder = Arc::new(Recorder::default());
    let plugin = switchboard_native_plugins::load(&lib, &toml::Table::new()).unwrap();
    plugin.start(Arc::clone(&recorder) as Outbox).unwrap();
    assert_eq!(
        Arc::strong_count(&recorder),
        2,
        "the plugin holds the outbox"
    );
    assert_eq!(join(&*plugin, 1, &[]), Verdict::Stop);
    assert_eq!(join(&*plugin, 2, &[peer(1)]), Verdict::Stop);
    plugin.on_session_closed(SessionId(2)).unwrap();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [(SessionId(1), Event::notice(Event::PeerLeft, "lobby1"))],
        "the event crossed the ABI as JSON and came back whole"
    );
    drop(plugin);
    assert_eq!(
        Arc::strong_count(&recorder),
        1,
        "destroying the instance released the outbox once"
    );

    // Never started: the plugin cannot tell the partner, says so, and is disabled.
    let unstarted = switchboard_native_plugins::load(&lib, &toml::Table::new()).unwrap();
    join(&*unstarted, 1, &[]);
    join(&*unstarted, 2, &[peer(1)]);
    let error = unstarted
        .on_session_closed(SessionId(2))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("on_session_closed failed: not started")
            && error.contains("disabled")
            && error.contains(&lib.display().to_string()),
        "{error}"
    );
    assert!(unstarted.is_disabled());
    assert!(
        unstarted.on_session_closed(SessionId(1)).is_ok(),
        "not called again"
    );
}
