//! Remote members as local proxies. A peer on another node appears in this node's room table
//! as an ordinary [`Peer`] with a session id of this node's own numbering, so the plugin pipeline
//! (routers, policy, room information) works unchanged; deliveries to a proxy are published to
//! the node that owns the real session. This table maps proxies to their owners.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchboard_plugin_api::{Peer, SessionId};
use switchboard_protocol::cluster::RemotePeer;

use crate::rooms::{Hasher, Room};

/// Where a proxy's real session lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// The owning node's instance id.
    pub node: Arc<str>,
    /// The session id on that node.
    pub session: u64,
}

#[derive(Debug)]
struct Proxy {
    remote: RemoteRef,
    rooms: HashSet<String>,
}

/// Every proxy of this node, by local id and by owner. Looked up several times for every
/// relayed message (is the sender a proxy, is each receiver one): hashed with the room index's
/// fast hasher rather than SipHash (the ids are this node's own numbering and the other
/// nodes', nothing a peer picks).
#[derive(Debug, Default)]
pub struct Proxies {
    by_local: HashMap<SessionId, Proxy, Hasher>,
    by_remote: HashMap<(Arc<str>, u64), SessionId, Hasher>,
}

impl Proxies {
    /// The owner of `id`, if it is a proxy.
    pub fn remote(&self, id: SessionId) -> Option<&RemoteRef> {
        self.by_local.get(&id).map(|p| &p.remote)
    }

    /// Whether `id` is a proxy.
    pub fn is_proxy(&self, id: SessionId) -> bool {
        self.by_local.contains_key(&id)
    }

    /// The local id of `node`'s session `session`, if it has a proxy.
    pub fn local(&self, node: &str, session: u64) -> Option<SessionId> {
        self.by_remote.get(&(Arc::from(node), session)).copied()
    }

    /// Every node that owns at least one proxy.
    pub fn nodes(&self) -> HashSet<Arc<str>> {
        self.by_local
            .values()
            .map(|p| Arc::clone(&p.remote.node))
            .collect()
    }

    /// Every (proxy, room) of `node`.
    pub fn of_node(&self, node: &str) -> Vec<(SessionId, String)> {
        let mut out = Vec::new();
        for (id, p) in &self.by_local {
            if &*p.remote.node == node {
                out.extend(p.rooms.iter().map(|r| (*id, r.clone())));
            }
        }
        out
    }

    /// Every (proxy, room).
    pub fn all(&self) -> Vec<(SessionId, String)> {
        let mut out = Vec::new();
        for (id, p) in &self.by_local {
            out.extend(p.rooms.iter().map(|r| (*id, r.clone())));
        }
        out
    }

    /// Forgets that proxy `id` is in `room` (the room table was already updated).
    pub fn left(&mut self, id: SessionId, room: &str) {
        let Some(p) = self.by_local.get_mut(&id) else {
            return;
        };
        p.rooms.remove(room);
        if p.rooms.is_empty()
            && let Some(p) = self.by_local.remove(&id)
        {
            self.by_remote.remove(&(p.remote.node, p.remote.session));
        }
    }
}

/// Adds `node`'s `peer` to `room` as a proxy (a new id from `alloc` if it has none yet).
/// Returns whether the room changed. The caller holds `room`'s lock, then the proxy table's.
pub fn add(
    proxies: &mut Proxies,
    room: &mut Room,
    name: &str,
    node: &Arc<str>,
    peer: RemotePeer,
    alloc: impl FnOnce() -> SessionId,
) -> bool {
    let key = (Arc::clone(node), peer.session);
    let id = match proxies.by_remote.get(&key) {
        Some(id) => *id,
        None => {
            let id = alloc();
            proxies.by_remote.insert(key, id);
            proxies.by_local.insert(
                id,
                Proxy {
                    remote: RemoteRef {
                        node: Arc::clone(node),
                        session: peer.session,
                    },
                    rooms: HashSet::new(),
                },
            );
            id
        }
    };
    if let Some(p) = proxies.by_local.get_mut(&id) {
        p.rooms.insert(name.to_owned());
    }
    room.join(Peer {
        session: id,
        dialect: peer.dialect,
        mode: peer.mode,
    })
}

/// Removes `node`'s session `session` from `room`. Returns the proxy's peer record if it was
/// there.
pub fn remove(
    proxies: &mut Proxies,
    room: &mut Room,
    name: &str,
    node: &str,
    session: u64,
) -> Option<Peer> {
    let id = proxies.local(node, session)?;
    let peer = room.members().iter().find(|p| p.session == id).copied();
    room.leave(id);
    proxies.left(id, name);
    peer
}

/// Adds the members Redis lists for a joiner's room (`before`) that this node does not know yet.
/// Members of this node (`me`) are the local table's business. Proxies Redis no longer lists
/// are left alone: their node's `Left` is on its way, or the failure detector will drop them and
/// tell their partners (dropping them here would leave those partners uninformed).
pub fn reconcile(
    proxies: &mut Proxies,
    room: &mut Room,
    name: &str,
    me: &str,
    before: &[(Arc<str>, RemotePeer)],
    mut alloc: impl FnMut() -> SessionId,
) {
    for (node, peer) in before {
        if &**node != me {
            add(proxies, room, name, node, *peer, &mut alloc);
        }
    }
}

/// Drops `room`'s proxies once no member of this node is left in it: the other nodes tell
/// only nodes with members about later joins and leaves, so such proxies would go stale.
pub fn prune(proxies: &mut Proxies, room: &mut Room, name: &str) {
    let members = room.members();
    if members.is_empty() || members.iter().any(|p| !proxies.is_proxy(p.session)) {
        return;
    }
    let ids: Vec<SessionId> = members.iter().map(|p| p.session).collect();
    for id in ids {
        room.leave(id);
        proxies.left(id, name);
    }
}
