use std::path::Path;
use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};
use switchboard_plugin_api::event::{
    Candidate, Description, Event, Join, JoinMode, Opaque, SdpKind,
};
use switchboard_plugin_api::{Peer, RoomView, SessionId};

use super::writer::{Record, Redaction};
use super::*;

const SDP: &str = "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\nc=IN IP4 203.0.113.7\r\na=candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host\r\n";
const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 51121 typ srflx raddr 192.168.1.20 rport 51121 generation 0";

/// A fresh path under the system temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "switchboard-logging-{}-{name}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.0)
            .expect("log file")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn logging_to(file: &Path, extra: &str) -> Logging {
    let text = format!(
        "output = {{ file = {:?} }}\n{extra}",
        file.display().to_string()
    );
    let settings: toml::Table = toml::from_str(&text).expect("TOML");
    let config: LoggingConfig = parse_settings(&settings).expect("parses");
    Logging::new(config).expect("builds")
}

fn peer(id: u64, dialect: DialectKind) -> Peer {
    Peer {
        session: SessionId(id),
        dialect,
        mode: JoinMode::Both,
    }
}

fn send(p: &Logging, from: Peer, event: Event) {
    let room = event.room().unwrap_or("").to_owned();
    let cx = EventContext::new(
        from,
        &event,
        RoomView {
            room: &room,
            members: &[],
        },
    );
    let mut decision = Decision::default();
    decision.send(SessionId(99), Event::notice(Event::Joined, "x"));
    let before = decision.clone();
    let verdict = p.on_event(&cx, &mut decision).expect("never fails");
    assert_eq!(verdict, Verdict::Continue);
    assert_eq!(decision, before, "the decision is never changed");
}

fn join(room: &str, token: Option<&str>) -> Event {
    Event::Join(Join {
        room: room.into(),
        mode: JoinMode::Both,
        token: token.map(str::to_owned),
    })
}

fn offer(room: &str) -> Event {
    Event::Description(Description {
        room: room.into(),
        kind: SdpKind::Offer,
        sdp: SDP.into(),
    })
}

fn candidate(room: &str) -> Event {
    Event::Candidate(Candidate {
        room: room.into(),
        candidate: CANDIDATE.into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: Some("hFtG".into()),
    })
}

const ANT: DialectKind = DialectKind::Antmedia;

