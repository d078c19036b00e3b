use crate::engine::rewrite::{Incoming, Outcome, Rewrite, Source};

use super::*;

/// A VP8 RTP payload as Chromium sends it: the payload descriptor (X set, a 15-bit PictureID,
/// TL0PICIDX and TID present), then, on a frame's first packet (`first`), the frame's own
/// header: a keyframe's of `height` lines, or an interframe's when `height` is 0.
fn vp8(first: bool, height: u16) -> Vec<u8> {
    let start = if first { 0x10 } else { 0x00 };
    let mut p = vec![0x80 | start, 0xe0, 0x80 | 0x12, 0x34, 0x07, 0x20];
    match (first, height) {
        (true, 0) => p.extend_from_slice(&[0x51, 0x00, 0x00, 0x11, 0x22]),
        (true, h) => {
            let [h0, h1] = h.to_le_bytes();
            p.extend_from_slice(&[0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, h0, h1, 0]);
        }
        (false, _) => p.extend_from_slice(&[0xaa; 8]),
    }
    p
}

/// The sample of the first packet of a frame of layer `rid`, arriving `ms` after `t0`: a
/// keyframe of `height` lines, or an interframe when `height` is 0.
fn frame(rid: &str, t0: Instant, ms: u64, height: u16) -> Sample {
    let at = t0 + Duration::from_millis(ms);
    Sample::read(Rid::from(rid), at, Codec::Vp8, &vp8(true, height))
}

/// Feeds `s` to the publisher's layers and one player's selector.
fn feed(layers: &mut Layers, select: &mut Selector, s: &Sample) -> Admit {
    layers.observe(s);
    select.admit(layers, s)
}

const WRITE: Admit = Admit {
    write: true,
    keyframe: None,
};

#[test]
fn a_player_switches_layers_only_at_a_keyframe_of_the_wanted_one() {
    let t0 = Instant::now();
    let (mut layers, mut select) = (Layers::default(), Selector::default());
    let (l, h) = (Rid::from("l"), Rid::from("h"));
    // The low layer's keyframe arrives first and is all there is: the player starts on it.
    assert_eq!(
        feed(&mut layers, &mut select, &frame("l", t0, 0, 240)),
        WRITE
    );
    // The high layer's keyframe: the best layer now, switched to at once.
    assert_eq!(
        feed(&mut layers, &mut select, &frame("h", t0, 1, 480)),
        WRITE
    );
    assert_eq!(select.current(), Some(h));
    assert_eq!(layers.heights(), [480, 240]);
    assert_eq!(
        feed(&mut layers, &mut select, &frame("h", t0, 34, 0)),
        WRITE
    );
    assert_eq!(
        feed(&mut layers, &mut select, &frame("l", t0, 34, 0)),
        Admit {
            write: false,
            keyframe: None
        },
        "the other layer is skipped"
    );

    // Pinned to 240 lines: the high layer goes on, asking the low one for a keyframe, until
    // that keyframe arrives.
    select.forced = 240;
    let old = feed(&mut layers, &mut select, &frame("h", t0, 67, 0));
    assert_eq!((old.write, old.keyframe), (true, Some(l)));
    let delta = feed(&mut layers, &mut select, &frame("l", t0, 67, 0));
    assert_eq!((delta.write, delta.keyframe), (false, Some(l)), "no switch");
    assert_eq!(
        feed(&mut layers, &mut select, &frame("l", t0, 100, 240)),
        WRITE
    );
    assert_eq!(select.current(), Some(l));
    assert!(!feed(&mut layers, &mut select, &frame("h", t0, 100, 0)).write);

    // Automatic again: the high layer is wanted, but an interframe of it does not switch.
    select.forced = 0;
    let wait = feed(&mut layers, &mut select, &frame("h", t0, 134, 0));
    assert_eq!((wait.write, wait.keyframe), (false, Some(h)));
    let low = feed(&mut layers, &mut select, &frame("l", t0, 134, 0));
    assert_eq!((low.write, low.keyframe), (true, Some(h)));
    assert_eq!(
        feed(&mut layers, &mut select, &frame("h", t0, 167, 480)),
        WRITE
    );
    assert_eq!(select.current(), Some(h));
}

#[test]
fn a_layer_that_stops_flowing_is_not_chosen_and_padding_keeps_none_flowing() {
    let t0 = Instant::now();
    let (mut layers, mut select) = (Layers::default(), Selector::default());
    feed(&mut layers, &mut select, &frame("h", t0, 0, 480));
    feed(&mut layers, &mut select, &frame("l", t0, 0, 240));
    assert_eq!(layers.best(t0), Some(Rid::from("h")));
    // The high layer is suspended; Chromium may still pad it (payload-less packets).
    let padding = Sample::read(Rid::from("h"), t0 + IDLE, Codec::Vp8, &[]);
    layers.observe(&padding);
    let later = t0 + IDLE + Duration::from_millis(10);
    feed(&mut layers, &mut select, &frame("l", t0, 1_010, 0));
    assert_eq!(layers.best(later), Some(Rid::from("l")));
    assert_eq!(layers.of_height(480, later), None);
    assert_eq!(layers.of_height(240, later), Some(Rid::from("l")));
    // A pinned height that no longer flows falls back to the best layer that does: the
    // player, still on the high layer, switches down at the low layer's next keyframe.
    select.forced = 480;
    let l = Rid::from("l");
    let s = frame("l", t0, 1_010, 0);
    assert_eq!(
        select.admit(&layers, &s),
        Admit {
            write: false,
            keyframe: Some(l)
        }
    );
    assert_eq!(
        feed(&mut layers, &mut select, &frame("l", t0, 1_020, 240)),
        WRITE
    );
}

