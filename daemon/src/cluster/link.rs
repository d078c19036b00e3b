//! The node's connection to Redis: connects (and reconnects), subscribes to the node's channel,
//! heartbeats, finds dead nodes, and hands received frames to the gateway.
//!
//! One loop per node. Each pass connects a command connection and a subscription, re-registers
//! the node's members, then serves until either connection fails; it then marks the node
//! degraded and retries every heartbeat interval.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use switchboard_plugin_api::SessionId;
use switchboard_protocol::cluster::{
    BundleReader, Forwarding, FrameBody, FrameError, NodeMessage, RemotePeer, rebuild_event,
};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::forwarded::{RemoteForwards, relay_envelope};
use super::pubsub::{Pushed, Subscription};
use super::recovery::{LINK_LOST, Outage, recover, reregister};
use super::replay::{self, Receipts, Verdict};
use super::resp::RespConn;
use super::{Cluster, direct, health, publisher, store};
use crate::envelope::Original;
use crate::gateway::{Gateway, Outbound};

/// Starts the publisher and the link loop on `tracker`.
pub fn start(cluster: &Arc<Cluster>, gateway: &Arc<Gateway>, tracker: &TaskTracker) {
    let rx = cluster
        .outbox_rx
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(rx) = rx {
        tracker.spawn(publisher::run(Arc::clone(cluster), rx));
    }
    if cluster.direct().is_some() {
        tracker.spawn(direct::listen::run(Arc::clone(cluster)));
        tracker.spawn(direct::dial::run(Arc::clone(cluster)));
    }
    tracker.spawn(run(Arc::clone(cluster), Arc::clone(gateway)));
}

/// Why a pass of the loop ended.
enum Ended {
    Stopped,
    Lost(String),
}

async fn run(cluster: Arc<Cluster>, gateway: Arc<Gateway>) {
    let interval = Duration::from_millis(cluster.config.heartbeat_interval_ms);
    let mut registered_once = false;
    let mut first_failure_logged = false;
    let mut outage = Outage::default();
    let mut seen = Receipts::default();
    // Bundles that came over direct links (none without `[cluster.direct]`).
    let mut inbound = cluster.direct().and_then(direct::Direct::take_inbound);
    loop {
        let ended = match connect(&cluster).await {
            Ok((conn, pubsub, publish)) => {
                match recover(&cluster, &gateway, conn.clone(), registered_once).await {
                    Ok(()) => {
                        // The conference streams this node lists, in case Redis lost them (or
                        // never had them: listed before Redis first answered).
                        cluster.catalog.reassert();
                        outage.check(&cluster, &gateway);
                        outage = Outage::default();
                        // After an outage the other nodes come back one by one (each retries
                        // every heartbeat interval) and their heartbeat keys may have expired
                        // or vanished with Redis's data: none is taken for dead before it
                        // had a full node TTL to re-register.
                        let grace = if registered_once {
                            Instant::now()
                                + Duration::from_millis(cluster.config.node_ttl_ms)
                                + interval
                        } else {
                            Instant::now()
                        };
                        cluster.set_conn(Some(conn.clone()));
                        *cluster.publish.lock().await = Some(publish);
                        cluster.health.set_up(&cluster.node);
                        if registered_once {
                            // What Redis took for the old subscription and never wrote to it
                            // is gone: each sender publishes it again.
                            seen.resubscribed(&cluster, cluster.replay_window());
                        }
                        registered_once = true;
                        let subscribed = Subscribed {
                            pubsub,
                            inbound: &mut inbound,
                        };
                        serve(
                            &cluster, &gateway, conn, subscribed, interval, grace, &mut seen,
                        )
                        .await
                    }
                    Err(e) => Ended::Lost(e.to_string()),
                }
            }
            Err(e) => Ended::Lost(e.to_string()),
        };
        match ended {
            Ended::Stopped => return,
            Ended::Lost(why) => {
                cluster.set_conn(None);
                if !registered_once && !first_failure_logged {
                    first_failure_logged = true;
                    warn!(error = %why, redis = %cluster.config.redacted_target(),
                        "Cluster: cannot reach Redis; serving local rooms only until it answers.");
                }
                cluster.health.down(&why);
                outage.since.get_or_insert_with(Instant::now);
            }
        }
        // Until the next try, what other nodes send over direct links is still delivered:
        // unread, their links would stall and fail over to the Redis this node cannot reach.
        let retry = tokio::time::sleep(interval);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                () = cluster.stop.cancelled() => return,
                () = &mut retry => break,
                Some(bundle) = next_direct(&mut inbound) => {
                    receive(&cluster, &gateway, &mut seen, &bundle);
                }
            }
        }
        outage.check(&cluster, &gateway);
    }
}

