//! The conference catalog in the cluster's Redis ([`SharedCatalog`]): REST rooms in one hash,
//! `{prefix}:conference:rooms` (room id → Ant's `ConferenceRoom` JSON), and each one-time token
//! in its own key, `{prefix}:conference:token:{id}`, which Redis expires at the token's
//! `expireDate`. A token is used up by `DEL`: Redis answers 1 to exactly one caller, so a token
//! is good once across the cluster however many nodes race for it.
//!
//! Live streams (`joinRoom` participants and media publishers) are listed per room in
//! `{prefix}:conference:streams:{room}`, field `{node}|{key}`, value `{listed-ms}|{json}`.
//! A node lists only its own, written behind by one thread in order; readers skip (and delete)
//! the fields of nodes whose heartbeat key is gone, so a dead node's streams leave the listings
//! with its heartbeat (`node_ttl_ms`), and a node re-lists its own after Redis lost its data
//! ([`RedisCatalog::reassert`], called by the link when it recovers).
//!
//! The conference plugin's calls are synchronous (REST calls and the gateway's reads before a
//! room is locked, `gateway/prefetch.rs`, on the blocking pool; room homing's claims, made
//! there too): this uses Redis's blocking connection, one per node, behind a mutex, with the
//! cluster's command timeout on connecting, reading and writing, and never on a runtime worker
//! ([`off_worker`]). A failed call drops the connection; the next call connects again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::{Client, Connection, RedisResult};
use switchboard_conference::{RoomRecord, SharedCatalog, SharedStream, StoreError, TokenRecord};

use super::config::ClusterConfig;
use super::connect::{self, TargetError};
use super::store::Keys;

/// The conference catalog of a cluster node.
pub struct RedisCatalog {
    inner: Arc<Inner>,
    /// This node's listings, by (room, key): what [`Self::reassert`] writes again.
    listed: Arc<Mutex<BTreeMap<(String, String), String>>>,
    writes: Mutex<Sender<Listing>>,
}

struct Inner {
    /// The server the link connected to last (through Sentinel: the current primary), so
    /// the catalog talks to the same server as the node's bus. `None` until the link has
    /// found one.
    server: Mutex<Option<Client>>,
    conn: Mutex<Option<Connection>>,
    keys: Keys,
    /// This run's instance id (`node@start-ms`).
    node: Arc<str>,
    rooms: String,
    token_prefix: String,
    streams_prefix: String,
    timeout: Duration,
}

/// A write of this node's listings, in order.
enum Listing {
    Put {
        room: String,
        key: String,
        value: String,
    },
    Remove {
        room: String,
        key: String,
    },
    /// Write every listing again (Redis lost its data).
    All(Vec<((String, String), String)>),
}

