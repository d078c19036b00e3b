//! Room homing (`[cluster]` with the `sfu` plugin): each conference room's media is served by
//! one node, its home, so every participant's media meets in one SFU whichever node its
//! signaling reaches (LiveKit's room affinity).
//!
//! - The claim: `{prefix}:media-home:{room}` holds the home's instance id with a TTL of
//!   `node_ttl_ms`. The first node to need the room sets it (one Lua script: `SET` unless a
//!   living node holds it, so a dead home's claim is taken over at once rather than after its
//!   TTL); the home refreshes it on every heartbeat for the rooms its SFU serves.
//! - When: a `publish` or `play` is decided under the gateway's lock of its room, so its claim
//!   is made before, with no lock held (the dispatcher's prefetch, `gateway/prefetch.rs`, on
//!   the blocking pool): [`MediaHoming::prepare`] reads (or claims) the home of the room the
//!   plugin names for the request, the hook takes that answer ([`Homing::home`], no Redis
//!   call), and [`MediaHoming::settle`] gives back a claim the decision did not use (the
//!   request was refused first), unless this node's SFU serves the room or another request
//!   of this node is about to use it. A frozen Redis delays that request alone.
//! - Requests: a node that is not the home forwards its sessions' media requests as `media`
//!   frames (in order with everything else it sends that node); the home serves them for a
//!   stand-in session id (above [`STAND_IN_BASE`], never a local session's) and its answers
//!   to the stand-in go back as `deliver` frames to the real session.
//! - Death: a node found dead ends the streams it served for this node's sessions
//!   (`publish_finished`/`play_finished`; the SDK retries, and the retry claims the room
//!   anew) and the stand-ins of its sessions here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use redis::aio::MultiplexedConnection;
use switchboard_plugin_api::{Deliver, Outbox, SessionId};
use switchboard_protocol::cluster::RemotePeer;
use switchboard_protocol::{ErrorCode, Event};
use switchboard_sfu::homing::{Home, Homing, MediaRequest, RemoteMedia};
use tokio::sync::mpsc;

use super::catalog::RedisCatalog;
use super::{OutMessage, Outgoing, health};

/// Stand-in session ids start here: local sessions count up from 1 and never get near.
pub const STAND_IN_BASE: u64 = 1 << 62;

/// Claims or refreshes a room's home. KEYS[1]: the home key. ARGV: this node, the TTL in ms,
/// the heartbeat key prefix. Returns the home.
const CLAIM_HOME: &str = r"
local home = redis.call('GET', KEYS[1])
if home == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return home
end
if home and redis.call('EXISTS', ARGV[3] .. home) == 1 then
  return home
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
";

/// Gives a room's claim back: deletes it if this node holds it. KEYS[1]: the home key. ARGV[1]:
/// this node.
const RELEASE_HOME: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Most requests' homes kept between their prefetch and their dispatch: an entry is taken by
/// the dispatch or its settling, so more means requests whose dispatch was dropped (their
/// session closed while Redis answered); they are forgotten.
const MAX_PREFETCHED: usize = 4096;

/// A room's home as read for one request before its room was locked.
#[derive(Debug)]
struct Prefetched {
    room: String,
    home: Home,
}

/// This node's room homing.
pub struct MediaHoming {
    node: Arc<str>,
    outbox: mpsc::Sender<Outgoing>,
    catalog: Arc<RedisCatalog>,
    home_prefix: String,
    alive_prefix: String,
    ttl_ms: u64,
    media: Mutex<Option<Weak<dyn RemoteMedia>>>,
    stand_ins: Mutex<StandIns>,
    /// Homes read for local sessions' media requests, by session, until their dispatch.
    prefetched: Mutex<HashMap<SessionId, Prefetched>>,
    next: AtomicU64,
    /// Itself, for the outboxes it hands out.
    me: Weak<MediaHoming>,
}

/// Stand-in ids of other nodes' sessions, both ways.
#[derive(Default)]
struct StandIns {
    by_remote: HashMap<(Arc<str>, u64), SessionId>,
    by_id: HashMap<SessionId, (Arc<str>, u64)>,
}

