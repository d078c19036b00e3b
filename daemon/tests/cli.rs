//! The `switchboard` command line, run as a real process.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn switchboard(args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = switchboard_streams(args);
    (code, stdout + &stderr)
}

fn switchboard_streams(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_accepts_the_shipped_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switchboard.toml");
    let (code, text) = switchboard(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok"), "{text}");
}

#[test]
fn check_config_lists_every_problem_and_exits_64() {
    let path = temp_config(
        "bad.toml",
        r#"
[[listener]]
bind = "127.0.0.1:9"
dialects = []
[limits]
max_frame_bytes = 1
[[plugin]]
type = "nope"
"#,
    );
    let (code, text) = switchboard(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 64, "{text}");
    for needle in [
        "3 problem(s)",
        "listener[0].dialects",
        "limits.max_frame_bytes",
        "unknown plugin type `nope`",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn check_config_points_at_the_line_of_an_unknown_key() {
    let path = temp_config(
        "typo.toml",
        "[[listener]]\nbind = \"127.0.0.1:9\"\nbnid = 3\n",
    );
    let (code, text) = switchboard(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 64, "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(text.contains("bnid"), "{text}");
}

#[test]
fn missing_config_file_and_bad_arguments_are_clear() {
    let (code, text) = switchboard(&["--config", "/nonexistent/switchboard.toml"]);
    assert_eq!(code, 66, "{text}");
    assert!(text.contains("/nonexistent/switchboard.toml"), "{text}");
    let (code, text) = switchboard(&["--frobnicate"]);
    assert_eq!(code, 64, "{text}");
    assert!(text.contains("Usage"), "{text}");
}

#[test]
fn print_default_config_help_and_version_go_to_stdout() {
    let (code, stdout, _) = switchboard_streams(&["print-default-config"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        switchboard::config::DEFAULT_CONFIG,
        "redirectable to a file"
    );
    let (code, stdout, _) = switchboard_streams(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("check-config"), "{stdout}");
    let (code, stdout, _) = switchboard_streams(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("switchboard "), "{stdout}");
}
