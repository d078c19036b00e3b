//! Conference-room signaling with the real Ant Media SDK in headless Chromium, through the real
//! `switchboard` binary on its default config: `joinRoom` → `joinedTheRoom`, `getRoomInfo` →
//! `roomInformation`, `leaveFromRoom` → `leavedFromRoom` (`tests/browser/conference.mjs`; see its
//! header for the steps and how to run it by hand). Needs `cargo build --workspace` and `npm ci`
//! first, like the browser matrix; on failure the logs are in `tests/artifacts/<case>/`.

use std::time::Duration;

use switchboard_tests::assert_browser_script;

/// Start-up included; the script's own hard deadline is 70 s.
const DEADLINE: Duration = Duration::from_secs(80);

#[tokio::test]
async fn browser_conference_room_signaling() {
    assert_browser_script(
        "tests/browser/conference.mjs",
        "conference_room_signaling",
        DEADLINE,
    )
    .await;
}
