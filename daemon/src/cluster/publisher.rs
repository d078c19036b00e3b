//! The one ordered publishing queue of a node: a single task drains it in order and sends each
//! batch as one Redis pipeline on one connection, so frames reach every other node in the order
//! they were queued (Redis runs one connection's commands in order, and pub/sub hands a
//! channel's messages to a subscriber in that order).
//!
//! Within a batch, the frames for one node go as one bundle (one `PUBLISH`; node protocol 4,
//! `switchboard_protocol::cluster::bundle`), so Redis, the receiver's parsing and the syscalls
//! are paid per bundle, not per frame. Nothing waits for a bundle to fill: a batch is what was
//! queued when the previous round trip ended, one frame when the node is idle. A membership
//! script (a member's record) closes the open bundles before it, so a record and the
//! `joined`/`left` frames around it keep their queue order.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::borrow::Cow;

use bytes::BytesMut;
use switchboard_plugin_api::Peer;
use switchboard_protocol::JoinMode;
use switchboard_protocol::cluster::{
    BUNDLE_LIMIT, BundleParts, ForwardRef, FrameRef, NodeMessage, PartsWriter, RemotePeer,
    forward_body, forward_head, prepare_forward,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::direct::links::Links;
use super::replay::{self, Window};
use super::{Cluster, OutMessage, Outgoing, health, resp, store};
use crate::envelope::{Envelope, Original};

/// Most items sent in one pipeline.
const BATCH: usize = 512;

/// How often held items are tried again while Redis or a receiver is away.
const RETRY: Duration = Duration::from_millis(50);

/// An item waiting to be sent: when it was queued, its frame number (numbered frames only,
/// else 0), and whether a publish already found no subscriber for it.
pub(super) struct Entry {
    pub(super) since: Instant,
    pub(super) seq: u64,
    unheard: bool,
    /// A frame published before and sent again, or an acknowledgement ([`replay`]): neither
    /// was held for Redis nor lost when dropped, so the held gauge and the dropped count
    /// leave it out.
    pub(super) extra: bool,
    pub(super) item: Outgoing,
}

impl Entry {
    /// Gives a forward its own copy of its sender's text ([`ForwardBody::unpin`]).
    pub(super) fn unpin(&mut self) {
        if let Outgoing::Frame {
            msg: OutMessage::Forward(body),
            ..
        } = &mut self.item
        {
            body.unpin();
        }
    }

    /// Whether a publish found no subscriber for it (its node is waited for).
    pub(super) fn is_unheard(&self) -> bool {
        self.unheard
    }

    /// The receiving node of a frame.
    pub(super) fn node(&self) -> Option<&Arc<str>> {
        match &self.item {
            Outgoing::Frame { node, .. } => Some(node),
            _ => None,
        }
    }

    /// A numbered frame for `node` (a `left` notice), for the window's unit tests.
    #[cfg(test)]
    pub(super) fn numbered(node: Arc<str>, seq: u64) -> Self {
        Self {
            since: Instant::now(),
            seq,
            unheard: false,
            extra: false,
            item: Outgoing::Frame {
                node,
                msg: OutMessage::Left("room".to_owned(), switchboard_plugin_api::SessionId(seq)),
            },
        }
    }

    /// An unnumbered message for `node`, queued now.
    pub(super) fn control(node: Arc<str>, msg: OutMessage) -> Self {
        Self {
            since: Instant::now(),
            seq: 0,
            unheard: false,
            extra: true,
            item: Outgoing::Frame { node, msg },
        }
    }
}

/// What waits to be sent, oldest first. Items stay here while Redis is unreachable, and frames
/// whose receiving node was not subscribed (it is reconnecting after the same outage) stay until
/// it is: `PUBLISH` says how many subscribers got a frame.
type Held = VecDeque<Entry>;

/// Runs until the cluster stops: takes what is queued, publishes it, holds what cannot go yet.
pub async fn run(cluster: Arc<Cluster>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut held = Held::new();
    // Where each round's sending puts what stays held; swapped with `held`, so neither queue
    // grows again from empty every round.
    let mut spare = Held::new();
    // Where bundles are built; its buffer is taken back once a round trip's bundles are sent.
    let mut arena = BytesMut::new();
    // What the held gauge shows now.
    let mut shown = 0i64;
    let cap = cluster.config.publish_queue_len;
    // Frames Redis took, kept until their receiver acknowledges them.
    let mut window = Window::new(cap, cluster.config.replay_window_bytes);
    let patience = replay::patience(&cluster);
    // Whether `held` may hold extra items (left out of the gauge, which then counts them).
    let mut replayed = false;
    // Direct links to other nodes, with `[cluster.direct]`.
    let mut links = Links::default();
    loop {
        // While the held queue is full nothing more is taken: the outbox fills, and further
        // items are dropped (counted) at `Cluster::send`, which marks the calls broken.
        let room = cap.saturating_sub(held.len()).min(BATCH);
        let n = tokio::select! {
            () = cluster.stop.cancelled() => return,
            n = rx.recv_many(&mut batch, room.max(1)), if room > 0 => {
                if n == 0 {
                    return;
                }
                n
            }
            () = tokio::time::sleep(RETRY), if !held.is_empty() || window.waiting() => 0,
            () = dialed(&cluster) => 0,
        };
        let now = Instant::now();
        if cluster.take_discard() {
            drop_all(&mut held, &mut window);
        }
        replayed |= take(
            &cluster,
            &mut held,
            batch.drain(..n),
            &mut window,
            &mut links,
            now,
        );
        expire(&mut held, &mut window, now, cluster.replay_window());
        if let Some(cutoff) = now.checked_sub(SHARE_FOR) {
            unpin(&mut held, &mut window, cutoff);
        }
        if cluster.healthy() {
            for again in window.overdue(&cluster, patience) {
                replayed |= replay::requeue(&mut held, again);
            }
        }
        cluster.unsent.store(held.len(), Ordering::Relaxed);
        links.update(&cluster, &window, &held);
        let queues = Queues {
            held: &mut held,
            kept: &mut spare,
        };
        behind_if_slow(
            &cluster,
            send(&cluster, queues, &mut window, &mut arena, &mut links),
        )
        .await;
        cluster.unsent.store(held.len(), Ordering::Relaxed);
        cluster.behind.store(!held.is_empty(), Ordering::Relaxed);
        let waiting = if replayed {
            let fresh = held.iter().filter(|e| !e.extra).count();
            replayed = fresh < held.len();
            fresh
        } else {
            held.len()
        };
        let len = i64::try_from(waiting).unwrap_or(i64::MAX);
        health::held(len - shown);
        shown = len;
    }
}

/// Until the dialer hands over a direct link; never, without direct links.
async fn dialed(cluster: &Cluster) {
    match cluster.direct() {
        Some(direct) => direct.dialed().await,
        None => std::future::pending().await,
    }
}

/// Queues what came from the outbox behind what is held, numbering the frames per receiving
/// node; the markers act on what is queued before them, an acknowledgement on the window
/// (what it asks for again goes before anything newer).
fn take(
    cluster: &Cluster,
    held: &mut Held,
    items: impl Iterator<Item = Outgoing>,
    window: &mut Window,
    links: &mut Links,
    now: Instant,
) -> bool {
    let mut replayed = false;
    for item in items {
        match item {
            Outgoing::Discard => drop_all(held, window),
            Outgoing::Forget(node) => {
                links.forget(cluster, &node);
                forget(held, window, &node);
            }
            Outgoing::Acked { node, got, resend } => {
                replayed |= replay::requeue(held, window.acked(cluster, &node, got, resend));
            }
            item => {
                let seq = replay::numbered(&item).map_or(0, |node| window.number(node));
                let control = seq == 0 && matches!(item, Outgoing::Frame { .. });
                replayed |= control;
                held.push_back(Entry {
                    since: now,
                    seq,
                    unheard: false,
                    extra: control,
                    item,
                });
            }
        }
    }
    replayed
}

/// Drops every held item, counting the numbered frames; every call across nodes has ended.
fn drop_all(held: &mut Held, window: &mut Window) {
    let mut frames = 0;
    for entry in held.drain(..) {
        if let Some(node) = entry.node().filter(|_| entry.seq > 0) {
            window.dropped(node, entry.seq, true);
            frames += usize::from(!entry.extra);
        }
    }
    window.discard();
    health::frames_dropped(frames);
}

/// Drops (counted) the frames held for `node`, found dead: its peers have left their rooms.
fn forget(held: &mut Held, window: &mut Window, node: &Arc<str>) {
    let mut frames = 0;
    held.retain(|e| {
        let keep = e.node().is_none_or(|n| n != node);
        frames += usize::from(!keep && e.seq > 0 && !e.extra);
        keep
    });
    window.forget(node);
    health::frames_dropped(frames);
}

/// Drops (counted) the frames held longer than `limit`; their receivers' node is gone or
/// Redis has been away too long, and the link tells the partners their peers left (a
/// receiver that asks for them later ends its calls with this node: [`Window::acked`]).
/// Membership items are dropped too: the re-registration after an outage rewrites them.
fn expire(held: &mut Held, window: &mut Window, now: Instant, limit: Duration) {
    let before = held.len();
    let mut frames = 0;
    held.retain(|e| {
        let keep = now.duration_since(e.since) <= limit;
        if !keep && let Some(node) = e.node().filter(|_| e.seq > 0) {
            window.dropped(node, e.seq, false);
            frames += usize::from(!e.extra);
        }
        keep
    });
    if held.len() < before {
        health::frames_dropped(frames);
    }
}

/// How long a forward may share its text with its sender's received frame (and so keep that
/// frame's read buffer alive) before it gets a copy of its own: longer than a working link takes
/// to acknowledge a frame ([`replay::ACK_EVERY`]), so copies are made only for frames held
/// while Redis or a receiver is away.
const SHARE_FOR: Duration = Duration::from_millis(300);

/// Runs a round's sending; one still waiting for Redis after [`SHARE_FOR`] (Redis stalled, not
/// yet taken for down) marks the publisher behind, so that what senders queue meanwhile is
/// copied: a forward left in the outbox is never given a copy of its own later.
pub(super) async fn behind_if_slow<F: std::future::Future>(
    cluster: &Cluster,
    round: F,
) -> F::Output {
    tokio::pin!(round);
    tokio::select! {
        biased;
        out = &mut round => out,
        () = tokio::time::sleep(SHARE_FOR) => {
            cluster.behind.store(true, Ordering::Relaxed);
            round.await
        }
    }
}

/// Gives the forwards held or kept since before `cutoff` their own texts.
fn unpin(held: &mut Held, window: &mut Window, cutoff: Instant) {
    for entry in held.iter_mut().filter(|e| e.since <= cutoff) {
        entry.unpin();
    }
    window.unpin(cutoff);
}

/// Sends what is held, oldest first, in pipelines of at most [`BATCH`] items, the frames for
/// each node bundled ([`pipeline`]): over the node's direct link when one is in use, else
/// through Redis. A bundle no subscriber received goes back to the queue in its place, and so
/// does every later frame for the same node, so they stay in order; such a node's frames are
/// tried again only once `PUBSUB NUMSUB` shows it subscribed (one cheap command per node per
/// retry, rather than publishing its frames again and again). On a Redis error everything
/// stays held; on a direct link's, what was for that node (the link is dropped: its frames go
/// through Redis from the next round). A pipeline cut by an error may have run in part (or
/// whole, its reply lost): its frames go again with their numbers, and the receivers drop the
/// ones they have.
async fn send(
    cluster: &Cluster,
    queues: Queues<'_>,
    window: &mut Window,
    arena: &mut BytesMut,
    links: &mut Links,
) {
    let Queues { held, kept } = queues;
    let Some(mut conn) = cluster.conn().filter(|_| cluster.healthy()) else {
        return;
    };
    let mut publish = cluster.publish.lock().await;
    let Some(data) = publish.as_mut() else {
        return;
    };
    let mut waiting = match unheard_nodes(cluster, &mut conn, held).await {
        Ok(waiting) => waiting,
        Err(e) => {
            cluster.health.down(&e.to_string());
            return;
        }
    };
    kept.clear();
    // Each entry is moved once into the pipeline's slots and once out of them (into the
    // window or back to the queue): entries are moved, not pointed to, and each move copies
    // the whole entry.
    let mut ready: Vec<Option<Entry>> = Vec::with_capacity(held.len().min(BATCH));
    let mut redis_failed = false;
    while !held.is_empty() {
        ready.clear();
        for entry in held.drain(..held.len().min(BATCH)) {
            if entry.node().is_some_and(|n| waiting.contains(n)) {
                kept.push_back(entry);
            } else {
                ready.push(Some(entry));
            }
        }
        if ready.is_empty() {
            continue;
        }
        // What each pipeline's replies decide, applied once every pipeline (each borrowing
        // from `ready`) is sent.
        let mut outcomes: Vec<(Vec<Bundled>, Sent)> = Vec::new();
        // The membership items whose scripts Redis ran: never sent again.
        let mut ran: Vec<usize> = Vec::new();
        let steps = pipeline(cluster, &ready, arena, &|node| links.in_use(node));
        for step in steps {
            for (node, Pipe { pipe, bundles }) in step.direct {
                let sent = match links.conn(&node) {
                    Some(link) => tokio::time::timeout(cluster.command_timeout(), pipe.send(link))
                        .await
                        .unwrap_or_else(|_| Err(super::link::timed_out())),
                    None => Err(super::link::timed_out()),
                };
                match sent {
                    Ok(receivers) => outcomes.push((bundles, Sent::Heard(receivers))),
                    Err(e) => {
                        // Its frames, and the node's later ones this round, wait for the next
                        // round, which sends them through Redis.
                        links.fail(cluster, &node, &e.to_string());
                        waiting.insert(Arc::clone(&node));
                        outcomes.push((bundles, Sent::Again));
                    }
                }
            }
            let Pipe { pipe, bundles } = step.redis;
            if pipe.is_empty() {
                continue;
            }
            let sent = tokio::time::timeout(cluster.command_timeout(), pipe.exec(data))
                .await
                .unwrap_or_else(|_| Err(super::link::timed_out()));
            match sent {
                Ok(receivers) => {
                    outcomes.push((bundles, Sent::Heard(receivers)));
                    ran.extend(step.scripts);
                }
                Err(e) => {
                    cluster.health.down(&e.to_string());
                    redis_failed = true;
                    break;
                }
            }
        }
        for i in ran {
            ready[i] = None;
        }
        let mut out = 0;
        for (bundles, sent) in outcomes {
            match sent {
                Sent::Heard(receivers) => {
                    out += settle(&bundles, receivers, &mut ready, window, kept, &mut waiting);
                }
                Sent::Again => {
                    for bundle in &bundles {
                        kept.extend(bundle.frames.iter().filter_map(|&i| ready[i].take()));
                    }
                }
            }
        }
        health::frame_out(out);
        if redis_failed {
            // Whatever was not settled stays held, in order (the scripts of the pipeline that
            // failed with it: it may have run in part).
            kept.extend(ready.drain(..).flatten());
            kept.append(held);
            break;
        }
        // What is left in `ready` are the membership items Redis ran.
    }
    if redis_failed {
        // Cut mid-pipeline, its replies are out of step: the link opens a new one.
        *publish = None;
    }
    std::mem::swap(held, kept);
}

/// What became of one pipeline.
enum Sent {
    /// Sent; the `PUBLISH` replies, in order.
    Heard(Vec<i64>),
    /// Not sent (its direct link failed): its frames go again next round.
    Again,
}

/// The queues of a round: what is held, and where what stays held goes.
pub(super) struct Queues<'a> {
    held: &'a mut Held,
    kept: &'a mut Held,
}

