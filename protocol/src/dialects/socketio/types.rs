//! A socket.io event as the dialect reads and writes it, and the names of its events: what the
//! decoder (`decode.rs`) and the encoder (`mod.rs`) share, in a module of its own so neither
//! imports the other's.

use std::borrow::Cow;

use serde_json::Value;

/// The event that carries peer signals.
pub const MSG_EVENT: &str = "msg";
/// The event that carries gateway notices.
pub const NOTICE_EVENT: &str = "switchboard";

/// One socket.io event, parsed: the event name and its first argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SioMessage {
    /// Event name, e.g. `msg`.
    pub event: String,
    /// The first argument.
    pub data: serde_json::Value,
}

impl SioMessage {
    /// A `msg` event carrying `text` as a string argument, as the classic page sends it.
    pub fn msg(text: impl Into<String>) -> Self {
        SioMessage {
            event: MSG_EVENT.to_owned(),
            data: Value::String(text.into()),
        }
    }

    /// The text of a `msg` argument: the string itself, or the compact JSON of an object that a
    /// modern client emitted without `JSON.stringify`. This is the `original` to pass to
    /// [`Dialect::forward`](crate::Dialect::forward). `None` for other events and other argument types.
    pub fn msg_text(&self) -> Option<Cow<'_, str>> {
        if self.event != MSG_EVENT {
            return None;
        }
        match &self.data {
            Value::String(s) => Some(Cow::Borrowed(s)),
            obj @ Value::Object(_) => serde_json::to_string(obj).ok().map(Cow::Owned),
            _ => None,
        }
    }
}
