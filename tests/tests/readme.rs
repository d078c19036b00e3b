//! The README's set-up commands, run the way a new user runs them: the first fenced command of
//! "Set-up on a fresh machine" must start the gateway from the repository root on its embedded
//! config, answering `/healthz` and serving a demo page. (The test uses the debug profile for
//! speed: `--release` is dropped from the command, nothing else changes.)
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use switchboard_tests::{netns_available, repo_root};

/// The fenced `sh` blocks of the README's "Set-up on a fresh machine" section, in order.
fn setup_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Set-up on a fresh machine"))
        .expect("README has a 'Set-up on a fresh machine' section");
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

/// Drops what cargo and nextest put in a test's environment and a user's shell does not have:
/// build scripts track some of it (ring's reruns on `CARGO_MANIFEST_DIR`), so `cargo run` under
/// the test would otherwise rebuild half the tree, unlike the user's.
fn as_a_user_shell(cmd: &mut tokio::process::Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let build_env = (name.starts_with("CARGO") && name != "CARGO_HOME")
            || name.starts_with("NEXTEST")
            || name.starts_with("RUSTUP_TOOLCHAIN")
            || matches!(
                name.as_ref(),
                "RUST_RECURSION_COUNT" | "LD_LIBRARY_PATH" | "RUST_LOG" | "OUT_DIR"
            );
        if build_env {
            cmd.env_remove(name.as_ref());
        }
    }
}

#[test]
fn readme_gives_exactly_two_setup_commands() {
    let commands = setup_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    for command in &commands {
        assert_eq!(
            command.lines().count(),
            1,
            "one command per block: {command}"
        );
    }
    assert!(commands[0].starts_with("cargo run"), "{commands:?}");
    // The test command is the one .ci/run ends with.
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(
        ci.lines()
            .any(|l| l.trim() == format!("exec {}", commands[1])),
        "`.ci/run` must run the README's test command `{}`",
        commands[1]
    );
}

/// Runs the README's run command (debug profile) inside a fresh network namespace when the
/// test may create one (the default config binds the fixed ports 5080 and 7000), and checks
/// `/healthz` and the Ant demo page with curl from inside the same namespace.
#[tokio::test]
async fn readme_run_command_serves_health_and_a_demo_page() {
    let run = setup_commands()[0].replace(" --release", "");
    let probe = r#"
        for i in $(seq 1 600); do
            curl -sf http://127.0.0.1:5080/healthz > /tmp/sb-readme-health.$$ 2>/dev/null && break
            kill -0 $gw 2>/dev/null || { echo "gateway exited"; exit 3; }
            sleep 0.5
        done
        health=$(curl -sf http://127.0.0.1:5080/healthz) || { echo "no /healthz"; kill $gw; exit 4; }
        page=$(curl -sf http://127.0.0.1:5080/ant.html) || { echo "no /ant.html"; kill $gw; exit 5; }
        kill -TERM $gw; wait $gw
        printf 'HEALTH<%s>\n' "$health"
        case "$page" in *"<!doctype html"*|*"<!DOCTYPE html"*) echo PAGE_OK;; esac
    "#;
    let script = format!("{run} & gw=$!\n{probe}");
    let mut cmd = if netns_available() {
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["-n", "sh", "-c", &format!("ip link set lo up && {script}")]);
        cmd
    } else {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", &script]);
        cmd
    };
    as_a_user_shell(&mut cmd);
    // Its own target directory: the default member alone has other features than the workspace
    // build, so in target/ `cargo run` would relink the target/debug/switchboard that other tests
    // are running at the same moment. (scripts/test.sh builds it there first.)
    cmd.env("CARGO_TARGET_DIR", repo_root().join("target/readme"));
    cmd.current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let output =
        match tokio::time::timeout(Duration::from_secs(600), child.wait_with_output()).await {
            Ok(output) => output.unwrap(),
            Err(_) => {
                if let Some(pid) = pid {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status();
                }
                panic!("`{run}` did not serve within 600 s");
            }
        };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        stdout.contains("HEALTH<ok") && stdout.contains("PAGE_OK"),
        "`{run}` from the repository root:\nstdout: {stdout}\nstderr (last lines):\n{tail}"
    );
}
