//! Raft cluster suite: N in-process `RaftNode`s talking server RPC over
//! loopback TCP, each with its own temp data dir. One test binary (STYLE.md
//! practice 10); every wait is on a condition with a timeout (practice 9).
//!
//! `TestCluster` lives here for now; it moves behind the `test-util` feature
//! once the agent starts servers with RPC.

mod t10_basic;
mod t20_failover;
mod t30_no_quorum;
mod t35_partition;
mod t40_membership;
mod t50_linearizable;
mod t60_peers_json;

mod lincheck;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use openraft::BasicNode;
use registry_node::raft::{NodeId, RaftNode, RaftOptions};
use registry_node::state::{Command, KvSet, Request, Response};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Raft timing of the suite: fast, but with room for a loaded 2-core machine.
pub const HEARTBEAT: Duration = Duration::from_millis(50);
/// Election timeout range.
pub const ELECTION: (Duration, Duration) = (Duration::from_millis(300), Duration::from_millis(600));
/// Longest acceptable time to a refused write or read without a leader (the
/// design bound is ~2× the election timeout plus the lease; this is a hang
/// detector, not a benchmark).
pub const BOUND_NO_LEADER: Duration = Duration::from_secs(5);
/// Default bound of waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// N servers; server `i` has Raft ID `i + 1`.
pub struct TestCluster {
    /// Live servers (`None` = killed).
    pub nodes: Vec<Option<RaftNode>>,
    /// RPC address of each server, kept across restarts.
    pub addrs: Vec<SocketAddr>,
    dirs: Vec<TempDir>,
    /// Adjusts every server's options (snapshot thresholds, ...).
    tweak: fn(&mut RaftOptions),
}

impl TestCluster {
    /// Starts `n` servers and bootstraps them as one cluster of `n` voters.
    pub async fn start(n: usize) -> TestCluster {
        Self::start_with(n, |_| {}).await
    }

    /// Like [`TestCluster::start`], with `tweak` applied to every server's options.
    pub async fn start_with(n: usize, tweak: fn(&mut RaftOptions)) -> TestCluster {
        let mut c = TestCluster {
            nodes: Vec::new(),
            addrs: Vec::new(),
            dirs: Vec::new(),
            tweak,
        };
        for _ in 0..n {
            c.add_node().await;
        }
        let members: BTreeMap<NodeId, BasicNode> = (0..n)
            .map(|i| (Self::id(i), BasicNode::new(c.addrs[i].to_string())))
            .collect();
        let bootstrapped = c
            .node(0)
            .bootstrap_cluster(members)
            .await
            .expect("bootstrap");
        assert!(bootstrapped, "pristine node bootstraps");
        c
    }

    /// Raft ID of server `i`.
    pub fn id(i: usize) -> NodeId {
        i as NodeId + 1
    }

    /// Starts one more pristine server that is not a member yet; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind rpc");
        let addr = listener.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("temp dir");
        let i = self.nodes.len();
        let node = RaftNode::start_server(
            Self::id(i),
            self.opts(&dir, addr),
            listener,
            CancellationToken::new(),
        )
        .await
        .expect("raft starts");
        self.nodes.push(Some(node));
        self.addrs.push(addr);
        self.dirs.push(dir);
        i
    }

    fn opts(&self, dir: &TempDir, addr: SocketAddr) -> RaftOptions {
        let mut opts = RaftOptions {
            dir: Some(dir.path().join("raft")),
            addr: addr.to_string(),
            bootstrap: false,
            heartbeat: HEARTBEAT,
            election: ELECTION,
            ..RaftOptions::default()
        };
        (self.tweak)(&mut opts);
        opts
    }

    /// Server `i` (panics if killed).
    pub fn node(&self, i: usize) -> &RaftNode {
        self.nodes[i].as_ref().expect("server is running")
    }

    /// Indexes of the running servers.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// The server every running member agrees leads, if any.
    pub fn leader(&self) -> Option<usize> {
        let live = self.live();
        let leader = live.iter().copied().find(|i| self.node(*i).is_leader())?;
        let id = Self::id(leader);
        live.iter()
            .all(|i| self.node(*i).leader() == Some(id))
            .then_some(leader)
    }

    /// Waits until the running servers agree on a leader; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> usize {
        let mut found = None;
        wait_until(timeout, "agreed leader", || {
            found = self.leader();
            found.is_some()
        })
        .await;
        found.expect("leader")
    }

    /// Some running follower of the current leader.
    pub fn follower(&self) -> usize {
        let leader = self.leader().expect("leader");
        self.live()
            .into_iter()
            .find(|i| *i != leader)
            .expect("a follower")
    }

    /// Shuts server `i` down (its RPC port closes; its data dir stays).
    pub async fn kill(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("server is running");
        node.shutdown().await;
    }

    /// Restarts server `i` on its data dir and RPC address.
    pub async fn restart(&mut self, i: usize) {
        self.try_restart(i).await.expect("raft restarts");
    }

    /// Like [`TestCluster::restart`], returning the start error.
    pub async fn try_restart(&mut self, i: usize) -> anyhow::Result<()> {
        assert!(self.nodes[i].is_none(), "server {i} is running");
        let addr = self.addrs[i];
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebind {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebind {addr}: {e}"),
            }
        };
        let node = RaftNode::start_server(
            Self::id(i),
            self.opts(&self.dirs[i], addr),
            listener,
            CancellationToken::new(),
        )
        .await?;
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Server `i`'s Raft directory (`<data-dir>/raft`).
    pub fn raft_dir(&self, i: usize) -> std::path::PathBuf {
        self.dirs[i].path().join("raft")
    }

    /// The value of `key` in server `i`'s applied state.
    pub fn kv(&self, i: usize, key: &str) -> Option<Vec<u8>> {
        self.node(i)
            .shared
            .read(|s| s.kv().get(key).and_then(|p| p.value.clone()))
    }

    /// Waits until every running server has applied `key = value`.
    pub async fn wait_replicated(&self, key: &str, value: &str) {
        let live = self.live();
        wait_until(WAIT, &format!("{key}={value} everywhere"), || {
            live.iter()
                .all(|i| self.kv(*i, key).as_deref() == Some(value.as_bytes()))
        })
        .await;
    }

    /// Cuts (or restores) every link between server `i` and the others, both
    /// directions, at the transport: calls fail as unreachable.
    pub fn isolate(&self, i: usize, cut: bool) {
        for j in self.live() {
            if j != i {
                self.node(i)
                    .rpc_client()
                    .set_blocked(&self.addrs[j].to_string(), cut);
                self.node(j)
                    .rpc_client()
                    .set_blocked(&self.addrs[i].to_string(), cut);
            }
        }
    }

    /// Shuts every running server down.
    pub async fn shutdown(mut self) {
        for i in self.live() {
            self.kill(i).await;
        }
    }
}

/// Polls `cond` until it holds; panics after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A KV set request.
pub fn set(key: &str, value: &str) -> Request {
    Request {
        now_ms: 0,
        cmd: Command::KvSet(KvSet {
            key: key.to_string(),
            value: Some(value.as_bytes().to_vec()),
            flags: 0,
            cas: None,
            acquire: None,
            release: None,
        }),
    }
}

/// Writes `key = value` through server `i` and asserts success.
pub async fn put(c: &TestCluster, i: usize, key: &str, value: &str) {
    let resp = c.node(i).write(set(key, value)).await.expect("write");
    assert_eq!(resp, Response::Bool(true), "set {key}");
}
