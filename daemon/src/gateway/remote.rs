//! The gateway's side of the cluster (`[cluster]`): claiming a joiner's place in Redis, remote
//! members as proxies in the room table, frames from other nodes, and dead nodes' peers leaving.
//! The Redis side is in [`crate::cluster`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use switchboard_plugin_api::{Delivery, Payload, Peer, Refusal, RoomView, SessionId};
use switchboard_protocol::cluster::RemotePeer;
use switchboard_protocol::{ConferenceCommand, ErrorCode, Event, JoinMode, Leave, LeaveReason};

use super::{Gateway, Membership, Outbound, lock};
use crate::cluster::{Claim, ClaimFailed, Cluster, OutMessage, Outgoing, RemoteRef, proxies};
use crate::envelope::Envelope;
use crate::rooms::Rooms;

impl Gateway {
    /// Claims the sender's place in Redis before a join (`[cluster]` only; `None` otherwise,
    /// for anything but a join, for a repeated join, and while Redis is unreachable).
    pub(super) async fn claim(&self, from: Peer, event: &Event) -> Result<Option<Claim>, Refusal> {
        let Some(cluster) = self.cluster.get() else {
            return Ok(None);
        };
        let (room, mode) = match event {
            Event::Join(join) => (join.room.as_str(), join.mode),
            Event::Conference(c) if matches!(c.command, ConferenceCommand::JoinRoom(_)) => {
                (c.target(), JoinMode::Conference)
            }
            _ => return Ok(None),
        };
        if lock(&self.rooms)
            .members(room)
            .iter()
            .any(|p| p.session == from.session)
        {
            return Ok(None);
        }
        lock(&self.pending).insert(from.session, Vec::new());
        let claim = cluster.claim(room, &Peer { mode, ..from }).await;
        if claim.is_err() {
            self.flush_pending(from.session);
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

    /// Delivers what waited for `session`'s join, in arrival order.
    pub(super) fn flush_pending(&self, session: SessionId) {
        let mut pending = lock(&self.pending);
        if let Some(items) = pending.remove(&session) {
            for item in items {
                self.queue_for(session, item);
            }
        }
    }

    /// Every member of this node (not the proxies), with its room: what re-registration after
    /// a Redis outage writes back.
    pub fn local_members(&self) -> Vec<(String, Peer)> {
        let rooms = lock(&self.rooms);
        rooms
            .snapshot()
            .into_iter()
            .flat_map(|(room, members)| {
                members
                    .into_iter()
                    .filter(|p| !rooms.proxies.is_proxy(p.session))
                    .map(move |p| (room.clone(), p))
            })
            .collect()
    }

    /// Every other node that has members in this node's rooms.
    pub fn proxy_nodes(&self) -> HashSet<Arc<str>> {
        lock(&self.rooms).proxies.nodes()
    }

    /// A member of another node joined `room` (its node ran the pipeline).
    pub fn remote_joined(&self, node: &Arc<str>, room: &str, peer: RemotePeer) {
        let mut rooms = lock(&self.rooms);
        proxies::add(&mut rooms, room, node, peer, || self.next_session_id());
        // Its last member here may have left while the frame was on its way.
        proxies::prune(&mut rooms, room);
    }

    /// A member of another node left `room` (its node ran the pipeline and told the partners).
    pub fn remote_left(&self, node: &str, room: &str, session: u64) {
        proxies::remove(&mut lock(&self.rooms), room, node, session);
    }

    /// Queues a delivery from another node to local session `to`.
    pub fn deliver_remote(&self, to: SessionId, item: Outbound) {
        let mut pending = lock(&self.pending);
        if let Some(waiting) = pending.get_mut(&to) {
            waiting.push(item);
            return;
        }
        self.queue_for(to, item);
    }

    fn queue_for(&self, to: SessionId, item: Outbound) {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let Some(target) = sessions.get(&to) else {
            return;
        };
        super::queue_nowait(target, item, self.write_timeout());
    }

    /// `node` stopped heartbeating: each of its proxies leaves its rooms through the pipeline,
    /// so local partners get the leave signal of their dialect. Returns how many left.
    pub fn drop_node(&self, node: &str) -> usize {
        let gone = lock(&self.rooms).proxies.of_node(node);
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
        let gone = lock(&self.rooms).proxies.all();
        let rooms: HashSet<&str> = gone.iter().map(|(_, room)| room.as_str()).collect();
        for (id, room) in &gone {
            self.proxy_leaves(*id, room);
        }
        let members: Vec<SessionId> = {
            let table = lock(&self.rooms);
            rooms
                .iter()
                .flat_map(|room| table.members(room).iter().map(|p| p.session))
                .collect()
        };
        for id in members {
            self.kick(id, reason);
        }
    }

    /// Every room with proxies, with the owner of each proxy (for the anti-entropy sweep).
    pub fn proxy_rooms(&self) -> Vec<(String, Vec<(SessionId, RemoteRef)>)> {
        let rooms = lock(&self.rooms);
        let mut by_room: HashMap<String, Vec<(SessionId, RemoteRef)>> = HashMap::new();
        for (id, room) in rooms.proxies.all() {
            if let Some(remote) = rooms.proxies.remote(id) {
                by_room.entry(room).or_default().push((id, remote.clone()));
            }
        }
        by_room.into_iter().collect()
    }

    /// Runs a disconnect of proxy `id` from `room` through the pipeline; only local sessions
    /// are told (the other nodes do the same for their own).
    pub fn proxy_leaves(&self, id: SessionId, room: &str) {
        let mut rooms = lock(&self.rooms);
        let Some(from) = rooms
            .members(room)
            .iter()
            .find(|p| p.session == id)
            .copied()
        else {
            rooms.proxies.left(id, room);
            return;
        };
        let envelope = Arc::new(Envelope {
            from,
            event: Event::Leave(Leave {
                room: room.to_owned(),
                reason: LeaveReason::Disconnect,
            }),
            original: None,
            app: None,
        });
        let cx = envelope.context(RoomView {
            room,
            members: rooms.members(room),
        });
        let deliveries = self.pipeline().run(&cx).map(|(d, _)| d.deliveries);
        rooms.leave(room, id);
        rooms.proxies.left(id, room);
        drop(rooms);
        if let Ok(deliveries) = deliveries {
            // The cluster task cannot wait for a full queue.
            self.deliver(&envelope, deliveries)
                .defer(self.write_timeout());
        }
    }
}

/// Tells the other nodes with members in `room` that `from` joined or left it, and gives a
/// left place back in Redis. Queued before the deliveries the event caused, so a remote partner
/// knows the new member before it reads the notice that invites it to answer.
pub(super) fn announce(
    cluster: &Cluster,
    rooms: &Rooms,
    room: &str,
    membership: Option<&Membership>,
    from: &Peer,
) {
    let msg = match membership {
        Some(Membership::Joined(_)) => {
            let mode = rooms
                .members(room)
                .iter()
                .find(|p| p.session == from.session)
                .map_or(from.mode, |p| p.mode);
            OutMessage::Joined(room.to_owned(), Peer { mode, ..*from })
        }
        Some(Membership::Left(_)) => OutMessage::Left(room.to_owned(), from.session),
        None => return,
    };
    let mut nodes: Vec<&Arc<str>> = rooms
        .members(room)
        .iter()
        .filter_map(|p| rooms.proxies.remote(p.session).map(|r| &r.node))
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
pub(super) fn send_remote(
    cluster: &Cluster,
    rooms: &Rooms,
    room: &str,
    envelope: &Arc<Envelope>,
    deliveries: Vec<Delivery>,
) -> Vec<Delivery> {
    let mut local = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let Some(remote) = rooms.proxies.remote(delivery.to) else {
            local.push(delivery);
            continue;
        };
        let msg = match delivery.payload {
            Payload::Relay => {
                // The sender's wire text is rendered only to a peer of its dialect (verbatim
                // forwarding); other dialects re-encode the event, so it need not cross Redis.
                let same_dialect = rooms
                    .members(room)
                    .iter()
                    .find(|p| p.session == delivery.to)
                    .is_some_and(|p| p.dialect == envelope.from.dialect);
                OutMessage::Relay(remote.session, Arc::clone(envelope), same_dialect)
            }
            Payload::Event(event) => OutMessage::Deliver(remote.session, event),
        };
        cluster.send(Outgoing::Frame {
            node: Arc::clone(&remote.node),
            msg,
        });
    }
    local
}