/// Settles the bundles of one pipeline by their `receivers` (the `PUBLISH` replies, in
/// order): a bundle someone received is kept in the window until acknowledged; one nobody
/// received goes back to the queue, and its node waits ([`unheard_nodes`]). Returns how many
/// frames went out.
fn settle(
    bundles: &[Bundled],
    receivers: Vec<i64>,
    ready: &mut [Option<Entry>],
    window: &mut Window,
    kept: &mut Held,
    waiting: &mut HashSet<Arc<str>>,
) -> usize {
    let mut out = 0;
    for (bundle, heard) in bundles.iter().zip(receivers) {
        if heard > 0 {
            // Kept until the receiver says it has them: Redis may yet lose them.
            // (Acknowledgements are neither kept nor counted as frames out.)
            let numbered = bundle
                .frames
                .iter()
                .filter_map(|&i| ready[i].take().filter(|e| e.seq > 0));
            out += window.keep(&bundle.node, numbered);
            continue;
        }
        waiting.insert(Arc::clone(&bundle.node));
        for &i in &bundle.frames {
            if let Some(mut entry) = ready[i].take() {
                entry.unheard = true;
                kept.push_back(entry);
            }
        }
    }
    out
}

/// The nodes with frames that found no subscriber before and still have none: their frames
/// wait (in order) until they subscribe again.
async fn unheard_nodes(
    cluster: &Cluster,
    conn: &mut redis::aio::MultiplexedConnection,
    held: &Held,
) -> redis::RedisResult<HashSet<Arc<str>>> {
    let nodes: HashSet<Arc<str>> = held
        .iter()
        .filter(|e| e.unheard)
        .filter_map(|e| e.node().cloned())
        .collect();
    if nodes.is_empty() {
        return Ok(nodes);
    }
    let nodes: Vec<Arc<str>> = nodes.into_iter().collect();
    let mut cmd = redis::cmd("PUBSUB");
    cmd.arg("NUMSUB");
    for node in &nodes {
        cmd.arg(cluster.keys.channel(node));
    }
    let counts: Vec<(String, i64)> =
        tokio::time::timeout(cluster.command_timeout(), cmd.query_async(conn))
            .await
            .unwrap_or_else(|_| Err(super::link::timed_out()))?;
    Ok(nodes
        .into_iter()
        .zip(counts)
        .filter(|(_, (_, n))| *n == 0)
        .map(|(node, _)| node)
        .collect())
}

