//! Test harness (feature `test-util`): real agents in-process on port 0, and
//! [`TestCluster`]s of servers and clients joined by gossip on loopback, with
//! kill / graceful leave / restart on the same ports and data dir.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentHandle, AgentOptions, Listeners};
use crate::raft::RaftNode;

/// A running in-process agent and an HTTP client for it.
pub struct TestAgent {
    /// The agent handle.
    pub handle: AgentHandle,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client with no proxy.
    pub http: reqwest::Client,
}

impl TestAgent {
    /// Starts a dev-mode server with test options and waits until it leads and
    /// has registered itself.
    pub async fn start() -> TestAgent {
        Self::start_with(AgentOptions::for_test()).await
    }

    /// Starts an agent with the given options (ports are always 0) and waits
    /// until it is ready (a single server: leads and is in the catalog).
    pub async fn start_with(opts: AgentOptions) -> TestAgent {
        let listeners = Listeners::loopback(opts.server)
            .await
            .expect("bind listeners");
        let agent = Self::start_on(opts, listeners).await;
        agent.wait_ready().await;
        agent
    }

    /// Starts an agent on the given listeners without waiting for anything.
    pub async fn start_on(opts: AgentOptions, listeners: Listeners) -> TestAgent {
        let handle = Agent::start(opts, listeners, CancellationToken::new())
            .await
            .expect("agent starts");
        let base = format!("http://{}", handle.http_addr);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        TestAgent { handle, base, http }
    }

    /// The agent.
    pub fn agent(&self) -> &Arc<Agent> {
        &self.handle.agent
    }

    /// The Raft node (panics on a client agent).
    pub fn raft(&self) -> &RaftNode {
        self.handle.agent.raft.as_ref().expect("a server agent")
    }

