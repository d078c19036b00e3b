//! Room homing across a cluster: each room's media is served by one node, its *home* (the
//! room affinity LiveKit uses). The daemon implements [`Homing`] with `[cluster]` (a claim in
//! Redis, frames through the cluster's bus); without it the plugin serves every room itself.
//!
//! On a node that is not a room's home, the plugin forwards what its sessions ask of the
//! room's media (`publish`, `play`, SDP, candidates, track toggles, `stop`, `leaveFromRoom`)
//! to the home node and remembers which streams it forwarded ([`Forwarded`]); the home node's
//! plugin serves them as [`RemoteMedia`] requests of a stand-in session, and what it tells
//! that session goes back to the requester's own node (the outbox [`Homing::attach`] wraps).
//! Media flows straight between the peer and the home node's UDP socket.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use switchboard_plugin_api::event::{DialectKind, Event};
use switchboard_plugin_api::{Outbox, SessionId};

use crate::registry::StreamKey;

/// Where a room's media is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// By this node (it claimed the room, or it holds it already, or it cannot tell).
    Here,
    /// By another node (its instance id).
    Node(Arc<str>),
}

/// A media request of a session, as one node forwards it to the room's home.
#[derive(Debug, Clone)]
pub struct MediaRequest {
    /// The requesting session (on the home node: its stand-in).
    pub session: SessionId,
    /// Its dialect (how the answers are rendered).
    pub dialect: DialectKind,
    /// The Ant application the request came through (`""`: none).
    pub app: String,
    /// The room the request concerns.
    pub room: String,
    /// The request.
    pub event: Event,
}

/// The daemon's side of room homing (`[cluster]`).
pub trait Homing: Send + Sync + std::fmt::Debug {
    /// The home of `room` for a media request of local session `session`, as the daemon read
    /// (or claimed) it for this very request before the gateway locked the room (from
    /// [`RemoteMedia::media_room_of`]). Never waits: the hook runs under the room's lock, and a
    /// Redis that stops answering must not stall the room. With no such answer (the plugin's
    /// memory named another room by the time the hook ran) the room is served here, and the
    /// heartbeat claims it.
    fn home(&self, session: SessionId, room: &str) -> Home;
    /// Queues `request` for `node`, the room's home. Never waits.
    fn forward(&self, node: &Arc<str>, request: MediaRequest);
    /// `session`, which forwarded requests to `node`, closed.
    fn closed(&self, node: &Arc<str>, session: SessionId);
    /// The started plugin: requests from other nodes go to `media`; returns the outbox its
    /// media task delivers through (deliveries to stand-in sessions go back to their nodes).
    fn attach(&self, media: Weak<dyn RemoteMedia>, outbox: Outbox) -> Outbox;
}

/// The plugin's side: what the daemon hands it from other nodes.
pub trait RemoteMedia: Send + Sync {
    /// A request of another node's session (`request.session` is its stand-in here).
    fn on_remote(&self, request: MediaRequest);
    /// That session closed: its media here ends silently.
    fn on_remote_closed(&self, session: SessionId);
    /// The rooms this node serves media for now (the homes it keeps).
    fn rooms(&self) -> Vec<String>;
    /// `node` died: the streams forwarded to it end (`publish_finished`/`play_finished`, so
    /// the SDK retries, and the retry claims the room anew).
    fn home_lost(&self, node: &str);
    /// The nodes this node's sessions forward media to now.
    fn homes(&self) -> Vec<Arc<str>>;
    /// The room whose home a local session's media request (`publish`, `play`) is decided
    /// with, read from the plugin's memory before the room is locked; `None` for any other
    /// event.
    fn media_room_of(&self, session: SessionId, event: &Event) -> Option<String>;
}

/// One stream a local session's media runs on another node.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The home node.
    pub node: Arc<str>,
    /// The room.
    pub room: String,
    /// Publish or play (what its end is called).
    pub publish: bool,
    /// Stopped by its session: a second `stop` (the SDK sends two) is swallowed here.
    pub ended: bool,
}

/// The streams of this node's sessions served by other nodes.
#[derive(Debug, Default)]
pub struct Forwarded {
    streams: HashMap<StreamKey, Remote>,
}

/// Most ended entries kept (they only serve to swallow the SDK's second `stop`).
const MAX_FORWARDED: usize = 65_536;

