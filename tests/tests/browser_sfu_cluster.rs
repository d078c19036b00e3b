//! Conference media across a cluster with the real Ant Media SDK in headless Chromium: a real
//! `redis-server` and two real `switchboard` nodes, three conference pages on node 1, node 2
//! and node 1 (the SDK's multitrack pattern, and the joinRoom flow of Ant's conference
//! tutorial), each seeing the two others' video with frames advancing, all media on the
//! room's home node (`tests/browser/sfu_cluster.mjs`; see its header for the steps and how to
//! run it by hand). Needs `cargo build --workspace` and `npm ci` first, like the browser
//! matrix; on failure the logs are in `tests/artifacts/<case>/`.

use std::time::Duration;

use switchboard_tests::assert_browser_script;

/// Start-up included; the script's own hard deadline is 150 s.
const DEADLINE: Duration = Duration::from_secs(165);

#[tokio::test]
async fn browser_sfu_cluster_three_pages_on_two_nodes() {
    assert_browser_script(
        "tests/browser/sfu_cluster.mjs",
        "sfu_cluster_three_pages",
        DEADLINE,
    )
    .await;
}

#[tokio::test]
async fn browser_sfu_cluster_join_room_flow_on_two_nodes() {
    assert_browser_script(
        "tests/browser/sfu_cluster.mjs",
        "sfu_cluster_join_room_flow",
        DEADLINE,
    )
    .await;
}
