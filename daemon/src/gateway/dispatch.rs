//! The dispatcher: room membership and the plugin pipeline. [`Dispatcher::dispatch`] is the one
//! public way an event enters the pipeline (a session's loop first tries its crate-private fast
//! path, `dispatch_at_once`, which dispatches the same way or hands the envelope back for it);
//! it runs with the event's room locked, and only that room ([`RoomTable::with`]), so events of
//! different rooms are dispatched in parallel.
//!
//! Around the pipeline, two hooks: with `[cluster]`, a [`ClusterMembership`] (the Redis one,
//! `remote.rs`) claims a joiner's place first, shows the pipeline the room as the cluster lists
//! it, and afterwards commits or gives back the claim, tells the other nodes and forwards
//! deliveries to proxies; and when no plugin answers a request that expects an answer, the
//! plugins' [`Plugin::on_unanswered`] hooks say why. Before the room is locked, the pipeline's
//! [`Prefetch`] hooks (with `[cluster]`, the conference catalog's reads of Redis, given with the
//! conference plugin) read what a join or a conference request is decided with, and give back
//! afterwards what the decision did not use.
//!
//! A departure (a leave whose reason is [`LeaveReason::Disconnect`]: the connection closed, or
//! a member of another node is gone) is dispatched like any event, and its member leaves the
//! room even when a plugin refuses it, or a dead session would hold its place forever.
//!
//! [`Plugin::on_unanswered`]: switchboard_plugin_api::Plugin::on_unanswered

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use futures_util::future::Either;
use switchboard_plugin_api::{
    Decision, Delivery, EventContext, Peer, Refusal, RoomView, SessionId,
};
use switchboard_protocol::{ConferenceCommand, ErrorCode, Event, JoinMode, LeaveReason};

use super::Outbound;
use super::delivery::Blocked;
use super::membership::{ClusterMembership, JoinTurn};
use super::prefetch::Prefetch;
use super::registry::SessionRegistry;
use crate::cluster::Claim;
use crate::envelope::Envelope;
use crate::pipeline::Pipeline;
use crate::rooms::{Room, RoomTable};
use crate::telemetry;

/// A membership change the pipeline accepted; the session keeps its own list of rooms from these
/// so it can leave them when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The sender is now in this room.
    Joined(String),
    /// The sender is no longer in this room.
    Left(String),
}

/// The result of dispatching one event.
#[derive(Debug, Default)]
pub struct Dispatched {
    /// Set when a plugin refused the event; the caller tells the peer in its dialect.
    pub refusal: Option<Refusal>,
    /// Set when the sender joined or left a room.
    pub membership: Option<Membership>,
    /// The refused event's room, for the error that tells the sender (set with `refusal`:
    /// the caller need not copy every event's room in case it is refused).
    pub refused_room: Option<String>,
    /// Deliveries whose receivers' queues were full: the sender waits for them
    /// ([`Blocked::wait`]) before it reads on.
    pub blocked: Blocked,
    /// Deliveries to the sender itself (its `joined` notice) that it writes itself, after its
    /// replies: set only for a session that asked for them ([`super::Inbox::write_own`]) and
    /// whose queue held nothing they would overtake.
    pub own: Vec<Outbound>,
}

impl Dispatched {
    fn refused(refusal: Refusal, room: &str) -> Self {
        Dispatched {
            refusal: Some(refusal),
            membership: None,
            refused_room: Some(room.to_owned()),
            blocked: Blocked::default(),
            own: Vec::new(),
        }
    }
}

/// What the pipeline decided for an event, carried out under its room's lock.
type Accepted = (Option<Membership>, Vec<Delivery>);

/// Rooms and the plugin pipeline.
pub struct Dispatcher {
    registry: Arc<SessionRegistry>,
    /// Replaced as a whole by a reload that changes `[[plugin]]`; each dispatch reads it
    /// without a lock (a shared lock's counter would be written by every dispatch, on every
    /// core).
    pipeline: ArcSwap<Pipeline>,
    rooms: RoomTable,
    /// Set once at start when `[cluster]` is configured.
    cluster: OnceLock<Arc<dyn ClusterMembership>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("pipeline", &self.pipeline.load())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher running `pipeline`, delivering through `registry`.
    pub fn new(registry: Arc<SessionRegistry>, pipeline: Pipeline) -> Self {
        Self {
            registry,
            pipeline: ArcSwap::from_pointee(pipeline),
            rooms: RoomTable::default(),
            cluster: OnceLock::new(),
        }
    }

