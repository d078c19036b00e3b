//! Simulcast layer selection. A simulcast publisher (Chromium with `sendEncodings`, RID
//! simulcast) sends one video track as several layers, each its own RTP stream with its own
//! SSRC and RID. Each player gets one layer at a time on its one outgoing track:
//!
//! - [`Layers`] (per publisher track) learns each layer's frame height from its keyframes, and
//!   whether it is flowing: Chromium suspends upper layers when its bandwidth estimate drops.
//! - [`Selector`] (per player track) picks the layer: the one of the height the player forced
//!   (`forceStreamQuality`), else the best layer that fits the player's share of what its link
//!   takes ([`Selector::plan`], from [`downlink::Downlink`]), else, with nothing known of the
//!   link, the best flowing one. It switches only at the first packet of a keyframe of the new
//!   layer (asking for one), so the player's decoder never gets a delta frame of a picture it
//!   has not seen.
//!
//! The outgoing numbering is not this module's: a new layer is a new SSRC, so the player's
//! [`Rewrite`](crate::engine::rewrite::Rewrite) starts a new segment there, with its sequence
//! numbers one after the last sent and its timestamps moved on by the time that passed.
//!
//! Pure state: the engine feeds it packets and carries out the keyframe requests it returns.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, Rid};

use crate::conn::Forward;
use crate::engine::rewrite::starts_keyframe;

/// A layer without a packet for this long is taken as stopped (a suspended layer sends nothing;
/// a flowing one sends at least a few frames a second).
const IDLE: Duration = Duration::from_millis(1000);

/// Layers kept per track: Chromium sends up to three; a peer that names more RIDs gets the
/// first few.
const MAX_LAYERS: usize = 4;

/// The window over which a layer's byte rate is measured (the rank of layers whose height is
/// not known: a codec whose frame header is not read; what a layer costs a player's link).
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A layer above the current one is taken only when the player's share is this much above
/// the layer's bitrate (the hysteresis band: the current layer is left when the share falls
/// below its own bitrate, so a share between the two moves nothing).
pub const UP_HEADROOM: f64 = 1.25;

/// ... and not within this long of the last step down (a stable period, as a loss-based
/// sender waits before it raises its rate again), so a link that cannot take the upper layer
/// is not offered it again and again.
pub const UP_HOLD: Duration = Duration::from_secs(4);

pub mod downlink;

/// One packet of a simulcast layer, as far as layer choice needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Its layer.
    pub rid: Rid,
    /// When it arrived.
    pub arrival: Instant,
    /// Its payload length (0: padding, which says nothing about the layer flowing).
    pub len: usize,
    /// Whether it is the first packet of a keyframe (where a player may switch to its layer).
    pub keyframe: bool,
    /// The keyframe's height, when it is one and its codec's header tells it (VP8).
    pub height: Option<u32>,
}

impl Sample {
    /// The sample of a publisher's packet: `None` unless it is video of a simulcast layer.
    /// Computed once per packet, for every player that receives it.
    pub fn of(f: &Forward) -> Option<Self> {
        let rid = f.rid?;
        if f.kind != MediaKind::Video {
            return None;
        }
        let codec = f.params.spec().codec;
        Some(Self::read(
            rid,
            f.packet.timestamp,
            codec,
            &f.packet.payload,
        ))
    }

    /// The sample of an RTP `payload` of `codec` of layer `rid`.
    pub fn read(rid: Rid, arrival: Instant, codec: Codec, payload: &[u8]) -> Self {
        let keyframe = !payload.is_empty() && starts_keyframe(codec, payload);
        let height = (keyframe && codec == Codec::Vp8)
            .then(|| vp8_payload(payload).and_then(vp8_keyframe_height))
            .flatten();
        Self {
            rid,
            arrival,
            len: payload.len(),
            keyframe,
            height,
        }
    }
}

/// One layer of a publisher's video track.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its RTP stream id.
    pub rid: Rid,
    /// The frame height of its last keyframe, when the codec's header tells it (VP8).
    pub height: Option<u32>,
    last_packet: Instant,
    window_start: Instant,
    window_bytes: u64,
    /// Bytes in the last full [`RATE_WINDOW`].
    rate: u64,
    /// When a keyframe was last requested of this layer.
    pub last_keyframe_request: Option<Instant>,
}

impl Layer {
    fn flowing(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_packet) < IDLE
    }

    /// Rank among layers: height first, byte rate where heights are not known.
    fn rank(&self) -> (u32, u64) {
        (self.height.unwrap_or(0), self.rate.max(self.window_bytes))
    }

    /// What it costs a player's link, in bits per second: its bytes in the last full window
    /// (the current window's while there is none yet).
    pub fn bitrate(&self) -> u64 {
        let bytes = if self.rate == 0 {
            self.window_bytes
        } else {
            self.rate
        };
        bytes.saturating_mul(8)
    }
}

