//! Scale-out: several gateway nodes share rooms through one Redis server (`[cluster]`).
//!
//! - Membership ([`store`]): each room is a Redis list of admitted member records. A join takes
//!   the room's lock and reads the list in one Lua script, runs the pipeline with those members,
//!   then commits (records the member if admitted, releases the lock): joins into one room run
//!   one at a time across the nodes, so capacity holds.
//! - Proxies ([`proxies`]): remote members appear in this node's room table as ordinary peers,
//!   so the plugins route to them unchanged; a delivery to a proxy becomes a frame for the
//!   owning node.
//! - Bus ([`publisher`], [`link`]): one ordered publishing queue per node (drained by one task
//!   on one connection, in order, pipelined) and one subscription channel per node. Redis
//!   delivers the messages of one connection to a channel in order, at most once, so what one
//!   peer sends another arrives in order and never twice.
//! - Failure detection ([`link`]): a heartbeat key with a TTL per node; every heartbeat the
//!   survivors look for expired keys, reap the dead node's records and make its proxies leave
//!   their rooms through the pipeline, so partners get the leave signal of their dialect. The
//!   same tick drops proxies whose records are gone (a lost `left` frame).
//! - Redis loss ([`health`], [`recovery`], [`publisher`]): local rooms keep working; `/healthz` and
//!   `switchboard_cluster_redis_up` say degraded; frames for other nodes are held and replayed in
//!   order (numbered, so a frame sent twice is dropped by its receiver); when Redis returns, even
//!   empty (its epoch key changed), the node re-asserts its heartbeat, members and subscription
//!   and keeps its proxies. Past `replay_window_ms` the calls across nodes end explicitly.

pub mod catalog;
pub mod config;
pub mod connect;
pub mod direct;
pub mod forwarded;
pub mod health;
pub mod homing;
pub mod link;
pub mod proxies;
pub mod publisher;
pub mod pubsub;
pub mod recovery;
pub mod replay;
pub mod resp;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use switchboard_plugin_api::{Peer, SessionId};
use switchboard_protocol::Event;
use switchboard_protocol::cluster::RemotePeer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::ClusterConfig;
pub use forwarded::{RemoteForward, RemoteForwards};

use crate::envelope::Envelope;
pub use proxies::{Proxies, RemoteRef};

/// What the publisher sends, in queue order.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame for another node.
    Frame {
        /// The receiving node.
        node: Arc<str>,
        /// What it is told.
        msg: OutMessage,
    },
    /// End a claim (record the member if accepted, release the room's lock). Boxed, as are
    /// the rare large messages of [`OutMessage`]: every item of the outbox, the publisher's
    /// queue and its replay window is as large as the largest variant, and each is moved
    /// several times on its way (BENCHMARKS.md, "Forward bodies written from where they are
    /// kept").
    Commit(Box<store::Commit>),
    /// Remove a local member's record from a room.
    Unclaim {
        /// The room.
        room: String,
        /// The local session.
        session: SessionId,
    },
    /// Drop every frame queued before this marker: the calls they belong to were ended (the
    /// outage outlasted the replay window, or this node was taken for dead). In the queue, so
    /// what is queued after it (the leaves of the ended calls) still goes.
    Discard,
    /// Drop the frames held for this node: it was found dead, its peers left their rooms.
    Forget(Arc<str>),
    /// `node` has every frame up to `got` this node sent it; with `resend` it asks for the
    /// later ones again ([`replay`]).
    Acked {
        /// The receiving node that says so.
        node: Arc<str>,
        /// The highest frame number it has handed on.
        got: u64,
        /// Publish every later frame again.
        resend: bool,
    },
}

