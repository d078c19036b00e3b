//! Nothing lost between nodes: receiver acknowledgements and the sender's replay window.
//!
//! `PUBLISH` answering 1 says Redis took a frame for the receiver's subscription, not that the
//! receiver read it: Redis may still die (SIGKILL, a failover) or close the subscriber (its
//! output buffer passed `client-output-buffer-limit pubsub`) before writing it out. So:
//!
//! - **Numbers per receiver.** A sender numbers its frames per receiving node, from 1 (node
//!   protocol 6), so a receiver sees a gap at once: a frame past the next one expected is
//!   dropped (counted `ahead`) and the receiver asks its sender for everything after the last
//!   one it has (`Ack` with `resend`), once per gap, again if the gap outlasts [`patience`].
//! - **Acknowledgements.** Every [`ACK_EVERY`] a receiver tells each sender it got new frames
//!   from the highest number it has handed to sessions (one small unnumbered message per
//!   sender, not one per frame); a subscription that was lost and made again asks each known
//!   sender for everything after what it has.
//! - **The window.** The sender keeps each frame Redis took ([`Window`]) until its receiver
//!   acknowledges it, at most `publish_queue_len` frames and `replay_window_bytes` bytes (the
//!   oldest go first). Asked to resend, it publishes again, in order and before anything newer,
//!   every kept frame after the receiver's number; the receiver drops what it has. A sender that
//!   hears no acknowledgement for [`patience`] while it keeps frames publishes them again
//!   unasked (the receiver never heard of it, or the request was lost).
//! - **Gone for good.** When the frames asked for are no longer kept (the window overflowed,
//!   they outlasted `replay_window_ms`, the receiver was taken for dead), the sender ends its
//!   calls with the receiver's peers (each local partner gets its dialect's leave signal, its
//!   own peers are closed; their leaves reach the receiver as frames), counts the frames as
//!   dropped and logs it, once, and sends `Reset`: the receiver takes the next number as next.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::publisher::Entry;
use super::{Cluster, OutMessage, Outgoing, health};

/// How often a receiver acknowledges what it got.
pub(super) const ACK_EVERY: Duration = Duration::from_millis(100);

/// How long a sender waits for an acknowledgement (and a receiver for a gap to fill) before
/// asking again: a few acknowledgement periods, and at least two Redis command timeouts, so a
/// busy receiver is not flooded with frames it has.
pub(super) fn patience(cluster: &Cluster) -> Duration {
    (ACK_EVERY * 5).max(cluster.command_timeout() * 2)
}

// === Sender ===

/// What a sender keeps for one receiving node.
struct Stream {
    node: Arc<str>,
    /// The last frame number given.
    last: u64,
    /// Frames Redis took and the receiver has not acknowledged, oldest first, with their size.
    kept: VecDeque<(Entry, usize)>,
    /// The kept frames before this place hold no text of their sender's ([`Window::unpin`]).
    unpinned: usize,
    /// The receiver's last acknowledgement.
    acked: u64,
    /// The highest number dropped before the receiver had it (0: none).
    lost: u64,
    /// The `lost` its calls were ended (or found ended) for.
    ended: u64,
    /// When the receiver last acknowledged progress (or was last sent its kept frames again).
    heard: Instant,
    /// Taken for dead: no frames sent again unasked.
    dead: bool,
}

/// The frames each receiver has not acknowledged yet, within the window's bounds.
pub(super) struct Window {
    streams: Vec<Stream>,
    frames: usize,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

/// What a receiver's acknowledgement asks of the publisher.
#[derive(Default)]
pub(super) struct Replay {
    /// Publish these again, before anything newer for their node (in order of number).
    pub(super) again: Vec<Entry>,
    /// The calls with this node end: drop the frames still held for it (numbered before the
    /// `Reset` in `again`; counted already).
    pub(super) drop_held: Option<Arc<str>>,
}

impl Window {
    pub(super) fn new(max_frames: usize, max_bytes: usize) -> Self {
        Self {
            streams: Vec::new(),
            frames: 0,
            bytes: 0,
            max_frames,
            max_bytes,
        }
    }

    fn stream(&mut self, node: &Arc<str>) -> &mut Stream {
        // Few nodes, and most frames go to the one before: a pointer compare first.
        let at = self
            .streams
            .iter()
            .position(|s| Arc::ptr_eq(&s.node, node))
            .or_else(|| self.streams.iter().position(|s| s.node == *node));
        let at = at.unwrap_or_else(|| {
            self.streams.push(Stream {
                node: Arc::clone(node),
                last: 0,
                kept: VecDeque::new(),
                unpinned: 0,
                acked: 0,
                lost: 0,
                ended: 0,
                heard: Instant::now(),
                dead: false,
            });
            self.streams.len() - 1
        });
        &mut self.streams[at]
    }

