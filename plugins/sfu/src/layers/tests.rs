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

/// Both layers of [`measured_layers`] go on sending at their rates, a packet each every
/// 100 ms, from after `from` (from `t0` itself when `from` is 0) to `to` (ms after `t0`).
fn keep_flowing(layers: &mut Layers, t0: Instant, from: u64, to: u64, low: usize, high: usize) {
    let first = if from == 0 { 0 } else { from / 100 + 1 };
    for tick in first..=(to / 100) {
        let at = t0 + Duration::from_millis(100 * tick);
        for (rid, bytes) in [("l", low), ("h", high)] {
            let mut payload = vp8(true, 0);
            payload.resize(bytes / 10, 0xaa);
            layers.observe(&Sample::read(Rid::from(rid), at, Codec::Vp8, &payload));
        }
    }
}

/// A publisher's two layers, measured: `l` (240 lines) and `h` (480 lines) each sending
/// `low`/`high` bytes a second for two seconds before `t0` (so each has a full rate window),
/// and each a keyframe at `t0`.
fn measured_layers(t0: Instant, low: usize, high: usize) -> Layers {
    let mut layers = Layers::default();
    let start = t0 - Duration::from_millis(2_100);
    for (rid, bytes, height) in [("l", low, 240u16), ("h", high, 480)] {
        for tick in 0..=20u64 {
            let at = start + Duration::from_millis(100 * tick);
            let mut payload = vp8(true, if tick == 0 { height } else { 0 });
            payload.resize(bytes / 10, 0xaa);
            layers.observe(&Sample::read(Rid::from(rid), at, Codec::Vp8, &payload));
        }
        layers.observe(&frame(rid, t0, 0, height));
    }
    layers
}

#[test]
fn a_share_picks_the_best_layer_that_fits_and_none_known_picks_the_best_flowing() {
    let t0 = Instant::now();
    // 25 000 B/s = 200 kbit/s low, 75 000 B/s = 600 kbit/s high.
    let layers = measured_layers(t0, 25_000, 75_000);
    let (l, h) = (Rid::from("l"), Rid::from("h"));
    let bitrates: Vec<u64> = layers.bitrates(t0).iter().map(|(_, b)| *b).collect();
    assert_eq!(bitrates, [200_000, 600_000]);
    for (share, want) in [
        (None, None),
        (Some(2_000_000), Some(h)),
        (Some(600_000), Some(h)),
        (Some(599_999), Some(l)),
        (Some(200_000), Some(l)),
        // Nothing fits: the lowest, never nothing.
        (Some(50_000), Some(l)),
    ] {
        let mut select = Selector::default();
        select.plan(&layers, share, t0);
        assert_eq!(select.auto(), want, "share {share:?}");
        assert_eq!(
            layers.best_within(share, t0),
            want.or(Some(h)),
            "best_within {share:?}"
        );
    }
}

#[test]
fn the_layer_steps_down_at_once_and_up_only_with_headroom_after_a_stable_period() {
    let t0 = Instant::now();
    let mut layers = measured_layers(t0, 25_000, 75_000);
    let (l, h) = (Rid::from("l"), Rid::from("h"));
    let mut select = Selector::default();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut last = 0;
    // (ms after t0, the share, the layer chosen after it): the plan runs on a timer.
    let steps: [(u64, u64, Rid); 12] = [
        (0, 1_000_000, h),
        // Still fits (about 600 kbit/s): stays.
        (500, 610_000, h),
        // Below the high layer's bitrate: down at once.
        (1_000, 550_000, l),
        // Back above it, but not by the headroom (600 × 1.25 = 750): no flapping up.
        (1_500, 700_000, l),
        // Above with headroom, but within UP_HOLD of the step down: held.
        (2_000, 900_000, l),
        (4_500, 900_000, l),
        // UP_HOLD after the step down: up.
        (5_000, 760_000, h),
        // Between the two thresholds: nothing moves either way.
        (5_500, 620_000, h),
        (6_000, 700_000, h),
        // Down again, and a second try up waits its stable period again.
        (6_500, 100_000, l),
        (9_000, 5_000_000, l),
        (10_500, 5_000_000, h),
    ];
    for (ms, share, want) in steps {
        keep_flowing(&mut layers, t0, last, ms, 25_000, 75_000);
        last = ms;
        select.plan(&layers, Some(share), at(ms));
        let rates = layers.bitrates(at(ms));
        assert_eq!(
            select.auto(),
            Some(want),
            "at {ms} ms, share {share}, {rates:?}"
        );
    }
    // Nothing known of the link any more (no estimate, no report): the best flowing layer.
    keep_flowing(&mut layers, t0, last, 11_000, 25_000, 75_000);
    select.plan(&layers, None, at(11_000));
    assert_eq!(select.auto(), None);
}

