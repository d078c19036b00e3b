//! The Debian package (cargo-deb, `packaging/`), as an operator installs it: built from the
//! already-built gateway binary, installed with `dpkg -i`, its systemd unit checked with
//! `systemd-analyze verify`, the binary started the way the unit's `ExecStartPre` and
//! `ExecStart` would (as the `switchboard` user, no new privileges, no capabilities), answering
//! `/healthz` on the public port and `/metrics` on the loopback one, surviving the unit's
//! `ExecReload` (SIGHUP) and draining on SIGTERM; then purged. Needs root (dpkg); as another
//! user it says so and does nothing. There is no running systemd here, hence the manual start.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use switchboard_tests::{netns_available, repo_root, switchboard_bin, temp_dir};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        text(&output)
    );
    text(&output)
}

/// Purges the package when the test ends, passed or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "switchboard"]);
    }
}

/// `cargo deb` on the binary the other tests use (no second build; the dev profile, which
/// cargo-deb warns about but packages as asked).
fn build_package() -> PathBuf {
    let bin = switchboard_bin();
    assert!(
        bin.starts_with(repo_root().join("target/debug"))
            || std::env::var_os("CARGO_TARGET_DIR").is_some(),
        "cargo deb packages target/debug/switchboard; this run's binary is {}",
        bin.display()
    );
    let out = temp_dir("deb");
    let output = Command::new("cargo")
        .args([
            "deb",
            "-p",
            "switchboard",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "-o",
        ])
        .arg(&out)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo deb failed (install it with `cargo install cargo-deb --version 3.8.0 --locked`; \
         scripts/test.sh does):\n{}",
        text(&output)
    );
    std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb in the output directory")
}

/// What the unit does, by hand: check the config, start as the unit's user with no privileges
/// in the state directory, probe both listeners, reload, stop. Prints `HEALTH<..>`,
/// `METRICS_OK`, `RELOADED_OK`, `STOPPED<status>`.
const START_AS_UNIT: &str = r#"
# setpriv execs the program, so $! below is the gateway's own pid (as systemd's $MAINPID).
as_unit="setpriv --reuid=switchboard --regid=switchboard --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all"
log=/tmp/sb-deb-gateway.log.$$
cd /var/lib/switchboard
$as_unit /usr/bin/switchboard check-config /etc/switchboard/switchboard.toml || { echo CHECK_FAILED; exit 2; }
# Its output goes to the log only: nothing of it may hold this script's stdout open.
$as_unit /usr/bin/switchboard --config /etc/switchboard/switchboard.toml >"$log" 2>&1 </dev/null &
gw=$!
trap 'kill -KILL $gw 2>/dev/null; rm -f "$log"' EXIT
for i in $(seq 1 100); do
    curl -sf http://127.0.0.1:5080/healthz >/dev/null 2>&1 && break
    kill -0 $gw 2>/dev/null || { echo "GATEWAY_EXITED"; cat "$log"; exit 3; }
    sleep 0.1
done
printf 'HEALTH<%s>\n' "$(curl -sf http://127.0.0.1:5080/healthz)"
curl -sf http://127.0.0.1:5081/metrics | grep -q '^switchboard_build_info' && echo METRICS_OK
curl -s -o /dev/null -w 'PUBLIC_METRICS<%{http_code}>\n' http://127.0.0.1:5080/metrics
printf 'USER<%s>\n' "$(ps -o user= -p $gw)"
kill -HUP $gw
for i in $(seq 1 50); do
    grep -q 'Configuration reloaded' "$log" && break
    sleep 0.1
done
curl -sf http://127.0.0.1:5080/healthz >/dev/null && grep -q 'Configuration reloaded' "$log" && echo RELOADED_OK
kill -TERM $gw
wait $gw
printf 'STOPPED<%s>\n' "$?"
grep -q 'Stopped.' "$log" && echo DRAINED_OK || cat "$log"
"#;

fn start_as_unit() -> String {
    // `timeout` bounds it: a gateway that never stops fails the test instead of hanging it.
    let mut cmd = Command::new("timeout");
    if netns_available() {
        let script = format!("ip link set lo up && {START_AS_UNIT}");
        cmd.args(["60", "unshare", "-n", "sh", "-c", &script]);
    } else {
        cmd.args(["60", "sh", "-c", START_AS_UNIT]);
    }
    let output = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    text(&output)
}

#[test]
fn debian_package_installs_verifies_serves_and_purges() {
    if run("id", &["-u"]).stdout != b"0\n" {
        eprintln!(
            "SKIPPED: installing a Debian package needs root (dpkg -i); run as root to test it"
        );
        return;
    }
    let deb = build_package();
    let _ = run("dpkg", &["--purge", "switchboard"]);
    let _purge = Purge;
    ok("dpkg", &["-i", deb.to_str().unwrap()]);

    // What dpkg installed, and what postinst made.
    let passwd = ok("getent", &["passwd", "switchboard"]);
    assert!(passwd.contains("/var/lib/switchboard"), "{passwd}");
    assert!(
        passwd.contains("nologin") || passwd.contains("/bin/false"),
        "a system user: {passwd}"
    );
    let config = ok(
        "stat",
        &["-c", "%U:%G %a", "/etc/switchboard/switchboard.toml"],
    );
    assert_eq!(config.trim(), "root:switchboard 640");
    let state = ok("stat", &["-c", "%U:%G %a", "/var/lib/switchboard"]);
    assert_eq!(state.trim(), "switchboard:switchboard 750");
    let conffiles = ok(
        "dpkg-query",
        &["--control-show", "switchboard", "conffiles"],
    );
    assert!(
        conffiles.contains("/etc/switchboard/switchboard.toml"),
        "{conffiles}"
    );

    // The unit: systemd's own checker, and the hardening and reload it must keep.
    let unit = Path::new("/usr/lib/systemd/system/switchboard.service");
    let verify = run("systemd-analyze", &["verify", unit.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "systemd-analyze verify:\n{}",
        text(&verify)
    );
    let unit_text = std::fs::read_to_string(unit).unwrap();
    for line in [
        "User=switchboard",
        "ExecStart=/usr/bin/switchboard --config /etc/switchboard/switchboard.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "StateDirectory=switchboard",
    ] {
        assert!(
            unit_text.lines().any(|l| l == line),
            "the unit lacks `{line}`"
        );
    }

    let out = start_as_unit();
    for expected in [
        "HEALTH<ok",
        "METRICS_OK",
        "PUBLIC_METRICS<404>",
        "RELOADED_OK",
        "USER<switchboard>",
        "STOPPED<0>",
        "DRAINED_OK",
    ] {
        assert!(out.contains(expected), "no {expected} in:\n{out}");
    }

    ok("dpkg", &["--purge", "switchboard"]);
    for gone in [
        "/usr/bin/switchboard",
        "/etc/switchboard",
        "/var/lib/switchboard",
    ] {
        assert!(
            !Path::new(gone).exists(),
            "{gone} is still there after purge"
        );
    }
}
