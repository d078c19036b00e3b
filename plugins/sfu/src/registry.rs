//! Which streams the plugin serves, and its limits. The hook consults it (is this description
//! mine? may this publish start?) and the task removes what ends on its own (ICE failure).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchboard_conference::Hub;

use switchboard_plugin_api::event::ErrorCode;
use switchboard_plugin_api::event::conference::MediaDirection;
use switchboard_plugin_api::{Refusal, SessionId};

use crate::SfuSettings;

/// One signaling stream: a session's publish or play stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The session that owns it.
    pub session: SessionId,
    /// The stream id its signaling uses.
    pub stream_id: String,
}

impl StreamKey {
    /// The key of `stream_id` on `session`.
    pub fn new(session: SessionId, stream_id: &str) -> Self {
        Self {
            session,
            stream_id: stream_id.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    direction: MediaDirection,
    room: String,
}

/// The streams and their rooms.
#[derive(Debug, Default)]
pub struct Registry {
    streams: HashMap<StreamKey, Entry>,
    /// Published stream ids, which are unique across sessions: owner and room.
    published: HashMap<String, (SessionId, String)>,
    /// Where conference queries find the publishers (mirrored on admit and remove).
    hub: Option<Arc<Hub>>,
    /// Per room: (publishers, peer connections).
    rooms: HashMap<String, (usize, usize)>,
    /// Streams that ended, so that the second `stop` the SDK sends for a stream it closes is
    /// swallowed instead of reaching the P2P router (which would answer
    /// `no_peer_associated_before`). Bounded by [`MAX_ENDED`]; forgotten with the session.
    ended: HashSet<StreamKey>,
}

/// Most ended streams remembered (the set is cleared when it would grow beyond).
const MAX_ENDED: usize = 4096;

impl Registry {
    /// A registry that mirrors its publishers into `hub` (the conference plugin's).
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub: Some(hub),
            ..Self::default()
        }
    }

    /// The room stream `id` is published into, if it is published.
    pub fn room_of(&self, id: &str) -> Option<&str> {
        self.published.get(id).map(|(_, room)| room.as_str())
    }

    /// The publisher `key` is up (ICE and DTLS connected).
    pub fn started(&self, key: &StreamKey) {
        let publishing = self
            .published
            .get(&key.stream_id)
            .is_some_and(|(owner, _)| *owner == key.session);
        if publishing && let Some(hub) = &self.hub {
            hub.media_started(&key.stream_id);
        }
    }

    /// Whether `key` is one of the plugin's streams.
    pub fn contains(&self, key: &StreamKey) -> bool {
        self.streams.contains_key(key)
    }

    /// Whether `key` is one of the plugin's play streams.
    pub fn is_player(&self, key: &StreamKey) -> bool {
        self.streams
            .get(key)
            .is_some_and(|e| e.direction == MediaDirection::Play)
    }

    /// Records a new stream if the limits allow it.
    pub fn admit(
        &mut self,
        settings: &SfuSettings,
        key: StreamKey,
        direction: MediaDirection,
        room: &str,
    ) -> Result<(), Refusal> {
        let id = &key.stream_id;
        if self.streams.contains_key(&key) {
            let what = match direction {
                MediaDirection::Publish => "publishing",
                MediaDirection::Play => "playing",
            };
            return Err(Refusal::new(
                ErrorCode::StreamIdInUse,
                format!("this connection is already {what} `{id}`; stop it first"),
            ));
        }
        if direction == MediaDirection::Publish && self.published.contains_key(id) {
            return Err(Refusal::new(
                ErrorCode::StreamIdInUse,
                format!("stream `{id}` is already being published"),
            ));
        }
        if self.streams.len() >= settings.max_peer_connections {
            return Err(Refusal::new(
                ErrorCode::MediaCapacity,
                format!(
                    "the media plugin already has {} peer connections (max_peer_connections)",
                    self.streams.len()
                ),
            ));
        }
        let (publishers, _) = self.rooms.get(room).copied().unwrap_or_default();
        if !self.rooms.contains_key(room) && self.rooms.len() >= settings.max_rooms {
            return Err(Refusal::new(
                ErrorCode::MediaCapacity,
                format!(
                    "the media plugin already serves {} rooms (max_rooms)",
                    self.rooms.len()
                ),
            ));
        }
        if direction == MediaDirection::Publish && publishers >= settings.max_publishers_per_room {
            return Err(Refusal::new(
                ErrorCode::RoomPublishersFull,
                format!(
                    "room `{room}` already has {publishers} publishers (max_publishers_per_room)"
                ),
            ));
        }
        self.ended.remove(&key);
        let counts = self.rooms.entry(room.to_owned()).or_default();
        counts.1 += 1;
        if direction == MediaDirection::Publish {
            counts.0 += 1;
            self.published
                .insert(id.clone(), (key.session, room.to_owned()));
            if let Some(hub) = &self.hub {
                hub.media_published(id, room, key.session);
            }
        }
        self.streams.insert(
            key,
            Entry {
                direction,
                room: room.to_owned(),
            },
        );
        Ok(())
    }