/// One bundle in a pipeline: its receiving node and the frames it holds (indices of the
/// pipeline's items), whose fate its `PUBLISH` reply decides.
struct Bundled {
    node: Arc<str>,
    frames: Vec<usize>,
}

/// `PUBLISH`es and their bundles, for one connection: Redis, or a node's direct link.
#[derive(Default)]
struct Pipe<'a> {
    pipe: resp::Pipeline<'a>,
    bundles: Vec<Bundled>,
}

/// What is sent in one go: the bundles for nodes whose direct link is in use, over their
/// links, then the Redis pipeline (the other bundles and any membership scripts), whose reply
/// is awaited before the next step. A bundle for a direct link queued after a script starts
/// a new step, so it is sent once Redis ran the script, as it would be through Redis.
#[derive(Default)]
struct Step<'a> {
    direct: Vec<(Arc<str>, Pipe<'a>)>,
    redis: Pipe<'a>,
    /// The membership items whose scripts `redis` holds (their places in the round's items).
    scripts: Vec<usize>,
}

/// The pipe of the last step for a bundle for `node` (a new step when it goes over a direct
/// link and the last step has a script).
fn pipe_for<'a, 's>(
    steps: &'s mut Vec<Step<'a>>,
    node: &Arc<str>,
    over_link: &dyn Fn(&Arc<str>) -> bool,
) -> &'s mut Pipe<'a> {
    let direct = over_link(node);
    if steps.last().is_none_or(|s| direct && !s.scripts.is_empty()) {
        steps.push(Step::default());
    }
    let last = steps.len() - 1;
    let step = &mut steps[last];
    if !direct {
        return &mut step.redis;
    }
    let at = match step.direct.iter().position(|(n, _)| n == node) {
        Some(at) => at,
        None => {
            step.direct.push((Arc::clone(node), Pipe::default()));
            step.direct.len() - 1
        }
    };
    &mut step.direct[at].1
}

