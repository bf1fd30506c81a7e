//! openraft adaptors: the type configuration, the durable log
//! ([`log_store`]), the state machine around the pure store ([`state_machine`])
//! and the network over server RPC ([`network`]). Every write of the registry
//! — KV, catalog, sessions, txn — goes through [`RaftNode::write`].
//!
//! In a cluster a follower forwards its writes to the leader ([`write`]),
//! serves the leader's RPCs ([`service`]) and asks the leader for a read index
//! before a linearizable read ([`RaftNode::read_barrier`]). Membership
//! changes live in [`cluster`].

pub mod cluster;
pub mod log_store;
pub mod network;
pub mod recovery;
pub mod service;
pub mod state_machine;
pub mod write;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, RaftMetrics, SnapshotPolicy};
use registry_api::Consistency;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::rpc::{RpcClient, RpcRequest, RpcResponse, RpcServerHandle, spawn_rpc_server};
use crate::state::{Request, Response};
pub use cluster::{ClusterError, Member};
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

/// Errors of the write path and of read barriers, mapped by the HTTP layer to
/// Consul's messages.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// No leader is known, or the known one cannot be reached or has lost its quorum.
    #[error("No cluster leader")]
    NoLeader,
    /// The node is shutting down, Raft failed, or the outcome of a write is
    /// unknown (timed out waiting for its commit, connection to the leader broke).
    #[error("raft: {0}")]
    Fatal(String),
}

impl WriteError {
    /// True for [`WriteError::NoLeader`].
    pub fn is_no_leader(&self) -> bool {
        matches!(self, WriteError::NoLeader)
    }
}

/// Options for starting Raft.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Where `raft.db` and `snapshots/` live; `None` keeps everything in memory (`-dev`).
    pub dir: Option<PathBuf>,
    /// This server's RPC address as peers reach it (`ip:server-port`), stored in the membership.
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

/// Timeouts derived from the Raft timing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    heartbeat: Duration,
    election_max: Duration,
}

/// How long a write may wait for its commit once proposed (Consul's `rpc_hold_timeout`).
/// Past it the outcome is unknown and the caller gets [`WriteError::Fatal`].
const COMMIT_TIMEOUT: Duration = Duration::from_secs(7);

impl Timing {
    /// How long a write or read waits for a leader to appear or answer
    /// before [`WriteError::NoLeader`]: two election timeouts cover one
    /// failed election round plus a successful one.
    fn leader_wait(&self) -> Duration {
        self.election_max * 2
    }

    /// A leader that has not heard from a quorum for this long presumes itself
    /// cut off and refuses writes and reads (openraft 0.9 does not step down).
    fn lease(&self) -> Duration {
        self.election_max
    }

    /// Retry interval while waiting for a leader.
    fn poll(&self) -> Duration {
        (self.heartbeat / 2).max(Duration::from_millis(10))
    }
}

/// Where writes and reads go right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// This server leads and has heard from a quorum recently.
    Local,
    /// Another server leads; its RPC address.
    Remote(NodeId, String),
    /// No usable leader.
    None,
}

/// What the write path, the RPC service and the public API share.
#[derive(Clone)]
pub(crate) struct Core {
    id: NodeId,
    raft: Raft<TypeConfig>,
    rpc: RpcClient,
    timing: Timing,
    /// When an AppendEntries from a leader was last accepted (`X-Consul-LastContact`).
    contact: Arc<Mutex<Option<Instant>>>,
    started: Instant,
    /// Answers HTTP calls forwarded by client agents (set by the agent).
    api: Arc<std::sync::OnceLock<Arc<dyn crate::rpc::ApiHandler>>>,
}

impl Core {
    /// True when this leader has not heard from a quorum within the lease.
    fn quorum_stale(&self, m: &RaftMetrics<NodeId, Node>) -> bool {
        let voters = m.membership_config.membership().voter_ids().count();
        voters > 1
            && m.millis_since_quorum_ack
                .is_some_and(|ms| ms > self.timing.lease().as_millis() as u64)
    }

    fn route(&self) -> Route {
        // Borrow, don't clone: this runs on every read and every batch.
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        match m.current_leader {
            Some(l) if l == self.id => {
                if self.quorum_stale(&m) {
                    Route::None
                } else {
                    Route::Local
                }
            }
            Some(l) => match m.membership_config.membership().get_node(&l) {
                Some(node) => Route::Remote(l, node.addr.clone()),
                None => Route::None,
            },
            None => Route::None,
        }
    }
}