impl std::fmt::Debug for MediaHoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaHoming")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl MediaHoming {
    pub(super) fn new(
        node: Arc<str>,
        prefix: &str,
        ttl_ms: u64,
        outbox: mpsc::Sender<Outgoing>,
        catalog: Arc<RedisCatalog>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            node,
            outbox,
            catalog,
            home_prefix: format!("{prefix}:media-home:"),
            alive_prefix: format!("{prefix}:alive:"),
            ttl_ms,
            media: Mutex::new(None),
            stand_ins: Mutex::default(),
            prefetched: Mutex::default(),
            next: AtomicU64::new(STAND_IN_BASE),
        })
    }

    fn stand_ins(&self) -> MutexGuard<'_, StandIns> {
        self.stand_ins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn media(&self) -> Option<Arc<dyn RemoteMedia>> {
        self.media
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade)
    }

    fn send(&self, node: &Arc<str>, msg: OutMessage) {
        let frame = Outgoing::Frame {
            node: Arc::clone(node),
            msg,
        };
        if self.outbox.try_send(frame).is_err() {
            health::frame_dropped();
        }
    }

    /// A `media` frame from `node`: served by this node's SFU for the stand-in of `from`.
    pub fn receive(
        &self,
        node: &Arc<str>,
        from: RemotePeer,
        app: String,
        room: String,
        event: Event,
    ) {
        let Some(media) = self.media() else {
            let error = Event::error(
                ErrorCode::Unsupported,
                event.room(),
                "the room's media home runs no media plugin",
            );
            self.send(node, OutMessage::Deliver(from.session, Box::new(error)));
            return;
        };
        let session = {
            let mut stand_ins = self.stand_ins();
            let remote = (Arc::clone(node), from.session);
            match stand_ins.by_remote.get(&remote) {
                Some(id) => *id,
                None => {
                    let id = SessionId(self.next.fetch_add(1, Ordering::Relaxed));
                    stand_ins.by_remote.insert(remote.clone(), id);
                    stand_ins.by_id.insert(id, remote);
                    id
                }
            }
        };
        media.on_remote(MediaRequest {
            session,
            dialect: from.dialect,
            app,
            room,
            event,
        });
    }

    /// A `media_closed` frame: the stand-in's streams end here.
    pub fn remote_closed(&self, node: &Arc<str>, session: u64) {
        let id = {
            let mut stand_ins = self.stand_ins();
            let id = stand_ins.by_remote.remove(&(Arc::clone(node), session));
            if let Some(id) = id {
                stand_ins.by_id.remove(&id);
            }
            id
        };
        if let (Some(id), Some(media)) = (id, self.media()) {
            media.on_remote_closed(id);
        }
    }

    /// `node` is dead: the streams it served for this node's sessions end, and so do the
    /// stand-ins of its sessions here.
    pub fn node_dead(&self, node: &str) {
        let gone: Vec<SessionId> = {
            let mut stand_ins = self.stand_ins();
            let gone: Vec<SessionId> = stand_ins
                .by_id
                .iter()
                .filter(|(_, (n, _))| &**n == node)
                .map(|(id, _)| *id)
                .collect();
            for id in &gone {
                if let Some(remote) = stand_ins.by_id.remove(id) {
                    stand_ins.by_remote.remove(&remote);
                }
            }
            gone
        };
        let Some(media) = self.media() else {
            return;
        };
        media.home_lost(node);
        for id in gone {
            media.on_remote_closed(id);
        }
    }

    /// The calls across nodes were ended (this node was taken for dead, or Redis stayed away
    /// past the replay window, and the frames held for other nodes were dropped): the media
    /// that spans nodes ends too, on both sides, as when those nodes die.
    pub fn end_all(&self) {
        for node in self.nodes() {
            self.node_dead(&node);
        }
    }

    /// The other nodes this node's media depends on (homes of its sessions' streams, owners
    /// of its stand-ins): the heartbeat checks them even once another node reaped them.
    pub fn nodes(&self) -> Vec<Arc<str>> {
        let mut nodes = self.media().map(|m| m.homes()).unwrap_or_default();
        nodes.extend(
            self.stand_ins()
                .by_remote
                .keys()
                .map(|(n, _)| Arc::clone(n)),
        );
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// On every heartbeat: refreshes the claims of the rooms this node's SFU serves.
    pub async fn refresh(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let rooms = self.media().map(|m| m.rooms()).unwrap_or_default();
        if rooms.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for room in &rooms {
            self.claim_cmd(&mut pipe, room);
        }
        let homes: Vec<String> = pipe.query_async(conn).await?;
        for (room, home) in rooms.iter().zip(homes) {
            if *home != *self.node {
                // Another node took the room while this one was taken for dead: the streams
                // here go on until they end; new ones go to the new home.
                tracing::warn!(room = %room, home = %home, "Cluster: another node homes a room this node serves.");
            }
        }
        Ok(())
    }

    fn claim_cmd(&self, pipe: &mut redis::Pipeline, room: &str) {
        pipe.cmd("EVAL")
            .arg(CLAIM_HOME)
            .arg(1)
            .arg(format!("{}{room}", self.home_prefix))
            .arg(&*self.node)
            .arg(self.ttl_ms)
            .arg(&self.alive_prefix);
    }

    fn prefetched(&self) -> MutexGuard<'_, HashMap<SessionId, Prefetched>> {
        self.prefetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The room whose home `session`'s `event` is decided with, if it is a media request
    /// (from the plugin's memory; never waits).
    pub fn media_room_of(&self, session: SessionId, event: &Event) -> Option<String> {
        self.media()?.media_room_of(session, event)
    }

    /// Reads (or claims) `room`'s home for `session`'s coming dispatch. Blocks for a round
    /// trip to Redis (bounded by the command timeout): call it off the runtime's workers, with
    /// no room locked. When Redis cannot answer, the room is served here (the cluster is
    /// degraded; a room whose participants are all on this node still works).
    pub fn prepare(&self, session: SessionId, room: String) {
        let claimed = self.catalog.query(|c| {
            let mut pipe = redis::pipe();
            self.claim_cmd(&mut pipe, &room);
            let (home,): (String,) = pipe.query(c)?;
            Ok(home)
        });
        let home = match claimed {
            Ok(home) if *home == *self.node => Home::Here,
            Ok(home) => Home::Node(Arc::from(home)),
            Err(e) => {
                tracing::warn!(room, error = %e, "Cluster: cannot read a room's media home; serving it here.");
                Home::Here
            }
        };
        let mut prefetched = self.prefetched();
        if prefetched.len() >= MAX_PREFETCHED {
            prefetched.clear();
        }
        prefetched.insert(session, Prefetched { room, home });
    }

    /// Whether `session`'s dispatch left a home it read unused ([`Self::settle`] has work).
    pub fn has_unused(&self, session: SessionId) -> bool {
        self.prefetched().contains_key(&session)
    }

    /// After `session`'s dispatch: a claim it made and did not use is given back, unless this
    /// node's SFU serves the room (it holds the claim anyway) or another request of this node
    /// read the same room and waits for its dispatch. Blocks for a round trip to Redis.
    pub fn settle(&self, session: SessionId) {
        let room = {
            let mut prefetched = self.prefetched();
            let Some(unused) = prefetched.remove(&session) else {
                return;
            };
            let pending = prefetched
                .values()
                .any(|p| p.room == unused.room && p.home == Home::Here);
            if unused.home != Home::Here || pending {
                return;
            }
            unused.room
        };
        if self.media().is_some_and(|m| m.rooms().contains(&room)) {
            return;
        }
        let released = self.catalog.query(|c| {
            redis::cmd("EVAL")
                .arg(RELEASE_HOME)
                .arg(1)
                .arg(format!("{}{room}", self.home_prefix))
                .arg(&*self.node)
                .query::<i64>(c)
        });
        if let Err(e) = released {
            // It lapses after `node_ttl_ms` (no heartbeat refreshes a room nobody serves).
            tracing::warn!(room, error = %e, "Cluster: cannot give back an unused media home.");
        }
    }

    /// The stand-in `to`'s real session, if `to` is one.
    fn remote_of(&self, to: SessionId) -> Option<(Arc<str>, u64)> {
        if to.0 < STAND_IN_BASE {
            return None;
        }
        self.stand_ins().by_id.get(&to).cloned()
    }
}

