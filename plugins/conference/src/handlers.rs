//! One method per conference request, and the leave rules. Each answers the sender and stops
//! the pipeline (conference requests are this plugin's alone), or refuses.

use switchboard_plugin_api::event::conference::{
    Broadcast, BroadcastObject, Count, JoinRoom, JoinedRoom, LeftRoom, MediaRequest, MetaData,
    RoomInfo, RoomRequest, RoomStream, StreamInfo, SubtrackList, SubtrackQuery, TrackList,
};
use switchboard_plugin_api::event::{
    ConferenceCommand, ConferenceReply, ConferenceRequest, ErrorCode, Event, JoinMode, LeaveReason,
};
use switchboard_plugin_api::{Decision, EventContext, Peer, SessionId, Verdict};

use crate::hub::{Hub, MediaStream, Participant, State, random_id};
use crate::records::TokenType;
use crate::security::{self, Access, Resolved, TokenCheck};
use crate::{Conference, is_participant, now, refuse};

/// Most subtracks one `getSubtracks` page returns.
const MAX_SUBTRACK_PAGE: usize = 100;

/// What Ant calls a stream that exists but sends no media to the server.
const STATUS: &str = "created";

/// What Ant calls a stream whose media reaches the server (a publisher of the `sfu` plugin
/// with ICE and DTLS up).
const BROADCASTING: &str = "broadcasting";

impl Conference {
    pub(crate) fn on_request(
        &self,
        cx: &EventContext<'_>,
        request: &ConferenceRequest,
        out: &mut Decision,
    ) -> Verdict {
        let app = app_of(cx, &request.app);
        let reply = match &request.command {
            ConferenceCommand::JoinRoom(j) => self.join_room(cx, app, j),
            ConferenceCommand::LeaveRoom(r) => self.leave_room(cx, r),
            ConferenceCommand::GetRoomInfo(r) => self.room_info(cx, r),
            ConferenceCommand::GetStreamInfo(s) => self.stream_info(cx, &s.stream_id),
            ConferenceCommand::GetTrackList(s) => Ok(self.track_list(cx, &s.stream_id)),
            ConferenceCommand::GetBroadcastObject(s) => self.broadcast_object(cx, &s.stream_id),
            ConferenceCommand::GetSubtracks(q) => Ok(self.subtracks(cx, q)),
            ConferenceCommand::GetSubtrackCount(q) => Ok(self.subtrack_count(cx, q)),
            ConferenceCommand::GetSubscriberCount(s) => {
                Ok(ConferenceReply::SubscriberCount(Count {
                    stream_id: s.stream_id.clone(),
                    count: cx.room.members.len() as u64,
                }))
            }
            ConferenceCommand::UpdateMetaData(m) => self.update_meta_data(cx, m),
            ConferenceCommand::Publish(m) => {
                Err(self.media(cx.from().session, app, m, TokenType::Publish))
            }
            ConferenceCommand::Play(m) => {
                Err(self.media(cx.from().session, app, m, TokenType::Play))
            }
            // Track control is the media plugin's (`sfu`, after this one).
            ConferenceCommand::ToggleTrack(_) | ConferenceCommand::ForceQuality(_) => {
                Err(Verdict::Continue)
            }
            // A command added to the protocol before this plugin learned it.
            _ => Err(refuse(
                ErrorCode::Unsupported,
                format!(
                    "`{}` is not served by the conference plugin",
                    request.command.ant_name()
                ),
            )),
        };
        match reply {
            // The media plugin after this one ends the leaver's streams in the room too (the
            // SDK closes its connections without a `stop` of each).
            Ok(reply @ ConferenceReply::LeftRoom(_)) => {
                out.send(cx.from().session, Event::ConferenceReply(Box::new(reply)));
                Verdict::Continue
            }
            Ok(reply) => {
                out.send(cx.from().session, Event::ConferenceReply(Box::new(reply)));
                Verdict::Stop
            }
            Err(verdict) => verdict,
        }
    }

