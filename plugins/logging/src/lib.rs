//! The logging plugin: a structured log of bus events, one JSON object per line.
//!
//! ```text
//! {"ts":1763726400123,"room":"r1","session":7,"dialect":"antmedia","event":"description","kind":"offer","sdp":"<redacted 5821 bytes>"}
//! {"ts":1763726400150,"room":"r1","session":7,"dialect":"antmedia","event":"candidate","candidate":"candidate:1 1 udp 2122260223 x.x.x.x 54321 typ host","sdp_mid":"0","sdp_mline_index":0}
//! {"dropped":12}
//! ```
//!
//! Each line has `ts` (Unix milliseconds), `room`, `session`, `dialect` and `event` (the
//! [`Event::kind`]), followed by the event's own fields as in its JSON form. Redaction, on by
//! default:
//! - `redact_sdp`: SDP text becomes `"<redacted N bytes>"`.
//! - `redact_candidates`: the addresses in ICE candidate lines (the connection address and
//!   `raddr`) become `x.x.x.x` (IPv4) or `redacted` (IPv6, mDNS names); foundation, component,
//!   protocol, priority, port and type are kept.
//! - With either on, opaque frames (which the gateway does not interpret, and which may carry
//!   either) become `"<redacted N bytes>"`.
//! - Join tokens are always replaced by `"<redacted>"`.
//!
//! The hook runs on the sender's task under the room lock, so it does no I/O: it clones the
//! event into a bounded channel and returns. A background thread formats and writes the lines.
//! When the channel is full the event is dropped and counted, and the writer reports the count
//! as a `{"dropped":N}` line. The plugin never changes the decision and always returns
//! `Continue`; it sees each event before the plugins after it decide, so put it first to log
//! every event, including those a later plugin refuses.
//!
//! ```toml
//! [[plugin]]
//! type = "logging"
//! [plugin.settings]
//! output = { file = "/var/log/switchboard/events.jsonl" }   # or "stdout" (default), "stderr"
//! rooms = []          # only these rooms; empty: all
//! dialects = []       # only peers of these dialects; empty: all
//! ```
//!
//! # Layout
//! - `lib.rs`: settings, the factory and the hook.
//! - `writer.rs`: the background writer thread and the line format, with redaction.
//! - `tests.rs`: unit tests.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use switchboard_plugin_api::event::DialectKind;
use switchboard_plugin_api::{
    Decision, EventContext, Plugin, PluginError, PluginFactory, SettingsError, Verdict,
    parse_settings,
};

mod writer;

pub use writer::redact_candidate;
use writer::{Message, Record, Redaction, Sink};

/// Settings of `[[plugin]] type = "logging"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Where lines go: `"stdout"`, `"stderr"`, or `{ file = "path" }` (appended to, created if
    /// missing). The gateway's own log goes to stderr.
    #[serde(default)]
    pub output: Output,
    /// Replace SDP text with `"<redacted N bytes>"`.
    #[serde(default = "default_redact")]
    pub redact_sdp: bool,
    /// Replace the IP addresses in ICE candidates with `x.x.x.x` (or `redacted`).
    #[serde(default = "default_redact")]
    pub redact_candidates: bool,
    /// Log only events in these rooms (exact names). Empty: every room.
    #[serde(default = "default_filter")]
    pub rooms: Vec<String>,
    /// Log only events from peers of these dialects. Empty: every dialect.
    #[serde(default = "default_dialect_filter")]
    pub dialects: Vec<DialectKind>,
    /// Events queued for the writer thread before new ones are dropped (and counted).
    #[serde(default = "default_queue_len")]
    pub queue_len: usize,
}

const fn default_redact() -> bool {
    true
}

fn default_filter() -> Vec<String> {
    Vec::new()
}

fn default_dialect_filter() -> Vec<DialectKind> {
    Vec::new()
}

const fn default_queue_len() -> usize {
    4096
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            output: Output::default(),
            redact_sdp: default_redact(),
            redact_candidates: default_redact(),
            rooms: default_filter(),
            dialects: default_dialect_filter(),
            queue_len: default_queue_len(),
        }
    }
}

