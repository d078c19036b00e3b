//! [`ClusterMembership`]: what the dispatcher asks of a cluster at fixed points of a dispatch.
//! With `[cluster]`, the Redis implementation (`gateway/remote.rs`), which the daemon's start
//! makes and hands to the gateway ([`super::Gateway::join_cluster`]), claims a joiner's place in
//! Redis, keeps remote members as proxies and forwards deliveries to their nodes; without it,
//! the dispatcher has no membership hook and a room is what this node holds. The dispatcher
//! knows only this trait.
//!
//! Every method except [`ClusterMembership::claim`] runs under the room's lock, so it must not
//! wait, and it sees the room exactly as the pipeline left it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use switchboard_plugin_api::{Delivery, Peer, Refusal, SessionId};
use switchboard_protocol::Event;

use super::{Dispatcher, Membership};
use crate::cluster::Claim;
use crate::envelope::Envelope;
use crate::rooms::Room;

/// A join's turn: its claim (`None` when there is nothing to claim, e.g. a repeated join), and
/// whatever holds this node's other joins into the room off until the join has run.
pub struct JoinTurn {
    /// The claimed place, committed or given back by [`ClusterMembership::accepted`] or
    /// [`ClusterMembership::refused`].
    pub claim: Option<Claim>,
    /// Held until the join has run (dropped with the turn).
    pub hold: Box<dyn Send>,
}

impl std::fmt::Debug for JoinTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTurn")
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// What [`ClusterMembership::claim`] returns: a join's turn, or why the join is refused.
pub type ClaimFuture<'a> = Pin<Box<dyn Future<Output = Result<JoinTurn, Refusal>> + Send + 'a>>;

/// The dispatcher's cluster hook, called at fixed points: [`Self::claim`] before a join's
/// pipeline (the only wait), [`Self::before`] to show the pipeline the room as the cluster
/// lists it, then [`Self::refused`] or [`Self::accepted`], and [`Self::departed`] when a
/// member goes without the pipeline taking it out (a closed connection's leave that a plugin
/// refused).
pub trait ClusterMembership: Send + Sync + std::fmt::Debug {
    /// Claims `from`'s place in `room` before its join `event` is dispatched.
    fn claim<'a>(
        &'a self,
        dispatcher: &'a Dispatcher,
        from: Peer,
        event: &'a Event,
        room: &'a str,
    ) -> ClaimFuture<'a>;

    /// Before the pipeline of a claimed join: the members the pipeline sees in `room`.
    /// `next_id` gives fresh session ids (for members of other nodes that join as proxies).
    fn before(
        &self,
        state: &mut Room,
        room: &str,
        claim: &Claim,
        next_id: &mut dyn FnMut() -> SessionId,
    ) -> Vec<Peer>;

    /// The pipeline refused the event; a claimed join gives its place back.
    fn refused(&self, state: &mut Room, room: &str, claim: Option<&Claim>);

    /// The pipeline accepted the event and the room's membership is updated: a claimed join is
    /// committed, other nodes hear of the change, deliveries to other nodes' members leave for
    /// them. Returns the deliveries to this node's sessions.
    fn accepted(
        &self,
        state: &mut Room,
        room: &str,
        claim: Option<&Claim>,
        membership: Option<&Membership>,
        envelope: &Arc<Envelope>,
        deliveries: Vec<Delivery>,
    ) -> Vec<Delivery>;

    /// `from` left `room` although the pipeline did not take it out (`was_member`: it was in the
    /// room until then).
    fn departed(&self, state: &mut Room, room: &str, from: &Peer, was_member: bool);
}
