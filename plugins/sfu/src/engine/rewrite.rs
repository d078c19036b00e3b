//! One player's view of one forwarded track in RTP mode: the sequence numbers and RTP
//! timestamps it sends on its own SSRC, and when video may start.
//!
//! str0m's RTP mode sends what it is given: each player's send stream has its own SSRC, and
//! the sequence numbers must run on without jumps even when what feeds it changes (a toggle
//! paused it, the publisher muted itself, a WHEP slot passed to another publisher, a simulcast
//! layer switched). A run of packets from one source is a *segment*: within it, the outgoing
//! numbers are the incoming ones plus a fixed offset, so reordering and late retransmissions
//! keep their places; a new segment continues one after the last number sent, and its
//! timestamps continue by the time that passed. Video starts a segment only at a keyframe, so
//! a player never gets frames that refer to ones it never had.
//!
//! VP8 numbers its pictures too (the payload descriptor's PictureID and TL0PICIDX), each
//! simulcast layer and each publisher on its own, and the player's receiver finds a frame's
//! references by those numbers. So they continue across segments as the sequence numbers do
//! ([`Rewrite::vp8_patch`]). Without that, after a switch to another layer whose numbers run
//! behind, a frame of the new layer that came before its keyframe was complete (a packet of the
//! keyframe lost under load) found its reference "already decoded" among the old layer's
//! numbers: the player decoded the new layer's frames on the old layer's picture, at the old
//! layer's size, and never asked for a keyframe.

use std::time::Instant;

use str0m::format::{self, Codec};
use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// Where a packet comes from: a new value starts a new segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The publisher connection.
    pub publisher: u64,
    /// The incoming SSRC (a simulcast layer has its own).
    pub ssrc: u32,
    /// The publisher's forwarding epoch: it grows when the publisher resumes a muted kind.
    pub epoch: u32,
}

/// One incoming packet, as far as rewriting needs it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    /// Where it comes from.
    pub source: Source,
    /// The extended (rollover-free) sequence number.
    pub seq: u64,
    /// The RTP timestamp.
    pub timestamp: u32,
    /// The codec's clock rate (Hz).
    pub clock_rate: u32,
    /// When it arrived.
    pub arrival: Instant,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send it with these numbers.
    Write { seq: u64, timestamp: u32 },
    /// Older than the segment it would belong to (a late retransmission from before a switch):
    /// its place in the outgoing numbering is gone.
    Drop,
    /// Video that cannot start a segment (not a keyframe's first packet): ask the publisher
    /// for a keyframe.
    NeedKeyframe,
}

/// The outgoing numbering of one player's track.
#[derive(Debug, Default, Clone)]
pub struct Rewrite {
    /// The segment being forwarded; `None` before the first and after an interruption.
    segment: Option<Source>,
    /// Outgoing minus incoming sequence number (wrapping).
    seq_offset: u64,
    /// Outgoing minus incoming timestamp (wrapping).
    ts_offset: u32,
    /// The segment's first incoming sequence number; older ones are dropped.
    first_seq: u64,
    /// The highest outgoing sequence number sent, its timestamp and arrival.
    last: Option<(u64, u32, Instant)>,
    /// VP8 picture numbering across segments.
    vp8: Vp8Ids,
}

/// Outgoing VP8 PictureID and TL0PICIDX: the incoming ones plus offsets set at each segment's
/// start, so that they run on from the last ones sent.
#[derive(Debug, Default, Clone)]
struct Vp8Ids {
    /// Outgoing minus incoming PictureID (15 bits) and TL0PICIDX (8 bits).
    offsets: (u16, u8),
    /// The newest PictureID sent and the last TL0PICIDX.
    last: Option<(u16, u8)>,
    /// Set by a new segment: the offsets are computed at its first VP8 packet.
    restart: bool,
}

/// PictureIDs are 15 bits (Chromium sends the long form).
const PICTURE_ID_MASK: u16 = 0x7fff;

impl Rewrite {
    /// The next packet starts a new segment (its source stopped being forwarded for a while).
    pub fn interrupt(&mut self) {
        self.segment = None;
    }

    /// The numbers for `packet`. `starts_frame` says whether it may start a segment (a video
    /// keyframe's first packet, or any audio packet); it is only asked at a segment's start.
    pub fn map(&mut self, packet: Incoming, starts_frame: impl FnOnce() -> bool) -> Outcome {
        if self.segment != Some(packet.source) {
            if !starts_frame() {
                return Outcome::NeedKeyframe;
            }
            self.begin(packet);
        }
        if packet.seq < self.first_seq {
            return Outcome::Drop;
        }
        let seq = packet.seq.wrapping_add(self.seq_offset);
        let timestamp = packet.timestamp.wrapping_add(self.ts_offset);
        if self.last.is_none_or(|(last, _, _)| seq > last) {
            self.last = Some((seq, timestamp, packet.arrival));
        }
        Outcome::Write { seq, timestamp }
    }

