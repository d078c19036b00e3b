//! Coming back from a Redis outage: telling an outage from lost data (the epoch key) and from
//! this node having been taken for dead, re-asserting what the node holds, and ending the calls
//! across nodes when their frames cannot be delivered within the replay window.

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::link::{heartbeat, timed_out};
use super::{Cluster, store};
use crate::gateway::Gateway;

/// What the members of a call across nodes are told when it has to end.
pub(super) const LINK_LOST: &str = "the link to the other cluster nodes was lost; join again";

/// A Redis outage as the link loop sees it.
#[derive(Default)]
pub(super) struct Outage {
    pub(super) since: Option<Instant>,
    gave_up: bool,
}

impl Outage {
    /// Ends every call across nodes once the outage outlasted the replay window or frames were
    /// lost at the full outbox: the held frames go (counted) and each local partner of a
    /// remote peer gets its dialect's leave signal, instead of a silent gap in the call.
    pub(super) fn check(&mut self, cluster: &Cluster, gateway: &Gateway) {
        let Some(since) = self.since else {
            return;
        };
        if self.gave_up {
            return;
        }
        let lost = cluster.take_lost_while_down();
        if since.elapsed() <= cluster.replay_window() && !lost {
            return;
        }
        self.gave_up = true;
        warn!(
            lost_frames = lost,
            "Cluster: Redis away longer than replay_window_ms; calls across nodes end."
        );
        cluster.discard_held();
        gateway.remote().end_cross_node_calls(LINK_LOST);
        cluster.homing().end_all();
    }
}

/// Registers the node and its members. Three cases after an outage:
/// - Redis kept its data and the others did not take this node for dead: nothing changed.
/// - Redis lost its data (its epoch key changed: restarted empty, failed over to an empty
///   replica): every node re-asserts what it holds (heartbeat, member records, subscription)
///   and keeps its proxies, so calls across nodes go on; the grace period in [`serve`] gives
///   the others time to do the same.
/// - The others took this node for dead and reaped it (its registration is gone, the epoch is
///   the same): they told its partners, so its proxies leave here too (partners get their
///   leave signal) and the held frames go; the local members are registered afresh.
pub(super) async fn recover(
    cluster: &Cluster,
    gateway: &Gateway,
    mut conn: MultiplexedConnection,
    registered_once: bool,
) -> redis::RedisResult<()> {
    let keys = &cluster.keys;
    let node = &*cluster.node;
    let timeout = cluster.command_timeout();
    let mut pipe = redis::pipe();
    pipe.cmd("SISMEMBER").arg(keys.nodes()).arg(node);
    pipe.cmd("SET")
        .arg(keys.epoch())
        .arg(new_epoch(node))
        .arg("NX")
        .ignore();
    pipe.cmd("GET").arg(keys.epoch());
    let (known, epoch): (bool, String) = tokio::time::timeout(timeout, pipe.query_async(&mut conn))
        .await
        .map_err(|_| timed_out())??;
    let previous = cluster
        .epoch
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(epoch.clone());
    let data_lost = previous.is_some_and(|p| p != epoch);
    if data_lost {
        warn!(
            node,
            "Cluster: Redis lost its data; re-registering this node's members."
        );
    } else if registered_once && !known {
        debug!(node, "Cluster: this node was reaped during the outage.");
        cluster.discard_held();
        gateway.remote().end_cross_node_calls(LINK_LOST);
        cluster.homing().end_all();
    }
    reregister(cluster, gateway, &mut conn).await
}

/// Rewrites this node's registration from what it holds now: its member records (every old
/// one reaped first) and its heartbeat, in one transaction on the link's connection.
///
/// The member scripts of joins and leaves (`commit`, `unclaim`) go on the publisher's own
/// connection, so nothing orders them against this transaction but the publisher's lock, held
/// here from the snapshot of the members until Redis has the records: a leave whose `unclaim`
/// Redis ran already is out of the snapshot (the room drops the member before it queues the
/// script, under the room's lock), and every script still queued runs after the records are
/// written. Without it an `unclaim` could run first and the record it removed come back, a
/// member no node has that keeps its room full.
pub(super) async fn reregister(
    cluster: &Cluster,
    gateway: &Gateway,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let keys = &cluster.keys;
    let node = &*cluster.node;
    let _publisher = cluster.publish.lock().await;
    let members = gateway.remote().local_members();
    let mut pipe = redis::pipe();
    pipe.atomic();
    store::reap(&mut pipe, keys, node);
    store::register(&mut pipe, keys, node, &members);
    heartbeat(&mut pipe, cluster);
    tokio::time::timeout(cluster.command_timeout(), pipe.query_async::<()>(conn))
        .await
        .map_err(|_| timed_out())??;
    Ok(())
}

/// A fresh epoch value: this run's instance id and the time.
fn new_epoch(node: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{node}#{now}")
}