/// The simulcast layers a publisher's video track is sending (none for a track without
/// simulcast).
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: Vec<Layer>,
}

impl Layers {
    /// Takes note of a packet of this track.
    pub fn observe(&mut self, s: &Sample) {
        let now = s.arrival;
        let i = match self.layers.iter().position(|l| l.rid == s.rid) {
            Some(i) => i,
            None if self.layers.len() < MAX_LAYERS => {
                self.layers.push(Layer {
                    rid: s.rid,
                    height: None,
                    last_packet: now,
                    window_start: now,
                    window_bytes: 0,
                    rate: 0,
                    last_keyframe_request: None,
                });
                self.layers.len() - 1
            }
            None => return,
        };
        let Some(layer) = self.layers.get_mut(i) else {
            return;
        };
        if s.len == 0 {
            return;
        }
        layer.last_packet = now;
        if now.saturating_duration_since(layer.window_start) >= RATE_WINDOW {
            layer.rate = layer.window_bytes;
            layer.window_bytes = 0;
            layer.window_start = now;
        }
        layer.window_bytes += s.len as u64;
        if let Some(height) = s.height {
            if layer.height != Some(height) {
                tracing::debug!(rid = %layer.rid, from = ?layer.height, to = height, "Simulcast layer height.");
            }
            layer.height = Some(height);
        }
    }

    /// Whether the track is sent as simulcast layers.
    pub fn is_simulcast(&self) -> bool {
        !self.layers.is_empty()
    }

    /// The layers, for keyframe requests.
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// The RIDs of the layers seen.
    pub fn rids(&self) -> impl Iterator<Item = Rid> + '_ {
        self.layers.iter().map(|l| l.rid)
    }

    /// The best flowing layer: the highest.
    pub fn best(&self, now: Instant) -> Option<Rid> {
        self.layers
            .iter()
            .filter(|l| l.flowing(now))
            .max_by_key(|l| l.rank())
            .map(|l| l.rid)
    }

    /// The bitrate of the best flowing layer (bits per second), 0 with none.
    pub fn best_bitrate(&self, now: Instant) -> u64 {
        self.flowing_ranked(now).last().map_or(0, |l| l.bitrate())
    }

    /// Each flowing layer's RID and bitrate (bits per second), lowest first, for the log.
    pub fn bitrates(&self, now: Instant) -> Vec<(Rid, u64)> {
        self.flowing_ranked(now)
            .iter()
            .map(|l| (l.rid, l.bitrate()))
            .collect()
    }

    /// The flowing layers, lowest first.
    fn flowing_ranked(&self, now: Instant) -> Vec<&Layer> {
        let mut flowing: Vec<&Layer> = self.layers.iter().filter(|l| l.flowing(now)).collect();
        flowing.sort_by_key(|l| l.rank());
        flowing
    }

    /// The best flowing layer whose bitrate fits in `share` (bits per second), else the lowest
    /// flowing one; with no share known, the best flowing layer.
    pub fn best_within(&self, share: Option<u64>, now: Instant) -> Option<Rid> {
        let Some(share) = share else {
            return self.best(now);
        };
        let flowing = self.flowing_ranked(now);
        flowing
            .iter()
            .rev()
            .find(|l| l.bitrate() <= share)
            .or(flowing.first())
            .map(|l| l.rid)
    }

    /// Whether layer `rid` is flowing.
    fn is_flowing(&self, rid: Rid, now: Instant) -> bool {
        self.layers.iter().any(|l| l.rid == rid && l.flowing(now))
    }

    /// The flowing layer of frame height `height`.
    pub fn of_height(&self, height: u32, now: Instant) -> Option<Rid> {
        self.layers
            .iter()
            .find(|l| l.height == Some(height) && l.flowing(now))
            .map(|l| l.rid)
    }

    /// The known frame heights, highest first (for an error that lists them).
    pub fn heights(&self) -> Vec<u32> {
        let mut heights: Vec<u32> = self.layers.iter().filter_map(|l| l.height).collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        heights.dedup();
        heights
    }
}

/// What to do with one packet for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admit {
    /// Write it (it is of the layer this player is sent); else skip it.
    pub write: bool,
    /// Ask the publisher for a keyframe on this layer (the one to switch to).
    pub keyframe: Option<Rid>,
}

/// A player's choice of layer for one publisher track.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// The height the player forced (`forceStreamQuality`); 0: automatic.
    pub forced: u32,
    /// The layer being written.
    current: Option<Rid>,
    /// The automatic choice, by the player's link ([`Selector::plan`]); `None`: nothing known
    /// of the link, the best flowing layer.
    auto: Option<Rid>,
    /// The player's share of its link for this track (bits per second), as last planned.
    share: Option<u64>,
    /// When `auto` last stepped down.
    down_at: Option<Instant>,
}

