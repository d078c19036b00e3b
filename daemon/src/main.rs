//! The `switchboard` binary: parse arguments, load config, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use switchboard::config::{GatewayConfig, LoadConfigError};

mod allocator;

const USAGE: &str = "\
Switchboard: a WebRTC signaling gateway (Ant Media, socket.io, raw WebSocket).

Usage:
  switchboard [--config FILE] [--self-signed]
                                    run the gateway (embedded default config without --config)
  switchboard check-config FILE     validate a config file and list every problem
  switchboard print-default-config  print the embedded default config
  switchboard --help | --version

Options:
  --self-signed   serve every listener over TLS (https://, wss://) with a self-signed
                  certificate generated at start-up, so the demos work from other machines
                  (browsers allow the camera only in a secure context). For development only.

Signals: SIGTERM or SIGINT drains gracefully (a second one exits at once); SIGHUP re-reads the
--config file and applies it if it is valid (the old config stays otherwise).

Logging: [log] in the config (format text or json, level); RUST_LOG, when set, overrides the
level, e.g. RUST_LOG=switchboard=debug.
";

/// `EX_USAGE` from sysexits.h: the command was used incorrectly (bad arguments or config).
const EX_USAGE: u8 = 64;

enum Command {
    Run {
        config: Option<PathBuf>,
        self_signed: bool,
    },
    CheckConfig(PathBuf),
    PrintDefault,
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    match args {
        [cmd, file] if cmd == "check-config" => return Ok(Command::CheckConfig(file.into())),
        [cmd] if cmd == "print-default-config" => return Ok(Command::PrintDefault),
        [flag] if flag == "--help" || flag == "-h" => return Ok(Command::Help),
        [flag] if flag == "--version" || flag == "-V" => return Ok(Command::Version),
        _ => {}
    }
    let (mut config, mut self_signed) = (None, false);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--config" | "-c" if config.is_none() => match rest.next() {
                Some(file) => config = Some(PathBuf::from(file)),
                None => return Err("--config needs a file".into()),
            },
            "--self-signed" if !self_signed => self_signed = true,
            _ => return Err(format!("unexpected arguments: {}", args.join(" "))),
        }
    }
    Ok(Command::Run {
        config,
        self_signed,
    })
}

fn main() -> ExitCode {
    allocator::tune();
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
        Command::Run {
            config,
            self_signed,
        } => run(config, self_signed),
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

fn run(path: Option<PathBuf>, self_signed: bool) -> ExitCode {
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
    let mut config = config;
    init_tracing(&config.log);
    if self_signed {
        let dir =
            std::env::temp_dir().join(format!("switchboard-self-signed-{}", std::process::id()));
        match switchboard::tls::apply_self_signed(&mut config, &dir, &[]) {
            Ok(cert) => tracing::warn!(
                cert = %cert.display(),
                "Serving TLS with a self-signed certificate (development only; browsers will warn once)."
            ),
            Err(e) => {
                eprintln!("cannot make a self-signed certificate: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match allocator::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Gateway failed.");
            ExitCode::FAILURE
        }
    }
}

/// Runs until the first SIGINT or SIGTERM, then drains; SIGHUP reloads `path`.
async fn serve(config: GatewayConfig, path: Option<PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Before start: it logs `Listening.`, and a SIGHUP that arrives before the handler exists
    // would end the process (the default action), as the reload tests saw under load.
    let mut hangup = signal(SignalKind::hangup()).ok();
    let running = switchboard::start(config).await?;
    let mut stopping = running.phases();
    loop {
        tokio::select! {
            () = wait_for_signal() => {
                tracing::info!("Signal received; shutting down gracefully (send again to exit at once).");
                break;
            }
            Some(()) = async { hangup.as_mut()?.recv().await } => match &path {
                Some(path) => {
                    // Logged either way by the reload itself.
                    let _ = running.reload_file(path);
                }
                None => tracing::warn!("SIGHUP: no --config file to reload (running on the embedded default)."),
            },
            // Drained through the admin API.
            true = async { stopping.wait_for(|p| *p >= switchboard::Phase::Draining).await.is_ok() } => break,
        }
    }
    running.shutdown();
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("Second signal; exiting now.");
        std::process::exit(130);
    });
    running.wait().await
}

fn init_tracing(log: &switchboard::config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        switchboard::config::LogFormat::Text => builder.init(),
        // One object per line with the current span's fields (conn.id, peer.addr, dialect,
        // room) and the list of enclosing spans.
        switchboard::config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
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
