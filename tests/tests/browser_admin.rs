//! The admin dashboard (`/admin/`) in headless Chromium: `tests/browser/dashboard.mjs` runs the
//! real `switchboard` binary with an admin token, connects peers of all three dialects, signs the
//! page in and checks that it shows the rooms, the peers with their dialects and live message
//! rates, follows a newcomer and kicks a session with its button. On failure the page console,
//! the gateway log and a screenshot are in `tests/artifacts/dashboard/`.
//!
//! Needs `cargo build --workspace` (the binary) and `npm ci` (playwright-core, ws,
//! socket.io-client) first; `scripts/test.sh` does both.

use std::time::Duration;

use switchboard_tests::{repo_root, switchboard_bin};

#[tokio::test]
async fn browser_dashboard() {
    let root = repo_root();
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "node_modules/ is missing: run `npm ci` (scripts/test.sh does)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("tests/browser/dashboard.mjs")
        .current_dir(&root)
        .env("SWITCHBOARD_BIN", switchboard_bin())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("dashboard.mjs finishes within 90 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dashboard.mjs failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("{}", stdout.trim_end());
}
