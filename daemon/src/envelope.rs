//! What the gateway carries for one event a peer sent: the [`Envelope`] (sender, event, Ant
//! application) plus the sender's own wire text, the [`Original`], shared by every receiver.
//! Plugins never see the original; they see an [`EventContext`] borrowed from the envelope.
//!
//! # Layout
//! - [`Envelope`] and [`Envelope::context`].
//! - [`Original`] and [`WireText`]: the wire text and what may hold it (a session's received
//!   frame, for the zero-copy relay in `session.rs`).

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use switchboard_plugin_api::event::{Event, Leave, LeaveReason};
use switchboard_plugin_api::{EventContext, Peer, RoomView};

/// One event from a peer, as it travels through the gateway. `original` is the sender's wire
/// text (the frame, or the socket.io `msg` string) so that a peer of the same dialect can
/// receive it byte-identical instead of re-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sender.
    pub from: Peer,
    /// The normalized event.
    pub event: Event,
    /// The sender's wire text, when forwarding it verbatim is meaningful.
    pub original: Option<Original>,
    /// The Ant Media application of the sender's connection ([`EventContext::app()`]).
    pub app: Option<Arc<str>>,
}

impl Envelope {
    /// `from` leaves `room` because its connection closed (or, for a member of another node,
    /// because that member or its node is gone): a departure, which the dispatcher carries out
    /// even when a plugin refuses it.
    pub fn departure(from: Peer, room: String) -> Self {
        Envelope {
            from,
            event: Event::Leave(Leave {
                room,
                reason: LeaveReason::Disconnect,
            }),
            original: None,
            app: None,
        }
    }

    /// What plugins see of this envelope, in `room`.
    pub fn context<'a>(&'a self, room: RoomView<'a>) -> EventContext<'a> {
        EventContext {
            from: self.from,
            event: &self.event,
            app: self.app.as_deref(),
            room,
        }
    }
}

/// Text an [`Original`] can hold: anything that reads as a `str` and can be shared between
/// threads. A `String` is one; the gateway's WebSocket sessions hold the received frame's own
/// buffer, so that a relay to peers of the sender's dialect neither copies the text into an
/// `Original` nor renders a copy of it for each receiver.
pub trait WireText: Any + Send + Sync {
    /// The text.
    fn as_str(&self) -> &str;
}

impl WireText for String {
    fn as_str(&self) -> &str {
        self
    }
}

/// A slice of a bundle received from another cluster node: the forwarded text shares the
/// bundle's buffer rather than being copied out of it, frame by frame.
impl WireText for axum::extract::ws::Utf8Bytes {
    fn as_str(&self) -> &str {
        axum::extract::ws::Utf8Bytes::as_str(self)
    }
}

/// The sender's wire text of an event (the frame, or the socket.io `msg` string literal), for
/// a receiver of the same dialect to get it byte-identical. Cloning shares it.
#[derive(Clone)]
pub struct Original(Arc<dyn WireText>);

impl Original {
    /// An original holding `text`.
    pub fn new(text: impl WireText) -> Self {
        Self(Arc::new(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// What holds the text, when it is a `T` (the gateway finds its received frames this way).
    pub fn downcast_ref<T: WireText>(&self) -> Option<&T> {
        let held: &dyn Any = &*self.0;
        held.downcast_ref()
    }
}

impl Deref for Original {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Original {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for Original {
    fn from(text: &str) -> Self {
        Self::new(text.to_owned())
    }
}

impl From<std::borrow::Cow<'_, str>> for Original {
    fn from(text: std::borrow::Cow<'_, str>) -> Self {
        Self::new(text.into_owned())
    }
}

/// Originals are equal when their texts are, whatever holds them.
impl PartialEq for Original {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Original {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder of part of a larger text, as the gateway's frames are.
    struct Slice {
        whole: String,
        start: usize,
    }

    impl WireText for Slice {
        fn as_str(&self) -> &str {
            self.whole.get(self.start..).unwrap_or_default()
        }
    }

    #[test]
    fn an_original_reads_as_its_text_and_finds_its_holder() {
        let sliced = Original::new(Slice {
            whole: "42[\"msg\",\"hi\"]".to_owned(),
            start: 9,
        });
        assert_eq!(&*sliced, "\"hi\"]");
        assert_eq!(sliced, Original::from("\"hi\"]"), "equal by text");
        assert_eq!(sliced.downcast_ref::<Slice>().map(|s| s.start), Some(9));
        assert!(sliced.downcast_ref::<String>().is_none());
        let shared = sliced.clone();
        assert_eq!(format!("{shared:?}"), r#""\"hi\"]""#);
    }
}