/// A frame before serialization (done by the publisher, off the sender's task).
#[derive(Debug, Clone)]
pub enum OutMessage {
    /// A local member joined `room` (boxed: rare, and larger than the other variants).
    Joined(Box<(String, Peer)>),
    /// A local member left `room`.
    Left(String, SessionId),
    /// A peer's own event for the remote session `to`, which speaks another dialect: the event
    /// crosses, the receiver renders it.
    Relay(u64, Arc<Envelope>),
    /// A peer's signal for a remote session of its dialect, its body rendered on the sender's
    /// task ([`publisher::forward`]); the envelope is freed where it was made.
    Forward(publisher::ForwardBody),
    /// A composed event for the remote session `to` (boxed: an `Event` is several times
    /// the size of the other variants).
    Deliver(u64, Box<Event>),
    /// A local session's media request for the room's home node ([`homing`]).
    Media(Box<switchboard_sfu::homing::MediaRequest>),
    /// A local session that made media requests of the receiver closed.
    MediaClosed(SessionId),
    /// Not numbered: this node has the receiver's frames up to this number; with `true`,
    /// it asks for the later ones again ([`replay`]).
    Ack(u64, bool),
    /// Not numbered: the receiver's frames before this number that it lacks are gone.
    Reset(u64),
}

impl OutMessage {
    /// Acknowledgements and resets: never numbered, never kept for replay.
    pub fn is_control(&self) -> bool {
        matches!(self, Self::Ack(..) | Self::Reset(_))
    }
}

/// A claimed place in a room: the room's lock is held until the claim is committed.
#[derive(Debug)]
pub struct Claim {
    /// The members Redis lists (every member admitted before the joiner).
    pub before: Vec<(Arc<str>, RemotePeer)>,
    /// The joiner, with its join mode.
    pub peer: Peer,
    /// The lock token.
    pub token: String,
}

/// Why a claim failed.
#[derive(Debug)]
pub enum ClaimFailed {
    /// Redis is unreachable: the join goes ahead with what this node knows.
    Unreachable,
    /// Another join held the room's lock for longer than its TTL allows.
    Busy,
}

/// This node's part of the cluster.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    /// This run's instance id: `node_id@start-ms`.
    node: Arc<str>,
    keys: store::Keys,
    target: connect::Target,
    /// The conference catalog (REST rooms, tokens, live streams) in the same Redis.
    catalog: Arc<catalog::RedisCatalog>,
    /// Where each conference room's media is served.
    homing: Arc<homing::MediaHoming>,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// The publisher's own connection (bundles and membership scripts), set by the link on
    /// every (re)connect and dropped by the publisher when a command on it fails.
    publish: tokio::sync::Mutex<Option<resp::RespConn>>,
    outbox: mpsc::Sender<Outgoing>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    health: health::Health,
    stop: CancellationToken,
    /// The value of `{prefix}:epoch` this node last saw: a different one means Redis lost its
    /// data (restarted empty, failed over to an empty replica).
    epoch: Mutex<Option<String>>,
    /// Set when the frames held for replay must go (the outage outlasted the replay window,
    /// or this node was taken for dead): the publisher drops them, counted.
    discard_held: AtomicBool,
    /// Set when an item was dropped at the full outbox during an outage: the calls across
    /// nodes lost frames, so the link ends them when it sees this.
    lost_while_down: AtomicBool,
    /// Items the publisher has taken from the outbox and not yet sent (or given up on): a
    /// draining node waits for these too.
    unsent: AtomicUsize,
    /// Set by the publisher while items stay held after its round (Redis or a receiver away):
    /// senders then copy a forward's text instead of keeping their received frame, which would
    /// keep its read buffer alive in the outbox, where nothing gives it a copy of its own.
    behind: AtomicBool,
    /// Nodes whose frames this node can no longer replay: the link ends the calls with them.
    window_lost: Mutex<Vec<Arc<str>>>,
    /// Direct links to the other nodes, with `[cluster.direct]`.
    direct: Option<direct::Direct>,
}

impl Cluster {
    /// A cluster member for `config` (validated). Connects nothing yet: see [`link::start`].
    pub fn new(config: ClusterConfig) -> Result<Self, connect::TargetError> {
        let target = connect::Target::new(&config)?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let node: Arc<str> = Arc::from(format!("{}@{started}", config.node_name()));
        let catalog = Arc::new(catalog::RedisCatalog::new(&config, Arc::clone(&node))?);
        let (outbox, rx) = mpsc::channel(config.publish_queue_len);
        let links = config.direct.clone().map(direct::Direct::new);
        let homing = homing::MediaHoming::new(
            Arc::clone(&node),
            &config.key_prefix,
            config.node_ttl_ms,
            outbox.clone(),
            Arc::clone(&catalog),
        );
        Ok(Self {
            homing,
            keys: store::Keys::new(&config.key_prefix),
            config,
            node,
            target,
            catalog,
            conn: Mutex::new(None),
            publish: tokio::sync::Mutex::new(None),
            outbox,
            outbox_rx: Mutex::new(Some(rx)),
            health: health::Health::starting(),
            stop: CancellationToken::new(),
            epoch: Mutex::new(None),
            discard_held: AtomicBool::new(false),
            lost_while_down: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
            behind: AtomicBool::new(false),
            window_lost: Mutex::new(Vec::new()),
            direct: links,
        })
    }

