//! The dispatcher's cluster hook with `[cluster]`, [`RedisMembership`] (the
//! [`ClusterMembership`] the dispatcher calls; made at start and given to the gateway,
//! [`super::Gateway::join_cluster`]): claiming a joiner's place in Redis, remote members as
//! proxies in the room table, and, through [`Remote`] ([`super::Gateway::remote`]), frames from
//! other nodes and dead nodes' peers leaving. The Redis side is in [`crate::cluster`].
//!
//! Locks: a room's lock, then the proxy table's, never the other way round; the proxy table is
//! held only for table lookups and updates, never while a plugin runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;

use switchboard_plugin_api::{Delivery, Payload, Peer, Refusal, SessionId};
use switchboard_protocol::cluster::RemotePeer;
use switchboard_protocol::{ErrorCode, Event, JoinMode};

use super::membership::{ClaimFuture, ClusterMembership, JoinTurn};
use super::{Dispatcher, Membership};
use crate::cluster::{
    Claim, ClaimFailed, Cluster, OutMessage, Outgoing, Proxies, RemoteRef, proxies,
    publisher::forward,
};
use crate::envelope::Envelope;
use crate::rooms::Room;

/// Number of join lock stripes.
const JOIN_STRIPES: usize = 64;

fn stripe_of(room: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    room.hash(&mut h);
    usize::try_from(h.finish() % JOIN_STRIPES as u64).unwrap_or(0)
}

