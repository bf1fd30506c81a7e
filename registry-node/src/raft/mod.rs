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

use crate::state::{Request, Response};
pub use state_machine::Shared;

/// Raft node IDs are derived from the agent's node UUID.
pub type NodeId = u64;
/// A Raft member's address (`ip:server-port`).
pub type Node = BasicNode;

openraft::declare_raft_types!(
    /// openraft type configuration of the registry.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// Errors of the write path, mapped by the HTTP layer to Consul's messages.
#[derive(Debug, thiserror::Error)]
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
        Ok(RaftNode {
            id,
            raft,
            shared,
            log: log_store,
        })
    }

    /// Proposes a write and waits until it is committed and applied.
    pub async fn write(&self, req: Request) -> Result<Response, WriteError> {
        match self.raft.client_write(req).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(WriteError::NoLeader)
            }
            Err(RaftError::APIError(e)) => Err(WriteError::Fatal(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(WriteError::Fatal(e.to_string())),
        }
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