impl Homing for MediaHoming {
    fn home(&self, session: SessionId, room: &str) -> Home {
        let mut prefetched = self.prefetched();
        if prefetched.get(&session).is_some_and(|p| p.room == room)
            && let Some(read) = prefetched.remove(&session)
        {
            return read.home;
        }
        drop(prefetched);
        // Nothing read for this request and room: no Redis call under the room's lock. Served
        // here; the heartbeat claims the rooms this node's SFU serves.
        tracing::debug!(
            room,
            "Cluster: no media home read for this request; serving it here."
        );
        Home::Here
    }

    fn forward(&self, node: &Arc<str>, request: MediaRequest) {
        self.send(node, OutMessage::Media(Box::new(request)));
    }

    fn closed(&self, node: &Arc<str>, session: SessionId) {
        self.send(node, OutMessage::MediaClosed(session));
    }

    fn attach(&self, media: Weak<dyn RemoteMedia>, outbox: Outbox) -> Outbox {
        *self.media.lock().unwrap_or_else(PoisonError::into_inner) = Some(media);
        Arc::new(HomingOutbox {
            local: outbox,
            homing: self.me.clone(),
        })
    }
}

/// The SFU's outbox in a cluster: what it tells a stand-in goes to the real session's node.
struct HomingOutbox {
    local: Outbox,
    homing: Weak<MediaHoming>,
}

impl Deliver for HomingOutbox {
    fn deliver(&self, to: SessionId, event: Event) -> bool {
        let Some(homing) = self.homing.upgrade() else {
            return self.local.deliver(to, event);
        };
        match homing.remote_of(to) {
            Some((node, session)) => {
                homing.send(&node, OutMessage::Deliver(session, Box::new(event)));
                true
            }
            None => self.local.deliver(to, event),
        }
    }
}
