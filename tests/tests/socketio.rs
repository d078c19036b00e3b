//! socket.io end to end with the real npm clients (socket.io-client 4.x and 2.x, `ws` for the
//! Ant Media and raw sides): each test starts an in-process gateway on loopback and runs one node
//! script from `tests/node/` against it. The scripts print one `ok - ...` line per check; run
//! with `--no-capture` to see them, or read them in the failure output.
//!
//! The gateway runs on a multi-threaded runtime, as the `switchboard` binary does, so that
//! concurrency between sessions and handlers is what production sees.

use std::time::Duration;

use switchboard_tests::{TestGateway, node};

/// Per-script deadline (each script also has its own, shorter, overall timeout).
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `tests/node/<script>` with `args`; shows its checks when it passed (with
/// `--no-capture`), fails the test with its full output when it did not.
async fn run_script(script: &str, args: &[&str]) {
    let run = node(script, args, DEADLINE).await;
    if run.success {
        eprintln!("--- {script}\n{}{}", run.stdout, run.stderr);
    }
    run.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_v2_and_v4_clients_relay_msg_strings_byte_identical() {
    let gw = TestGateway::start().await;
    run_script("sio_relay.mjs", &[&gw.http_url()]).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_msg_bursts_arrive_in_the_order_sent() {
    let gw = TestGateway::start().await;
    run_script("sio_order.mjs", &[&gw.http_url()]).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_third_peer_is_refused_room_full_until_a_place_frees() {
    let gw = TestGateway::start().await;
    run_script("sio_room_full.mjs", &[&gw.http_url()]).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_classic_listener_pairs_roomless_sockets_and_serves_page_and_client() {
    let gw = TestGateway::start().await;
    run_script("sio_classic.mjs", &[&gw.classic_url(), &gw.http_url()]).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_bridges_to_ant_media_and_raw_peers() {
    let gw = TestGateway::start().await;
    run_script("sio_bridge.mjs", &[&gw.http_url()]).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_bad_input_is_refused_without_harming_other_sessions() {
    let gw = TestGateway::start().await;
    run_script("sio_bad_input.mjs", &[&gw.http_url()]).await;
    gw.stop().await;
}