/// The steps for `chunk`: a `PUBLISH` per bundle (whose reply, the receiver count, is kept),
/// the membership scripts with their replies ignored. The frames between two membership items
/// are grouped by receiving node, each node's in queue order, and bundled; a membership item
/// closes the open bundles first. Without direct links in use (`over_link` says which node's
/// frames go over its link): one step, one pipeline.
fn pipeline<'a>(
    cluster: &Cluster,
    chunk: &'a [Option<Entry>],
    arena: &mut BytesMut,
    over_link: &dyn Fn(&Arc<str>) -> bool,
) -> Vec<Step<'a>> {
    let mut steps = vec![Step::default()];
    // The frames since the last membership item, by node in order of first appearance.
    let mut open: Vec<(Arc<str>, Vec<usize>)> = Vec::new();
    for (i, entry) in chunk.iter().enumerate() {
        let Some(entry) = entry else { continue };
        let mut script = redis::pipe();
        match &entry.item {
            Outgoing::Frame { node, .. } => {
                match open.iter_mut().find(|(n, _)| n == node) {
                    Some((_, frames)) => frames.push(i),
                    None => open.push((Arc::clone(node), vec![i])),
                }
                continue;
            }
            Outgoing::Commit(commit) => {
                store::commit(&mut script, &cluster.keys, &cluster.node, commit);
            }
            Outgoing::Unclaim { room, session } => {
                store::unclaim(&mut script, &cluster.keys, &cluster.node, room, *session);
            }
            // Never held: handled where items are taken from the outbox.
            Outgoing::Discard | Outgoing::Forget(_) | Outgoing::Acked { .. } => continue,
        }
        bundle_open(cluster, chunk, &mut open, arena, &mut steps, over_link);
        if let Some(step) = steps.last_mut() {
            step.redis.pipe.commands(&script);
            step.scripts.push(i);
        }
    }
    bundle_open(cluster, chunk, &mut open, arena, &mut steps, over_link);
    steps
}

