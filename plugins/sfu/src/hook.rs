//! The hook's work ([`Core::handle`]): media requests served here or forwarded to the room's
//! home node ([`crate::homing`]), SDP and candidates for the media task, track toggles, stops
//! and leaves.

use std::sync::{Arc, MutexGuard, PoisonError};

use str0m::media::MediaKind;
use switchboard_plugin_api::event::conference::{
    ForceQuality, MediaDirection, ToggleTrack, TrackKind,
};
use switchboard_plugin_api::event::{
    ConferenceCommand, DialectKind, ErrorCode, Event, LeaveReason, SdpKind,
};
use switchboard_plugin_api::{Decision, SessionId, Verdict};

use crate::homing::{self, Forwarded, Home, MediaRequest};
use crate::registry::{Registry, StreamKey};
use crate::{Command, Core, Stats, refuse};

impl Core {
    /// Forwarding counters (for benchmarks and logs).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn forwarded(&self) -> MutexGuard<'_, Forwarded> {
        self.forwarded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `command` for the task; `false` if it is not running or its queue is full.
    pub(crate) fn send(&self, command: Command) -> bool {
        self.commands
            .get()
            .is_some_and(|tx| tx.try_send(command).is_ok())
    }

    /// The room a media request's stream belongs to. A `publish`: its main track; without
    /// one, the room the sender joined with this stream id (`joinRoom`, then `publish`: Ant's
    /// legacy conference flow); otherwise the stream is a room of its own, played by its id.
    /// A `play` names what to play in `streamId`, a stream or a room, and counts in the room
    /// of the stream it plays; `room` (only for the token check on one node) names the room
    /// of a stream this node does not know, which another node may serve.
    pub(crate) fn media_room(
        &self,
        me: SessionId,
        direction: MediaDirection,
        stream_id: &str,
        room: Option<&str>,
    ) -> String {
        match direction {
            MediaDirection::Publish => room
                .map(str::to_owned)
                .or_else(|| self.hub.participant_room(stream_id, me))
                .unwrap_or_else(|| stream_id.to_owned()),
            MediaDirection::Play => {
                if let Some(known) = self.registry().room_of(stream_id) {
                    return known.to_owned();
                }
                if let Some(known) = self.forwarded().room_of(stream_id) {
                    return known.to_owned();
                }
                match &self.homing {
                    Some(_) => room.unwrap_or(stream_id).to_owned(),
                    None => stream_id.to_owned(),
                }
            }
        }
    }

