//! Switchboard's sans-IO protocol layer: one internal [`Event`] vocabulary and one codec per
//! signaling dialect. Nothing here does I/O or knows about tokio; the daemon owns sockets and
//! passes frames in and out.
//!
//! # Layout
//! - [`event`]: the normalized events that travel on the bus, in both directions.
//! - [`text`]: [`JsonText`], an SDP or candidate kept as the sender's JSON text until read.
//! - [`conference`]: Ant Media conference requests and replies, carried by [`Event::Conference`]
//!   and [`Event::ConferenceReply`].
//! - [`dialects`]: the [`Dialect`] trait and one module per dialect (`antmedia`, `socketio`,
//!   `raw`), each holding decode and encode side by side.
//! - [`error`]: typed decode errors and the gateway's error codes.
//! - [`cluster`]: the frames gateway nodes of one cluster exchange through Redis.
//! - [`whip`]: what the gateway reads of WHIP/WHEP bodies (the SDP check, trickle ICE fragments).
//! - `testing` (feature `testing`): the dialect conformance harness every codec's tests call.
#![warn(missing_docs)]

pub mod cluster;
pub mod conference;
pub mod dialects;
pub mod error;
mod escape;
pub mod event;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod whip;

pub use conference::{ConferenceCommand, ConferenceReply, ConferenceRequest};
pub use dialects::{Decoded, Dialect, DialectKind};
pub use error::{DecodeError, ErrorCode};
pub use event::*;
pub use text::JsonText;

/// Default maximum accepted size of one inbound frame, in bytes. Ant Media itself accepts
/// 81 920 bytes; Chrome offers with audio, video and data are about 6 KB, so 128 KiB is ample
/// while still bounding what one peer can make the gateway buffer.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 128 * 1024;

/// Longest stream id, room id or room name accepted in any dialect, in bytes (Ant stream ids,
/// `joinRoom` rooms, raw `/ws/{room}` and `switchboard.play`/`publish` streams, socket.io
/// rooms). An id is a key in the gateway's room table and is echoed in replies, so one bound
/// for all dialects keeps one peer from making the gateway hold 100 KB ids.
pub const MAX_ID_BYTES: usize = 128;

/// Maximum JSON nesting depth the decoders accept. Signaling messages are at most four levels
/// deep; anything deeper is refused before it costs stack or memory.
pub const MAX_JSON_DEPTH: usize = 32;
