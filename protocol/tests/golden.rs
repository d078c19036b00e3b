//! Golden-file tests: walks `tests/golden/<dialect>/`, runs every case and compares with the
//! stored expectation. `GOLDEN_BLESS=1 cargo test -p switchboard-protocol --test golden`
//! rewrites the expected files instead; review the diff. See `tests/golden/README.md`.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde_json::Value;
use similar_asserts::assert_eq;
use switchboard_protocol::dialects::TextFrames;
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use switchboard_protocol::dialects::engineio::{EngineState, SocketIoWs};
use switchboard_protocol::dialects::peerjs::{Peerjs, PeerjsState};
use switchboard_protocol::dialects::raw::{Raw, RawState};
use switchboard_protocol::dialects::socketio::{SioMessage, SioState, SocketIo};
use switchboard_protocol::{Decoded, Dialect, Event};

/// The room raw and socket.io connections are in (Ant frames name their own).
const ROOM: &str = "room1";

const WIRE: &str = ".wire.json";
const EVENT: &str = ".event.json";
const ERROR: &str = ".error.txt";
const IGNORE: &str = ".ignore.txt";
const REPLY: &str = ".reply.wire.json";
const CLOSE: &str = ".close.txt";
const EXPECTED: &str = ".expected.wire.json";
const NONE: &str = ".expected.none.txt";
const ORIGINAL: &str = ".original.wire.json";

/// Longest suffixes first: `.expected.wire.json` also ends in `.wire.json`.
const SUFFIXES: &[&str] = &[
    EXPECTED, ORIGINAL, REPLY, NONE, WIRE, EVENT, ERROR, IGNORE, CLOSE,
];
const DECODE_OUTCOMES: &[&str] = &[EVENT, ERROR, IGNORE, REPLY, CLOSE];

/// Every [`Event::kind`]; each dialect's cases must cover all of them.
const ALL_KINDS: &[&str] = &[
    "join",
    "leave",
    "description",
    "candidate",
    "peer_message",
    "opaque",
    "ice_servers_request",
    "joined",
    "start",
    "peer_joined",
    "peer_left",
    "left",
    "ice_servers",
    "error",
    "conference",
    "conference_reply",
    "server_will_stop",
];

/// How a dialect's wire messages are stored in files.
trait Golden: Dialect<Wire: PartialEq + std::fmt::Debug + Clone> {
    const DIR: &'static str;
    fn state() -> Self::State;
    fn read_wire(text: &str) -> Self::Wire;
    fn write_wire(wire: &Self::Wire) -> String;
    /// The `original` text [`Dialect::forward`] gets for a message.
    fn original(wire: &Self::Wire) -> String;
    /// The message a peer of this dialect sends to say what `rendered` (the gateway's rendering
    /// of a relayed signal) said, for the round trip: the rendering itself, except where the
    /// dialect addresses messages (PeerJS: the gateway's `src` is the client's `dst`).
    fn reply_of(rendered: &Self::Wire) -> Self::Wire {
        rendered.clone()
    }
}

/// Frame text stored verbatim; one trailing newline is not part of the frame.
fn frame_from_file(text: &str) -> String {
    text.strip_suffix('\n').unwrap_or(text).to_owned()
}

impl Golden for AntMedia {
    const DIR: &'static str = "antmedia";
    fn state() -> AntState {
        AntState {
            app: "LiveApp".to_owned(),
        }
    }
    fn read_wire(text: &str) -> String {
        frame_from_file(text)
    }
    fn write_wire(wire: &String) -> String {
        format!("{wire}\n")
    }
    fn original(wire: &String) -> String {
        wire.clone()
    }
}

impl Golden for Raw {
    const DIR: &'static str = "raw";
    fn state() -> RawState {
        RawState {
            room: ROOM.to_owned(),
        }
    }
    fn read_wire(text: &str) -> String {
        frame_from_file(text)
    }
    fn write_wire(wire: &String) -> String {
        format!("{wire}\n")
    }
    fn original(wire: &String) -> String {
        wire.clone()
    }
}