/// Connects once at start-up: credentials or a certificate the server refuses are a
/// configuration error the operator must see at once (the gateway does not start), while a
/// Redis that does not answer yet is waited for, as later outages are.
pub async fn check_access(cluster: &Cluster) -> Result<(), redis::RedisError> {
    match connect(cluster).await {
        Err(e) if super::connect::is_refusal(&e) => Err(e),
        _ => Ok(()),
    }
}

/// The connections of one pass: commands (redis-rs), the subscription and the publisher's.
type Connections = (MultiplexedConnection, Subscription, RespConn);

async fn connect(cluster: &Cluster) -> redis::RedisResult<Connections> {
    let timeout = cluster.command_timeout();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    // Through Sentinel this asks for the current primary (every reconnect: a failover moves
    // the node to the new one).
    let client = tokio::time::timeout(timeout, cluster.target.client())
        .await
        .map_err(|_| timed_out())??;
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    cluster.catalog.use_server(&client);
    let ca_file = cluster.config.redis_ca_file.as_deref();
    let channel = cluster.keys.channel(&cluster.node);
    let pubsub = tokio::time::timeout(timeout, Subscription::open(&client, ca_file, channel))
        .await
        .map_err(|_| timed_out())??;
    let publish = tokio::time::timeout(timeout, RespConn::connect(&client, ca_file))
        .await
        .map_err(|_| timed_out())??;
    Ok((conn, pubsub, publish))
}

pub(super) fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer in time",
    ))
}

pub(super) fn heartbeat(pipe: &mut redis::Pipeline, cluster: &Cluster) {
    pipe.cmd("SET")
        .arg(cluster.keys.alive(&cluster.node))
        .arg(1)
        .arg("PX")
        .arg(cluster.config.node_ttl_ms)
        .ignore();
    pipe.cmd("SADD")
        .arg(cluster.keys.nodes())
        .arg(&*cluster.node)
        .ignore();
}

/// Where frames from other nodes come from while Redis is up: the node's channel, and the
/// direct links.
struct Subscribed<'a> {
    pubsub: Subscription,
    inbound: &'a mut Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

