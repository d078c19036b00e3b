//! Persistence: an embedded redb file holding the REST-created rooms and the one-time tokens,
//! loaded into memory at start. Every write goes through one writer thread, in order: REST calls
//! wait for theirs to be committed before they answer (write-through); a token used up by a
//! peer is removed from memory at once and deleted on disk shortly after (write-behind), so the
//! plugin hook, which runs under the gateway's room lock, never waits for the disk.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::records::{RoomRecord, TokenRecord};

/// Rooms by id, each an Ant `ConferenceRoom` as JSON.
const ROOMS: TableDefinition<&str, &str> = TableDefinition::new("conference_rooms");
/// One-time tokens by token id, each an Ant `Token` as JSON.
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");

/// A store problem (opening, reading or writing the file), as text for logs and REST answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Names the file in an error.
trait At<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: std::fmt::Display> At<T> for Result<T, E> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError(format!("{}: {e}", path.display())))
    }
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace a room.
    PutRoom(RoomRecord),
    /// Delete a room.
    DeleteRoom(String),
    /// Insert a one-time token.
    PutToken(TokenRecord),
    /// Delete a one-time token (used up, or found expired).
    DeleteToken(String),
}

/// What the file held at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every room.
    pub rooms: Vec<RoomRecord>,
    /// Every token not yet expired at start (expired ones are deleted).
    pub tokens: Vec<TokenRecord>,
}

#[derive(Debug)]
struct Job {
    write: Write,
    /// Told the outcome once the write is committed; `None` for write-behind.
    ack: Option<SyncSender<Result<(), StoreError>>>,
}

/// The writer thread, which owns the database; dropping the sender ends it and closes the file.
#[derive(Debug)]
pub struct Writer {
    tx: Sender<Job>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Opens (creating if needed) the store at `path`, reads it, drops tokens expired at
    /// `now`, and starts the writer thread.
    pub fn open(path: &Path, now: i64) -> Result<(Writer, Loaded), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).at(path)?;
        }
        let db = Database::create(path).at(path)?;
        // Create the tables, so that a fresh file reads as empty.
        let txn = db.begin_write().at(path)?;
        txn.open_table(ROOMS).at(path)?;
        txn.open_table(TOKENS).at(path)?;
        txn.commit().at(path)?;
        let loaded = load(&db, path)?;
        let (tokens, expired): (Vec<_>, Vec<_>) =
            loaded.tokens.into_iter().partition(|t| t.expire_date > now);
        let loaded = Loaded {
            rooms: loaded.rooms,
            tokens,
        };
        let (tx, rx) = mpsc::channel();
        let path_buf = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("conference-store".into())
            .spawn(move || run(db, &path_buf, rx))
            .at(path)?;
        let writer = Writer { tx, thread };
        for token in expired {
            writer
                .handle()
                .write_behind(Write::DeleteToken(token.token_id));
        }
        Ok((writer, loaded))
    }

    /// A handle that queues writes; it keeps the writer running until it is dropped.
    pub fn handle(&self) -> WriteHandle {
        WriteHandle(self.tx.clone())
    }

    /// Commits what is queued and closes the file (once every handle is dropped too).
    pub fn close(self) {
        drop(self.tx);
        if self.thread.join().is_err() {
            tracing::error!("The conference store writer panicked.");
        }
    }
}

/// Queues writes for the writer thread.
#[derive(Debug, Clone)]
pub struct WriteHandle(Sender<Job>);

impl WriteHandle {
    /// Queues `write` and waits until it is committed.
    pub fn write_through(&self, write: Write) -> Result<(), StoreError> {
        let (ack, done) = mpsc::sync_channel(1);
        self.0
            .send(Job {
                write,
                ack: Some(ack),
            })
            .map_err(|_| StoreError("the store is closed".into()))?;
        done.recv()
            .map_err(|_| StoreError("the store writer stopped".into()))?
    }

    /// Queues `write` without waiting.
    pub fn write_behind(&self, write: Write) {
        if self.0.send(Job { write, ack: None }).is_err() {
            tracing::warn!("Store closed; a write is lost.");
        }
    }
}