impl Golden for SocketIo {
    const DIR: &'static str = "socketio";
    fn state() -> SioState {
        SioState {
            room: ROOM.to_owned(),
        }
    }
    fn read_wire(text: &str) -> SioMessage {
        let v: Value = serde_json::from_str(text).expect("socket.io wire file is JSON");
        let event = v["event"]
            .as_str()
            .expect("socket.io wire file has a string `event`");
        SioMessage {
            event: event.to_owned(),
            data: v.get("data").cloned().unwrap_or(Value::Null),
        }
    }
    fn write_wire(wire: &SioMessage) -> String {
        #[derive(serde::Serialize)]
        struct File<'a> {
            event: &'a str,
            data: &'a Value,
        }
        let file = File {
            event: &wire.event,
            data: &wire.data,
        };
        format!("{}\n", serde_json::to_string_pretty(&file).expect("JSON"))
    }
    fn original(wire: &SioMessage) -> String {
        wire.msg_text()
            .expect("a socket.io original is a msg")
            .into_owned()
    }
}

/// PeerJS frames are the recorded `peerjs` 1.5 client's (tests/browser/peerjs_record.mjs):
/// `alice` calls `bob`; the connection decoding them is alice's.
impl Golden for Peerjs {
    const DIR: &'static str = "peerjs";
    fn state() -> PeerjsState {
        PeerjsState::new("alice", None)
    }
    fn read_wire(text: &str) -> String {
        frame_from_file(text)
    }
    fn write_wire(wire: &String) -> String {
        format!("{wire}\n")
    }
    fn original(wire: &String) -> String {
        let (_, original) =
            Peerjs::decode_relayable(&mut Self::state(), wire).expect("an original decodes");
        original.expect("an original is relayed").into_owned()
    }
    fn reply_of(rendered: &String) -> String {
        let mut v: Value = serde_json::from_str(rendered).expect("a rendering is JSON");
        let obj = v.as_object_mut().expect("a rendering is an object");
        let src = obj.remove("src").expect("a relayed signal has its src");
        obj.insert("dst".into(), src);
        v.to_string()
    }
}

impl Golden for SocketIoWs {
    const DIR: &'static str = "engineio";
    fn state() -> EngineState {
        EngineState {
            room: ROOM.to_owned(),
            connected: true,
            ..EngineState::default()
        }
    }
    fn read_wire(text: &str) -> String {
        frame_from_file(text)
    }
    fn write_wire(wire: &String) -> String {
        format!("{wire}\n")
    }
    fn original(wire: &String) -> String {
        let (_, original) =
            SocketIoWs::decode_relayable(&mut Self::state(), wire).expect("an original decodes");
        original.expect("an original is a msg").into_owned()
    }
}

#[test]
fn antmedia_golden() {
    run::<AntMedia>(&[
        "malformed_message",
        "unknown_command",
        "unsupported",
        "no_stream_name",
        "no_room_name",
        "invalid_stream_name",
        "invalid_field",
    ]);
}

#[test]
fn raw_golden() {
    run::<Raw>(&["malformed_message", "invalid_field"]);
}

#[test]
fn socketio_golden() {
    run::<SocketIo>(&["malformed_message", "invalid_field"]);
}

#[test]
fn peerjs_golden() {
    run::<Peerjs>(&["malformed_message", "unknown_command", "invalid_field"]);
}

#[test]
fn engineio_golden() {
    run::<SocketIoWs>(&["malformed_message", "invalid_field"]);
}

/// What running the cases saw, for the coverage checks.
#[derive(Default)]
struct Seen {
    kinds: BTreeSet<&'static str>,
    errors: BTreeSet<String>,
}

