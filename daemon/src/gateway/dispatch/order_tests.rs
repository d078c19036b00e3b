//! The ordering promise of a room (docs/plugins.md, "Ordering"): every member receives the
//! room's deliveries in the order the pipeline dispatched them, even when one of them has a
//! full queue and a later dispatch finds room in it. The race is made deterministic with a
//! receiver whose queue holds one delivery: the first sender's delivery must wait for room,
//! the receiver then frees its slot, and a second sender (reacting to the first) dispatches.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use switchboard_plugin_api::{
    Decision, EventContext, Payload, Plugin, PluginError, SessionId, Verdict,
};
use switchboard_protocol::{DialectKind, ErrorCode, Event, Join, JoinMode};
use tokio_util::sync::CancellationToken;

use super::{Dispatched, Dispatcher};
use crate::envelope::Envelope;
use crate::gateway::registry::{SessionHandle, SessionRegistry};
use crate::gateway::{Outbound, peer};
use crate::pipeline::Pipeline;

/// Relays every event but a join to every other member of its room (a lobby).
struct Lobby;

impl Plugin for Lobby {
    fn name(&self) -> &str {
        "lobby"
    }

    fn on_event(&self, cx: &EventContext<'_>, out: &mut Decision) -> Result<Verdict, PluginError> {
        if matches!(cx.event(), Event::Join(_)) {
            return Ok(Verdict::Continue);
        }
        let me = cx.from().session;
        for member in cx.room.members.iter().filter(|m| m.session != me) {
            out.deliver(member.session, Payload::Relay);
        }
        Ok(Verdict::Stop)
    }
}

/// A message of the lobby, told apart by its text.
fn said(text: &str) -> Event {
    Event::error(ErrorCode::Refused, Some("lobby"), text.to_owned())
}

fn send(dispatcher: &Dispatcher, from: SessionId, event: Event) -> Dispatched {
    dispatcher
        .dispatch(Envelope {
            from: peer(from, DialectKind::Raw),
            event,
            original: None,
            app: None,
        })
        .now_or_never()
        .expect("nothing waits without a cluster or a prefetch")
}

fn text(out: Outbound) -> String {
    match out {
        Outbound::Relay(envelope) => match &envelope.event {
            Event::Error(e) => e.message.clone(),
            other => format!("{other:?}"),
        },
        Outbound::Kick(reason) => format!("kick {reason}"),
        _ => "other".to_owned(),
    }
}

/// The next delivery of `handle` (or "none" after 5 s).
async fn next(handle: &mut SessionHandle) -> String {
    match tokio::time::timeout(Duration::from_secs(5), handle.rx.recv()).await {
        Ok(Some(out)) => text(out),
        _ => "none".to_owned(),
    }
}

/// Three members in the lobby, each with a queue of one delivery; a receiver that frees no room
/// for `write_timeout` is given up on.
fn lobby(write_timeout: Duration) -> (Arc<SessionRegistry>, Dispatcher, Vec<SessionHandle>) {
    let registry = Arc::new(SessionRegistry::new(write_timeout));
    let dispatcher = Dispatcher::new(Arc::clone(&registry), Pipeline::new(vec![Box::new(Lobby)]));
    let members: Vec<SessionHandle> = (0..3)
        .map(|_| {
            registry.register(
                DialectKind::Raw,
                None,
                crate::gateway::QueueBounds::of_len(1),
                CancellationToken::new(),
            )
        })
        .collect();
    for m in &members {
        let joined = Event::Join(Join {
            room: "lobby".to_owned(),
            mode: JoinMode::Both,
            token: None,
        });
        assert!(send(&dispatcher, m.id, joined).refusal.is_none());
    }
    (registry, dispatcher, members)
}

#[tokio::test]
async fn a_member_with_a_full_queue_gets_the_rooms_deliveries_in_dispatch_order() {
    let (registry, dispatcher, mut members) = lobby(Duration::from_secs(5));
    let (a, b) = (members[0].id, members[1].id);
    let c = &mut members[2];
    // C's one slot is taken: A's message to C must wait for room.
    assert!(registry.kick(c.id, "filler"));
    let from_a = send(&dispatcher, a, said("a1"));
    // C frees its slot; B, who has read A's message, answers it before A's wait ran.
    assert_eq!(next(c).await, "kick filler");
    let from_b = send(&dispatcher, b, said("b1 after a1"));
    let waits = tokio::spawn(async move {
        from_a.blocked.wait().await;
        from_b.blocked.wait().await;
    });
    let got = [next(c).await, next(c).await];
    assert_eq!(
        got,
        ["a1".to_owned(), "b1 after a1".to_owned()],
        "C got the room's messages in the order they were dispatched"
    );
    waits.await.expect("the senders' waits end");
}

#[tokio::test]
async fn a_member_that_stops_reading_holds_up_neither_the_room_nor_its_other_members() {
    let (_registry, dispatcher, mut members) = lobby(Duration::from_secs(1));
    let a = members[0].id;
    // C (members[2]) never reads: its one slot fills with the first message, the rest wait.
    let mut waits = Vec::new();
    for n in 0..3 {
        let out = send(&dispatcher, a, said(&format!("a{n}")));
        waits.push(tokio::spawn(out.blocked.wait()));
        // B reads each as it comes: the room was not held for C.
        assert_eq!(next(&mut members[1]).await, format!("a{n}"));
    }
    // C is given up on after the write timeout, and that ends A's waits.
    for wait in waits {
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the wait ends once C is given up on")
            .expect("no panic");
    }
    assert!(members[2].info.is_stuck(), "C was given up on");
    assert!(members[2].cancel.is_cancelled());
}