/// This node's membership in the cluster, kept in Redis.
#[derive(Debug)]
pub struct RedisMembership {
    cluster: Arc<Cluster>,
    /// Which room members are proxies of peers on other nodes.
    proxies: Mutex<Proxies>,
    /// Joins into rooms of one stripe run one at a time, claim and pipeline (each held by its
    /// join's turn, which owns its guard).
    join_locks: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl RedisMembership {
    /// This node's membership in `cluster`: given to the dispatcher as its cluster hook at
    /// start ([`super::Gateway::join_cluster`]).
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self {
            cluster,
            proxies: Mutex::default(),
            join_locks: (0..JOIN_STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn proxies(&self) -> MutexGuard<'_, Proxies> {
        self.proxies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for this node's joins into `room`'s stripe, then claims the sender's place in
    /// Redis ([`Self::claim_place`]); the stripe stays held with the turn.
    async fn turn(
        &self,
        dispatcher: &Dispatcher,
        from: Peer,
        event: &Event,
        room: &str,
    ) -> Result<JoinTurn, Refusal> {
        let serialized = Arc::clone(&self.join_locks[stripe_of(room)])
            .lock_owned()
            .await;
        let claim = self.claim_place(dispatcher, from, event, room).await?;
        Ok(JoinTurn {
            claim,
            hold: Box::new(serialized),
        })
    }

    /// Claims the sender's place in Redis before a join (`None` for a repeated join, and while
    /// Redis is unreachable). What other nodes send the joiner meanwhile is held until its
    /// join has run.
    async fn claim_place(
        &self,
        dispatcher: &Dispatcher,
        from: Peer,
        event: &Event,
        room: &str,
    ) -> Result<Option<Claim>, Refusal> {
        let mode = match event {
            Event::Join(join) => join.mode,
            _ => JoinMode::Conference,
        };
        if dispatcher
            .room_members(room)
            .iter()
            .any(|p| p.session == from.session)
        {
            return Ok(None);
        }
        let registry = dispatcher.registry();
        registry.hold(from.session);
        let claim = self.cluster.claim(room, &Peer { mode, ..from }).await;
        if claim.is_err() {
            registry.release(from.session);
        }
        match claim {
            Ok(claim) => Ok(Some(claim)),
            // Redis is unreachable: this node admits with what it knows, and registers the
            // member when Redis returns.
            Err(ClaimFailed::Unreachable) => Ok(None),
            Err(ClaimFailed::Busy) => Err(Refusal::new(
                ErrorCode::Refused,
                format!("room `{room}` is busy with another join; try again"),
            )),
        }
    }
}

impl ClusterMembership for RedisMembership {
    fn claim<'a>(
        &'a self,
        dispatcher: &'a Dispatcher,
        from: Peer,
        event: &'a Event,
        room: &'a str,
    ) -> ClaimFuture<'a> {
        Box::pin(self.turn(dispatcher, from, event, room))
    }

    /// The members Redis listed ahead of the joiner join the room as proxies, and the pipeline
    /// sees the room as Redis lists it (this node's members and the remote members Redis
    /// lists; a proxy Redis no longer lists has left, its `left` frame on its way, and does not
    /// count).
    fn before(
        &self,
        state: &mut Room,
        room: &str,
        claim: &Claim,
        alloc: &mut dyn FnMut() -> SessionId,
    ) -> Vec<Peer> {
        let mut proxies = self.proxies();
        proxies::reconcile(
            &mut proxies,
            state,
            room,
            self.cluster.node(),
            &claim.before,
            alloc,
        );
        state
            .members()
            .iter()
            .filter(|p| match proxies.remote(p.session) {
                None => true,
                Some(r) => claim
                    .before
                    .iter()
                    .any(|(n, peer)| *n == r.node && peer.session == r.session),
            })
            .copied()
            .collect()
    }

    fn refused(&self, state: &mut Room, room: &str, claim: Option<&Claim>) {
        if let Some(claim) = claim {
            self.cluster.commit(room, claim, false);
        }
        proxies::prune(&mut self.proxies(), state, room);
    }

    /// A proxy's own leave (its node is gone, or told us) is told to local members only: the
    /// other nodes tell their own.
    fn accepted(
        &self,
        state: &mut Room,
        room: &str,
        claim: Option<&Claim>,
        membership: Option<&Membership>,
        envelope: &Arc<Envelope>,
        deliveries: Vec<Delivery>,
    ) -> Vec<Delivery> {
        let mut proxies = self.proxies();
        if proxies.is_proxy(envelope.from.session) {
            proxies.left(envelope.from.session, room);
            return deliveries
                .into_iter()
                .filter(|d| !proxies.is_proxy(d.to))
                .collect();
        }
        if let Some(claim) = claim {
            // Before the `joined` frames, so a node that reads one finds the record.
            let joined = matches!(membership, Some(Membership::Joined(_)));
            self.cluster.commit(room, claim, joined);
        }
        announce(
            &self.cluster,
            &proxies,
            state,
            room,
            membership,
            &envelope.from,
        );
        let local = send_remote(&self.cluster, &proxies, state, envelope, deliveries);
        proxies::prune(&mut proxies, state, room);
        local
    }

    fn departed(&self, state: &mut Room, room: &str, from: &Peer, was_member: bool) {
        let mut proxies = self.proxies();
        if proxies.is_proxy(from.session) {
            proxies.left(from.session, room);
            return;
        }
        if was_member {
            let left = Membership::Left(room.to_owned());
            announce(&self.cluster, &proxies, state, room, Some(&left), from);
            proxies::prune(&mut proxies, state, room);
        }
    }
}

/// What frames from other nodes and the cluster link do to this node's rooms: the proxies of
/// remote members, which only [`RedisMembership`] keeps, changed under their rooms' locks
/// through the dispatcher. Without `[cluster]` there is no membership and each method finds
/// nothing to do.
#[derive(Debug, Clone, Copy)]
pub struct Remote<'a> {
    dispatcher: &'a Dispatcher,
    membership: Option<&'a RedisMembership>,
}

impl<'a> Remote<'a> {
    /// The remote side of `dispatcher`, whose cluster hook is `membership` (if any).
    pub fn new(dispatcher: &'a Dispatcher, membership: Option<&'a RedisMembership>) -> Self {
        Self {
            dispatcher,
            membership,
        }
    }