fn run<D: Golden>(required_errors: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(D::DIR);
    let bless = std::env::var_os("GOLDEN_BLESS").is_some_and(|v| v != "0");
    let mut failed = Vec::new();
    let mut seen = Seen::default();
    for (case, files) in cases(&dir) {
        let base = dir.join(&case);
        let outcome = catch_unwind(AssertUnwindSafe(|| run_case::<D>(&base, &files, bless)));
        match outcome {
            Ok(case_seen) => {
                seen.kinds.extend(case_seen.kinds);
                seen.errors.extend(case_seen.errors);
            }
            Err(_) => failed.push(case),
        }
    }
    assert!(
        failed.is_empty(),
        "{}: failing golden cases: {failed:?}",
        D::DIR
    );
    let missing: Vec<_> = ALL_KINDS
        .iter()
        .filter(|k| !seen.kinds.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: no golden case covers {missing:?}",
        D::DIR
    );
    let missing: Vec<_> = required_errors
        .iter()
        .filter(|e| !seen.errors.contains(**e))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: no golden case produces {missing:?}",
        D::DIR
    );
}

/// Case name → the suffixes present.
fn cases(dir: &Path) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut cases: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let (case, suffix) = SUFFIXES
            .iter()
            .find_map(|s| name.strip_suffix(s).map(|c| (c.to_owned(), *s)))
            .unwrap_or_else(|| panic!("{}: unexpected file {name}", dir.display()));
        cases.entry(case).or_default().insert(suffix);
    }
    cases
}

