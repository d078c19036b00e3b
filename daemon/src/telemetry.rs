//! Named telemetry occurrences: each function writes one log line with fixed fields, so message
//! text and field names live in one reviewed place.

use switchboard_plugin_api::SessionId;
use switchboard_plugin_api::protocol::{DecodeError, DialectKind};
use tracing::{error, info, warn};

/// A peer connection was accepted and registered.
pub fn session_opened(session: SessionId, dialect: DialectKind) {
    info!(session = %session, dialect = %dialect, "Session opened.");
}

/// A peer connection ended.
pub fn session_closed(session: SessionId, reason: &str) {
    info!(session = %session, reason, "Session closed.");
}

/// A peer sent something its dialect could not decode.
pub fn decode_failed(dialect: DialectKind, error: &DecodeError) {
    warn!(dialect = %dialect, error = %error, "Refused a malformed message.");
}

/// A peer sent a frame above the size limit.
pub fn frame_too_large(dialect: DialectKind, limit: usize) {
    warn!(dialect = %dialect, limit, "Closed a session that sent an oversized frame.");
}

/// A plugin failed or panicked.
pub fn plugin_failed(plugin: &str, reason: &str) {
    error!(plugin, reason, "Plugin failed.");
}

/// A session's outbound queue filled up; the session is being closed.
pub fn session_stuck(session: SessionId, queue_len: usize) {
    warn!(session = %session, queue_len, "Closing a session that stopped reading its messages.");
}
