//! The node's connection to Redis: connects (and reconnects), subscribes to the node's channel,
//! heartbeats, finds dead nodes, and hands received frames to the gateway.
//!
//! One loop per node. Each pass connects a command connection and a subscription, re-registers
//! the node's members, then serves until either connection fails; it then marks the node
//! degraded and retries every heartbeat interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use switchboard_plugin_api::SessionId;
use switchboard_protocol::cluster::{
    BundleReader, Forwarding, FrameBody, FrameError, NodeMessage, RemotePeer, rebuild_event,
};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::forwarded::{RemoteForward, relay_envelope};
use super::recovery::{LINK_LOST, Outage, recover};
use super::{Cluster, health, publisher, store};
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
    let mut seen = Seen::default();
    loop {
        let ended = match connect(&cluster).await {
            Ok((conn, pubsub)) => {
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
                        registered_once = true;
                        cluster.set_conn(Some(conn.clone()));
                        cluster.health.set_up(&cluster.node);
                        serve(&cluster, &gateway, conn, pubsub, interval, grace, &mut seen).await
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
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
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

async fn connect(
    cluster: &Cluster,
) -> redis::RedisResult<(MultiplexedConnection, redis::aio::PubSub)> {
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
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    tokio::time::timeout(
        timeout,
        pubsub.subscribe(cluster.keys.channel(&cluster.node)),
    )
    .await
    .map_err(|_| timed_out())??;
    Ok((conn, pubsub))
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

async fn serve(
    cluster: &Cluster,
    gateway: &Gateway,
    mut conn: MultiplexedConnection,
    pubsub: redis::aio::PubSub,
    interval: Duration,
    grace: Instant,
    seen: &mut Seen,
) -> Ended {
    let (mut sink, mut messages) = pubsub.split();
    let mut suspects = HashSet::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = loop {
        tokio::select! {
            () = cluster.stop.cancelled() => return Ended::Stopped,
            msg = messages.next() => match msg {
                Some(msg) => take_message(cluster, gateway, seen, &msg),
                None => return Ended::Lost("subscription closed".into()),
            },
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
    drain(cluster, gateway, seen, &mut sink, &mut messages).await;
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
    seen: &mut Seen,
    sink: &mut redis::aio::PubSubSink,
    messages: &mut redis::aio::PubSubStream,
) {
    let deadline = Instant::now() + cluster.command_timeout();
    let channel = cluster.keys.channel(&cluster.node);
    if let Ok(Ok(())) = tokio::time::timeout_at(deadline, sink.unsubscribe(&channel)).await {
        while let Some(Some(msg)) = messages.next().now_or_never() {
            take_message(cluster, gateway, seen, &msg);
        }
        return;
    }
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, messages.next()).await {
        take_message(cluster, gateway, seen, &msg);
    }
}

/// One pub/sub message: a bundle of frames from another node.
fn take_message(cluster: &Cluster, gateway: &Gateway, seen: &mut Seen, msg: &redis::Msg) {
    match msg.get_payload::<Bytes>() {
        Ok(bundle) => receive(cluster, gateway, seen, &bundle),
        Err(e) => {
            health::frame_dropped();
            warn!(error = %e, "Cluster: a pub/sub message that is not a bundle dropped.");
        }
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
    let known = cluster
        .epoch
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if epoch != known {
        // Redis lost its data without dropping the connections (FLUSHALL, a failover behind a
        // proxy): reconnect and re-assert, as after a restart.
        return Err(redis::RedisError::from(std::io::Error::other(
            "Redis lost its data",
        )));
    }
    if added == 1 {
        // This node had been taken for dead (it missed heartbeats, e.g. frozen) and reaped: the
        // others dropped its peers. Agree with them, then register the members afresh.
        warn!(node = %cluster.node, "Cluster: this node was taken for dead; re-registering.");
        cluster.discard_held();
        gateway.dispatcher().end_cross_node_calls(LINK_LOST);
        cluster.homing().end_all();
        let members = gateway.dispatcher().local_members();
        let mut pipe = redis::pipe();
        pipe.atomic();
        store::reap(&mut pipe, keys, &cluster.node);
        store::register(&mut pipe, keys, &cluster.node, &members);
        heartbeat(&mut pipe, cluster);
        tokio::time::timeout(timeout, pipe.query_async::<()>(conn))
            .await
            .map_err(|_| timed_out())??;
        cluster.catalog.reassert();
    }
    tokio::time::timeout(timeout, cluster.homing().refresh(conn))
        .await
        .map_err(|_| timed_out())??;
    if !settled {
        return Ok(());
    }
    let mut candidates: HashSet<Arc<str>> = registered.into_iter().map(Arc::from).collect();
    candidates.extend(gateway.dispatcher().proxy_nodes());
    candidates.extend(cluster.homing().nodes());
    candidates.remove(&cluster.node);
    if candidates.is_empty() {
        return Ok(());
    }
    let candidates: Vec<Arc<str>> = candidates.into_iter().collect();
    let mut pipe = redis::pipe();
    for node in &candidates {
        pipe.cmd("EXISTS").arg(keys.alive(node));
    }
    let alive: Vec<bool> = tokio::time::timeout(timeout, pipe.query_async(conn))
        .await
        .map_err(|_| timed_out())??;
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
        if gateway.dispatcher().drop_node(node) > 0 {
            health::node_failed(node);
        }
    }
    Ok(())
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
    let rooms = gateway.dispatcher().proxy_rooms();
    if rooms.is_empty() {
        suspects.clear();
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (room, _) in &rooms {
        pipe.cmd("LRANGE")
            .arg(cluster.keys.room(room))
            .arg(0)
            .arg(-1);
    }
    let lists: Vec<Vec<String>> =
        tokio::time::timeout(cluster.command_timeout(), pipe.query_async(conn))
            .await
            .map_err(|_| timed_out())??;
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
        gateway.dispatcher().proxy_leaves(*id, room);
    }
    *suspects = missing.difference(suspects).cloned().collect();
    Ok(())
}

/// The highest frame number received from each sending node (instance): a frame at or below it
/// was published again after an outage and is already here. Also whether a bundle of another
/// node protocol version was logged (once: a node of another release sends many).
#[derive(Default)]
struct Seen {
    last: HashMap<Arc<str>, u64>,
    other_version_logged: bool,
}

impl Seen {
    /// Whether `seq` from `node` is new; notes it.
    fn fresh(&mut self, node: &str, seq: Option<u64>) -> bool {
        let Some(seq) = seq else {
            return true;
        };
        match self.last.get_mut(node) {
            Some(last) if seq <= *last => false,
            Some(last) => {
                *last = seq;
                true
            }
            None => {
                self.last.insert(Arc::from(node), seq);
                true
            }
        }
    }
}

/// Hands the frames of one received bundle to the gateway, one at a time in order. The bundle
/// is read in place: a forward's text stays a slice of it.
fn receive(cluster: &Cluster, gateway: &Gateway, seen: &mut Seen, bundle: &Bytes) {
    let reader = match BundleReader::new(bundle) {
        Ok(reader) => reader,
        Err(e) => {
            health::frame_dropped();
            refused(seen, &e);
            return;
        }
    };
    if reader.node() == &*cluster.node {
        return;
    }
    let node: Arc<str> = Arc::from(reader.node());
    let mut fresh = 0;
    for frame in reader {
        let (seq, body) = match frame {
            Ok(frame) => frame,
            Err(e) => {
                health::frame_dropped();
                refused(seen, &e);
                continue;
            }
        };
        if !seen.fresh(&node, seq) {
            debug!(node = %node, "Cluster: a frame published again after an outage; dropped.");
            health::frame_duplicate();
            continue;
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
            } => forward(
                gateway,
                bundle,
                to,
                RemotePeer {
                    session: 0,
                    dialect,
                    mode,
                },
                how,
                room,
                original,
            ),
            FrameBody::Message(msg) => message(cluster, gateway, &node, msg),
        }
    }
    health::frames_in(fresh);
}

/// Logs a bundle or frame this node cannot read; one of another node protocol version only the
/// first time (every frame of such a node is counted as dropped).
fn refused(seen: &mut Seen, e: &FrameError) {
    if matches!(e, FrameError::Version { .. }) {
        if !std::mem::replace(&mut seen.other_version_logged, true) {
            warn!(error = %e, "Cluster: frames from a node of another release are dropped (counted); upgrade the nodes of a cluster together.");
        }
        return;
    }
    warn!(error = %e, "Cluster: unreadable frame from another node dropped.");
}

/// A peer's signal forwarded by another node for session `to` (`original`, a slice of
/// `bundle`): handed over as the sending node prepared it, or decoded again when that node
/// left its rendering to this one ([`Forwarding::Decode`]).
fn forward(
    gateway: &Gateway,
    bundle: &Bytes,
    to: u64,
    from: RemotePeer,
    how: Forwarding,
    room: &str,
    original: &[u8],
) {
    let text = match Utf8Bytes::try_from(bundle.slice_ref(original)) {
        Ok(text) => text,
        Err(e) => {
            health::frame_dropped();
            warn!(error = %e, "Cluster: a forwarded frame from another node is not UTF-8; dropped.");
            return;
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
                    return;
                }
            };
            relay_here(gateway, to, from, event, Some(Original::new(text)));
            return;
        }
    };
    // The room is a slice of the bundle too (UTF-8 already checked by the reader).
    let room = Utf8Bytes::try_from(bundle.slice_ref(room.as_bytes())).unwrap_or_default();
    let forward = RemoteForward {
        dialect: from.dialect,
        mode: from.mode,
        kind,
        literal,
        room,
        text,
    };
    gateway
        .registry()
        .deliver_remote(SessionId(to), Outbound::Remote(Arc::new(forward)));
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
        NodeMessage::Joined { room, peer } => gateway.dispatcher().remote_joined(node, &room, peer),
        NodeMessage::Left { room, session } => {
            gateway.dispatcher().remote_left(node, &room, session)
        }
        NodeMessage::Relay {
            to,
            from,
            event,
            original,
        } => relay_here(gateway, to, from, event, original.map(Original::from)),
        // Travels in the binary form only (the reader never yields it as a message).
        NodeMessage::Forward { .. } => health::frame_dropped(),
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