fn path(base: &Path, suffix: &str) -> PathBuf {
    let mut p = base.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn read(base: &Path, suffix: &str) -> String {
    let p = path(base, suffix);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run_case<D: Golden>(base: &Path, files: &BTreeSet<&'static str>, bless: bool) -> Seen {
    let mut seen = Seen::default();
    if files.contains(ORIGINAL) {
        forward_case::<D>(base, bless);
    } else if files.contains(WIRE) {
        decode_case::<D>(base, files, bless, &mut seen);
    } else if files.contains(EVENT) {
        outbound_case::<D>(base, bless, &mut seen);
    } else {
        panic!("{}: expectation without input ({files:?})", base.display());
    }
    seen
}

/// `<case>.wire.json` → one of `.event.json`, `.error.txt`, `.reply.wire.json`, `.ignore.txt`.
fn decode_case<D: Golden>(base: &Path, files: &BTreeSet<&str>, bless: bool, seen: &mut Seen) {
    let wire = D::read_wire(&read(base, WIRE));
    let result = D::decode(&mut D::state(), wire.borrow());
    let (suffix, text) = match &result {
        Ok(Decoded::Event(e)) => {
            seen.kinds.insert(e.kind());
            (
                EVENT,
                format!("{}\n", serde_json::to_string_pretty(e).expect("event JSON")),
            )
        }
        Ok(Decoded::Reply(w)) => (REPLY, D::write_wire(w)),
        Ok(Decoded::Ignore) => (IGNORE, String::new()),
        Ok(Decoded::Close) => (CLOSE, "the peer ends the session\n".to_owned()),
        Err(e) => {
            seen.errors.insert(e.code().as_str().to_owned());
            (ERROR, format!("{}\n", e.code().as_str()))
        }
    };
    if bless {
        for other in DECODE_OUTCOMES.iter().filter(|o| **o != suffix) {
            let _ = fs::remove_file(path(base, other));
        }
        if suffix == IGNORE && files.contains(IGNORE) {
            // Keep the explanation already written there.
        } else {
            let text = if suffix == IGNORE {
                "ignored\n".to_owned()
            } else {
                text
            };
            fs::write(path(base, suffix), text).expect("bless");
        }
    } else {
        let present: Vec<_> = DECODE_OUTCOMES
            .iter()
            .filter(|o| files.contains(*o))
            .collect();
        assert_eq!(
            present,
            vec![&suffix],
            "{}: outcome {result:?}",
            base.display()
        );
        match suffix {
            EVENT => {
                let expected: Event = serde_json::from_str(&read(base, EVENT)).expect("event");
                if let Ok(Decoded::Event(actual)) = &result {
                    assert_eq!(&expected, actual, "{}", base.display());
                }
            }
            ERROR => assert_eq!(read(base, ERROR).trim(), text.trim(), "{}", base.display()),
            REPLY => assert_eq!(D::write_wire(&D::read_wire(&read(base, REPLY))), text),
            _ => {}
        }
    }
    if let Ok(Decoded::Event(e)) = &result {
        fixpoint::<D>(base, e);
    }
}

/// `<case>.event.json` → `.expected.wire.json` or `.expected.none.txt`.
fn outbound_case<D: Golden>(base: &Path, bless: bool, seen: &mut Seen) {
    let event: Event = serde_json::from_str(&read(base, EVENT))
        .unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    seen.kinds.insert(event.kind());
    let rendered = D::encode(&D::state(), &event);
    if bless {
        let (keep, drop) = if rendered.is_some() {
            (EXPECTED, NONE)
        } else {
            (NONE, EXPECTED)
        };
        let _ = fs::remove_file(path(base, drop));
        let text = rendered
            .as_ref()
            .map_or_else(|| "renders nothing\n".to_owned(), D::write_wire);
        if rendered.is_some() || !path(base, NONE).exists() {
            fs::write(path(base, keep), text).expect("bless");
        }
    } else {
        match &rendered {
            Some(w) => {
                let expected = D::read_wire(&read(base, EXPECTED));
                assert_eq!(
                    D::write_wire(&expected),
                    D::write_wire(w),
                    "{}",
                    base.display()
                );
            }
            None => assert!(
                path(base, NONE).exists(),
                "{}: rendered nothing, but there is no {NONE}",
                base.display()
            ),
        }
    }
    if rendered.is_some() {
        fixpoint::<D>(base, &event);
    }
}

/// `<case>.original.wire.json` (a sender's message) → decode → forward to a peer of the same
/// dialect → `.expected.wire.json`.
fn forward_case<D: Golden>(base: &Path, bless: bool) {
    let original = D::read_wire(&read(base, ORIGINAL));
    let event = match D::decode(&mut D::state(), original.borrow()) {
        Ok(Decoded::Event(e)) => e,
        other => panic!("{}: original decodes to {other:?}", base.display()),
    };
    let forwarded = D::forward(&D::state(), &D::original(&original), &event)
        .unwrap_or_else(|| panic!("{}: {event:?} is not forwarded", base.display()));
    if bless {
        fs::write(path(base, EXPECTED), D::write_wire(&forwarded)).expect("bless");
    } else {
        let expected = D::read_wire(&read(base, EXPECTED));
        assert_eq!(
            D::write_wire(&expected),
            D::write_wire(&forwarded),
            "{}",
            base.display()
        );
    }
}

/// The round trip for relayed signals: a dialect accepts its own rendering of `event`, and
/// rendering the decoded result again gives the same wire message. (Notices are one-way: Ant's
/// `stop` notice, for one, is also a client command with another meaning.)
fn fixpoint<D: Golden>(base: &Path, event: &Event) {
    let relayed = matches!(
        event,
        Event::Description(_) | Event::Candidate(_) | Event::PeerMessage(_) | Event::Opaque(_)
    );
    let Some(wire) = D::encode(&D::state(), event).filter(|_| relayed) else {
        return;
    };
    match D::decode(&mut D::state(), D::reply_of(&wire).borrow()) {
        Ok(Decoded::Event(again)) => {
            assert_eq!(
                again.kind(),
                event.kind(),
                "{}: round trip changed kind",
                base.display()
            );
            let twice = D::encode(&D::state(), &again).map(|w| D::write_wire(&w));
            assert_eq!(
                twice,
                Some(D::write_wire(&wire)),
                "{}: not a fixpoint",
                base.display()
            );
        }
        // raw and socket.io peer messages are gateway notices, which their peers cannot send.
        Ok(Decoded::Ignore) if matches!(event, Event::PeerMessage(_)) => {}
        other => panic!(
            "{}: own rendering {wire:?} decodes to {other:?}",
            base.display()
        ),
    }
}