    /// The registry deliveries go through.
    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.registry
    }

    /// The current pipeline (a reload replaces it; this one stays as it was).
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.load_full()
    }

    /// Replaces the plugin pipeline; returns the old one.
    pub(crate) fn swap_pipeline(&self, pipeline: Pipeline) -> Arc<Pipeline> {
        self.pipeline.swap(Arc::new(pipeline))
    }

    /// Sets the cluster hook (once; a second call is ignored).
    pub fn set_membership(&self, membership: Arc<dyn ClusterMembership>) {
        let _ = self.cluster.set(membership);
    }

    /// The cluster hook, when one is set.
    pub fn membership(&self) -> Option<&dyn ClusterMembership> {
        self.cluster.get().map(|hook| &**hook)
    }

    pub(super) fn rooms(&self) -> &RoomTable {
        &self.rooms
    }

    /// Every room with its members, sorted by room name.
    pub fn rooms_snapshot(&self) -> Vec<(String, Vec<Peer>)> {
        self.rooms.snapshot()
    }

    /// The members of one room (empty if it does not exist).
    pub fn room_members(&self, room: &str) -> Vec<Peer> {
        self.rooms.members(room)
    }

    /// Number of rooms with members.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Tells the plugins that `session` closed (after its leaves were dispatched).
    pub fn session_closed(&self, session: SessionId) {
        self.pipeline.load().session_closed(session);
    }

    /// Runs one event from a peer through the pipeline with its room locked, and queues the
    /// deliveries. Events without a room are not routed. With `[cluster]`, a join first claims
    /// its place in Redis, and joins and conference requests first wait for the conference
    /// catalog's reads (the only waits); anything else (departures included) is dispatched in
    /// this call, and the future returned is ready, so a caller that cannot await may poll it once
    /// ([`futures_util::FutureExt::now_or_never`]). (Not an `async fn`: that would move every
    /// event's envelope into a claim's future first, a cost measured on the relay path.)
    pub fn dispatch(&self, envelope: Envelope) -> impl Future<Output = Dispatched> + Send + '_ {
        let pipeline = self.pipeline.load();
        let prefetches = wanted(&pipeline, &envelope.event);
        match (prefetches, self.cluster.get()) {
            // Boxed, as below.
            (Some(prefetches), _) => {
                let boxed: Pin<Box<dyn Future<Output = Dispatched> + Send + '_>> =
                    Box::pin(self.prefetch_then_run(prefetches, envelope));
                Either::Right(boxed)
            }
            (None, Some(cluster)) if claimed_room(&envelope.event).is_some() => {
                // Boxed: the claim's Redis round trips make a future of kilobytes, and inline
                // it sized every session's task, idle or not, for this one rare wait
                // (BENCHMARKS.md, "What an idle session holds").
                let boxed: Pin<Box<dyn Future<Output = Dispatched> + Send + '_>> =
                    Box::pin(self.claim_then_run(&**cluster, envelope));
                Either::Right(boxed)
            }
            _ => Either::Left(std::future::ready(self.run(&pipeline, envelope, None))),
        }
    }

    /// An event whose decision reads something outside (the conference catalog): read first,
    /// with no lock held, then the dispatch (a join's claim included), then what the decision
    /// did not use is given back. The claim of a join comes after the reads, so the cluster's
    /// join lock of the room is not held while they wait.
    async fn prefetch_then_run(
        &self,
        wanted: Vec<Arc<dyn Prefetch>>,
        envelope: Envelope,
    ) -> Dispatched {
        let session = envelope.from.session;
        for prefetch in &wanted {
            prefetch.prepare(&envelope).await;
        }
        let out = match self.cluster.get() {
            Some(cluster) if claimed_room(&envelope.event).is_some() => {
                self.claim_then_run(&**cluster, envelope).await
            }
            _ => self.run(&self.pipeline.load(), envelope, None),
        };
        for prefetch in &wanted {
            prefetch.settle(session).await;
        }
        out
    }

    /// [`Self::dispatch`] when it needs no wait: the event dispatched, or, for a join that must
    /// first claim its place in the cluster or an event that first reads the conference
    /// catalog, the envelope back, to [`Self::dispatch`]. A
    /// session's loop calls this rather than await a future for every event: the future's
    /// state (the envelope and the outcome) was part of every session's future, idle or not
    /// (BENCHMARKS.md, "Fourth step (session 11)"). Crate-private: everyone else has one entry
    /// point, [`Self::dispatch`].
    pub(crate) fn dispatch_at_once(&self, envelope: Envelope) -> Result<Dispatched, Box<Envelope>> {
        let pipeline = self.pipeline.load();
        if pipeline
            .prefetches()
            .iter()
            .any(|p| p.wants(&envelope.event))
        {
            return Err(Box::new(envelope));
        }
        match self.cluster.get() {
            // Boxed: a cluster join is rare, and waits for Redis anyway.
            Some(_) if claimed_room(&envelope.event).is_some() => Err(Box::new(envelope)),
            _ => Ok(self.run(&pipeline, envelope, None)),
        }
    }

    /// A join with `[cluster]`: its place claimed first, then [`Self::run`].
    async fn claim_then_run(
        &self,
        cluster: &dyn ClusterMembership,
        envelope: Envelope,
    ) -> Dispatched {
        let Some(room) = claimed_room(&envelope.event).map(str::to_owned) else {
            return self.run(&self.pipeline.load(), envelope, None);
        };
        // The turn is held through the pipeline, so this node admits its joiners of one room
        // in the order the cluster listed them.
        match cluster
            .claim(self, envelope.from, &envelope.event, &room)
            .await
        {
            Ok(JoinTurn { claim, hold }) => {
                let out = self.run(&self.pipeline.load(), envelope, claim);
                drop(hold);
                out
            }
            Err(refusal) => Dispatched::refused(refusal, &room),
        }
    }

    /// The dispatch itself, after any claim: `pipeline` (the current one, loaded by the caller)
    /// under the room's lock, then the deliveries and (for a claimed join) what other nodes sent
    /// the joiner meanwhile.
    fn run(&self, pipeline: &Pipeline, mut envelope: Envelope, claim: Option<Claim>) -> Dispatched {
        match &envelope.event {
            Event::Join(join) => envelope.from.mode = join.mode,
            Event::Conference(c) if matches!(c.command, ConferenceCommand::JoinRoom(_)) => {
                envelope.from.mode = JoinMode::Conference;
            }
            _ => {}
        }
        let envelope = Arc::new(envelope);
        let Some(room) = envelope.event.room() else {
            return Dispatched::default();
        };
        // The deliveries are queued before the room's lock is released, so every member gets
        // the room's deliveries in the order the pipeline made them (docs/plugins.md,
        // "Ordering"). Queuing never waits: a receiver whose queue is full takes them through
        // its backlog, in order, and the sender waits for that after the lock ([`Blocked`]).
        let outcome = self.rooms.with(room, |state| {
            let (membership, deliveries) =
                self.in_room(pipeline, state, room, &envelope, claim.as_ref())?;
            let count = deliveries.len();
            let (blocked, own) = self.registry.deliver(&envelope, deliveries);
            Ok((membership, count, blocked, own))
        });
        let joiner = claim.map(|_| envelope.from.session);
        match outcome {
            Err(refusal) => {
                if let Some(joiner) = joiner {
                    self.registry.release(joiner);
                }
                telemetry::event_refused(&envelope, room, &refusal);
                Dispatched::refused(refusal, room)
            }
            Ok((membership, count, blocked, own)) => {
                telemetry::event_dispatched(&envelope, room, count);
                if let Some(joiner) = joiner {
                    self.registry.release(joiner);
                }
                Dispatched {
                    membership,
                    blocked,
                    own,
                    ..Dispatched::default()
                }
            }
        }
    }

    /// The part of a dispatch that holds the room's lock: the pipeline, membership, and the
    /// cluster hook's commit or rollback (written once, here, for every way a join can fail).
    fn in_room(
        &self,
        pipeline: &Pipeline,
        state: &mut Room,
        room: &str,
        envelope: &Arc<Envelope>,
        claim: Option<&Claim>,
    ) -> Result<Accepted, Refusal> {
        let cluster = self.membership();
        let claimed_view = match (cluster, claim) {
            (Some(cluster), Some(claim)) => {
                Some(cluster.before(state, room, claim, &mut || self.registry.next_id()))
            }
            _ => None,
        };
        let cx = envelope.context(RoomView {
            room,
            members: claimed_view.as_deref().unwrap_or_else(|| state.members()),
        });
        let decided = pipeline
            .run(&cx)
            .and_then(|(decision, stopped)| answered(pipeline, &cx, decision, stopped));
        let deliveries = match decided {
            Ok(deliveries) => deliveries,
            Err(refusal) => {
                if let Some(cluster) = cluster {
                    cluster.refused(state, room, claim);
                }
                if is_departure(&envelope.event) {
                    let was_member = state.leave(envelope.from.session);
                    if let Some(cluster) = cluster {
                        cluster.departed(state, room, &envelope.from, was_member);
                    }
                }
                return Err(refusal);
            }
        };
        let membership = apply_membership(state, room, envelope);
        let deliveries = match cluster {
            Some(cluster) => cluster.accepted(
                state,
                room,
                claim,
                membership.as_ref(),
                envelope,
                deliveries,
            ),
            None => deliveries,
        };
        Ok((membership, deliveries))
    }
}