/// The next bundle that came over a direct link; never, without direct links.
async fn next_direct(inbound: &mut Option<tokio::sync::mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match inbound {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn serve(
    cluster: &Cluster,
    gateway: &Gateway,
    mut conn: MultiplexedConnection,
    subscribed: Subscribed<'_>,
    interval: Duration,
    grace: Instant,
    seen: &mut Receipts,
) -> Ended {
    let Subscribed {
        mut pubsub,
        inbound,
    } = subscribed;
    let mut suspects = HashSet::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acks = tokio::time::interval(replay::ACK_EVERY);
    acks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let patience = replay::patience(cluster);
    let why = loop {
        tokio::select! {
            () = cluster.stop.cancelled() => return Ended::Stopped,
            pushed = pubsub.next() => match pushed {
                Ok(Some(Pushed::Message(bundle))) => receive(cluster, gateway, seen, &bundle),
                Ok(Some(Pushed::Subscribed)) => {}
                Ok(Some(Pushed::Unsubscribed) | None) => break "subscription closed".into(),
                Err(e) => break e.to_string(),
            },
            Some(bundle) = next_direct(inbound) => receive(cluster, gateway, seen, &bundle),
            _ = acks.tick() => acknowledge(cluster, gateway, seen, patience),
            _ = ticker.tick() => {
                let settled = Instant::now() >= grace;
                if let Err(e) = tick(cluster, gateway, &mut conn, settled).await {
                    break e.to_string();
                }
                if !settled {
                    suspects.clear();
                } else if let Err(e) = sweep(cluster, gateway, &mut conn, &mut suspects).await {
                    break e.to_string();
                }
                if !cluster.healthy() {
                    // A command elsewhere failed: reconnect and re-register.
                    break "a command failed".into();
                }
            }
        }
    };
    drain(cluster, gateway, seen, &mut pubsub).await;
    Ended::Lost(why)
}

/// The subscription is dropped for a new one, and what Redis handed it is delivered first: its
/// senders saw `PUBLISH` reach a subscriber and will not send it again. What is already in
/// the client is not enough: frames may still be in the socket, unparsed, and a Redis that
/// is alive goes on sending until it is told to stop. So: `UNSUBSCRIBE`; once Redis answers, it
/// sends nothing more on this connection and everything it sent before is read (the client
/// reads in order). Without an answer (the connection is gone, or Redis frozen), what the
/// connection still yields is read until it ends. All of it within one command timeout.
async fn drain(
    cluster: &Cluster,
    gateway: &Gateway,
    seen: &mut Receipts,
    pubsub: &mut Subscription,
) {
    let deadline = Instant::now() + cluster.command_timeout();
    // Unanswered or not, what the connection yields is read until Redis confirms, the
    // connection ends, or the deadline.
    let _ = tokio::time::timeout_at(deadline, pubsub.unsubscribe()).await;
    pubsub
        .drain(deadline, |bundle| receive(cluster, gateway, seen, bundle))
        .await;
}

/// Acknowledges what came from each sender, and ends the calls with the nodes whose frames
/// this node can no longer replay to them ([`replay`]).
fn acknowledge(cluster: &Cluster, gateway: &Gateway, seen: &mut Receipts, patience: Duration) {
    seen.tick(cluster, patience);
    for node in cluster.take_window_lost() {
        gateway.remote().end_calls_with(&node, LINK_LOST);
    }
}

/// One heartbeat: refresh this node's key, check that Redis still has its data, then (once
/// `settled`, past the grace after an outage) find nodes whose key expired.
async fn tick(
    cluster: &Cluster,
    gateway: &Gateway,
    conn: &mut MultiplexedConnection,
    settled: bool,
) -> redis::RedisResult<()> {
    let keys = &cluster.keys;
    let timeout = cluster.command_timeout();
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.alive(&cluster.node))
        .arg(1)
        .arg("PX")
        .arg(cluster.config.node_ttl_ms)
        .ignore();
    pipe.cmd("SADD").arg(keys.nodes()).arg(&*cluster.node);
    pipe.cmd("SMEMBERS").arg(keys.nodes());
    pipe.cmd("GET").arg(keys.epoch());
    let (added, registered, epoch): (i64, Vec<String>, Option<String>) =
        tokio::time::timeout(timeout, pipe.query_async(conn))
            .await
            .map_err(|_| timed_out())??;
    same_epoch(cluster, epoch)?;
    if added == 1 {
        // This node had been taken for dead (it missed heartbeats, e.g. frozen) and reaped: the
        // others dropped its peers. Agree with them, then register the members afresh.
        warn!(node = %cluster.node, "Cluster: this node was taken for dead; re-registering.");
        cluster.discard_held();
        gateway.remote().end_cross_node_calls(LINK_LOST);
        cluster.homing().end_all();
        reregister(cluster, gateway, conn).await?;
        cluster.catalog.reassert();
    }
    tokio::time::timeout(timeout, cluster.homing().refresh(conn))
        .await
        .map_err(|_| timed_out())??;
    if let Some(direct) = cluster.direct() {
        direct::refresh(cluster, direct, conn, &registered).await?;
    }
    if !settled {
        return Ok(());
    }
    let mut candidates: HashSet<Arc<str>> = registered.into_iter().map(Arc::from).collect();
    candidates.extend(gateway.remote().proxy_nodes());
    candidates.extend(cluster.homing().nodes());
    candidates.remove(&cluster.node);
    if candidates.is_empty() {
        return Ok(());
    }
    let candidates: Vec<Arc<str>> = candidates.into_iter().collect();
    // The epoch is read in the same transaction as the heartbeat keys: Redis emptied after the
    // check above (a FLUSHALL between two round trips) would otherwise make every other node
    // look dead and end their calls, where the nodes only need to re-assert what they hold.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for node in &candidates {
        pipe.cmd("EXISTS").arg(keys.alive(node));
    }
    pipe.cmd("GET").arg(keys.epoch());
    let replies: Vec<redis::Value> = tokio::time::timeout(timeout, pipe.query_async(conn))
        .await
        .map_err(|_| timed_out())??;
    let (alive, epoch): (Vec<bool>, _) = split_epoch(replies)?;
    same_epoch(cluster, epoch)?;
    let dead: Vec<&Arc<str>> = candidates
        .iter()
        .zip(alive)
        .filter(|(_, alive)| !alive)
        .map(|(n, _)| n)
        .collect();
    if dead.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for node in &dead {
        store::reap(&mut pipe, keys, node);
    }
    tokio::time::timeout(timeout, pipe.query_async::<()>(conn))
        .await
        .map_err(|_| timed_out())??;
    for node in dead {
        cluster.send(super::Outgoing::Forget(Arc::clone(node)));
        cluster.homing().node_dead(node);
        if gateway.remote().drop_node(node) > 0 {
            health::node_failed(node);
        }
    }
    Ok(())
}

