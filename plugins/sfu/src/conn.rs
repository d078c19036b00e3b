//! One peer connection: a publisher (the client offers, the server answers and receives) or a
//! player (the server offers the room's tracks and sends). Pure state around a str0m `Rtc`; the
//! engine moves datagrams and forwards what one connection yields to the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Input, Output, Rtc};
use switchboard_plugin_api::event::conference::{MediaDirection, MediaOffer, TrackMapping};

use crate::engine::rewrite::{Incoming, Outcome, Rewrite, Source, starts_keyframe};
use crate::layers::downlink::Downlink;
use crate::layers::{Layers, Sample, Selector};
use crate::metrics::{self, COUNTERS, Leg, RtpTotals};
use crate::registry::StreamKey;

/// A connection that has not connected by then is given up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// At most one keyframe request per publisher track in this time.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Remote candidates taken per connection (a browser sends a handful; more are ignored).
const MAX_CANDIDATES: usize = 64;

/// Media sections a publisher's offer may have (the SDK sends two: audio and video; screen
/// sharing and the like add a few). Every section becomes a track for every player, so this
/// bounds what one publisher can make the gateway offer.
pub const MAX_PUBLISHER_SECTIONS: usize = 8;

/// Largest data-channel message relayed from a publisher to its players (the SDK sends binary
/// data in chunks of 16 000 bytes plus a 4-byte token; text unchunked). Larger ones are dropped:
/// each is copied to every player.
pub const MAX_DATA_MESSAGE: usize = 65_536;

/// Timeouts already due that one [`Conn::poll`] handles itself before it stops: a packet
/// written to a player is released by str0m at its next timeout, which is due at once, and
/// handling it here saves the media task a wake-up per batch.
const DUE_TIMEOUTS_PER_POLL: usize = 4;

/// The running RTP totals of a str0m stats event: ingress and egress stats are distinct types
/// with the same counters, so one macro reads either.
macro_rules! rtp_totals {
    ($stats:expr) => {
        RtpTotals {
            packets: $stats.packets,
            bytes: $stats.bytes,
            nacks: $stats.nacks,
            plis: $stats.plis,
            firs: $stats.firs,
        }
    };
}

/// Counts the RTP of one media section (and simulcast layer) since its last stats event:
/// str0m reports running totals, the counters take what was added. `seen` holds the last totals.
fn count_rtp(
    seen: &mut HashMap<(Mid, Option<str0m::media::Rid>), RtpTotals>,
    leg: Leg,
    key: (Mid, Option<str0m::media::Rid>),
    now: RtpTotals,
) {
    let before = seen.insert(key, now);
    COUNTERS.add_rtp(leg, before.unwrap_or_default(), now);
}

/// The bitrate of a section (and layer) whose running byte total is now `bytes`, since its last
/// stats event (one [`metrics::SNAPSHOT_INTERVAL`] ago).
fn bps_since(
    seen: &HashMap<(Mid, Option<str0m::media::Rid>), RtpTotals>,
    key: (Mid, Option<str0m::media::Rid>),
    bytes: u64,
) -> u64 {
    let before = seen.get(&key).map_or(0, |t| t.bytes);
    bytes.saturating_sub(before).saturating_mul(8) / metrics::SNAPSHOT_INTERVAL.as_secs().max(1)
}

/// What a connection's output means for the others (or for its session).
#[derive(Debug)]
pub enum Yield {
    /// ICE and DTLS are up: tell the session `publish_started`/`play_started`.
    Started(u64),
    /// A publisher's media section opened.
    TrackAdded {
        from: u64,
        mid: Mid,
        kind: MediaKind,
    },
    /// An RTP packet from a publisher's track, to forward (boxed: packets are many).
    Rtp { from: u64, packet: Box<Forward> },
    /// A message on a publisher's data channel, for its players' data channels.
    Data {
        from: u64,
        binary: bool,
        data: Vec<u8>,
    },
    /// A player asked for a keyframe of a track it receives.
    Keyframe {
        publisher: u64,
        mid: Mid,
        kind: KeyframeRequestKind,
    },
}

/// An RTP packet of a publisher's track, with what forwarding it needs to know.
#[derive(Debug)]
pub struct Forward {
    /// The publisher's media section.
    pub mid: Mid,
    /// The simulcast layer, if the publisher sends several.
    pub rid: Option<Rid>,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec of its payload type, as the publisher negotiated it.
    pub params: PayloadParams,
    /// The publisher's [`Conn::epochs`] entry of its kind when it arrived.
    pub epoch: u32,
    /// The packet (its payload is shared by every player it is written to).
    pub packet: RtpPacket,
}

impl Forward {
    /// Whether it ends a frame (an audio packet is a frame; video ends at the marker bit), for
    /// the frame counters.
    pub fn ends_frame(&self) -> bool {
        self.kind == MediaKind::Audio || self.packet.header.marker
    }
}

/// What [`Conn::forward`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Written to the player's send stream.
    Written,
    /// Not for this player (no such open track, paused, another simulcast layer, a codec it
    /// did not negotiate), or a late packet from before a switch.
    Skipped,
    /// Video that waits for a keyframe before it can start.
    NeedKeyframe,
}

