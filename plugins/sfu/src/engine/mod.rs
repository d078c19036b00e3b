//! The media task: owns the UDP socket and every peer connection, runs the hook's commands,
//! demultiplexes datagrams by `Rtc::accepts`, forwards frames, drives timeouts, and tells
//! sessions what happened through the outbox.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::crypto::CryptoProvider;
use str0m::media::{MediaKind, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Rtc};
use switchboard_plugin_api::event::conference::{MediaAnswer, MediaDirection, MediaState};
use switchboard_plugin_api::event::{ConferenceReply, ErrorCode, Event, SdpKind};
use switchboard_plugin_api::{Outbox, SessionId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod control;
mod downlink;
pub mod rewrite;
mod send;

use crate::SfuSettings;
use crate::conn::{Conn, Forward, Forwarded, Yield};
use crate::layers::Sample;
use crate::metrics::{self, COUNTERS, Leg};
use crate::registry::{Registry, StreamKey};

/// Largest datagram read (above any WebRTC MTU).
const DATAGRAM: usize = 2048;

/// How long a bind waits for the port (a reload's new plugin waits for the old one to let go).
const BIND_ATTEMPTS: u32 = 100;

/// Datagrams taken per wake-up before the connections are polled.
const RECV_BATCH: usize = 32;

/// Rounds of forwarding per wake-up before the task looks at its inputs again.
const MAX_ROUNDS: usize = 16;

/// Received packets waiting for a batch's `drive` beyond which it runs at once, whatever
/// `send_batch_ms` says: what a batch holds is bounded by count as well as by time.
const MAX_BATCH_YIELDS: usize = 1024;

/// Where str0m's estimate of a player's link starts (bits per second): enough for a 480-line
/// layer, so a player on a good link starts on it; a link that takes less is found within
/// seconds (the estimate drops on the delay and loss its feedback shows).
const INITIAL_ESTIMATE_BPS: u64 = 1_000_000;

/// A request from the hook to the task.
#[derive(Debug)]
pub enum Command {
    /// A publisher: wait for its offer.
    Publish { key: StreamKey, room: String },
    /// A player of `key.stream_id` (a room or a stream): offer it the tracks it plays.
    Play { key: StreamKey },
    /// An offer (publisher) or answer (player).
    Description {
        key: StreamKey,
        kind: SdpKind,
        sdp: String,
    },
    /// A remote ICE candidate.
    Candidate { key: StreamKey, candidate: String },
    /// `stop` of a stream.
    Stop {
        key: StreamKey,
        direction: MediaDirection,
    },
    /// The session closed: drop its connections silently.
    SessionClosed { session: SessionId },
    /// The session left the room (`leaveFromRoom`): drop these connections silently.
    Drop { keys: Vec<StreamKey> },
    /// `toggleVideo`/`toggleAudio`/`enableTrack` on the stream `key`.
    Toggle {
        key: StreamKey,
        track_id: String,
        kinds: Vec<MediaKind>,
        enabled: bool,
    },
    /// `forceStreamQuality` on play stream `key`: the layer height (0: automatic) for its
    /// video of publisher `track_id` (all of it when `track_id` is the play stream).
    Quality {
        key: StreamKey,
        track_id: String,
        height: u32,
    },
}

/// Counters, readable while the task runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: AtomicU64,
    /// Datagrams sent.
    pub datagrams_out: AtomicU64,
    /// Frames received from publishers.
    pub frames_in: AtomicU64,
    /// Frames written to players (one per player per frame).
    pub frames_out: AtomicU64,
    /// Peer connections open now.
    pub connections: AtomicU64,
    /// Gauges for `/metrics`, refreshed every [`metrics::SNAPSHOT_INTERVAL`]: publishers.
    pub publishers: AtomicU64,
    /// Players.
    pub players: AtomicU64,
    /// Tracks received from publishers.
    pub tracks_in: AtomicU64,
    /// Tracks sent to players (negotiated and open).
    pub tracks_out: AtomicU64,
    /// Rooms per size bucket ([`metrics::ROOM_BUCKETS`]).
    pub room_buckets: [AtomicU64; metrics::ROOM_BUCKETS.len()],
}