/// Publishes the `open` frames, one bundle per node (more when one passes [`BUNDLE_LIMIT`]).
fn bundle_open<'a>(
    cluster: &Cluster,
    chunk: &'a [Option<Entry>],
    open: &mut Vec<(Arc<str>, Vec<usize>)>,
    arena: &mut BytesMut,
    steps: &mut Vec<Step<'a>>,
    over_link: &dyn Fn(&Arc<str>) -> bool,
) {
    for (node, frames) in open.drain(..) {
        let channel = cluster.keys.channel(&node);
        let to = pipe_for(steps, &node, over_link);
        let mut publish = |bundle: BundleParts<'a>, frames: &[usize]| {
            to.pipe.publish_parts(channel.as_bytes(), bundle);
            to.bundles.push(Bundled {
                node: Arc::clone(&node),
                frames: frames.to_vec(),
            });
        };
        // The bundle's own bytes at once (its header, each frame's length and number, the
        // frames copied): grown frame by frame, the buffer was copied again at each doubling
        // (about a twentieth of a node's CPU in a cross-node run). A large body is not copied
        // but written from the frame the publisher keeps (a piece of the bundle of its own).
        let entries = || frames.iter().filter_map(|&i| chunk[i].as_ref());
        let size: usize = entries().map(own_size).sum();
        // A bundle passes its limit by the frame that closes it (written, then moved on): room
        // for that frame too, or the whole bundle was copied once more when it came.
        let largest = entries().map(own_size).max();
        let need = size.min(BUNDLE_LIMIT + largest.unwrap_or(0)) + 2 + cluster.node.len();
        if arena.capacity() < need {
            // A fresh buffer rather than `reserve`: growing the old one in place would copy
            // its whole previous capacity (realloc knows no length), for nothing.
            *arena = BytesMut::with_capacity(need);
        }
        let mut writer = PartsWriter::new(arena, &cluster.node, BUNDLE_LIMIT, SHARE_FROM);
        let mut first = 0;
        for (k, &i) in frames.iter().enumerate() {
            let Some(entry) = &chunk[i] else { continue };
            if let Some(full) = push_frame(&mut writer, entry) {
                publish(full, &frames[first..k]);
                first = k;
            }
        }
        if let Some(last) = writer.finish() {
            publish(last, &frames[first..]);
        }
    }
}

