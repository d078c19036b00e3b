//! Nothing lost under real loads (issue 17): real npm clients (socket.io-client 4 and 2 with
//! their default options, `ws` as raw and Ant Media peers) in bursts of 6 KB offers against an
//! in-process gateway. Counts only: 0 lost and in order; a receiver that pauses 2 s loses
//! nothing; a receiver that never reads is closed after `write_timeout_secs`, its partner is
//! told and its sender goes on. The scenarios are in `tests/node/burst.mjs`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use switchboard_tests::metrics::{self, scrape};
use switchboard_tests::{TestGateway, clean_node_scenario, node_scenario};

/// Rate limits raised so nothing is rate-limited; a short queue; a short write timeout for the never-reads case
/// (longer than the 2 s pause, which must not count as stuck).
const CONFIG: &str = r#"
[[listener]]
bind = "127.0.0.1:0"
dialects = ["antmedia", "socketio", "raw"]

[shutdown]
grace_period_secs = 2

[limits]
messages_per_sec = 1000000.0
message_burst = 1000000
write_timeout_secs = 4
# A short queue, so that every burst fills it many times over: the senders must wait.
session_queue_len = 32

[[plugin]]
type = "room-router"
"#;

const DEADLINE: Duration = Duration::from_secs(115);

async fn scenario(gw: &TestGateway, name: &str) {
    node_scenario(gw, "burst.mjs", name, DEADLINE).await;
}

/// Runs scenario `name` on a fresh gateway and expects no error counted.
async fn clean_scenario(name: &str) {
    clean_node_scenario(CONFIG, "burst.mjs", name, DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_every_client_kind_arrive_whole_and_in_order() {
    clean_scenario("burst").await;
}

/// Two peers flooding each other, each session's queue full, each session waiting for room in
/// the other's: they must not deadlock (each goes on writing its own queue while it waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_flooding_each_other_do_not_deadlock() {
    clean_scenario("duplex").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_pauses_two_seconds_loses_nothing() {
    clean_scenario("pause").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_reads_is_closed_and_counted_once() {
    let gw = TestGateway::with_config(CONFIG).await;
    scenario(&gw, "never-reads").await;
    let body = scrape(&gw).await;
    // Three receivers were given up on (raw, socket.io-client 4 and 2): each counted once,
    // whichever of the write timeout and the full queue noticed first.
    let stuck = metrics::sum(
        &body,
        r#"switchboard_errors_total{dialect="raw",reason="write_timeout"}"#,
    ) + metrics::sum(
        &body,
        r#"switchboard_errors_total{dialect="raw",reason="session_stuck"}"#,
    );
    assert_eq!(stuck, 1, "{body}");
    let stuck = metrics::sum(
        &body,
        r#"switchboard_errors_total{dialect="socketio",reason="write_timeout"}"#,
    ) + metrics::sum(
        &body,
        r#"switchboard_errors_total{dialect="socketio",reason="session_stuck"}"#,
    );
    assert_eq!(stuck, 2, "{body}");
    assert_eq!(
        metrics::sum(&body, r#"switchboard_errors_total{dialect="any""#),
        0,
        "{body}"
    );
    assert_eq!(
        metrics::sum(
            &body,
            r#"switchboard_sessions_closed_total{dialect="raw",reason="write timeout"}"#
        ) + metrics::sum(
            &body,
            r#"switchboard_sessions_closed_total{dialect="raw",reason="stuck"}"#
        ),
        1,
        "{body}"
    );
    gw.stop().await;
}