#[test]
fn a_planned_layer_is_switched_to_only_at_its_keyframe() {
    let t0 = Instant::now();
    let mut layers = measured_layers(t0, 25_000, 75_000);
    let (l, h) = (Rid::from("l"), Rid::from("h"));
    let mut select = Selector::default();
    // Both keyframes at t0: the player starts on the high layer (no budget yet).
    assert_eq!(select.admit(&layers, &frame("h", t0, 0, 480)), WRITE);
    assert_eq!(select.current(), Some(h));
    // The link's share falls below the high layer: the plan says low, but until the low
    // layer's keyframe the high layer goes on (asking the low one for a keyframe) and the low
    // layer's interframes are not written.
    select.plan(&layers, Some(300_000), t0 + Duration::from_millis(10));
    assert_eq!(select.auto(), Some(l));
    let old = feed(&mut layers, &mut select, &frame("h", t0, 33, 0));
    assert_eq!((old.write, old.keyframe), (true, Some(l)));
    let delta = feed(&mut layers, &mut select, &frame("l", t0, 33, 0));
    assert_eq!((delta.write, delta.keyframe), (false, Some(l)));
    assert_eq!(select.current(), Some(h));
    assert_eq!(
        feed(&mut layers, &mut select, &frame("l", t0, 66, 240)),
        WRITE
    );
    assert_eq!(select.current(), Some(l));
    assert!(!feed(&mut layers, &mut select, &frame("h", t0, 66, 480)).write);
    // forceStreamQuality overrides the plan, and 0 gives it back.
    select.forced = 480;
    let wait = feed(&mut layers, &mut select, &frame("l", t0, 100, 0));
    assert_eq!((wait.write, wait.keyframe), (true, Some(h)));
    assert_eq!(
        feed(&mut layers, &mut select, &frame("h", t0, 100, 480)),
        WRITE
    );
    assert_eq!(select.current(), Some(h));
    select.forced = 0;
    let back = feed(&mut layers, &mut select, &frame("h", t0, 133, 0));
    assert_eq!((back.write, back.keyframe), (true, Some(l)));
    assert_eq!(
        feed(&mut layers, &mut select, &frame("l", t0, 133, 240)),
        WRITE
    );
    assert_eq!(select.current(), Some(l));
}

#[test]
fn a_planned_layer_that_stops_flowing_falls_back_to_what_fits() {
    let t0 = Instant::now();
    let layers = measured_layers(t0, 25_000, 75_000);
    let mut select = Selector::default();
    select.plan(&layers, Some(1_000_000), t0);
    assert_eq!(select.auto(), Some(Rid::from("h")));
    // Past IDLE only the low layer still sends: the plan moves to it.
    let mut layers = layers;
    let later = t0 + IDLE + Duration::from_millis(100);
    layers.observe(&frame("l", t0, 1_050, 0));
    select.plan(&layers, Some(1_000_000), later);
    assert_eq!(select.auto(), Some(Rid::from("l")));
}
