//! Room membership: who is in which room, shared by every dialect and listener. Plugins read it
//! through [`switchboard_plugin_api::RoomView`]; only the dispatcher changes it, after the
//! pipeline accepted a join or leave.
//!
//! Each room has its own lock ([`RoomTable::with`]): the pipeline runs for an event while its
//! room, and nothing else, is locked, so events of different rooms are dispatched in parallel
//! and a slow plugin holds up only its own room. The index from names to rooms is a sharded map
//! (`dashmap`, cache-line-padded shards), locked only to find, add or drop a room, never while a
//! plugin runs: dispatches of two rooms rarely touch one shard, so they share no lock word (a
//! single index lock, even a read lock, was written by every dispatch on every core, and made
//! two threads slower than one).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;

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

/// One room's members, oldest first. Changed only under the room's lock.
#[derive(Debug, Default)]
pub struct Room {
    members: Vec<Peer>,
    /// Set when the room emptied and left the index: whoever finds it afterwards (it looked the
    /// room up just before) looks again, so nobody joins a room that is no longer listed.
    detached: bool,
}

impl Room {
    /// Members, oldest first.
    pub fn members(&self) -> &[Peer] {
        &self.members
    }

    /// Adds `peer` unless it is already a member. Returns whether it was added.
    pub fn join(&mut self, peer: Peer) -> bool {
        if self.members.iter().any(|p| p.session == peer.session) {
            return false;
        }
        self.members.push(peer);
        true
    }

    /// Removes `session`. Returns whether it was a member.
    pub fn leave(&mut self, session: SessionId) -> bool {
        let before = self.members.len();
        self.members.retain(|p| p.session != session);
        self.members.len() != before
    }

    /// Whether `session` is a member.
    pub fn contains(&self, session: SessionId) -> bool {
        self.members.iter().any(|p| p.session == session)
    }
}

/// Every room with at least one member, each behind its own lock.
#[derive(Debug)]
pub struct RoomTable {
    index: DashMap<Arc<str>, Arc<Mutex<Room>>, Hasher>,
    /// Rooms with members (the metric; kept apart so reading it waits for no room's lock).
    occupied: AtomicUsize,
}

/// The index's hasher: foldhash, seeded per process (room names come from peers, so the seed
/// keeps them from choosing colliding names). std's SipHash was a large part of each relayed
/// message's instructions, here and in the session map (BENCHMARKS.md, "The relay cost since
/// 035dd51").
pub(crate) type Hasher = foldhash::fast::RandomState;

/// Shards of the room index: enough that dispatches into different rooms on different cores
/// seldom meet in one.
const INDEX_SHARDS: usize = 256;

impl Default for RoomTable {
    fn default() -> Self {
        Self {
            index: DashMap::with_hasher_and_shard_amount(Hasher::default(), INDEX_SHARDS),
            occupied: AtomicUsize::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a room lock cannot leave it half-updated (each change is one Vec
    // operation, and plugins run under `catch_unwind`), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RoomTable {
    /// Runs `f` with `room` locked (created empty if it does not exist; dropped again if it is
    /// empty afterwards). Only this room is locked while `f` runs. `f` must not lock another
    /// room (two rooms locked in opposite orders would deadlock).
    pub fn with<R>(&self, room: &str, f: impl FnOnce(&mut Room) -> R) -> R {
        let mut cell = self.cell(room);
        let mut state = lock(&cell);
        while state.detached {
            drop(state);
            cell = self.cell(room);
            state = lock(&cell);
        }
        let was_empty = state.members.is_empty();
        let out = f(&mut state);
        match (was_empty, state.members.is_empty()) {
            (true, false) => {
                self.occupied.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                self.occupied.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if state.members.is_empty() {
            // Under the room's lock, so nobody can be joining it: later lookups make a new one.
            state.detached = true;
            self.index.remove_if(room, |_, c| Arc::ptr_eq(c, &cell));
        }
        out
    }

    /// The room's cell, added to the index if it is not there.
    fn cell(&self, room: &str) -> Arc<Mutex<Room>> {
        if let Some(cell) = self.find(room) {
            return cell;
        }
        Arc::clone(&self.index.entry(Arc::from(room)).or_default())
    }

    fn find(&self, room: &str) -> Option<Arc<Mutex<Room>>> {
        self.index.get(room).map(|cell| Arc::clone(&cell))
    }

    /// Members of `room`, oldest first (empty if it does not exist). Waits for the room's lock.
    pub fn members(&self, room: &str) -> Vec<Peer> {
        self.find(room)
            .map(|cell| lock(&cell).members.clone())
            .unwrap_or_default()
    }

    /// Every room with its members, sorted by room name (for the admin API). Each room is read
    /// under its own lock, one at a time.
    pub fn snapshot(&self) -> Vec<(String, Vec<Peer>)> {
        let cells: Vec<(Arc<str>, Arc<Mutex<Room>>)> = self
            .index
            .iter()
            .map(|e| (Arc::clone(e.key()), Arc::clone(e.value())))
            .collect();
        let mut rooms: Vec<_> = cells
            .into_iter()
            .filter_map(|(name, cell)| {
                let members = lock(&cell).members.clone();
                (!members.is_empty()).then(|| (name.to_string(), members))
            })
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        rooms
    }

    /// Names of every room (members or not: one may be mid-dispatch).
    pub fn names(&self) -> Vec<Arc<str>> {
        self.index.iter().map(|e| Arc::clone(e.key())).collect()
    }

    /// Number of rooms with members.
    pub fn len(&self) -> usize {
        self.occupied.load(Ordering::Relaxed)
    }

    /// Whether no room has members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::{DialectKind, JoinMode};

    use super::*;

    fn peer(n: u64) -> Peer {
        Peer {
            session: SessionId(n),
            dialect: DialectKind::Raw,
            mode: JoinMode::Both,
        }
    }

    #[test]
    fn an_emptied_room_leaves_the_index_and_comes_back_new() {
        let table = RoomTable::default();
        assert!(table.with("r", |room| room.join(peer(1))));
        assert_eq!(table.len(), 1);
        let first = table.find("r").expect("listed");
        assert!(table.with("r", |room| room.leave(SessionId(1))));
        assert!(table.is_empty());
        assert!(table.find("r").is_none(), "an empty room is dropped");
        assert!(lock(&first).detached, "who still holds it looks again");
        table.with("r", |room| room.join(peer(2)));
        assert_eq!(table.members("r"), vec![peer(2)]);
        // An event into a room nobody is in leaves nothing behind.
        table.with("ghost", |room| assert!(room.members().is_empty()));
        assert_eq!(table.names(), vec![Arc::<str>::from("r")]);
    }

    #[test]
    fn joins_from_many_threads_into_one_room_are_all_kept() {
        let table = RoomTable::default();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let table = &table;
                s.spawn(move || {
                    for i in 0..200 {
                        let me = peer(t * 1000 + i);
                        table.with("r", |room| room.join(me));
                        // Most leave again, so the room empties and is made anew now and then.
                        if i % 50 != 0 {
                            table.with("r", |room| room.leave(me.session));
                        }
                    }
                });
            }
        });
        assert_eq!(table.members("r").len(), 4 * 4);
        assert_eq!(table.len(), 1);
    }
}