    /// Waits until this agent leads and its node is in the catalog.
    pub async fn wait_ready(&self) {
        let node = self.handle.agent.opts.node_name.clone();
        wait_for(Duration::from_secs(10), "agent ready", || {
            self.raft().is_leader()
                && self
                    .raft()
                    .shared
                    .read(|s| s.catalog().node(&node).is_some())
        })
        .await;
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the agent.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One agent of a [`TestCluster`]: its options, ports and data dir survive a restart.
pub struct ClusterNode {
    /// The running agent (`None` = stopped).
    pub agent: Option<TestAgent>,
    /// Its options (node name, ID, server, join...).
    pub opts: AgentOptions,
    /// HTTP, server RPC (0 on clients) and gossip ports.
    pub ports: (u16, u16, u16),
    dir: tempfile::TempDir,
}

/// Servers and clients in one process, on loopback, joined by gossip. Servers
/// bootstrap with `-bootstrap-expect` = the number of servers.
pub struct TestCluster {
    /// The agents, servers first.
    pub nodes: Vec<ClusterNode>,
}

/// How long cluster waits may take on a loaded 2-core machine.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(30);

impl TestCluster {
    /// Starts `servers` servers and `clients` client agents; returns once the
    /// servers elected a leader and every agent sees every other alive.
    pub async fn start(servers: usize, clients: usize) -> TestCluster {
        let mut c = TestCluster { nodes: Vec::new() };
        for i in 0..servers + clients {
            c.add_node(i < servers, servers as u32).await;
        }
        c.wait_leader().await;
        c.wait_members_alive(servers + clients).await;
        c
    }

    /// A cluster with no agent yet (add them with [`TestCluster::add_with`]).
    pub fn empty() -> TestCluster {
        TestCluster { nodes: Vec::new() }
    }

    /// The options [`TestCluster::add_node`] uses for the next agent: named
    /// `serverN`/`clientN`, joining the first agent.
    pub fn options(&self, server: bool, expect: u32) -> AgentOptions {
        let i = self.nodes.len();
        let mut opts = AgentOptions::for_test();
        opts.node_name = format!("{}{i}", if server { "server" } else { "client" });
        opts.server = server;
        // As the `agent` command does: `-bootstrap-expect=1` self-elects.
        opts.bootstrap = server && expect == 1;
        opts.bootstrap_expect = if server { expect } else { 0 };
        if let Some(first) = self.nodes.first() {
            opts.join = vec![format!("127.0.0.1:{}", first.ports.2)];
        }
        opts
    }

    /// Starts one more agent that joins the first one; returns its index.
    pub async fn add_node(&mut self, server: bool, expect: u32) -> usize {
        let opts = self.options(server, expect);
        self.add_with(opts).await
    }

    /// Starts one more agent with `opts` (its data dir is a fresh temp dir).
    pub async fn add_with(&mut self, mut opts: AgentOptions) -> usize {
        let i = self.nodes.len();
        let server = opts.server;
        let dir = tempfile::tempdir().expect("temp dir");
        opts.data_dir = Some(dir.path().to_path_buf());
        let listeners = Listeners::loopback(server).await.expect("bind");
        let ports = (
            listeners.http.local_addr().expect("addr").port(),
            listeners
                .server_rpc
                .as_ref()
                .map_or(0, |l| l.local_addr().expect("addr").port()),
            listeners.serf_lan.local_addr().expect("addr").port(),
        );
        let agent = TestAgent::start_on(opts.clone(), listeners).await;
        self.nodes.push(ClusterNode {
            agent: Some(agent),
            opts,
            ports,
            dir,
        });
        i
    }

    /// Agent `i` (panics if stopped).
    pub fn agent(&self, i: usize) -> &TestAgent {
        self.nodes[i].agent.as_ref().expect("agent is running")
    }

    /// Indexes of the running agents.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].agent.is_some())
            .collect()
    }

    /// Indexes of the running servers.
    pub fn live_servers(&self) -> Vec<usize> {
        self.live()
            .into_iter()
            .filter(|i| self.nodes[*i].opts.server)
            .collect()
    }

    /// The server every running server agrees leads, if any.
    pub fn leader(&self) -> Option<usize> {
        let servers = self.live_servers();
        let leader = servers
            .iter()
            .copied()
            .find(|i| self.agent(*i).raft().is_leader())?;
        let id = self.agent(leader).raft().id;
        servers
            .iter()
            .all(|i| self.agent(*i).raft().leader() == Some(id))
            .then_some(leader)
    }

    /// Waits until the running servers agree on a leader; returns it.
    pub async fn wait_leader(&self) -> usize {
        let mut found = None;
        wait_for(CLUSTER_WAIT, "an agreed leader", || {
            found = self.leader();
            found.is_some()
        })
        .await;
        found.expect("leader")
    }

    /// Waits until every running agent sees `n` members alive.
    pub async fn wait_members_alive(&self, n: usize) {
        wait_for(
            CLUSTER_WAIT,
            &format!("{n} members alive everywhere"),
            || {
                self.live().into_iter().all(|i| {
                    self.agent(i)
                        .agent()
                        .gossip
                        .members()
                        .iter()
                        .filter(|m| m.status == registry_api::agent::MemberStatus::Alive as u8)
                        .count()
                        == n
                })
            },
        )
        .await;
    }

    /// Stops agent `i` abruptly: no leave, its sockets close (a crash as the
    /// others see it).
    pub async fn kill(&mut self, i: usize) {
        let agent = self.nodes[i].agent.take().expect("agent is running");
        agent.shutdown().await;
    }

    /// Graceful leave of agent `i`, then stop.
    pub async fn leave(&mut self, i: usize) {
        let agent = self.nodes[i].agent.take().expect("agent is running");
        agent.agent().leave().await;
        agent.shutdown().await;
    }

    /// Restarts agent `i` on its ports and data dir.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].agent.is_none(), "agent {i} is running");
        let node = &self.nodes[i];
        let (http, rpc, serf) = node.ports;
        let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
        let listeners = loop {
            match bind(http, rpc, serf, node.opts.server).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("rebind: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebind ports of agent {i}: {e}"),
            }
        };
        let mut opts = node.opts.clone();
        opts.data_dir = Some(node.dir.path().to_path_buf());
        let agent = TestAgent::start_on(opts, listeners).await;
        self.nodes[i].agent = Some(agent);
    }

    /// Cuts (or restores) every link between agent `i` and the others, both
    /// directions: gossip datagrams are dropped and server RPC calls fail as
    /// unreachable (a network partition as the agents see it).
    pub fn isolate(&self, i: usize, cut: bool) {
        let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let me = &self.nodes[i];
        for j in self.live() {
            if j == i {
                continue;
            }
            let other = &self.nodes[j];
            crate::gossip::transport::faults::set(addr(me.ports.2), addr(other.ports.2), cut);
            let (a, b) = (self.agent(i).agent(), self.agent(j).agent());
            // Each side's RPC towards the other's server port, if it has one.
            for (from, to) in [(a, other), (b, me)] {
                if to.ports.1 == 0 {
                    continue;
                }
                let target = addr(to.ports.1).to_string();
                match &from.raft {
                    Some(raft) => raft.rpc_client().set_blocked(&target, cut),
                    None => from.servers.rpc_client().set_blocked(&target, cut),
                }
            }
        }
    }

    /// Stops every running agent.
    pub async fn shutdown(mut self) {
        for i in self.live() {
            self.kill(i).await;
        }
    }
}

async fn bind(http: u16, rpc: u16, serf: u16, server: bool) -> std::io::Result<Listeners> {
    Ok(Listeners {
        http: TcpListener::bind(("127.0.0.1", http)).await?,
        server_rpc: if server {
            Some(TcpListener::bind(("127.0.0.1", rpc)).await?)
        } else {
            None
        },
        serf_lan: UdpSocket::bind(("127.0.0.1", serf)).await?,
        // Restarted agents serve DNS on a fresh port.
        dns: vec![crate::agent::bind_dns("127.0.0.1:0".parse().expect("addr")).await?],
    })
}