/// A track of the room as one player receives it.
#[derive(Debug)]
pub struct TrackOut {
    /// The publisher connection and its media section.
    pub source: (u64, Mid),
    /// Audio or video.
    pub kind: MediaKind,
    /// `ARDAMSv<streamId>` / `ARDAMSa<streamId>`.
    pub track_id: String,
    /// The publisher's stream id (the msid stream).
    pub stream: String,
    /// Where it is in negotiation.
    pub state: TrackState,
    /// The publisher left while an offer adding this track was pending.
    pub gone: bool,
    /// The player asked not to be sent it (`toggleVideo`/`toggleAudio`/`enableTrack` with
    /// `enabled: false`); it stays negotiated, nothing is written to it.
    pub paused: bool,
    /// Which simulcast layer of the source it is sent (`layers.rs`).
    pub select: Selector,
    /// The sequence numbers and timestamps it is sent with.
    pub rewrite: Rewrite,
    /// The last payload type mapped, publisher's to player's (matching codecs costs more than
    /// a packet's forwarding otherwise does).
    pt_map: Option<(Pt, Pt)>,
}

/// The negotiation state of a [`TrackOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// To be added by the next offer.
    ToOpen,
    /// Added by the pending offer.
    Negotiating(Mid),
    /// Sending.
    Open(Mid),
    /// To be stopped by the next offer.
    ToStop(Mid),
    /// Stopped by the pending offer.
    Stopping(Mid),
}

/// A publisher's track.
#[derive(Debug)]
pub struct TrackIn {
    /// Its media section.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    last_keyframe_request: Option<Instant>,
    /// Its simulcast layers as they arrive (none for a track without simulcast): fed and lent
    /// to the players' selectors by the engine, per packet.
    pub layers: Layers,
    /// What it received in the last stats interval (bits per second; not kept for a
    /// simulcast track, whose layers measure their own): what a player would like its link to
    /// take for it.
    pub received_bps: u64,
}

/// One peer connection.
#[derive(Debug)]
pub struct Conn {
    /// Engine-wide id.
    pub id: u64,
    /// The signaling stream it belongs to.
    pub key: StreamKey,
    /// A publisher: the room it publishes into. A player: what it plays (its stream id), a
    /// room or one publisher's stream.
    pub room: String,
    /// Publisher or player.
    pub direction: MediaDirection,
    /// `None` for a publisher until its offer arrives.
    pub rtc: Option<Rtc>,
    /// A publisher's tracks.
    pub tracks_in: Vec<TrackIn>,
    /// A player's tracks.
    pub tracks_out: Vec<TrackOut>,
    /// A player's offer awaiting the answer.
    pub pending: Option<SdpPendingOffer>,
    /// `publish_started`/`play_started` was sent.
    pub started: bool,
    /// Next `Input::Timeout` due.
    pub timeout: Instant,
    /// When it was created (for [`CONNECT_TIMEOUT`]).
    pub created: Instant,
    /// Something was handed to the `Rtc` since it was last polled, so it may have output.
    /// Only such connections are polled (a datagram wakes one connection, not all of them).
    pub dirty: bool,
    early_candidates: Vec<Candidate>,
    candidates: usize,
    /// str0m's cumulative RTP statistics per section (and simulcast layer) as last reported,
    /// so that each report adds only what grew to the `/metrics` counters.
    rtp_seen: HashMap<(Mid, Option<str0m::media::Rid>), RtpTotals>,
    /// The data channel, once open (a publisher's: the SDK's, labelled with its stream id; a
    /// player's: the one the gateway's first offer adds).
    channel: Option<ChannelId>,
    /// A publisher: kinds it asked the gateway not to forward (its own `toggleVideo` or
    /// `toggleAudio` with `enabled: false`).
    pub muted: Vec<MediaKind>,
    /// A player: the height `forceStreamQuality` pinned all of its video to (0: automatic),
    /// which the video of publishers that join later gets too.
    pub forced_height: u32,
    /// A player: what its link takes (str0m's TWCC estimate, else its receiver reports'
    /// loss), which the automatic simulcast layer choice fits layers into.
    pub downlink: Downlink,
    /// A publisher: per kind (audio, video; [`kind_index`]), grows whenever that kind is
    /// muted or unmuted, so that players start a new segment of it (sequence numbers without
    /// the gap, video at a keyframe) after forwarding resumes.
    pub epochs: [u32; 2],
    /// A player that offered: the numbering of sections whose track left, handed to the next
    /// track that takes the section, so its sequence numbers run on.
    freed: Vec<(Mid, Rewrite)>,
    /// A player that made the offer itself (WHEP): the media sections it offered, which the
    /// room's tracks fill in turn; empty for a player the gateway offers to.
    slots: Vec<(Mid, MediaKind)>,
}