    fn redis(&self) -> Option<&'a RedisMembership> {
        self.membership
    }

    /// Every member of this node (not the proxies), with its room: what re-registration after
    /// a Redis outage writes back.
    pub fn local_members(&self) -> Vec<(String, Peer)> {
        let Some(cluster) = self.redis() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in self.dispatcher.rooms().names() {
            self.dispatcher.rooms().with(&name, |state| {
                let proxies = cluster.proxies();
                out.extend(
                    state
                        .members()
                        .iter()
                        .filter(|p| !proxies.is_proxy(p.session))
                        .map(|p| (name.to_string(), *p)),
                );
            });
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every other node that has members in this node's rooms.
    pub fn proxy_nodes(&self) -> HashSet<Arc<str>> {
        self.redis()
            .map(|c| c.proxies().nodes())
            .unwrap_or_default()
    }

    /// A member of another node joined `room` (its node ran the pipeline).
    pub fn remote_joined(&self, node: &Arc<str>, room: &str, peer: RemotePeer) {
        let Some(cluster) = self.redis() else {
            return;
        };
        self.dispatcher.rooms().with(room, |state| {
            let mut proxies = cluster.proxies();
            proxies::add(&mut proxies, state, room, node, peer, || {
                self.dispatcher.registry().next_id()
            });
            // Its last member here may have left while the frame was on its way.
            proxies::prune(&mut proxies, state, room);
        });
    }

    /// A member of another node left `room` (its node ran the pipeline and told the partners).
    pub fn remote_left(&self, node: &str, room: &str, session: u64) {
        let Some(cluster) = self.redis() else {
            return;
        };
        self.dispatcher.rooms().with(room, |state| {
            proxies::remove(&mut cluster.proxies(), state, room, node, session);
        });
    }

    /// `node` stopped heartbeating: each of its proxies leaves its rooms through the pipeline,
    /// so local partners get the leave signal of their dialect. Returns how many left.
    pub fn drop_node(&self, node: &str) -> usize {
        let gone = self
            .redis()
            .map(|c| c.proxies().of_node(node))
            .unwrap_or_default();
        for (id, room) in &gone {
            self.proxy_leaves(*id, room);
        }
        gone.len()
    }

    /// Ends every call that spans nodes, when the cross-node state cannot be trusted (this node
    /// was taken for dead, or Redis stayed away past the replay window): each proxy leaves
    /// (local partners get their dialect's leave signal), then the local members of those rooms
    /// are closed like an operator's kick. The other side does the same for its own, so no
    /// member is left that only one node believes in: the room is free for both peers to join
    /// again, instead of full with two members who cannot reach each other.
    pub fn end_cross_node_calls(&self, reason: &str) {
        let gone = self.redis().map(|c| c.proxies().all()).unwrap_or_default();
        self.end_calls(&gone, reason);
    }

    /// Ends the calls with the peers of `node` alone, as [`Self::end_cross_node_calls`] ends
    /// all: this node can no longer deliver every frame to it (its replay window lost some).
    pub fn end_calls_with(&self, node: &str, reason: &str) {
        let gone = self
            .redis()
            .map(|c| c.proxies().of_node(node))
            .unwrap_or_default();
        self.end_calls(&gone, reason);
    }

    /// The proxies `gone` leave, then the local members of their rooms are closed.
    fn end_calls(&self, gone: &[(SessionId, String)], reason: &str) {
        let rooms: HashSet<&str> = gone.iter().map(|(_, room)| room.as_str()).collect();
        for (id, room) in gone {
            self.proxy_leaves(*id, room);
        }
        let members: Vec<SessionId> = rooms
            .iter()
            .flat_map(|room| {
                self.dispatcher
                    .room_members(room)
                    .into_iter()
                    .map(|p| p.session)
            })
            .collect();
        for id in members {
            self.dispatcher.registry().kick(id, reason);
        }
    }

    /// Every room with proxies, with the owner of each proxy (for the anti-entropy sweep).
    pub fn proxy_rooms(&self) -> Vec<(String, Vec<(SessionId, RemoteRef)>)> {
        let Some(cluster) = self.redis() else {
            return Vec::new();
        };
        let proxies = cluster.proxies();
        let mut by_room: HashMap<String, Vec<(SessionId, RemoteRef)>> = HashMap::new();
        for (id, room) in proxies.all() {
            if let Some(remote) = proxies.remote(id) {
                by_room.entry(room).or_default().push((id, remote.clone()));
            }
        }
        by_room.into_iter().collect()
    }

    /// Runs a disconnect of proxy `id` from `room` through the pipeline; only local sessions
    /// are told (the other nodes do the same for their own).
    pub fn proxy_leaves(&self, id: SessionId, room: &str) {
        let member = self
            .dispatcher
            .room_members(room)
            .into_iter()
            .find(|p| p.session == id);
        let Some(from) = member else {
            if let Some(cluster) = self.redis() {
                cluster.proxies().left(id, room);
            }
            return;
        };
        // A departure claims nothing, so it is dispatched in the first poll; the cluster task
        // cannot wait for a full queue.
        let departed = self
            .dispatcher
            .dispatch(Envelope::departure(from, room.to_owned()));
        if let Some(out) = departed.now_or_never() {
            out.blocked.defer();
        }
    }
}

/// Tells the other nodes with members in `room` that `from` joined or left it, and gives a
/// left place back in Redis. Queued before the deliveries the event caused, so a remote partner
/// knows the new member before it reads the notice that invites it to answer.
fn announce(
    cluster: &Cluster,
    proxies: &Proxies,
    state: &Room,
    room: &str,
    membership: Option<&Membership>,
    from: &Peer,
) {
    let msg = match membership {
        Some(Membership::Joined(_)) => {
            let mode = state
                .members()
                .iter()
                .find(|p| p.session == from.session)
                .map_or(from.mode, |p| p.mode);
            OutMessage::Joined(Box::new((room.to_owned(), Peer { mode, ..*from })))
        }
        Some(Membership::Left(_)) => OutMessage::Left(room.to_owned(), from.session),
        None => return,
    };
    let mut nodes: Vec<&Arc<str>> = state
        .members()
        .iter()
        .filter_map(|p| proxies.remote(p.session).map(|r| &r.node))
        .collect();
    nodes.sort();
    nodes.dedup();
    for node in nodes {
        cluster.send(Outgoing::Frame {
            node: Arc::clone(node),
            msg: msg.clone(),
        });
    }
    if let OutMessage::Left(..) = msg {
        // After the frames: a node that finds the record gone has been sent the `left` first.
        cluster.send(Outgoing::Unclaim {
            room: room.to_owned(),
            session: from.session,
        });
    }
}

/// Queues the deliveries to proxies for their nodes; returns the local ones.
fn send_remote(
    cluster: &Cluster,
    proxies: &Proxies,
    state: &Room,
    envelope: &Arc<Envelope>,
    deliveries: Vec<Delivery>,
) -> Vec<Delivery> {
    let mut local = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let Some(remote) = proxies.remote(delivery.to) else {
            local.push(delivery);
            continue;
        };
        let msg = match delivery.payload {
            Payload::Relay => {
                // The sender's wire text is rendered only to a peer of its dialect (verbatim
                // forwarding); other dialects re-encode the event, so it need not cross Redis.
                let same_dialect = state
                    .members()
                    .iter()
                    .find(|p| p.session == delivery.to)
                    .is_some_and(|p| p.dialect == envelope.from.dialect);
                same_dialect
                    .then(|| forward(remote.session, envelope, cluster.keeping_up()))
                    .flatten()
                    .map_or_else(
                        || OutMessage::Relay(remote.session, Arc::clone(envelope)),
                        OutMessage::Forward,
                    )
            }
            Payload::Event(event) => OutMessage::Deliver(remote.session, Box::new(event)),
        };
        cluster.send(Outgoing::Frame {
            node: Arc::clone(&remote.node),
            msg,
        });
    }
    local
}
