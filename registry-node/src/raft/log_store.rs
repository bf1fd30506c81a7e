//! Durable Raft log and vote in `<data-dir>/raft/raft.db` (redb).
//!
//! Entries are kept in memory as well (until purged after a snapshot) so that
//! replication reads never touch the disk. Writes go to one writer thread that
//! drains everything queued, commits it in a single redb transaction with
//! `Durability::Immediate` (one fsync) and only then calls openraft's
//! `LogFlushed` callbacks: concurrent writers share fsyncs (group commit) and
//! nothing is acknowledged before it is on disk. In `-dev` mode there is no
//! writer and every append is "flushed" at once.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{LogId, OptionalSend, StorageError, StorageIOError, Vote};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{Entry, NodeId, TypeConfig};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// In-memory view shared by the store and its readers.
#[derive(Default)]
struct LogInner {
    log: BTreeMap<u64, Entry>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

/// One queued write for the writer thread.
enum Op {
    Append(Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>),
    Truncate(u64),
    Purge(u64, Vec<u8>),
    Meta(
        &'static str,
        Vec<u8>,
        Option<oneshot::Sender<io::Result<()>>>,
    ),
    /// Stop after this batch and release the database file.
    Close(std::sync::mpsc::Sender<()>),
}

/// The Raft log storage.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    /// `None` in `-dev` mode (memory only).
    writer: Option<mpsc::Sender<Op>>,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    /// A log that lives only in memory (`-dev`).
    pub fn in_memory() -> Self {
        LogStore {
            inner: Arc::default(),
            writer: None,
        }
    }

    /// Opens (or creates) the durable log at `path` and loads it.
    pub fn open(path: &Path) -> Result<Self, io::Error> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => io::Error::other(format!(
                "{} is in use by another agent; each agent needs its own -data-dir",
                path.display()
            )),
            other => io_err(other),
        })?;
        let mut inner = LogInner::default();
        {
            let txn = db.begin_write().map_err(io_err)?;
            txn.open_table(LOG).map_err(io_err)?;
            txn.open_table(META).map_err(io_err)?;
            txn.commit().map_err(io_err)?;
        }
        {
            let txn = db.begin_read().map_err(io_err)?;
            let log = txn.open_table(LOG).map_err(io_err)?;
            for item in log.iter().map_err(io_err)? {
                let (k, v) = item.map_err(io_err)?;
                let entry: Entry = serde_json::from_slice(v.value()).map_err(io_err)?;
                inner.log.insert(k.value(), entry);
            }
            let meta = txn.open_table(META).map_err(io_err)?;
            if let Some(v) = meta.get("vote").map_err(io_err)? {
                inner.vote = serde_json::from_slice(v.value()).map_err(io_err)?;
            }
            if let Some(v) = meta.get("committed").map_err(io_err)? {
                inner.committed = serde_json::from_slice(v.value()).map_err(io_err)?;
            }
            if let Some(v) = meta.get("purged").map_err(io_err)? {
                inner.last_purged = serde_json::from_slice(v.value()).map_err(io_err)?;
            }
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(db, rx))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
            writer: Some(tx),
        })
    }

    /// Flushes what is queued, stops the writer and releases the database file,
    /// so the same data dir can be opened again in this process.
    pub async fn close(&self) {
        let Some(writer) = &self.writer else { return };
        let (tx, rx) = mpsc::channel();
        if writer.send(Op::Close(tx)).is_ok() {
            let _ = tokio::task::spawn_blocking(move || {
                rx.recv_timeout(std::time::Duration::from_secs(10))
            })
            .await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().expect("log store lock")
    }

    #[allow(clippy::result_large_err)] // openraft's error type, returned as is
    fn send(&self, op: Op) -> Result<(), StorageError<NodeId>> {
        match &self.writer {
            Some(tx) => tx
                .send(op)
                .map_err(|_| StorageIOError::write_logs(&io_err("log writer stopped")).into()),
            None => {
                if let Op::Append(_, cb) = op {
                    cb.log_io_completed(Ok(()));
                }
                Ok(())
            }
        }
    }

    async fn save_meta(
        &self,
        key: &'static str,
        bytes: Vec<u8>,
        wait: bool,
    ) -> Result<(), StorageError<NodeId>> {
        if self.writer.is_none() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Op::Meta(key, bytes, wait.then_some(tx)))?;
        if wait {
            rx.await
                .map_err(|_| io_err("log writer stopped"))
                .and_then(|r| r)
                .map_err(|e| StorageIOError::write_vote(&e))?;
        }
        Ok(())
    }
}

/// Applies queued writes in batches, one fsync per batch.
fn writer_loop(db: Database, rx: mpsc::Receiver<Op>) {
    let mut closed = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(op) = rx.try_recv() {
            batch.push(op);
        }
        let result = write_batch(&db, &batch).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "raft log write failed");
        }
        for op in batch {
            let outcome = result.clone().map_err(io::Error::other);
            match op {
                Op::Append(_, cb) => cb.log_io_completed(outcome),
                Op::Meta(_, _, Some(tx)) => {
                    let _ = tx.send(outcome);
                }
                Op::Close(done) => closed = Some(done),
                _ => {}
            }
        }
        if closed.is_some() {
            break;
        }
    }
    drop(db);
    if let Some(done) = closed {
        let _ = done.send(());
    }
}

fn write_batch(db: &Database, batch: &[Op]) -> Result<(), Box<dyn std::error::Error>> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        for op in batch {
            match op {
                Op::Append(entries, _) => {
                    for (index, bytes) in entries {
                        log.insert(*index, bytes.as_slice())?;
                    }
                }
                Op::Truncate(from) => log.retain_in(*from.., |_, _| false)?,
                Op::Purge(upto, id) => {
                    log.retain_in(..=*upto, |_, _| false)?;
                    meta.insert("purged", id.as_slice())?;
                }
                Op::Meta(key, bytes, _) => {
                    meta.insert(*key, bytes.as_slice())?;
                }
                Op::Close(_) => {}
            }
        }
    }
    txn.commit()?;
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self
            .lock()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().vote = Some(*vote);
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.save_meta("vote", bytes, true).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.lock().committed = committed;
        let bytes = serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(&e))?;
        // Not needed for safety (only speeds up restart), so it rides along with the next batch.
        self.save_meta("committed", bytes, false).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut inner = self.lock();
            for entry in entries {
                if self.writer.is_some() {
                    let bytes =
                        serde_json::to_vec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
                    encoded.push((entry.log_id.index, bytes));
                }
                inner.log.insert(entry.log_id.index, entry);
            }
        }
        self.send(Op::Append(encoded, callback))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.lock().log.split_off(&log_id.index);
        self.send(Op::Truncate(log_id.index))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        {
            let mut inner = self.lock();
            inner.last_purged = Some(log_id);
            let keep = inner.log.split_off(&(log_id.index + 1));
            inner.log = keep;
        }
        let bytes =
            serde_json::to_vec(&Some(log_id)).map_err(|e| StorageIOError::write_logs(&e))?;
        self.send(Op::Purge(log_id.index, bytes))
    }
}