impl Conn {
    /// A connection for `key` in `room`.
    pub fn new(id: u64, key: StreamKey, room: String, direction: MediaDirection) -> Self {
        let now = Instant::now();
        Self {
            id,
            key,
            room,
            direction,
            rtc: None,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            pending: None,
            started: false,
            timeout: now,
            created: now,
            dirty: true,
            early_candidates: Vec::new(),
            candidates: 0,
            rtp_seen: HashMap::new(),
            channel: None,
            muted: Vec::new(),
            forced_height: 0,
            downlink: Downlink::default(),
            epochs: [0; 2],
            freed: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Whether this is a player that made its own offer (WHEP).
    pub fn offered(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Whether this is a player that receives `publisher`'s tracks: a publisher into the room
    /// it plays, or the one stream it plays; never its own session's (the SDK publishes and
    /// plays on one WebSocket, and Ant sends no one their own stream).
    pub fn plays(&self, publisher: &Conn) -> bool {
        self.direction == MediaDirection::Play
            && publisher.direction == MediaDirection::Publish
            && publisher.key.session != self.key.session
            && (publisher.room == self.room || publisher.key.stream_id == self.room)
    }

    /// Whether it is still worth keeping.
    pub fn is_alive(&self, now: Instant) -> bool {
        let connecting = !self.started && now.duration_since(self.created) < CONNECT_TIMEOUT;
        match &self.rtc {
            Some(rtc) => rtc.is_alive() && (self.started || connecting),
            None => connecting,
        }
    }

    /// Installs a freshly built `Rtc` (with its local candidates) and any early candidates.
    pub fn set_rtc(&mut self, mut rtc: Rtc) {
        for c in self.early_candidates.drain(..) {
            rtc.add_remote_candidate(c);
        }
        self.rtc = Some(rtc);
        self.dirty = true;
    }

    /// A remote candidate from signaling; unparsable ones (mDNS names, garbage) are ignored:
    /// ICE still finds the peer through its checks.
    pub fn add_candidate(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() || self.candidates >= MAX_CANDIDATES {
            return;
        }
        self.candidates += 1;
        self.dirty = true;
        let Ok(candidate) = Candidate::from_sdp_string(line) else {
            tracing::debug!(candidate = line, "Ignoring a candidate str0m cannot use.");
            return;
        };
        match &mut self.rtc {
            Some(rtc) => rtc.add_remote_candidate(candidate),
            None => self.early_candidates.push(candidate),
        }
    }

    /// A publisher's offer: the answer, or why the offer is unusable (a fixed text: the SDP
    /// library's own error goes to the log only).
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        self.dirty = true;
        let sections = sdp.lines().filter(|l| l.starts_with("m=")).count();
        if sections > MAX_PUBLISHER_SECTIONS {
            return Err(format!(
                "the offer has {sections} media sections; a publisher may have {MAX_PUBLISHER_SECTIONS}"
            ));
        }
        let sdp = send_only(sdp);
        let offer = SdpOffer::from_sdp_string(&sdp)
            .map_err(|e| bounded("the offer is not a readable SDP", &e))?;
        let rtc = self.rtc.as_mut().ok_or("no peer connection")?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| bounded("the offer was not accepted", &e))?;
        Ok(answer.to_sdp_string())
    }

    /// A player's own offer (WHEP: the client offers, the server answers), on a fresh `rtc`
    /// that replaces the one the gateway's first offer was made on. The offered audio and video
    /// sections become fixed slots that the room's tracks fill, one publisher track each, in
    /// the order they were published; a track without a free slot waits for one (a WHEP
    /// session is never renegotiated). Returns the answer and the sources of video tracks that
    /// took a slot (for a keyframe request).
    pub fn accept_player_offer(
        &mut self,
        rtc: Rtc,
        sdp: &str,
    ) -> Result<(String, Vec<(u64, Mid)>), String> {
        if self.started || self.offered() {
            return Err("a player offers once, before it is connected".into());
        }
        let sections = sdp.lines().filter(|l| l.starts_with("m=")).count();
        if sections > MAX_PUBLISHER_SECTIONS {
            return Err(format!(
                "the offer has {sections} media sections; a player may have {MAX_PUBLISHER_SECTIONS}"
            ));
        }
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| bounded("the offer is not a readable SDP", &e))?;
        self.pending = None;
        self.rtc = None;
        self.set_rtc(rtc);
        let rtc = self.rtc.as_mut().ok_or("no peer connection")?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| bounded("the offer was not accepted", &e))?
            .to_sdp_string();
        self.slots = receiving_sections(&answer);
        if self.slots.is_empty() {
            return Err("the offer has no audio or video section to receive on".into());
        }
        // The tracks the gateway's own offer had: not negotiated now, waiting for a slot.
        self.tracks_out.retain(|t| !t.gone);
        for t in &mut self.tracks_out {
            t.state = TrackState::ToOpen;
        }
        Ok((answer, self.fill_slots()))
    }

    /// A player that offered: gives each waiting track a free slot of its kind. Returns the
    /// sources of video tracks that got one.
    pub fn fill_slots(&mut self) -> Vec<(u64, Mid)> {
        let mut opened = Vec::new();
        for i in 0..self.tracks_out.len() {
            let Some(track) = self.tracks_out.get(i) else {
                break;
            };
            if track.state != TrackState::ToOpen {
                continue;
            }
            let kind = track.kind;
            let taken = |mid: Mid| {
                self.tracks_out
                    .iter()
                    .any(|t| t.state == TrackState::Open(mid))
            };
            let Some(mid) = self
                .slots
                .iter()
                .find(|(mid, k)| *k == kind && !taken(*mid))
                .map(|(mid, _)| *mid)
            else {
                continue;
            };
            let numbering = self
                .freed
                .iter()
                .position(|(m, _)| *m == mid)
                .map(|j| self.freed.swap_remove(j).1);
            if let Some(track) = self.tracks_out.get_mut(i) {
                track.state = TrackState::Open(mid);
                if let Some(mut rewrite) = numbering {
                    rewrite.interrupt();
                    track.rewrite = rewrite;
                }
                if kind == MediaKind::Video {
                    opened.push(track.source);
                }
            }
        }
        opened
    }

    /// A player's answer to the pending offer. Returns the sources of tracks that opened (for a
    /// keyframe request).
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Vec<(u64, Mid)>, String> {
        self.dirty = true;
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| bounded("the answer is not a readable SDP", &e))?;
        let pending = self.pending.take().ok_or("no offer is pending")?;
        let rtc = self.rtc.as_mut().ok_or("no peer connection")?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| bounded("the answer was not accepted", &e))?;
        let mut opened = Vec::new();
        for t in &mut self.tracks_out {
            match t.state {
                TrackState::Negotiating(mid) if t.gone => t.state = TrackState::ToStop(mid),
                TrackState::Negotiating(mid) => {
                    t.state = TrackState::Open(mid);
                    if t.kind == MediaKind::Video {
                        opened.push(t.source);
                    }
                }
                _ => {}
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, TrackState::Stopping(_)));
        Ok(opened)
    }

    /// A player: the next offer, if tracks are to be added or stopped and no offer is pending.
    /// `initial` also opens a data channel, so that the first offer has a section even in a
    /// room without publishers (and the SDK's play data channel works).
    pub fn negotiate(&mut self, initial: bool) -> Option<MediaOffer> {
        if self.direction != MediaDirection::Play || self.pending.is_some() || self.offered() {
            return None;
        }
        let rtc = self.rtc.as_mut()?;
        let mut api = rtc.sdp_api();
        if initial {
            api.add_channel(self.room.clone());
        }
        for t in &mut self.tracks_out {
            match t.state {
                TrackState::ToOpen => {
                    let mid = api.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(t.stream.clone()),
                        Some(t.track_id.clone()),
                        None,
                    );
                    t.state = TrackState::Negotiating(mid);
                }
                TrackState::ToStop(mid) => {
                    api.stop_media(mid);
                    t.state = TrackState::Stopping(mid);
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return None;
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        self.dirty = true;
        let id_mapping = self
            .tracks_out
            .iter()
            .filter_map(|t| match t.state {
                TrackState::Negotiating(mid) | TrackState::Open(mid) => Some(TrackMapping {
                    mid: mid.to_string(),
                    track_id: t.track_id.clone(),
                }),
                _ => None,
            })
            .collect();
        Some(MediaOffer {
            stream_id: self.key.stream_id.clone(),
            sdp: offer.to_sdp_string(),
            id_mapping,
        })
    }

    /// A player: a publisher's track to receive.
    pub fn add_track(&mut self, source: (u64, Mid), kind: MediaKind, stream: &str) {
        let letter = if kind == MediaKind::Video { 'v' } else { 'a' };
        self.tracks_out.push(TrackOut {
            source,
            kind,
            track_id: format!("ARDAMS{letter}{stream}"),
            stream: stream.to_owned(),
            state: TrackState::ToOpen,
            gone: false,
            paused: false,
            select: Selector::pinned(self.forced_height),
            rewrite: Rewrite::default(),
            pt_map: None,
        });
    }

    /// A player: publisher `publisher` left; its tracks go.
    pub fn drop_source(&mut self, publisher: u64) {
        if self.offered() {
            // Its slot is free for a waiting track (`fill_slots`); nothing to renegotiate.
            for t in self
                .tracks_out
                .iter_mut()
                .filter(|t| t.source.0 == publisher)
            {
                if let TrackState::Open(mid) = t.state {
                    self.freed.retain(|(m, _)| *m != mid);
                    self.freed.push((mid, std::mem::take(&mut t.rewrite)));
                }
            }
            self.tracks_out.retain(|t| t.source.0 != publisher);
            return;
        }
        self.tracks_out.retain_mut(|t| {
            if t.source.0 != publisher {
                return true;
            }
            match t.state {
                TrackState::ToOpen => return false,
                TrackState::Negotiating(_) => t.gone = true,
                TrackState::Open(mid) => t.state = TrackState::ToStop(mid),
                TrackState::ToStop(_) | TrackState::Stopping(_) => {}
            }
            true
        });
    }

    /// Whether a player has changes for a next offer.
    pub fn wants_offer(&self) -> bool {
        !self.offered()
            && self
                .tracks_out
                .iter()
                .any(|t| matches!(t.state, TrackState::ToOpen | TrackState::ToStop(_)))
    }

    /// A player: writes a publisher's RTP packet to the section that carries it, with this
    /// player's payload type, sequence number and timestamp (str0m's RTP mode: no
    /// depacketizing, no packetizing, the payload shared, not copied). Of a simulcast track
    /// (`simulcast`: the source's layers and the packet's sample), only the layer this player
    /// is sent; the second value is a layer of the source to ask a keyframe of, which this
    /// player waits to switch to.
    pub fn forward(
        &mut self,
        from: u64,
        f: &Forward,
        simulcast: Option<(&Layers, &Sample)>,
    ) -> (Forwarded, Option<Rid>) {
        let Some(track) = self
            .tracks_out
            .iter_mut()
            .find(|t| t.source == (from, f.mid) && matches!(t.state, TrackState::Open(_)))
        else {
            return (Forwarded::Skipped, None);
        };
        if track.paused {
            // When it resumes, a new segment: no gap in the numbers, video from a keyframe.
            track.rewrite.interrupt();
            return (Forwarded::Skipped, None);
        }
        let TrackState::Open(mid) = track.state else {
            return (Forwarded::Skipped, None);
        };
        let mut switch = None;
        if let Some((layers, sample)) = simulcast {
            let admit = track.select.admit(layers, sample);
            switch = admit.keyframe;
            if !admit.write {
                return (Forwarded::Skipped, switch);
            }
        }
        let Some(rtc) = self.rtc.as_mut() else {
            return (Forwarded::Skipped, switch);
        };
        let forwarded = write_packet(rtc, track, mid, from, f);
        if forwarded == Forwarded::Written {
            self.dirty = true;
        }
        (forwarded, switch)
    }

    /// A player: pauses or resumes the tracks of stream `track` (every track when `track` is
    /// what it plays, a room or one stream) of the given kinds. Returns the sources of video
    /// tracks it resumed, which need a keyframe to be decoded again.
    pub fn pause(&mut self, track: &str, kinds: &[MediaKind], paused: bool) -> Vec<(u64, Mid)> {
        let all = track == self.room;
        let mut resumed = Vec::new();
        for t in &mut self.tracks_out {
            if (all || t.stream == track) && kinds.contains(&t.kind) && t.paused != paused {
                t.paused = paused;
                if !paused && t.kind == MediaKind::Video {
                    resumed.push(t.source);
                }
            }
        }
        resumed
    }

    /// A player: writes a publisher's data-channel message to this connection's data channel.
    /// Returns whether it was written (not before the channel is open).
    pub fn send_data(&mut self, binary: bool, data: &[u8]) -> bool {
        let Some(id) = self.channel else {
            return false;
        };
        let Some(mut channel) = self.rtc.as_mut().and_then(|rtc| rtc.channel(id)) else {
            return false;
        };
        self.dirty = true;
        channel.write(binary, data).unwrap_or(false)
    }

    /// A publisher: asks for a keyframe on `mid` (every simulcast layer seen), at most every
    /// [`KEYFRAME_INTERVAL`].
    pub fn request_keyframe(&mut self, mid: Mid, kind: KeyframeRequestKind, now: Instant) {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if track
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL)
        {
            return;
        }
        let Some(rtc) = self.rtc.as_mut() else {
            return;
        };
        let mut api = rtc.direct_api();
        // A simulcast track has no stream without a RID: each layer is asked.
        let plain = (!track.layers.is_simulcast()).then_some(None);
        let mut asked = false;
        for rid in track.layers.rids().map(Some).chain(plain) {
            if let Some(stream) = api.stream_rx_by_mid(mid, rid) {
                stream.request_keyframe(kind);
                asked = true;
            }
        }
        if asked {
            COUNTERS.keyframe_requested();
            track.last_keyframe_request = Some(now);
            self.dirty = true;
        }
    }

    /// A publisher: asks simulcast layer `rid` of `mid` for a keyframe (a player switches to
    /// it), at most every [`KEYFRAME_INTERVAL`] per layer.
    pub fn request_layer_keyframe(&mut self, mid: Mid, rid: Rid, now: Instant) {
        let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        let Some(layer) = track.layers.layers_mut().iter_mut().find(|l| l.rid == rid) else {
            return;
        };
        if layer
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL)
        {
            return;
        }
        let Some(rtc) = self.rtc.as_mut() else {
            return;
        };
        if let Some(stream) = rtc.direct_api().stream_rx_by_mid(mid, Some(rid)) {
            stream.request_keyframe(KeyframeRequestKind::Pli);
            COUNTERS.keyframe_requested();
            layer.last_keyframe_request = Some(now);
            self.dirty = true;
        }
    }

    /// A publisher: the layers of its track `mid`, taken out for the players' selectors while
    /// one packet is forwarded (so that neither is copied); [`Conn::put_layers`] returns them.
    pub fn take_layers(&mut self, mid: Mid) -> Option<Layers> {
        let track = self.tracks_in.iter_mut().find(|t| t.mid == mid)?;
        Some(std::mem::take(&mut track.layers))
    }

    /// Returns the layers [`Conn::take_layers`] took.
    pub fn put_layers(&mut self, mid: Mid, layers: Layers) {
        if let Some(track) = self.tracks_in.iter_mut().find(|t| t.mid == mid) {
            track.layers = layers;
        }
    }

    /// Drains the `Rtc`'s output: datagrams to `send`, meaning to `out`. Stops at the next
    /// timeout, which it records.
    pub fn poll(
        &mut self,
        send: &mut impl FnMut(Vec<u8>, std::net::SocketAddr),
        out: &mut Vec<Yield>,
    ) {
        let Some(rtc) = self.rtc.as_mut() else {
            self.timeout = self.created + CONNECT_TIMEOUT;
            return;
        };
        let mut due = 0;
        loop {
            if !rtc.is_alive() {
                self.timeout = Instant::now();
                return;
            }
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    if t > now || due >= DUE_TIMEOUTS_PER_POLL {
                        self.timeout = t;
                        return;
                    }
                    due += 1;
                    if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(error = %e, stream = %self.key.stream_id, "Timeout handling failed; disconnecting.");
                        rtc.disconnect();
                        self.timeout = now;
                        return;
                    }
                }
                Ok(Output::Transmit(t)) => send(t.contents.into(), t.destination),
                Ok(Output::Event(event)) => match event {
                    RtcEvent::Connected if !self.started => {
                        self.started = true;
                        out.push(Yield::Started(self.id));
                    }
                    // While connecting, str0m's ICE agent reports Disconnected whenever every
                    // pair tried so far has failed, and goes back to Checking when the next
                    // trickled candidate arrives; giving up then killed connections that were
                    // about to succeed (seen under CI load: play_finished before ICE was up).
                    // A connecting one is bounded by CONNECT_TIMEOUT instead.
                    RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected)
                        if self.started =>
                    {
                        rtc.disconnect();
                    }
                    RtcEvent::MediaAdded(m) if self.direction == MediaDirection::Publish => {
                        self.tracks_in.push(TrackIn {
                            mid: m.mid,
                            kind: m.kind,
                            last_keyframe_request: None,
                            layers: Layers::default(),
                            received_bps: 0,
                        });
                        out.push(Yield::TrackAdded {
                            from: self.id,
                            mid: m.mid,
                            kind: m.kind,
                        });
                    }
                    RtcEvent::RtpPacket(packet) if self.direction == MediaDirection::Publish => {
                        let tracks = &mut self.tracks_in;
                        if let Some(forward) =
                            incoming(rtc, tracks, &self.muted, self.epochs, packet)
                        {
                            out.push(Yield::Rtp {
                                from: self.id,
                                packet: Box::new(forward),
                            });
                        }
                    }
                    RtcEvent::ChannelOpen(id, _) => self.channel = Some(id),
                    RtcEvent::ChannelClose(id) if self.channel == Some(id) => self.channel = None,
                    RtcEvent::ChannelData(d)
                        if self.direction == MediaDirection::Publish
                            && d.data.len() <= MAX_DATA_MESSAGE =>
                    {
                        out.push(Yield::Data {
                            from: self.id,
                            binary: d.binary,
                            data: d.data,
                        });
                    }
                    RtcEvent::MediaIngressStats(s) => {
                        // A simulcast layer's rate is measured in its `Layers` instead.
                        if s.rid.is_none()
                            && let Some(t) = self.tracks_in.iter_mut().find(|t| t.mid == s.mid)
                        {
                            t.received_bps = bps_since(&self.rtp_seen, (s.mid, None), s.bytes);
                        }
                        count_rtp(&mut self.rtp_seen, Leg::In, (s.mid, s.rid), rtp_totals!(s));
                    }
                    RtcEvent::MediaEgressStats(s) => {
                        let sent_bps = bps_since(&self.rtp_seen, (s.mid, s.rid), s.bytes);
                        self.downlink.on_report(s.mid, sent_bps, s.loss);
                        count_rtp(&mut self.rtp_seen, Leg::Out, (s.mid, s.rid), rtp_totals!(s));
                    }
                    RtcEvent::EgressBitrateEstimate(BweKind::Twcc {
                        estimate,
                        can_probe,
                    }) => {
                        tracing::trace!(stream = %self.key.stream_id, player = self.id, bps = estimate.as_u64(), can_probe, "Player link estimate.");
                        self.downlink
                            .on_estimate(estimate.as_u64(), can_probe, Instant::now());
                    }
                    RtcEvent::KeyframeRequest(req) => {
                        let source = self.tracks_out.iter().find_map(|t| match t.state {
                            TrackState::Open(mid) if mid == req.mid => Some(t.source),
                            _ => None,
                        });
                        if let Some((publisher, mid)) = source {
                            out.push(Yield::Keyframe {
                                publisher,
                                mid,
                                kind: req.kind,
                            });
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(error = %e, stream = %self.key.stream_id, "Peer connection failed.");
                    rtc.disconnect();
                    self.timeout = Instant::now();
                    return;
                }
            }
        }
    }
}

