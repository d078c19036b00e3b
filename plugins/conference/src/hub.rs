//! The conference state shared by the plugin hook and the daemon's REST API: the room catalog,
//! one-time tokens, the live participants' stream records, and the store behind the first two.
//!
//! Locking: the hook runs under the gateway's room lock and takes [`Hub`]'s state lock briefly;
//! REST calls take the state lock briefly too, never the room lock, and wait for the disk
//! outside both (they serialize among themselves on a separate lock), so neither side ever
//! waits for I/O while holding a lock the other needs. With a cluster catalog, the hook's reads
//! of Redis are made before the room is locked ([`Hub::prepare`], `prefetch.rs`), never under
//! either lock.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use switchboard_plugin_api::SessionId;

use std::sync::Arc;

use crate::records::{DEFAULT_ROOM_DURATION_SECS, NewRoom, RoomRecord, TokenRecord, TokenType};
use crate::security::{AppSecurityConfig, Apps, Resolved, sign_jwt};
use crate::shared::{SharedCatalog, SharedStream};
use crate::store::{StoreError, Write, Writer};

/// Longest room or stream id the REST API accepts, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Largest page `.../conference-rooms/list/{offset}/{size}` returns (Ant caps lists at 50).
pub const MAX_LIST_SIZE: usize = 50;

/// How the hub is set up.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// The redb file; `None` keeps rooms and tokens in memory only.
    pub store: Option<PathBuf>,
    /// Stream security per application (`[[antmedia_app]]`).
    pub apps: Vec<AppSecurityConfig>,
    /// The cluster's catalog (`[cluster]`): rooms and tokens live there instead of `store`.
    pub shared: Option<Arc<dyn SharedCatalog>>,
}

/// A REST call that failed; Ant answers these as `{"success":false,"message":...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// No such room.
    #[error("{0}")]
    NotFound(String),
    /// The room already exists.
    #[error("{0}")]
    Exists(String),
    /// The store could not be written (or could not be opened at start).
    #[error("data_store_not_available: {0}")]
    Store(String),
}

/// A conference participant's stream, as its room information shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Participant {
    pub stream_id: String,
    pub stream_name: String,
    pub meta_data: String,
    pub role: String,
    /// The application whose checks admitted it (`""`: the default application); a room
    /// nobody created through REST is held to its members' application (see
    /// [`Hub::room_owner`]).
    pub app: String,
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// REST-created rooms by id.
    pub rooms: BTreeMap<String, RoomRecord>,
    /// One-time tokens by token id.
    pub tokens: HashMap<String, TokenRecord>,
    /// Live participants by (room, session).
    pub participants: HashMap<(String, SessionId), Participant>,
    /// Live participant streams: stream id → (room, session).
    pub streams: HashMap<String, (String, SessionId)>,
    /// Streams the media plugin (`sfu`) publishes now, by stream id: conference queries list
    /// them with the room's participants, as Ant lists every publisher of a room.
    pub media: HashMap<String, MediaStream>,
    /// Order of `media` entries (a publish counter), so lists come in publish order.
    media_seq: u64,
    /// The cluster's catalog, told of every participant and publisher of this node.
    shared: Option<Arc<dyn SharedCatalog>>,
    /// Other nodes' live streams by room, as last read (for the room of the event at hand).
    pub remote: HashMap<String, Vec<SharedStream>>,
    /// One-time tokens read from the cluster's catalog for a dispatch, by (session, token id)
    /// (`prefetch.rs`).
    pub(crate) claims: HashMap<(SessionId, String), crate::prefetch::Claimed>,
}

/// A stream the media plugin publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaStream {
    /// The room it publishes into (its own id for a stream without a room).
    pub room: String,
    /// The publishing session.
    pub session: SessionId,
    /// ICE and DTLS are up (Ant's `broadcasting`; before that `created`).
    pub broadcasting: bool,
    /// The application whose checks admitted the publish (`""`: the default application):
    /// the stream is held to them whichever application's URL plays it.
    pub app: Option<String>,
    seq: u64,
}