    /// The next frame number for `node`.
    pub(super) fn number(&mut self, node: &Arc<str>) -> u64 {
        let stream = self.stream(node);
        stream.last += 1;
        stream.last
    }

    /// Whether every frame kept for `node` is acknowledged (none wait to be sent again).
    pub(super) fn settled(&self, node: &Arc<str>) -> bool {
        self.streams
            .iter()
            .find(|s| s.node == *node)
            .is_none_or(|s| s.kept.is_empty() && s.acked >= s.lost)
    }

    /// Whether frames wait for an acknowledgement (the publisher then wakes to check
    /// [`Self::overdue`]).
    pub(super) fn waiting(&self) -> bool {
        self.frames > 0 || self.streams.iter().any(|s| !s.dead && s.acked < s.lost)
    }

    /// Keeps `entries`, which Redis took for `node`, until it acknowledges them; the oldest
    /// kept frames go past the bounds (noted as lost: asked for later, they end the calls).
    /// Returns how many it took.
    pub(super) fn keep(&mut self, node: &Arc<str>, entries: impl Iterator<Item = Entry>) -> usize {
        let mut added = (0, 0);
        let stream = self.stream(node);
        if stream.kept.is_empty() {
            stream.heard = Instant::now();
        }
        for entry in entries {
            let size = super::publisher::frame_size(&entry);
            added.0 += 1;
            added.1 += size;
            stream.kept.push_back((entry, size));
        }
        self.frames += added.0;
        self.bytes += added.1;
        self.evict();
        added.0
    }

    /// Gives every frame kept since before `cutoff` its own copy of the text it shares with
    /// its sender's received frame ([`super::publisher::ForwardBody`]): such a text keeps that
    /// frame's whole read buffer alive, which the window's bounds do not weigh, so it is shared
    /// only as long as an acknowledgement takes on a working link.
    pub(super) fn unpin(&mut self, cutoff: Instant) {
        for stream in &mut self.streams {
            while let Some((entry, _)) = stream.kept.get_mut(stream.unpinned) {
                if entry.since > cutoff {
                    break;
                }
                entry.unpin();
                stream.unpinned += 1;
            }
        }
    }

    /// Drops the oldest kept frames, longest stream first, while past a bound.
    fn evict(&mut self) {
        while self.frames > self.max_frames || self.bytes > self.max_bytes {
            let Some(stream) = self.streams.iter_mut().max_by_key(|s| s.kept.len()) else {
                return;
            };
            let Some((entry, size)) = stream.kept.pop_front() else {
                return;
            };
            stream.unpinned = stream.unpinned.saturating_sub(1);
            stream.lost = stream.lost.max(entry.seq);
            self.frames -= 1;
            self.bytes -= size;
        }
    }

    /// Notes frames for `node` dropped before it had them (held past the window, discarded).
    pub(super) fn dropped(&mut self, node: &Arc<str>, seq: u64, calls_ended: bool) {
        let stream = self.stream(node);
        stream.lost = stream.lost.max(seq);
        if calls_ended {
            stream.ended = stream.lost;
        }
    }

    /// `node` was taken for dead: what is kept for it goes, and its calls have ended.
    pub(super) fn forget(&mut self, node: &Arc<str>) {
        let stream = self.stream(node);
        let kept = std::mem::take(&mut stream.kept);
        stream.unpinned = 0;
        stream.lost = stream.last;
        stream.ended = stream.last;
        stream.dead = true;
        self.frames -= kept.len();
        self.bytes -= kept.iter().map(|(_, size)| size).sum::<usize>();
    }

    /// Every call has ended (Redis was away past the window, or this node taken for dead):
    /// nothing kept is asked for again but answered with `Reset`.
    pub(super) fn discard(&mut self) {
        for stream in &mut self.streams {
            stream.lost = stream.last;
            stream.ended = stream.last;
            stream.kept.clear();
            stream.unpinned = 0;
        }
        self.frames = 0;
        self.bytes = 0;
    }

    /// `node` acknowledged every frame up to `got`; with `resend` it asks for the later ones.
    pub(super) fn acked(
        &mut self,
        cluster: &Cluster,
        node: &Arc<str>,
        got: u64,
        resend: bool,
    ) -> Replay {
        let stream = self.stream(node);
        stream.dead = false;
        let got = got.min(stream.last);
        if got > stream.acked {
            stream.acked = got;
            stream.heard = Instant::now();
        }
        let mut freed = (0, 0);
        while stream.kept.front().is_some_and(|(e, _)| e.seq <= got) {
            if let Some((_, size)) = stream.kept.pop_front() {
                freed.0 += 1;
                freed.1 += size;
            }
        }
        stream.unpinned = stream.unpinned.saturating_sub(freed.0);
        self.frames -= freed.0;
        self.bytes -= freed.1;
        if !resend {
            return Replay::default();
        }
        self.again(cluster, node, got)
    }

