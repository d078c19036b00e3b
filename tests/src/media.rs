//! A WebRTC media peer for tests and the SFU benchmark: a str0m `Rtc` on its own loopback UDP
//! socket, driven by [`MediaPeer::pump`]. It publishes (offers send-only audio and video, then
//! writes frames stamped with the time they were sent) or plays (answers the server's offer and
//! counts what arrives, with the latency read from the stamps).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RawPacket;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// A test peer connection.
pub struct MediaPeer {
    /// The connection.
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Frames received, per mid.
    pub frames: HashMap<Mid, u64>,
    /// Send-to-receive delay of every stamped frame received, in microseconds.
    pub latencies_us: Vec<u64>,
    /// The publisher's media sections, once negotiated.
    pub sending: Vec<(Mid, MediaKind)>,
    /// The clock the stamps count from (shared by every peer of a run).
    pub epoch: Instant,
    /// A publisher: video frames are VP8 interframes (the payload header's P bit set) except
    /// the next one after a keyframe request. Otherwise every frame reads as a keyframe.
    pub interframes: bool,
    keyframe_due: bool,
    /// Keyframe requests (PLI/FIR) received.
    pub keyframe_requests: u64,
    /// Every RTP packet received, in arrival order (only with [`Self::recording`]).
    pub rtp: Vec<ReceivedRtp>,
}

/// An RTP packet as a player received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedRtp {
    /// Its SSRC.
    pub ssrc: u32,
    /// Its sequence number.
    pub seq: u16,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Whether it is the first packet of a VP8 keyframe.
    pub keyframe: bool,
}

/// Bytes of the send stamp at the start of each frame. A stamp needs 7 bytes, so the first is
/// free to carry the VP8 payload header's P bit (0: keyframe), which readers mask off.
const STAMP: usize = 8;

