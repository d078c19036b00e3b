//! The catalog a cluster shares: with `[cluster]`, REST rooms and one-time tokens live in the
//! cluster's Redis instead of this node's redb file, so every node sees the same rooms (and
//! holds their dates) and a one-time token is used once across the cluster. The daemon
//! implements it (`daemon/src/cluster/catalog.rs`); this crate only needs these operations.
//!
//! Calls block (a round trip to Redis, bounded by the implementation's timeout): REST calls
//! make them on the blocking pool, the hook under the hub's state lock, as it used to update
//! memory.

use serde::{Deserialize, Serialize};

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
    /// that uses it up.
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
