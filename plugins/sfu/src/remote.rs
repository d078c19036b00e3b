//! The home node's side of room homing ([`crate::homing`]): requests other nodes forward for
//! their sessions are served here as requests of stand-in sessions, and what the plugin
//! decides for them at once (`start`, a refusal) goes back through the outbox, which the
//! daemon routes to the requester's node.

use std::sync::Arc;

use switchboard_plugin_api::event::conference::{MediaDirection, MediaState};
use switchboard_plugin_api::event::{ConferenceCommand, ConferenceReply, Event};
use switchboard_plugin_api::{Decision, Payload, SessionId, Verdict};

use crate::Core;
use crate::engine::Command;
use crate::homing::{MediaRequest, RemoteMedia};

impl RemoteMedia for Core {
    fn on_remote(&self, request: MediaRequest) {
        let mut out = Decision::default();
        let verdict = self.handle(
            request.session,
            request.dialect,
            &request.app,
            &request.event,
            Some(&request.room),
            &mut out,
        );
        let Some(outbox) = self.outbox.get() else {
            return;
        };
        for delivery in out.deliveries {
            if let Payload::Event(event) = delivery.payload {
                outbox.deliver(delivery.to, event);
            }
        }
        match verdict {
            Verdict::Refuse(refusal) => {
                let room = request.event.room().map(str::to_owned);
                outbox.deliver(
                    request.session,
                    Event::error(refusal.code, room.as_deref(), refusal.message),
                );
            }
            // Not a stream this node serves (it ended here meanwhile): nothing to answer, as
            // the requester's node would relay it to nobody.
            Verdict::Continue | Verdict::Stop => {}
        }
    }

    fn on_remote_closed(&self, session: SessionId) {
        let keys = self.registry().remove_session(session);
        if !keys.is_empty() {
            let _ = self.send(Command::SessionClosed { session });
        }
    }

    fn rooms(&self) -> Vec<String> {
        self.registry().rooms()
    }

    fn home_lost(&self, node: &str) {
        let lost = self.forwarded().remove_node(node);
        let Some(outbox) = self.outbox.get() else {
            return;
        };
        for (key, remote) in lost {
            let direction = if remote.publish {
                MediaDirection::Publish
            } else {
                MediaDirection::Play
            };
            let state = MediaState {
                stream_id: key.stream_id.clone(),
                direction,
                room: None,
            };
            let end = Event::ConferenceReply(Box::new(ConferenceReply::MediaFinished(state)));
            outbox.deliver(key.session, end);
        }
    }

    fn homes(&self) -> Vec<Arc<str>> {
        self.forwarded().nodes()
    }

    fn media_room_of(&self, session: SessionId, event: &Event) -> Option<String> {
        let Event::Conference(request) = event else {
            return None;
        };
        let (direction, m) = match &request.command {
            ConferenceCommand::Publish(m) => (MediaDirection::Publish, m),
            ConferenceCommand::Play(m) => (MediaDirection::Play, m),
            _ => return None,
        };
        Some(self.media_room(session, direction, &m.stream_id, m.room.as_deref()))
    }
}
