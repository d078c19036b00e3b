//! Renders a benchmark run (one JSON report per line, as the scenarios print them) into the
//! markdown tables of `bench/results/latest.md`, with the ratios the issue asks for:
//! Switchboard ÷ its baseline (throughput, p99, RSS per session): the node relay, and for the
//! PeerJS dialect the `peer` server, PeerJS's own; and Switchboard ÷ limit.
//!
//! A run may repeat a scenario in interleaved rounds (the machine is shared, so its load
//! drifts); each row then shows the median of the rounds, and ratios are taken between medians.

use std::fmt::Write as _;

use serde_json::Value;

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn lat(v: &Value, key: &str) -> Option<f64> {
    v.get("latency").and_then(|l| num(l, key))
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// The runs of one scenario on one server in one dialect.
struct Group<'a> {
    server: &'a str,
    dialect: &'a str,
    runs: Vec<&'a Value>,
}

impl Group<'_> {
    fn median(&self, f: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
        median(self.runs.iter().filter_map(|r| f(r)).collect())
    }

    fn faults(&self) -> u64 {
        self.runs.iter().map(|r| faults(r)).sum()
    }

    fn rounds(&self, f: impl Fn(&Value) -> Option<f64>) -> String {
        self.runs
            .iter()
            .map(|r| fmt(f(r), 0))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

fn groups<'a>(runs: &'a [Value], scenario: &str) -> Vec<Group<'a>> {
    let mut out: Vec<Group<'a>> = Vec::new();
    for r in runs.iter().filter(|r| text(r, "scenario") == scenario) {
        let (server, dialect) = (text(r, "server"), text(r, "dialect"));
        match out
            .iter_mut()
            .find(|g| g.server == server && g.dialect == dialect)
        {
            Some(g) => g.runs.push(r),
            None => out.push(Group {
                server,
                dialect,
                runs: vec![r],
            }),
        }
    }
    out
}

fn find<'a, 'b>(groups: &'b [Group<'a>], server: &str, dialect: &str) -> Option<&'b Group<'a>> {
    groups
        .iter()
        .find(|g| g.server == server && g.dialect == dialect)
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
        .filter(Value::is_object)
        .collect();
    let mut out = String::new();
    throughput(&mut out, &groups(&runs, "throughput"));
    latency(&mut out, &groups(&runs, "latency"));
    burst(&mut out, &groups(&runs, "burst"));
    storm(&mut out, &groups(&runs, "storm"));
    idle(&mut out, &groups(&runs, "idle"));
    out
}

/// What a Switchboard row of `dialect` is compared with: the `peer` server for PeerJS, the node
/// relay (the SimpleP2P tutorial's app.js) for the others.
fn baseline<'a, 'b>(gs: &'b [Group<'a>], dialect: &str) -> Option<&'b Group<'a>> {
    if dialect == "peerjs" {
        find(gs, "peer", "peerjs")
    } else {
        find(gs, "node", "socketio")
    }
}

