//! Direct links between nodes (`[cluster.direct]`): a node's frames for another node go over
//! a TCP connection to it rather than through Redis.
//!
//! Through Redis every byte of a frame is copied into Redis, within it and out of it, and
//! through the kernel on both sides of two connections; a direct link copies it through one
//! connection (BENCHMARKS.md, "Direct links between nodes").
//!
//! - **Discovery.** Each node announces its address under `{prefix}:direct:{node}` with its
//!   heartbeat's TTL and reads the other nodes' every heartbeat ([`refresh`]); the dialer
//!   ([`dial`]) links to each node it does not have a link to.
//! - **Trust.** The dialer proves it knows the cluster's link secret, kept in Redis
//!   (`{prefix}:direct-secret`, made by the first node that finds none), with an HMAC of both
//!   node names ([`proof`]). Whoever can read the secret can already publish into any node's
//!   channel: a direct link trusts exactly whom Redis trusts. The listener ([`listen`]) bounds
//!   what a stranger can hold before it has proven anything.
//! - **Wire.** The `PUBLISH` subset of RESP after a `NODE proof from to` handshake answered
//!   `+OK`: bundles go one way as `PUBLISH`es, unanswered (the receiver's acknowledgements
//!   say what arrived); a receiver that falls behind stops reading, and TCP stops its sender.
//! - **Order and loss.** Frames are numbered per receiver and acknowledged whichever way they
//!   go (`replay`). The publisher moves a node's frames to its link only once every frame sent
//!   to it through Redis is acknowledged, and back to Redis when the link fails (what was in
//!   flight goes again from the window; the receiver drops what it has). Membership scripts
//!   stay on Redis, and the frames queued after one are sent once Redis ran it, as before.

pub mod dial;
pub mod links;
pub mod listen;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use redis::aio::MultiplexedConnection;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use super::resp::RespConn;
use super::{Cluster, config::DirectConfig, link::timed_out};

/// Bundles received over links waiting for the subscription task: a few rounds of every
/// other node's publisher.
const INBOUND: usize = 64;

/// The HMAC of a handshake.
type Proof = Hmac<sha1::Sha1>;