/// The prefetch hooks of `pipeline` that want `event` (read before its room is locked,
/// [`Dispatcher::prefetch_then_run`]), or `None` when none does (every dispatch asks: without
/// `[cluster]` the pipeline has no hooks).
fn wanted(pipeline: &Pipeline, event: &Event) -> Option<Vec<Arc<dyn Prefetch>>> {
    let wanted: Vec<_> = pipeline
        .prefetches()
        .iter()
        .filter(|p| p.wants(event))
        .cloned()
        .collect();
    (!wanted.is_empty()).then_some(wanted)
}

/// The room whose place `event` claims in the cluster before it is dispatched: a join (any
/// dialect's, or an Ant `joinRoom`). Everything else is dispatched at once.
fn claimed_room(event: &Event) -> Option<&str> {
    match event {
        Event::Join(join) => Some(&join.room),
        Event::Conference(c) if matches!(c.command, ConferenceCommand::JoinRoom(_)) => {
            Some(c.target())
        }
        _ => None,
    }
}

/// Whether `event` is a departure: its member leaves even when a plugin refuses it.
fn is_departure(event: &Event) -> bool {
    matches!(event, Event::Leave(leave) if leave.reason == LeaveReason::Disconnect)
}

/// The decision's deliveries, unless the event is a request its sender expects an answer to
/// (a conference command) and no plugin answered or took it: then a refusal that says why,
/// from the plugins' [`switchboard_plugin_api::Plugin::on_unanswered`] hooks, or, when none
/// knows, that the gateway does not run the conference plugin.
fn answered(
    pipeline: &Pipeline,
    cx: &EventContext<'_>,
    decision: Decision,
    stopped: bool,
) -> Result<Vec<Delivery>, Refusal> {
    let Event::Conference(request) = cx.event() else {
        return Ok(decision.deliveries);
    };
    let me = cx.from().session;
    if stopped || decision.deliveries.iter().any(|d| d.to == me) {
        return Ok(decision.deliveries);
    }
    Err(pipeline.unanswered(cx).unwrap_or_else(|| {
        Refusal::new(
            ErrorCode::Unsupported,
            format!(
                "`{}` needs the conference plugin (type = \"conference\"), which this gateway does not run",
                request.command.ant_name()
            ),
        )
    }))
}

fn apply_membership(state: &mut Room, room: &str, envelope: &Envelope) -> Option<Membership> {
    let from = envelope.from;
    let joined = |state: &mut Room| {
        state
            .join(from)
            .then(|| Membership::Joined(room.to_owned()))
    };
    let left = |state: &mut Room| {
        state
            .leave(from.session)
            .then(|| Membership::Left(room.to_owned()))
    };
    match &envelope.event {
        Event::Join(_) => joined(state),
        Event::Leave(_) => left(state),
        // A conference participant is a member of its room like any peer (routers tell it
        // apart by its mode), so room information and disconnects work the same way.
        Event::Conference(c) => match &c.command {
            ConferenceCommand::JoinRoom(_) => joined(state),
            ConferenceCommand::LeaveRoom(_) => left(state),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod order_tests;
