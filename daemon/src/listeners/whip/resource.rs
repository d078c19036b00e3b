//! The WHIP/WHEP resources and the gateway session behind each: a session of the `raw` kind
//! that sends the media requests a raw peer sends (`publish` or `play`, the offer, candidates),
//! so the plugins treat it as they treat one, and that lives until `DELETE`, the end of its
//! media (ICE failure, the media plugin's timeout), a kick or shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use crate::envelope::Envelope;
use axum::http::StatusCode;
use switchboard_plugin_api::Peer;
use switchboard_protocol::conference::MediaRequest;
use switchboard_protocol::whip::{SdpFrag, ice_ufrag};
use switchboard_protocol::{
    Candidate, ConferenceCommand, ConferenceReply, ConferenceRequest, Description, DialectKind,
    ErrorCode, Event, SdpKind,
};
use tokio_util::sync::CancellationToken;

use super::checks::Refusal;

use crate::gateway::{self, Gateway, Inbox, Outbound};
use crate::limits::Permit;
use crate::listeners::ListenerContext;

/// How long a `POST` waits for the media plugin's answer before it gives up (`504`).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a resource whose media ended on its own still answers `DELETE` (`whip-whep` and
/// browsers close the peer connection first, then send `DELETE`).
const ENDED_GRACE: Duration = Duration::from_secs(10);

/// Ingest or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /whip/{room}`: publish into the room.
    Whip,
    /// `POST /whep/{room}`: play the room.
    Whep,
}

impl Endpoint {
    /// The path segment, and the `dialect` label of its refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Whip => "whip",
            Endpoint::Whep => "whep",
        }
    }
}

/// What a `POST` brings, checked.
#[derive(Debug)]
pub struct Opening {
    pub endpoint: Endpoint,
    /// The Ant application of an `/{app}/whip/…` path, whose stream security applies
    /// (`None`: the default application's).
    pub app: Option<String>,
    pub room: String,
    /// WHIP: the stream id asked for (`?streamId=`).
    pub stream_id: Option<String>,
    /// The bearer token.
    pub token: Option<String>,
    pub addr: SocketAddr,
    /// Its place under the session caps, held for the resource's life.
    pub permit: Permit,
}

/// A `POST` that worked.
#[derive(Debug)]
pub struct Opened {
    /// The resource's path.
    pub location: String,
    /// The SDP answer.
    pub answer: String,
}

/// One live resource.
#[derive(Debug)]
pub struct Resource {
    id: String,
    endpoint: Endpoint,
    app: Option<String>,
    room: String,
    /// The stream id of its media requests (WHIP: the publisher's; WHEP: the room).
    stream_id: String,
    peer: Peer,
    /// The `POST`'s token: `PATCH` and `DELETE` must bring the same.
    token: Option<String>,
    /// The offer's ICE username fragment: a `PATCH` with another one is an ICE restart.
    ufrag: Option<String>,
    /// Cancelled by `DELETE`.
    end: CancellationToken,
    /// Its session ended on its own (the media connection closed): kept a little while so
    /// that the client's `DELETE`, which often follows its own close of the connection, is
    /// answered `200` rather than `404`.
    ended: AtomicBool,
}

/// Every live resource by id. Ids are 128 random bits, so a resource is reached only by
/// whoever was given its `Location`. Bounded by the session caps: each holds a session place.
static RESOURCES: LazyLock<Mutex<HashMap<String, Arc<Resource>>>> = LazyLock::new(Default::default);

