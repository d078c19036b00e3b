//! Room membership in Redis: key names, member records and the Lua scripts that change them
//! atomically.
//!
//! - `{prefix}:room:{room}`: a list of member records in join order.
//! - `{prefix}:node-rooms:{node}`: the rooms a node has (had) members in, for the reaper.
//! - `{prefix}:alive:{node}`: the heartbeat key, with a TTL.
//! - `{prefix}:nodes`: every registered node.
//! - `{prefix}:lock:{room}`: held (with a TTL) by the one join into the room in progress.
//! - `{prefix}:node:{node}`: the pub/sub channel a node listens on.
//!
//! A member record is `node|session|dialect|mode`.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use switchboard_plugin_api::{Peer, SessionId};
use switchboard_protocol::cluster::RemotePeer;
use switchboard_protocol::{DialectKind, JoinMode};

/// Key and channel names of one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// A room's member list.
    pub fn room(&self, room: &str) -> String {
        format!("{}:room:{room}", self.prefix)
    }

    /// The prefix of every room key (the reaper appends room names).
    pub fn room_prefix(&self) -> String {
        format!("{}:room:", self.prefix)
    }

    /// The rooms a node has members in.
    pub fn node_rooms(&self, node: &str) -> String {
        format!("{}:node-rooms:{node}", self.prefix)
    }

    /// A node's heartbeat key.
    pub fn alive(&self, node: &str) -> String {
        format!("{}:alive:{node}", self.prefix)
    }

    /// The set of registered nodes.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A room's join lock.
    pub fn lock(&self, room: &str) -> String {
        format!("{}:lock:{room}", self.prefix)
    }

    /// Changed by whichever node finds it missing: a node that sees another value than it
    /// saw before knows Redis lost its data.
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// A node's pub/sub channel.
    pub fn channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// The address a node takes direct links on (`cluster/direct`), with its heartbeat's TTL.
    pub fn direct(&self, node: &str) -> String {
        format!("{}:direct:{node}", self.prefix)
    }

    /// The secret a node proves on a direct link: made by the first node that finds none.
    pub fn direct_secret(&self) -> String {
        format!("{}:direct-secret", self.prefix)
    }
}

/// The member record of `peer` on `node`.
pub fn record(node: &str, peer: &Peer) -> String {
    format!(
        "{node}|{}|{}|{}",
        peer.session.0,
        peer.dialect.as_str(),
        mode_name(peer.mode)
    )
}

/// The prefix every record of `node`'s `session` starts with.
pub fn record_prefix(node: &str, session: SessionId) -> String {
    format!("{node}|{}|", session.0)
}

fn mode_name(mode: JoinMode) -> &'static str {
    match mode {
        JoinMode::Both => "both",
        JoinMode::Play => "play",
        JoinMode::Conference => "conference",
    }
}

/// Parses a member record; `None` for anything else (a record of a newer format is skipped).
pub fn parse_record(text: &str) -> Option<(Arc<str>, RemotePeer)> {
    let mut parts = text.split('|');
    let node = parts.next()?;
    let session = parts.next()?.parse().ok()?;
    let dialect = match parts.next()? {
        "antmedia" => DialectKind::Antmedia,
        "socketio" => DialectKind::Socketio,
        "raw" => DialectKind::Raw,
        "peerjs" => DialectKind::Peerjs,
        _ => return None,
    };
    let mode = match parts.next()? {
        "both" => JoinMode::Both,
        "play" => JoinMode::Play,
        "conference" => JoinMode::Conference,
        _ => return None,
    };
    Some((
        Arc::from(node),
        RemotePeer {
            session,
            dialect,
            mode,
        },
    ))
}

/// Takes a room's join lock and reads its member list, in one step; nil while another join
/// into the room holds the lock. KEYS[1] room list, KEYS[2] lock; ARGV[1] token, ARGV[2] lock
/// TTL in ms. The lock makes joins into one room run one at a time across the nodes, from this
/// read to [`COMMIT`]: each joiner's pipeline sees every member admitted before it and no
/// half-admitted one.
const CLAIM: &str = r"
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('LRANGE', KEYS[1], 0, -1)
end
return false
";