    /// The patch that makes a VP8 packet's PictureID and TL0PICIDX (as [`Self::map`] wrote it)
    /// continue the numbers sent before its segment; `None` when they need no change (the first
    /// segment, or numbers that happen to line up) or the payload has no PictureID.
    pub fn vp8_patch(&mut self, payload: &[u8]) -> Option<Vp8Patch> {
        let descriptor = Vp8Descriptor::parse(payload).ok()?;
        let picture_id = descriptor.picture_id()?;
        let tl0 = descriptor.tl0_pic_idx();
        let ids = &mut self.vp8;
        if std::mem::take(&mut ids.restart)
            && let Some((last_id, last_tl0)) = ids.last
        {
            ids.offsets = (
                last_id.wrapping_add(1).wrapping_sub(picture_id) & PICTURE_ID_MASK,
                last_tl0.wrapping_add(1).wrapping_sub(tl0.unwrap_or(0)),
            );
        }
        let out_id = picture_id.wrapping_add(ids.offsets.0) & PICTURE_ID_MASK;
        let out_tl0 = tl0.map(|t| t.wrapping_add(ids.offsets.1));
        // The newest number (a retransmission or a late packet does not move it back).
        let newer = ids
            .last
            .is_none_or(|(last, _)| out_id.wrapping_sub(last) & PICTURE_ID_MASK < 0x4000);
        if newer {
            let last_tl0 = ids.last.map_or(0, |(_, t)| t);
            ids.last = Some((out_id, out_tl0.unwrap_or(last_tl0)));
        }
        if ids.offsets == (0, 0) {
            return None;
        }
        let mut patch = descriptor.patch().picture_id(out_id);
        if let Some(t) = out_tl0 {
            patch = patch.tl0_pic_idx(t);
        }
        // A 7-bit PictureID cannot take a 15-bit number: such a stream goes unpatched.
        patch.build().ok()
    }

    /// Starts a segment at `packet`: one after the last number sent, the timestamp advanced by
    /// the time since then (at least one tick, so that it is a new frame). The very first
    /// segment keeps the incoming numbers, less any rollovers (str0m wants an outgoing stream to
    /// start in its first cycle).
    fn begin(&mut self, packet: Incoming) {
        let (seq, timestamp) = match self.last {
            Some((last_seq, last_ts, last_at)) => {
                let elapsed = packet.arrival.saturating_duration_since(last_at);
                let ticks = elapsed.as_secs_f64() * f64::from(packet.clock_rate);
                // Saturates at u32::MAX for absurd gaps; the wrap below keeps it an RTP time.
                let ticks = (ticks as u64).clamp(1, u64::from(u32::MAX)) as u32;
                (last_seq + 1, last_ts.wrapping_add(ticks))
            }
            None => (packet.seq & 0xffff, packet.timestamp),
        };
        self.seq_offset = seq.wrapping_sub(packet.seq);
        self.ts_offset = timestamp.wrapping_sub(packet.timestamp);
        self.first_seq = packet.seq;
        self.segment = Some(packet.source);
        self.vp8.restart = true;
    }
}

