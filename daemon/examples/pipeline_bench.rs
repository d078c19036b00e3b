//! Cost per event of the plugin pipeline, built-in and native (not a timed test).
//!
//! Run with
//! ```text
//! cargo build --release -p lobby-router
//! cargo run --release -p switchboard --example pipeline_bench [-- CYCLES]
//! ```
//! It loads `liblobby_router.so` from the profile directory it runs from (`target/release/`), or
//! from `$LOBBY_ROUTER_LIB`.
//!
//! The workload is what a call sends: per cycle an offer (a 4 KB SDP) and 8 candidates from one
//! peer, then an answer and 8 candidates from the other, in a room of two paired members. The
//! pipelines are (a) the built-in room router, (b) the native lobby router in one of its lobby
//! rooms (it routes and stops the pipeline), and (c) the native lobby router in front of the
//! room router in an ordinary room, as in `config/lobby.toml` (the native plugin is called and
//! passes on; the room router routes). Each event crosses the native ABI as JSON both ways, so
//! the native cost grows with the SDP size.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchboard::pipeline::Pipeline;
use switchboard_plugin_api::protocol::{
    Candidate, Description, DialectKind, Event, Join, JoinMode, SdpKind,
};
use switchboard_plugin_api::{Envelope, EventContext, Peer, Plugin, RoomView, SessionId};
use switchboard_room_router::{RoomRouter, RoomRouterConfig};

const DEFAULT_CYCLES: usize = 5_000;
/// Each figure is the best of this many rounds, so that other load on the machine shows less.
const ROUNDS: usize = 5;

fn lobby_router_lib() -> PathBuf {
    if let Some(path) = std::env::var_os("LOBBY_ROUTER_LIB") {
        return path.into();
    }
    // target/<profile>/examples/pipeline_bench -> target/<profile>/liblobby_router.so
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|examples| examples.parent())
        .unwrap()
        .join("liblobby_router.so")
}

fn native_lobby_router() -> Box<dyn Plugin> {
    let lib = lobby_router_lib();
    switchboard_native_plugins::load(&lib, &toml::Table::new()).unwrap_or_else(|e| {
        panic!(
            "{}\n(build it first: cargo build --release -p lobby-router)",
            e.join("\n")
        )
    })
}

fn room_router() -> Box<dyn Plugin> {
    Box::new(RoomRouter::new(RoomRouterConfig::default()))
}

fn peer(n: u64, dialect: DialectKind) -> Peer {
    Peer {
        session: SessionId(n),
        dialect,
        mode: JoinMode::Both,
    }
}

/// A 4 KB SDP shaped like a browser's audio+video+data offer.
fn sdp() -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 3057583230842636777 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n",
    );
    let mut line = 0;
    while sdp.len() < 4096 {
        sdp.push_str(&format!(
            "a=rtpmap:{} VP8/90000\r\na=rtcp-fb:{line} nack pli\r\na=fmtp:{line} apt=96\r\n",
            96 + line % 30
        ));
        line += 1;
    }
    sdp
}

/// One cycle of events: (sender index, event).
fn workload(room: &str) -> Vec<(usize, Event)> {
    let sdp = sdp();
    let mut events = Vec::new();
    for (who, kind) in [(0, SdpKind::Offer), (1, SdpKind::Answer)] {
        events.push((
            who,
            Event::Description(Description {
                room: room.to_owned(),
                kind,
                sdp: sdp.clone().into(),
            }),
        ));
        for i in 0..8u32 {
            events.push((
                who,
                Event::Candidate(Candidate {
                    room: room.to_owned(),
                    candidate: format!(
                        "candidate:{i}835302670 1 udp 2122194687 192.0.2.{i} 5655{i} typ host generation 0 ufrag dK+1 network-id 1"
                    )
                    .into(),
                    sdp_mid: Some((i % 3).to_string()),
                    sdp_mline_index: Some(i % 3),
                    username_fragment: Some("dK+1".into()),
                }),
            ));
        }
    }
    events
}

/// Which events of the workload to run.
#[derive(Clone, Copy)]
enum Mix {
    All,
    Descriptions,
    Candidates,
}