impl MediaPeer {
    /// A peer on a fresh `127.0.0.1` port; stamps count from `epoch`.
    pub async fn new(epoch: Instant) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp bind");
        let local = socket.local_addr().expect("local addr");
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
        Self {
            rtc,
            socket,
            local,
            pending: None,
            connected: false,
            frames: HashMap::new(),
            latencies_us: Vec::new(),
            sending: Vec::new(),
            epoch,
            interframes: false,
            keyframe_due: false,
            keyframe_requests: 0,
            rtp: Vec::new(),
        }
    }

    /// A peer that also records every RTP packet it receives ([`Self::rtp`]).
    pub async fn recording(epoch: Instant) -> Self {
        let mut peer = Self::new(epoch).await;
        let socket = peer.local;
        peer.rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .enable_raw_packets(true)
            .build(Instant::now());
        peer.rtc
            .add_local_candidate(Candidate::host(socket, "udp").expect("host candidate"));
        peer
    }

    /// A publisher's offer: one send-only audio and one send-only video section.
    pub fn publish_offer(&mut self) -> String {
        let mut api = self.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        self.pending = Some(pending);
        self.sending = vec![(audio, MediaKind::Audio), (video, MediaKind::Video)];
        offer.to_sdp_string()
    }

    /// A WHEP player's offer: one receive-only audio and one receive-only video section.
    pub fn play_offer(&mut self) -> String {
        let mut api = self.rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        self.pending = Some(pending);
        offer.to_sdp_string()
    }

    /// Takes the server's answer to [`Self::publish_offer`] or [`Self::play_offer`].
    pub fn accept_answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("parsable answer");
        let pending = self.pending.take().expect("an offer is pending");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
    }

    /// Answers the server's offer.
    pub fn answer(&mut self, sdp: &str) -> String {
        let offer = SdpOffer::from_sdp_string(sdp).expect("parsable offer");
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("offer accepted");
        answer.to_sdp_string()
    }

    /// A publisher: writes one frame of `bytes` (at least the stamp) on each of its sections.
    pub fn send_frames(&mut self, bytes: usize, rtp_time: u64) {
        let now = Instant::now();
        let stamp = u64::try_from(now.duration_since(self.epoch).as_micros()).unwrap_or(0);
        let mut frame = vec![0u8; bytes.max(STAMP + 1)];
        frame[..STAMP].copy_from_slice(&stamp.to_be_bytes());
        let mut video = frame.clone();
        if self.interframes && !std::mem::take(&mut self.keyframe_due) {
            video[0] |= 1;
        }
        for (mid, kind) in self.sending.clone() {
            let Some(writer) = self.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
                continue;
            };
            let rate = if kind == MediaKind::Audio {
                Frequency::FORTY_EIGHT_KHZ
            } else {
                Frequency::NINETY_KHZ
            };
            let time = MediaTime::new(rtp_time * u64::from(rate.get()) / 1000, rate);
            let data = if kind == MediaKind::Video {
                video.clone()
            } else {
                frame.clone()
            };
            let _ = writer.write(pt, now, time, data);
        }
    }

    /// Frames received over every section.
    pub fn frames_total(&self) -> u64 {
        self.frames.values().sum()
    }

    /// Runs the connection until `deadline`: sends what it has to send, reads what arrives,
    /// handles timeouts, records frames and latencies.
    pub async fn pump(&mut self, deadline: Instant) {
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(e)) => self.event(e),
                    Err(e) => panic!("test peer failed: {e}"),
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wait = timeout.min(deadline).saturating_duration_since(now);
            match tokio::time::timeout(wait, self.socket.recv_from(&mut buf)).await {
                Ok(Ok((n, source))) => {
                    let Ok(contents) = buf[..n].try_into() else {
                        continue;
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
                    self.rtc.handle_input(input).expect("input handled");
                }
                Ok(Err(e)) => panic!("udp receive failed: {e}"),
                Err(_) => {
                    self.rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .expect("timeout handled");
                }
            }
        }
    }

    /// Pumps until `done(self)` or `within` passes; returns whether `done` came true.
    pub async fn pump_until(&mut self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if done(self) {
                return true;
            }
            self.pump(Instant::now() + Duration::from_millis(20)).await;
        }
        done(self)
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => self.connected = true,
            Event::MediaData(data) => {
                *self.frames.entry(data.mid).or_default() += 1;
                if let Some(stamp) = data.data.get(..STAMP) {
                    let mut b = [0u8; STAMP];
                    b.copy_from_slice(stamp);
                    b[0] = 0;
                    let sent = u64::from_be_bytes(b);
                    let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(0);
                    self.latencies_us.push(now.saturating_sub(sent));
                }
            }
            Event::KeyframeRequest(_) => {
                self.keyframe_requests += 1;
                self.keyframe_due = true;
            }
            Event::RawPacket(raw) => {
                if let RawPacket::RtpRx(header, payload) = *raw {
                    self.rtp.push(ReceivedRtp {
                        ssrc: *header.ssrc,
                        seq: header.sequence_number,
                        timestamp: header.timestamp,
                        keyframe: str0m::format::detect_vp8_keyframe(&payload),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Sends frames from every publisher for `ms` while `player` runs; returns the frames `player`
/// received in that time.
pub async fn flow(publishers: &mut [&mut MediaPeer], player: &mut MediaPeer, ms: u64) -> u64 {
    let before = player.frames_total();
    let start = Instant::now();
    let mut t = 0;
    while start.elapsed() < Duration::from_millis(ms) {
        for p in publishers.iter_mut() {
            p.send_frames(300, t);
            p.pump(Instant::now() + Duration::from_millis(2)).await;
        }
        player
            .pump(Instant::now() + Duration::from_millis(15))
            .await;
        t += 20;
    }
    player.frames_total() - before
}

/// The next Ant Media frame that is not a pong.
pub async fn next_ant(ws: &mut crate::WsClient) -> serde_json::Value {
    loop {
        let v = ws.recv_json().await;
        if v["command"] != "pong" {
            return v;
        }
    }
}

/// The next media reply or error to a raw peer (P2P room notices such as `switchboard.joined`
/// skipped).
pub async fn next_media(ws: &mut crate::WsClient) -> serde_json::Value {
    loop {
        let v = ws.recv_json().await;
        let kind = v["type"].as_str().unwrap_or_default();
        if kind.starts_with("switchboard.media") || kind == "switchboard.error" {
            return v;
        }
    }
}

/// The track ids of an Ant Media offer's `idMapping`, sorted.
pub fn tracks(offer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = offer["idMapping"]
        .as_object()
        .expect("idMapping is an object")
        .values()
        .map(|v| v.as_str().expect("track id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Publishes `stream` into `room` as the Ant Media SDK does, over a new connection to `url` (an
/// Ant Media WebSocket URL) with a fresh media peer, up to `publish_started` (the peer connected
/// within `wait`). Returns the connection, the peer and the SFU's answer SDP.
pub async fn publish_ant(
    url: &str,
    stream: &str,
    room: &str,
    epoch: Instant,
    wait: Duration,
) -> (crate::WsClient, MediaPeer, String) {
    use serde_json::json;
    let mut ws = crate::WsClient::connect(url).await;
    ws.send_json(json!({"command":"publish","streamId":stream,"subscriberId":"","subscriberCode":"","streamName":stream,"mainTrack":room,"video":true,"audio":true,"metaData":"","role":""})).await;
    assert_eq!(
        next_ant(&mut ws).await,
        json!({"command":"start","streamId":stream})
    );
    let mut peer = MediaPeer::new(epoch).await;
    let offer = peer.publish_offer();
    ws.send_json(
        json!({"command":"takeConfiguration","streamId":stream,"type":"offer","sdp":offer}),
    )
    .await;
    let answer = next_ant(&mut ws).await;
    assert_eq!(answer["command"], "takeConfiguration", "{answer}");
    assert_eq!(
        (&answer["type"], &answer["streamId"]),
        (&json!("answer"), &json!(stream)),
        "{answer}"
    );
    let sdp = crate::field(&answer, "sdp").to_owned();
    peer.accept_answer(&sdp);
    assert!(
        peer.pump_until(wait, |p| p.connected).await,
        "publisher {stream} connects"
    );
    assert_eq!(
        next_ant(&mut ws).await,
        json!({"command":"notification","definition":"publish_started","streamId":stream,"ATTR_ROOM_NAME":room,"room":room})
    );
    (ws, peer, sdp)
}