/// This node's side of its direct links.
#[derive(Debug)]
pub struct Direct {
    config: DirectConfig,
    /// The bound listener, until [`listen::run`] takes it.
    listener: Mutex<Option<TcpListener>>,
    /// The address announced in Redis (set once bound).
    advertised: OnceLock<String>,
    /// The link secret, as last read from Redis.
    secret: Mutex<Option<Arc<[u8]>>>,
    /// Bundles that came over links, for the subscription task.
    inbound: mpsc::Sender<Bytes>,
    inbound_rx: Mutex<Option<mpsc::Receiver<Bytes>>>,
    /// The other nodes' announced addresses, as of the last heartbeat.
    peers: Mutex<HashMap<Arc<str>, String>>,
    /// Links the dialer made, for the publisher to take.
    dialed: Mutex<Vec<(Arc<str>, RespConn)>>,
    /// The nodes this node has a link to (dialed, or in the publisher's hands).
    linked: Mutex<HashSet<Arc<str>>>,
    /// Wakes the dialer: new addresses, or a link lost.
    wake: Notify,
    /// Wakes the publisher: a link was dialed.
    handed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Direct {
    /// Links for `config`; nothing bound yet ([`Direct::bind`]).
    pub fn new(config: DirectConfig) -> Self {
        let (inbound, rx) = mpsc::channel(INBOUND);
        Self {
            config,
            listener: Mutex::new(None),
            advertised: OnceLock::new(),
            secret: Mutex::new(None),
            inbound,
            inbound_rx: Mutex::new(Some(rx)),
            peers: Mutex::new(HashMap::new()),
            dialed: Mutex::new(Vec::new()),
            linked: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            handed: Notify::new(),
        }
    }

    /// Binds the listener (at start-up: an address this node cannot listen on is a
    /// configuration error) and fixes the address announced to the other nodes.
    pub async fn bind(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind(&self.config.listen).await?;
        let bound = listener.local_addr()?;
        let advertised = self
            .config
            .advertise
            .clone()
            .unwrap_or_else(|| bound.to_string());
        let _ = self.advertised.set(advertised);
        *lock(&self.listener) = Some(listener);
        Ok(())
    }

    /// The address the other nodes dial, once bound.
    pub fn advertised(&self) -> Option<&str> {
        self.advertised.get().map(String::as_str)
    }

    /// The subscription task's end of the inbound queue (taken once).
    pub fn take_inbound(&self) -> Option<mpsc::Receiver<Bytes>> {
        lock(&self.inbound_rx).take()
    }

    /// The links dialed since the last call, for the publisher.
    pub fn take_dialed(&self) -> Vec<(Arc<str>, RespConn)> {
        std::mem::take(&mut *lock(&self.dialed))
    }

    /// Until a link is dialed (for the publisher, which takes it).
    pub async fn dialed(&self) {
        self.handed.notified().await;
    }

    /// The publisher dropped its link to `node` (it failed, or the node is gone): dialed again
    /// once it is announced.
    pub fn lost(&self, node: &Arc<str>) {
        lock(&self.linked).remove(node);
        self.wake.notify_one();
    }

    /// What `from` proves to `to` with the current secret; `None` before Redis gave one.
    fn proof(&self, from: &str, to: &str) -> Option<Vec<u8>> {
        let secret = lock(&self.secret).clone()?;
        Some(mac(&secret, from, to)?.finalize().into_bytes().to_vec())
    }

    /// Whether `proof` is what `from` must send this node (`to`), compared in constant time.
    fn verify(&self, proof: &[u8], from: &str, to: &str) -> bool {
        let Some(secret) = lock(&self.secret).clone() else {
            return false;
        };
        mac(&secret, from, to).is_some_and(|mac| mac.verify_slice(proof).is_ok())
    }
}

/// The HMAC of a handshake of `from` to `to` under `secret`, before it is finalized.
fn mac(secret: &[u8], from: &str, to: &str) -> Option<Proof> {
    let mut mac = Proof::new_from_slice(secret).ok()?;
    mac.update(b"switchboard direct link\0");
    mac.update(from.as_bytes());
    mac.update(b"\0");
    mac.update(to.as_bytes());
    Some(mac)
}

/// One heartbeat's share: announces this node's address (with its heartbeat's TTL), makes the
/// link secret if Redis has none, and reads it and the addresses of `nodes` (the registered
/// ones); wakes the dialer when something changed.
pub(super) async fn refresh(
    cluster: &Cluster,
    direct: &Direct,
    conn: &mut MultiplexedConnection,
    nodes: &[String],
) -> redis::RedisResult<()> {
    let Some(me) = direct.advertised() else {
        return Ok(());
    };
    let keys = &cluster.keys;
    let others: Vec<&String> = nodes.iter().filter(|n| **n != *cluster.node).collect();
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.direct(&cluster.node))
        .arg(me)
        .arg("PX")
        .arg(cluster.config.node_ttl_ms)
        .ignore();
    pipe.cmd("SET")
        .arg(keys.direct_secret())
        .arg(&fresh[..])
        .arg("NX")
        .ignore();
    pipe.cmd("GET").arg(keys.direct_secret());
    if !others.is_empty() {
        let mut mget = redis::cmd("MGET");
        for node in &others {
            mget.arg(keys.direct(node));
        }
        pipe.add_command(mget);
    }
    let replies: Vec<redis::Value> =
        tokio::time::timeout(cluster.command_timeout(), pipe.query_async(conn))
            .await
            .map_err(|_| timed_out())??;
    let mut replies = replies.into_iter();
    let secret: Option<Vec<u8>> = match replies.next() {
        Some(v) => redis::from_redis_value(v)?,
        None => None,
    };
    let addrs: Vec<Option<String>> = match replies.next() {
        Some(v) => redis::from_redis_value(v)?,
        None => Vec::new(),
    };
    if let Some(secret) = secret {
        let mut kept = lock(&direct.secret);
        if kept.as_deref() != Some(&secret[..]) {
            *kept = Some(Arc::from(secret));
        }
    }
    let announced: HashMap<Arc<str>, String> = others
        .into_iter()
        .zip(addrs)
        .filter_map(|(node, addr)| Some((Arc::from(node.as_str()), addr?)))
        .collect();
    let unlinked = {
        let linked = lock(&direct.linked);
        announced.keys().any(|n| !linked.contains(n))
    };
    *lock(&direct.peers) = announced;
    if unlinked {
        direct.wake.notify_one();
    }
    Ok(())
}