/// Fails (so the link reconnects and re-asserts, as after a restart) when Redis's epoch is not
/// the one this node registered under: Redis lost its data without dropping the connections
/// (FLUSHALL, a failover behind a proxy).
fn same_epoch(cluster: &Cluster, epoch: Option<String>) -> redis::RedisResult<()> {
    let known = cluster
        .epoch
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if epoch != known {
        return Err(redis::RedisError::from(std::io::Error::other(
            "Redis lost its data",
        )));
    }
    Ok(())
}

/// A transaction's replies, the last of which is the epoch (`GET`), split from the others.
fn split_epoch<T: redis::FromRedisValue>(
    mut replies: Vec<redis::Value>,
) -> redis::RedisResult<(T, Option<String>)> {
    let epoch = replies.pop().unwrap_or(redis::Value::Nil);
    let epoch = redis::from_redis_value(epoch)?;
    let rest = redis::from_redis_value(redis::Value::Array(replies))?;
    Ok((rest, epoch))
}

/// Anti-entropy: a proxy whose record is gone from its room's list in Redis on two heartbeats
/// in a row leaves (through the pipeline, so partners are told). This catches a `left` frame
/// lost while Redis was unreachable; the owner rewrote its records when Redis returned. Two
/// sweeps, because a `left` frame published just before the record went may still be unread.
async fn sweep(
    cluster: &Cluster,
    gateway: &Gateway,
    conn: &mut MultiplexedConnection,
    suspects: &mut HashSet<(SessionId, String)>,
) -> redis::RedisResult<()> {
    let rooms = gateway.remote().proxy_rooms();
    if rooms.is_empty() {
        suspects.clear();
        return Ok(());
    }
    // With the epoch, atomically: lists read from a Redis emptied since the last heartbeat are
    // no evidence against the proxies (see `tick`).
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (room, _) in &rooms {
        pipe.cmd("LRANGE")
            .arg(cluster.keys.room(room))
            .arg(0)
            .arg(-1);
    }
    pipe.cmd("GET").arg(cluster.keys.epoch());
    let replies: Vec<redis::Value> =
        tokio::time::timeout(cluster.command_timeout(), pipe.query_async(conn))
            .await
            .map_err(|_| timed_out())??;
    let (lists, epoch): (Vec<Vec<String>>, _) = split_epoch(replies)?;
    same_epoch(cluster, epoch)?;
    let mut missing = HashSet::new();
    for ((room, proxies), list) in rooms.iter().zip(lists) {
        let listed: Vec<_> = list.iter().filter_map(|r| store::parse_record(r)).collect();
        for (id, remote) in proxies {
            let present = listed
                .iter()
                .any(|(node, peer)| *node == remote.node && peer.session == remote.session);
            if !present {
                missing.insert((*id, room.clone()));
            }
        }
    }
    for (id, room) in missing.intersection(suspects) {
        debug!(room = %room, "Cluster: a remote member's record is gone; it leaves.");
        gateway.remote().proxy_leaves(*id, room);
    }
    *suspects = missing.difference(suspects).cloned().collect();
    Ok(())
}

