//! Simulcast layers chosen per player, and the server's data-channel events, through the
//! embedded SFU with the real Ant Media SDK in headless Chromium (the SDK unchanged), through
//! the real `switchboard` binary on its default config: a publisher sends its camera as two RID
//! layers; two players decode it at 480 lines (the best flowing layer); one pins 240 lines with
//! `forceStreamQuality` and decodes that while the other stays at 480, then goes back to
//! automatic; a height no layer has and a stream not played are refused through the SDK's error
//! callback; the publisher's own `toggleVideo`/`toggleAudio` reach both players as Ant's
//! `CAM_TURNED_OFF`/`MIC_MUTED`/`CAM_TURNED_ON`/`MIC_UNMUTED` data-channel events
//! (`tests/browser/simulcast.mjs`; see its header for the steps and how to run it by hand).
//! And the automatic choice by each player's link: one player's downlink shaped with `tc`
//! inside the test's network namespace decodes the low layer while the other stays on the
//! high one, and comes back up once the shaping is gone.
//! Needs `cargo build --workspace` and `npm ci` first; on failure the logs are in
//! `tests/artifacts/<case>/`.

use std::time::Duration;

use switchboard_tests::browser_script;

/// Start-up included; the script's own hard deadline is 150 s.
const DEADLINE: Duration = Duration::from_secs(165);

#[tokio::test]
async fn browser_sfu_simulcast_layers_per_player() {
    simulcast_case("sfu_simulcast_layers_per_player").await;
}

/// Needs the network namespace `browser_script` runs the script in when root (`tc` shapes the
/// namespace's `lo`, never the host's): without one the script fails saying so.
#[tokio::test]
async fn browser_sfu_simulcast_layer_by_link() {
    simulcast_case("sfu_simulcast_layer_by_link").await;
}

/// The same with `bandwidth_estimation = false`: the layer follows the loss in the shaped
/// player's receiver reports only.
#[tokio::test]
async fn browser_sfu_simulcast_layer_by_loss() {
    simulcast_case("sfu_simulcast_layer_by_loss").await;
}

/// Runs one case of `tests/browser/simulcast.mjs` and prints its log when it passes.
async fn simulcast_case(name: &str) {
    let run = browser_script("tests/browser/simulcast.mjs", name, DEADLINE).await;
    if run.success {
        eprintln!("{}", run.stdout.trim_end());
    }
    run.assert_success();
}
