//! The writer thread and the line format. Everything slow (formatting, redaction, I/O) happens
//! here, off the hook.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;
use switchboard_plugin_api::SessionId;
use switchboard_plugin_api::event::{DialectKind, Event};

/// How long written lines may sit in the buffer, and how soon a drop count is reported, when no
/// new event arrives.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// What the hook sends to the writer.
#[derive(Debug)]
pub(crate) enum Message {
    /// One event to log.
    Record(Box<Record>),
    /// Write what is queued, flush, and stop.
    Shutdown,
}

/// One event as the hook saw it.
#[derive(Debug)]
pub(crate) struct Record {
    pub ts_ms: u64,
    pub room: String,
    pub session: SessionId,
    pub dialect: DialectKind,
    pub event: Event,
}

/// Where lines go.
#[derive(Debug)]
pub(crate) enum Sink {
    Stdout,
    Stderr,
    File(File),
}

/// What to hide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Redaction {
    pub sdp: bool,
    pub candidates: bool,
}

pub(crate) fn spawn(
    rx: Receiver<Message>,
    sink: Sink,
    redaction: Redaction,
    dropped: Arc<AtomicU64>,
) -> io::Result<JoinHandle<()>> {
    let out: Box<dyn Write + Send> = match sink {
        Sink::Stdout => Box::new(io::stdout()),
        Sink::Stderr => Box::new(io::stderr()),
        Sink::File(file) => Box::new(file),
    };
    thread::Builder::new()
        .name("switchboard-logging".into())
        .spawn(move || run(&rx, BufWriter::new(out), redaction, &dropped))
}

fn run(
    rx: &Receiver<Message>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    redaction: Redaction,
    dropped: &AtomicU64,
) {
    let mut failing = false;
    loop {
        let mut batch = Vec::new();
        let mut stop = match rx.recv_timeout(FLUSH_INTERVAL) {
            Ok(Message::Record(r)) => {
                batch.push(*r);
                false
            }
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        while !stop {
            match rx.try_recv() {
                Ok(Message::Record(r)) => batch.push(*r),
                Ok(Message::Shutdown) | Err(TryRecvError::Disconnected) => stop = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        let written = write_batch(&mut out, batch, redaction, dropped);
        match written {
            Ok(()) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        error = %e,
                        "Logging plugin cannot write its output; events are counted as dropped."
                    );
                }
                failing = true;
            }
        }
        if stop {
            return;
        }
    }
}

/// Writes `batch` and any pending drop count, then flushes. Lines that fail are counted as
/// dropped, so the next successful write reports them.
pub(crate) fn write_batch(
    out: &mut impl Write,
    batch: Vec<Record>,
    redaction: Redaction,
    dropped: &AtomicU64,
) -> io::Result<()> {
    let mut first_error = None;
    let mut total = batch.len();
    for record in batch {
        let mut line = format_line(record, redaction);
        line.push('\n');
        if let Err(e) = out.write_all(line.as_bytes()) {
            dropped.fetch_add(1, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    let n = dropped.swap(0, Ordering::Relaxed);
    if n > 0 {
        total += 1;
        if let Err(e) = writeln!(out, r#"{{"dropped":{n}}}"#) {
            dropped.fetch_add(n, Ordering::Relaxed);
            first_error.get_or_insert(e);
        }
    }
    if total > 0
        && let Err(e) = out.flush()
    {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(()), Err)
}

/// One log line (without the newline): `ts`, `room`, `session`, `dialect`, `event`, then the
/// event's own fields (in key order), redacted as configured.
pub(crate) fn format_line(record: Record, redaction: Redaction) -> String {
    let Record {
        ts_ms,
        room,
        session,
        dialect,
        mut event,
    } = record;
    redact(&mut event, redaction);
    let kind = event.kind();
    let mut line = format!(
        r#"{{"ts":{ts_ms},"room":{},"session":{session},"dialect":"{dialect}","event":"{kind}""#,
        Value::from(room)
    );
    if let Ok(Value::Object(fields)) = serde_json::to_value(&event) {
        for (key, value) in fields {
            if key == "event" || key == "room" {
                continue;
            }
            line.push(',');
            line.push_str(&Value::from(key).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        }
    }
    line.push('}');
    line
}

fn redacted_bytes(text: &str) -> String {
    format!("<redacted {} bytes>", text.len())
}

fn redact(event: &mut Event, redaction: Redaction) {
    match event {
        Event::Join(join) if join.token.is_some() => {
            join.token = Some("<redacted>".to_owned());
        }
        Event::Description(d) if redaction.sdp => d.sdp = redacted_bytes(&d.sdp).into(),
        Event::Description(d) if redaction.candidates => {
            d.sdp = redact_sdp_addresses(&d.sdp).into()
        }
        Event::Candidate(c) if redaction.candidates => {
            c.candidate = redact_candidate(&c.candidate).into();
        }
        Event::Opaque(o) if redaction.sdp || redaction.candidates => {
            o.payload = redacted_bytes(&o.payload);
        }
        // Stream-security tokens of conference requests (publish, play, joinRoom).
        Event::Conference(c) => {
            if let Some(token) = c.command.token_mut().filter(|t| t.is_some()) {
                *token = Some("<redacted>".to_owned());
            }
        }
        _ => {}
    }
}

/// Replaces the addresses in an ICE candidate line (`candidate:...` or `a=candidate:...`): the
/// connection address (fifth field, an IP or an mDNS name), the `raddr` value, and any other
/// field that is an IP address. IPv4 becomes `x.x.x.x`, anything else `redacted`; the other
/// fields (foundation, component, protocol, priority, port, `typ`) are kept.
pub fn redact_candidate(line: &str) -> String {
    let mut previous = "";
    line.split(' ')
        .enumerate()
        .map(|(i, field)| {
            let is_address = i == 4 || previous == "raddr" || field.parse::<IpAddr>().is_ok();
            previous = field;
            if is_address && !field.is_empty() {
                mask(field)
            } else {
                field
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask(address: &str) -> &'static str {
    if address.parse::<std::net::Ipv4Addr>().is_ok() {
        "x.x.x.x"
    } else {
        "redacted"
    }
}

/// Redacts the addresses in an SDP kept in the log (`redact_sdp = false`, `redact_candidates =
/// true`): candidate lines as [`redact_candidate`], and IP addresses anywhere else (`c=`, `o=`,
/// `a=rtcp:` lines).
fn redact_sdp_addresses(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            let (body, end) = split_line_end(line);
            let body = if body.starts_with("a=candidate:") {
                redact_candidate(body)
            } else {
                body.split(' ')
                    .map(|f| {
                        if f.parse::<IpAddr>().is_ok() {
                            mask(f)
                        } else {
                            f
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            format!("{body}{end}")
        })
        .collect()
}

fn split_line_end(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\r', '\n']);
    (body, &line[body.len()..])
}