/// Hands the frames of one received bundle to the gateway, one at a time in order. The bundle
/// is read in place: a forward's text stays a slice of it. It is read whole first (the order
/// and duplicate checks, acknowledgements and resets taken in order), so that its forwards
/// for this node's sessions share one [`RemoteForwards`]; then every frame is handed on, in
/// order.
fn receive(cluster: &Cluster, gateway: &Gateway, seen: &mut Receipts, bundle: &Bytes) {
    let reader = match BundleReader::new(bundle) {
        Ok(reader) => reader,
        Err(e) => {
            health::frame_dropped();
            refused(&mut seen.other_version_logged, &e);
            return;
        }
    };
    if reader.node() == &*cluster.node {
        return;
    }
    let node: Arc<str> = Arc::from(reader.node());
    let now = Instant::now();
    let frames = expected_frames(bundle.len());
    let mut forwards = RemoteForwards::new(bundle.clone(), frames);
    let mut handed = Vec::with_capacity(frames);
    let mut fresh = 0;
    let mut sender = seen.sender(&node);
    for frame in reader {
        let (seq, body) = match frame {
            Ok(frame) => frame,
            Err(e) => {
                health::frame_dropped();
                refused(sender.other_version_logged, &e);
                continue;
            }
        };
        match sender.check(cluster, seq, now) {
            Verdict::Next => {}
            Verdict::Again => {
                debug!(node = %node, "Cluster: a frame published again; dropped.");
                health::frame_duplicate();
                continue;
            }
            Verdict::Ahead => {
                health::frame_ahead();
                continue;
            }
        }
        fresh += 1;
        match body {
            FrameBody::Forward {
                to,
                dialect,
                mode,
                how,
                room,
                original,
            } => {
                let from = RemotePeer {
                    session: 0,
                    dialect,
                    mode,
                };
                if let Some(frame) = forward(&mut forwards, bundle, to, from, how, room, original) {
                    handed.push(frame);
                }
            }
            FrameBody::Message(NodeMessage::Ack { got, resend }) => {
                cluster.acked(Arc::clone(&node), got, resend);
            }
            FrameBody::Message(NodeMessage::Reset { next }) => sender.reset(next),
            FrameBody::Message(msg) => handed.push(Handed::Message(Box::new(msg))),
        }
    }
    health::frames_in(fresh);
    let forwards = Arc::new(forwards);
    for frame in handed {
        match frame {
            Handed::Forward(to, at) => gateway
                .registry()
                .deliver_remote(SessionId(to), Outbound::Remote(Arc::clone(&forwards), at)),
            Handed::Relay(relay) => {
                let (to, from, event, original) = *relay;
                relay_here(gateway, to, from, event, Some(original));
            }
            Handed::Message(msg) => message(cluster, gateway, &node, *msg),
        }
    }
}

/// About how many frames a bundle of `len` bytes holds, so that the lists of a bundle's frames
/// seldom grow: a forward under load is a signal of a few hundred bytes to a few KiB.
fn expected_frames(len: usize) -> usize {
    (len / 512).clamp(8, 1024)
}

