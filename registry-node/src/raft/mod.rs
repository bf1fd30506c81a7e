//! openraft adaptors: the type configuration, the durable log
//! ([`log_store`]), the state machine around the pure store ([`state_machine`])
//! and the network seam ([`network`]). Every write of the registry — KV,
//! catalog, sessions, txn — goes through [`RaftNode::write`].

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};

use crate::state::{Request, Response};
pub use state_machine::Shared;

/// Raft node IDs are derived from the agent's node UUID.
pub type NodeId = u64;
/// A Raft member's address (`ip:server-port`).
pub type Node = BasicNode;

openraft::declare_raft_types!(
    /// openraft type configuration of the registry.
    pub TypeConfig:
        D = Vec<Request>,
        R = Vec<Response>,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// Errors of the write path, mapped by the HTTP layer to Consul's messages.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// No leader is known (or this server is not it and cannot forward yet).
    #[error("No cluster leader")]
    NoLeader,
    /// The node is shutting down or Raft failed fatally.
    #[error("raft: {0}")]
    Fatal(String),
}

/// Options for starting Raft.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Where `raft.db` and `snapshots/` live; `None` keeps everything in memory (`-dev`).
    pub dir: Option<PathBuf>,
    /// This server's address as peers reach it.
    pub addr: String,
    /// Bootstrap a single-voter cluster if no state exists (`-bootstrap`, `-bootstrap-expect=1`, `-dev`).
    pub bootstrap: bool,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout range (min, max).
    pub election: (Duration, Duration),
    /// Take a snapshot after this many applied entries (`raft_snapshot_threshold`).
    pub snapshot_threshold: u64,
    /// Entries kept in the log after a snapshot (`raft_trailing_logs`).
    pub trailing_logs: u64,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            dir: None,
            addr: "127.0.0.1:8300".into(),
            bootstrap: true,
            heartbeat: Duration::from_millis(100),
            election: (Duration::from_millis(500), Duration::from_millis(1000)),
            snapshot_threshold: 16384,
            trailing_logs: 10000,
        }
    }
}

/// A write waiting for its batch to commit.
type Pending = (Request, oneshot::Sender<Result<Response, WriteError>>);

/// Most requests in one log entry.
const MAX_BATCH: usize = 1024;

/// A running Raft member with the state it replicates.
#[derive(Clone)]
pub struct RaftNode {
    /// This member's ID.
    pub id: NodeId,
    /// The openraft handle.
    pub raft: Raft<TypeConfig>,
    /// The applied state and its notifier.
    pub shared: Arc<Shared>,
    /// The log, kept to close it on shutdown.
    log: log_store::LogStore,
    /// Queue of the group-commit batcher.
    batch_tx: mpsc::Sender<Pending>,
}

/// The Raft ID of a node UUID: its first 8 bytes (UUIDs are random, collisions improbable).
pub fn node_id_from_uuid(uuid: &str) -> NodeId {
    let hex: String = uuid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(16)
        .collect();
    u64::from_str_radix(&hex, 16).unwrap_or(0).max(1)
}

