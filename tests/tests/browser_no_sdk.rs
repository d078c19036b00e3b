//! The demo pages without `node_modules/` (a checkout where `npm ci` was never run):
//! `tests/browser/no_sdk.mjs` runs the real `switchboard` binary with `[web] node_modules_dir`
//! pointing at an empty directory, opens the Ant, conference, raw, socket.io 2.x and PeerJS pages in
//! headless Chromium and checks that each shows a visible message naming the missing SDK and
//! `npm ci`, and that the gateway's log says so exactly once.
//!
//! Needs `cargo build --workspace` (the binary) and `npm ci` (playwright-core) first;
//! `scripts/test.sh` does both.

use std::time::Duration;

use switchboard_tests::{repo_root, switchboard_bin};

#[tokio::test]
async fn browser_pages_say_what_to_run_without_node_modules() {
    let root = repo_root();
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "node_modules/ is missing: run `npm ci` (scripts/test.sh does)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("tests/browser/no_sdk.mjs")
        .current_dir(&root)
        .env("SWITCHBOARD_BIN", switchboard_bin())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("no_sdk.mjs finishes within 90 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "no_sdk.mjs failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("{}", stdout.trim_end());
}