/// What a frame of a received bundle hands on. The rare large ones boxed: a bundle's list of
/// them is mostly forwards.
enum Handed {
    /// The forward at this place of the bundle's [`RemoteForwards`], for session `to`.
    Forward(u64, u32),
    /// A forward decoded again here ([`Forwarding::Decode`]), as a relay.
    Relay(Box<(u64, RemotePeer, switchboard_protocol::Event, Original)>),
    /// Any other message.
    Message(Box<NodeMessage>),
}

/// Logs a bundle or frame this node cannot read; one of another node protocol version only the
/// first time (every frame of such a node is counted as dropped).
fn refused(logged: &mut bool, e: &FrameError) {
    if matches!(e, FrameError::Version { .. }) {
        if !std::mem::replace(logged, true) {
            warn!(error = %e, "Cluster: frames from a node of another release are dropped (counted); upgrade the nodes of a cluster together.");
        }
        return;
    }
    warn!(error = %e, "Cluster: unreadable frame from another node dropped.");
}

/// A peer's signal forwarded by another node for session `to` (`original`, a slice of
/// `bundle`): added to the bundle's `forwards` as the sending node prepared it, or decoded
/// again when that node left its rendering to this one ([`Forwarding::Decode`]). `None` for
/// one that is dropped (counted).
fn forward(
    forwards: &mut RemoteForwards,
    bundle: &Bytes,
    to: u64,
    from: RemotePeer,
    how: Forwarding,
    room: &str,
    original: &[u8],
) -> Option<Handed> {
    let text = match Utf8Bytes::try_from(bundle.slice_ref(original)) {
        Ok(text) => text,
        Err(e) => {
            health::frame_dropped();
            warn!(error = %e, "Cluster: a forwarded frame from another node is not UTF-8; dropped.");
            return None;
        }
    };
    let (kind, literal) = match how {
        Forwarding::Frame(kind) => (kind, false),
        Forwarding::Literal(kind) => (kind, true),
        Forwarding::Decode => {
            let event = match rebuild_event(from.dialect, room, text.as_str()) {
                Ok(event) => event,
                Err(e) => {
                    health::frame_dropped();
                    warn!(error = %e, "Cluster: a forwarded frame from another node does not decode; dropped.");
                    return None;
                }
            };
            return Some(Handed::Relay(Box::new((
                to,
                from,
                event,
                Original::new(text),
            ))));
        }
    };
    match forwards.push(from.dialect, from.mode, kind, literal, room, text) {
        Some(at) => Some(Handed::Forward(to, at)),
        None => {
            health::frame_dropped();
            None
        }
    }
}

/// Hands a relay from another node's peer to session `to` of this node.
fn relay_here(
    gateway: &Gateway,
    to: u64,
    from: RemotePeer,
    event: switchboard_protocol::Event,
    original: Option<Original>,
) {
    let envelope = relay_envelope(from.dialect, from.mode, event, original);
    gateway
        .registry()
        .deliver_remote(SessionId(to), Outbound::Relay(Arc::new(envelope)));
}

/// A frame other than a forward.
fn message(cluster: &Cluster, gateway: &Gateway, node: &Arc<str>, msg: NodeMessage) {
    match msg {
        NodeMessage::Joined { room, peer } => gateway.remote().remote_joined(node, &room, peer),
        NodeMessage::Left { room, session } => gateway.remote().remote_left(node, &room, session),
        NodeMessage::Relay {
            to,
            from,
            event,
            original,
        } => relay_here(gateway, to, from, event, original.map(Original::from)),
        // Travels in the binary form only (the reader never yields it as a message); the
        // acknowledgements are taken in `receive`.
        NodeMessage::Forward { .. } | NodeMessage::Ack { .. } | NodeMessage::Reset { .. } => {
            health::frame_dropped();
        }
        NodeMessage::Deliver { to, event } => {
            gateway
                .registry()
                .deliver_remote(SessionId(to), Outbound::event(event));
        }
        NodeMessage::Media {
            from,
            app,
            room,
            event,
        } => cluster.homing().receive(node, from, app, room, event),
        NodeMessage::MediaClosed { session } => cluster.homing().remote_closed(node, session),
    }
}