impl RaftNode {
    /// Opens the log and state, starts Raft and bootstraps when asked and pristine.
    pub async fn start(id: NodeId, opts: RaftOptions) -> anyhow::Result<RaftNode> {
        let config = Config {
            cluster_name: "registry".into(),
            heartbeat_interval: opts.heartbeat.as_millis() as u64,
            election_timeout_min: opts.election.0.as_millis() as u64,
            election_timeout_max: opts.election.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(opts.snapshot_threshold),
            max_in_snapshot_log_to_keep: opts.trailing_logs,
            ..Default::default()
        };
        let config = Arc::new(config.validate()?);
        let shared = Arc::new(Shared::default());
        let (log_store, snapshot_dir) = match &opts.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (
                    log_store::LogStore::open(&dir.join("raft.db"))?,
                    Some(dir.join("snapshots")),
                )
            }
            None => (log_store::LogStore::in_memory(), None),
        };
        let sm = state_machine::StateMachine::open(shared.clone(), snapshot_dir)?;
        let raft = Raft::new(id, config, network::Network, log_store.clone(), sm).await?;
        if opts.bootstrap {
            let members = BTreeMap::from([(
                id,
                BasicNode {
                    addr: opts.addr.clone(),
                },
            )]);
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(id, "bootstrapped a new single-server raft cluster"),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    tracing::debug!("raft state exists; not bootstrapping")
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (batch_tx, batch_rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(batch_loop(raft.clone(), batch_rx, opts.snapshot_threshold));
        Ok(RaftNode {
            id,
            raft,
            shared,
            log: log_store,
            batch_tx,
        })
    }

    /// Proposes a write and waits until it is committed and applied.
    pub async fn write(&self, req: Request) -> Result<Response, WriteError> {
        let (tx, rx) = oneshot::channel();
        let down = || WriteError::Fatal("raft is shut down".into());
        self.batch_tx.send((req, tx)).await.map_err(|_| down())?;
        rx.await.map_err(|_| down())?
    }

    /// The current leader's ID, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// Waits (up to `timeout`) until some leader is known.
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "leader known")
            .await
            .is_ok()
    }

    /// Confirms leadership with a quorum and waits until the read point is applied (`?consistent`).
    pub async fn linearizable_barrier(&self) -> Result<(), WriteError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|_| WriteError::NoLeader)
    }

    /// Stops Raft and closes the log (everything acknowledged is already on disk).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.log.close().await;
    }
}

/// Group commit: writes that arrive while a batch is being committed wait in
/// the queue and go out together as the next log entry, so N concurrent
/// writers share one append and one fsync. openraft handles one entry's
/// flush at a time, so batching above it is what makes concurrency pay.
/// Requests keep their order; each is applied in turn at the entry's index.
///
/// Because an entry may carry many requests, the snapshot threshold is also
/// applied to requests: after that many, a snapshot is triggered, which keeps
/// the retained log (and memory) bounded under heavy concurrent load.
async fn batch_loop(raft: Raft<TypeConfig>, mut rx: mpsc::Receiver<Pending>, snapshot_every: u64) {
    let mut since_snapshot = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (requests, waiters): (Vec<Request>, Vec<_>) = batch.into_iter().unzip();
        since_snapshot += requests.len() as u64;
        if since_snapshot >= snapshot_every {
            since_snapshot = 0;
            let _ = raft.trigger().snapshot().await;
        }
        match raft.client_write(requests).await {
            Ok(resp) => {
                for (waiter, response) in waiters.into_iter().zip(resp.data) {
                    let _ = waiter.send(Ok(response));
                }
            }
            Err(e) => {
                let err = match e {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                        WriteError::NoLeader
                    }
                    RaftError::APIError(e) => WriteError::Fatal(e.to_string()),
                    RaftError::Fatal(e) => WriteError::Fatal(e.to_string()),
                };
                for waiter in waiters {
                    let _ = waiter.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::StorageError;
    use openraft::testing::{StoreBuilder, Suite};
    use tempfile::TempDir;

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::*;

    /// Builds a durable log and state machine in a fresh temp dir.
    struct DurableStore;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for DurableStore {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().expect("temp dir");
            let log = LogStore::open(&dir.path().join("raft.wal")).expect("open log");
            let sm = StateMachine::open(
                Arc::new(Shared::default()),
                Some(dir.path().join("snapshots")),
            )
            .expect("open state machine");
            Ok((dir, log, sm))
        }
    }

    /// Builds the in-memory (`-dev`) variant.
    struct MemoryStore;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for MemoryStore {
        async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<NodeId>> {
            let sm =
                StateMachine::open(Arc::new(Shared::default()), None).expect("open state machine");
            Ok(((), LogStore::in_memory(), sm))
        }
    }

    #[test]
    fn durable_store_passes_openraft_suite() {
        Suite::test_all(DurableStore).expect("openraft storage suite");
    }

    #[test]
    fn memory_store_passes_openraft_suite() {
        Suite::test_all(MemoryStore).expect("openraft storage suite");
    }
}
