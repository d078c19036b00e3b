//! The listener of direct links: takes the other nodes' connections, checks each handshake,
//! then hands their bundles to the subscription task, in order.
//!
//! Before a connection has proven the link secret it holds one of [`MAX_HANDSHAKES`] places,
//! taken before anything is read (a flood of connections is refused at accept), for at most
//! [`HANDSHAKE_TIME`], and at most [`HANDSHAKE_BYTES`] of what it sends is read or reserved.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use switchboard_protocol::cluster::BundleReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{Direct, lock};
use crate::cluster::resp::RespConn;
use crate::cluster::{Cluster, health};

/// How long a new connection has to prove the secret.
const HANDSHAKE_TIME: Duration = Duration::from_secs(2);

/// The most a handshake may take (four short fields).
const HANDSHAKE_BYTES: usize = 1024;

/// Connections still in their handshake at once: past this, new ones are closed at accept.
const MAX_HANDSHAKES: usize = 16;

/// Links from other nodes at once (a node has one to each other node; a restarted node's old
/// links close as its new ones come).
const MAX_LINKS: usize = 256;

/// Takes connections until the cluster stops.
pub async fn run(cluster: Arc<Cluster>) {
    let Some(listener) = cluster.direct().and_then(|d| lock(&d.listener).take()) else {
        return;
    };
    accept(cluster, listener).await;
}

async fn accept(cluster: Arc<Cluster>, listener: TcpListener) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let links = Arc::new(Semaphore::new(MAX_LINKS));
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = cluster.stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, most likely: the others' dialers try again.
                debug!(error = %e, "Cluster: a direct link could not be accepted.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            health::direct_refused();
            debug!(peer.addr = %addr, "Cluster: direct link refused: too many handshakes at once.");
            continue;
        };
        let cluster = Arc::clone(&cluster);
        let links = Arc::clone(&links);
        tasks.spawn(async move {
            let stop = cluster.stop.clone();
            tokio::select! {
                () = stop.cancelled() => {}
                () = serve(&cluster, stream, addr, permit, &links) => {}
            }
        });
    }
    tasks.close();
    tasks.wait().await;
}

/// One connection: its handshake, then its bundles until it closes.
async fn serve(
    cluster: &Cluster,
    stream: TcpStream,
    addr: SocketAddr,
    handshake_place: OwnedSemaphorePermit,
    links: &Arc<Semaphore>,
) {
    let Some(direct) = cluster.direct() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut conn = RespConn::over(stream, HANDSHAKE_BYTES);
    let checked = tokio::time::timeout(HANDSHAKE_TIME, handshake(cluster, direct, &mut conn)).await;
    let from = match checked {
        Ok(Ok(from)) => from,
        Ok(Err(why)) => {
            health::direct_refused();
            debug!(peer.addr = %addr, why, "Cluster: direct link refused.");
            let _ = reply(&mut conn, format!("-ERR {why}\r\n").into_bytes()).await;
            return;
        }
        Err(_) => {
            health::direct_refused();
            debug!(peer.addr = %addr, "Cluster: direct link refused: no handshake in time.");
            return;
        }
    };
    drop(handshake_place);
    let Ok(_place) = Arc::clone(links).try_acquire_owned() else {
        health::direct_refused();
        warn!(peer.addr = %addr, node = %from, "Cluster: direct link refused: too many links.");
        let _ = reply(&mut conn, b"-ERR too many links\r\n".to_vec()).await;
        return;
    };
    if reply(&mut conn, b"+OK\r\n".to_vec()).await.is_err() {
        return;
    }
    info!(peer.addr = %addr, node = %from, "Cluster: direct link from a node.");
    let why = receive(direct, &mut conn, &from).await;
    info!(peer.addr = %addr, node = %from, why, "Cluster: direct link from a node closed.");
}

/// Reads `NODE proof from to`: the node it comes from, or why it is refused.
async fn handshake(
    cluster: &Cluster,
    direct: &Direct,
    conn: &mut RespConn,
) -> Result<String, &'static str> {
    let frame = conn
        .read_small_frame(HANDSHAKE_BYTES, b"*")
        .await
        .map_err(|_| "not a handshake")?
        .ok_or("closed before its handshake")?;
    let BytesFrame::Array(fields) = frame else {
        return Err("not a handshake");
    };
    let [command, proof, from, to] = &fields[..] else {
        return Err("not a handshake");
    };
    let (Some(command), Some(proof), Some(from), Some(to)) =
        (bulk(command), bulk(proof), bulk(from), bulk(to))
    else {
        return Err("not a handshake");
    };
    if &command[..] != b"NODE" {
        return Err("not a handshake");
    }
    let (Ok(from), Ok(to)) = (std::str::from_utf8(from), std::str::from_utf8(to)) else {
        return Err("a node name is not UTF-8");
    };
    if to != &*cluster.node {
        // An address announced by a node that has since restarted (a new instance id).
        return Err("not the node dialed");
    }
    if from.is_empty() || from == &*cluster.node {
        return Err("no node name");
    }
    if !direct.verify(proof, from, to) {
        return Err("wrong proof of the link secret");
    }
    Ok(from.to_owned())
}

fn bulk(frame: &BytesFrame) -> Option<&Bytes> {
    match frame {
        BytesFrame::BulkString(b) => Some(b),
        _ => None,
    }
}

/// Hands each `PUBLISH`ed bundle of `from` to the subscription task, in order, answering
/// nothing: the sender keeps every frame until the receiving node acknowledges it (`replay`),
/// and a receiver that falls behind stops reading, which stops its sender's writes. Returns
/// why it ended.
async fn receive(direct: &Direct, conn: &mut RespConn, from: &str) -> &'static str {
    loop {
        let frame = match conn.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return "closed",
            Err(_) => return "unreadable",
        };
        let Some(bundle) = published(frame) else {
            return "not a PUBLISH";
        };
        // Redis's channel names the receiver; here the link does, and the bundle its sender,
        // which must be the node that proved itself.
        if BundleReader::new(&bundle).is_ok_and(|r| r.node() != from) {
            return "a bundle of another node";
        }
        if direct.inbound.send(bundle).await.is_err() {
            return "the node stops";
        }
    }
}

/// The payload of `PUBLISH channel payload`.
fn published(frame: BytesFrame) -> Option<Bytes> {
    let BytesFrame::Array(fields) = frame else {
        return None;
    };
    let [command, _channel, payload] = <[BytesFrame; 3]>::try_from(fields).ok()?;
    match (command, payload) {
        (BytesFrame::BulkString(c), BytesFrame::BulkString(payload)) if &c[..] == b"PUBLISH" => {
            Some(payload)
        }
        _ => None,
    }
}

async fn reply(conn: &mut RespConn, bytes: Vec<u8>) -> redis::RedisResult<()> {
    conn.write(vec![Bytes::from(bytes).into()]).await
}