fn load(db: &Database, path: &Path) -> Result<Loaded, StoreError> {
    let txn = db.begin_read().at(path)?;
    let mut loaded = Loaded::default();
    let rooms = txn.open_table(ROOMS).at(path)?;
    for entry in rooms.iter().at(path)? {
        let (key, value) = entry.at(path)?;
        match serde_json::from_str::<RoomRecord>(value.value()) {
            Ok(room) => loaded.rooms.push(room),
            Err(e) => {
                tracing::warn!(room = key.value(), error = %e, "Skipped an unreadable stored room.")
            }
        }
    }
    let tokens = txn.open_table(TOKENS).at(path)?;
    for entry in tokens.iter().at(path)? {
        let (_, value) = entry.at(path)?;
        match serde_json::from_str::<TokenRecord>(value.value()) {
            Ok(token) => loaded.tokens.push(token),
            Err(e) => tracing::warn!(error = %e, "Skipped an unreadable stored token."),
        }
    }
    Ok(loaded)
}

/// The writer loop: commits queued writes in batches (one transaction for whatever is queued),
/// then acknowledges them. Ends when every sender is gone.
fn run(db: Database, path: &Path, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(255));
        let outcome = apply(&db, path, batch.iter().map(|j| &j.write));
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = batch.len(), "Conference store write failed.");
        }
        for job in batch {
            if let Some(ack) = job.ack {
                let _ = ack.send(outcome.clone());
            }
        }
    }
}

fn apply<'a>(
    db: &Database,
    path: &Path,
    writes: impl Iterator<Item = &'a Write>,
) -> Result<(), StoreError> {
    let txn = db.begin_write().at(path)?;
    {
        let mut rooms = txn.open_table(ROOMS).at(path)?;
        let mut tokens = txn.open_table(TOKENS).at(path)?;
        for write in writes {
            match write {
                Write::PutRoom(room) => {
                    let json = serde_json::to_string(room).at(path)?;
                    rooms
                        .insert(room.room_id.as_str(), json.as_str())
                        .at(path)?;
                }
                Write::DeleteRoom(id) => {
                    rooms.remove(id.as_str()).at(path)?;
                }
                Write::PutToken(token) => {
                    let json = serde_json::to_string(token).at(path)?;
                    tokens
                        .insert(token.token_id.as_str(), json.as_str())
                        .at(path)?;
                }
                Write::DeleteToken(id) => {
                    tokens.remove(id.as_str()).at(path)?;
                }
            }
        }
    }
    txn.commit().at(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::TokenType;

    fn temp_path(name: &str) -> std::path::PathBuf {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("random");
        let dir = std::env::temp_dir().join(format!(
            "sb-conference-{name}-{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        dir.join("store.redb")
    }

    #[test]
    fn writes_survive_reopening_and_expired_tokens_are_dropped() {
        let path = temp_path("reopen");
        let room = RoomRecord {
            room_id: "r1".into(),
            start_date: 10,
            end_date: 20,
            room_stream_list: vec!["s1".into()],
            mode: "legacy".into(),
            app: None,
        };
        let token = |id: &str, expire| TokenRecord {
            token_id: id.into(),
            stream_id: "s1".into(),
            expire_date: expire,
            kind: TokenType::Play,
            room_id: None,
            app: None,
        };
        let (writer, loaded) = Writer::open(&path, 100).expect("open");
        assert!(loaded.rooms.is_empty() && loaded.tokens.is_empty());
        let w = writer.handle();
        w.write_through(Write::PutRoom(room.clone())).expect("put");
        w.write_through(Write::PutToken(token("old", 150)))
            .expect("put");
        w.write_behind(Write::PutToken(token("new", 500)));
        w.write_behind(Write::PutToken(token("gone", 500)));
        w.write_behind(Write::DeleteToken("gone".into()));
        drop(w);
        writer.close();

        let (writer, loaded) = Writer::open(&path, 200).expect("reopen");
        assert_eq!(loaded.rooms, vec![room]);
        assert_eq!(loaded.tokens, vec![token("new", 500)]);
        writer.close();
        let (writer, loaded) = Writer::open(&path, 200).expect("reopen");
        assert_eq!(loaded.tokens.len(), 1, "the expired token was deleted");
        writer.close();
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
