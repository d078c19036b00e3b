//! Stamps the git commit of the build into the binary, for `switchboard_build_info{commit}`.
//!
//! `SWITCHBOARD_GIT_COMMIT`, when set at build time, is used as is (a build from a source
//! tarball that knows its commit). Otherwise the commit is `git rev-parse HEAD` of the checkout
//! this crate is tracked in, and empty outside one (a crates.io tarball, no `git` installed): the
//! label is informative, so its absence never fails a build.
// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

const OVERRIDE: &str = "SWITCHBOARD_GIT_COMMIT";

fn main() {
    println!("cargo:rerun-if-env-changed={OVERRIDE}");
    let commit = match std::env::var(OVERRIDE) {
        Ok(commit) if is_commit(&commit) || commit.is_empty() => commit,
        Ok(commit) => panic!("{OVERRIDE}={commit:?} is not a git commit (hex digits)"),
        Err(_) => from_git().unwrap_or_default(),
    };
    println!("cargo:rustc-env={OVERRIDE}={commit}");
}

/// The HEAD commit, if this crate's manifest is tracked by the enclosing git checkout (so an
/// unrelated repository around an unpacked crate is not taken for ours). Also asks cargo to run
/// this again when HEAD moves.
fn from_git() -> Option<String> {
    git(&["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let git_dir = PathBuf::from(git(&["rev-parse", "--git-dir"])?);
    let common_dir = PathBuf::from(git(&["rev-parse", "--git-common-dir"])?);
    watch(&git_dir.join("HEAD"));
    // On a branch, a commit moves the branch's ref (loose, or in packed-refs after a gc).
    if let Some(branch_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&common_dir.join(branch_ref));
        watch(&common_dir.join("packed-refs"));
    }
    let commit = git(&["rev-parse", "HEAD"])?;
    is_commit(&commit).then_some(commit)
}

/// A (possibly abbreviated) commit hash: it goes into a Prometheus label unescaped.
fn is_commit(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `git args` in this crate's directory: its trimmed stdout on success.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned())
}

/// Reruns the build script when `path` changes; a path that does not exist is skipped, since
/// cargo would otherwise rerun it (and rebuild the gateway) on every build.
fn watch(path: &Path) {
    let path = if path.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    } else {
        path.to_path_buf()
    };
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