/// The bodies written from where they are rather than copied into their bundle: below this a
/// copy costs less than a piece of its own in the vectored write.
const SHARE_FROM: usize = 512;

/// The bytes `entry`'s frame takes in the bundle's own buffer: a large text's length and
/// number only ([`SHARE_FROM`]).
fn own_size(entry: &Entry) -> usize {
    match &entry.item {
        Outgoing::Frame {
            msg: OutMessage::Forward(body),
            ..
        } => 12 + body.own_len(),
        _ => frame_size(entry),
    }
}

/// About the bytes `entry`'s frame takes in a bundle: a forward's body and its length and
/// number, a JSON message's usual size.
pub(super) fn frame_size(entry: &Entry) -> usize {
    match &entry.item {
        Outgoing::Frame {
            msg: OutMessage::Forward(body),
            ..
        } => body.len() + 12,
        _ => 256,
    }
}

/// A forward's body as the sender's task leaves it for the publisher: the sender's own frame
/// text is not copied but kept with what precedes it in the body ([`forward_head`]), and
/// written to Redis from where it is; a small or re-rendered text is copied once, with its
/// head, into one buffer.
#[derive(Debug, Clone)]
pub struct ForwardBody {
    /// The body before the text, or the whole body when `text` is `None`.
    head: Box<[u8]>,
    /// The sender's frame, the rest of the body.
    text: Option<Original>,
}

