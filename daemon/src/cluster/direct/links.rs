//! The publisher's direct links: one per linked node, in use for its frames once every frame
//! sent to it through Redis is acknowledged, dropped at the first error (its frames go through
//! Redis again, and the dialer links anew).

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::{info, warn};

use crate::cluster::publisher::Entry;
use crate::cluster::replay::Window;
use crate::cluster::resp::RespConn;
use crate::cluster::{Cluster, health};

/// One link.
struct Link {
    node: Arc<str>,
    conn: RespConn,
    /// Whether the node's frames go over it.
    in_use: bool,
}

/// The publisher's links.
#[derive(Default)]
pub(in crate::cluster) struct Links {
    links: Vec<Link>,
}

impl Links {
    /// Whether `node`'s frames go over its link.
    pub(in crate::cluster) fn in_use(&self, node: &Arc<str>) -> bool {
        self.links.iter().any(|l| l.in_use && l.node == *node)
    }

    /// The link to `node`, in use.
    pub(in crate::cluster) fn conn(&mut self, node: &Arc<str>) -> Option<&mut RespConn> {
        self.links
            .iter_mut()
            .find(|l| l.in_use && l.node == *node)
            .map(|l| &mut l.conn)
    }

    /// Takes the links dialed since the last round (a new link to a node replaces its old
    /// one, not in use until settled again), then puts into use each link whose node has
    /// nothing unacknowledged from this node (`window`) and nothing held that found no
    /// subscriber (`held`): its frames through Redis have all arrived, so none sent over the
    /// link can overtake them.
    pub(in crate::cluster) fn update(
        &mut self,
        cluster: &Cluster,
        window: &Window,
        held: &VecDeque<Entry>,
    ) {
        let Some(direct) = cluster.direct() else {
            return;
        };
        for (node, conn) in direct.take_dialed() {
            self.drop_link(&node);
            self.links.push(Link {
                node,
                conn,
                in_use: false,
            });
        }
        for link in self.links.iter_mut().filter(|l| !l.in_use) {
            let unheard = held
                .iter()
                .any(|e| e.is_unheard() && e.node() == Some(&link.node));
            if window.settled(&link.node) && !unheard {
                link.in_use = true;
                health::direct_links(1);
                info!(node = %link.node, "Cluster: frames for a node go over its direct link.");
            }
        }
    }

    /// The link to `node` failed: dropped; its frames go through Redis.
    pub(in crate::cluster) fn fail(&mut self, cluster: &Cluster, node: &Arc<str>, why: &str) {
        if self.drop_link(node) {
            warn!(node = %node, error = why, "Cluster: a direct link failed; frames for the node go through Redis.");
            if let Some(direct) = cluster.direct() {
                direct.lost(node);
            }
        }
    }

    /// `node` is gone (taken for dead) or its link failed: drops the link.
    pub(in crate::cluster) fn forget(&mut self, cluster: &Cluster, node: &Arc<str>) {
        if self.drop_link(node)
            && let Some(direct) = cluster.direct()
        {
            direct.lost(node);
        }
    }

    /// Drops the link to `node`, if any; whether there was one.
    fn drop_link(&mut self, node: &Arc<str>) -> bool {
        let Some(at) = self.links.iter().position(|l| l.node == *node) else {
            return false;
        };
        if self.links.swap_remove(at).in_use {
            health::direct_links(-1);
        }
        true
    }
}
