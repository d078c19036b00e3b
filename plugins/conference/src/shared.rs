//! The catalog a cluster shares: with `[cluster]`, REST rooms and one-time tokens live in the
//! cluster's Redis instead of this node's redb file, so every node sees the same rooms (and
//! holds their dates) and a one-time token is used once across the cluster. The daemon
//! implements it (`daemon/src/cluster/catalog.rs`); this crate only needs these operations.
//!
//! The hub keeps its rooms, tokens and the other nodes' streams as a cache of the catalog,
//! refreshed where a decision reads them (the `impl Hub` below).
//!
//! Calls block (a round trip to Redis, bounded by the implementation's timeout): REST calls
//! make them on the blocking pool, and the gateway makes the hook's before it locks the
//! event's room ([`Hub::prepare`], `prefetch.rs`); none is made under the hub's state lock or
//! from the hook.

use serde::{Deserialize, Serialize};

use crate::hub::Hub;
use crate::records::{RoomRecord, TokenRecord};
use crate::store::StoreError;

/// A live stream of a room as the other nodes list it: a `joinRoom` participant or a media
/// plugin publisher of this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedStream {
    /// Its stream id.
    pub stream_id: String,
    /// The participant's `streamName` (empty for a publisher).
    #[serde(default)]
    pub stream_name: String,
    /// The participant's `metaData`.
    #[serde(default)]
    pub meta_data: String,
    /// The participant's `role`.
    #[serde(default)]
    pub role: String,
    /// The media plugin carries its media (Ant's `broadcasting`).
    #[serde(default)]
    pub broadcasting: bool,
}

/// REST rooms and one-time tokens shared by the nodes of a cluster.
pub trait SharedCatalog: Send + Sync + std::fmt::Debug {
    /// Every room.
    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError>;
    /// One room.
    fn room(&self, id: &str) -> Result<Option<RoomRecord>, StoreError>;
    /// Records `room` unless a room with its id exists; whether it was recorded.
    fn create_room(&self, room: &RoomRecord) -> Result<bool, StoreError>;
    /// Records `room`, replacing the one with its id.
    fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError>;
    /// Deletes a room; whether it existed.
    fn delete_room(&self, id: &str) -> Result<bool, StoreError>;
    /// Records a one-time token until its expiry date.
    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// One token, if it exists and has not expired.
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Deletes a token atomically: `true` for exactly one caller across the cluster, the one
    /// that uses it up (written back with [`Self::put_token`] if its request is then refused).
    fn use_token(&self, id: &str) -> Result<bool, StoreError>;
    /// Lists this node's stream `key` (unique on this node) in `room` for the other nodes, or
    /// updates it. Never waits: written behind, in order, and listed only while this node is
    /// alive (its entries go with its heartbeat).
    fn publish_stream(&self, room: &str, key: &str, stream: &SharedStream);
    /// This node's stream `key` in `room` ended.
    fn unpublish_stream(&self, room: &str, key: &str);
    /// The live streams other (living) nodes list in `room`, in the order they were listed.
    fn remote_streams(&self, room: &str) -> Result<Vec<SharedStream>, StoreError>;
}

/// The hub's cache of the cluster's catalog: refreshed where a decision reads it.
impl Hub {
    /// With a cluster catalog: reads room `id` from it into the cache (before any lock is
    /// taken), so this node holds the dates and owner another node's REST call set. If the
    /// catalog cannot be read the cached copy stays.
    pub(crate) fn refresh_room(&self, id: &str) {
        let Some(shared) = self.shared() else {
            return;
        };
        match shared.room(id) {
            Ok(Some(room)) => {
                self.state().rooms.insert(id.to_owned(), room);
            }
            Ok(None) => {
                self.state().rooms.remove(id);
            }
            Err(e) => tracing::warn!(room = id, error = %e,
                "Cannot read the cluster's conference room; using this node's copy."),
        }
    }

    /// With a cluster catalog: every room into the cache (REST listings).
    pub(crate) fn refresh_rooms(&self) {
        let Some(shared) = self.shared() else {
            return;
        };
        match shared.rooms() {
            Ok(rooms) => {
                self.state().rooms = rooms.into_iter().map(|r| (r.room_id.clone(), r)).collect();
            }
            Err(e) => tracing::warn!(error = %e,
                "Cannot read the cluster's conference rooms; using this node's copy."),
        }
    }

    /// With a cluster catalog: the other nodes' live streams in `room` into the cache (read
    /// before any lock is taken). Unreadable: this node's own only.
    pub(crate) fn refresh_remote_streams(&self, room: &str) {
        let Some(shared) = self.shared() else {
            return;
        };
        let streams = shared.remote_streams(room).unwrap_or_else(|e| {
            tracing::warn!(room, error = %e, "Cannot read the other nodes' streams; listing this node's only.");
            Vec::new()
        });
        let mut state = self.state();
        if streams.is_empty() {
            state.remote.remove(room);
        } else {
            state.remote.insert(room.to_owned(), streams);
        }
    }
}
