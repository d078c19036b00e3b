//! Named telemetry occurrences: each function writes one log line with fixed fields and updates
//! its metric, so message text, metric names and label sets live in one reviewed place.

use switchboard_plugin_api::Refusal;
use switchboard_plugin_api::SessionId;
use switchboard_protocol::{DecodeError, DialectKind, ErrorCode};

use crate::envelope::Envelope;
use tracing::{error, info, trace, warn};

use crate::metrics::{Family, global};

const SESSIONS: Family = Family {
    name: "switchboard_sessions",
    help: "Open peer sessions by dialect.",
    kind: "gauge",
};
const SESSIONS_TOTAL: Family = Family {
    name: "switchboard_sessions_opened_total",
    help: "Peer sessions opened since start, by dialect.",
    kind: "counter",
};
const SESSIONS_CLOSED: Family = Family {
    name: "switchboard_sessions_closed_total",
    help: "Peer sessions ended since start, by dialect and why (one count per session).",
    kind: "counter",
};
const ERRORS: Family = Family {
    name: "switchboard_errors_total",
    help: "Refused or failed peer input, by dialect and reason.",
    kind: "counter",
};
const PLUGIN_FAILURES: Family = Family {
    name: "switchboard_plugin_failures_total",
    help: "Plugin calls that returned an error or panicked, by plugin.",
    kind: "counter",
};

/// A plugin joined the pipeline: its failure counter exists from now on at 0, so dashboards
/// and `rate()` see the series before its first failure.
pub fn plugin_registered(plugin: &str) {
    global().add(PLUGIN_FAILURES, &[("plugin", plugin)], 0);
}

/// A peer connection was accepted and registered.
pub fn session_opened(session: SessionId, dialect: DialectKind) {
    info!(session = %session, dialect = %dialect, "Session opened.");
    global().add(SESSIONS, &[("dialect", dialect.as_str())], 1);
    global().add(SESSIONS_TOTAL, &[("dialect", dialect.as_str())], 1);
}

/// A peer connection ended.
pub fn session_closed(session: SessionId, dialect: DialectKind, reason: &str) {
    info!(session = %session, reason, "Session closed.");
    global().add(SESSIONS, &[("dialect", dialect.as_str())], -1);
    global().add(
        SESSIONS_CLOSED,
        &[("dialect", dialect.as_str()), ("reason", reason)],
        1,
    );
}

/// A peer sent something its dialect could not decode.
pub fn decode_failed(dialect: DialectKind, error: &DecodeError) {
    warn!(dialect = %dialect, error = %error, "Refused a malformed message.");
    global().add(
        ERRORS,
        &[
            ("dialect", dialect.as_str()),
            ("reason", error.code().as_str()),
        ],
        1,
    );
}

/// A peer sent a frame above the size limit.
pub fn frame_too_large(dialect: DialectKind, limit: usize) {
    warn!(dialect = %dialect, limit, "Closed a session that sent an oversized frame.");
    global().add(
        ERRORS,
        &[("dialect", dialect.as_str()), ("reason", "frame_too_large")],
        1,
    );
}

/// A plugin failed or panicked.
pub fn plugin_failed(plugin: &str, reason: &str) {
    error!(plugin, reason, "Plugin failed.");
    global().add(PLUGIN_FAILURES, &[("plugin", plugin)], 1);
}

/// socket.io's long-polling transport closed a session over what the peer sent: a payload
/// engine.io or socket.io could not parse, two polls at once, or an engine.io 3 POST that found
/// no room in the POST budget in time. `reason` is the session end's.
pub fn transport_refused(dialect: DialectKind, reason: &'static str) {
    warn!(dialect = %dialect, reason, "The transport closed a session over what its peer sent.");
    count_error(
        dialect.as_str(),
        match reason {
            "concurrent polls" => "concurrent_polls",
            "post budget full" => "post_budget_full",
            _ => "malformed_packet",
        },
    );
}

/// A peer sent a text frame that is not UTF-8 (closed with 1007).
pub fn invalid_utf8(dialect: DialectKind) {
    warn!(dialect = %dialect, "Closed a session that sent a text frame that is not UTF-8.");
    count_error(dialect.as_str(), "invalid_utf8");
}

/// A session's outbound queue filled up; the session is being closed.
pub fn session_stuck(session: SessionId, dialect: DialectKind, queue_len: usize) {
    warn!(session = %session, dialect = %dialect, queue_len, "Closing a session that stopped taking its messages.");
    count_error(dialect.as_str(), "session_stuck");
}

/// An event went through the pipeline (per message: `trace`).
pub fn event_dispatched(envelope: &Envelope, room: &str, deliveries: usize) {
    trace!(
        session = %envelope.from.session,
        event = envelope.event.kind(),
        room,
        deliveries,
        "Dispatched an event."
    );
}

/// A plugin refused an event; the sender is told in its dialect. A refused join is lifecycle
/// (`info`); anything else is per message (`debug`).
pub fn event_refused(envelope: &Envelope, room: &str, refusal: &Refusal) {
    let session = envelope.from.session;
    let (event, code) = (envelope.event.kind(), refusal.code.as_str());
    if event == "join" {
        info!(session = %session, room, code, reason = %refusal.message, "Refused a join.");
    } else {
        tracing::debug!(session = %session, event, room, code, "Refused an event.");
    }
}

/// A peer's event was refused (by a plugin, a session limit or the gateway); counted once per
/// refusal under its code, whichever part refused it.
pub fn refused(dialect: DialectKind, code: ErrorCode) {
    count_error(dialect.as_str(), code.as_str());
}

/// A raw or socket.io connection named an empty, over-long or control-character room.
pub fn room_name_refused(dialect: DialectKind) {
    count_error(dialect.as_str(), "invalid_room");
}