impl ForwardBody {
    /// The body's bytes.
    pub(super) fn len(&self) -> usize {
        self.head.len() + self.text.as_ref().map_or(0, |t| t.len())
    }

    /// The body in one buffer of its own: the sender's text is copied, and its received frame
    /// no longer kept alive.
    fn unpin(&mut self) {
        // A text rendered for the forward is a buffer of its own already.
        let rendered = |t: &Original| t.downcast_ref::<String>().is_some();
        if let Some(text) = self.text.take_if(|t| !rendered(t)) {
            let mut whole = Vec::with_capacity(self.head.len() + text.len());
            whole.extend_from_slice(&self.head);
            whole.extend_from_slice(text.as_bytes());
            self.head = whole.into_boxed_slice();
        }
    }

    /// Whether the text is kept apart from the head (not copied into one buffer with it).
    #[cfg(test)]
    pub(super) fn apart(&self) -> bool {
        self.text.is_some()
    }

    /// Whether the text is `original`'s own (not a copy).
    #[cfg(test)]
    pub(super) fn shares(&self, original: &Original) -> bool {
        self.text
            .as_ref()
            .is_some_and(|t| std::ptr::eq(t.as_str(), original.as_str()))
    }

    /// The bytes copied into a bundle's own buffer: the head, or the whole body when it is
    /// small (as [`PartsWriter`] does).
    fn own_len(&self) -> usize {
        match &self.text {
            Some(_) => self.head.len(),
            None if self.head.len() >= SHARE_FROM => 0,
            None => self.head.len(),
        }
    }
}

