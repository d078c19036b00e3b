//! The window's and the receipts' rules, without Redis: numbering, gaps, acknowledgements,
//! eviction, and the order of what goes again.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Arc;

use switchboard_protocol::DialectKind;

use super::*;
use crate::envelope::{Envelope, Original};

fn cluster() -> Cluster {
    crate::cluster::unreached()
}

/// Checks `seq` from `node`, as a bundle of its own brings it.
fn check(seen: &mut Receipts, cluster: &Cluster, node: &str, seq: Option<u64>) -> Verdict {
    seen.sender(&Arc::from(node))
        .check(cluster, seq, Instant::now())
}

/// What the link queued for the publisher: acknowledgements as `(node, got, resend)`.
fn acks(cluster: &Cluster) -> Vec<(String, u64, bool)> {
    let mut rx = cluster.outbox_rx.lock().unwrap();
    let rx = rx.as_mut().unwrap();
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        if let Outgoing::Frame {
            node,
            msg: OutMessage::Ack(got, resend),
        } = item
        {
            out.push((node.to_string(), got, resend));
        }
    }
    out
}

fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn a_receiver_hands_on_in_order_drops_what_it_has_and_asks_once_for_a_gap() {
    let cluster = cluster();
    let mut seen = Receipts::default();
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(1)), Verdict::Next);
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(1)), Verdict::Again);
    assert_eq!(
        check(&mut seen, &cluster, "b@1", None),
        Verdict::Next,
        "not numbered"
    );
    assert!(acks(&cluster).is_empty());
    // 2 was lost: 3 and 4 wait, and the sender is asked once for what follows 1.
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(3)), Verdict::Ahead);
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(4)), Verdict::Ahead);
    assert_eq!(acks(&cluster), vec![("b@1".to_owned(), 1, true)]);
    for seq in 2..=4 {
        assert_eq!(check(&mut seen, &cluster, "b@1", Some(seq)), Verdict::Next);
    }
    // Another sender is numbered on its own, from 1.
    assert_eq!(check(&mut seen, &cluster, "c@1", Some(1)), Verdict::Next);
    // The tick acknowledges each sender's last, once.
    seen.tick(&cluster, Duration::from_secs(60));
    let mut got = acks(&cluster);
    got.sort();
    assert_eq!(
        got,
        vec![("b@1".to_owned(), 4, false), ("c@1".to_owned(), 1, false)]
    );
    seen.tick(&cluster, Duration::from_secs(60));
    assert!(acks(&cluster).is_empty(), "nothing new, nothing sent");
    // A resubscribed link asks every sender for what follows what it has.
    seen.resubscribed(&cluster, Duration::from_secs(60));
    let mut got = acks(&cluster);
    got.sort();
    assert_eq!(
        got,
        vec![("b@1".to_owned(), 4, true), ("c@1".to_owned(), 1, true)]
    );
}

#[tokio::test]
async fn a_reset_moves_the_receiver_past_frames_that_are_gone() {
    let cluster = cluster();
    let mut seen = Receipts::default();
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(1)), Verdict::Next);
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(5)), Verdict::Ahead);
    seen.sender(&Arc::from("b@1")).reset(5);
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(5)), Verdict::Next);
    // A reset behind what it has changes nothing.
    seen.sender(&Arc::from("b@1")).reset(2);
    assert_eq!(check(&mut seen, &cluster, "b@1", Some(6)), Verdict::Next);
}

#[tokio::test]
async fn the_sender_keeps_until_acknowledged_and_sends_the_rest_again_when_asked() {
    let cluster = cluster();
    let b: Arc<str> = Arc::from("b@1");
    let mut window = Window::new(100, 1 << 20);
    let numbers: Vec<u64> = (0..5).map(|_| window.number(&b)).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    window.keep(&b, (1..=5).map(|s| Entry::numbered(Arc::clone(&b), s)));
    assert!(window.waiting());
    let replay = window.acked(&cluster, &b, 3, false);
    assert!(replay.again.is_empty());
    let replay = window.acked(&cluster, &b, 3, true);
    assert_eq!(seqs(&replay.again), vec![4, 5]);
    assert!(replay.drop_held.is_none());
    assert!(!window.waiting(), "what went again is no longer kept");
    // An acknowledgement beyond what was numbered is taken as the last number.
    assert!(window.acked(&cluster, &b, 99, true).again.is_empty());
    assert!(cluster.take_window_lost().is_empty());
}