    /// A leave of the event's room (`leave`, `stop`, or the connection closing). A conference
    /// participant's leave is this plugin's (acknowledged with `leavedFromRoom` unless the
    /// connection closed); a `stop` of a participant's own stream is a no-op; the rest goes on
    /// to the router.
    pub(crate) fn on_leave(
        &self,
        cx: &EventContext<'_>,
        reason: LeaveReason,
        out: &mut Decision,
    ) -> Verdict {
        let me = cx.from().session;
        let room = cx.room.room;
        let mut state = self.hub.state();
        if is_participant(cx) {
            let left = state.leave(room, me);
            if reason != LeaveReason::Disconnect {
                let reply = ConferenceReply::LeftRoom(LeftRoom {
                    room: room.to_owned(),
                    stream_id: left.map(|p| p.stream_id),
                });
                out.send(me, Event::ConferenceReply(Box::new(reply)));
            }
            return Verdict::Stop;
        }
        // The SDK stops a stream it tried to publish before retrying; there is nothing to stop.
        // A stream the media plugin publishes is its to stop (the legacy flow: `joinRoom`,
        // `publish` of the participant's stream, `stop` of it).
        if reason == LeaveReason::Stop
            && state
                .streams
                .get(room)
                .is_some_and(|(_, owner)| *owner == me)
            && !state.media.contains_key(room)
        {
            return Verdict::Stop;
        }
        Verdict::Continue
    }

    fn join_room(
        &self,
        cx: &EventContext<'_>,
        app: &str,
        j: &JoinRoom,
    ) -> Result<ConferenceReply, Verdict> {
        let me = cx.from().session;
        let room = j.room.as_str();
        if cx
            .room
            .members
            .iter()
            .any(|p| p.session == me && p.mode != JoinMode::Conference)
        {
            return Err(refuse(
                ErrorCode::Refused,
                format!(
                    "you are in room `{room}` as a peer-to-peer peer; leave it before joining it as a conference participant"
                ),
            ));
        }
        let now = now();
        let mut state = self.hub.state();
        if let Some(record) = state.rooms.get(room)
            && !record.is_open(now)
        {
            return Err(refuse(
                ErrorCode::RoomNotActive,
                format!(
                    "room `{room}` is open from {} to {} (Unix seconds), not at {now}",
                    record.start_date, record.end_date
                ),
            ));
        }
        if let Some(p) = state.participant(room, me) {
            // A repeated joinRoom is acknowledged again and changes nothing.
            let stream_id = p.stream_id.clone();
            return Ok(self.joined(&state, cx, stream_id));
        }
        let participants = cx
            .room
            .members
            .iter()
            .filter(|p| p.mode == JoinMode::Conference)
            .count();
        if participants >= self.settings.max_participants {
            return Err(refuse(
                ErrorCode::RoomFull,
                format!("room `{room}` already has {participants} participants"),
            ));
        }
        let stream_id = match &j.stream_id {
            Some(id) if state.streams.contains_key(id) => {
                return Err(refuse(
                    ErrorCode::StreamIdInUse,
                    format!("stream id `{id}` is in use by another participant"),
                ));
            }
            Some(id) => id.clone(),
            None => loop {
                let id = random_id();
                if !state.streams.contains_key(&id) {
                    break id;
                }
            },
        };
        // The token last, so that a join refused for another reason does not use it up. A room
        // created through the REST API is held to the checks of the application that made it,
        // whichever application's URL the join comes through.
        let owner = Hub::room_owner(&state, room);
        let used = self.check_token(
            &mut state,
            me,
            owner.as_deref().unwrap_or(app),
            |a| a.join_room,
            j.token.as_deref(),
            Access {
                stream: room,
                kind: TokenType::Play,
                room: Some(room),
            },
            now,
        )?;
        state.join(
            room,
            me,
            Participant {
                stream_id: stream_id.clone(),
                stream_name: j.stream_name.clone().unwrap_or_default(),
                meta_data: j.meta_data.clone().unwrap_or_default(),
                role: j.role.clone().unwrap_or_default(),
                app: owner.unwrap_or_else(|| app.to_owned()),
            },
        );
        let reply = self.joined(&state, cx, stream_id);
        drop(state);
        if let Some(token) = used {
            self.hub.forget_token(token);
        }
        Ok(reply)
    }