fn throughput(w: &mut String, gs: &[Group<'_>]) {
    let tp = |r: &Value| num(r, "msgs_per_sec");
    let cpu = |r: &Value| num(r, "server_cpu_us_per_msg");
    let limit = find(gs, "limit", "raw");
    let _ = writeln!(
        w,
        "### Relay throughput (delivered messages per second, median of the rounds)\n"
    );
    let _ = writeln!(
        w,
        "| server | dialect | msgs/s | rounds | MB/s | server CPU µs/msg | faults | ÷ baseline | ÷ limit | CPU/msg: baseline ÷ this |"
    );
    let _ = writeln!(w, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for g in gs {
        let m = g.median(tp);
        let is_sb = g.server == "switchboard";
        let node = baseline(gs, g.dialect);
        let vs_node = if is_sb {
            ratio(m, node.and_then(|n| n.median(tp)))
        } else {
            "–".into()
        };
        let vs_limit = if g.server == "limit" {
            "–".into()
        } else {
            ratio(m, limit.and_then(|l| l.median(tp)))
        };
        let cpu_adv = if is_sb {
            ratio(node.and_then(|n| n.median(cpu)), g.median(cpu))
        } else {
            "–".into()
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {vs_node} | {vs_limit} | {cpu_adv} |",
            g.server,
            g.dialect,
            fmt(m, 0),
            g.rounds(tp),
            fmt(g.median(|r| num(r, "mbytes_per_sec")), 1),
            fmt(g.median(cpu), 2),
            g.faults(),
        );
    }
    if let Some(r) = gs.first().and_then(|g| g.runs.first()) {
        let _ = writeln!(
            w,
            "\n{} pairs, window {} messages per direction, {} s measured per round.",
            fmt(num(r, "pairs"), 0),
            fmt(num(r, "window"), 0),
            fmt(num(r, "secs"), 0)
        );
    }
}

/// The burst table: how much of what was sent arrived (delivered ÷ sent, summed over rounds).
fn burst(w: &mut String, gs: &[Group<'_>]) {
    if gs.is_empty() {
        return;
    }
    let sum = |g: &Group<'_>, key: &str| -> u64 {
        g.runs
            .iter()
            .filter_map(|r| r.get(key).and_then(Value::as_u64))
            .sum()
    };
    let _ = writeln!(
        w,
        "\n### Burst (senders as fast as they can; delivered ÷ sent over every round)\n"
    );
    let _ = writeln!(
        w,
        "| server | dialect | pairs × messages | sent | delivered | delivered ÷ sent | lost | out of order | disconnected | msgs/s (median) | server CPU µs/msg |"
    );
    let _ = writeln!(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for g in gs {
        let (sent, delivered) = (sum(g, "sent"), sum(g, "delivered"));
        let first = g.runs.first().copied();
        let per_pair = first.and_then(|r| {
            let pairs = num(r, "pairs")?;
            Some(num(r, "sent")? / pairs.max(1.0))
        });
        let _ = writeln!(
            w,
            "| {} | {} | {} × {} | {sent} | {delivered} | {} | {} | {} | {} | {} | {} |",
            g.server,
            g.dialect,
            fmt(first.and_then(|r| num(r, "pairs")), 0),
            fmt(per_pair, 0),
            ratio(Some(delivered as f64), Some(sent as f64)),
            sum(g, "lost"),
            sum(g, "out_of_order"),
            sum(g, "disconnected"),
            fmt(g.median(|r| num(r, "msgs_per_sec")), 0),
            fmt(g.median(|r| num(r, "server_cpu_us_per_msg")), 1),
        );
    }
}

fn latency(w: &mut String, gs: &[Group<'_>]) {
    let p99 = |r: &Value| lat(r, "p99_us");
    let limit = find(gs, "limit", "raw").and_then(|g| g.median(p99));
    let _ = writeln!(
        w,
        "\n### One-way relay latency at a fixed offered rate (µs, median of the rounds)\n"
    );
    let _ = writeln!(
        w,
        "| server | dialect | offered msg/s | delivered msg/s | p50 | p99 | p99 rounds | p99.9 | max | faults | p99 ÷ baseline | added p99 (− limit) |"
    );
    let _ = writeln!(
        w,
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
    );
    for g in gs {
        let m = g.median(p99);
        let node = baseline(gs, g.dialect).and_then(|b| b.median(p99));
        let vs_node = if g.server == "switchboard" {
            ratio(m, node)
        } else {
            "–".into()
        };
        let added = match (g.server, m, limit) {
            ("limit", _, _) => "–".into(),
            (_, Some(a), Some(b)) => format!("{:+.0}", a - b),
            _ => "–".into(),
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {vs_node} | {added} |",
            g.server,
            g.dialect,
            fmt(g.median(|r| num(r, "offered_rate")), 0),
            fmt(g.median(|r| num(r, "msgs_per_sec")), 0),
            fmt(g.median(|r| lat(r, "p50_us")), 0),
            fmt(m, 0),
            g.rounds(p99),
            fmt(g.median(|r| lat(r, "p999_us")), 0),
            fmt(g.median(|r| lat(r, "max_us")), 0),
            g.faults(),
        );
    }
}

fn storm(w: &mut String, gs: &[Group<'_>]) {
    let _ = writeln!(w, "\n### Call-setup storm\n");
    let _ = writeln!(
        w,
        "| server | dialect | pairs | completed | seconds | pairs/s | setup p50 ms | setup p99 ms | signals delivered | lost | misrouted | duplicated | other faults |"
    );
    let _ = writeln!(
        w,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for g in gs {
        for r in &g.runs {
            let get = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
            let other = get("out_of_order") + get("unexpected") + get("malformed") + get("errors");
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {other} |",
                g.server,
                g.dialect,
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
    }
}

fn idle(w: &mut String, gs: &[Group<'_>]) {
    let kib = |r: &Value| num(r, "kib_per_session");
    let node = find(gs, "node", "socketio").and_then(|g| g.median(kib));
    let _ = writeln!(w, "\n### Idle sessions: server RSS per session\n");
    let _ = writeln!(
        w,
        "| server | dialect | sessions open | failed | RSS before MiB | RSS after MiB | KiB/session | ÷ node relay |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|");
    for g in gs {
        for r in &g.runs {
            let vs_node = if g.server == "switchboard" {
                ratio(kib(r), node)
            } else {
                "–".into()
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {vs_node} |",
                g.server,
                g.dialect,
                fmt(num(r, "opened"), 0),
                fmt(num(r, "failed"), 0),
                fmt(num(r, "rss_before_kib").map(|k| k / 1024.0), 1),
                fmt(num(r, "rss_after_kib").map(|k| k / 1024.0), 1),
                fmt(kib(r), 1),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_taken_between_medians_of_the_same_run() {
        let lines = r#"
{"scenario":"throughput","server":"switchboard","dialect":"socketio","pairs":10,"window":32,"secs":5,"msgs_per_sec":1000.0,"server_cpu_us_per_msg":2.0}
{"scenario":"throughput","server":"switchboard","dialect":"socketio","msgs_per_sec":3000.0,"server_cpu_us_per_msg":2.0}
{"scenario":"throughput","server":"switchboard","dialect":"socketio","msgs_per_sec":1200.0,"server_cpu_us_per_msg":2.0}
{"scenario":"throughput","server":"node","dialect":"socketio","msgs_per_sec":100.0,"server_cpu_us_per_msg":20.0}
{"scenario":"throughput","server":"limit","dialect":"raw","msgs_per_sec":2400.0}
not json
"#;
        let md = render(lines);
        assert!(
            md.contains("| switchboard | socketio | 1200 | 1000 / 3000 / 1200 | – | 2.00 | 0 | 12.00× | 0.50× | 10.00× |"),
            "{md}"
        );
    }

    #[test]
    fn peerjs_rows_are_compared_with_the_peer_server() {
        let lines = r#"
{"scenario":"throughput","server":"switchboard","dialect":"peerjs","msgs_per_sec":3000.0,"server_cpu_us_per_msg":3.0}
{"scenario":"throughput","server":"peer","dialect":"peerjs","msgs_per_sec":1000.0,"server_cpu_us_per_msg":12.0}
{"scenario":"throughput","server":"node","dialect":"socketio","msgs_per_sec":100.0,"server_cpu_us_per_msg":20.0}
{"scenario":"latency","server":"switchboard","dialect":"peerjs","offered_rate":1000.0,"msgs_per_sec":1000.0,"latency":{"p50_us":100.0,"p99_us":500.0}}
{"scenario":"latency","server":"peer","dialect":"peerjs","offered_rate":1000.0,"msgs_per_sec":1000.0,"latency":{"p50_us":100.0,"p99_us":2000.0}}
"#;
        let md = render(lines);
        assert!(
            md.contains(
                "| switchboard | peerjs | 3000 | 3000 | – | 3.00 | 0 | 3.00× | – | 4.00× |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 0.25× |"),
            "p99 against the peer server: {md}"
        );
    }
}
