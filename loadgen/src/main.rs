//! `switchboard-loadgen`: the load generator's command line. Each scenario prints a one-line
//! JSON report on stdout (and appends it to `--out FILE`) and a readable summary on stderr.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Serialize;
use switchboard_loadgen::{
    Dialect, FlowConfig, IdleConfig, Pace, Server, StormConfig, StormDialects, Target, relay,
    report, scenario,
};

const USAGE: &str = "\
switchboard-loadgen: load generator for Switchboard (loopback targets only)

Usage:
  switchboard-loadgen throughput --dialect D --pairs N --secs S [--window W] [--target PID] [common]
  switchboard-loadgen latency    --dialect D --rate R --secs S [--pairs N] [--target PID] [common]
  switchboard-loadgen burst      --dialect D --pairs N --messages M [--target PID] [common]
  switchboard-loadgen storm      --dialect D|mixed --pairs K [--parallel P] [--timeout-secs T] [common]
  switchboard-loadgen idle       --dialect D --sessions N --target PID [--parallel P] [--settle-secs S] [common]
  switchboard-loadgen abuse      --kind handshakes|connections --target PID [--source IP] [--secs S]
                                [--parallel P] [--max N] [--addr HOST:PORT]
  switchboard-loadgen limit-relay --bind ADDR
  switchboard-loadgen report FILE...

Common options:
  --addr HOST:PORT      server address (default 127.0.0.1:5080)
  --server KIND         switchboard (default), node (socket.io relay) or limit (no-parse relay)
  --sources N           bind client sockets to 127.0.0.1..127.0.0.N in turn (default 1; idle 64)
  --target PID[,PID]    the server's process id(s): their CPU time per message is reported (summed)
                        (throughput, latency); its RSS is measured (idle; required there)
  --threads N           runtime worker threads (default: all cores)
  --out FILE            also append the JSON report to FILE
  --addr-b HOST:PORT    side B of every pair connects here instead (a second node of a
                        cluster: the pair's messages cross Redis) (throughput, latency)
  --label NAME          the server name in the report (throughput, latency, burst), e.g. switchboard-2-nodes
  --sio-transport T     how socket.io clients connect: websocket (default; straight to a WebSocket)
                        or polling (as socket.io-client does by default: long-polling, then the
                        upgrade)

burst: side A of each of N pairs sends M messages as fast as its socket takes them, side B reads;
counts delivered, lost, out of order and disconnected connections.

Dialects: ant, socketio, raw.
";

struct Args {
    command: String,
    opts: HashMap<String, String>,
    positional: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or_else(|| anyhow!("no command"))?;
    let mut opts = HashMap::new();
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        if let Some(key) = arg.strip_prefix("--") {
            let value = it.next().ok_or_else(|| anyhow!("--{key} needs a value"))?;
            opts.insert(key.to_owned(), value);
        } else {
            positional.push(arg);
        }
    }
    Ok(Args {
        command,
        opts,
        positional,
    })
}

impl Args {
    fn get<T: std::str::FromStr>(&self, key: &str, default: Option<T>) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.opts.get(key) {
            Some(v) => v.parse().map_err(|e| anyhow!("--{key} {v}: {e}")),
            None => default.ok_or_else(|| anyhow!("--{key} is required")),
        }
    }

    fn text(&self, key: &str) -> anyhow::Result<&str> {
        self.opts
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("--{key} is required"))
    }

    fn target(&self, default_sources: u8) -> anyhow::Result<Target> {
        let addr: SocketAddr = self.get("addr", Some("127.0.0.1:5080".parse()?))?;
        let server = Server::parse(
            self.opts
                .get("server")
                .map_or("switchboard", String::as_str),
        )?;
        let addr_b = match self.opts.get("addr-b") {
            Some(v) => Some(v.parse().map_err(|e| anyhow!("--addr-b {v}: {e}"))?),
            None => None,
        };
        let sio_polling = match self.opts.get("sio-transport").map(String::as_str) {
            None | Some("websocket") => false,
            Some("polling") => true,
            Some(other) => bail!("--sio-transport {other}: expected websocket or polling"),
        };
        Target::new(addr, server)?
            .with_sources(self.get("sources", Some(default_sources))?)
            .with_sio_polling(sio_polling)
            .with_addr_b(addr_b)
    }
}