/// Where the log goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Output {
    /// Standard output (the default).
    #[default]
    Stdout,
    /// Standard error, shared with the gateway's own log.
    Stderr,
    /// A file, appended to.
    File(PathBuf),
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OutputVisitor;

        impl<'de> Visitor<'de> for OutputVisitor {
            type Value = Output;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""stdout", "stderr" or { file = "path" }"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Output, E> {
                match v {
                    "stdout" => Ok(Output::Stdout),
                    "stderr" => Ok(Output::Stderr),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Output, A::Error> {
                let mut file = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "file" {
                        return Err(de::Error::unknown_field(&key, &["file"]));
                    }
                    if file.is_some() {
                        return Err(de::Error::duplicate_field("file"));
                    }
                    file = Some(map.next_value::<PathBuf>()?);
                }
                file.map(Output::File)
                    .ok_or_else(|| de::Error::missing_field("file"))
            }
        }

        deserializer.deserialize_any(OutputVisitor)
    }
}

/// Builds [`Logging`] from `[[plugin]] type = "logging"`.
#[derive(Debug, Default)]
pub struct LoggingFactory;

impl PluginFactory for LoggingFactory {
    fn type_name(&self) -> &'static str {
        "logging"
    }

    fn build(&self, settings: &toml::Table) -> Result<Box<dyn Plugin>, Vec<SettingsError>> {
        let config: LoggingConfig = parse_settings(settings)?;
        Logging::new(config).map(|p| Box::new(p) as Box<dyn Plugin>)
    }
}

/// The running logging plugin.
#[derive(Debug)]
pub struct Logging {
    rooms: Vec<String>,
    dialects: Vec<DialectKind>,
    tx: SyncSender<Message>,
    /// Set by the first shutdown; later events are not logged.
    closed: AtomicBool,
    /// Events dropped because the channel was full, not yet reported.
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Logging {
    /// Validates `config` (reporting every problem), opens the output and starts the writer.
    pub fn new(config: LoggingConfig) -> Result<Self, Vec<SettingsError>> {
        let mut errors = Vec::new();
        if config.queue_len == 0 {
            errors.push(SettingsError {
                key: "queue_len".into(),
                message: "must be at least 1".into(),
            });
        }
        for (i, room) in config.rooms.iter().enumerate() {
            if room.is_empty() {
                errors.push(SettingsError {
                    key: format!("rooms[{i}]"),
                    message: "room name is empty".into(),
                });
            }
        }
        let sink = match &config.output {
            Output::Stdout => Some(Sink::Stdout),
            Output::Stderr => Some(Sink::Stderr),
            Output::File(path) => match OpenOptions::new().create(true).append(true).open(path) {
                Ok(file) => Some(Sink::File(file)),
                Err(e) => {
                    errors.push(SettingsError {
                        key: "output.file".into(),
                        message: format!("cannot open {} for appending: {e}", path.display()),
                    });
                    None
                }
            },
        };
        let Some(sink) = sink.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        let (tx, rx) = sync_channel(config.queue_len);
        let dropped = Arc::new(AtomicU64::new(0));
        let redaction = Redaction {
            sdp: config.redact_sdp,
            candidates: config.redact_candidates,
        };
        let writer = writer::spawn(rx, sink, redaction, Arc::clone(&dropped)).map_err(|e| {
            vec![SettingsError {
                key: String::new(),
                message: format!("cannot start the writer thread: {e}"),
            }]
        })?;
        Ok(Self {
            rooms: config.rooms,
            dialects: config.dialects,
            tx,
            closed: AtomicBool::new(false),
            dropped,
            writer: Mutex::new(Some(writer)),
        })
    }

    fn wanted(&self, room: &str, dialect: DialectKind) -> bool {
        (self.rooms.is_empty() || self.rooms.iter().any(|r| r == room))
            && (self.dialects.is_empty() || self.dialects.contains(&dialect))
    }

    /// Stops the writer after it has written everything queued so far. Idempotent.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // Blocks only while the queue is full, which the writer is draining.
            let _ = self.tx.send(Message::Shutdown);
        }
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Plugin for Logging {
    fn name(&self) -> &str {
        "logging"
    }

    fn on_event(&self, cx: &EventContext<'_>, _out: &mut Decision) -> Result<Verdict, PluginError> {
        let from = cx.from();
        if !self.wanted(cx.room.room, from.dialect) || self.closed.load(Ordering::Acquire) {
            return Ok(Verdict::Continue);
        }
        let record = Record {
            ts_ms: unix_millis(),
            room: cx.room.room.to_owned(),
            session: from.session,
            dialect: from.dialect,
            event: cx.event().clone(),
        };
        match self.tx.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone (it failed to write and stopped); nothing more to do.
            Err(TrySendError::Disconnected(_)) => {}
        }
        Ok(Verdict::Continue)
    }

    fn shutdown(&self) {
        self.close();
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