impl std::fmt::Debug for RedisCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCatalog")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl RedisCatalog {
    /// The catalog of the cluster `config` (validated) names, for this run's instance `node`.
    /// Connects on first use.
    pub fn new(config: &ClusterConfig, node: Arc<str>) -> Result<Self, TargetError> {
        // One server: known now. Through Sentinel: the link names it (`use_server`).
        let server = match connect::Target::new(config)? {
            connect::Target::Direct(client) => Some(client),
            connect::Target::Sentinel(_) => None,
        };
        let prefix = &config.key_prefix;
        let inner = Arc::new(Inner {
            server: Mutex::new(server),
            conn: Mutex::new(None),
            keys: Keys::new(prefix),
            node,
            rooms: format!("{prefix}:conference:rooms"),
            token_prefix: format!("{prefix}:conference:token:"),
            streams_prefix: format!("{prefix}:conference:streams:"),
            timeout: Duration::from_millis(config.heartbeat_interval_ms.clamp(200, 2000)),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("cluster-listings".into())
            .spawn(move || writer.write_listings(&rx))
            .map_err(|e| TargetError::Client(e.into()))?;
        Ok(Self {
            inner,
            listed: Arc::new(Mutex::new(BTreeMap::new())),
            writes: Mutex::new(tx),
        })
    }

    /// The link connected to `client` (through Sentinel: a primary, maybe a new one): the
    /// catalog's next connection goes there too.
    pub fn use_server(&self, client: &Client) {
        let mut server = self
            .inner
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let addr = |c: &Client| c.get_connection_info().addr().to_string();
        if server.as_ref().map(addr) != Some(addr(client)) {
            *server = Some(client.clone());
            // A connection to the previous server goes: the next call connects to this one.
            *self
                .inner
                .conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Runs `f` on the catalog's blocking connection (room homing's claims share it).
    pub fn query<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.inner.with(f)
    }

    /// Lists every stream of this node again (after Redis lost its data, or this node was
    /// taken for dead and reaped). Never waits.
    pub fn reassert(&self) {
        let all: Vec<_> = self
            .listed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !all.is_empty() {
            self.queue(Listing::All(all));
        }
    }

    fn queue(&self, listing: Listing) {
        let sent = self
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(listing);
        if sent.is_err() {
            tracing::warn!("The cluster listings writer stopped; a stream listing is lost.");
        }
    }
}

impl Inner {
    /// The writer thread: applies listings in order; a failed write is retried by the next
    /// [`RedisCatalog::reassert`] (the link calls it when Redis is back).
    fn write_listings(&self, rx: &Receiver<Listing>) {
        while let Ok(listing) = rx.recv() {
            let result = self.with(|c| {
                let mut pipe = redis::pipe();
                match &listing {
                    Listing::Put { room, key, value } => {
                        pipe.cmd("HSET")
                            .arg(self.streams_key(room))
                            .arg(self.field(key))
                            .arg(value)
                            .ignore();
                    }
                    Listing::Remove { room, key } => {
                        pipe.cmd("HDEL")
                            .arg(self.streams_key(room))
                            .arg(self.field(key))
                            .ignore();
                    }
                    Listing::All(all) => {
                        for ((room, key), value) in all {
                            pipe.cmd("HSET")
                                .arg(self.streams_key(room))
                                .arg(self.field(key))
                                .arg(value)
                                .ignore();
                        }
                    }
                }
                pipe.query::<()>(c)
            });
            if let Err(e) = result {
                tracing::debug!(error = %e, "A stream listing was not written; it is written again when Redis is back.");
            }
        }
    }

    fn streams_key(&self, room: &str) -> String {
        format!("{}{room}", self.streams_prefix)
    }

    fn field(&self, key: &str) -> String {
        format!("{}|{key}", self.node)
    }
}

impl Inner {
    fn connect(&self) -> RedisResult<Connection> {
        let client = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the sentinels have not named a primary yet",
                ))
            })?;
        let conn = client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    /// Runs `f` on the connection (connecting first if needed); a failure drops it. Off the
    /// runtime's workers ([`off_worker`]): waiting for the connection and for Redis holds
    /// no worker.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        off_worker(|| self.with_here(f))
    }

    fn with_here<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match slot.as_mut() {
            Some(conn) => f(conn),
            None => self.connect().and_then(|mut conn| {
                let out = f(&mut conn);
                *slot = Some(conn);
                out
            }),
        };
        result.map_err(|e| {
            *slot = None;
            StoreError(format!("cluster Redis: {e}"))
        })
    }

    fn token_key(&self, id: &str) -> String {
        format!("{}{id}", self.token_prefix)
    }
}