#[tokio::test]
async fn frames_gone_past_the_bound_end_the_calls_once_when_asked_for() {
    let cluster = cluster();
    let b: Arc<str> = Arc::from("b@1");
    // Two frames fit (a `left` notice counts as 256 bytes).
    let mut window = Window::new(2, 1 << 20);
    for _ in 0..4 {
        window.number(&b);
    }
    window.keep(&b, (1..=4).map(|s| Entry::numbered(Arc::clone(&b), s)));
    // 1 and 2 went; the receiver has 1 only.
    let replay = window.acked(&cluster, &b, 1, true);
    let reset: Vec<bool> = replay
        .again
        .iter()
        .map(|e| {
            matches!(
                e.item,
                Outgoing::Frame {
                    msg: OutMessage::Reset(5),
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        reset,
        vec![true],
        "a reset past every frame numbered so far, alone"
    );
    assert_eq!(replay.drop_held.as_deref(), Some("b@1"));
    assert_eq!(cluster.take_window_lost(), vec![Arc::clone(&b)]);
    // Asked again (the reset was lost): the reset again, the calls not ended twice.
    let replay = window.acked(&cluster, &b, 1, true);
    assert_eq!(replay.again.len(), 1);
    assert!(replay.drop_held.is_none());
    assert!(cluster.take_window_lost().is_empty());
    // Once the receiver is past the reset, frames go on as before.
    window.number(&b);
    window.keep(&b, std::iter::once(Entry::numbered(Arc::clone(&b), 5)));
    assert!(window.acked(&cluster, &b, 4, true).again.len() == 1);
}

#[test]
fn frames_sent_again_go_first_and_each_node_s_frames_stay_in_order() {
    let b: Arc<str> = Arc::from("b@1");
    let c: Arc<str> = Arc::from("c@1");
    // Held: c's 7, b's 5 (kept back: b was not subscribed), b's 6.
    let mut held: VecDeque<Entry> = VecDeque::from(vec![
        Entry::numbered(Arc::clone(&c), 7),
        Entry::numbered(Arc::clone(&b), 5),
        Entry::numbered(Arc::clone(&b), 6),
    ]);
    // b asks for 3, 4 and 7 again (7 was published in a later bundle and arrived first).
    let replay = Replay {
        again: vec![3, 4, 7]
            .into_iter()
            .map(|s| Entry::numbered(Arc::clone(&b), s))
            .collect(),
        drop_held: None,
    };
    assert!(requeue(&mut held, replay));
    let order: Vec<(String, u64)> = held
        .iter()
        .map(|e| (e.node().unwrap().to_string(), e.seq))
        .collect();
    let b_order: Vec<u64> = order
        .iter()
        .filter(|(n, _)| n == "b@1")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(b_order, vec![3, 4, 5, 6, 7]);
    assert_eq!(
        order[0],
        ("b@1".to_owned(), 3),
        "what goes again goes first"
    );
    assert!(order.contains(&("c@1".to_owned(), 7)));
    // The calls with b end: b's held frames go, c's stay.
    let replay = Replay {
        again: Vec::new(),
        drop_held: Some(Arc::clone(&b)),
    };
    assert!(!requeue(&mut held, replay));
    assert_eq!(seqs(&held.into_iter().collect::<Vec<_>>()), vec![7]);
}

/// A relay of an offer with an SDP `len` long from a peer of `dialect`, with its wire text
/// (a raw peer's) in a received buffer, as a session's frames are.
fn offer(dialect: DialectKind, len: usize) -> Envelope {
    use switchboard_protocol::{Description, Event, SdpKind};
    let sdp = "v".repeat(len);
    let text = format!("{{\"type\":\"offer\",\"sdp\":\"{sdp}\"}}");
    Envelope {
        from: crate::gateway::peer(switchboard_plugin_api::SessionId(1), dialect),
        event: Event::Description(Description {
            room: "r".to_owned(),
            kind: SdpKind::Offer,
            sdp: sdp.into(),
        }),
        original: Some(Original::new(axum::extract::ws::Utf8Bytes::from(text))),
        app: None,
    }
}

fn raw_offer(len: usize) -> Envelope {
    offer(DialectKind::Raw, len)
}

/// The forward of `envelope` queued `ago`, numbered `seq`.
fn forward_entry(node: &Arc<str>, seq: u64, envelope: &Envelope, ago: Duration) -> Entry {
    let mut entry = Entry::numbered(Arc::clone(node), seq);
    entry.since = Instant::now().checked_sub(ago).unwrap();
    entry.item = Outgoing::Frame {
        node: Arc::clone(node),
        msg: OutMessage::Forward(crate::cluster::publisher::forward(7, envelope, true).unwrap()),
    };
    entry
}

/// Whether `entry`'s forward still shares the text of `envelope`'s received frame.
fn shares(entry: &Entry, envelope: &Envelope) -> bool {
    let Outgoing::Frame {
        msg: OutMessage::Forward(body),
        ..
    } = &entry.item
    else {
        panic!("not a forward");
    };
    body.shares(envelope.original.as_ref().unwrap())
}

/// A large forward's text is the sender's received frame, not a copy; kept past the time an
/// acknowledgement takes on a working link it gets a copy of its own (the received frame holds
/// its sender's read buffer alive, which the window's byte bound does not weigh), with the same
/// bytes. A small text is copied at once.
#[tokio::test]
async fn a_kept_forward_shares_its_sender_s_frame_only_while_an_acknowledgement_takes() {
    let b: Arc<str> = Arc::from("b@1");
    let mut window = Window::new(100, 1 << 20);
    let (old, young, small) = (raw_offer(1000), raw_offer(1000), raw_offer(100));
    let entries = [
        forward_entry(&b, 1, &old, Duration::from_secs(1)),
        forward_entry(&b, 2, &young, Duration::ZERO),
        forward_entry(&b, 3, &small, Duration::ZERO),
    ];
    assert!(shares(&entries[0], &old) && shares(&entries[1], &young));
    assert!(
        !shares(&entries[2], &small),
        "a small text is copied with its head"
    );
    let bytes: Vec<usize> = entries
        .iter()
        .map(crate::cluster::publisher::frame_size)
        .collect();
    window.keep(&b, entries.into_iter());
    window.unpin(
        Instant::now()
            .checked_sub(Duration::from_millis(300))
            .unwrap(),
    );
    let replay = window.acked(&cluster(), &b, 0, true);
    assert_eq!(seqs(&replay.again), vec![1, 2, 3]);
    assert!(
        !shares(&replay.again[0], &old),
        "kept past the cutoff: its own copy"
    );
    assert!(shares(&replay.again[1], &young), "younger: still shared");
    let after: Vec<usize> = replay
        .again
        .iter()
        .map(crate::cluster::publisher::frame_size)
        .collect();
    assert_eq!(after, bytes, "the same body either way");
}

/// A text the sending node renders for the forward (an Ant description gains its
/// `idMapping`) is kept as rendered, not copied again with its head, and needs no copy later.
#[tokio::test]
async fn a_rendered_forward_text_is_kept_as_rendered() {
    let b: Arc<str> = Arc::from("b@1");
    let ant = offer(DialectKind::Antmedia, 1000);
    let entry = forward_entry(&b, 1, &ant, Duration::from_secs(1));
    let Outgoing::Frame {
        msg: OutMessage::Forward(body),
        ..
    } = &entry.item
    else {
        panic!("not a forward");
    };
    assert!(
        body.apart() && !shares(&entry, &ant),
        "rendered, apart from its head"
    );
    let size = crate::cluster::publisher::frame_size(&entry);
    let mut window = Window::new(100, 1 << 20);
    window.keep(&b, std::iter::once(entry));
    window.unpin(Instant::now());
    let again = window.acked(&cluster(), &b, 0, true).again;
    let Outgoing::Frame {
        msg: OutMessage::Forward(body),
        ..
    } = &again[0].item
    else {
        panic!("not a forward");
    };
    assert!(body.apart(), "not copied when kept long");
    assert_eq!(crate::cluster::publisher::frame_size(&again[0]), size);
}

/// While the publisher is behind (items left held: Redis or a receiver away), a sender copies
/// its text: a forward waiting in the outbox is never given a copy later, and would keep its
/// sender's read buffer alive for as long as it waits.
#[test]
fn a_sender_copies_its_text_while_the_publisher_is_behind() {
    let raw = raw_offer(1000);
    let behind = crate::cluster::publisher::forward(7, &raw, false).unwrap();
    let keeping_up = crate::cluster::publisher::forward(7, &raw, true).unwrap();
    assert!(!behind.apart() && keeping_up.apart());
    assert_eq!(behind.len(), keeping_up.len(), "the same body either way");
}

/// A round that waits on Redis past the sharing time (Redis stalled, not yet taken for down)
/// marks the publisher behind while it waits, so senders copy what they queue meanwhile; a
/// round that answers in time leaves it as it was.
#[tokio::test]
async fn a_round_stalled_past_the_sharing_time_puts_the_publisher_behind() {
    let cluster = cluster();
    cluster.health.set_up(&cluster.node);
    assert!(cluster.keeping_up());
    crate::cluster::publisher::behind_if_slow(&cluster, async {}).await;
    assert!(cluster.keeping_up(), "a quick round");
    // A round that waits (at most 5 s) until senders see the publisher behind.
    let stalled = crate::cluster::publisher::behind_if_slow(&cluster, async {
        for _ in 0..100 {
            if !cluster.keeping_up() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(stalled.await, "behind while the round still waits");
}