    fn joined(&self, state: &State, cx: &EventContext<'_>, stream_id: String) -> ConferenceReply {
        let me = cx.from().session;
        ConferenceReply::JoinedRoom(JoinedRoom {
            room: cx.room.room.to_owned(),
            stream_id,
            streams: streams(state, cx, |session, _| session != me),
            max_track_count: self.settings.max_track_count,
        })
    }

    fn leave_room(
        &self,
        cx: &EventContext<'_>,
        r: &RoomRequest,
    ) -> Result<ConferenceReply, Verdict> {
        let me = cx.from().session;
        if cx
            .room
            .members
            .iter()
            .any(|p| p.session == me && p.mode != JoinMode::Conference)
        {
            return Err(refuse(
                ErrorCode::Refused,
                format!(
                    "you are in room `{}` as a peer-to-peer peer; leave it with `leave`",
                    r.room
                ),
            ));
        }
        // Leaving a room one is not in is acknowledged all the same, as AMS does.
        let left = self.hub.state().leave(&r.room, me);
        Ok(ConferenceReply::LeftRoom(LeftRoom {
            room: r.room.clone(),
            stream_id: left.map(|p| p.stream_id).or_else(|| r.stream_id.clone()),
        }))
    }

    fn room_info(
        &self,
        cx: &EventContext<'_>,
        r: &RoomRequest,
    ) -> Result<ConferenceReply, Verdict> {
        let me = cx.from().session;
        let state = self.hub.state();
        let list = streams(&state, cx, |session, id| {
            session != me && Some(id) != r.stream_id.as_deref()
        });
        if list.is_empty() {
            return Err(refuse(
                ErrorCode::RoomEmpty,
                format!("no streams in room `{}` besides yours", r.room),
            ));
        }
        Ok(ConferenceReply::RoomInfo(RoomInfo {
            room: r.room.clone(),
            streams: list,
        }))
    }

    fn stream_info(&self, cx: &EventContext<'_>, stream: &str) -> Result<ConferenceReply, Verdict> {
        let state = self.hub.state();
        let live = state.streams.contains_key(stream)
            || state.media.contains_key(stream)
            || !cx.room.members.is_empty()
            || !state.media_in(stream).is_empty();
        if !live {
            return Err(refuse(
                ErrorCode::NoStream,
                format!("stream `{stream}` is not active"),
            ));
        }
        Ok(ConferenceReply::StreamInfo(StreamInfo {
            stream_id: stream.to_owned(),
            infos: Vec::new(),
        }))
    }

    fn track_list(&self, cx: &EventContext<'_>, stream: &str) -> ConferenceReply {
        let state = self.hub.state();
        ConferenceReply::TrackList(TrackList {
            stream_id: stream.to_owned(),
            tracks: streams(&state, cx, |_, _| true)
                .into_iter()
                .map(|s| s.stream_id)
                .collect(),
        })
    }

    fn broadcast_object(
        &self,
        cx: &EventContext<'_>,
        stream: &str,
    ) -> Result<ConferenceReply, Verdict> {
        let state = self.hub.state();
        let broadcast = if let Some((room, session)) = state.streams.get(stream) {
            let p = state.participant(room, *session);
            let mut b = subtrack(
                room,
                RoomStream {
                    stream_id: stream.to_owned(),
                    stream_name: p.map(|p| p.stream_name.clone()).unwrap_or_default(),
                    meta_data: p.map(|p| p.meta_data.clone()).unwrap_or_default(),
                },
                p.map(|p| p.role.clone()).unwrap_or_default(),
            );
            b.status = media_status(state.media.get(stream)).to_owned();
            b
        } else if let Some(m) = state.media.get(stream).filter(|m| m.room != stream) {
            let mut b = subtrack(&m.room, media_stream(stream), String::new());
            b.status = media_status(Some(m)).to_owned();
            b
        } else if !cx.room.members.is_empty()
            || state.rooms.contains_key(stream)
            || state.media.contains_key(stream)
            || !state.media_in(stream).is_empty()
        {
            let (start, end) = state
                .rooms
                .get(stream)
                .map_or((0, 0), |r| (r.start_date, r.end_date));
            Broadcast {
                stream_id: stream.to_owned(),
                name: stream.to_owned(),
                status: media_status(state.media.get(stream)).to_owned(),
                meta_data: String::new(),
                role: String::new(),
                main_track_stream_id: None,
                sub_track_stream_ids: streams(&state, cx, |_, _| true)
                    .into_iter()
                    .map(|s| s.stream_id)
                    .collect(),
                planned_start_date: start,
                planned_end_date: end,
            }
        } else {
            return Err(refuse(
                ErrorCode::NoStream,
                format!("no stream or room `{stream}`"),
            ));
        };
        Ok(ConferenceReply::BroadcastObject(BroadcastObject {
            stream_id: stream.to_owned(),
            broadcast,
        }))
    }