/// The body of a forward of `envelope` to the remote session `to`, a peer of the sender's
/// dialect, rendered on the sender's task; `None` for an event without a wire text or a room
/// (it crosses as an event: [`OutMessage::Relay`]). The text is the receiving peer's frame
/// when its rendering reads nothing of the receiving session (the sender's own text when it
/// goes on unchanged, kept rather than copied while `share`: [`Cluster::keeping_up`]), else
/// the sender's text for the receiver to decode again.
pub fn forward(to: u64, envelope: &Envelope, share: bool) -> Option<ForwardBody> {
    let original = envelope.original.as_ref()?;
    let room = envelope.event.room()?;
    let (how, text) = prepare_forward(envelope.from.dialect, original.as_str(), &envelope.event);
    let fwd = ForwardRef {
        to,
        dialect: envelope.from.dialect,
        mode: envelope.from.mode,
        how,
        room,
        original: &text,
    };
    // Kept as it is: the original when the text is all of it, or a text rendered here (an Ant
    // description gains its `idMapping`); anything else is copied with its head.
    let whole_original = matches!(text, Cow::Borrowed(t) if std::ptr::eq(t, original.as_str()));
    let keep = (whole_original && share) || matches!(text, Cow::Owned(_));
    if text.len() < SHARE_FROM || !keep {
        return Some(ForwardBody {
            head: forward_body(&fwd),
            text: None,
        });
    }
    let head = forward_head(&fwd);
    let text = match text {
        Cow::Borrowed(_) => original.clone(),
        Cow::Owned(rendered) => Original::from(rendered),
    };
    Some(ForwardBody {
        head,
        text: Some(text),
    })
}

fn remote(peer: &Peer) -> RemotePeer {
    RemotePeer {
        session: peer.session.0,
        dialect: peer.dialect,
        mode: peer.mode,
    }
}

/// Adds `entry`'s frame to the bundle (a full bundle comes back, see [`BundleWriter::push`]).
/// To a peer of the sender's dialect only a text crosses, in the body its sender's task
/// rendered ([`forward`]); to another dialect only the event.
fn push_frame<'a>(writer: &mut PartsWriter<'a, '_>, entry: &'a Entry) -> Option<BundleParts<'a>> {
    let Outgoing::Frame { msg, .. } = &entry.item else {
        return None;
    };
    let seq = Some(entry.seq).filter(|&s| s > 0);
    let message = match msg {
        OutMessage::Ack(got, resend) => NodeMessage::Ack {
            got: *got,
            resend: *resend,
        },
        OutMessage::Reset(next) => NodeMessage::Reset { next: *next },
        OutMessage::Joined(joined) => NodeMessage::Joined {
            room: joined.0.clone(),
            peer: remote(&joined.1),
        },
        OutMessage::Left(room, session) => NodeMessage::Left {
            room: room.clone(),
            session: session.0,
        },
        OutMessage::Forward(body) => {
            return match &body.text {
                Some(text) => writer.push_split(seq, &body.head, text.as_bytes()),
                None => writer.push_body(seq, &body.head),
            };
        }
        OutMessage::Relay(to, envelope) => NodeMessage::Relay {
            to: *to,
            from: remote(&envelope.from),
            event: envelope.event.clone(),
            original: None,
        },
        OutMessage::Deliver(to, event) => NodeMessage::Deliver {
            to: *to,
            event: (**event).clone(),
        },
        OutMessage::Media(request) => NodeMessage::Media {
            from: RemotePeer {
                session: request.session.0,
                dialect: request.dialect,
                mode: JoinMode::Conference,
            },
            app: request.app.clone(),
            room: request.room.clone(),
            event: request.event.clone(),
        },
        OutMessage::MediaClosed(session) => NodeMessage::MediaClosed { session: session.0 },
    };
    writer.push(seq, FrameRef::Message(&message))
}

#[cfg(test)]
mod tests;
