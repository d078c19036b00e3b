//! Simulcast layer selection. A simulcast publisher (Chromium with `sendEncodings`, RID
//! simulcast) sends one video track as several layers, each its own RTP stream; str0m
//! depacketizes each into frames that carry the layer's `rid`. Each player gets one layer at a
//! time on its one outgoing track:
//!
//! - [`Layers`] (per publisher track) learns each layer's frame height from its keyframes, and
//!   whether it is flowing: Chromium suspends upper layers when its bandwidth estimate drops.
//! - [`Selector`] (per player track) picks the layer: the one of the height the player forced
//!   (`forceStreamQuality`), else the best flowing one (the gateway enables no bandwidth
//!   estimation of the player's link, so the best is the highest). It switches only on a
//!   keyframe of the new layer (asking for one), so the player's decoder never gets a delta
//!   frame of a picture it has not seen, and shifts the new layer's RTP times to continue the
//!   old ones (layers have unrelated timestamp bases). str0m packetizes every written frame
//!   afresh on the player's own SSRC and sequence numbers, so those run on across a switch.
//!
//! Pure state: the engine feeds it frames and carries out the keyframe requests it returns.

use std::time::{Duration, Instant};

use str0m::format::CodecExtra;
use str0m::media::{MediaData, MediaTime, Rid};

/// A layer without a frame for this long is taken as stopped (a suspended layer sends nothing;
/// a flowing one sends at least a few frames a second).
const IDLE: Duration = Duration::from_millis(1000);

/// Layers kept per track: Chromium sends up to three; a peer that names more RIDs gets the
/// first few.
const MAX_LAYERS: usize = 4;

/// The window over which a layer's byte rate is measured (the rank of layers whose height is
/// not known: a codec whose frame header is not read).
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// One layer of a publisher's video track.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its RTP stream id; `None` for a track without simulcast.
    pub rid: Option<Rid>,
    /// The frame height of its last keyframe, when the codec's header tells it (VP8).
    pub height: Option<u32>,
    last_frame: Instant,
    window_start: Instant,
    window_bytes: u64,
    /// Bytes in the last full [`RATE_WINDOW`].
    rate: u64,
    /// When a keyframe was last requested of this layer.
    pub last_keyframe_request: Option<Instant>,
}

impl Layer {
    fn flowing(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_frame) < IDLE
    }

    /// Rank among layers: height first, byte rate where heights are not known.
    fn rank(&self) -> (u32, u64) {
        (self.height.unwrap_or(0), self.rate.max(self.window_bytes))
    }
}

/// What a publisher's track is sending: its layers (one, without a RID, for a track without
/// simulcast).
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: Vec<Layer>,
}