    /// The room's members and the media plugin's publishers into it as subtracks, filtered by
    /// role.
    fn subtrack_objects(&self, cx: &EventContext<'_>, role: Option<&str>) -> Vec<Broadcast> {
        let state = self.hub.state();
        let room = cx.room.room;
        let mut list: Vec<Broadcast> = cx
            .room
            .members
            .iter()
            // Another node's participant (a proxy here) is listed below as its node listed it.
            .filter(|peer| {
                peer.mode != JoinMode::Conference || participant_of(&state, room, peer).is_some()
            })
            .map(|peer| {
                let role = participant_of(&state, room, peer).map(|p| p.role.clone());
                let mut b = subtrack(
                    room,
                    member_stream(&state, room, peer),
                    role.unwrap_or_default(),
                );
                b.status = media_status(state.media.get(&b.stream_id)).to_owned();
                b
            })
            .collect();
        for (id, m) in state.media_in(room) {
            if !list.iter().any(|b| b.stream_id == id) {
                let mut b = subtrack(room, media_stream(id), String::new());
                b.status = media_status(Some(m)).to_owned();
                list.push(b);
            }
        }
        for remote in state.remote_in(room) {
            if !list.iter().any(|b| b.stream_id == remote.stream_id) {
                let stream = RoomStream {
                    stream_id: remote.stream_id.clone(),
                    stream_name: remote.stream_name.clone(),
                    meta_data: remote.meta_data.clone(),
                };
                let mut b = subtrack(room, stream, remote.role.clone());
                b.status = if remote.broadcasting {
                    BROADCASTING
                } else {
                    STATUS
                }
                .to_owned();
                list.push(b);
            }
        }
        list.retain(|b| role.is_none_or(|r| b.role == r));
        list
    }

    fn subtracks(&self, cx: &EventContext<'_>, q: &SubtrackQuery) -> ConferenceReply {
        let size = q
            .size
            .map_or(MAX_SUBTRACK_PAGE, |s| s as usize)
            .min(MAX_SUBTRACK_PAGE);
        ConferenceReply::SubtrackList(SubtrackList {
            stream_id: q.stream_id.clone(),
            subtracks: self
                .subtrack_objects(cx, q.role.as_deref())
                .into_iter()
                .skip(q.offset as usize)
                .take(size)
                .collect(),
        })
    }

    fn subtrack_count(&self, cx: &EventContext<'_>, q: &SubtrackQuery) -> ConferenceReply {
        let count = self
            .subtrack_objects(cx, q.role.as_deref())
            .iter()
            .filter(|b| q.status.as_deref().is_none_or(|s| b.status == s))
            .count();
        ConferenceReply::SubtrackCount(Count {
            stream_id: q.stream_id.clone(),
            count: count as u64,
        })
    }

    fn update_meta_data(
        &self,
        cx: &EventContext<'_>,
        m: &MetaData,
    ) -> Result<ConferenceReply, Verdict> {
        let me = cx.from().session;
        let mut state = self.hub.state();
        let Some((room, owner)) = state.streams.get(&m.stream_id).cloned() else {
            return Err(refuse(
                ErrorCode::NoStream,
                format!("no participant stream `{}`", m.stream_id),
            ));
        };
        if owner != me {
            return Err(refuse(
                ErrorCode::Refused,
                format!("stream `{}` belongs to another participant", m.stream_id),
            ));
        }
        if let Some(p) = state.participants.get_mut(&(room.clone(), owner)) {
            p.meta_data = m.meta_data.clone();
        }
        // The other nodes list the new metadata too.
        state.relist(&room, owner);
        Ok(ConferenceReply::MetaDataUpdated(m.clone()))
    }

