//! What one cross-node frame costs to build on the sending node and to read on the receiving
//! node, for the envelope forms considered for a relay between peers of one dialect (the common
//! case: an Ant call split across nodes). A measurement, not a check, so it is `#[ignore]`d:
//!
//! ```sh
//! cargo test --release -p switchboard-protocol --test node_frame_cost -- --ignored --nocapture
//! ```
//!
//! Forms: `json-v2` is the frame before (JSON: the normalized event *and* the sender's frame as
//! an escaped string); `json-min` is the smallest JSON that carries the frame once (the routing
//! fields and the frame as an escaped string); `binary` is [`NodeFrame::to_bytes`] (a fixed
//! header, then the frame's bytes as they came). The receiver of the last two decodes the frame
//! again ([`rebuild_event`]); that is counted.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchboard_protocol::cluster::{Forwarding, NodeFrame, NodeMessage, rebuild_event};
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use switchboard_protocol::{Decoded, Dialect, DialectKind, Event, JoinMode};

/// The relay frame before this change (`NODE_PROTOCOL_VERSION` 2), its fields as they were.
#[derive(Serialize, Deserialize)]
struct V2 {
    v: u32,
    node: String,
    seq: u64,
    to: u64,
    from: (u64, DialectKind, JoinMode),
    event: Event,
    original: String,
}

/// The smallest JSON frame that carries the sender's frame once.
#[derive(Serialize, Deserialize)]
struct Min {
    v: u32,
    node: String,
    seq: u64,
    to: u64,
    d: DialectKind,
    m: JoinMode,
    room: String,
    original: String,
}

const NODE: &str = "bench-a@1764950000000";
const ROUNDS: u32 = 20_000;

/// A Chrome-shaped offer's size (about 6 KB) and line structure.
fn offer_frame() -> String {
    let mut sdp = String::from(
        "v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n",
    );
    while sdp.len() < 6000 {
        sdp.push_str("a=rtpmap:96 VP8/90000\\r\\na=rtcp-fb:96 goog-remb\\r\\na=rtcp-fb:96 transport-cc\\r\\na=fmtp:97 apt=96\\r\\n");
    }
    format!(r#"{{"command":"takeConfiguration","streamId":"room1","type":"offer","sdp":"{sdp}"}}"#)
}

fn candidate_frame() -> String {
    r#"{"command":"takeCandidate","streamId":"room1","label":0,"id":"0","candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sTjk network-cost 999"}"#.to_owned()
}

fn decoded(frame: &str) -> Event {
    match AntMedia::decode(&mut AntState::default(), frame) {
        Ok(Decoded::Event(event)) => event,
        other => panic!("{other:?}"),
    }
}

/// Nanoseconds per round of `f`, and the frame size it reports.
fn measure(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut size = 0;
    for _ in 0..ROUNDS / 10 {
        size = f();
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        size = black_box(f());
    }
    (start.elapsed().as_nanos() as f64 / f64::from(ROUNDS), size)
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn cost_of_a_relay_frame_by_envelope_form() {
    println!("| frame | form | bytes | ns to build + read (+ decode again) |");
    println!("|---|---|---:|---:|");
    for (name, frame) in [
        ("Ant offer", offer_frame()),
        ("Ant candidate", candidate_frame()),
    ] {
        let event = decoded(&frame);
        let room = event.room().unwrap().to_owned();
        let v2 = measure(|| {
            let bytes = serde_json::to_vec(&V2 {
                v: 2,
                node: NODE.to_owned(),
                seq: 7,
                to: 12,
                from: (7, DialectKind::Antmedia, JoinMode::Both),
                event: event.clone(),
                original: frame.clone(),
            })
            .unwrap();
            let back: V2 = serde_json::from_slice(&bytes).unwrap();
            black_box(back);
            bytes.len()
        });
        let min = measure(|| {
            let bytes = serde_json::to_vec(&Min {
                v: 3,
                node: NODE.to_owned(),
                seq: 7,
                to: 12,
                d: DialectKind::Antmedia,
                m: JoinMode::Both,
                room: room.clone(),
                original: frame.clone(),
            })
            .unwrap();
            let back: Min = serde_json::from_slice(&bytes).unwrap();
            black_box(rebuild_event(back.d, &back.room, &back.original).unwrap());
            bytes.len()
        });
        let binary = measure(|| {
            let bytes = NodeFrame {
                v: 3,
                node: NODE.to_owned(),
                seq: Some(7),
                msg: NodeMessage::Forward {
                    to: 12,
                    dialect: DialectKind::Antmedia,
                    mode: JoinMode::Both,
                    how: Forwarding::Decode,
                    room: room.clone(),
                    original: frame.clone(),
                },
            }
            .to_bytes();
            let back = NodeFrame::from_bytes(&bytes).unwrap();
            let NodeMessage::Forward {
                dialect,
                room,
                original,
                ..
            } = back.msg
            else {
                unreachable!()
            };
            black_box(rebuild_event(dialect, &room, &original).unwrap());
            bytes.len()
        });
        for (form, (ns, bytes)) in [("json-v2", v2), ("json-min", min), ("binary", binary)] {
            println!("| {name} | {form} | {bytes} | {ns:.0} |");
        }
    }
}
