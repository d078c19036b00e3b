//! Room homing (`[cluster]` with the `sfu` plugin): each conference room's media is served by
//! one node, its home, so every participant's media meets in one SFU whichever node its
//! signaling reaches (LiveKit's room affinity).
//!
//! - The claim: `{prefix}:media-home:{room}` holds the home's instance id with a TTL of
//!   `node_ttl_ms`. The first node to need the room sets it (one Lua script: `SET` unless a
//!   living node holds it, so a dead home's claim is taken over at once rather than after its
//!   TTL); the home refreshes it on every heartbeat for the rooms its SFU serves.
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
            self.send(node, OutMessage::Deliver(from.session, error));
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

    /// The stand-in `to`'s real session, if `to` is one.
    fn remote_of(&self, to: SessionId) -> Option<(Arc<str>, u64)> {
        if to.0 < STAND_IN_BASE {
            return None;
        }
        self.stand_ins().by_id.get(&to).cloned()
    }
}

impl Homing for MediaHoming {
    fn home(&self, room: &str) -> Home {
        let claimed = self.catalog.query(|c| {
            let mut pipe = redis::pipe();
            self.claim_cmd(&mut pipe, room);
            let (home,): (String,) = pipe.query(c)?;
            Ok(home)
        });
        match claimed {
            Ok(home) if *home == *self.node => Home::Here,
            Ok(home) => Home::Node(Arc::from(home)),
            Err(e) => {
                // Redis is away: serve it here (the cluster is degraded; a room whose
                // participants are all on this node still works).
                tracing::warn!(room, error = %e, "Cluster: cannot read a room's media home; serving it here.");
                Home::Here
            }
        }
    }

    fn forward(&self, node: &Arc<str>, request: MediaRequest) {
        self.send(node, OutMessage::Media(request));
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
                homing.send(&node, OutMessage::Deliver(session, event));
                true
            }
            None => self.local.deliver(to, event),
        }
    }
}
