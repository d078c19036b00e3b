//! One clock for the whole process: send and receive times are nanoseconds since the first call,
//! so a one-way latency is a subtraction (sender and receiver share the process and its clock).

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time (user + system) process `pid` has used, in seconds, from `/proc/PID/stat`
/// (`None` if it cannot be read). Resolution: one clock tick (10 ms).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// [`cpu_secs`] of each of `pids` in order (a cluster: both nodes and Redis); `None` when there
/// are none or one cannot be read, so a sum never leaves a process out.
pub fn cpu_secs_each(pids: &[u32]) -> Option<Vec<f64>> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_secs(pid)).collect()
}