    /// A `publish` or `play` of a local session: served here, or forwarded to the room's
    /// home node (which answers the session through the cluster).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_media_request(
        &self,
        me: SessionId,
        app: &str,
        dialect: DialectKind,
        direction: MediaDirection,
        stream_id: &str,
        room: Option<&str>,
        event: &Event,
        out: &mut Decision,
    ) -> Verdict {
        let room = self.media_room(me, direction, stream_id, room);
        if let Some(homing) = &self.homing
            && let Home::Node(node) = homing.home(me, &room)
        {
            let key = StreamKey::new(me, stream_id);
            let publish = direction == MediaDirection::Publish;
            self.forwarded()
                .insert(key, Arc::clone(&node), room.clone(), publish);
            homing.forward(
                &node,
                MediaRequest {
                    session: me,
                    dialect,
                    app: app.to_owned(),
                    room,
                    event: event.clone(),
                },
            );
            return Verdict::Stop;
        }
        self.serve_media_request(me, app, dialect, direction, stream_id, room, out)
    }

    /// A `publish` or `play` this node serves: admitted within the limits and queued for the
    /// media task.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn serve_media_request(
        &self,
        me: SessionId,
        app: &str,
        dialect: DialectKind,
        direction: MediaDirection,
        stream_id: &str,
        room: String,
        out: &mut Decision,
    ) -> Verdict {
        let key = StreamKey::new(me, stream_id);
        let command = {
            let mut registry = self.registry();
            if let Err(refusal) = registry.admit(&self.settings, key.clone(), direction, &room) {
                return Verdict::Refuse(refusal);
            }
            if direction == MediaDirection::Publish {
                // Its application's checks (the conference plugin's, before this one) go with
                // the stream: a play through another application's URL meets them too.
                self.hub.media_app(stream_id, app);
            }
            match direction {
                MediaDirection::Publish => Command::Publish {
                    key: key.clone(),
                    room,
                },
                MediaDirection::Play => Command::Play { key: key.clone() },
            }
        };
        if !self.send(command) {
            self.registry().remove(&key);
            return refuse(
                ErrorCode::MediaCapacity,
                "the media plugin is busy or not running; try again",
            );
        }
        if direction == MediaDirection::Publish && dialect == DialectKind::Antmedia {
            // The SDK makes its offer once told to start (antmedia.md §3 `start`); a raw peer
            // sends its offer right after `switchboard.publish`.
            out.send(me, Event::notice(Event::Start, stream_id));
        }
        Verdict::Stop
    }

    /// Forwards `event` of `me`'s stream `stream_id` to the node that serves it, if another
    /// node does; `None` when this node serves it (or nobody does).
    pub(crate) fn forward_stream_event(
        &self,
        me: SessionId,
        dialect: DialectKind,
        stream_id: &str,
        event: &Event,
    ) -> Option<Verdict> {
        let homing = self.homing.as_ref()?;
        let key = StreamKey::new(me, stream_id);
        let (node, room) = {
            let forwarded = self.forwarded();
            let remote = forwarded.live(&key)?;
            (Arc::clone(&remote.node), remote.room.clone())
        };
        homing.forward(
            &node,
            MediaRequest {
                session: me,
                dialect,
                app: String::new(),
                room,
                event: event.clone(),
            },
        );
        Some(Verdict::Stop)
    }

    /// `stop` of a stream another node serves: forwarded once; the SDK's second `stop` is
    /// swallowed here. `None` when this node never forwarded it.
    pub(crate) fn forward_stop(
        &self,
        me: SessionId,
        dialect: DialectKind,
        event: &Event,
    ) -> Option<Verdict> {
        let homing = self.homing.as_ref()?;
        let room = event.room()?;
        let key = StreamKey::new(me, room);
        let (node, live) = self.forwarded().stop(&key)?;
        if live {
            homing.forward(
                &node,
                MediaRequest {
                    session: me,
                    dialect,
                    app: String::new(),
                    room: room.to_owned(),
                    event: event.clone(),
                },
            );
        }
        Some(Verdict::Stop)
    }

    /// `leaveFromRoom` of `room`: the streams other nodes serve for `me` in it end there too.
    pub(crate) fn forward_leave_room(
        &self,
        me: SessionId,
        dialect: DialectKind,
        room: &str,
        event: &Event,
    ) {
        let Some(homing) = &self.homing else {
            return;
        };
        let nodes = homing::distinct(self.forwarded().remove_in_room(me, room));
        for node in nodes {
            homing.forward(
                &node,
                MediaRequest {
                    session: me,
                    dialect,
                    app: String::new(),
                    room: room.to_owned(),
                    event: event.clone(),
                },
            );
        }
    }

    /// The hook's work for one event of `me` (a local session, or with `served_room` the
    /// stand-in of another node's session, whose room that node resolved).
    pub(crate) fn handle(
        &self,
        me: SessionId,
        dialect: DialectKind,
        app: &str,
        event: &Event,
        served_room: Option<&str>,
        out: &mut Decision,
    ) -> Verdict {
        let local = served_room.is_none();
        match event {
            Event::Conference(request) => {
                let app = if app.is_empty() { &request.app } else { app };
                let media = match &request.command {
                    ConferenceCommand::Publish(m) => Some((MediaDirection::Publish, m)),
                    ConferenceCommand::Play(m) => Some((MediaDirection::Play, m)),
                    _ => None,
                };
                if let Some((direction, m)) = media {
                    return match served_room {
                        None => self.on_media_request(
                            me,
                            app,
                            dialect,
                            direction,
                            &m.stream_id,
                            m.room.as_deref(),
                            event,
                            out,
                        ),
                        Some(room) => {
                            let room = match direction {
                                MediaDirection::Publish => room.to_owned(),
                                MediaDirection::Play => {
                                    self.media_room(me, direction, &m.stream_id, Some(room))
                                }
                            };
                            self.serve_media_request(
                                me,
                                app,
                                dialect,
                                direction,
                                &m.stream_id,
                                room,
                                out,
                            )
                        }
                    };
                }
                match &request.command {
                    ConferenceCommand::LeaveRoom(r) => {
                        // The conference plugin acknowledged it; the SDK has closed its
                        // connections already, so they end silently (no publish_finished/
                        // play_finished).
                        let keys = self.registry().remove_in_room(me, &r.room);
                        if !keys.is_empty() {
                            let _ = self.send(Command::Drop { keys });
                        }
                        if local {
                            self.forward_leave_room(me, dialect, &r.room, event);
                        }
                        Verdict::Continue
                    }
                    ConferenceCommand::ToggleTrack(t) => {
                        if local
                            && let Some(v) =
                                self.forward_stream_event(me, dialect, &t.stream_id, event)
                        {
                            return v;
                        }
                        self.toggle(me, t)
                    }
                    ConferenceCommand::ForceQuality(q) => {
                        if local
                            && let Some(v) =
                                self.forward_stream_event(me, dialect, &q.stream_id, event)
                        {
                            return v;
                        }
                        self.force_quality(me, q)
                    }
                    _ => Verdict::Continue,
                }
            }
            Event::Description(d) => {
                if local && let Some(v) = self.forward_stream_event(me, dialect, &d.room, event) {
                    return v;
                }
                let key = StreamKey::new(me, &d.room);
                if !self.registry().contains(&key) {
                    return Verdict::Continue;
                }
                if !matches!(d.kind, SdpKind::Offer | SdpKind::Answer) {
                    return refuse(
                        ErrorCode::InvalidField,
                        format!(
                            "the media server takes an offer or an answer, not {}",
                            d.kind.as_str()
                        ),
                    );
                }
                let command = Command::Description {
                    key,
                    kind: d.kind,
                    sdp: d.sdp.as_str().to_owned(),
                };
                if !self.send(command) {
                    return refuse(ErrorCode::MediaCapacity, "the media plugin is busy");
                }
                Verdict::Stop
            }
            Event::Candidate(c) => {
                if local && let Some(v) = self.forward_stream_event(me, dialect, &c.room, event) {
                    return v;
                }
                let key = StreamKey::new(me, &c.room);
                if !self.registry().contains(&key) {
                    return Verdict::Continue;
                }
                // A full queue drops a candidate, which ICE survives (peer-reflexive learning).
                let _ = self.send(Command::Candidate {
                    key,
                    candidate: c.candidate.as_str().to_owned(),
                });
                Verdict::Stop
            }
            Event::Leave(l) if l.reason != LeaveReason::Disconnect => {
                if local && let Some(v) = self.forward_stop(me, dialect, event) {
                    return v;
                }
                let key = StreamKey::new(me, &l.room);
                let mut registry = self.registry();
                let Some(direction) = registry.remove(&key) else {
                    // The SDK sends `stop` twice when it closes a stream; the second is ours too.
                    return if l.reason == LeaveReason::Stop && registry.ended(&key) {
                        Verdict::Stop
                    } else {
                        Verdict::Continue
                    };
                };
                drop(registry);
                let _ = self.send(Command::Stop { key, direction });
                Verdict::Stop
            }
            _ => Verdict::Continue,
        }
    }

    /// `forceStreamQuality` of a play stream this node serves.
    pub(crate) fn force_quality(&self, me: SessionId, q: &ForceQuality) -> Verdict {
        let key = StreamKey::new(me, &q.stream_id);
        if !self.registry().is_player(&key) {
            return refuse(
                ErrorCode::NoStream,
                format!("this connection does not play `{}`", q.stream_id),
            );
        }
        let command = Command::Quality {
            key,
            track_id: q.track_id.clone(),
            height: q.height,
        };
        if !self.send(command) {
            return refuse(ErrorCode::MediaCapacity, "the media plugin is busy");
        }
        Verdict::Stop
    }

    /// `toggleVideo`/`toggleAudio`/`enableTrack` of a stream this node serves.
    pub(crate) fn toggle(&self, me: SessionId, t: &ToggleTrack) -> Verdict {
        let key = StreamKey::new(me, &t.stream_id);
        if !self.registry().contains(&key) {
            return refuse(
                ErrorCode::NoStream,
                format!(
                    "this connection neither plays nor publishes `{}`",
                    t.stream_id
                ),
            );
        }
        let kinds = match t.kind {
            Some(TrackKind::Video) => vec![MediaKind::Video],
            Some(TrackKind::Audio) => vec![MediaKind::Audio],
            None => vec![MediaKind::Audio, MediaKind::Video],
        };
        let command = Command::Toggle {
            key,
            track_id: t.track_id.clone(),
            kinds,
            enabled: t.enabled,
        };
        if !self.send(command) {
            return refuse(ErrorCode::MediaCapacity, "the media plugin is busy");
        }
        Verdict::Stop
    }

    /// A session closed: its streams here end silently, and the nodes that serve its other
    /// streams are told.
    pub(crate) fn session_closed(&self, session: SessionId) {
        let keys = self.registry().remove_session(session);
        if !keys.is_empty() {
            let _ = self.send(Command::SessionClosed { session });
        }
        if let Some(homing) = &self.homing {
            let nodes = homing::distinct(self.forwarded().remove_session(session));
            for node in nodes {
                homing.closed(&node, session);
            }
        }
    }
}