/// A publisher's RTP packet with its track and codec, or `None` when it is not forwarded: a
/// kind the publisher turned off (its own toggleVideo/toggleAudio; checked here, once per
/// packet, not once per player), or no track or payload type it belongs to (a RED or FEC
/// payload type str0m did not offer is never negotiated).
fn incoming(
    rtc: &mut Rtc,
    tracks: &mut [TrackIn],
    muted: &[MediaKind],
    epochs: [u32; 2],
    packet: RtpPacket,
) -> Option<Forward> {
    let header = &packet.header;
    let (mid, rid) = rtc
        .direct_api()
        .stream_rx(&header.ssrc)
        .map(|s| (s.mid(), s.rid()))?;
    let track = tracks.iter_mut().find(|t| t.mid == mid)?;
    if muted.contains(&track.kind) {
        return None;
    }
    let params = *rtc.codec_config().find(|p| p.pt() == header.payload_type)?;
    Some(Forward {
        mid,
        rid,
        kind: track.kind,
        params,
        epoch: epochs.get(kind_index(track.kind)).copied().unwrap_or(0),
        packet,
    })
}

/// [`Conn::forward`]'s writing of a packet to player track `track`, open on section `mid` of
/// the player's `rtc`.
fn write_packet(
    rtc: &mut Rtc,
    track: &mut TrackOut,
    mid: Mid,
    from: u64,
    f: &Forward,
) -> Forwarded {
    let header = &f.packet.header;
    let pt = match track.pt_map {
        Some((from_pt, to_pt)) if from_pt == header.payload_type => to_pt,
        _ => {
            let Some(to_pt) = rtc.codec_config().match_params(f.params).map(|p| p.pt()) else {
                return Forwarded::Skipped;
            };
            track.pt_map = Some((header.payload_type, to_pt));
            to_pt
        }
    };
    let incoming = Incoming {
        source: Source {
            publisher: from,
            ssrc: *header.ssrc,
            epoch: f.epoch,
        },
        seq: *f.packet.seq_no,
        timestamp: header.timestamp,
        clock_rate: f.params.spec().clock_rate.get(),
        arrival: f.packet.timestamp,
    };
    let video = track.kind == MediaKind::Video;
    let codec = f.params.spec().codec;
    let starts = || !video || starts_keyframe(codec, &f.packet.payload);
    let (seq, timestamp) = match track.rewrite.map(incoming, starts) {
        Outcome::Write { seq, timestamp } => (seq, timestamp),
        Outcome::Drop => return Forwarded::Skipped,
        Outcome::NeedKeyframe => return Forwarded::NeedKeyframe,
    };
    let vp8 = (video && codec == str0m::format::Codec::Vp8)
        .then(|| track.rewrite.vp8_patch(&f.packet.payload))
        .flatten();
    let mut api = rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, None) else {
        return Forwarded::Skipped;
    };
    // What the player's decoder and renderer use; str0m sets its own transport fields
    // (mid, rid, transport-cc, abs-send-time).
    let ext = ExtensionValues {
        audio_level: header.ext_vals.audio_level,
        voice_activity: header.ext_vals.voice_activity,
        video_orientation: header.ext_vals.video_orientation,
        video_content_type: header.ext_vals.video_content_type,
        ..ExtensionValues::default()
    };
    let packet = RtpWrite::new(
        pt,
        SeqNo::from(seq),
        timestamp,
        f.packet.timestamp,
        Arc::clone(&f.packet.payload),
    )
    .marker(header.marker)
    .ext_vals(ext)
    // Video is kept for the player's NACKs (answered on its RTX stream); audio is not.
    .nackable(video);
    let packet = match vp8 {
        Some(patch) => packet.vp8_patch(patch),
        None => packet,
    };
    tx.write_rtp(packet);
    Forwarded::Written
}

