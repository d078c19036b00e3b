//! Renders a benchmark run (one JSON report per line, as the scenarios print them) into the
//! markdown tables of `bench/results/latest.md`, with the ratios the issue asks for:
//! Switchboard ÷ node relay (throughput, p99, RSS per session) and Switchboard ÷ limit.

use std::fmt::Write as _;

use serde_json::Value;

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn find<'a>(runs: &'a [Value], scenario: &str, server: &str, dialect: &str) -> Option<&'a Value> {
    runs.iter().rev().find(|r| {
        text(r, "scenario") == scenario
            && text(r, "server") == server
            && text(r, "dialect") == dialect
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

fn p(v: &Value, key: &str) -> Option<f64> {
    v.get("latency").and_then(|l| num(l, key))
}

fn faults(v: &Value) -> u64 {
    [
        "lost",
        "misrouted",
        "duplicated",
        "out_of_order",
        "malformed",
        "errors",
        "unexpected",
    ]
    .iter()
    .filter_map(|k| v.get(*k).and_then(Value::as_u64))
    .sum()
}

/// The markdown report for `lines` (JSON reports, one per line; other lines are ignored).
pub fn render(lines: &str) -> String {
    let runs: Vec<Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.is_object())
        .collect();
    let mut out = String::new();
    let w = &mut out;

    let limit_tp = find(&runs, "throughput", "limit", "raw").and_then(|r| num(r, "msgs_per_sec"));
    let node_tp =
        find(&runs, "throughput", "node", "socketio").and_then(|r| num(r, "msgs_per_sec"));
    let _ = writeln!(w, "### Relay throughput (delivered messages per second)\n");
    let _ = writeln!(
        w,
        "| server | dialect | pairs | window | msgs/s | MB/s | faults | ÷ node relay | ÷ limit |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs.iter().filter(|r| text(r, "scenario") == "throughput") {
        let tp = num(r, "msgs_per_sec");
        let server = text(r, "server");
        let vs_node = if server == "switchboard" {
            ratio(tp, node_tp)
        } else {
            "–".into()
        };
        let vs_limit = if server == "limit" {
            "–".into()
        } else {
            ratio(tp, limit_tp)
        };
        let _ = writeln!(
            w,
            "| {server} | {} | {} | {} | {} | {} | {} | {vs_node} | {vs_limit} |",
            text(r, "dialect"),
            fmt(num(r, "pairs"), 0),
            fmt(num(r, "window"), 0),
            fmt(tp, 0),
            fmt(num(r, "mbytes_per_sec"), 1),
            faults(r),
        );
    }

    let _ = writeln!(
        w,
        "\n### One-way relay latency at a fixed offered rate (µs)\n"
    );
    let _ = writeln!(
        w,
        "| server | dialect | offered msg/s | delivered msg/s | p50 | p99 | p99.9 | max | faults | p99 ÷ node relay | p99 − limit p99 |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let node_p99 = find(&runs, "latency", "node", "socketio").and_then(|r| p(r, "p99_us"));
    let limit_p99 = find(&runs, "latency", "limit", "raw").and_then(|r| p(r, "p99_us"));
    for r in runs.iter().filter(|r| text(r, "scenario") == "latency") {
        let server = text(r, "server");
        let p99 = p(r, "p99_us");
        let vs_node = if server == "switchboard" {
            ratio(p99, node_p99)
        } else {
            "–".into()
        };
        let added = match (server, p99, limit_p99) {
            ("limit", _, _) => "–".into(),
            (_, Some(a), Some(b)) => format!("{:+.0}", a - b),
            _ => "–".into(),
        };
        let _ = writeln!(
            w,
            "| {server} | {} | {} | {} | {} | {} | {} | {} | {} | {vs_node} | {added} |",
            text(r, "dialect"),
            fmt(num(r, "offered_rate"), 0),
            fmt(num(r, "msgs_per_sec"), 0),
            fmt(p(r, "p50_us"), 0),
            fmt(p99, 0),
            fmt(p(r, "p999_us"), 0),
            fmt(p(r, "max_us"), 0),
            faults(r),
        );
    }

    let _ = writeln!(w, "\n### Call-setup storm\n");
    let _ = writeln!(
        w,
        "| server | dialect | pairs | completed | seconds | pairs/s | setup p50 ms | setup p99 ms | signals delivered | lost | misrouted | duplicated | other faults |"
    );
    let _ = writeln!(
        w,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs.iter().filter(|r| text(r, "scenario") == "storm") {
        let get = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let other = get("out_of_order") + get("unexpected") + get("malformed") + get("errors");
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {other} |",
            text(r, "server"),
            text(r, "dialect"),
            get("pairs"),
            get("completed"),
            fmt(num(r, "secs"), 2),
            fmt(num(r, "pairs_per_sec"), 0),
            fmt(num(r, "setup_p50_ms"), 1),
            fmt(num(r, "setup_p99_ms"), 1),
            get("delivered"),
            get("lost"),
            get("misrouted"),
            get("duplicated"),
        );
    }

    let _ = writeln!(w, "\n### Idle sessions: server RSS per session\n");
    let _ = writeln!(
        w,
        "| server | dialect | sessions open | failed | RSS before MiB | RSS after MiB | KiB/session | ÷ node relay |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|");
    let node_idle = find(&runs, "idle", "node", "socketio").and_then(|r| num(r, "kib_per_session"));
    for r in runs.iter().filter(|r| text(r, "scenario") == "idle") {
        let server = text(r, "server");
        let kib = num(r, "kib_per_session");
        let vs_node = if server == "switchboard" && text(r, "dialect") == "socketio" {
            ratio(kib, node_idle)
        } else {
            "–".into()
        };
        let _ = writeln!(
            w,
            "| {server} | {} | {} | {} | {} | {} | {} | {vs_node} |",
            text(r, "dialect"),
            fmt(num(r, "opened"), 0),
            fmt(num(r, "failed"), 0),
            fmt(num(r, "rss_before_kib").map(|k| k / 1024.0), 1),
            fmt(num(r, "rss_after_kib").map(|k| k / 1024.0), 1),
            fmt(kib, 1),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_use_the_baselines_of_the_same_run() {
        let lines = r#"
{"scenario":"throughput","server":"switchboard","dialect":"socketio","pairs":10,"window":32,"msgs_per_sec":1000.0}
{"scenario":"throughput","server":"node","dialect":"socketio","pairs":10,"window":32,"msgs_per_sec":100.0}
{"scenario":"throughput","server":"limit","dialect":"raw","pairs":10,"window":32,"msgs_per_sec":2000.0}
not json
"#;
        let md = render(lines);
        assert!(
            md.contains("| switchboard | socketio | 10 | 32 | 1000 | – | 0 | 10.00× | 0.50× |"),
            "{md}"
        );
    }
}