#[test]
fn a_vp8_packet_gives_its_keyframe_height_past_the_payload_descriptor() {
    let t0 = Instant::now();
    let rid = Rid::from("h");
    let key = Sample::read(rid, t0, Codec::Vp8, &vp8(true, 480));
    assert_eq!((key.keyframe, key.height), (true, Some(480)));
    let delta = Sample::read(rid, t0, Codec::Vp8, &vp8(true, 0));
    assert_eq!((delta.keyframe, delta.height), (false, None));
    let middle = Sample::read(rid, t0, Codec::Vp8, &vp8(false, 0));
    assert_eq!((middle.keyframe, middle.height), (false, None));
    // The shortest descriptor (no extension): one byte before the frame header.
    let mut short = vec![0x10];
    short.extend_from_slice(&vp8(true, 360)[6..]);
    assert_eq!(Sample::read(rid, t0, Codec::Vp8, &short).height, Some(360));
    // A 7-bit PictureID and KEYIDX only.
    let mut seven = vec![0x90, 0x90, 0x12, 0x01];
    seven.extend_from_slice(&vp8(true, 720)[6..]);
    assert_eq!(Sample::read(rid, t0, Codec::Vp8, &seven).height, Some(720));
    // Payloads cut before the height's last byte (6 of descriptor, 10 of frame header) have
    // no height, and no panic.
    let full = vp8(true, 480);
    for n in 0..6 + 10 {
        let s = Sample::read(rid, t0, Codec::Vp8, &full[..n]);
        assert_eq!(s.height, None, "{n} bytes");
    }
    assert_eq!(Sample::read(rid, t0, Codec::Vp8, &full).len, full.len());
}

#[test]
fn a_vp8_frame_header_gives_the_height_and_anything_else_none() {
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

/// One packet of a two-layer stream, as the publisher sends it.
struct Packet {
    rid: &'static str,
    ssrc: u32,
    seq: u64,
    timestamp: u32,
    at: Instant,
    payload: Vec<u8>,
}

/// `frames` frames of both layers, 3 packets each, 33 ms apart; each layer's keyframes at
/// the frame numbers given (the low layer's numbering and clock have other bases).
fn two_layers(t0: Instant, frames: u64, low_keys: &[u64], high_keys: &[u64]) -> Vec<Packet> {
    let mut packets = Vec::new();
    for f in 0..frames {
        let at = t0 + Duration::from_millis(33 * f);
        for (rid, ssrc, seq0, ts0, keys, height) in [
            ("l", 11, 100, 1_000u32, low_keys, 240),
            ("h", 22, 60_000, 4_000_000_000u32, high_keys, 480),
        ] {
            let key = keys.contains(&f);
            for p in 0..3u64 {
                let payload = vp8(p == 0, if key { height } else { 0 });
                packets.push(Packet {
                    rid,
                    ssrc,
                    seq: seq0 + 3 * f + p,
                    timestamp: ts0.wrapping_add(3_000 * f as u32),
                    at,
                    payload,
                });
            }
        }
    }
    packets
}

#[test]
fn a_switch_continues_the_players_numbering_from_a_keyframe() {
    let t0 = Instant::now();
    // The high layer's keyframes at 0 and 12, the low one's at 0 and 8.
    let packets = two_layers(t0, 16, &[0, 8], &[0, 12]);
    let (mut layers, mut select, mut rewrite) =
        (Layers::default(), Selector::default(), Rewrite::default());
    let mut sent: Vec<(u32, u64, u32, bool)> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if i == 3 * 2 * 4 {
            select.forced = 240; // at frame 4: switch down (at the low keyframe, frame 8)
        }
        if i == 3 * 2 * 10 {
            select.forced = 0; // at frame 10: back up (at the high keyframe, frame 12)
        }
        let s = Sample::read(Rid::from(p.rid), p.at, Codec::Vp8, &p.payload);
        if !feed(&mut layers, &mut select, &s).write {
            continue;
        }
        let incoming = Incoming {
            source: Source {
                publisher: 1,
                ssrc: p.ssrc,
                epoch: 0,
            },
            seq: p.seq,
            timestamp: p.timestamp,
            clock_rate: 90_000,
            arrival: p.at,
        };
        match rewrite.map(incoming, || s.keyframe) {
            Outcome::Write { seq, timestamp } => sent.push((p.ssrc, seq, timestamp, s.keyframe)),
            other => panic!("packet {i} of {} not written: {other:?}", p.rid),
        }
    }
    let ssrcs: Vec<u32> = sent.iter().map(|s| s.0).collect();
    let runs: Vec<u32> = ssrcs
        .iter()
        .enumerate()
        .filter(|(i, s)| *i == 0 || ssrcs.get(i - 1) != Some(s))
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(runs, [11, 22, 11, 22], "low, high, pinned low, high again");
    for (i, w) in sent.windows(2).enumerate() {
        let [(a_ssrc, a_seq, a_ts, _), (b_ssrc, b_seq, b_ts, b_key)] = [w[0], w[1]];
        assert_eq!(b_seq, a_seq + 1, "sequence numbers run on at {i}");
        assert!(b_ts >= a_ts, "timestamps never go back at {i}");
        if a_ssrc != b_ssrc {
            assert!(b_key, "a layer starts at a keyframe at {i}");
            assert!(b_ts > a_ts, "a new layer is a new frame at {i}");
        }
    }
    // Every frame's three packets once, and twice at frames 0 and 12, whose low-layer packets
    // arrive (and go out) before the high layer's keyframe that the player switches at.
    assert_eq!(sent.len(), 16 * 3 + 2 * 3);
}