fn table() -> std::sync::MutexGuard<'static, HashMap<String, Arc<Resource>>> {
    RESOURCES.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Resource {
    /// Registers the session, sends its media request and the offer through the pipeline, and
    /// waits for the media plugin's answer; on success the resource is live and served by a
    /// task until it ends.
    pub async fn open(
        cx: &ListenerContext,
        opening: Opening,
        offer: String,
    ) -> Result<Opened, Refusal> {
        let Opening {
            endpoint,
            app,
            room,
            stream_id,
            token,
            addr,
            permit,
        } = opening;
        let gateway = Arc::clone(&cx.gateway);
        let handle = gateway.register(DialectKind::Raw, Some(addr));
        let peer = gateway::peer(handle.id, DialectKind::Raw);
        let id = random_hex(16);
        let stream_id = match endpoint {
            Endpoint::Whip => stream_id.unwrap_or_else(|| format!("whip-{}", &id[..12])),
            Endpoint::Whep => room.clone(),
        };
        let resource = Arc::new(Resource {
            id,
            endpoint,
            app,
            room,
            stream_id,
            peer,
            token,
            ufrag: ice_ufrag(&offer).map(str::to_owned),
            end: CancellationToken::new(),
            ended: AtomicBool::new(false),
        });
        let mut rx = handle.rx;
        let answer = match resource.negotiate(&gateway, &mut rx, offer).await {
            Ok(answer) => answer,
            Err(refusal) => {
                gateway.registry().unregister(peer.session);
                gateway.dispatcher().session_closed(peer.session);
                return Err(refusal);
            }
        };
        table().insert(resource.id.clone(), Arc::clone(&resource));
        tracing::info!(
            session = %peer.session, endpoint = endpoint.as_str(), room = %resource.room,
            stream = %resource.stream_id, peer.addr = %addr, "WHIP/WHEP session opened."
        );
        // Under the application's prefix when it came through one: `find` matches the app.
        let prefix = resource.app.as_ref().map(|app| format!("/{app}"));
        let location = format!(
            "{}/{}/{}/{}",
            prefix.unwrap_or_default(),
            endpoint.as_str(),
            resource.room,
            resource.id
        );
        let task = serve(resource, gateway, rx, handle.cancel, permit);
        cx.tracker.spawn(task);
        Ok(Opened { location, answer })
    }

    /// The media request, then the offer; the answer, or the refusal of either.
    async fn negotiate(
        &self,
        gateway: &Gateway,
        rx: &mut Inbox,
        offer: String,
    ) -> Result<String, Refusal> {
        let media = MediaRequest {
            stream_id: self.stream_id.clone(),
            token: self.token.clone(),
            room: Some(self.room.clone()),
        };
        let command = match self.endpoint {
            Endpoint::Whip => ConferenceCommand::Publish(media),
            Endpoint::Whep => ConferenceCommand::Play(media),
        };
        let request = Event::Conference(Box::new(ConferenceRequest {
            app: self.app.clone().unwrap_or_default(),
            command,
        }));
        self.dispatch(gateway, request).await?;
        let description = Event::Description(Description {
            room: self.stream_id.clone(),
            kind: SdpKind::Offer,
            sdp: offer.into(),
        });
        self.dispatch(gateway, description).await?;
        let wait = async {
            while let Some(out) = rx.recv().await {
                let Outbound::Event(event) = out else {
                    if matches!(out, Outbound::Kick(_)) {
                        break;
                    }
                    continue;
                };
                match *event {
                    Event::ConferenceReply(reply) => match *reply {
                        ConferenceReply::MediaAnswer(answer) => return Ok(answer.sdp),
                        ConferenceReply::MediaFinished(_) => break,
                        // WHEP: the offer the media plugin makes any new player before it
                        // takes the player's own (superseded by it).
                        _ => {}
                    },
                    Event::Error(e) => {
                        return Err(refusal(e.code, e.message));
                    }
                    _ => {}
                }
            }
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "media_ended",
                "the media session ended before it was answered",
            ))
        };
        tokio::time::timeout(ANSWER_TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| {
                Err(Refusal::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "media_timeout",
                    "the media plugin did not answer in time (its media task may have stopped)",
                ))
            })
    }

    /// Sends `event` through the pipeline as this resource's session; a plugin's refusal
    /// becomes the HTTP refusal.
    async fn dispatch(&self, gateway: &Gateway, event: Event) -> Result<(), Refusal> {
        let out = gateway
            .dispatcher()
            .dispatch(Envelope {
                from: self.peer,
                event,
                original: None,
                app: self.app.as_deref().map(Arc::from),
            })
            .await;
        if !out.blocked.is_empty() {
            tokio::spawn(out.blocked.wait());
        }
        match out.refusal {
            Some(r) => Err(refusal(r.code, r.message)),
            None => Ok(()),
        }
    }

    /// The live resource `target` names under `endpoint`, if `token` is the one it was made
    /// with.
    pub fn find(
        endpoint: Endpoint,
        target: &super::Target,
        token: Option<&str>,
    ) -> Result<Arc<Resource>, Refusal> {
        let id = target.id.as_deref().unwrap_or_default();
        let found = table()
            .get(id)
            .filter(|r| r.endpoint == endpoint && r.room == target.room && r.app == target.app)
            .cloned()
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::NOT_FOUND,
                    "no_such_resource",
                    "no such session (it ended, or never existed)",
                )
            })?;
        let same = match (&found.token, token) {
            (None, _) => true,
            (Some(ours), Some(theirs)) => same_bytes(ours.as_bytes(), theirs.as_bytes()),
            (Some(_), None) => false,
        };
        if !same {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this session was opened with a token; send the same one",
            ));
        }
        Ok(found)
    }

    /// Whether a fragment carries this session's ICE credentials (a trickle, not a restart).
    pub fn same_ice_session(&self, frag: &SdpFrag) -> bool {
        self.ufrag.as_deref() == Some(frag.ice_ufrag.as_str())
    }

    /// Hands a fragment's candidates to the media plugin (it keeps at most 64 per connection).
    pub async fn trickle(&self, cx: &ListenerContext, frag: &SdpFrag) {
        for section in &frag.sections {
            for line in &section.candidates {
                let candidate = Event::Candidate(Candidate {
                    room: self.stream_id.clone(),
                    candidate: line.clone().into(),
                    sdp_mid: section.mid.clone(),
                    sdp_mline_index: None,
                    username_fragment: Some(frag.ice_ufrag.clone()),
                });
                // A candidate the plugins refuse is dropped: ICE learns the address anyway.
                let _ = self.dispatch(&cx.gateway, candidate).await;
            }
        }
    }

    /// Ends the session (`DELETE`).
    pub fn end(&self) {
        self.end.cancel();
    }

    /// Whether its session has ended already (only `DELETE` is still answered).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// Serves a live resource until `DELETE`, the end of its media, a kick or shutdown; then
