//! The dispatcher calls its cluster hook at fixed points, through the trait, and a departure
//! takes its member out even when a plugin refuses it. A prefetch runs before the claim and the
//! room's lock, and settles after.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use switchboard_plugin_api::{
    Decision, Delivery, EventContext, Peer, Plugin, PluginError, Refusal, SessionId, Verdict,
};
use switchboard_protocol::{DialectKind, ErrorCode, Event, Join, JoinMode, Leave, LeaveReason};

use super::{Dispatched, Dispatcher, Membership};
use crate::cluster::Claim;
use crate::envelope::Envelope;
use crate::gateway::membership::{ClaimFuture, ClusterMembership, JoinTurn};
use crate::gateway::registry::SessionRegistry;
use crate::pipeline::Pipeline;
use crate::rooms::Room;

/// A cluster hook that writes down each call, and refuses every claim into room `busy`.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn log(&self, call: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClusterMembership for Recorder {
    fn claim<'a>(
        &'a self,
        _: &'a Dispatcher,
        from: Peer,
        _: &'a Event,
        room: &'a str,
    ) -> ClaimFuture<'a> {
        self.log(format!("claim {room}"));
        let turn = if room == "busy" {
            Err(Refusal::new(ErrorCode::Refused, "busy"))
        } else {
            Ok(JoinTurn {
                claim: Some(Claim {
                    before: Vec::new(),
                    peer: from,
                    token: String::new(),
                }),
                hold: Box::new(()),
            })
        };
        Box::pin(std::future::ready(turn))
    }

    fn before(
        &self,
        state: &mut Room,
        room: &str,
        _: &Claim,
        _: &mut dyn FnMut() -> SessionId,
    ) -> Vec<Peer> {
        self.log(format!("before {room}"));
        state.members().to_vec()
    }

    fn refused(&self, _: &mut Room, room: &str, claim: Option<&Claim>) {
        self.log(format!("refused {room} claimed={}", claim.is_some()));
    }

    fn accepted(
        &self,
        _: &mut Room,
        room: &str,
        claim: Option<&Claim>,
        membership: Option<&Membership>,
        _: &Arc<Envelope>,
        deliveries: Vec<Delivery>,
    ) -> Vec<Delivery> {
        self.log(format!(
            "accepted {room} claimed={} {membership:?}",
            claim.is_some()
        ));
        deliveries
    }

    fn departed(&self, _: &mut Room, room: &str, from: &Peer, was_member: bool) {
        self.log(format!("departed {room} {} {was_member}", from.session.0));
    }
}

/// Refuses every leave, whatever its reason (a broken or hostile plugin).
struct RefusesLeaves;

impl Plugin for RefusesLeaves {
    fn name(&self) -> &str {
        "refuses-leaves"
    }

    fn on_event(&self, cx: &EventContext<'_>, _: &mut Decision) -> Result<Verdict, PluginError> {
        Ok(match cx.event() {
            Event::Leave(_) => Verdict::Refuse(Refusal::new(ErrorCode::Refused, "stay")),
            _ => Verdict::Continue,
        })
    }
}

fn dispatcher(plugins: Vec<Box<dyn Plugin>>) -> (Dispatcher, Arc<Recorder>) {
    let registry = Arc::new(SessionRegistry::new(Duration::from_secs(5)));
    let dispatcher = Dispatcher::new(registry, Pipeline::new(plugins));
    let recorder = Arc::new(Recorder::default());
    dispatcher.set_membership(recorder.clone());
    (dispatcher, recorder)
}

fn peer(id: u64) -> Peer {
    crate::gateway::peer(SessionId(id), DialectKind::Raw)
}

fn envelope(from: Peer, event: Event) -> Envelope {
    Envelope {
        from,
        event,
        original: None,
        app: None,
    }
}

fn join(room: &str) -> Event {
    Event::Join(Join {
        room: room.to_owned(),
        mode: JoinMode::Both,
        token: None,
    })
}

/// A leave or departure claims nothing, so its dispatch is done in the first poll.
fn dispatch_now(dispatcher: &Dispatcher, envelope: Envelope) -> Dispatched {
    dispatcher
        .dispatch(envelope)
        .now_or_never()
        .expect("only a join waits, for its claim")
}

#[tokio::test]
async fn a_join_is_claimed_shown_the_room_and_committed_through_the_hook() {
    let (dispatcher, hook) = dispatcher(Vec::new());
    let out = dispatcher.dispatch(envelope(peer(1), join("r"))).await;
    assert!(out.refusal.is_none());
    assert_eq!(out.membership, Some(Membership::Joined("r".to_owned())));
    assert_eq!(
        hook.take(),
        [
            "claim r",
            "before r",
            r#"accepted r claimed=true Some(Joined("r"))"#
        ]
    );

    let busy = dispatcher.dispatch(envelope(peer(2), join("busy"))).await;
    assert_eq!(busy.refusal.map(|r| r.message).as_deref(), Some("busy"));
    assert_eq!(
        hook.take(),
        ["claim busy"],
        "a refused claim runs no plugin"
    );
    assert!(dispatcher.room_members("busy").is_empty());
}