    /// This run's instance id.
    pub fn node(&self) -> &Arc<str> {
        &self.node
    }

    /// The conference catalog in the cluster's Redis.
    pub fn catalog(&self) -> &Arc<catalog::RedisCatalog> {
        &self.catalog
    }

    /// Direct links to the other nodes, with `[cluster.direct]`.
    pub fn direct(&self) -> Option<&direct::Direct> {
        self.direct.as_ref()
    }

    /// Binds the direct links' listener, with `[cluster.direct]` (at start-up).
    pub async fn bind_direct(&self) -> std::io::Result<()> {
        match &self.direct {
            Some(direct) => direct.bind().await,
            None => Ok(()),
        }
    }

    /// Room homing: where each conference room's media is served.
    pub fn homing(&self) -> &Arc<homing::MediaHoming> {
        &self.homing
    }

    /// Whether Redis is reachable (as of the last command or heartbeat).
    pub fn healthy(&self) -> bool {
        self.health.up()
    }

    /// Whether the publisher sends what it is given at once (Redis up, nothing left held):
    /// only then may a forward keep its sender's received frame ([`publisher::forward`]).
    pub fn keeping_up(&self) -> bool {
        self.healthy() && !self.behind.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Option<MultiplexedConnection> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_conn(&self, conn: Option<MultiplexedConnection>) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = conn;
    }