impl Layers {
    /// Takes note of a frame of this track.
    pub fn observe(&mut self, data: &MediaData) {
        let now = data.network_time;
        let i = match self.layers.iter().position(|l| l.rid == data.rid) {
            Some(i) => i,
            None if self.layers.len() < MAX_LAYERS => {
                self.layers.push(Layer {
                    rid: data.rid,
                    height: None,
                    last_frame: now,
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
        layer.last_frame = now;
        if now.saturating_duration_since(layer.window_start) >= RATE_WINDOW {
            layer.rate = layer.window_bytes;
            layer.window_bytes = 0;
            layer.window_start = now;
        }
        layer.window_bytes += data.data.len() as u64;
        if data.is_keyframe()
            && matches!(data.codec_extra, CodecExtra::Vp8(_))
            && let Some(height) = vp8_keyframe_height(&data.data)
        {
            if layer.height != Some(height) {
                tracing::debug!(rid = ?layer.rid, from = ?layer.height, to = height, "Simulcast layer height.");
            }
            layer.height = Some(height);
        }
    }

    /// Whether the track is sent as simulcast layers.
    pub fn is_simulcast(&self) -> bool {
        self.layers.iter().any(|l| l.rid.is_some())
    }

    /// The layers, for keyframe requests.
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// The best flowing layer: the highest.
    pub fn best(&self, now: Instant) -> Option<Rid> {
        self.layers
            .iter()
            .filter(|l| l.rid.is_some() && l.flowing(now))
            .max_by_key(|l| l.rank())
            .and_then(|l| l.rid)
    }

    /// The flowing layer of frame height `height`.
    pub fn of_height(&self, height: u32, now: Instant) -> Option<Rid> {
        self.layers
            .iter()
            .find(|l| l.rid.is_some() && l.height == Some(height) && l.flowing(now))
            .and_then(|l| l.rid)
    }

    /// The known frame heights, highest first (for an error that lists them).
    pub fn heights(&self) -> Vec<u32> {
        let mut heights: Vec<u32> = self.layers.iter().filter_map(|l| l.height).collect();
        heights.sort_unstable_by(|a, b| b.cmp(a));
        heights.dedup();
        heights
    }
}

/// What to do with one frame for one player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admit {
    /// Write it, at this RTP time and wall-clock time; `None`: skip it. str0m sends a track's
    /// written frames in wall-clock order, so the wall clock never goes back: the new layer's
    /// keyframe may have arrived before the old layer's last frame, and sent before it, the
    /// player would decode the new layer's frames on the old layer's picture.
    pub time: Option<(MediaTime, Instant)>,
    /// Ask the publisher for a keyframe on this layer (the one to switch to).
    pub keyframe: Option<Rid>,
}

/// A player's choice of layer for one publisher track.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// The height the player forced (`forceStreamQuality`); 0: the best flowing layer.
    pub forced: u32,
    /// The layer being written.
    current: Option<Rid>,
    /// Added to an input time to make the output time, in the track's clock units.
    offset: i64,
    /// The last written output time and wall-clock time.
    last: Option<(u64, Instant)>,
}

impl Selector {
    /// A selector pinned to frame height `forced` (0: automatic).
    pub fn pinned(forced: u32) -> Self {
        Self {
            forced,
            ..Self::default()
        }
    }

    /// Decides about `data`, a frame of a track whose layers are `layers`.
    pub fn admit(&mut self, layers: &Layers, data: &MediaData) -> Admit {
        let Some(rid) = data.rid else {
            return Admit {
                time: Some((data.time, data.network_time)),
                keyframe: None,
            };
        };
        let now = data.network_time;
        let forced = (self.forced != 0)
            .then(|| layers.of_height(self.forced, now))
            .flatten();
        let Some(target) = forced.or_else(|| layers.best(now)) else {
            return Admit {
                time: None,
                keyframe: None,
            };
        };
        if self.current == Some(rid) {
            // Keep writing the current layer until the target's keyframe arrives.
            return Admit {
                time: Some(self.output_time(data)),
                keyframe: (target != rid).then_some(target),
            };
        }
        if rid == target && data.is_keyframe() {
            self.switch_to(rid, data);
            return Admit {
                time: Some(self.output_time(data)),
                keyframe: None,
            };
        }
        Admit {
            time: None,
            keyframe: (self.current != Some(target)).then_some(target),
        }
    }

    /// Starts writing layer `rid` with its keyframe `data`, continuing the output times.
    fn switch_to(&mut self, rid: Rid, data: &MediaData) {
        tracing::debug!(from = ?self.current, to = %rid, forced = self.forced, "Simulcast layer switch.");
        self.current = Some(rid);
        let input = data.time.numer();
        let Some((last, at)) = self.last else {
            self.offset = 0;
            return;
        };
        // The new layer's frame goes out where the old layer's clock would be by now.
        let elapsed = data.network_time.saturating_duration_since(at);
        let ticks = (elapsed.as_secs_f64() * f64::from(data.time.denom())) as u64;
        let expected = last.saturating_add(ticks.max(1));
        self.offset = i64::try_from(i128::from(expected) - i128::from(input)).unwrap_or(0);
    }

    fn output_time(&mut self, data: &MediaData) -> (MediaTime, Instant) {
        let out = data.time.numer().saturating_add_signed(self.offset);
        let wallclock = self
            .last
            .map_or(data.network_time, |(_, at)| at.max(data.network_time));
        self.last = Some((out, wallclock));
        (MediaTime::new(out, data.time.frequency()), wallclock)
    }
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
mod tests {
    use std::sync::Arc;

    use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams, Vp8CodecExtra};
    use str0m::media::{Frequency, Mid, Pt};
    use str0m::rtp::{ExtensionValues, SeqNo};

    use super::*;

    /// A VP8 frame of layer `rid` at RTP time `time`, arriving `ms` after `t0`: a keyframe
    /// header of `height` lines, or a delta frame when `height` is 0.
    fn frame(rid: &str, time: u64, t0: Instant, ms: u64, height: u16) -> MediaData {
        let [h0, h1] = height.to_le_bytes();
        let data: Vec<u8> = if height > 0 {
            vec![0x50, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, h0, h1, 0]
        } else {
            vec![0x51, 0, 0, 0, 0, 0]
        };
        let spec = CodecSpec {
            codec: Codec::Vp8,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams::default(),
        };
        MediaData {
            mid: Mid::from("1"),
            pt: Pt::from(96),
            rid: Some(Rid::from(rid)),
            params: PayloadParams::new(Pt::from(96), None, spec),
            time: MediaTime::from_90khz(time),
            network_time: t0 + Duration::from_millis(ms),
            seq_range: SeqNo::from(1)..=SeqNo::from(1),
            contiguous: true,
            data: Arc::from(data),
            ext_vals: ExtensionValues::default(),
            codec_extra: CodecExtra::Vp8(Vp8CodecExtra {
                discardable: false,
                sync: false,
                layer_index: 0,
                picture_id: None,
                tl0_picture_id: None,
                is_keyframe: height > 0,
            }),
            last_sender_info: None,
            audio_start_of_talk_spurt: false,
        }
    }

    /// Feeds `data` to the publisher's layers and one player's selector.
    fn feed(layers: &mut Layers, select: &mut Selector, data: &MediaData) -> Admit {
        layers.observe(data);
        select.admit(layers, data)
    }

    #[test]
    fn a_player_switches_layers_on_keyframes_with_times_and_wall_clock_running_on() {
        let t0 = Instant::now();
        let (mut layers, mut select) = (Layers::default(), Selector::default());
        let (l, h) = (Rid::from("l"), Rid::from("h"));
        // Both layers start with a keyframe (layer times have unrelated bases). The low one
        // arrives first and is all there is: the player starts on it.
        let first = feed(&mut layers, &mut select, &frame("l", 1_000, t0, 0, 240));
        assert_eq!(first.time.map(|(t, _)| t.numer()), Some(1_000));
        // The high layer's keyframe: the best layer now, switched to at once, its time
        // continuing the low layer's by the 1 ms between them.
        let key = feed(&mut layers, &mut select, &frame("h", 900_000, t0, 1, 480));
        assert_eq!(key.time.map(|(t, _)| t.numer()), Some(1_090));
        assert_eq!(layers.heights(), [480, 240]);
        let delta = feed(&mut layers, &mut select, &frame("h", 903_000, t0, 34, 0));
        assert_eq!(delta.time.map(|(t, _)| t.numer()), Some(4_090));
        assert_eq!(
            feed(&mut layers, &mut select, &frame("l", 4_000, t0, 34, 0)).time,
            None,
            "the other layer is skipped"
        );

        // Pinned to 240 lines: the high layer goes on until the low layer's keyframe, which
        // arrived before the last high frame (a smaller frame) and still goes out after it.
        select.forced = 240;
        let old = feed(&mut layers, &mut select, &frame("h", 906_000, t0, 70, 0));
        assert_eq!(old.keyframe, Some(l), "asks the low layer for a keyframe");
        let (old_time, old_clock) = old.time.expect("the old layer until the switch");
        let switch = feed(&mut layers, &mut select, &frame("l", 7_000, t0, 66, 240));
        let (time, clock) = switch.time.expect("the low layer's keyframe");
        assert!(time.numer() > old_time.numer(), "times run on: {time:?}");
        assert!(clock >= old_clock, "the wall clock never goes back");
        let next = feed(&mut layers, &mut select, &frame("l", 10_000, t0, 100, 0));
        let (next_time, _) = next.time.expect("the low layer now");
        assert_eq!(
            next_time.numer() - time.numer(),
            3_000,
            "the layer's own pace"
        );
        assert_eq!(
            feed(&mut layers, &mut select, &frame("h", 909_000, t0, 100, 0)).time,
            None
        );

        // Automatic again: the high layer is wanted, but a delta frame of it does not switch;
        // the low layer goes on until the high layer's keyframe.
        select.forced = 0;
        let wait = feed(&mut layers, &mut select, &frame("h", 912_000, t0, 134, 0));
        assert_eq!((wait.time, wait.keyframe), (None, Some(h)));
        assert!(
            feed(&mut layers, &mut select, &frame("l", 13_000, t0, 134, 0))
                .time
                .is_some()
        );
        let back = feed(&mut layers, &mut select, &frame("h", 915_000, t0, 170, 480));
        assert!(back.time.expect("switched back").0.numer() > next_time.numer());
    }

    #[test]
    fn a_layer_that_stops_flowing_is_not_chosen() {
        let t0 = Instant::now();
        let (mut layers, mut select) = (Layers::default(), Selector::default());
        feed(&mut layers, &mut select, &frame("h", 0, t0, 0, 480));
        feed(&mut layers, &mut select, &frame("l", 0, t0, 0, 240));
        assert_eq!(layers.best(t0), Some(Rid::from("h")));
        // The high layer is suspended: after a second without its frames, the low one.
        let later = t0 + IDLE + Duration::from_millis(10);
        feed(&mut layers, &mut select, &frame("l", 90_000, t0, 1_010, 0));
        assert_eq!(layers.best(later), Some(Rid::from("l")));
        assert_eq!(layers.of_height(480, later), None);
    }

    #[test]
    fn a_vp8_keyframe_header_gives_the_height_and_anything_else_none() {
        // Frame tag (keyframe), start code, width 640 and height 480 with scale bits set.
        let key = [
            0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0xe0, 0xc1, 0xff,
        ];
        assert_eq!(vp8_keyframe_height(&key), Some(480));
        let mut delta = key;
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_height(&delta), None, "an interframe");
        assert_eq!(vp8_keyframe_height(&key[..9]), None, "truncated");
        let mut bad = key;
        bad[4] = 0;
        assert_eq!(vp8_keyframe_height(&bad), None, "no start code");
        assert_eq!(vp8_keyframe_height(&[]), None);
    }
}