/// The task's state.
pub struct Engine {
    settings: SfuSettings,
    outbox: Outbox,
    registry: Arc<Mutex<Registry>>,
    stats: Arc<Stats>,
    crypto: Arc<CryptoProvider>,
    conns: Vec<Conn>,
    next_id: u64,
    /// Announced host candidates (with the bound port).
    candidates: Vec<SocketAddr>,
    /// What `Receive::destination` says (the bound address, or the first candidate).
    local: SocketAddr,
    /// Which connection a remote address last reached, so a datagram is matched without asking
    /// every connection (checked with `accepts` before use; cleared when it grows too large).
    by_addr: HashMap<SocketAddr, u64>,
    /// When the gauges were last refreshed.
    snapshot_at: Instant,
    /// Datagrams written during a `drive`, sent in batches.
    sends: send::SendQueue,
    /// What publishers yielded while their datagrams were received, for the next `drive`.
    yields: Vec<Yield>,
    /// When players' simulcast layers were last planned for their links (`downlink.rs`).
    plan_at: Instant,
    /// When the first datagram received since the last `drive` arrived: the batch it opened
    /// is driven [`SfuSettings::send_batch_ms`] later (`batch_wait`).
    batch_since: Option<Instant>,
    /// What the last `drive` returned: the connections' next timeout.
    next_timeout: Instant,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine that has not bound its socket yet.
    pub fn new(
        settings: SfuSettings,
        outbox: Outbox,
        registry: Arc<Mutex<Registry>>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            settings,
            outbox,
            registry,
            stats,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            conns: Vec::new(),
            next_id: 1,
            candidates: Vec::new(),
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            by_addr: HashMap::new(),
            snapshot_at: Instant::now(),
            sends: send::SendQueue::default(),
            yields: Vec::new(),
            plan_at: Instant::now(),
            batch_since: None,
            next_timeout: Instant::now(),
        }
    }

    /// Binds and serves until `cancel` or until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>, cancel: CancellationToken) {
        let Some(socket) = self.bind(&cancel).await else {
            return;
        };
        let mut buf = vec![0u8; DATAGRAM];
        let window = Duration::from_millis(self.settings.send_batch_ms);
        loop {
            let deadline = match self.batch_wait(window) {
                Some(until) => until,
                None => {
                    self.batch_since = None;
                    self.next_timeout = self.drive(&socket);
                    self.next_timeout
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                command = rx.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                received = socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = received {
                        self.batch_since.get_or_insert_with(Instant::now);
                        self.receive(&socket, buf.get(..n).unwrap_or_default(), source);
                        self.receive_queued(&socket, &mut buf);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {}
            }
            self.timeouts(Instant::now());
        }
        for conn in &mut self.conns {
            if let Some(rtc) = conn.rtc.as_mut() {
                rtc.disconnect();
            }
        }
        self.stats.connections.store(0, Ordering::Relaxed);
        self.conns.clear();
        self.snapshot_at = Instant::now() - metrics::SNAPSHOT_INTERVAL;
        self.snapshot();
        tracing::info!("Media task stopped.");
    }

    async fn bind(&mut self, cancel: &CancellationToken) -> Option<UdpSocket> {
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            match UdpSocket::bind(self.settings.udp_bind).await {
                Ok(socket) => {
                    let bound = socket.local_addr().ok()?;
                    let ips: Vec<IpAddr> = if self.settings.candidates.is_empty() {
                        vec![bound.ip()]
                    } else {
                        self.settings.candidates.clone()
                    };
                    self.candidates = ips
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, bound.port()))
                        .collect();
                    self.local = if bound.ip().is_unspecified() {
                        self.candidates.first().copied().unwrap_or(bound)
                    } else {
                        bound
                    };
                    tracing::info!(udp = %bound, candidates = ?self.candidates, "Media (sfu) listening.");
                    return Some(socket);
                }
                Err(e) => last_error = Some(e),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        tracing::error!(
            udp = %self.settings.udp_bind,
            error = ?last_error,
            "The media plugin cannot bind its UDP socket; publish and play will time out."
        );
        None
    }

    fn notify(&self, session: SessionId, event: Event) {
        let _ = self.outbox.deliver(session, event);
    }

    /// Tells the session of `key` that its publish or play (`direction`) has ended.
    fn media_finished(&self, key: &StreamKey, direction: MediaDirection) {
        let state = MediaState {
            stream_id: key.stream_id.clone(),
            direction,
            room: None,
        };
        self.notify(
            key.session,
            Event::ConferenceReply(Box::new(ConferenceReply::MediaFinished(state))),
        );
    }

    fn error(&self, key: &StreamKey, code: ErrorCode, message: String) {
        tracing::info!(stream = %key.stream_id, %message, "Media request failed.");
        self.notify(
            key.session,
            Event::error(code, Some(&key.stream_id), message),
        );
    }

    fn new_rtc(&self, direction: MediaDirection) -> Rtc {
        let mut builder = Rtc::builder()
            // RTP mode: packets are forwarded as they come (`Conn::forward`), not depacketized
            // into frames and packetized again for every player.
            .set_rtp_mode(true)
            .set_crypto_provider(Arc::clone(&self.crypto))
            .set_stats_interval(Some(metrics::SNAPSHOT_INTERVAL));
        if direction == MediaDirection::Play && self.settings.bandwidth_estimation {
            // A player's link estimate (from its TWCC feedback), which the automatic simulcast
            // layer choice fits layers into (`downlink.rs`).
            builder = builder.enable_bwe(Some(Bitrate::bps(INITIAL_ESTIMATE_BPS)));
        }
        let mut rtc = builder.build(Instant::now());
        for addr in &self.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, error = %e, "Not a usable host candidate."),
            }
        }
        rtc
    }

    fn conn_mut(&mut self, key: &StreamKey) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.key == *key)
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Publish { key, room } => {
                let id = self.take_id();
                self.conns
                    .push(Conn::new(id, key, room, MediaDirection::Publish));
            }
            Command::Play { key } => self.play(key),
            Command::Description { key, kind, sdp } => self.description(&key, kind, &sdp),
            Command::Candidate { key, candidate } => {
                if let Some(conn) = self.conn_mut(&key) {
                    conn.add_candidate(&candidate);
                }
            }
            Command::Stop { key, direction } => {
                if let Some(i) = self.conns.iter().position(|c| c.key == key) {
                    self.remove(i);
                }
                self.media_finished(&key, direction);
            }
            Command::Toggle {
                key,
                track_id,
                kinds,
                enabled,
            } => self.toggle(&key, &track_id, &kinds, enabled),
            Command::Quality {
                key,
                track_id,
                height,
            } => self.force_quality(&key, &track_id, height),
            Command::Drop { keys } => {
                for key in keys {
                    if let Some(i) = self.conns.iter().position(|c| c.key == key) {
                        self.remove(i);
                    }
                }
            }
            Command::SessionClosed { session } => {
                while let Some(i) = self.conns.iter().position(|c| c.key.session == session) {
                    self.remove(i);
                }
            }
        }
        self.stats
            .connections
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A new player: its connection, every track it plays that is already published, and the
    /// first offer.
    fn play(&mut self, key: StreamKey) {
        let id = self.take_id();
        // A player's "room" is what it plays: a room or one stream.
        let target = key.stream_id.clone();
        let mut conn = Conn::new(id, key, target, MediaDirection::Play);
        conn.set_rtc(self.new_rtc(MediaDirection::Play));
        let tracks: Vec<_> = self
            .conns
            .iter()
            .filter(|p| conn.plays(p))
            .flat_map(|p| {
                p.tracks_in
                    .iter()
                    .map(|t| ((p.id, t.mid), t.kind, p.key.stream_id.clone()))
            })
            .collect();
        for (source, kind, stream) in tracks {
            conn.add_track(source, kind, &stream);
        }
        let Some(offer) = conn.negotiate(true) else {
            self.error(
                &conn.key,
                ErrorCode::Internal,
                "the media server could not make an offer".into(),
            );
            return;
        };
        self.notify(
            conn.key.session,
            Event::ConferenceReply(Box::new(ConferenceReply::MediaOffer(offer))),
        );
        self.conns.push(conn);
    }

    fn description(&mut self, key: &StreamKey, kind: SdpKind, sdp: &str) {
        let Some(i) = self.conns.iter().position(|c| c.key == *key) else {
            return;
        };
        // A publisher's first description, or a player's own offer (WHEP), needs a new `Rtc`.
        let rtc = self
            .conns
            .get(i)
            .filter(|c| {
                c.rtc.is_none() || (c.direction == MediaDirection::Play && kind == SdpKind::Offer)
            })
            .map(|c| c.direction)
            .map(|direction| self.new_rtc(direction));
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        if conn.direction == MediaDirection::Play && kind == SdpKind::Offer {
            let Some(rtc) = rtc else {
                return;
            };
            match conn.accept_player_offer(rtc, sdp) {
                Ok((sdp, opened)) => {
                    let answer = ConferenceReply::MediaAnswer(MediaAnswer {
                        stream_id: key.stream_id.clone(),
                        sdp,
                    });
                    self.notify(key.session, Event::ConferenceReply(Box::new(answer)));
                    self.keyframes_for(opened);
                }
                Err(e) => self.error(key, ErrorCode::BadDescription, e),
            }
            return;
        }
        if let Some(rtc) = rtc {
            conn.set_rtc(rtc);
        }
        match (conn.direction, kind) {
            (MediaDirection::Publish, SdpKind::Offer) => match conn.accept_offer(sdp) {
                Ok(sdp) => {
                    let answer = ConferenceReply::MediaAnswer(MediaAnswer {
                        stream_id: key.stream_id.clone(),
                        sdp,
                    });
                    self.notify(key.session, Event::ConferenceReply(Box::new(answer)));
                }
                Err(e) => self.error(key, ErrorCode::BadDescription, e),
            },
            (MediaDirection::Play, SdpKind::Answer) => match conn.accept_answer(sdp) {
                Ok(opened) => self.keyframes_for(opened),
                Err(e) => self.error(key, ErrorCode::BadDescription, e),
            },
            (MediaDirection::Publish, _) => self.error(
                key,
                ErrorCode::BadDescription,
                "a publisher sends an offer (after `start`)".into(),
            ),
            (MediaDirection::Play, _) => self.error(
                key,
                ErrorCode::BadDescription,
                "a player answers the server's offer, or makes its own offer".into(),
            ),
        }
    }

    fn receive(&mut self, socket: &UdpSocket, contents: &[u8], source: SocketAddr) {
        self.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        let Ok(contents) = contents.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        let accepts = |c: &Conn| c.rtc.as_ref().is_some_and(|rtc| rtc.accepts(&input));
        let cached = self
            .by_addr
            .get(&source)
            .and_then(|id| self.conns.iter().position(|c| c.id == *id))
            .filter(|i| self.conns.get(*i).is_some_and(accepts));
        let Some(i) = cached.or_else(|| self.conns.iter().position(accepts)) else {
            return;
        };
        let limit = 4 * self.conns.len() + 64;
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        if cached.is_none() {
            if self.by_addr.len() > limit {
                self.by_addr.clear();
            }
            self.by_addr.insert(source, conn.id);
        }
        conn.dirty = true;
        if let Some(rtc) = conn.rtc.as_mut()
            && let Err(e) = rtc.handle_input(input)
        {
            tracing::debug!(error = %e, stream = %conn.key.stream_id, "Bad input; disconnecting.");
            rtc.disconnect();
        }
        if conn.direction == MediaDirection::Publish {
            // str0m's RTP mode holds one received packet until the next poll; the next
            // datagram would replace it. So a publisher is polled per datagram (its own output
            // is small); the players it feeds are polled once per batch, in `drive`.
            conn.dirty = false;
            let (sends, stats) = (&mut self.sends, &self.stats);
            let mut send = |datagram: Vec<u8>, to: SocketAddr| {
                let sent = sends.push(socket, datagram, to);
                stats.datagrams_out.fetch_add(sent, Ordering::Relaxed);
            };
            conn.poll(&mut send, &mut self.yields);
        }
    }

    /// Takes the datagrams already queued on the socket (at most [`RECV_BATCH`]), so that one
    /// `drive` polls each connection once for the batch instead of once per datagram.
    fn receive_queued(&mut self, socket: &UdpSocket, buf: &mut [u8]) {
        for _ in 1..RECV_BATCH {
            let Ok((n, source)) = socket.try_recv_from(buf) else {
                return;
            };
            self.receive(socket, buf.get(..n).unwrap_or_default(), source);
        }
    }

    /// While a batch of received datagrams is younger than `window` (and not too large), when
    /// it is due: until then the task only receives (publishers are still polled per datagram,
    /// their packets wait in `yields`), so that one poll of each player and one `sendmmsg`
    /// cover the whole batch. Every poll of a player pays str0m's walk over its streams, ICE,
    /// DTLS and SCTP, and a timeout to release what was written, whatever it sends; at 16 × 16
    /// a wake-up otherwise carries one or two packets per player. `None`: drive now.
    /// A connection's timeout that falls due first ends the wait (its `drive` covers the batch).
    fn batch_wait(&self, window: Duration) -> Option<Instant> {
        let until = (self.batch_since? + window).min(self.next_timeout);
        (Instant::now() < until && self.yields.len() < MAX_BATCH_YIELDS).then_some(until)
    }

    fn timeouts(&mut self, now: Instant) {
        for conn in &mut self.conns {
            if conn.timeout <= now {
                conn.dirty = true;
            }
            if conn.timeout <= now
                && let Some(rtc) = conn.rtc.as_mut()
                && let Err(e) = rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(error = %e, "Timeout handling failed; disconnecting.");
                rtc.disconnect();
            }
        }
    }

    /// Sends what every connection has to send, forwards what publishers yield, makes the
    /// offers players need, and drops dead connections. Returns the next timeout.
    fn drive(&mut self, socket: &UdpSocket) -> Instant {
        let stats = Arc::clone(&self.stats);
        // Taken out of `self` for the closure; its buffers go back for the next `drive`.
        let mut queue = std::mem::take(&mut self.sends);
        let mut send = |datagram: Vec<u8>, to: SocketAddr| {
            let sent = queue.push(socket, datagram, to);
            stats.datagrams_out.fetch_add(sent, Ordering::Relaxed);
        };
        for _ in 0..MAX_ROUNDS {
            self.offer_where_needed();
            let mut yields = std::mem::take(&mut self.yields);
            for conn in self.conns.iter_mut().filter(|c| c.dirty) {
                // Polled to its next timeout: nothing more until input, a write or that
                // timeout (`timeouts`) marks it again. Left set, every connection was polled
                // on every wake-up, and `drive` asked to be woken at once, every millisecond.
                conn.dirty = false;
                conn.poll(&mut send, &mut yields);
            }
            if yields.is_empty() {
                break;
            }
            for y in yields {
                self.apply(y);
            }
        }
        let sent = queue.flush(socket);
        self.stats.datagrams_out.fetch_add(sent, Ordering::Relaxed);
        self.sends = queue;
        self.reap();
        self.snapshot();
        self.plan_layers(Instant::now());
        if self.conns.iter().any(|c| c.dirty) {
            // Rounds ran out with output pending: come back at once.
            return Instant::now();
        }
        let fallback = Instant::now() + Duration::from_secs(1);
        self.conns
            .iter()
            .map(|c| c.timeout)
            .min()
            .map_or(fallback, |t| t.min(fallback))
    }

    fn offer_where_needed(&mut self) {
        let mut offers = Vec::new();
        for conn in &mut self.conns {
            if conn.wants_offer()
                && let Some(offer) = conn.negotiate(false)
            {
                offers.push((conn.key.session, offer));
            }
        }
        for (session, offer) in offers {
            self.notify(
                session,
                Event::ConferenceReply(Box::new(ConferenceReply::MediaOffer(offer))),
            );
        }
    }

    fn apply(&mut self, y: Yield) {
        match y {
            Yield::Started(id) => {
                let Some(conn) = self.conns.iter().find(|c| c.id == id) else {
                    return;
                };
                let state = MediaState {
                    stream_id: conn.key.stream_id.clone(),
                    direction: conn.direction,
                    room: (conn.direction == MediaDirection::Publish
                        && conn.room != conn.key.stream_id)
                        .then(|| conn.room.clone()),
                };
                if conn.direction == MediaDirection::Publish {
                    self.registry
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .started(&conn.key);
                }
                tracing::info!(stream = %state.stream_id, direction = ?state.direction, "Media started.");
                self.notify(
                    conn.key.session,
                    Event::ConferenceReply(Box::new(ConferenceReply::MediaStarted(state))),
                );
            }
            Yield::TrackAdded { from, mid, kind } => {
                let Some(publisher) = self.conns.iter().find(|c| c.id == from) else {
                    return;
                };
                let players: Vec<usize> = (0..self.conns.len())
                    .filter(|i| self.conns.get(*i).is_some_and(|c| c.plays(publisher)))
                    .collect();
                let stream = publisher.key.stream_id.clone();
                let mut opened = Vec::new();
                for i in players {
                    if let Some(player) = self.conns.get_mut(i) {
                        player.add_track((from, mid), kind, &stream);
                        if player.offered() {
                            opened.extend(player.fill_slots());
                        }
                    }
                }
                self.keyframes_for(opened);
            }
            Yield::Rtp { from, packet } => self.forward(from, &packet),
            Yield::Data { from, binary, data } => self.relay_data(from, binary, &data),
            Yield::Keyframe {
                publisher,
                mid,
                kind,
            } => {
                if let Some(p) = self.conns.iter_mut().find(|c| c.id == publisher) {
                    p.request_keyframe(mid, kind, Instant::now());
                }
            }
        }
    }

    /// Writes a publisher's packet to every player that receives its track. A player whose
    /// video waits for a keyframe (it just started, resumed or switched) makes the SFU ask the
    /// publisher for one (at most every 300 ms per track, or per simulcast layer). A simulcast
    /// layer's packet is first noted in the track's layers, which each player's selector then
    /// reads (`layers.rs`).
    fn forward(&mut self, from: u64, packet: &Forward) {
        let sample = Sample::of(packet);
        let publisher = sample
            .as_ref()
            .and_then(|_| self.conns.iter().position(|c| c.id == from));
        let mut layers = publisher
            .and_then(|i| self.conns.get_mut(i))
            .and_then(|p| p.take_layers(packet.mid));
        if let (Some(layers), Some(sample)) = (layers.as_mut(), sample.as_ref()) {
            layers.observe(sample);
        }
        let simulcast = layers.as_ref().zip(sample.as_ref());
        let mut written = 0;
        let mut keyframe = false;
        let mut switches: Vec<Rid> = Vec::new();
        for player in self
            .conns
            .iter_mut()
            .filter(|c| c.direction == MediaDirection::Play)
        {
            let (forwarded, switch) = player.forward(from, packet, simulcast);
            match forwarded {
                Forwarded::Written => written += 1,
                Forwarded::NeedKeyframe => keyframe = true,
                Forwarded::Skipped => {}
            }
            if let Some(rid) = switch
                && !switches.contains(&rid)
            {
                switches.push(rid);
            }
        }
        if packet.ends_frame() {
            self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
            COUNTERS.add_frames(Leg::In, 1);
            self.stats.frames_out.fetch_add(written, Ordering::Relaxed);
            COUNTERS.add_frames(Leg::Out, written);
        }
        if layers.is_none() && !keyframe {
            return;
        }
        let Some(i) = publisher.or_else(|| self.conns.iter().position(|c| c.id == from)) else {
            return;
        };
        let Some(p) = self.conns.get_mut(i) else {
            return;
        };
        if let Some(layers) = layers {
            p.put_layers(packet.mid, layers);
        }
        let now = Instant::now();
        for rid in switches {
            p.request_layer_keyframe(packet.mid, rid, now);
        }
        if keyframe {
            p.request_keyframe(packet.mid, str0m::media::KeyframeRequestKind::Pli, now);
        }
    }

    /// Drops connections that failed or never connected, telling their sessions.
    fn reap(&mut self) {
        let now = Instant::now();
        while let Some(i) = self.conns.iter().position(|c| !c.is_alive(now)) {
            let Some(conn) = self.conns.get(i) else {
                break;
            };
            let key = conn.key.clone();
            let direction = conn.direction;
            self.remove(i);
            let registered = self
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key)
                .is_some();
            if registered {
                self.media_finished(&key, direction);
            }
        }
        self.stats
            .connections
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    /// Removes connection `i`; a publisher's tracks leave every player.
    fn remove(&mut self, i: usize) {
        if i >= self.conns.len() {
            return;
        }
        let mut conn = self.conns.remove(i);
        if let Some(rtc) = conn.rtc.as_mut() {
            rtc.disconnect();
        }
        if conn.direction == MediaDirection::Publish {
            let mut opened = Vec::new();
            for player in &mut self.conns {
                player.drop_source(conn.id);
                if player.offered() {
                    // A slot it freed goes to a waiting track (WHEP: no renegotiation).
                    opened.extend(player.fill_slots());
                }
            }
            self.keyframes_for(opened);
        }
    }

    /// Asks each publisher track in `sources` for a keyframe: a player started receiving it.
    fn keyframes_for(&mut self, sources: Vec<(u64, str0m::media::Mid)>) {
        let now = Instant::now();
        for (publisher, mid) in sources {
            if let Some(p) = self.conns.iter_mut().find(|c| c.id == publisher) {
                p.request_keyframe(mid, str0m::media::KeyframeRequestKind::Pli, now);
            }
        }
    }
}
