//! With a cluster catalog, what an event is decided with is read from Redis *before* the
//! gateway locks the event's room ([`Hub::prepare`]), and what the decision did not use is
//! given back after it ([`Hub::settle`]). The hook itself then reads only memory: a Redis that
//! is slow or frozen delays the request that needs it, never the other dispatches of its room,
//! nor anything behind the hub's state lock (other rooms' token checks, leaves, REST calls).
//!
//! One-time tokens keep their rule, "used once across the cluster": a token good once (bound to
//! a stream, not a room) is taken before the lock with `DEL`, which Redis answers 1 for exactly
//! one caller on any node; the hook then checks it like any token. A join refused for another
//! reason (room full, wrong stream, not open yet) has not used it: [`Hub::settle`] writes it
//! back. Between the two another request for the same token is refused as already used.

use switchboard_plugin_api::SessionId;
use switchboard_plugin_api::event::{ConferenceCommand, Event};

use crate::hub::Hub;
use crate::records::{TokenRecord, TokenType};
use crate::security::{AppSecurityConfig, Resolved, TokenCheck};

/// What a dispatch of one event reads from the cluster's catalog before its room is locked.
#[derive(Debug, Clone)]
pub struct Prefetch {
    /// Room (or stream) ids whose REST records the decision reads: their dates, and the
    /// owner whose checks apply.
    rooms: Vec<String>,
    /// The room whose other nodes' streams the answer lists.
    remote: Option<String>,
    /// The token the event carries, with what it asks for.
    token: Option<Wanted>,
    /// The application the request comes through (empty: the default one).
    app: String,
}

/// A token and the access it is checked for.
#[derive(Debug, Clone)]
struct Wanted {
    id: String,
    kind: TokenType,
    stream: String,
    check: fn(&AppSecurityConfig) -> TokenCheck,
}

/// A one-time token read (and, if good only once, taken) for a session's dispatch.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub record: TokenRecord,
    /// Taken from the catalog (`DEL` answered 1): written back unless the hook used it.
    pub taken: bool,
}

/// What `event`, sent through application `app` (an Ant peer's URL), reads from the cluster's
/// catalog; `None` for events the conference plugin decides from memory (relays, leaves, track
/// toggles, metadata updates). Cheap: called on every join and conference request.
pub fn prefetch_of(event: &Event, app: Option<&str>) -> Option<Prefetch> {
    match event {
        Event::Join(join) => Some(Prefetch {
            rooms: vec![join.room.clone()],
            remote: None,
            token: join.token.clone().map(|id| Wanted {
                id,
                kind: TokenType::Play,
                stream: join.room.clone(),
                check: |a| a.join_room,
            }),
            app: app.unwrap_or_default().to_owned(),
        }),
        Event::Conference(request) => {
            let room = request.target().to_owned();
            let app = app.unwrap_or(&request.app).to_owned();
            let (rooms, token) = match &request.command {
                ConferenceCommand::JoinRoom(j) => (
                    vec![room.clone()],
                    j.token.clone().map(|id| Wanted {
                        id,
                        kind: TokenType::Play,
                        stream: room.clone(),
                        check: |a| a.join_room,
                    }),
                ),
                ConferenceCommand::Publish(m) | ConferenceCommand::Play(m) => {
                    let publish = matches!(request.command, ConferenceCommand::Publish(_));
                    let mut rooms: Vec<String> = m.room.iter().cloned().collect();
                    if !rooms.contains(&m.stream_id) {
                        rooms.push(m.stream_id.clone());
                    }
                    let token = m.token.clone().map(|id| Wanted {
                        id,
                        kind: if publish {
                            TokenType::Publish
                        } else {
                            TokenType::Play
                        },
                        stream: m.stream_id.clone(),
                        check: if publish { |a| a.publish } else { |a| a.play },
                    });
                    (rooms, token)
                }
                // Answered from this node's memory alone.
                ConferenceCommand::LeaveRoom(_)
                | ConferenceCommand::ToggleTrack(_)
                | ConferenceCommand::ForceQuality(_)
                | ConferenceCommand::UpdateMetaData(_)
                | ConferenceCommand::GetSubscriberCount(_) => return None,
                _ => (vec![room.clone()], None),
            };
            Some(Prefetch {
                rooms,
                remote: Some(room),
                token,
                app,
            })
        }
        _ => None,
    }
}