impl Forwarded {
    /// `key` is served by `node` from now on.
    pub fn insert(&mut self, key: StreamKey, node: Arc<str>, room: String, publish: bool) {
        if self.streams.len() >= MAX_FORWARDED {
            self.streams.retain(|_, r| !r.ended);
        }
        self.streams.insert(
            key,
            Remote {
                node,
                room,
                publish,
                ended: false,
            },
        );
    }

    /// The live stream `key`, if another node serves it.
    pub fn live(&self, key: &StreamKey) -> Option<&Remote> {
        self.streams.get(key).filter(|r| !r.ended)
    }

    /// The room of the live stream `stream_id` a local session forwarded (a `play` of it
    /// from this node goes to its home).
    pub fn room_of(&self, stream_id: &str) -> Option<&str> {
        self.streams
            .iter()
            .find(|(k, r)| k.stream_id == stream_id && r.publish && !r.ended)
            .map(|(_, r)| r.room.as_str())
    }

    /// `stop` of `key`: where it goes (`None` if not forwarded), and whether it was live.
    pub fn stop(&mut self, key: &StreamKey) -> Option<(Arc<str>, bool)> {
        let remote = self.streams.get_mut(key)?;
        let live = !remote.ended;
        remote.ended = true;
        Some((Arc::clone(&remote.node), live))
    }

    /// Forgets `session`'s streams in `room`; the nodes they were on.
    pub fn remove_in_room(&mut self, session: SessionId, room: &str) -> Vec<Arc<str>> {
        self.take(|k, r| k.session == session && r.room == room)
            .into_iter()
            .map(|(_, r)| r.node)
            .collect()
    }

    /// Forgets `session`'s streams; the nodes they were on.
    pub fn remove_session(&mut self, session: SessionId) -> Vec<Arc<str>> {
        self.take(|k, _| k.session == session)
            .into_iter()
            .map(|(_, r)| r.node)
            .collect()
    }

    /// Forgets the streams served by `node`; the live ones, to be told they ended.
    pub fn remove_node(&mut self, node: &str) -> Vec<(StreamKey, Remote)> {
        self.take(|_, r| &*r.node == node)
            .into_iter()
            .filter(|(_, r)| !r.ended)
            .collect()
    }

    /// Every node a live stream is served by.
    pub fn nodes(&self) -> Vec<Arc<str>> {
        let mut nodes: Vec<Arc<str>> = self
            .streams
            .values()
            .filter(|r| !r.ended)
            .map(|r| Arc::clone(&r.node))
            .collect();
        nodes.sort();
        nodes.dedup();
        nodes
    }

    fn take(&mut self, pick: impl Fn(&StreamKey, &Remote) -> bool) -> Vec<(StreamKey, Remote)> {
        let keys: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(k, r)| pick(k, r))
            .map(|(k, _)| k.clone())
            .collect();
        let mut nodes_taken = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(remote) = self.streams.remove(&key) {
                nodes_taken.push((key, remote));
            }
        }
        nodes_taken
    }
}

/// Every distinct node of `nodes`.
pub(crate) fn distinct(mut nodes: Vec<Arc<str>>) -> Vec<Arc<str>> {
    nodes.sort();
    nodes.dedup();
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: u64, id: &str) -> StreamKey {
        StreamKey::new(SessionId(s), id)
    }

    #[test]
    fn forwarded_streams_stop_once_and_leave_with_their_node() {
        let a: Arc<str> = Arc::from("a@1");
        let b: Arc<str> = Arc::from("b@1");
        let mut f = Forwarded::default();
        f.insert(key(1, "cam1"), Arc::clone(&a), "r".into(), true);
        f.insert(key(1, "r"), Arc::clone(&a), "r".into(), false);
        f.insert(key(2, "cam2"), Arc::clone(&b), "q".into(), true);
        assert_eq!(f.room_of("cam1"), Some("r"));
        assert_eq!(f.nodes(), vec![Arc::clone(&a), Arc::clone(&b)]);
        assert_eq!(f.stop(&key(1, "cam1")), Some((Arc::clone(&a), true)));
        assert_eq!(f.stop(&key(1, "cam1")), Some((Arc::clone(&a), false)));
        assert!(f.live(&key(1, "cam1")).is_none());
        assert_eq!(f.room_of("cam1"), None);
        let lost = f.remove_node("a@1");
        assert_eq!(lost.len(), 1, "only the live play: {lost:?}");
        assert_eq!(lost[0].0, key(1, "r"));
        assert_eq!(f.remove_session(SessionId(2)), vec![b]);
        assert!(f.nodes().is_empty());
    }
}
