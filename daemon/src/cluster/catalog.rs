//! The conference catalog in the cluster's Redis ([`SharedCatalog`]): REST rooms in one hash,
//! `{prefix}:conference:rooms` (room id → Ant's `ConferenceRoom` JSON), and each one-time token
//! in its own key, `{prefix}:conference:token:{id}`, which Redis expires at the token's
//! `expireDate`. A token is used up by `DEL`: Redis answers 1 to exactly one caller, so a token
//! is good once across the cluster however many nodes race for it.
//!
//! The conference plugin's calls are synchronous (REST calls on the blocking pool, the hook
//! under its lock): this uses Redis's blocking connection, one per node, behind a mutex, with
//! the cluster's command timeout on connecting, reading and writing. A failed call drops the
//! connection; the next call connects again.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::sentinel::SentinelClient;
use redis::{Client, Connection, RedisResult};
use switchboard_conference::{RoomRecord, SharedCatalog, StoreError, TokenRecord};

use super::config::ClusterConfig;
use super::connect::{self, TargetError};

/// Where the blocking connection goes.
enum Server {
    Direct(Client),
    Sentinel(Mutex<SentinelClient>),
}

/// The conference catalog of a cluster node.
pub struct RedisCatalog {
    server: Server,
    conn: Mutex<Option<Connection>>,
    rooms: String,
    token_prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCatalog")
            .field("rooms", &self.rooms)
            .finish_non_exhaustive()
    }
}

impl RedisCatalog {
    /// The catalog of the cluster `config` (validated) names. Connects on first use.
    pub fn new(config: &ClusterConfig) -> Result<Self, TargetError> {
        let server = if config.sentinel.is_some() {
            Server::Sentinel(Mutex::new(connect::sentinel_for(config)?))
        } else {
            match connect::Target::new(config)? {
                connect::Target::Direct(client) => Server::Direct(client),
                connect::Target::Sentinel(_) => unreachable!("no sentinel configured"),
            }
        };
        let prefix = &config.key_prefix;
        Ok(Self {
            server,
            conn: Mutex::new(None),
            rooms: format!("{prefix}:conference:rooms"),
            token_prefix: format!("{prefix}:conference:token:"),
            timeout: Duration::from_millis(config.heartbeat_interval_ms.clamp(200, 2000)),
        })
    }

    fn connect(&self) -> RedisResult<Connection> {
        let client = match &self.server {
            Server::Direct(client) => client.clone(),
            Server::Sentinel(sentinel) => sentinel
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_client()?,
        };
        let conn = client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    /// Runs `f` on the connection (connecting first if needed); a failure drops it.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
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

fn parse<T: serde::de::DeserializeOwned>(json: Option<String>) -> Result<Option<T>, StoreError> {
    json.map(|j| serde_json::from_str(&j))
        .transpose()
        .map_err(|e| StoreError(format!("an unreadable record in the cluster's Redis: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

impl SharedCatalog for RedisCatalog {
    fn rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
        let all: Vec<(String, String)> =
            self.with(|c| redis::cmd("HGETALL").arg(&self.rooms).query(c))?;
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
        parse(self.with(|c| redis::cmd("HGET").arg(&self.rooms).arg(id).query(c))?)
    }

    fn create_room(&self, room: &RoomRecord) -> Result<bool, StoreError> {
        let json = json(room)?;
        self.with(|c| {
            redis::cmd("HSETNX")
                .arg(&self.rooms)
                .arg(&room.room_id)
                .arg(&json)
                .query(c)
        })
    }

    fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError> {
        let json = json(room)?;
        self.with(|c| {
            redis::cmd("HSET")
                .arg(&self.rooms)
                .arg(&room.room_id)
                .arg(&json)
                .query(c)
        })
    }

    fn delete_room(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| redis::cmd("HDEL").arg(&self.rooms).arg(id).query(c))
    }

    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let json = json(token)?;
        // Redis forgets it at its expiry date; EXAT in the past deletes at once.
        self.with(|c| {
            redis::cmd("SET")
                .arg(self.token_key(&token.token_id))
                .arg(&json)
                .arg("EXAT")
                .arg(token.expire_date.max(1))
                .query(c)
        })
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        parse(self.with(|c| redis::cmd("GET").arg(self.token_key(id)).query(c))?)
    }

    fn use_token(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|c| redis::cmd("DEL").arg(self.token_key(id)).query(c))
    }
}
