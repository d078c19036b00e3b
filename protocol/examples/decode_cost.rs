//! Decode cost per frame for the relay's hot frames (a 6 KB Chrome-shaped offer and a
//! candidate, in each dialect's usual shape): `cargo run --release -p switchboard-protocol
//! --example decode_cost [ITERATIONS]`. Wall-clock figures depend on the machine's load; under
//! `valgrind --tool=callgrind` the instruction counts do not: `decode_cost 1000 "raw offer"` runs
//! one case, and its count less that of `decode_cost 0 "raw offer"` is 1,000 decodes.

#![allow(clippy::print_stdout)] // a command-line report

use std::hint::black_box;
use std::time::Instant;

use switchboard_protocol::Dialect;
use switchboard_protocol::dialects::antmedia::{AntMedia, AntState};
use switchboard_protocol::dialects::raw::{Raw, RawState};
use switchboard_protocol::dialects::socketio::{decode_msg_text, read_event_data};

/// An SDP the size of Chrome's audio + video + data offer (about 6 KB, 100 lines).
fn sdp() -> String {
    let mut s =
        String::from("v=0\r\no=- 3057583230842636777 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for i in 0..96 {
        s.push_str(&format!(
            "a=rtcp-fb:{i} transport-cc goog-remb nack pli x{i:04}\r\n"
        ));
    }
    s
}

const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 50001 typ srflx raddr 192.0.2.2 rport 50001 generation 0 ufrag dK+1 network-id 1 network-cost 10";

fn time(label: &str, iterations: u32, mut f: impl FnMut()) {
    // An optional second argument picks the frames whose label contains it (one case at a time
    // under callgrind, whose instruction counts do not depend on the machine's load).
    if let Some(only) = std::env::args().nth(2)
        && !label.contains(only.as_str())
    {
        return;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{label:<28} {ns:>8.0} ns/frame");
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    // Each client's own key order (`json!` would sort the keys).
    let sdp = to_json(&sdp());
    let candidate = to_json(CANDIDATE);
    let ant_offer =
        format!(r#"{{"command":"takeConfiguration","streamId":"s1","type":"offer","sdp":{sdp}}}"#);
    let ant_cand = format!(
        r#"{{"command":"takeCandidate","streamId":"s1","label":0,"id":"0","candidate":{candidate}}}"#
    );
    let raw_offer = format!(r#"{{"type":"offer","sdp":{sdp}}}"#);
    let raw_cand = format!(
        r#"{{"type":"candidate","candidate":{{"candidate":{candidate},"sdpMLineIndex":0,"sdpMid":"0"}}}}"#
    );
    let sio_offer = format!(r#"{{"sdp":{{"type":"offer","sdp":{sdp}}}}}"#);
    let sio_cand = format!(
        r#"{{"candidate":{{"candidate":{candidate},"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"dK+1"}}}}"#
    );
    // What a socket.io packet carries: `["msg",<the text as a JSON string>]`.
    let sio_offer_packet = format!(r#"["msg",{}]"#, to_json(&sio_offer));
    let sio_cand_packet = format!(r#"["msg",{}]"#, to_json(&sio_cand));

    let mut ant = AntState {
        app: "LiveApp".to_owned(),
    };
    let mut raw = RawState {
        room: "s1".to_owned(),
    };
    time("antmedia offer", iterations, || {
        black_box(AntMedia::decode(&mut ant, &ant_offer).is_ok());
    });
    time("antmedia candidate", iterations, || {
        black_box(AntMedia::decode(&mut ant, &ant_cand).is_ok());
    });
    time("raw offer", iterations, || {
        black_box(Raw::decode(&mut raw, &raw_offer).is_ok());
    });
    time("raw candidate", iterations, || {
        black_box(Raw::decode(&mut raw, &raw_cand).is_ok());
    });
    time("socket.io msg offer", iterations, || {
        black_box(decode_msg_text("s1", &sio_offer).is_ok());
    });
    time("socket.io msg candidate", iterations, || {
        black_box(decode_msg_text("s1", &sio_cand).is_ok());
    });
    time("socket.io packet offer", iterations, || {
        black_box(read_event_data("s1", &sio_offer_packet).is_ok());
    });
    time("socket.io packet candidate", iterations, || {
        black_box(read_event_data("s1", &sio_cand_packet).is_ok());
    });
}

fn to_json(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}