    /// `publish` and `play`: the token check, then the request goes on to the media plugin
    /// (`sfu`) after this one. Without one the gateway refuses it with
    /// `media_plugin_not_running`.
    fn media(&self, session: SessionId, app: &str, m: &MediaRequest, kind: TokenType) -> Verdict {
        let mut state = self.hub.state();
        // Into (or of) a room created through the REST API: its creator's checks apply.
        let owner = m
            .room
            .iter()
            .chain([&m.stream_id])
            .find_map(|id| Hub::room_owner(&state, id));
        let used = self.check_token(
            &mut state,
            session,
            owner.as_deref().unwrap_or(app),
            |a| match kind {
                TokenType::Publish => a.publish,
                TokenType::Play => a.play,
            },
            m.token.as_deref(),
            Access {
                stream: &m.stream_id,
                kind,
                room: m.room.as_deref(),
            },
            now(),
        );
        drop(state);
        self.verdict_of_check(used)
    }

    /// The verdict of a [`Self::check_token`] that ends the handling of an event: a refusal
    /// as it is, else `Continue` once a used-up one-time token is deleted from the store (after
    /// the state lock is dropped, which the caller has done).
    fn verdict_of_check(&self, used: Result<Option<String>, Verdict>) -> Verdict {
        match used {
            Err(verdict) => verdict,
            Ok(used) => {
                if let Some(token) = used {
                    self.hub.forget_token(token);
                }
                Verdict::Continue
            }
        }
    }

    /// Runs the check `which` of the settings that cover application `app` (empty: the
    /// request names none; see [`crate::security::Apps::resolve`]). Returns a used-up one-time
    /// token to delete from the store.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_token(
        &self,
        state: &mut State,
        session: SessionId,
        app: &str,
        which: impl Fn(&crate::AppSecurityConfig) -> TokenCheck,
        token: Option<&str>,
        access: Access<'_>,
        now: i64,
    ) -> Result<Option<String>, Verdict> {
        let settings = match self.hub.apps().resolve(app) {
            Resolved::Open => return Ok(None),
            Resolved::Refused(reason) => return Err(refuse(ErrorCode::Unauthorized, reason)),
            Resolved::App(settings) => settings,
        };
        let one_time = token.filter(|_| which(&settings.config) == TokenCheck::OneTime);
        if let Some(token) = one_time {
            // A cluster's nodes share the token: the copy read (and, if good once, taken)
            // before the room was locked is the one checked.
            self.hub.present_claim(state, session, token);
        }
        let used = security::check(
            settings,
            which(&settings.config),
            token,
            access,
            &mut state.tokens,
            now,
        );
        if let Some(token) = one_time {
            let spent = matches!(&used, Ok(Some(_)));
            self.hub.after_check(state, session, token, spent);
        }
        used.map_err(|reason| refuse(ErrorCode::Unauthorized, reason))
    }

    /// A join (any dialect: Ant P2P `join`, raw `/ws/{room}`, socket.io) into a conference room
    /// (one the REST API created, or one with participants) is an entry into that room like
    /// `joinRoom`, so it is held to the same `join_room` check: of the application that created
    /// the room through the REST API, else of the application of an Ant peer's URL, else of the
    /// default application (raw and socket.io peers name none). Other rooms are peer-to-peer
    /// rooms, not this plugin's.
    pub(crate) fn on_join(&self, cx: &EventContext<'_>, token: Option<&str>) -> Verdict {
        let room = cx.room.room;
        let me = cx.from().session;
        let mut state = self.hub.state();
        let conference_room = state.rooms.contains_key(room)
            || cx
                .room
                .members
                .iter()
                .any(|p| p.mode == JoinMode::Conference);
        if !conference_room || cx.room.contains(me) {
            return Verdict::Continue;
        }
        let owner = Hub::room_owner(&state, room);
        let used = self.check_token(
            &mut state,
            me,
            owner.as_deref().unwrap_or(app_of(cx, "")),
            |a| a.join_room,
            token,
            Access {
                stream: room,
                kind: TokenType::Play,
                room: Some(room),
            },
            now(),
        );
        drop(state);
        self.verdict_of_check(used)
    }
}