/// forgets it and unregisters its session (the plugins drop its media, Ant pages see a
/// publisher leave).
async fn serve(
    resource: Arc<Resource>,
    gateway: Arc<Gateway>,
    mut rx: Inbox,
    cancel: CancellationToken,
    _permit: Permit,
) {
    let reason = loop {
        tokio::select! {
            () = resource.end.cancelled() => break "deleted",
            () = cancel.cancelled() => break "shutdown",
            out = rx.recv() => match out {
                None => break "closed",
                Some(Outbound::Kick(_)) => break "kicked",
                Some(Outbound::Event(event))
                    if matches!(&*event, Event::ConferenceReply(reply)
                        if matches!(**reply, ConferenceReply::MediaFinished(_))) => break "media ended",
                // Started notices and the like: nothing to tell an HTTP client.
                Some(_) => {}
            },
        }
    };
    gateway.registry().unregister(resource.peer.session);
    gateway.dispatcher().session_closed(resource.peer.session);
    drop(_permit);
    tracing::info!(
        session = %resource.peer.session, endpoint = resource.endpoint.as_str(),
        room = %resource.room, reason, "WHIP/WHEP session closed."
    );
    if reason == "media ended" {
        resource.ended.store(true, Ordering::Release);
        tokio::select! {
            () = resource.end.cancelled() => {}
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(ENDED_GRACE) => {}
        }
    }
    table().remove(&resource.id);
}

/// The refusal of a media request with `code` (a plugin's or the media plugin's).
fn refusal(code: ErrorCode, message: String) -> Refusal {
    let status = match code {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::StreamIdInUse => StatusCode::CONFLICT,
        ErrorCode::BadDescription | ErrorCode::InvalidField | ErrorCode::InvalidStreamName => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::MediaCapacity | ErrorCode::RateLimited => StatusCode::SERVICE_UNAVAILABLE,
        // No media plugin: the conference request found no one to answer it.
        ErrorCode::Unsupported | ErrorCode::UnknownCommand | ErrorCode::MediaUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::FORBIDDEN,
    };
    let mut message = message;
    let mut end = message.len().min(256);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    Refusal {
        status,
        reason: code.as_str(),
        message,
    }
}

/// Compares two tokens in time that depends on their lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // Guessable resource ids would let anyone end others' sessions: do not limp on.
        panic!("the operating system's random number generator failed");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
    }

    #[test]
    fn resource_ids_are_128_random_bits() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }

    #[test]
    fn refusals_keep_their_code_and_a_bounded_text() {
        let r = refusal(ErrorCode::Unauthorized, "x".repeat(1000));
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.reason, "unauthorized");
        assert!(r.message.len() <= 256);
        assert_eq!(
            refusal(ErrorCode::StreamIdInUse, String::new()).status,
            StatusCode::CONFLICT
        );
    }
}