impl State {
    /// Adds a participant.
    pub fn join(&mut self, room: &str, session: SessionId, p: Participant) {
        self.streams
            .insert(p.stream_id.clone(), (room.to_owned(), session));
        self.participants.insert((room.to_owned(), session), p);
        self.relist(room, session);
    }

    /// With a cluster catalog: lists participant `session` of `room` as it is now for the
    /// other nodes.
    pub fn relist(&self, room: &str, session: SessionId) {
        let (Some(shared), Some(p)) = (&self.shared, self.participant(room, session)) else {
            return;
        };
        let stream = SharedStream {
            stream_id: p.stream_id.clone(),
            stream_name: p.stream_name.clone(),
            meta_data: p.meta_data.clone(),
            role: p.role.clone(),
            broadcasting: false,
        };
        shared.publish_stream(room, &participant_key(session), &stream);
    }

    /// Removes a participant; returns its record.
    pub fn leave(&mut self, room: &str, session: SessionId) -> Option<Participant> {
        let p = self.participants.remove(&(room.to_owned(), session))?;
        self.streams.remove(&p.stream_id);
        if let Some(shared) = &self.shared {
            shared.unpublish_stream(room, &participant_key(session));
        }
        Some(p)
    }

    /// Other nodes' live streams in `room` (empty without a cluster catalog).
    pub fn remote_in(&self, room: &str) -> &[SharedStream] {
        self.remote.get(room).map_or(&[], Vec::as_slice)
    }

    pub fn participant(&self, room: &str, session: SessionId) -> Option<&Participant> {
        self.participants.get(&(room.to_owned(), session))
    }

    /// The media plugin's publishers into `room`, in publish order.
    pub fn media_in(&self, room: &str) -> Vec<(&str, &MediaStream)> {
        let mut list: Vec<_> = self
            .media
            .iter()
            .filter(|(_, m)| m.room == room)
            .map(|(id, m)| (id.as_str(), m))
            .collect();
        list.sort_unstable_by_key(|(_, m)| m.seq);
        list
    }
}

#[derive(Debug)]
enum Store {
    /// No store configured.
    Memory,
    /// The writer, until [`Hub::close`].
    Open(Mutex<Option<Writer>>),
    /// The store could not be opened; REST writes fail with this reason.
    Failed(String),
    /// The cluster's catalog: the state's rooms and tokens are a cache of it, refreshed where
    /// a decision reads them.
    Shared(Arc<dyn SharedCatalog>),
}

