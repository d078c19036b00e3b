//! The standard Prometheus process metrics (the names every client library's process collector
//! exports and dashboards expect) and `switchboard_build_info`, read from procfs at scrape time.
//! procfs does the parsing; we only render, as the rest of `/metrics` is rendered.

use std::fmt::Write as _;

use procfs::process::{LimitValue, Process};

/// Appends the process metrics and the build info to `out`. A value procfs cannot read (not
/// Linux, `/proc` not mounted) is left out rather than reported as 0.
pub fn render(out: &mut String) {
    build_info(out);
    let Ok(me) = Process::myself() else { return };
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        let cpu = (stat.utime + stat.stime) as f64 / ticks;
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let rss = stat.rss * procfs::page_size();
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        family(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        let _ = writeln!(out, "process_virtual_memory_bytes {}", stat.vsize);
        if let Ok(boot) = procfs::boot_time_secs() {
            let start = boot as f64 + stat.starttime as f64 / ticks;
            family(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
            );
            let _ = writeln!(out, "process_start_time_seconds {start}");
        }
    }
    if let Ok(open) = me.fd_count() {
        family(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        let _ = writeln!(out, "process_open_fds {open}");
    }
    if let Ok(limits) = me.limits() {
        // Unlimited is rendered as +Inf, as the Go and Python collectors do.
        let max = match limits.max_open_files.soft_limit {
            LimitValue::Value(n) => n.to_string(),
            LimitValue::Unlimited => "+Inf".to_owned(),
        };
        family(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        let _ = writeln!(out, "process_max_fds {max}");
    }
}

/// `switchboard_build_info{version,profile,commit} 1`: join it on `version` to label other
/// series. `commit` is the git commit stamped by `build.rs` (empty outside a git checkout).
fn build_info(out: &mut String) {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    family(
        out,
        "switchboard_build_info",
        "gauge",
        "The running build: version, cargo profile and git commit; always 1.",
    );
    let _ = writeln!(
        out,
        "switchboard_build_info{{version=\"{}\",profile=\"{profile}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        BUILD_COMMIT
    );
}

/// Set by `build.rs`: hex digits only, or empty, so it needs no escaping in a label.
const BUILD_COMMIT: &str = env!("SWITCHBOARD_GIT_COMMIT");

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    /// Every standard name is there with a plausible value for this very process.
    #[test]
    fn renders_the_standard_process_metrics() {
        let mut out = String::new();
        super::render(&mut out);
        let value = |name: &str| -> f64 {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in\n{out}"));
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("a number")
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
        let info = format!(
            "switchboard_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(out.contains(&info), "{out}");
    }

    /// The `commit` label is this checkout's HEAD (what `git rev-parse HEAD` says now; cargo
    /// rebuilds when HEAD moves), or empty where git cannot tell.
    #[test]
    fn build_info_names_the_git_commit() {
        let mut out = String::new();
        super::build_info(&mut out);
        let head = std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let expected = match std::env::var("SWITCHBOARD_GIT_COMMIT") {
            Ok(forced) => forced,
            Err(_) => head.unwrap_or_default(),
        };
        assert!(
            out.contains(&format!("commit=\"{expected}\"}} 1")),
            "expected commit {expected:?} in\n{out}"
        );
    }
}