/// The application whose stream security applies to the sender's event: its connection's (the
/// `{app}` of an Ant peer's URL, for every command alike, a P2P `join` included), else the one
/// the request names (empty for raw and socket.io peers: the default application).
fn app_of<'a>(cx: &EventContext<'a>, named: &'a str) -> &'a str {
    cx.app.unwrap_or(named)
}

/// The participant record of a conference member.
fn participant_of<'s>(state: &'s State, room: &str, peer: &Peer) -> Option<&'s Participant> {
    (peer.mode == JoinMode::Conference)
        .then(|| state.participant(room, peer.session))
        .flatten()
}

/// How a member of `room` appears in room information: a participant with its own stream; any
/// other peer (P2P Ant, socket.io, raw) as `<dialect>-<session>`, named after its dialect.
fn member_stream(state: &State, room: &str, peer: &Peer) -> RoomStream {
    match participant_of(state, room, peer) {
        Some(p) => RoomStream {
            stream_id: p.stream_id.clone(),
            stream_name: p.stream_name.clone(),
            meta_data: p.meta_data.clone(),
        },
        None => RoomStream {
            stream_id: peer_stream_id(peer.dialect.as_str(), peer.session),
            stream_name: peer.dialect.as_str().to_owned(),
            meta_data: String::new(),
        },
    }
}

fn peer_stream_id(dialect: &str, session: SessionId) -> String {
    format!("{dialect}-{session}")
}

/// The streams of the event's room that `keep(session, stream_id)` accepts: its members in
/// join order, then the media plugin's publishers into it that are not members (a page that
/// publishes with the room as main track without `joinRoom`), in publish order.
fn streams(
    state: &State,
    cx: &EventContext<'_>,
    keep: impl Fn(SessionId, &str) -> bool,
) -> Vec<RoomStream> {
    let mut list: Vec<(SessionId, RoomStream)> = cx
        .room
        .members
        .iter()
        // A conference member without a participant record here is another node's (its
        // proxy): it is listed below as that node registered it.
        .filter(|peer| {
            peer.mode != JoinMode::Conference || participant_of(state, cx.room.room, peer).is_some()
        })
        .map(|peer| (peer.session, member_stream(state, cx.room.room, peer)))
        .collect();
    for (id, m) in state.media_in(cx.room.room) {
        if !list.iter().any(|(_, s)| s.stream_id == id) {
            list.push((m.session, media_stream(id)));
        }
    }
    for remote in state.remote_in(cx.room.room) {
        if !list.iter().any(|(_, s)| s.stream_id == remote.stream_id) {
            // No session of this node: `keep` tells it from the asker by its stream id.
            let stream = RoomStream {
                stream_id: remote.stream_id.clone(),
                stream_name: remote.stream_name.clone(),
                meta_data: remote.meta_data.clone(),
            };
            list.push((SessionId(u64::MAX), stream));
        }
    }
    list.into_iter()
        .filter(|(session, s)| keep(*session, &s.stream_id))
        .map(|(_, s)| s)
        .collect()
}

/// A media plugin publisher that is not a participant, as room information shows it (the
/// `publish` command's name and metadata are not kept).
fn media_stream(stream_id: &str) -> RoomStream {
    RoomStream {
        stream_id: stream_id.to_owned(),
        stream_name: String::new(),
        meta_data: String::new(),
    }
}

/// Ant's status of a stream: `broadcasting` once the media plugin carries its media.
fn media_status(media: Option<&MediaStream>) -> &'static str {
    if media.is_some_and(|m| m.broadcasting) {
        BROADCASTING
    } else {
        STATUS
    }
}

/// A subtrack's broadcast object.
fn subtrack(room: &str, s: RoomStream, role: String) -> Broadcast {
    Broadcast {
        stream_id: s.stream_id,
        name: s.stream_name,
        status: STATUS.to_owned(),
        meta_data: s.meta_data,
        role,
        main_track_stream_id: Some(room.to_owned()),
        sub_track_stream_ids: Vec::new(),
        planned_start_date: 0,
        planned_end_date: 0,
    }
}
