//! The `switchboard` binary: parse arguments, load config, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use switchboard::config::{GatewayConfig, LoadConfigError};

const USAGE: &str = "\
Switchboard: a WebRTC signaling gateway (Ant Media, socket.io, raw WebSocket).

Usage:
  switchboard [--config FILE]       run the gateway (embedded default config without --config)
  switchboard check-config FILE     validate a config file and list every problem
  switchboard print-default-config  print the embedded default config
  switchboard --help | --version

Logging: RUST_LOG (default `info`), e.g. RUST_LOG=switchboard=debug.
";

/// `EX_USAGE` from sysexits.h: the command was used incorrectly (bad arguments or config).
const EX_USAGE: u8 = 64;

enum Command {
    Run(Option<PathBuf>),
    CheckConfig(PathBuf),
    PrintDefault,
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Ok(Command::Run(None)),
        [flag, file] if flag == "--config" || flag == "-c" => Ok(Command::Run(Some(file.into()))),
        [cmd, file] if cmd == "check-config" => Ok(Command::CheckConfig(file.into())),
        [cmd] if cmd == "print-default-config" => Ok(Command::PrintDefault),
        [flag] if flag == "--help" || flag == "-h" => Ok(Command::Help),
        [flag] if flag == "--version" || flag == "-V" => Ok(Command::Version),
        other => Err(format!("unexpected arguments: {}", other.join(" "))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match command {
        // What the user asked to see goes to stdout, so it can be redirected to a file.
        Command::Help => print_out(USAGE),
        Command::Version => print_out(&format!("switchboard {}\n", env!("CARGO_PKG_VERSION"))),
        Command::PrintDefault => print_out(switchboard::config::DEFAULT_CONFIG),
        Command::CheckConfig(path) => check_config(&path),
        Command::Run(path) => run(path),
    }
}

fn print_out(text: &str) -> ExitCode {
    use std::io::Write as _;
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match GatewayConfig::load(path) {
        Ok(_) => {
            eprintln!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(EX_USAGE)
        }
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    init_tracing();
    let config = match &path {
        Some(p) => GatewayConfig::load(p),
        None => GatewayConfig::from_toml(switchboard::config::DEFAULT_CONFIG),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let origin = path
                .as_ref()
                .map_or("embedded config".into(), |p| p.display().to_string());
            eprintln!("{origin}: {e}");
            return ExitCode::from(match e {
                LoadConfigError::Read { .. } => 66, // EX_NOINPUT
                _ => EX_USAGE,
            });
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(switchboard::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Gateway failed.");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("Signal received; shutting down gracefully (send again to exit at once).");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("Second signal; exiting now.");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the gateway runs until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
