//! Cost per event of the plugin pipeline, built-in and native (not a timed test).
//!
//! Run with
//! ```text
//! cargo build --release -p lobby-router
//! cargo run --release -p switchboard --example pipeline_bench [-- CYCLES] [--threads-only]
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
//!
//! Then the same workload through the gateway's dispatcher (room lock, pipeline, queuing) on 1
//! and 2 threads, each thread in a room of its own, with (a) and (b), in rounds of a fixed
//! wall time: the throughput of 2 threads over 1 shows whether dispatches of different rooms
//! run in parallel, and the CPU per event whether the second thread adds contention
//! (`threads.rs`). `--threads-only` runs only this part.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod threads;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchboard::pipeline::Pipeline;
use switchboard_plugin_api::{EventContext, Peer, Plugin, RoomView, SessionId};
use switchboard_protocol::{Candidate, Description, DialectKind, Event, Join, JoinMode, SdpKind};
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
        let cx = EventContext::new(from, &event, RoomView { room, members });
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cycles = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|n| n.parse().expect("CYCLES is a number"))
        .unwrap_or(DEFAULT_CYCLES);
    if !args.iter().any(|a| a == "--threads-only") {
        per_event(cycles);
    }
    scaling();
}

/// Rounds of each thread count, interleaved; the median is reported with the spread.
const SCALING_ROUNDS: usize = 9;

/// How long each round dispatches.
const SCALING_WINDOW: Duration = Duration::from_millis(600);

/// The threaded measurement: events per second through the dispatcher on 1 and 2 threads.
fn scaling() {
    println!(
        "\nthrough the dispatcher, T threads each in its own room ({SCALING_ROUNDS} interleaved rounds of {} ms; median, min-max)",
        SCALING_WINDOW.as_millis()
    );
    println!(
        "{:<28}{:>22}{:>22}{:>12}{:>16}",
        "pipeline", "1 thread: events/s", "2 threads: events/s", "2T / 1T", "cores used 1/2"
    );
    let builtin = || vec![room_router()];
    let native = || vec![native_lobby_router()];
    for (label, plugins, prefix) in [
        (
            "(a) built-in room-router",
            &builtin as &dyn Fn() -> Vec<Box<dyn Plugin>>,
            "room",
        ),
        ("(b) native lobby-router", &native, "lobby"),
    ] {
        let mut one = Vec::new();
        let mut two = Vec::new();
        for _ in 0..SCALING_ROUNDS {
            one.push(threads::measure(
                plugins,
                prefix,
                1,
                SCALING_WINDOW,
                &workload,
            ));
            two.push(threads::measure(
                plugins,
                prefix,
                2,
                SCALING_WINDOW,
                &workload,
            ));
        }
        let (m1, lo1, hi1) = spread(&one, |t| t.events_per_sec);
        let (m2, lo2, hi2) = spread(&two, |t| t.events_per_sec);
        let (c1, _, _) = spread(&one, |t| t.cores);
        let (c2, _, _) = spread(&two, |t| t.cores);
        println!(
            "{label:<28}{:>22}{:>22}{:>12}{:>16}",
            format!("{:.0}k ({:.0}-{:.0}k)", m1 / 1e3, lo1 / 1e3, hi1 / 1e3),
            format!("{:.0}k ({:.0}-{:.0}k)", m2 / 1e3, lo2 / 1e3, hi2 / 1e3),
            format!("{:.2}x", m2 / m1),
            format!("{c1:.2} / {c2:.2}"),
        );
        // CPU per event depends much less on what else the machine runs than events per
        // second do: equal on 1 and 2 threads means the second thread adds no contention.
        let cpu_ns = |t: &threads::Throughput| t.cores / t.events_per_sec * 1e9;
        println!(
            "{:<28}CPU ns per event, median: 1 thread {:.0}, 2 threads {:.0}",
            "",
            spread(&one, cpu_ns).0,
            spread(&two, cpu_ns).0
        );
        let ratios: Vec<f64> = one
            .iter()
            .zip(&two)
            .map(|(a, b)| b.events_per_sec / a.events_per_sec)
            .collect();
        println!(
            "{:<28}per round 2T / 1T: {}",
            "",
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

/// Median, minimum and maximum of `f` over `samples`.
fn spread(
    samples: &[threads::Throughput],
    f: impl Fn(&threads::Throughput) -> f64,
) -> (f64, f64, f64) {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The per-event cost of each pipeline, called directly (no dispatcher).
fn per_event(cycles: usize) {
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