/// Whether `payload` is the first packet of a keyframe of `codec` (str0m's own detectors).
/// A codec it cannot read counts as one: such video starts anywhere, as before RTP mode.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => format::detect_vp8_keyframe(payload),
        Codec::Vp9 => format::detect_vp9_keyframe(payload),
        Codec::H264 => format::detect_h264_keyframe(payload),
        Codec::H265 => format::detect_h265_keyframe(payload),
        Codec::H266 => format::detect_h266_keyframe(payload),
        Codec::Av1 => format::detect_av1_keyframe(payload),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const A: Source = Source {
        publisher: 1,
        ssrc: 100,
        epoch: 0,
    };

    fn packet(source: Source, seq: u64, timestamp: u32, at: Instant) -> Incoming {
        Incoming {
            source,
            seq,
            timestamp,
            clock_rate: 90_000,
            arrival: at,
        }
    }

    fn write(outcome: Outcome) -> (u64, u32) {
        match outcome {
            Outcome::Write { seq, timestamp } => (seq, timestamp),
            other => panic!("not written: {other:?}"),
        }
    }

    #[test]
    fn one_segment_keeps_numbers_order_and_late_packets_but_drops_rollovers() {
        let t = Instant::now();
        let mut r = Rewrite::default();
        // Extended numbers after one rollover: the outgoing stream starts in its first cycle.
        let base = 65_536 + 65_530;
        assert_eq!(
            write(r.map(packet(A, base, 1000, t), || true)),
            (65_530, 1000)
        );
        assert_eq!(
            write(r.map(packet(A, base + 2, 2000, t), || false)),
            (65_532, 2000)
        );
        // Reordered and retransmitted packets keep their places within the segment.
        assert_eq!(
            write(r.map(packet(A, base + 1, 1500, t), || false)),
            (65_531, 1500)
        );
        // Crossing 65,535 goes on into the next cycle (str0m writes the low 16 bits).
        assert_eq!(
            write(r.map(packet(A, base + 7, 3000, t), || false)).0,
            65_537
        );
    }

    #[test]
    fn an_interruption_continues_the_numbers_and_the_clock() {
        let t = Instant::now();
        let mut r = Rewrite::default();
        write(r.map(packet(A, 10, 90_000, t), || true));
        write(r.map(packet(A, 11, 93_000, t), || true));
        r.interrupt();
        // 500 packets and one second later at the source; half a second after the last sent.
        let later = t + Duration::from_millis(500);
        assert_eq!(
            r.map(packet(A, 511, 183_000, later), || false),
            Outcome::NeedKeyframe,
            "video waits for a keyframe"
        );
        assert_eq!(
            write(r.map(packet(A, 512, 186_000, later), || true)),
            (12, 93_000 + 45_000)
        );
        assert_eq!(
            write(r.map(packet(A, 513, 189_000, later), || false)),
            (13, 141_000)
        );
        assert_eq!(
            r.map(packet(A, 500, 180_000, later), || true),
            Outcome::Drop,
            "a late packet from before the switch has no place"
        );
    }

    #[test]
    fn a_new_source_is_a_new_segment_even_without_an_interruption() {
        let t = Instant::now();
        let mut r = Rewrite::default();
        write(r.map(packet(A, 40_000, 5, t), || true));
        let b = Source { ssrc: 200, ..A };
        // Same arrival: the timestamp still moves on by one tick (a new frame).
        assert_eq!(write(r.map(packet(b, 7, 999, t), || true)), (40_001, 6));
        let resumed = Source { epoch: 1, ..b };
        assert_eq!(
            write(r.map(packet(resumed, 9, 1999, t), || true)),
            (40_002, 7)
        );
    }

    /// A VP8 payload as Chromium sends it: X, S; I, L and T; a 15-bit PictureID; TL0PICIDX;
    /// TID 0.
    fn vp8(picture_id: u16, tl0: u8) -> Vec<u8> {
        let [hi, lo] = picture_id.to_be_bytes();
        vec![0x90, 0xe0, 0x80 | hi, lo, tl0, 0x00, 0x01, 0x02]
    }

    fn patched(picture_id: u16, tl0: u8, to: (u16, u8)) -> Option<Vp8Patch> {
        let payload = vp8(picture_id, tl0);
        let descriptor = Vp8Descriptor::parse(&payload).unwrap();
        Some(
            descriptor
                .patch()
                .picture_id(to.0)
                .tl0_pic_idx(to.1)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn vp8_picture_numbers_run_on_across_segments() {
        let t = Instant::now();
        let mut r = Rewrite::default();
        // The first segment (layer l) keeps its numbers: nothing to patch.
        for (i, seq) in (10..13).enumerate() {
            let id = 20_000 + i as u16;
            write(r.map(packet(A, seq, 1000, t), || true));
            assert_eq!(r.vp8_patch(&vp8(id, 7)), None);
        }
        // Layer h, whose numbers run behind: its keyframe continues from 20,002 and TL0PICIDX 7.
        let b = Source { ssrc: 200, ..A };
        write(r.map(packet(b, 500, 5000, t), || true));
        assert_eq!(r.vp8_patch(&vp8(300, 200)), patched(300, 200, (20_003, 8)));
        write(r.map(packet(b, 501, 5000, t), || false));
        assert_eq!(r.vp8_patch(&vp8(301, 200)), patched(301, 200, (20_004, 8)));
        // A late packet of the keyframe keeps its own number and does not move the newest back.
        write(r.map(packet(b, 502, 5000, t), || false));
        assert_eq!(r.vp8_patch(&vp8(300, 200)), patched(300, 200, (20_003, 8)));
        // Back to layer l (ahead, across the 15-bit wrap): on from 20,004.
        let a2 = Source { epoch: 1, ..A };
        write(r.map(packet(a2, 14, 6000, t), || true));
        assert_eq!(
            r.vp8_patch(&vp8(32_767, 9)),
            patched(32_767, 9, (20_005, 9))
        );
        assert_eq!(r.vp8_patch(&vp8(0, 9)), patched(0, 9, (20_006, 9)));
        // A payload without a PictureID (or not VP8 at all) is left alone.
        assert_eq!(r.vp8_patch(&[0x10, 0x00]), None);
        assert_eq!(r.vp8_patch(&[]), None);
    }
}