/// `--target PID` (or `--pid`): the server process, for CPU and RSS readings.
fn server_pid(args: &Args) -> anyhow::Result<Option<u32>> {
    match args.opts.get("target").or_else(|| args.opts.get("pid")) {
        Some(p) => Ok(Some(p.parse().with_context(|| format!("--target {p}"))?)),
        None => Ok(None),
    }
}

/// `--target PID[,PID...]` for the flow scenarios: the processes whose CPU time per message
/// is reported, summed (two cluster nodes and their Redis: `--target A,B,REDIS`).
fn server_pids(args: &Args) -> anyhow::Result<Vec<u32>> {
    let Some(list) = args.opts.get("target").or_else(|| args.opts.get("pid")) else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(|p| p.trim().parse().with_context(|| format!("--target {list}")))
        .collect()
}

fn emit<T: Serialize + std::fmt::Debug>(args: &Args, report: &T) -> anyhow::Result<()> {
    let line = serde_json::to_string(report)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    if let Some(path) = args.opts.get("out") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {path}"))?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    match args.command.as_str() {
        "throughput" | "latency" | "burst" => {
            let throughput = args.command != "latency";
            let pace = match args.command.as_str() {
                "throughput" => Pace::Window(args.get("window", Some(32))?),
                "burst" => Pace::Burst(args.get("messages", Some(1500))?),
                _ => Pace::Rate(args.get("rate", None)?),
            };
            let cfg = FlowConfig {
                target: args.target(1)?,
                dialect: Dialect::parse(args.text("dialect")?)?,
                pairs: args.get("pairs", Some(if throughput { 100 } else { 50 }))?,
                secs: args.get("secs", Some(10.0))?,
                pace,
                server_pids: server_pids(&args)?,
            };
            let mut r = switchboard_loadgen::scenario::flow::run(cfg).await?;
            if let Some(label) = args.opts.get("label") {
                r.server.clone_from(label);
            }
            if args.opts.get("sio-transport").map(String::as_str) == Some("polling") {
                r.dialect = "socketio-polling".to_owned();
            }
            eprintln!(
                "{} {} {}: {:.0} msgs/s ({:.1} MB/s), sent {} delivered {} lost {} misrouted {} duplicated {} out-of-order {} disconnected {} errors {}{}",
                r.scenario,
                r.server,
                r.dialect,
                r.msgs_per_sec,
                r.mbytes_per_sec,
                r.sent,
                r.delivered,
                r.lost,
                r.misrouted,
                r.duplicated,
                r.out_of_order,
                r.disconnected,
                r.errors,
                r.latency.map_or(String::new(), |l| format!(
                    "; latency p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs max {:.0} µs",
                    l.p50_us, l.p99_us, l.p999_us, l.max_us
                )),
            );
            if let (Some(cores), Some(per)) = (r.server_cpu_cores, r.server_cpu_us_per_msg) {
                eprintln!(
                    "  server CPU {cores:.2} cores, {per:.1} µs per message; load generator {:.2} cores",
                    r.loadgen_cpu_cores.unwrap_or(0.0)
                );
            }
            if let Some(e) = &r.first_error {
                eprintln!("  first error: {e}");
            }
            emit(&args, &r)
        }
        "storm" => {
            let cfg = StormConfig {
                target: args.target(8)?,
                dialects: StormDialects::parse(args.text("dialect")?)?,
                pairs: args.get("pairs", Some(1000))?,
                connect_parallel: args.get("parallel", Some(256))?,
                timeout: Duration::from_secs_f64(args.get("timeout-secs", Some(120.0))?),
            };
            let _ = scenario::idle::raise_nofile(u64::from(cfg.pairs) * 2 + 1024);
            let r = scenario::storm::run(cfg).await?;
            eprintln!(
                "storm {} {}: {}/{} pairs in {:.2} s ({:.0} pairs/s), setup p50 {:.1} ms p99 {:.1} ms; signals sent {} delivered {} lost {} misrouted {} duplicated {} out-of-order {} unexpected {} malformed {} errors {}",
                r.server,
                r.dialect,
                r.completed,
                r.pairs,
                r.secs,
                r.pairs_per_sec,
                r.setup_p50_ms,
                r.setup_p99_ms,
                r.sent,
                r.delivered,
                r.lost,
                r.misrouted,
                r.duplicated,
                r.out_of_order,
                r.unexpected,
                r.malformed,
                r.errors
            );
            if let Some(e) = &r.first_error {
                eprintln!("  first error: {e}");
            }
            emit(&args, &r)
        }
        "idle" => {
            let Some(pid) = server_pid(&args)? else {
                bail!("--target PID is required");
            };
            let cfg = IdleConfig {
                target: args.target(64)?,
                dialect: Dialect::parse(args.text("dialect")?)?,
                sessions: args.get("sessions", Some(10_000))?,
                pid,
                connect_parallel: args.get("parallel", Some(256))?,
                settle: Duration::from_secs_f64(args.get("settle-secs", Some(3.0))?),
                timeout: Duration::from_secs_f64(args.get("timeout-secs", Some(240.0))?),
            };
            let r = scenario::idle::run(cfg).await?;
            eprintln!(
                "idle {} {}: {} open ({} failed) in {:.1} s; RSS {:.1} → {:.1} MiB: {:.1} KiB per session",
                r.server,
                r.dialect,
                r.opened,
                r.failed,
                r.open_secs,
                r.rss_before_kib as f64 / 1024.0,
                r.rss_after_kib as f64 / 1024.0,
                r.kib_per_session
            );
            if let Some(e) = &r.first_error {
                eprintln!("  first error: {e}");
            }
            emit(&args, &r)
        }
        "abuse" => {
            let Some(pid) = server_pid(&args)? else {
                bail!("--target PID is required");
            };
            let cfg = scenario::abuse::AbuseConfig {
                addr: args.get("addr", Some("127.0.0.1:5080".parse()?))?,
                source: args.get("source", Some("127.0.0.2".parse()?))?,
                kind: scenario::abuse::AbuseKind::parse(args.text("kind")?)?,
                secs: args.get("secs", Some(5.0))?,
                parallel: args.get("parallel", Some(32))?,
                max: args.get("max", Some(200_000))?,
                pid,
            };
            let _ = scenario::idle::raise_nofile(cfg.max + 1024);
            let r = scenario::abuse::run(cfg).await?;
            eprintln!(
                "abuse {} from {}: {} in {:.1} s ({:.0}/s), admitted {} ({:.0}/s), refused {}, held at the end {}; RSS {:.1} → {:.1} MiB",
                r.kind,
                r.source,
                r.attempted,
                r.secs,
                r.attempted_per_sec,
                r.admitted,
                r.admitted_per_sec,
                r.refused,
                r.held_at_end,
                r.rss_before_kib as f64 / 1024.0,
                r.rss_after_kib as f64 / 1024.0,
            );
            if let Some(e) = &r.first_error {
                eprintln!("  first error: {e}");
            }
            emit(&args, &r)
        }
        "limit-relay" => {
            let bind: SocketAddr = args.get("bind", Some("127.0.0.1:5090".parse()?))?;
            eprintln!("limit relay listening on {bind}");
            relay::serve(bind).await
        }
        "report" => {
            let mut all = String::new();
            for path in &args.positional {
                all.push_str(
                    &std::fs::read_to_string(path).with_context(|| format!("read {path}"))?,
                );
                all.push('\n');
            }
            let mut stdout = std::io::stdout().lock();
            write!(stdout, "{}", report::render(&all))?;
            Ok(())
        }
        "help" | "--help" | "-h" => {
            eprint!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`"),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let threads = match args.get::<usize>("threads", Some(0)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(64);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A watchdog over the whole run: every scenario stops by itself well before it.
    let deadline = Duration::from_secs(match args.command.as_str() {
        "limit-relay" | "report" | "help" | "--help" | "-h" => u64::MAX / 4,
        _ => 900,
    });
    let watched = async move {
        tokio::time::timeout(deadline, run(args))
            .await
            .unwrap_or_else(|_| Err(anyhow!("gave up after {deadline:?}")))
    };
    match runtime.block_on(watched) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
