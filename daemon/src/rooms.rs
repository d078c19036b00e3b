//! Room membership: who is in which room, shared by every dialect and listener. Plugins read it
//! through [`switchboard_plugin_api::RoomView`]; only the gateway changes it, after the pipeline
//! accepted a join or leave.

use std::collections::HashMap;

use switchboard_plugin_api::{Peer, SessionId};

/// Longest accepted room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = switchboard_protocol::MAX_ID_BYTES;

/// Checks a room name from a URL path or query: non-empty, bounded, no control characters.
/// (Ant Media stream ids are stricter; the Ant codec checks those.)
pub fn check_room_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("room name is empty".into());
    }
    if name.len() > MAX_ROOM_NAME_BYTES {
        return Err(format!(
            "room name is longer than {MAX_ROOM_NAME_BYTES} bytes"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("room name contains control characters".into());
    }
    Ok(())
}

/// All rooms with at least one member.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<String, Vec<Peer>>,
    /// Which members are proxies of peers on other nodes (`[cluster]`; empty otherwise).
    pub proxies: crate::cluster::Proxies,
}

impl Rooms {
    /// Members of `room`, oldest first (empty if it does not exist).
    pub fn members(&self, room: &str) -> &[Peer] {
        self.rooms.get(room).map_or(&[], Vec::as_slice)
    }

    /// Adds `peer` to `room` unless it is already there. Returns whether it was added.
    pub fn join(&mut self, room: &str, peer: Peer) -> bool {
        let members = self.rooms.entry(room.to_owned()).or_default();
        if members.iter().any(|p| p.session == peer.session) {
            return false;
        }
        members.push(peer);
        true
    }

    /// Removes `session` from `room`, dropping the room when it empties. Returns whether it was
    /// a member.
    pub fn leave(&mut self, room: &str, session: SessionId) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        let before = members.len();
        members.retain(|p| p.session != session);
        let removed = members.len() != before;
        if members.is_empty() {
            self.rooms.remove(room);
        }
        removed
    }

    /// Every room with its members, sorted by room name (for the admin API).
    pub fn snapshot(&self) -> Vec<(String, Vec<Peer>)> {
        let mut rooms: Vec<_> = self
            .rooms
            .iter()
            .map(|(room, members)| (room.clone(), members.clone()))
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        rooms
    }

    /// Number of rooms with members.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room has members.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}