    /// Every kept frame for `node` after `got`, to publish again; when some of those the
    /// receiver lacks are gone, a `Reset` first (the calls end once per lost stretch).
    fn again(&mut self, cluster: &Cluster, node: &Arc<str>, got: u64) -> Replay {
        let stream = self.stream(node);
        stream.heard = Instant::now();
        let mut out = Replay::default();
        if got < stream.lost {
            if stream.ended < stream.lost {
                // Every frame numbered so far belongs to the calls that end (those still held
                // go too): the receiver goes on after the last, and the leaves follow.
                let missing = usize::try_from(stream.last - got).unwrap_or(usize::MAX);
                warn!(node = %stream.node, missing,
                    "Cluster: frames for another node are gone from the replay window; calls with its peers end.");
                health::frames_dropped(missing);
                stream.lost = stream.last;
                stream.ended = stream.lost;
                cluster.window_lost(Arc::clone(&stream.node));
                out.drop_held = Some(Arc::clone(&stream.node));
            }
            out.again.push(Entry::control(
                Arc::clone(&stream.node),
                OutMessage::Reset(stream.lost + 1),
            ));
        }
        let floor = got.max(stream.lost);
        let kept = std::mem::take(&mut stream.kept);
        stream.unpinned = 0;
        let mut freed = (0, 0);
        for (entry, size) in kept {
            freed.0 += 1;
            freed.1 += size;
            if entry.seq > floor {
                out.again.push(entry);
            }
        }
        self.frames -= freed.0;
        self.bytes -= freed.1;
        out
    }

    /// The receivers that acknowledged nothing for [`patience`] while frames wait for them:
    /// their kept frames go again (or, when some are gone, a `Reset` and the calls end).
    pub(super) fn overdue(&mut self, cluster: &Cluster, patience: Duration) -> Vec<Replay> {
        let now = Instant::now();
        let late: Vec<(Arc<str>, u64)> = self
            .streams
            .iter()
            .filter(|s| !s.dead && (!s.kept.is_empty() || s.acked < s.lost))
            .filter(|s| now.duration_since(s.heard) > patience)
            .map(|s| (Arc::clone(&s.node), s.acked))
            .collect();
        late.into_iter()
            .map(|(node, acked)| {
                debug!(node = %node, "Cluster: no acknowledgement from a node; its frames go again.");
                self.again(cluster, &node, acked)
            })
            .collect()
    }
}

/// Puts `again` (frames to publish again, possibly for several nodes, each node's in order)
/// at the front of `held`, and orders each node's frames in `held` by number: a frame kept
/// back because its node was not subscribed may be older than a replayed one.
/// Returns whether it added anything.
pub(super) fn requeue(held: &mut VecDeque<Entry>, replay: Replay) -> bool {
    let Replay { again, drop_held } = replay;
    if let Some(node) = drop_held {
        held.retain(|e| e.seq == 0 || e.node() != Some(&node));
    }
    if again.is_empty() {
        return false;
    }
    let mut nodes: Vec<Arc<str>> = Vec::new();
    for entry in &again {
        if let Some(node) = entry.node()
            && !nodes.contains(node)
        {
            nodes.push(Arc::clone(node));
        }
    }
    for mut entry in again.into_iter().rev() {
        entry.extra = true;
        held.push_front(entry);
    }
    for node in nodes {
        let slots: Vec<usize> = (0..held.len())
            .filter(|&i| held[i].node() == Some(&node) && held[i].seq > 0)
            .collect();
        let mut entries: Vec<Entry> = Vec::with_capacity(slots.len());
        // Take them out back to front so the indices stay valid, then put them back sorted.
        for &i in slots.iter().rev() {
            if let Some(e) = held.remove(i) {
                entries.push(e);
            }
        }
        entries.sort_by_key(|e| e.seq);
        for (&i, entry) in slots.iter().zip(entries) {
            held.insert(i, entry);
        }
    }
    true
}

// === Receiver ===

/// What a receiver knows of one sending node (instance).
#[derive(Default)]
struct From {
    /// The last frame number handed to sessions, in order.
    last: u64,
    /// The last number acknowledged.
    acked: u64,
    /// A frame came again or ahead of a gap since the last acknowledgement: acknowledge anyway.
    due: bool,
    /// When the frames after `last` were asked for, while a gap is open.
    asked: Option<Instant>,
    /// When a frame last came (`None`: never).
    heard: Option<Instant>,
}

/// What the receiving side of the link knows of each sender: the order and duplicate checks,
/// and what to acknowledge.
#[derive(Default)]
pub(super) struct Receipts {
    from: HashMap<Arc<str>, From>,
    /// Whether a bundle of another node protocol version was logged (once: a node of another
    /// release sends many).
    pub(super) other_version_logged: bool,
}

/// What this node has of one sending node's frames ([`Receipts::sender`]).
pub(super) struct Sender<'a> {
    node: &'a str,
    from: &'a mut From,
    /// [`Receipts::other_version_logged`].
    pub(super) other_version_logged: &'a mut bool,
}