/// Ends a claim: appends the member's record when the join was accepted (unless it is there:
/// a commit held through an outage may come after the re-registration wrote it), notes the room for
/// the reaper, releases the lock if it is still this claim's. KEYS[1] room list, KEYS[2] lock,
/// KEYS[3] node-rooms; ARGV[1] token, ARGV[2] record, ARGV[3] room, ARGV[4] `1` if accepted.
const COMMIT: &str = r"
if ARGV[4] == '1' and not redis.call('LPOS', KEYS[1], ARGV[2]) then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[3])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
";

/// Removes every record that starts with ARGV[1] from a room.
pub const UNCLAIM: &str = r"
local list = redis.call('LRANGE', KEYS[1], 0, -1)
for _, e in ipairs(list) do
  if string.sub(e, 1, #ARGV[1]) == ARGV[1] then redis.call('LREM', KEYS[1], 0, e) end
end
return 1
";

/// Removes every record of a node from every room it had members in, and the node itself.
/// Idempotent: every survivor may run it for the same dead node.
/// KEYS[1] node-rooms set, KEYS[2] nodes set; ARGV[1] room key prefix, ARGV[2] `node|`,
/// ARGV[3] node.
const REAP: &str = r"
local rooms = redis.call('SMEMBERS', KEYS[1])
for _, room in ipairs(rooms) do
  local key = ARGV[1] .. room
  local list = redis.call('LRANGE', key, 0, -1)
  for _, e in ipairs(list) do
    if string.sub(e, 1, #ARGV[2]) == ARGV[2] then redis.call('LREM', key, 0, e) end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
return #rooms
";

/// Runs [`CLAIM`]: the room's records, or `None` while another join holds the room.
pub async fn claim(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    room: &str,
    token: &str,
    lock_ttl_ms: u64,
) -> redis::RedisResult<Option<Vec<String>>> {
    redis::Script::new(CLAIM)
        .key(keys.room(room))
        .key(keys.lock(room))
        .arg(token)
        .arg(lock_ttl_ms)
        .invoke_async(conn)
        .await
}

/// Adds [`COMMIT`] of a claim to a pipeline.
pub fn commit(pipe: &mut redis::Pipeline, keys: &Keys, node: &str, c: &Commit) {
    pipe.cmd("EVAL")
        .arg(COMMIT)
        .arg(3)
        .arg(keys.room(&c.room))
        .arg(keys.lock(&c.room))
        .arg(keys.node_rooms(node))
        .arg(&c.token)
        .arg(record(node, &c.peer))
        .arg(&c.room)
        .arg(if c.accepted { "1" } else { "0" })
        .ignore();
}

/// The end of a claim, queued for the publisher.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The room.
    pub room: String,
    /// The joiner (with its join mode).
    pub peer: Peer,
    /// The claim's lock token.
    pub token: String,
    /// Whether the pipeline accepted the join.
    pub accepted: bool,
}

/// Adds [`UNCLAIM`] of `node`'s `session` in `room` to a pipeline.
pub fn unclaim(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    node: &str,
    room: &str,
    session: SessionId,
) {
    pipe.cmd("EVAL")
        .arg(UNCLAIM)
        .arg(1)
        .arg(keys.room(room))
        .arg(record_prefix(node, session))
        .ignore();
}

/// Adds [`REAP`] of `node` to a pipeline.
pub fn reap(pipe: &mut redis::Pipeline, keys: &Keys, node: &str) {
    pipe.cmd("EVAL")
        .arg(REAP)
        .arg(2)
        .arg(keys.node_rooms(node))
        .arg(keys.nodes())
        .arg(keys.room_prefix())
        .arg(format!("{node}|"))
        .arg(node)
        .ignore();
}

/// Adds the re-registration of `node`'s local members to a pipeline (after a reap of the same
/// node, so each record is there once).
pub fn register(pipe: &mut redis::Pipeline, keys: &Keys, node: &str, members: &[(String, Peer)]) {
    for (room, peer) in members {
        pipe.cmd("RPUSH")
            .arg(keys.room(room))
            .arg(record(node, peer))
            .ignore();
        pipe.cmd("SADD")
            .arg(keys.node_rooms(node))
            .arg(room)
            .ignore();
    }
}