/// The index of `kind` in [`Conn::epochs`].
pub fn kind_index(kind: MediaKind) -> usize {
    usize::from(kind == MediaKind::Video)
}

/// The fixed `text` a peer is told for an SDP the media library refused. The library's own
/// error stays in the log: its Display and Debug output carry internal detail (parser offsets,
/// heap addresses such as `PointerOffset(0x...)`) that is no business of a peer's.
fn bounded(text: &'static str, error: &dyn std::fmt::Display) -> String {
    tracing::debug!(error = %error, reason = text, "Refused a session description.");
    text.to_owned()
}

/// The audio and video sections an answer sends on (port not 0), with their mids, in order.
fn receiving_sections(answer: &str) -> Vec<(Mid, MediaKind)> {
    let mut sections = Vec::new();
    let mut current: Option<MediaKind> = None;
    for line in answer.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split(' ');
            let kind = match fields.next() {
                Some("audio") => Some(MediaKind::Audio),
                Some("video") => Some(MediaKind::Video),
                _ => None,
            };
            current = kind.filter(|_| fields.next() != Some("0"));
        } else if let (Some(kind), Some(mid)) = (current, line.strip_prefix("a=mid:")) {
            sections.push((Mid::from(mid.trim()), kind));
            current = None;
        }
    }
    sections
}