impl Selector {
    /// A selector pinned to frame height `forced` (0: automatic).
    pub fn pinned(forced: u32) -> Self {
        Self {
            forced,
            ..Self::default()
        }
    }

    /// The layer being written, if any.
    #[cfg(test)]
    pub fn current(&self) -> Option<Rid> {
        self.current
    }

    /// The automatic choice, if the link's budget made one.
    pub fn auto(&self) -> Option<Rid> {
        self.auto
    }

    /// Chooses the automatic layer for the player's `share` of its link (bits per second;
    /// `None`: nothing known, the best flowing layer): the best flowing layer whose bitrate
    /// fits, with hysteresis. Down at once when the layer chosen no longer fits (its bitrate
    /// is above the share, which is already the highest estimate of a window: see
    /// `downlink.rs`), to the best that does (the lowest when none does); up one layer at a
    /// time, when the next one's bitrate × [`UP_HEADROOM`] fits and the last step down is
    /// [`UP_HOLD`] old. Called on a timer, not per packet; the switch itself waits for a
    /// keyframe of the new layer ([`Selector::admit`]).
    pub fn plan(&mut self, layers: &Layers, share: Option<u64>, now: Instant) {
        self.share = share;
        let Some(share) = share else {
            self.auto = None;
            return;
        };
        let flowing = layers.flowing_ranked(now);
        let fits = flowing
            .iter()
            .rposition(|l| l.bitrate() <= share)
            .unwrap_or(0);
        let current = self
            .auto
            .and_then(|rid| flowing.iter().position(|l| l.rid == rid));
        let choice = match current {
            // First choice, or the chosen layer stopped flowing: what fits now.
            None => fits,
            Some(c) if fits < c => {
                self.down_at = Some(now);
                fits
            }
            Some(c) if fits > c => {
                let next_fits = flowing
                    .get(c + 1)
                    .is_some_and(|l| l.bitrate() as f64 * UP_HEADROOM <= share as f64);
                let stable = self
                    .down_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= UP_HOLD);
                if next_fits && stable { c + 1 } else { c }
            }
            Some(c) => c,
        };
        self.auto = flowing.get(choice).map(|l| l.rid);
    }

    /// Decides about `s`, a packet of a track whose layers are `layers`.
    pub fn admit(&mut self, layers: &Layers, s: &Sample) -> Admit {
        let now = s.arrival;
        let forced = (self.forced != 0)
            .then(|| layers.of_height(self.forced, now))
            .flatten();
        let auto = self.auto.filter(|rid| layers.is_flowing(*rid, now));
        let target = forced
            .or(auto)
            .or_else(|| layers.best_within(self.share, now));
        let Some(target) = target else {
            return Admit {
                write: false,
                keyframe: None,
            };
        };
        if self.current == Some(s.rid) {
            // Keep writing the current layer until the target's keyframe arrives.
            return Admit {
                write: true,
                keyframe: (target != s.rid).then_some(target),
            };
        }
        if s.rid == target && s.keyframe {
            tracing::debug!(from = ?self.current, to = %s.rid, forced = self.forced, "Simulcast layer switch.");
            self.current = Some(s.rid);
            return Admit {
                write: true,
                keyframe: None,
            };
        }
        Admit {
            write: false,
            keyframe: (self.current != Some(target)).then_some(target),
        }
    }
}

/// A VP8 RTP payload without its payload descriptor (RFC 7741 §4.2: one required byte, then,
/// when its X bit is set, an extension byte whose I, L, T and K bits say which optional fields
/// follow: a 7- or 15-bit PictureID, TL0PICIDX, and one byte for TID/KEYIDX). str0m reads the
/// descriptor too but does not expose where it ends.
fn vp8_payload(payload: &[u8]) -> Option<&[u8]> {
    let required = *payload.first()?;
    let mut at = 1;
    if required & 0x80 != 0 {
        let extension = *payload.get(at)?;
        at += 1;
        if extension & 0x80 != 0 {
            let long = payload.get(at)? & 0x80 != 0;
            at += if long { 2 } else { 1 };
        }
        if extension & 0x40 != 0 {
            at += 1;
        }
        if extension & 0x30 != 0 {
            at += 1;
        }
    }
    payload.get(at..)
}

/// The frame height of a VP8 keyframe (RFC 6386 §9.1: a 3-byte frame tag whose lowest bit is 0
/// for a keyframe, the start code `9d 01 2a`, then 14-bit width and height, little-endian, each
/// with 2 scaling bits on top).
pub fn vp8_keyframe_height(frame: &[u8]) -> Option<u32> {
    let header = frame.get(..10)?;
    let (tag, rest) = header.split_at(3);
    if tag.first()? & 1 != 0 || rest.get(..3)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let height = u16::from_le_bytes([*rest.get(5)?, *rest.get(6)?]) & 0x3fff;
    (height > 0).then_some(u32::from(height))
}

#[cfg(test)]
mod tests;