impl Sender<'_> {
    /// Checks `seq` from this sender; notes it when it is the next one. A gap asks the sender
    /// for the missing frames (once; again after [`patience`], from [`Receipts::tick`]).
    /// `now`: when the frame's bundle came (read once per bundle).
    pub(super) fn check(&mut self, cluster: &Cluster, seq: Option<u64>, now: Instant) -> Verdict {
        let Some(seq) = seq else {
            return Verdict::Next;
        };
        let from = &mut *self.from;
        if seq == from.last + 1 {
            from.last = seq;
            from.asked = None;
            from.heard = Some(now);
            return Verdict::Next;
        }
        from.due = true;
        if seq <= from.last {
            return Verdict::Again;
        }
        if from.asked.is_none() {
            from.asked = Some(now);
            ask(cluster, self.node, from.last, true);
        }
        Verdict::Ahead
    }

    /// The sender says the frames before `next` that this node lacks are gone.
    pub(super) fn reset(&mut self, next: u64) {
        let node = self.node;
        let from = &mut *self.from;
        if next > from.last + 1 {
            debug!(
                node,
                next, "Cluster: frames from another node are gone; going on from the next."
            );
            from.last = next - 1;
            from.asked = None;
            from.due = true;
        }
    }
}

/// Where a received frame stands.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The next one (or not numbered): hand it on.
    Next,
    /// Had already: drop it.
    Again,
    /// Past a gap: drop it, the sender publishes it again after the missing ones.
    Ahead,
}

impl Receipts {
    /// What this node has of `node`'s frames, looked up once for a whole bundle.
    pub(super) fn sender<'a>(&'a mut self, node: &'a Arc<str>) -> Sender<'a> {
        let from = self.from.entry(Arc::clone(node)).or_default();
        Sender {
            node,
            from,
            other_version_logged: &mut self.other_version_logged,
        }
    }

    /// Every [`ACK_EVERY`]: acknowledges new frames to their senders, asks again for a gap that
    /// outlasted `patience`.
    pub(super) fn tick(&mut self, cluster: &Cluster, patience: Duration) {
        let now = Instant::now();
        for (node, from) in &mut self.from {
            if let Some(asked) = from.asked
                && now.duration_since(asked) > patience
            {
                from.asked = Some(now);
                ask(cluster, node, from.last, true);
            } else if from.last > from.acked || from.due {
                ask(cluster, node, from.last, false);
            } else {
                continue;
            }
            from.acked = from.last;
            from.due = false;
        }
    }

    /// The subscription was made again: what Redis had not yet written to the old one is gone,
    /// so every sender heard from within `recent` is asked for everything after what this node
    /// has. (The others' frames for this node are acknowledged or long expired; and a sender
    /// found dead stays known, so that frames it published before it was taken for dead and
    /// sends again are still recognised as had.)
    pub(super) fn resubscribed(&mut self, cluster: &Cluster, recent: Duration) {
        let now = Instant::now();
        for (node, from) in &mut self.from {
            if from.heard.is_none_or(|t| now.duration_since(t) > recent) {
                continue;
            }
            // Asked once: a sender that hears nothing more publishes its kept frames again
            // unasked ([`Window::overdue`]), and a gap asks again by itself.
            from.asked = None;
            from.acked = from.last;
            from.due = false;
            ask(cluster, node, from.last, true);
        }
    }
}

/// Queues an acknowledgement for `node` (unnumbered, never kept for replay).
fn ask(cluster: &Cluster, node: &str, got: u64, resend: bool) {
    cluster.send_control(Arc::from(node), OutMessage::Ack(got, resend));
}

/// A sender's frame numbers, for the publisher: control messages have none.
pub(super) fn numbered(item: &Outgoing) -> Option<&Arc<str>> {
    match item {
        Outgoing::Frame { node, msg } if !msg.is_control() => Some(node),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