impl Hub {
    /// With a cluster catalog: reads what `p` names into the cache, and takes a one-time token
    /// good once for `session`'s dispatch (see the module). Blocks on Redis (each call bounded
    /// by the catalog's timeout): call it off the runtime's workers, before the room is
    /// locked. Without a cluster catalog: nothing.
    pub fn prepare(&self, session: SessionId, p: &Prefetch) {
        if self.shared().is_none() {
            return;
        }
        for room in &p.rooms {
            self.refresh_room(room);
        }
        if let Some(room) = &p.remote {
            self.refresh_remote_streams(room);
        }
        let Some(wanted) = &p.token else {
            return;
        };
        let owner = {
            let state = self.state();
            p.rooms.iter().find_map(|id| Hub::room_owner(&state, id))
        };
        let one_time = match self.apps().resolve(owner.as_deref().unwrap_or(&p.app)) {
            Resolved::App(settings) => (wanted.check)(&settings.config) == TokenCheck::OneTime,
            Resolved::Open | Resolved::Refused(_) => false,
        };
        if one_time && let Some(claimed) = self.take_token(wanted) {
            self.state()
                .claims
                .insert((session, wanted.id.clone()), claimed);
        }
    }

    /// Reads token `wanted` from the catalog and, when it is good only once and for this very
    /// request, takes it (`DEL`: 1 for exactly one caller across the cluster). `None`: unknown,
    /// used up (here or on another node) or unreadable; the hook then refuses it.
    fn take_token(&self, wanted: &Wanted) -> Option<Claimed> {
        let shared = self.shared()?;
        let record = match shared.token(&wanted.id) {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the cluster's one-time tokens; the token is refused.");
                return None;
            }
        };
        // A token bound to a room is not used up; one for another stream or kind is refused by
        // the hook without being used.
        let once = record.room_id.is_none()
            && record.stream_id == wanted.stream
            && record.kind == wanted.kind;
        if !once {
            return Some(Claimed {
                record,
                taken: false,
            });
        }
        match shared.use_token(&wanted.id) {
            Ok(true) => Some(Claimed {
                record,
                taken: true,
            }),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot use up a one-time token in the cluster's Redis; it is refused.");
                None
            }
        }
    }

    /// Whether [`Self::settle`] has anything to do for `session` (memory only).
    pub fn has_claims(&self, session: SessionId) -> bool {
        self.state().claims.keys().any(|(s, _)| *s == session)
    }

    /// After `session`'s dispatch: writes back the tokens [`Self::prepare`] took that the
    /// decision did not use (the event was refused before or by its token check). Blocks on
    /// Redis like [`Self::prepare`]; call it after the room's lock is released.
    pub fn settle(&self, session: SessionId) {
        let unused: Vec<Claimed> = {
            let mut state = self.state();
            let keys: Vec<_> = state
                .claims
                .keys()
                .filter(|(s, _)| *s == session)
                .cloned()
                .collect();
            keys.iter()
                .filter_map(|k| state.claims.remove(k))
                .filter(|c| c.taken)
                .collect()
        };
        let Some(shared) = self.shared() else {
            return;
        };
        for claimed in unused {
            if let Err(e) = shared.put_token(&claimed.record) {
                tracing::warn!(error = %e, "A one-time token taken for a refused request could not be written back; it is lost.");
            }
        }
    }

    /// In the hook, before a one-time check of `token` for `session`: with a cluster catalog,
    /// the token as [`Self::prepare`] read it is the only copy the check sees (none: refused).
    pub(crate) fn present_claim(
        &self,
        state: &mut crate::hub::State,
        session: SessionId,
        token: &str,
    ) {
        if self.shared().is_none() {
            return;
        }
        state.tokens.remove(token);
        if let Some(claimed) = state.claims.get(&(session, token.to_owned())) {
            state
                .tokens
                .insert(token.to_owned(), claimed.record.clone());
        }
    }

    /// In the hook, after a one-time check of `token`: with a cluster catalog, the cache forgets
    /// it, and a token the check used is spent (not written back).
    pub(crate) fn after_check(
        &self,
        state: &mut crate::hub::State,
        session: SessionId,
        token: &str,
        used: bool,
    ) {
        if self.shared().is_none() {
            return;
        }
        state.tokens.remove(token);
        if used {
            state.claims.remove(&(session, token.to_owned()));
        }
    }
}

#[cfg(test)]
#[path = "prefetch_tests.rs"]
mod tests;
