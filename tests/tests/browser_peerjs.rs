//! PeerJS 1.5 pages in headless Chromium, with the real `switchboard` binary as their PeerJS
//! server, call an Ant SDK page, a socket.io page, a simple-peer page and another PeerJS page
//! (`examples/web/peerjs.html`, cases `peerjs_*` of `tests/browser/matrix.mjs`; see its header
//! for running one by hand). Each passes when both sides report ICE `connected` and the remote
//! `<video>` has frames; PeerJS ↔ PeerJS also exchanges JSON over a data connection both ways.
//! The Ant case also checks that the PeerJS page's id came from the gateway's `GET /peerjs/id`.
//!
//! Needs `cargo build --workspace` and `npm ci` first; `scripts/test.sh` does both. The nextest
//! group `browser` runs at most two at a time.

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

/// A PeerJS page calls the room of an Ant SDK page (P2P `join`): the PeerJS side offers.
#[tokio::test]
async fn browser_peerjs_ant() {
    run_case("peerjs_ant").await;
}

/// A PeerJS page calls the room of a socket.io page (the SimpleP2P `msg` format).
#[tokio::test]
async fn browser_peerjs_socketio() {
    run_case("peerjs_socketio").await;
}

/// A PeerJS page calls the room of a simple-peer page on `/ws/{room}`.
#[tokio::test]
async fn browser_peerjs_raw() {
    run_case("peerjs_raw").await;
}

/// Two PeerJS pages, as through the `peer` server: a media call and a data connection.
#[tokio::test]
async fn browser_peerjs_peerjs() {
    run_case("peerjs_peerjs").await;
}
