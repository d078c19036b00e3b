//! Conference media through the embedded SFU with the real Ant Media SDK in headless Chromium,
//! through the real `switchboard` binary on its default config: three people publish and play a
//! room and see each other's video with frames advancing, a fourth joins and everyone
//! renegotiates, one stops and one closes its page and the others lose their tracks; the
//! joinRoom flow of Ant's conference tutorial (join, publish, play each participant's stream,
//! poll room information) with three pages each seeing the two others, each page's
//! data-channel message reaching the two others, and a camera turned off with `toggleVideo`
//! seen stopping by the others and back; no page gets a track event for its own stream; a raw
//! dialect page in a conference with Ant pages; the demo page `examples/web/conference.html` in
//! three tabs (`tests/browser/sfu.mjs`; see its header for the steps and how to run it by hand). Needs
//! `cargo build --workspace` and `npm ci` first, like the browser matrix; on failure the logs are
//! in `tests/artifacts/<case>/`.

use std::time::Duration;

use switchboard_tests::assert_browser_script;

/// Start-up included; the script's own hard deadline is 150 s.
const DEADLINE: Duration = Duration::from_secs(165);

#[tokio::test]
async fn browser_sfu_conference_four_people() {
    assert_browser_script(
        "tests/browser/sfu.mjs",
        "sfu_conference_four_people",
        DEADLINE,
    )
    .await;
}

#[tokio::test]
async fn browser_sfu_join_room_flow() {
    assert_browser_script("tests/browser/sfu.mjs", "sfu_join_room_flow", DEADLINE).await;
}

#[tokio::test]
async fn browser_sfu_mixed_raw_and_ant() {
    assert_browser_script("tests/browser/sfu.mjs", "sfu_mixed_raw_and_ant", DEADLINE).await;
}

#[tokio::test]
async fn browser_sfu_demo_page() {
    assert_browser_script("tests/browser/sfu.mjs", "sfu_demo_page", DEADLINE).await;
}

/// A WHIP publisher (npm `whip-whep`) seen with frames by two Ant SDK conference pages and
/// listed in the room; a WHEP player (npm `whip-whep`) seeing it and an Ant publisher.
#[tokio::test]
async fn browser_sfu_whip_and_whep() {
    assert_browser_script("tests/browser/sfu.mjs", "sfu_whip_and_whep", DEADLINE).await;
}