/// Runs `cycles` of the workload through `pipeline` in `room` after the two joins; returns the
/// mean time per signal event.
fn measure(pipeline: &Pipeline, room: &str, cycles: usize, mix: Mix) -> Duration {
    let members = [peer(1, DialectKind::Antmedia), peer(2, DialectKind::Raw)];
    let run = |from: Peer, event: Event, members: &[Peer]| {
        let envelope = Envelope {
            from,
            event,
            original: None,
            app: None,
        };
        let cx = EventContext {
            envelope: &envelope,
            room: RoomView { room, members },
        };
        let decision = pipeline
            .run(&cx)
            .expect("the workload is routed, not refused");
        black_box(decision);
    };
    // The joins pair the two peers (the lobby router keeps that state).
    for (i, p) in members.iter().enumerate() {
        let join = Event::Join(Join {
            room: room.to_owned(),
            mode: JoinMode::Both,
            token: None,
        });
        run(*p, join, &members[..i]);
    }
    let events: Vec<_> = workload(room)
        .into_iter()
        .filter(|(_, e)| match mix {
            Mix::All => true,
            Mix::Descriptions => matches!(e, Event::Description(_)),
            Mix::Candidates => matches!(e, Event::Candidate(_)),
        })
        .collect();
    let warmup = (cycles / 10).max(1);
    for _ in 0..warmup {
        for (who, event) in &events {
            run(members[*who], event.clone(), &members);
        }
    }
    // Cloning the event is part of what every pipeline pays; measured alone below.
    let start = Instant::now();
    for _ in 0..cycles {
        for (who, event) in &events {
            run(members[*who], event.clone(), &members);
        }
    }
    start.elapsed() / u32::try_from(cycles * events.len()).unwrap()
}

fn clone_cost(cycles: usize) -> Duration {
    let events = workload("room");
    let start = Instant::now();
    for _ in 0..cycles {
        for (_, event) in &events {
            black_box(event.clone());
        }
    }
    start.elapsed() / u32::try_from(cycles * events.len()).unwrap()
}

fn main() {
    let cycles = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("CYCLES is a number"))
        .unwrap_or(DEFAULT_CYCLES);
    let events = workload("x").len();
    println!(
        "pipeline_bench: best of {ROUNDS} rounds of {cycles} cycles x {events} events (2 descriptions of {} bytes, 16 candidates)",
        sdp().len()
    );
    println!("library: {}", lobby_router_lib().display());

    let builtin = Pipeline::new(vec![room_router()]);
    let native = Pipeline::new(vec![native_lobby_router()]);
    let both = Pipeline::new(vec![native_lobby_router(), room_router()]);
    let ns = |d: Duration| d.as_nanos();
    println!(
        "{:<34}{:>12}{:>14}{:>13}",
        "ns per event", "all", "descriptions", "candidates"
    );
    let mut rows = Vec::new();
    for (label, pipeline, room) in [
        ("(a) built-in room-router", &builtin, "room1"),
        ("(b) native lobby-router", &native, "lobby1"),
        ("(c) native lobby + built-in router", &both, "room2"),
    ] {
        // Descriptions are 1 in 9 events; give them as many iterations as candidates get.
        let best = |cycles, mix| {
            (0..ROUNDS)
                .map(|_| measure(pipeline, room, cycles, mix))
                .min()
                .unwrap()
        };
        let row = [
            best(cycles, Mix::All),
            best(cycles * 8, Mix::Descriptions),
            best(cycles, Mix::Candidates),
        ];
        println!(
            "{label:<34}{:>12}{:>14}{:>13}",
            ns(row[0]),
            ns(row[1]),
            ns(row[2])
        );
        rows.push(row);
    }
    println!(
        "{:<34}{:>12}",
        "(event clone, included above)",
        ns(clone_cost(cycles))
    );
    let ratio = |x: usize, col: usize| rows[x][col].as_secs_f64() / rows[0][col].as_secs_f64();
    println!(
        "native / built-in (b / a): {:.1}x all, {:.1}x descriptions, {:.1}x candidates",
        ratio(1, 0),
        ratio(1, 1),
        ratio(1, 2)
    );
    println!(
        "both / built-in   (c / a): {:.1}x all, {:.1}x descriptions, {:.1}x candidates",
        ratio(2, 0),
        ratio(2, 1),
        ratio(2, 2)
    );
}