#[test]
fn lines_carry_the_envelope_and_redacted_fields() {
    let file = TempFile::new("default");
    let p = logging_to(&file.0, "");
    send(&p, peer(7, ANT), join("r1", Some("secret-token")));
    send(&p, peer(7, ANT), offer("r1"));
    send(&p, peer(7, ANT), candidate("r1"));
    send(
        &p,
        peer(8, DialectKind::Raw),
        Event::Opaque(Opaque {
            room: "r1".into(),
            payload: r#"{"type":"renegotiate"}"#.into(),
        }),
    );
    p.shutdown();
    let lines = file.lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let first = &lines[0];
    assert!(first["ts"].as_u64().expect("ts") > 1_700_000_000_000);
    assert_eq!(first["room"], "r1");
    assert_eq!(first["session"], 7);
    assert_eq!(first["dialect"], "antmedia");
    assert_eq!(first["event"], "join");
    assert_eq!(first["mode"], "both");
    assert_eq!(first["token"], "<redacted>");
    assert_eq!(lines[1]["event"], "description");
    assert_eq!(lines[1]["kind"], "offer");
    assert_eq!(lines[1]["sdp"], format!("<redacted {} bytes>", SDP.len()));
    assert_eq!(lines[2]["event"], "candidate");
    assert_eq!(
        lines[2]["candidate"],
        "candidate:842163049 1 udp 1677729535 x.x.x.x 51121 typ srflx raddr x.x.x.x rport 51121 generation 0"
    );
    assert_eq!(lines[2]["sdp_mid"], "0");
    assert_eq!(lines[2]["sdp_mline_index"], 0);
    assert_eq!(lines[3]["dialect"], "raw");
    assert_eq!(lines[3]["payload"], "<redacted 22 bytes>");
    // The text itself never reaches the file.
    let text = std::fs::read_to_string(&file.0).expect("log");
    for secret in ["secret-token", "203.0.113.7", "192.168.1.20", "v=0"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // The fixed fields come first, in this order.
    assert!(text.starts_with(r#"{"ts":"#), "{text}");
    assert!(text.contains(r#","room":"r1","session":7,"dialect":"antmedia","event":"join","#));
}

#[test]
fn redaction_can_be_turned_off_or_limited_to_addresses() {
    let file = TempFile::new("no-redaction");
    let p = logging_to(&file.0, "redact_sdp = false\nredact_candidates = false");
    send(&p, peer(1, ANT), offer("r"));
    send(&p, peer(1, ANT), candidate("r"));
    p.shutdown();
    let lines = file.lines();
    assert_eq!(lines[0]["sdp"], SDP);
    assert_eq!(lines[1]["candidate"], CANDIDATE);

    let file = TempFile::new("addresses-only");
    let p = logging_to(&file.0, "redact_sdp = false");
    send(&p, peer(1, ANT), offer("r"));
    p.shutdown();
    let sdp = file.lines()[0]["sdp"].as_str().expect("sdp").to_owned();
    assert_eq!(
        sdp,
        "v=0\r\no=- 46117 2 IN IP4 x.x.x.x\r\nc=IN IP4 x.x.x.x\r\na=candidate:1 1 udp 2122260223 x.x.x.x 54321 typ host\r\n"
    );
}

#[test]
fn room_and_dialect_filters() {
    let file = TempFile::new("filters");
    let p = logging_to(
        &file.0,
        "rooms = [\"a\"]\ndialects = [\"raw\", \"socketio\"]",
    );
    send(&p, peer(1, DialectKind::Raw), join("a", None));
    send(&p, peer(2, DialectKind::Raw), join("b", None));
    send(&p, peer(3, ANT), join("a", None));
    send(&p, peer(4, DialectKind::Socketio), join("a", None));
    p.shutdown();
    let sessions: Vec<_> = file.lines().iter().map(|l| l["session"].clone()).collect();
    assert_eq!(sessions, [json!(1), json!(4)]);
}

#[test]
fn nothing_is_logged_after_shutdown_and_shutdown_is_idempotent() {
    let file = TempFile::new("after-shutdown");
    let p = logging_to(&file.0, "");
    send(&p, peer(1, ANT), join("a", None));
    p.shutdown();
    send(&p, peer(2, ANT), join("a", None));
    p.shutdown();
    drop(p);
    assert_eq!(file.lines().len(), 1);
}

#[test]
fn a_full_queue_drops_and_reports_the_count() {
    let file = TempFile::new("drops");
    let p = logging_to(&file.0, "queue_len = 1");
    let n = 2000;
    for _ in 0..n {
        send(&p, peer(1, ANT), offer("r"));
    }
    p.shutdown();
    let lines = file.lines();
    let logged = lines.iter().filter(|l| l.get("event").is_some()).count() as u64;
    let dropped: u64 = lines.iter().filter_map(|l| l["dropped"].as_u64()).sum();
    assert_eq!(logged + dropped, n, "every event is logged or counted");
}

#[test]
fn drop_count_line() {
    let dropped = AtomicU64::new(3);
    let mut out = Vec::new();
    let record = Record {
        ts_ms: 5,
        room: "r".into(),
        session: SessionId(1),
        dialect: DialectKind::Socketio,
        event: join("r", None),
    };
    let redaction = Redaction {
        sdp: true,
        candidates: true,
    };
    writer_batch(&mut out, vec![record], redaction, &dropped);
    assert_eq!(
        String::from_utf8(out).expect("UTF-8"),
        "{\"ts\":5,\"room\":\"r\",\"session\":1,\"dialect\":\"socketio\",\"event\":\"join\",\"mode\":\"both\"}\n{\"dropped\":3}\n"
    );
}

fn writer_batch(out: &mut Vec<u8>, batch: Vec<Record>, r: Redaction, d: &AtomicU64) {
    super::writer::write_batch(out, batch, r, d).expect("writes");
}

#[test]
fn candidate_redaction() {
    assert_eq!(
        redact_candidate("candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host generation 0"),
        "candidate:1 1 udp 2122260223 x.x.x.x 54321 typ host generation 0"
    );
    assert_eq!(
        redact_candidate("candidate:2 1 UDP 2122252543 2001:db8::1 40000 typ host"),
        "candidate:2 1 UDP 2122252543 redacted 40000 typ host"
    );
    assert_eq!(
        redact_candidate(
            "candidate:3 1 udp 2122260223 8c3e2b4a-3f0e-4a5b-9d1e-0123456789ab.local 5000 typ host"
        ),
        "candidate:3 1 udp 2122260223 redacted 5000 typ host"
    );
    assert_eq!(
        redact_candidate("candidate:4 1 tcp 1518280447 192.0.2.10 9 typ host tcptype active"),
        "candidate:4 1 tcp 1518280447 x.x.x.x 9 typ host tcptype active"
    );
    assert_eq!(redact_candidate(""), "");
}

#[test]
fn settings_problems_are_all_reported() {
    let settings: toml::Table = toml::from_str(
        "queue_len = 0\nrooms = [\"\"]\noutput = { file = \"/nonexistent-dir/x/log\" }",
    )
    .expect("TOML");
    let errors = LoggingFactory.build(&settings).err().expect("invalid");
    let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["queue_len", "rooms[0]", "output.file"]);
    for bad in [
        "output = \"nowhere\"",
        "output = { fil = \"x\" }",
        "output = {}",
        "output = 3",
        "redact_sdp = \"yes\"",
        "dialects = [\"sip\"]",
        "room = []",
    ] {
        let settings: toml::Table = toml::from_str(bad).expect("TOML");
        let errors = LoggingFactory.build(&settings).err().expect(bad);
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
    }
}

#[test]
fn output_forms_parse() {
    let parse = |text: &str| -> Output {
        let settings: toml::Table = toml::from_str(text).expect("TOML");
        parse_settings::<LoggingConfig>(&settings)
            .expect("parses")
            .output
    };
    assert_eq!(parse(""), Output::Stdout);
    assert_eq!(parse("output = \"stderr\""), Output::Stderr);
    assert_eq!(
        parse("output = { file = \"a.log\" }"),
        Output::File(PathBuf::from("a.log"))
    );
}

#[test]
fn canonical_example_config_builds() {
    let text = include_str!("../../../config/plugins/logging.toml");
    let doc: toml::Table = toml::from_str(text).expect("example is TOML");
    let plugins = doc["plugin"].as_array().expect("[[plugin]] array");
    assert_eq!(plugins.len(), 1);
    let table = plugins[0].as_table().expect("table");
    assert_eq!(table["type"].as_str(), Some(LoggingFactory.type_name()));
    let settings = table["settings"].as_table().expect("[plugin.settings]");
    let plugin = LoggingFactory.build(settings).expect("example builds");
    assert_eq!(plugin.name(), "logging");
    plugin.shutdown();
}

#[test]
fn conference_tokens_are_redacted() {
    use switchboard_plugin_api::event::conference::MediaRequest;
    use switchboard_plugin_api::event::{ConferenceCommand, ConferenceRequest};
    let file = TempFile::new("conference");
    let p = logging_to(&file.0, "");
    let publish = Event::Conference(Box::new(ConferenceRequest {
        app: "LiveApp".into(),
        command: ConferenceCommand::Publish(MediaRequest {
            stream_id: "s1".into(),
            token: Some("one-time-secret".into()),
            room: None,
        }),
    }));
    send(&p, peer(7, ANT), publish);
    p.shutdown();
    let lines = file.lines();
    assert_eq!(lines[0]["event"], "conference");
    assert_eq!(lines[0]["command"]["token"], "<redacted>");
    let text = std::fs::read_to_string(&file.0).expect("log");
    assert!(!text.contains("one-time-secret"), "{text}");
}