/// A publisher's offer with every `sendrecv` section made `sendonly`, so that the answer is
/// `recvonly`, as Ant answers a publisher. The SDK offers `sendrecv` (it adds its tracks with
/// `addTrack`); str0m mirrors the offered direction, and a `sendrecv` answer makes the browser
/// fire `ontrack` for the publisher's own connection, which the SDK reports as
/// `newTrackAvailable`/`newStreamAvailable` of the page's own stream (a dead video in Ant's
/// conference pages). The gateway never sends on a publisher's connection.
fn send_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            if line.trim_end() == "a=sendrecv" {
                line.replacen("a=sendrecv", "a=sendonly", 1)
            } else {
                line.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use switchboard_plugin_api::SessionId;

    use super::*;

    fn publisher() -> Conn {
        Conn::new(
            1,
            StreamKey::new(SessionId(1), "s1"),
            "room".into(),
            MediaDirection::Publish,
        )
    }

    #[test]
    fn offers_with_too_many_sections_and_garbage_are_refused_without_panic() {
        let mut conn = publisher();
        let many = format!("v=0\r\n{}", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(9));
        let err = conn.accept_offer(&many).expect_err("too many sections");
        assert!(err.contains("9 media sections"), "{err}");
        for garbage in ["", "v=0", "m=\r\n\u{0}", "v=0\r\nm=video x y z\r\n"] {
            assert!(conn.accept_offer(garbage).is_err(), "{garbage:?}");
        }
        assert!(conn.accept_answer("v=0\r\n").is_err(), "no offer pending");
    }

    #[test]
    fn a_publishers_sendrecv_sections_are_offered_as_sendonly() {
        let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=x-sendrecv\r\n";
        assert_eq!(
            send_only(offer),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=x-sendrecv\r\n"
        );
    }

    #[test]
    fn an_offering_player_fills_its_sections_in_publish_order_and_frees_them() {
        let answer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";
        let slots = receiving_sections(answer);
        assert_eq!(
            slots,
            [
                (Mid::from("0"), MediaKind::Audio),
                (Mid::from("1"), MediaKind::Video)
            ],
            "rejected (port 0) and data sections are no slots"
        );
        let mut player = Conn::new(
            9,
            StreamKey::new(SessionId(2), "room"),
            "room".into(),
            MediaDirection::Play,
        );
        player.slots = slots;
        assert!(player.offered());
        player.add_track((1, Mid::from("a")), MediaKind::Audio, "p1");
        player.add_track((1, Mid::from("v")), MediaKind::Video, "p1");
        player.add_track((2, Mid::from("v")), MediaKind::Video, "p2");
        assert_eq!(
            player.fill_slots(),
            [(1, Mid::from("v"))],
            "p1's video opens"
        );
        assert!(
            !player.wants_offer(),
            "an offering player is never offered to"
        );
        assert!(player.negotiate(false).is_none());
        let open = |p: &Conn| -> Vec<(u64, TrackState)> {
            p.tracks_out.iter().map(|t| (t.source.0, t.state)).collect()
        };
        assert_eq!(
            open(&player),
            [
                (1, TrackState::Open(Mid::from("0"))),
                (1, TrackState::Open(Mid::from("1"))),
                (2, TrackState::ToOpen),
            ]
        );
        // p1 leaves: p2's video takes the freed section.
        player.drop_source(1);
        assert_eq!(player.fill_slots(), [(2, Mid::from("v"))]);
        assert_eq!(open(&player), [(2, TrackState::Open(Mid::from("1")))]);
    }

    #[test]
    fn a_pinned_height_holds_for_tracks_added_later() {
        let mut player = Conn::new(
            9,
            StreamKey::new(SessionId(2), "room"),
            "room".into(),
            MediaDirection::Play,
        );
        player.add_track((1, Mid::from("v")), MediaKind::Video, "p1");
        player.forced_height = 240;
        player.add_track((2, Mid::from("v")), MediaKind::Video, "p2");
        let pins: Vec<u32> = player.tracks_out.iter().map(|t| t.select.forced).collect();
        assert_eq!(
            pins,
            [0, 240],
            "a new track takes the pin; `force_quality` sets the rest"
        );
    }

    #[test]
    fn candidates_are_bounded_and_garbage_is_ignored() {
        let mut conn = publisher();
        conn.add_candidate("candidate:garbage");
        conn.add_candidate("");
        for port in 0..200u16 {
            conn.add_candidate(&format!(
                "candidate:1 1 udp 2122260223 127.0.0.1 {} typ host",
                10_000 + port
            ));
        }
        // One garbage line counted, the empty one not: 63 real candidates kept.
        assert_eq!(conn.early_candidates.len(), MAX_CANDIDATES - 1);
    }
}