/// Runs `call`, which blocks (a Redis round trip, up to the command timeout, and the wait for
/// the catalog's one connection), without holding a runtime worker: a Redis that stops
/// answering must not stall the other rooms' dispatch on the node. On a multi-thread
/// runtime's worker, `block_in_place` first hands the worker's other tasks to another thread;
/// elsewhere (the conference plugin's reads and REST calls on the blocking pool, the listings
/// thread, a current-thread runtime in tests) it runs as is.
fn off_worker<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: Option<String>) -> Result<Option<T>, StoreError> {
    json.map(|j| serde_json::from_str(&j))
        .transpose()
        .map_err(|e| StoreError(format!("an unreadable record in the cluster's Redis: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

/// Now, in Unix milliseconds: the order of listings across nodes.
fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl Inner {
    /// The other living nodes' listings of `room`, in listing order; deletes those of dead
    /// nodes.
    fn remote_streams(&self, room: &str) -> Result<Vec<SharedStream>, StoreError> {
        let key = self.streams_key(room);
        let fields: Vec<(String, String)> =
            self.with(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        let mut listed = Vec::new();
        let mut nodes: HashMap<&str, Vec<&str>> = HashMap::new();
        for (field, value) in &fields {
            let Some((node, _)) = field.split_once('|') else {
                continue;
            };
            if node != &*self.node {
                nodes.entry(node).or_default().push(field);
                listed.push((node, value));
            }
        }
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = nodes.keys().copied().collect();
        let alive: Vec<bool> = self.with(|c| {
            let mut pipe = redis::pipe();
            for node in &names {
                pipe.cmd("EXISTS").arg(self.keys.alive(node));
            }
            pipe.query(c)
        })?;
        let dead: HashSet<&str> = names
            .iter()
            .zip(alive)
            .filter(|(_, alive)| !alive)
            .map(|(n, _)| *n)
            .collect();
        if !dead.is_empty() {
            let gone: Vec<&str> = dead.iter().flat_map(|n| nodes[n].iter().copied()).collect();
            // Best effort: the next reader deletes them if this fails.
            let _ = self.with(|c| redis::cmd("HDEL").arg(&key).arg(&gone).query::<()>(c));
        }
        let mut streams: Vec<(u128, SharedStream)> = listed
            .into_iter()
            .filter(|(node, _)| !dead.contains(node))
            .filter_map(|(_, value)| {
                let (at, json) = value.split_once('|')?;
                Some((at.parse().ok()?, serde_json::from_str(json).ok()?))
            })
            .collect();
        streams.sort_by_key(|(at, _)| *at);
        Ok(streams.into_iter().map(|(_, s)| s).collect())
    }
}

impl SharedCatalog for RedisCatalog {
    fn publish_stream(&self, room: &str, key: &str, stream: &SharedStream) {
        let Ok(json) = serde_json::to_string(stream) else {
            return;
        };
        let id = (room.to_owned(), key.to_owned());
        let value = {
            let mut listed = self.listed.lock().unwrap_or_else(PoisonError::into_inner);
            // An update keeps its place in the listing order.
            let at = listed
                .get(&id)
                .and_then(|v| v.split_once('|'))
                .map_or_else(|| unix_ms().to_string(), |(at, _)| at.to_owned());
            let value = format!("{at}|{json}");
            listed.insert(id, value.clone());
            value
        };
        self.queue(Listing::Put {
            room: room.to_owned(),
            key: key.to_owned(),
            value,
        });
    }

    fn unpublish_stream(&self, room: &str, key: &str) {
        self.listed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(room.to_owned(), key.to_owned()));
        self.queue(Listing::Remove {
            room: room.to_owned(),
            key: key.to_owned(),
        });
    }

    fn remote_streams(&self, room: &str) -> Result<Vec<SharedStream>, StoreError> {
        self.inner.remote_streams(room)
    }

    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        let all: Vec<(String, String)> = self
            .inner
            .with(|c| redis::cmd("HGETALL").arg(&self.inner.rooms).query(c))?;
        let mut rooms = Vec::with_capacity(all.len());
        for (id, json) in all {
            match serde_json::from_str(&json) {
                Ok(room) => rooms.push(room),
                Err(e) => {
                    tracing::warn!(room = id, error = %e, "Skipped an unreadable room in the cluster's Redis.")
                }
            }
        }
        Ok(rooms)
    }

    fn room(&self, id: &str) -> Result<Option<RoomRecord>, StoreError> {
        parse(
            self.inner
                .with(|c| redis::cmd("HGET").arg(&self.inner.rooms).arg(id).query(c))?,
        )
    }

    fn create_room(&self, room: &RoomRecord) -> Result<bool, StoreError> {
        let json = json(room)?;
        self.inner.with(|c| {
            redis::cmd("HSETNX")
                .arg(&self.inner.rooms)
                .arg(&room.room_id)
                .arg(&json)
                .query(c)
        })
    }

    fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError> {
        let json = json(room)?;
        self.inner.with(|c| {
            redis::cmd("HSET")
                .arg(&self.inner.rooms)
                .arg(&room.room_id)
                .arg(&json)
                .query(c)
        })
    }

    fn delete_room(&self, id: &str) -> Result<bool, StoreError> {
        self.inner
            .with(|c| redis::cmd("HDEL").arg(&self.inner.rooms).arg(id).query(c))
    }

    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let json = json(token)?;
        // Redis forgets it at its expiry date; EXAT in the past deletes at once.
        self.inner.with(|c| {
            redis::cmd("SET")
                .arg(self.inner.token_key(&token.token_id))
                .arg(&json)
                .arg("EXAT")
                .arg(token.expire_date.max(1))
                .query(c)
        })
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        parse(
            self.inner
                .with(|c| redis::cmd("GET").arg(self.inner.token_key(id)).query(c))?,
        )
    }

    fn use_token(&self, id: &str) -> Result<bool, StoreError> {
        self.inner
            .with(|c| redis::cmd("DEL").arg(self.inner.token_key(id)).query(c))
    }
}