    /// The rooms with streams now.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }

    /// Whether `key` ended recently (see `ended`).
    pub fn ended(&self, key: &StreamKey) -> bool {
        self.ended.contains(key)
    }

    /// Forgets `key`; returns what it was.
    pub fn remove(&mut self, key: &StreamKey) -> Option<MediaDirection> {
        let entry = self.streams.remove(key)?;
        if self.ended.len() >= MAX_ENDED {
            self.ended.clear();
        }
        self.ended.insert(key.clone());
        if entry.direction == MediaDirection::Publish {
            self.published.remove(&key.stream_id);
            if let Some(hub) = &self.hub {
                hub.media_ended(&key.stream_id);
            }
        }
        if let Some(counts) = self.rooms.get_mut(&entry.room) {
            counts.1 = counts.1.saturating_sub(1);
            if entry.direction == MediaDirection::Publish {
                counts.0 = counts.0.saturating_sub(1);
            }
            if counts.1 == 0 {
                self.rooms.remove(&entry.room);
            }
        }
        Some(entry.direction)
    }

    /// Forgets `session`'s streams in `room` (publishers into it, players of it or of a stream
    /// published into it); returns their keys.
    pub fn remove_in_room(&mut self, session: SessionId, room: &str) -> Vec<StreamKey> {
        let keys: Vec<_> = self
            .streams
            .iter()
            .filter(|(k, e)| k.session == session && e.room == room)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &keys {
            self.remove(key);
        }
        keys
    }

    /// Forgets every stream of `session`; returns their keys.
    pub fn remove_session(&mut self, session: SessionId) -> Vec<StreamKey> {
        let keys: Vec<_> = self
            .streams
            .keys()
            .filter(|k| k.session == session)
            .cloned()
            .collect();
        for key in &keys {
            self.remove(key);
        }
        self.ended.retain(|k| k.session != session);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: u64, id: &str) -> StreamKey {
        StreamKey::new(SessionId(s), id)
    }

    #[test]
    fn limits_are_enforced_and_released() {
        let settings = SfuSettings {
            max_publishers_per_room: 2,
            max_rooms: 1,
            ..SfuSettings::default()
        };
        let mut r = Registry::default();
        let publish = MediaDirection::Publish;
        assert!(r.admit(&settings, key(1, "a"), publish, "room").is_ok());
        assert!(r.admit(&settings, key(2, "b"), publish, "room").is_ok());
        let full = r.admit(&settings, key(3, "c"), publish, "room");
        assert_eq!(full.map_err(|e| e.code), Err(ErrorCode::RoomPublishersFull));
        let taken = r.admit(&settings, key(3, "a"), publish, "room");
        assert_eq!(taken.map_err(|e| e.code), Err(ErrorCode::StreamIdInUse));
        let rooms = r.admit(&settings, key(3, "x"), MediaDirection::Play, "other");
        assert_eq!(rooms.map_err(|e| e.code), Err(ErrorCode::MediaCapacity));
        assert!(
            r.admit(&settings, key(3, "room"), MediaDirection::Play, "room")
                .is_ok()
        );
        assert_eq!(r.remove_session(SessionId(1)).len(), 1);
        assert!(r.admit(&settings, key(4, "d"), publish, "room").is_ok());
        for s in 1..=4 {
            r.remove_session(SessionId(s));
        }
        assert!(
            r.admit(&settings, key(5, "x"), MediaDirection::Play, "other")
                .is_ok()
        );
    }
}