/// A batch of requests waiting to be committed together, and who waits for them.
pub(crate) struct Pending {
    reqs: Vec<Request>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Response>, WriteError>>,
    /// Forwarded by a follower: never forwarded again, so two servers that
    /// disagree about the leader cannot bounce a write between them.
    forwarded: bool,
}

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
    /// The RPC address peers use, as stored in the membership.
    pub addr: String,
    core: Core,
    /// The log, kept to close it on shutdown.
    log: log_store::LogStore,
    /// Queue of the group-commit batcher.
    batch_tx: mpsc::Sender<Pending>,
    /// The RPC server, if this node serves one; stopped on shutdown.
    rpc_server: Option<Arc<RpcServerHandle>>,
    /// Stops the batcher and the RPC server.
    token: CancellationToken,
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
    /// Opens the log and state, starts Raft and bootstraps when asked and
    /// pristine. Serves no RPC: peers cannot reach this node (single server,
    /// `-dev`). Use [`RaftNode::start_server`] for a cluster member.
    pub async fn start(id: NodeId, opts: RaftOptions) -> anyhow::Result<RaftNode> {
        Self::start_inner(id, opts, None, CancellationToken::new()).await
    }

    /// Like [`RaftNode::start`], and serves server RPC (Raft, forwarded
    /// writes, read index) on the already-bound `rpc` listener until `token` is
    /// cancelled or [`RaftNode::shutdown`] runs. `opts.addr` must be the
    /// address peers reach that listener at.
    pub async fn start_server(
        id: NodeId,
        opts: RaftOptions,
        rpc: TcpListener,
        token: CancellationToken,
    ) -> anyhow::Result<RaftNode> {
        Self::start_inner(id, opts, Some(rpc), token).await
    }

    async fn start_inner(
        id: NodeId,
        opts: RaftOptions,
        rpc_listener: Option<TcpListener>,
        token: CancellationToken,
    ) -> anyhow::Result<RaftNode> {
        let token = token.child_token();
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
        // `peers.json` rewrites the configuration before openraft reads it.
        recovery::apply_peers_json(opts.dir.as_deref(), id, &log_store, &shared).await?;
        let rpc = RpcClient::new();
        let network = network::Network {
            id,
            client: rpc.clone(),
        };
        let raft = Raft::new(id, config, network, log_store.clone(), sm).await?;
        let core = Core {
            id,
            raft: raft.clone(),
            rpc,
            timing: Timing {
                heartbeat: opts.heartbeat,
                election_max: opts.election.1,
            },
            contact: Arc::default(),
            started: Instant::now(),
            api: Arc::default(),
        };
        let (batch_tx, batch_rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write::batch_loop(
            core.clone(),
            batch_rx,
            opts.snapshot_threshold,
            token.clone(),
        ));
        let rpc_server = match rpc_listener {
            Some(listener) => {
                let handler = Arc::new(service::RaftService {
                    core: core.clone(),
                    batch_tx: batch_tx.clone(),
                });
                Some(Arc::new(spawn_rpc_server(
                    listener,
                    handler,
                    token.clone(),
                )?))
            }
            None => None,
        };
        let node = RaftNode {
            id,
            raft,
            shared,
            addr: opts.addr.clone(),
            core,
            log: log_store,
            batch_tx,
            rpc_server,
            token,
        };
        if opts.bootstrap {
            let members = BTreeMap::from([(
                id,
                BasicNode {
                    addr: opts.addr.clone(),
                },
            )]);
            match node.raft.initialize(members).await {
                Ok(()) => tracing::info!(id, "bootstrapped a new single-server raft cluster"),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    tracing::debug!("raft state exists; not bootstrapping")
                }
                Err(e) => {
                    node.shutdown().await;
                    return Err(e.into());
                }
            }
        }
        Ok(node)
    }

    /// Runs an HTTP API call on the server at `addr` (a follower asking the
    /// leader to make a change only the leader can make).
    pub async fn call_http(
        &self,
        addr: &str,
        call: crate::rpc::HttpCall,
    ) -> Result<crate::rpc::HttpReply, crate::rpc::RpcError> {
        match self
            .core
            .rpc
            .call(addr, RpcRequest::Http(call), COMMIT_TIMEOUT)
            .await?
        {
            RpcResponse::Http(reply) => Ok(reply),
            _ => Err(crate::rpc::RpcError::Unexpected {
                addr: addr.to_string(),
            }),
        }
    }

    /// Lets this server answer HTTP calls forwarded by client agents.
    pub fn set_api_handler(&self, handler: Arc<dyn crate::rpc::ApiHandler>) {
        let _ = self.core.api.set(handler);
    }

    /// The client this server calls its peers with (tests cut links through it).
    #[cfg(feature = "test-util")]
    pub fn rpc_client(&self) -> &RpcClient {
        &self.core.rpc
    }

    /// The address the RPC server is bound to, if it runs.
    pub fn rpc_local_addr(&self) -> Option<std::net::SocketAddr> {
        self.rpc_server.as_ref().map(|s| s.local_addr)
    }

    /// Proposes a write and waits until it is committed and applied. On a
    /// follower the write is forwarded to the leader; during an election it is
    /// retried for about two election timeouts, then fails with
    /// [`WriteError::NoLeader`].
    pub async fn write(&self, req: Request) -> Result<Response, WriteError> {
        let mut resp = self.write_batch(vec![req]).await?;
        resp.pop()
            .ok_or_else(|| WriteError::Fatal("empty response".into()))
    }

    /// Proposes several requests as one unit (one log entry unless the batch
    /// is huge); one response per request, in order.
    pub async fn write_batch(&self, reqs: Vec<Request>) -> Result<Vec<Response>, WriteError> {
        write::submit(&self.batch_tx, reqs, false).await
    }

    /// The current leader's ID, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// `X-Consul-KnownLeader`: a leader is known and, if it is this server,
    /// it heard from a quorum recently.
    pub fn known_leader(&self) -> bool {
        self.core.route() != Route::None
    }

    /// `X-Consul-LastContact` in ms: 0 on the leader, otherwise the time since
    /// a leader's AppendEntries (heartbeat) was last accepted, or since start
    /// when none ever was.
    pub fn last_contact_ms(&self) -> u64 {
        if self.is_leader() {
            return 0;
        }
        let since = self
            .core
            .contact
            .lock()
            .expect("contact lock")
            .unwrap_or(self.core.started);
        since.elapsed().as_millis() as u64
    }

    /// Waits (up to `timeout`) until some leader is known.
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "leader known")
            .await
            .is_ok()
    }

    /// Makes a read of the local state safe for `consistency`:
    /// - `Stale`: nothing.
    /// - `Default`/`Consistent`: on the leader, confirm leadership with a
    ///   quorum and wait until the read point is applied (`ensure_linearizable`);
    ///   on a follower, ask the leader for its read index over RPC and wait
    ///   until this server has applied it.
    ///
    /// Fails with [`WriteError::NoLeader`] at once when no leader is known,
    /// and within about two election timeouts when it does not answer.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), WriteError> {
        match consistency {
            Consistency::Stale => Ok(()),
            Consistency::Default | Consistency::Consistent => self.read_index_barrier().await,
        }
    }

    /// Confirms leadership with a quorum and waits until the read point is applied (`?consistent`).
    pub async fn linearizable_barrier(&self) -> Result<(), WriteError> {
        self.read_barrier(Consistency::Consistent).await
    }

    async fn read_index_barrier(&self) -> Result<(), WriteError> {
        let wait = self.core.timing.leader_wait();
        match self.core.route() {
            Route::None => Err(WriteError::NoLeader),
            Route::Local => match tokio::time::timeout(wait, self.raft.ensure_linearizable()).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(RaftError::Fatal(e))) => Err(WriteError::Fatal(e.to_string())),
                Ok(Err(RaftError::APIError(_))) | Err(_) => Err(WriteError::NoLeader),
            },
            Route::Remote(_, addr) => {
                let index = match self.core.rpc.call(&addr, RpcRequest::ReadIndex, wait).await {
                    Ok(RpcResponse::ReadIndex(Ok(index))) => index,
                    Ok(RpcResponse::ReadIndex(Err(crate::rpc::RemoteRefusal::Failed(m)))) => {
                        return Err(WriteError::Fatal(m));
                    }
                    Ok(RpcResponse::ReadIndex(Err(_))) => return Err(WriteError::NoLeader),
                    Ok(_) => return Err(WriteError::Fatal("unexpected read-index answer".into())),
                    Err(e) => {
                        tracing::debug!(error = %e, "read index from leader failed");
                        return Err(WriteError::NoLeader);
                    }
                };
                self.raft
                    .wait(Some(COMMIT_TIMEOUT))
                    .applied_index_at_least(Some(index), "read index applied")
                    .await
                    .map(|_| ())
                    .map_err(|e| WriteError::Fatal(format!("waiting for read index {index}: {e}")))
            }
        }
    }

    /// Asks the server at `addr` (`ip:server-port`) about itself: its ID,
    /// whether it already has Raft state, and the leader it knows. For
    /// `-bootstrap-expect`: bootstrap only when no expected server has state.
    pub async fn ping(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<crate::rpc::PeerStatus, crate::rpc::RpcError> {
        match self.core.rpc.call(addr, RpcRequest::Ping, timeout).await? {
            RpcResponse::Pong(status) => Ok(status),
            _ => Err(crate::rpc::RpcError::Unexpected {
                addr: addr.to_string(),
            }),
        }
    }

    /// Stops the RPC server (peers now see this server as unreachable), stops
    /// Raft and the batcher, drops pooled connections and closes the log
    /// (everything acknowledged is already on disk).
    pub async fn shutdown(&self) {
        self.token.cancel();
        if let Some(server) = &self.rpc_server {
            server.shutdown().await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.core.rpc.close_all();
        self.log.close().await;
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