#[tokio::test]
async fn a_departure_takes_its_member_out_even_when_a_plugin_refuses_it() {
    let (dispatcher, hook) = dispatcher(vec![Box::new(RefusesLeaves)]);
    let me = peer(1);
    dispatcher.dispatch(envelope(me, join("r"))).await;
    hook.take();

    // An explicit leave that a plugin refuses leaves the member where it is.
    let leave = Event::Leave(Leave {
        room: "r".to_owned(),
        reason: LeaveReason::Leave,
    });
    let refused = dispatch_now(&dispatcher, envelope(me, leave));
    assert!(refused.refusal.is_some());
    assert_eq!(dispatcher.room_members("r").len(), 1);
    assert_eq!(hook.take(), ["refused r claimed=false"]);

    // A departure (the connection closed) goes, refused or not, and the hook is told.
    let departed = dispatch_now(&dispatcher, Envelope::departure(me, "r".to_owned()));
    assert!(
        departed.refusal.is_some(),
        "the plugin's refusal is reported"
    );
    assert!(dispatcher.room_members("r").is_empty());
    assert_eq!(
        hook.take(),
        ["refused r claimed=false", "departed r 1 true"]
    );
}

#[tokio::test]
async fn an_accepted_departure_leaves_through_the_pipeline() {
    let (dispatcher, hook) = dispatcher(Vec::new());
    let me = peer(1);
    dispatcher.dispatch(envelope(me, join("r"))).await;
    hook.take();
    let out = dispatch_now(&dispatcher, Envelope::departure(me, "r".to_owned()));
    assert_eq!(out.membership, Some(Membership::Left("r".to_owned())));
    assert!(dispatcher.room_members("r").is_empty());
    assert_eq!(hook.take(), [r#"accepted r claimed=false Some(Left("r"))"#]);
}

/// A prefetch that writes down its calls in the cluster hook's log.
struct Fetches {
    log: Arc<Recorder>,
}

impl crate::gateway::prefetch::Prefetch for Fetches {
    fn wants(&self, event: &Event) -> bool {
        matches!(event, Event::Join(_))
    }

    fn prepare<'a>(&'a self, envelope: &Envelope) -> crate::gateway::prefetch::Step<'a> {
        let room = envelope.event.room().unwrap_or_default().to_owned();
        Box::pin(async move { self.log.log(format!("prepare {room}")) })
    }

    fn settle<'a>(&'a self, session: SessionId) -> crate::gateway::prefetch::Step<'a> {
        Box::pin(async move { self.log.log(format!("settle {}", session.0)) })
    }
}

#[tokio::test]
async fn a_prefetch_runs_before_the_claim_and_the_room_and_settles_after() {
    let (dispatcher, hook) = dispatcher(vec![Box::new(RefusesLeaves)]);
    let fetches = Arc::new(Fetches {
        log: Arc::clone(&hook),
    });
    dispatcher
        .swap_pipeline(Pipeline::new(vec![Box::new(RefusesLeaves)]).with_prefetches(vec![fetches]));
    dispatcher.dispatch(envelope(peer(1), join("r"))).await;
    assert_eq!(
        hook.take(),
        [
            "prepare r",
            "claim r",
            "before r",
            r#"accepted r claimed=true Some(Joined("r"))"#,
            "settle 1"
        ]
    );
    // A refused claim is settled too (what was taken is given back).
    dispatcher.dispatch(envelope(peer(2), join("busy"))).await;
    assert_eq!(hook.take(), ["prepare busy", "claim busy", "settle 2"]);
    // What the prefetch does not want is dispatched in the first poll, as before.
    dispatch_now(&dispatcher, Envelope::departure(peer(1), "r".to_owned()));
    assert_eq!(
        hook.take(),
        ["refused r claimed=false", "departed r 1 true"]
    );
}

/// The prefetch hooks are the pipeline's: a reload to a pipeline without the plugin they came
/// with (here, one without hooks) runs none.
#[tokio::test]
async fn a_pipeline_without_the_prefetch_runs_none() {
    let (dispatcher, hook) = dispatcher(Vec::new());
    let fetches = Arc::new(Fetches {
        log: Arc::clone(&hook),
    });
    dispatcher.swap_pipeline(Pipeline::new(Vec::new()).with_prefetches(vec![fetches]));
    dispatcher.dispatch(envelope(peer(1), join("r"))).await;
    assert_eq!(hook.take()[0], "prepare r");
    dispatcher.swap_pipeline(Pipeline::new(Vec::new()));
    dispatcher.dispatch(envelope(peer(2), join("r"))).await;
    assert_eq!(
        hook.take(),
        [
            "claim r",
            "before r",
            r#"accepted r claimed=true Some(Joined("r"))"#
        ]
    );
}
