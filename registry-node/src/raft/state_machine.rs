//! openraft state machine adaptor around the pure [`Store`]. Applying an entry
//! is `Store::apply`; afterwards the touched watch keys are handed to the
//! [`Notifier`] so blocking queries wake. Snapshots are the store serialized,
//! written atomically to `<data-dir>/raft/snapshots/current.snap`.

use std::io::{self, Cursor, Write};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};

use super::{Entry, Node, NodeId, TypeConfig};
use crate::state::{Response, Store};
use crate::watch::Notifier;

/// The applied state and the Raft bookkeeping that must stay in step with it.
#[derive(Default)]
pub struct Applied {
    /// The replicated state.
    pub store: Store,
    /// Last applied log id.
    pub last_applied: Option<LogId<NodeId>>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, Node>,
}

/// What the HTTP layer reads: the applied state behind a lock (short critical
/// sections: readers clone out what they return) and the notifier.
#[derive(Default)]
pub struct Shared {
    /// Applied state.
    pub applied: RwLock<Applied>,
    /// Blocking-query notifier.
    pub notifier: Notifier,
}

impl Shared {
    /// Runs `f` with read access to the store.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.applied.read().expect("state lock").store)
    }
}

/// The openraft state machine.
pub struct StateMachine {
    shared: Arc<Shared>,
    snapshot_dir: Option<PathBuf>,
    current: CurrentSnapshot,
}

/// The newest snapshot, shared with the builders that replace it.
type CurrentSnapshot = Arc<std::sync::Mutex<Option<(SnapshotMeta<NodeId, Node>, Vec<u8>)>>>;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Snapshot file layout: `[u32 LE meta length][meta JSON][store JSON]`.
fn encode_file(meta: &SnapshotMeta<NodeId, Node>, data: &[u8]) -> io::Result<Vec<u8>> {
    let meta = serde_json::to_vec(meta).map_err(io_err)?;
    let mut out = Vec::with_capacity(4 + meta.len() + data.len());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(data);
    Ok(out)
}

fn decode_file(bytes: &[u8]) -> io::Result<(SnapshotMeta<NodeId, Node>, Vec<u8>)> {
    let len = u32::from_le_bytes(
        bytes
            .get(..4)
            .ok_or_else(|| io_err("short snapshot"))?
            .try_into()
            .map_err(io_err)?,
    ) as usize;
    let meta = serde_json::from_slice(
        bytes
            .get(4..4 + len)
            .ok_or_else(|| io_err("short snapshot"))?,
    )
    .map_err(io_err)?;
    Ok((meta, bytes[4 + len..].to_vec()))
}

impl StateMachine {
    /// Opens the state machine, restoring the last snapshot from `snapshot_dir` if any.
    pub fn open(shared: Arc<Shared>, snapshot_dir: Option<PathBuf>) -> io::Result<Self> {
        let mut sm = StateMachine {
            shared,
            snapshot_dir,
            current: CurrentSnapshot::default(),
        };
        if let Some(dir) = &sm.snapshot_dir {
            std::fs::create_dir_all(dir)?;
            let path = dir.join("current.snap");
            if path.exists() {
                let (meta, data) = decode_file(&std::fs::read(&path)?)?;
                let store = Store::from_snapshot(&data).map_err(io_err)?;
                tracing::info!(index = store.index(), path = %path.display(), "restored state from snapshot");
                let mut applied = sm.shared.applied.write().expect("state lock");
                applied.store = store;
                applied.last_applied = meta.last_log_id;
                applied.membership = meta.last_membership.clone();
                drop(applied);
                sm.current = Arc::new(std::sync::Mutex::new(Some((meta, data))));
            }
        }
        Ok(sm)
    }

    fn persist(&self, meta: &SnapshotMeta<NodeId, Node>, data: &[u8]) -> io::Result<()> {
        persist(self.snapshot_dir.as_ref(), meta, data)
    }
}

fn persist(
    dir: Option<&PathBuf>,
    meta: &SnapshotMeta<NodeId, Node>,
    data: &[u8],
) -> io::Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    let tmp = dir.join("current.snap.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&encode_file(meta, data)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join("current.snap"))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Builds a snapshot from a consistent read of the applied state.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    snapshot_dir: Option<PathBuf>,
    current: CurrentSnapshot,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // Copy under the lock, serialize outside it: writes wait only for the copy.
        let (meta, store) = {
            let applied = self.shared.applied.read().expect("state lock");
            let store = applied.store.clone();
            let id = applied
                .last_applied
                .map(|l| format!("{}-{}", l.leader_id, l.index))
                .unwrap_or_default();
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id: id,
            };
            (meta, store)
        };
        let data = store.to_snapshot();
        persist(self.snapshot_dir.as_ref(), &meta, &data)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        tracing::debug!(index = ?meta.last_log_id, bytes = data.len(), "built snapshot");
        *self.current.lock().expect("snapshot lock") = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let applied = self.shared.applied.read().expect("state lock");
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let changes = {
            let mut applied = self.shared.applied.write().expect("state lock");
            let mut responses = Vec::new();
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(batch) => batch
                        .iter()
                        .map(|req| applied.store.apply(entry.log_id.index, req))
                        .collect(),
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                };
                responses.push(response);
            }
            let changes = applied.store.take_changes();
            (responses, changes)
        };
        self.shared.notifier.notify(&changes.1);
        Ok(changes.0)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            snapshot_dir: self.snapshot_dir.clone(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let store = Store::from_snapshot(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.persist(meta, &data)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        {
            let mut applied = self.shared.applied.write().expect("state lock");
            applied.store = store;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
        }
        *self.current.lock().expect("snapshot lock") = Some((meta.clone(), data));
        // Any view may have changed.
        self.shared.notifier.notify_all();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self
            .current
            .lock()
            .expect("snapshot lock")
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(data.clone())),
            }))
    }
}
