//! The real-browser interop matrix: the demo pages in `examples/web/` (the Ant SDK, socket.io
//! 2.x/4.x, simple-peer and the classic SimpleP2P page) call each other through the real
//! `switchboard` binary in headless Chromium with a fake camera and microphone. Each test runs
//! one case of `tests/browser/matrix.mjs` (see its header for the cases, the checks and how to
//! run one by hand), in a loopback-only network namespace when root. A case passes when both
//! sides report ICE `connected` and the remote `<video>` has frames; on failure the page console
//! logs and the gateway log are in `tests/artifacts/<case>/` and their tails in the output.
//!
//! Needs `cargo build --workspace` (the binary) and `npm ci` (playwright-core and the npm
//! clients) first; `scripts/test.sh` does both. The nextest group `browser` runs at most two of
//! these at a time (`.config/nextest.toml`).

use std::time::Duration;

use switchboard_tests::browser_case;

/// Per case, start-up included; the script's own hard deadline is 80 s.
const DEADLINE: Duration = Duration::from_secs(90);

async fn run_case(case: &str) {
    let run = browser_case(case, DEADLINE).await;
    if run.success {
        eprintln!("{}", run.stdout.trim_end());
    }
    run.assert_success();
}

/// Ant SDK ↔ Ant SDK (P2P `join`), plus the data channel and a `peerMessageCommand` round trip.
#[tokio::test]
async fn browser_ant_ant() {
    run_case("ant_ant").await;
}

/// The classic SimpleP2P demo: two `/peer.html` on port 7000, one dials.
#[tokio::test]
async fn browser_classic() {
    run_case("classic").await;
}

/// Ant SDK ↔ socket.io v4 (Switchboard's embedded client).
#[tokio::test]
async fn browser_ant_socketio() {
    run_case("ant_socketio").await;
}

/// Ant SDK ↔ socket.io v4 (the official npm client).
#[tokio::test]
async fn browser_ant_socketio_npm4() {
    run_case("ant_socketio_npm4").await;
}

/// Ant SDK ↔ simple-peer over `/ws/{room}`.
#[tokio::test]
async fn browser_ant_raw() {
    run_case("ant_raw").await;
}

/// socket.io ↔ simple-peer.
#[tokio::test]
async fn browser_socketio_raw() {
    run_case("socketio_raw").await;
}

/// A third Ant peer gets `NoSpaceForNewPeer`; after a peer leaves, a new one connects.
#[tokio::test]
async fn browser_ant_full_room() {
    run_case("ant_full_room").await;
}

/// socket.io-client 2.x ↔ Ant SDK.
#[tokio::test]
async fn browser_sio2_ant() {
    run_case("sio2_ant").await;
}