/// The shared conference state. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    apps: Apps,
    store: Store,
    /// Serializes REST mutations (check, write to disk, apply) without holding `state`.
    rest: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single map operation, so a panic elsewhere cannot
    // leave them half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub with its store opened from `options` at time `now`. A store that cannot be opened
    /// (another gateway has it, the disk is read-only, ...) is logged; the gateway then runs
    /// with an empty catalog and REST writes answer `data_store_not_available`.
    pub fn open(options: HubOptions, now: i64) -> Self {
        let mut state = State::default();
        let store = match (&options.shared, &options.store) {
            (Some(shared), store) => {
                if let Some(path) = store {
                    tracing::info!(path = %path.display(),
                        "Conference rooms and tokens live in the cluster's Redis; [store] is not used for them.");
                }
                Store::Shared(Arc::clone(shared))
            }
            (None, None) => Store::Memory,
            (None, Some(path)) => match Writer::open(path, now) {
                Ok((writer, loaded)) => {
                    tracing::info!(
                        path = %path.display(),
                        rooms = loaded.rooms.len(),
                        tokens = loaded.tokens.len(),
                        "Conference store opened."
                    );
                    state.rooms = loaded
                        .rooms
                        .into_iter()
                        .map(|r| (r.room_id.clone(), r))
                        .collect();
                    state.tokens = loaded
                        .tokens
                        .into_iter()
                        .map(|t| (t.token_id.clone(), t))
                        .collect();
                    Store::Open(Mutex::new(Some(writer)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "Cannot open the conference store; rooms and tokens cannot be saved.");
                    Store::Failed(e.0)
                }
            },
        };
        state.shared = options.shared.clone();
        Self {
            state: Mutex::new(state),
            apps: Apps::new(options.apps),
            store,
            rest: Mutex::new(()),
        }
    }

    /// A hub without a store or security settings (config validation, tests).
    pub fn in_memory() -> Self {
        Self::open(HubOptions::default(), 0)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The security settings listed under exactly `name`, if any.
    pub fn app(&self, name: &str) -> Option<&AppSecurityConfig> {
        self.apps.get(name).map(|a| &a.config)
    }

    /// Every application's security, and which applies to a request.
    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    /// The cluster's catalog, if rooms and tokens live there (the cache's refreshes are in
    /// `shared.rs`).
    pub(crate) fn shared(&self) -> Option<&Arc<dyn SharedCatalog>> {
        match &self.store {
            Store::Shared(shared) => Some(shared),
            _ => None,
        }
    }

    /// Deletes a used-up one-time token from the store without waiting (hook side).
    pub(crate) fn forget_token(&self, id: String) {
        if let Store::Open(writer) = &self.store
            && let Some(writer) = lock(writer).as_ref()
        {
            writer.handle().write_behind(Write::DeleteToken(id));
        }
    }

    // === media plugin ===

    /// The room a `joinRoom` participant joined with `stream_id`, when `session` is that
    /// participant: a publish without a main track of a participant's own stream goes into
    /// that room (Ant's legacy conference flow, `antmedia.md` §5).
    pub fn participant_room(&self, stream_id: &str, session: SessionId) -> Option<String> {
        let state = self.state();
        let (room, owner) = state.streams.get(stream_id)?;
        (*owner == session).then(|| room.clone())
    }

    /// The media plugin admitted a publisher of `stream_id` into `room`.
    pub fn media_published(&self, stream_id: &str, room: &str, session: SessionId) {
        let mut state = self.state();
        state.media_seq += 1;
        let seq = state.media_seq;
        let media = MediaStream {
            room: room.to_owned(),
            session,
            broadcasting: false,
            app: None,
            seq,
        };
        if let Some(shared) = &state.shared {
            shared.publish_stream(
                room,
                &media_key(stream_id),
                &media_shared(stream_id, &media),
            );
        }
        state.media.insert(stream_id.to_owned(), media);
    }

    /// The publish of `stream_id` was admitted under application `app`.
    pub fn media_app(&self, stream_id: &str, app: &str) {
        if let Some(m) = self.state().media.get_mut(stream_id) {
            m.app = Some(app.to_owned());
        }
    }

    /// A publisher's media is up.
    pub fn media_started(&self, stream_id: &str) {
        let mut state = self.state();
        let shared = state.shared.clone();
        if let Some(m) = state.media.get_mut(stream_id) {
            m.broadcasting = true;
            if let Some(shared) = shared {
                shared.publish_stream(&m.room, &media_key(stream_id), &media_shared(stream_id, m));
            }
        }
    }

    /// A publisher ended.
    pub fn media_ended(&self, stream_id: &str) {
        let mut state = self.state();
        if let Some(m) = state.media.remove(stream_id)
            && let Some(shared) = &state.shared
        {
            shared.unpublish_stream(&m.room, &media_key(stream_id));
        }
    }

    /// Commits what is queued and closes the store. Later writes fail. Idempotent.
    pub fn close(&self) {
        if let Store::Open(writer) = &self.store {
            let writer = lock(writer).take();
            if let Some(writer) = writer {
                writer.close();
            }
        }
    }

    fn persist(&self, write: Write) -> Result<(), RestError> {
        match &self.store {
            Store::Memory => Ok(()),
            Store::Failed(reason) => Err(RestError::Store(reason.clone())),
            Store::Shared(shared) => match &write {
                Write::PutRoom(room) => shared.put_room(room),
                Write::DeleteRoom(id) => shared.delete_room(id).map(drop),
                Write::PutToken(token) => shared.put_token(token),
                Write::DeleteToken(id) => shared.use_token(id).map(drop),
            }
            .map_err(|e| RestError::Store(e.0)),
            Store::Open(writer) => {
                // Take a handle out of the lock: the hook takes this lock too, and the wait
                // for the disk below must not hold it.
                let handle = lock(writer).as_ref().map(Writer::handle);
                match handle {
                    Some(h) => h.write_through(write),
                    None => Err(StoreError("the store is closed".into())),
                }
                .map_err(|e| RestError::Store(e.0))
            }
        }
    }

    // === REST ===

    /// The entry whose security covers REST calls through application `app` (`None`: no
    /// application is configured).
    fn entry_of(&self, app: &str) -> Result<Option<String>, RestError> {
        match self.apps.resolve(app) {
            Resolved::Open => Ok(None),
            Resolved::App(entry) => Ok(Some(entry.config.name.clone())),
            Resolved::Refused(reason) => Err(RestError::Invalid(reason.to_owned())),
        }
    }

    /// The application whose checks apply to `id`, a room or a stream, whichever application's
    /// URL or dialect reaches it: the one that created it through the REST API; else the one
    /// its live publisher (of the stream, or into the room) or its live participants were
    /// admitted under. `None`: nobody holds it, the requester's own application applies.
    pub(crate) fn room_owner(state: &State, id: &str) -> Option<String> {
        if let Some(room) = state.rooms.get(id) {
            return room.app.clone();
        }
        let media = state.media.get(id).and_then(|m| m.app.clone());
        media
            .or_else(|| {
                state
                    .media
                    .values()
                    .filter(|m| m.room == id)
                    .find_map(|m| m.app.clone())
            })
            .or_else(|| {
                state
                    .participants
                    .iter()
                    .find(|((room, _), _)| room == id)
                    .map(|(_, p)| p.app.clone())
            })
    }

    /// Whether a REST call through application `app` may see `room`: it was created through
    /// the same entry, or by no entry. Another entry's room is not there for it (404).
    fn owns(&self, app: &str, room: &RoomRecord) -> Result<bool, RestError> {
        Ok(room.app.is_none() || room.app == self.entry_of(app)?)
    }

    /// `POST /{app}/rest/.../conference-rooms`: creates a room owned by the entry that covers
    /// `app`. Dates of 0 mean now and an hour later.
    pub fn create_room(&self, app: &str, new: NewRoom, now: i64) -> Result<RoomRecord, RestError> {
        let owner = self.entry_of(app)?;
        let room_id = match new.room_id.filter(|id| !id.is_empty()) {
            Some(id) => check_id("roomId", &id).map(|()| id)?,
            None => random_id(),
        };
        let start_date = if new.start_date == 0 {
            now
        } else {
            new.start_date
        };
        let end_date = if new.end_date == 0 {
            start_date + DEFAULT_ROOM_DURATION_SECS
        } else {
            new.end_date
        };
        if end_date <= start_date {
            return Err(RestError::Invalid(format!(
                "endDate {end_date} is not after startDate {start_date}"
            )));
        }
        let room = RoomRecord {
            room_id,
            start_date,
            end_date,
            room_stream_list: Vec::new(),
            mode: new.mode.unwrap_or_else(|| "legacy".to_owned()),
            app: owner,
        };
        let exists =
            || RestError::Exists(format!("conference room `{}` already exists", room.room_id));
        let _rest = lock(&self.rest);
        if let Some(shared) = self.shared() {
            // Atomic across the nodes: two nodes creating one id, one wins.
            if !shared
                .create_room(&room)
                .map_err(|e| RestError::Store(e.0))?
            {
                return Err(exists());
            }
        } else if self.state().rooms.contains_key(&room.room_id) {
            return Err(exists());
        } else {
            self.persist(Write::PutRoom(room.clone()))?;
        }
        self.state()
            .rooms
            .insert(room.room_id.clone(), room.clone());
        Ok(room)
    }

    /// `GET .../conference-rooms/{id}`: the room, its stream list completed with the
    /// participants present now.
    pub fn room(&self, app: &str, room_id: &str) -> Option<RoomRecord> {
        self.refresh_room(room_id);
        self.refresh_remote_streams(room_id);
        let state = self.state();
        let mut room = state.rooms.get(room_id)?.clone();
        if !self.owns(app, &room).unwrap_or(false) {
            return None;
        }
        with_live_streams(&state, &mut room);
        Some(room)
    }

    /// `GET .../conference-rooms/list/{offset}/{size}`: rooms in id order.
    pub fn list_rooms(&self, app: &str, offset: usize, size: usize) -> Vec<RoomRecord> {
        self.refresh_rooms();
        let state = self.state();
        state
            .rooms
            .values()
            .filter(|room| self.owns(app, room).unwrap_or(false))
            .skip(offset)
            .take(size.min(MAX_LIST_SIZE))
            .cloned()
            .map(|mut room| {
                with_live_streams(&state, &mut room);
                room
            })
            .collect()
    }

    /// `DELETE .../conference-rooms/{id}`. Participants present stay; the room is then open at
    /// any time, like a room nobody created.
    pub fn delete_room(&self, app: &str, room_id: &str) -> Result<(), RestError> {
        let _rest = lock(&self.rest);
        self.refresh_room(room_id);
        let room = self.state().rooms.get(room_id).cloned();
        if !room.is_some_and(|r| self.owns(app, &r).unwrap_or(false)) {
            return Err(not_found(room_id));
        }
        self.persist(Write::DeleteRoom(room_id.to_owned()))?;
        self.state().rooms.remove(room_id);
        Ok(())
    }

    /// `PUT .../conference-rooms/{id}/add?streamId=`: adds a stream to the room's list.
    pub fn add_stream(&self, app: &str, room_id: &str, stream_id: &str) -> Result<(), RestError> {
        check_id("streamId", stream_id)?;
        let _rest = lock(&self.rest);
        self.refresh_room(room_id);
        let mut room = self
            .state()
            .rooms
            .get(room_id)
            .cloned()
            .filter(|r| self.owns(app, r).unwrap_or(false))
            .ok_or_else(|| not_found(room_id))?;
        if room.room_stream_list.iter().any(|s| s == stream_id) {
            return Ok(());
        }
        room.room_stream_list.push(stream_id.to_owned());
        self.persist(Write::PutRoom(room.clone()))?;
        self.state().rooms.insert(room.room_id.clone(), room);
        Ok(())
    }

    /// `GET /{app}/rest/v2/broadcasts/{id}/token?expireDate=&type=[&roomId=]`: a one-time
    /// token, good only for the checks of the entry that covers `app` ([`Apps::resolve`]).
    pub fn create_token(
        &self,
        app: &str,
        stream_id: &str,
        expire_date: i64,
        kind: TokenType,
        room_id: Option<&str>,
    ) -> Result<TokenRecord, RestError> {
        check_id("streamId", stream_id)?;
        if let Some(room) = room_id {
            check_id("roomId", room)?;
        }
        if expire_date <= 0 {
            return Err(RestError::Invalid(
                "expireDate must be a positive Unix time in seconds".into(),
            ));
        }
        let minted_for = self.entry_of(app)?;
        for id in room_id.into_iter().chain([stream_id]) {
            self.refresh_room(id);
        }
        // A room another entry created (named as the room or as the stream) is that entry's
        // to mint tokens for.
        {
            let state = self.state();
            for id in room_id.into_iter().chain([stream_id]) {
                if let Some(owner) = Self::room_owner(&state, id)
                    && Some(&owner) != minted_for.as_ref()
                {
                    return Err(RestError::Invalid(format!(
                        "conference room `{id}` belongs to another application"
                    )));
                }
            }
        }
        let token = TokenRecord {
            token_id: random_hex(16),
            stream_id: stream_id.to_owned(),
            expire_date,
            kind,
            room_id: room_id.map(str::to_owned),
            app: minted_for,
        };
        let _rest = lock(&self.rest);
        self.persist(Write::PutToken(token.clone()))?;
        self.state()
            .tokens
            .insert(token.token_id.clone(), token.clone());
        Ok(token)
    }

    /// `GET /{app}/rest/v2/broadcasts/{id}/jwt-token?expireDate=&type=`: an HS256 JWT signed
    /// with the `jwt_secret` of the entry that covers `app` (its own, or `*`'s), the key its
    /// checks verify with. Nothing is stored.
    pub fn create_jwt(
        &self,
        app: &str,
        stream_id: &str,
        expire_date: i64,
        kind: TokenType,
    ) -> Result<TokenRecord, RestError> {
        check_id("streamId", stream_id)?;
        if expire_date <= 0 {
            return Err(RestError::Invalid(
                "expireDate must be a positive Unix time in seconds".into(),
            ));
        }
        let entry = match self.apps.resolve(app) {
            Resolved::App(entry) => Some(&entry.config),
            Resolved::Open | Resolved::Refused(_) => None,
        };
        let key = entry.and_then(|a| a.jwt_secret.as_deref()).ok_or_else(|| {
            RestError::Invalid(format!(
                "application `{app}` has no jwt_secret ([[antmedia_app]] in the config)"
            ))
        })?;
        Ok(TokenRecord {
            token_id: sign_jwt(stream_id, kind, expire_date, key),
            stream_id: stream_id.to_owned(),
            expire_date,
            kind,
            room_id: None,
            app: None,
        })
    }
}

/// The catalog key of participant `session` of this node.
fn participant_key(session: SessionId) -> String {
    format!("p{}", session.0)
}

/// The catalog key of this node's publisher of `stream_id`.
fn media_key(stream_id: &str) -> String {
    format!("m{stream_id}")
}

/// A media publisher as the other nodes list it.
fn media_shared(stream_id: &str, m: &MediaStream) -> SharedStream {
    SharedStream {
        stream_id: stream_id.to_owned(),
        stream_name: String::new(),
        meta_data: String::new(),
        role: String::new(),
        broadcasting: m.broadcasting,
    }
}

fn with_live_streams(state: &State, room: &mut RoomRecord) {
    let mut live: Vec<&str> = state
        .participants
        .iter()
        .filter(|((r, _), _)| *r == room.room_id)
        .map(|(_, p)| p.stream_id.as_str())
        .collect();
    live.sort_unstable();
    live.extend(state.media_in(&room.room_id).into_iter().map(|(id, _)| id));
    live.extend(
        state
            .remote_in(&room.room_id)
            .iter()
            .map(|s| s.stream_id.as_str()),
    );
    for id in live {
        if !room.room_stream_list.iter().any(|s| s == id) {
            room.room_stream_list.push(id.to_owned());
        }
    }
}

fn not_found(room_id: &str) -> RestError {
    RestError::NotFound(format!("no conference room `{room_id}`"))
}

/// A room or stream id: `[A-Za-z0-9._-]`, 1 to [`MAX_ID_BYTES`] bytes.
pub fn check_id(field: &str, id: &str) -> Result<(), RestError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(RestError::Invalid(format!(
            "{field} must be 1 to {MAX_ID_BYTES} characters of [A-Za-z0-9._-]"
        )))
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS random source failing is not something to limp on with weak tokens.
        panic!("the operating system's random number generator failed");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A made-up stream or room id, as Ant does when a `joinRoom` gives none.
pub(crate) fn random_id() -> String {
    random_hex(6)
}
