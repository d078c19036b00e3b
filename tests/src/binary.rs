//! The real `switchboard` binary run on a config file with its JSON log read back: for the
//! tests that signal the process (SIGHUP reloads, SIGTERM) and wait for what it logs.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::switchboard_bin;

/// How long one log line or the exit after a signal may take.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// Whether a stderr line that is not JSON fails the test (`Strict`: the config asked for the
/// JSON log, so every line must be one) or is passed over.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Strict,
    JsonOnly,
}

/// A `switchboard --config PATH` process (killed when dropped) and its parsed log lines.
pub struct BinaryRun {
    child: Child,
    pid: String,
    log: UnboundedReceiver<Value>,
}

impl BinaryRun {
    /// Starts the binary on `config` (which sets `[log] format = "json"`) with extra
    /// environment variables `env`.
    pub fn start(config: &Path, env: &[(&str, &str)], lines: Lines) -> Self {
        let mut child = tokio::process::Command::new(switchboard_bin())
            .args(["--config", config.to_str().expect("a UTF-8 path")])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the switchboard binary starts");
        let pid = child.id().expect("a running child").to_string();
        let (tx, log) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let mut reader = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        let _ = tx.send(value);
                    }
                    // Ends the log (the sender drops), so the test's next wait fails.
                    Err(e) if lines == Lines::Strict => {
                        panic!("not a JSON log line ({e}): {line}")
                    }
                    Err(_) => {}
                }
            }
        });
        Self { child, pid, log }
    }

    /// The next log line whose message is `message` (earlier ones are passed over).
    pub async fn wait_for(&mut self, message: &str) -> Value {
        tokio::time::timeout(LOG_WAIT, async {
            loop {
                let line = self.log.recv().await.expect("the gateway is still logging");
                if line["fields"]["message"] == message {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{message}` log line"))
    }

    /// The error of the next refused reload (its `Configuration reload failed` log line).
    pub async fn refused_reload(&mut self) -> String {
        let failed = self
            .wait_for("Configuration reload failed; keeping the running configuration.")
            .await;
        failed["fields"]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {failed}"))
            .to_owned()
    }

    /// Sends `signal` (`-HUP`, `-TERM`) with kill(1); whether kill succeeded.
    pub fn signal(&self, signal: &str) -> bool {
        std::process::Command::new("kill")
            .args([signal, &self.pid])
            .status()
            .expect("kill runs")
            .success()
    }

    /// Its exit status, within 10 s.
    pub async fn exit_status(&mut self) -> ExitStatus {
        tokio::time::timeout(LOG_WAIT, self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait for the child")
    }
}

/// The address of a `Listening.` log line.
pub fn listening_addr(line: &Value) -> SocketAddr {
    line["fields"]["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"))
}