    /// Claims `peer`'s place in `room`: takes the room's join lock (waiting while another
    /// node's join holds it) and reads the members. Commit the claim with [`Self::commit`].
    pub async fn claim(&self, room: &str, peer: &Peer) -> Result<Claim, ClaimFailed> {
        let mut conn = self.conn().ok_or(ClaimFailed::Unreachable)?;
        let timeout = self.command_timeout();
        let token = format!("{}|{}", self.node, peer.session.0);
        let lock_ttl = self.lock_ttl();
        let give_up = tokio::time::Instant::now() + lock_ttl + timeout;
        let list = loop {
            let result = tokio::time::timeout(
                timeout,
                store::claim(&mut conn, &self.keys, room, &token, ms(lock_ttl)),
            )
            .await;
            match result {
                Ok(Ok(Some(list))) => break list,
                Ok(Ok(None)) if tokio::time::Instant::now() < give_up => {
                    // Another join into this room is between its read and its commit: a few
                    // hundred microseconds unless its node died holding the lock.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(Ok(None)) => return Err(ClaimFailed::Busy),
                Ok(Err(e)) => {
                    self.health.down(&e.to_string());
                    return Err(ClaimFailed::Unreachable);
                }
                Err(_) => {
                    self.health.down("claim timed out");
                    return Err(ClaimFailed::Unreachable);
                }
            }
        };
        Ok(Claim {
            before: list.iter().filter_map(|r| store::parse_record(r)).collect(),
            peer: *peer,
            token,
        })
    }

    /// Ends `claim`: records the member when `accepted`, releases the room's lock. Queued in
    /// order with the frames, before the `joined` frames the join causes.
    pub fn commit(&self, room: &str, claim: &Claim, accepted: bool) {
        self.send(Outgoing::Commit(Box::new(store::Commit {
            room: room.to_owned(),
            peer: claim.peer,
            token: claim.token.clone(),
            accepted,
        })));
    }

    /// Tells the publisher to drop the frames it holds for replay (their peers were told their
    /// partners left).
    fn discard_held(&self) {
        if self.outbox.try_send(Outgoing::Discard).is_err() {
            // The outbox is full: the publisher drops what it holds when it next looks, which
            // may take newer items too (the re-registration after the outage rewrites the
            // membership they carried).
            self.discard_held.store(true, Ordering::Relaxed);
        }
    }

    /// Whether frames were lost at the full outbox during the outage; clears it.
    fn take_lost_while_down(&self) -> bool {
        self.lost_while_down.swap(false, Ordering::Relaxed)
    }

    /// Whether the held frames must go; clears the request.
    fn take_discard(&self) -> bool {
        self.discard_held.swap(false, Ordering::Relaxed)
    }

    /// How long frames for other nodes wait for Redis or their receiver.
    fn replay_window(&self) -> Duration {
        Duration::from_millis(self.config.replay_window_ms)
    }

    /// How long a room's join lock lives if its holder never commits (its node died).
    fn lock_ttl(&self) -> Duration {
        (self.command_timeout() * 4).max(Duration::from_secs(1))
    }

    /// Queues `item` for the publisher; dropped (and counted) when the queue is full.
    pub fn send(&self, item: Outgoing) {
        if self.outbox.try_send(item).is_err() {
            health::frame_dropped();
            if !self.healthy() {
                self.lost_while_down.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Queues an acknowledgement or a reset: when the queue is full it is not counted as a
    /// lost frame (acknowledgements are sent again; a reset is asked for again).
    fn send_control(&self, node: Arc<str>, msg: OutMessage) {
        let _ = self.outbox.try_send(Outgoing::Frame { node, msg });
    }

    /// Tells the publisher that `node` has every frame up to `got` (and asks for the later
    /// ones again with `resend`); lost with a full queue, the next acknowledgement says it.
    fn acked(&self, node: Arc<str>, got: u64, resend: bool) {
        let _ = self.outbox.try_send(Outgoing::Acked { node, got, resend });
    }

    /// The publisher can no longer replay what `node` lacks: the link ends the calls with it.
    fn window_lost(&self, node: Arc<str>) {
        self.window_lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(node);
    }

    /// The nodes whose calls must end ([`Self::window_lost`]); clears the list.
    fn take_window_lost(&self) -> Vec<Arc<str>> {
        std::mem::take(
            &mut *self
                .window_lost
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Bound on one Redis command: a heartbeat interval, at least 200 ms.
    fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.config.heartbeat_interval_ms.max(200))
    }

    /// Stops the link: waits (bounded) for queued frames and leave records to go out, then
    /// removes this node's records and heartbeat so the others forget it at once.
    pub async fn shutdown(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while (self.outbox.capacity() < self.outbox.max_capacity()
            || self.unsent.load(Ordering::Relaxed) > 0)
            && tokio::time::Instant::now() < deadline
            && self.healthy()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop.cancel();
        if let Some(mut conn) = self.conn() {
            let mut pipe = redis::pipe();
            store::reap(&mut pipe, &self.keys, &self.node);
            pipe.cmd("DEL").arg(self.keys.alive(&self.node)).ignore();
            let _ = tokio::time::timeout(self.command_timeout(), pipe.query_async::<()>(&mut conn))
                .await;
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A cluster member on a Redis that is never reached (port 9), for unit tests of what runs
/// without Redis.
#[cfg(test)]
fn unreached() -> Cluster {
    let config: ClusterConfig =
        toml::from_str("redis_url = \"redis://127.0.0.1:9\"\nnode_id = \"node-a\"")
            .expect("a [cluster] table");
    Cluster::new(config).expect("a cluster member")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outbox item, held entry and kept frame is as large as the largest variant and
    /// is moved several times on its way out: the large, rare variants stay boxed.
    #[test]
    fn queued_items_stay_small() {
        assert!(size_of::<OutMessage>() <= 40, "{}", size_of::<OutMessage>());
        assert!(size_of::<Outgoing>() <= 56, "{}", size_of::<Outgoing>());
    }

    /// A forward from another node names its place in its bundle's forwards beside the tag:
    /// every session's queue items stay two words (BENCHMARKS.md, "What an idle session
    /// holds").
    #[test]
    fn a_delivery_stays_two_words() {
        assert_eq!(size_of::<crate::gateway::Outbound>(), 16);
    }
}
