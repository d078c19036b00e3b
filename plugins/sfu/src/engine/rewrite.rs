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

use std::time::Instant;

use str0m::format::{self, Codec};

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
}

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
}