/// A PeerJS connection was refused before its session (`reason`: `missing_parameters`,
/// `invalid_key`, `invalid_room`, `invalid_token`, `id_taken`).
pub fn peerjs_refused(addr: std::net::SocketAddr, reason: &'static str) {
    warn!(peer.addr = %addr, reason, "Refused a PeerJS connection.");
    count_error(DialectKind::Peerjs.as_str(), reason);
}

/// An Ant Media connection named an application this gateway does not serve (HTTP 404).
pub fn app_refused(addr: std::net::SocketAddr) {
    info!(peer.addr = %addr, "Refused a connection to an application that is not configured.");
    count_error(DialectKind::Antmedia.as_str(), "unknown_app");
}

// === limits, drain, reload ===

fn count_error(dialect: &str, reason: &str) {
    global().add(ERRORS, &[("dialect", dialect), ("reason", reason)], 1);
}

/// A WHIP or WHEP request (`endpoint`) was refused: a bad body, content type or size, an
/// unknown resource, or a media request the plugins refused (`reason`: the error code's name or
/// the HTTP refusal's). Logged at a bounded rate, counted once.
pub fn http_media_refused(endpoint: &'static str, reason: &str, status: u16) {
    count_error(endpoint, reason);
    if let Some(skipped) = REFUSAL_LOG.admit() {
        info!(
            endpoint,
            reason, status, skipped, "Refused a WHIP/WHEP request."
        );
    }
}

/// A connection was refused before it became a session (origin, caps, draining). Logged at a
/// bounded rate: a flood is counted whole, and the log says how many lines it skipped.
pub fn connection_refused(
    dialect: DialectKind,
    addr: Option<std::net::SocketAddr>,
    refusal: crate::limits::ConnectRefusal,
) {
    count_error(dialect.as_str(), refusal.as_str());
    if let Some(skipped) = REFUSAL_LOG.admit() {
        let peer = addr.map(|a| a.to_string()).unwrap_or_default();
        info!(dialect = %dialect, peer.addr = %peer, reason = refusal.as_str(), skipped, "Refused a connection.");
    }
}

const CONNECTIONS_REFUSED: Family = Family {
    name: "switchboard_connections_refused_total",
    help: "Connections closed at accept or before their first request, by reason.",
    kind: "counter",
};

static REFUSAL_LOG: crate::limits::LogBudget = crate::limits::LogBudget::new();
static ACCEPT_LOG: crate::limits::LogBudget = crate::limits::LogBudget::new();

/// A connection was closed at accept or before its first request (per-IP TCP cap, descriptor
/// headroom, a bad or untrusted PROXY or forwarding header). Logged at a bounded rate.
pub fn accept_refused(
    refusal: crate::listeners::AcceptRefusal,
    peer: std::net::SocketAddr,
    detail: Option<&dyn std::fmt::Display>,
) {
    global().add(CONNECTIONS_REFUSED, &[("reason", refusal.as_str())], 1);
    if let Some(skipped) = ACCEPT_LOG.admit() {
        let detail = detail.map(ToString::to_string).unwrap_or_default();
        warn!(peer.addr = %peer, reason = refusal.as_str(), detail, skipped, "Closed a connection at the front door.");
    }
}

/// `accept` itself failed (out of descriptors); logged at a bounded rate.
pub fn accept_failed(error: &std::io::Error) {
    global().add(CONNECTIONS_REFUSED, &[("reason", "accept_failed")], 1);
    if let Some(skipped) = ACCEPT_LOG.admit() {
        warn!(%error, skipped, "Accept failed.");
    }
}

/// A message over the per-connection rate was dropped (per message: `debug`).
pub fn rate_limited(dialect: DialectKind) {
    tracing::debug!(dialect = %dialect, "Dropped a message over the rate limit.");
    count_error(dialect.as_str(), "rate_limited");
}

/// A connection kept sending over the rate limit and was closed.
pub fn rate_limit_closed(dialect: DialectKind) {
    warn!(dialect = %dialect, "Closed a session that kept sending over the rate limit.");
    count_error(dialect.as_str(), "rate_limit_closed");
}

/// A peer connected but never joined; it was closed.
pub fn join_timed_out(dialect: DialectKind, after: std::time::Duration) {
    info!(dialect = %dialect, after_secs = after.as_secs(), "Closed a session that never joined.");
    count_error(dialect.as_str(), "join_timeout");
}

/// A write to a peer did not complete in time (the peer stopped reading); the session is closed.
pub fn write_timed_out(dialect: DialectKind, after: std::time::Duration) {
    warn!(dialect = %dialect, after_secs = after.as_secs(), "Closed a session whose peer stopped reading.");
    count_error(dialect.as_str(), "write_timeout");
}

/// An operator kicked a session through the admin API.
pub fn session_kicked(session: SessionId, reason: &str) {
    info!(session = %session, reason, "Kicked a session.");
}

/// A reload was applied.
pub fn config_reloaded(changes: &[String], needs_restart: &[String]) {
    info!(
        applied = %changes.join(", "),
        needs_restart = %needs_restart.join(", "),
        "Configuration reloaded."
    );
    global().add(RELOADS, &[("result", "ok")], 1);
}

/// A reload was refused; the old configuration stays.
pub fn config_reload_failed(error: &str) {
    error!(
        error,
        "Configuration reload failed; keeping the running configuration."
    );
    global().add(RELOADS, &[("result", "error")], 1);
}

const RELOADS: Family = Family {
    name: "switchboard_config_reloads_total",
    help: "Configuration reloads (SIGHUP), by result.",
    kind: "counter",
};
