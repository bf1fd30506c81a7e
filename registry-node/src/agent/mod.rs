//! The agent: wires Raft, the local service/check state, events and the HTTP
//! API together, runs the leader's duties and owns shutdown.
//!
//! Every write goes through [`Agent::write`], the one place the cluster issue
//! extends with forwarding to the leader.

mod cluster;
pub mod events;
pub mod local;
mod persist;
pub mod servers;
pub mod tasks;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use registry_api::{
    AgentServiceRegistration, CRITICAL, CatalogDeregistration, CatalogRegistration,
    CheckDefinition, HealthCheck, MAINTENANCE, NODE_MAINT_CHECK_ID, NodeService, PASSING,
    SERF_CHECK_ID, SERF_CHECK_NAME, SERVICE_MAINT_PREFIX, WARNING,
};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::{CheckRunner, HealthView, RunnerSettings};
use crate::gossip::{GossipConfig, GossipHandle, UdpTransport, spawn_gossip};
use crate::raft::{RaftNode, RaftOptions, WriteError, node_id_from_uuid};
use crate::state::{Command, Request, Response};
use events::EventLog;
use local::{LocalCheck, LocalService, LocalState};
use servers::ServerPool;

pub use cluster::{keyring_cluster_wide, mark_left, member_tags, resolve_join};

/// Errors of agent operations; the HTTP layer maps each to Consul's status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Unknown resource (404).
    #[error("{0}")]
    NotFound(String),
    /// No leader to take the write (500).
    #[error("No cluster leader")]
    NoLeader,
    /// A client agent knows no alive server (500).
    #[error("No known Consul servers")]
    NoServers,
    /// The state machine refused the write, or Raft failed (500).
    #[error("{0}")]
    Rpc(String),
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NoLeader => Error::NoLeader,
            WriteError::Fatal(m) => Error::Rpc(m),
        }
    }
}

/// Everything the agent needs, resolved from flags and config files.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Node name.
    pub node_name: String,
    /// Node UUID.
    pub node_id: String,
    /// Datacenter.
    pub datacenter: String,
    /// Address advertised to the cluster.
    pub advertise_addr: IpAddr,
    /// Run as a server (Raft voter).
    pub server: bool,
    /// Self-elect when no Raft state exists (`-bootstrap`, `-bootstrap-expect=1`, `-dev`).
    pub bootstrap: bool,
    /// `-bootstrap-expect` (for `info`).
    pub bootstrap_expect: u32,
    /// Data directory; `None` keeps everything in memory (`-dev`).
    pub data_dir: Option<PathBuf>,
    /// Server RPC port (advertised in `consul` service and Raft addresses).
    pub server_port: u16,
    /// Serf LAN port (advertised in members).
    pub serf_lan_port: u16,
    /// Node metadata.
    pub node_meta: BTreeMap<String, String>,
    /// Largest KV value (`limits.kv_max_value_size`).
    pub kv_max_value_size: usize,
    /// Largest transaction body (`limits.txn_max_req_len`).
    pub txn_max_req_len: usize,
    /// Default blocking wait.
    pub default_query_time: Duration,
    /// Longest blocking wait.
    pub max_query_time: Duration,
    /// Shortest session TTL accepted.
    pub session_ttl_min: Duration,
    /// Serve the web UI under `/ui/`.
    pub ui: bool,
    /// Raft timing.
    pub raft_heartbeat: Duration,
    /// Raft election timeout range.
    pub raft_election: (Duration, Duration),
    /// Snapshot after this many entries.
    pub raft_snapshot_threshold: u64,
    /// Entries kept after a snapshot.
    pub raft_trailing_logs: u64,
    /// Services from config files.
    pub services: Vec<AgentServiceRegistration>,
    /// Node checks from config files.
    pub checks: Vec<CheckDefinition>,
    /// Free-form effective configuration for `/v1/agent/self` `DebugConfig`.
    pub debug_config: serde_json::Value,
    /// Output-only check changes reach the catalog at most this often (`check_update_interval`).
    pub check_update_interval: Duration,
    /// Lower bound of `deregister_critical_service_after` (Consul: 1 minute).
    pub min_deregister_critical: Duration,
    /// Period of the full anti-entropy sync.
    pub sync_interval: Duration,
    /// Script checks from any source (`enable_script_checks`).
    pub enable_script_checks: bool,
    /// Script checks from config files (`enable_local_script_checks`).
    pub enable_local_script_checks: bool,
    /// Agent cap on check output (`check_output_max_size`).
    pub check_output_max_size: usize,
    /// `watches` from the configuration, run by the agent.
    pub watches: Vec<serde_json::Value>,
    /// Shortest check interval (Consul clamps to 1s).
    pub min_check_interval: Duration,
    /// LAN gossip parameters (timers, keyring, reconnect timeout); the agent
    /// fills in the identity and tags.
    pub gossip: GossipConfig,
    /// Addresses to join at start (`-join`, `-retry-join`), `host[:port]`.
    pub join: Vec<String>,
    /// Wait between join attempts (`-retry-interval`).
    pub retry_interval: Duration,
    /// Join attempts before giving up (`-retry-max`, 0 = forever).
    pub retry_max: u32,
    /// Rejoin the peers remembered in the data dir even after a graceful leave (`-rejoin`).
    pub rejoin_after_leave: bool,
    /// A failed server is removed from Raft after this long (autopilot's
    /// `cleanup_dead_servers` with `server_stabilization_time`).
    pub dead_server_grace: Duration,
    /// DNS interface (`domain`, `alt_domain`, `dns_config`).
    pub dns: crate::dns::DnsOptions,
}

impl AgentOptions {
    /// A dev-mode single server on loopback with fast timers, for tests.
    pub fn for_test() -> Self {
        AgentOptions {
            node_name: format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            node_id: uuid::Uuid::new_v4().to_string(),
            datacenter: "dc1".into(),
            advertise_addr: IpAddr::from([127, 0, 0, 1]),
            server: true,
            bootstrap: true,
            bootstrap_expect: 0,
            data_dir: None,
            server_port: 8300,
            serf_lan_port: 8301,
            node_meta: BTreeMap::new(),
            kv_max_value_size: 512 * 1024,
            txn_max_req_len: 512 * 1024,
            default_query_time: Duration::from_secs(300),
            max_query_time: Duration::from_secs(600),
            session_ttl_min: Duration::from_secs(1),
            ui: true,
            raft_heartbeat: Duration::from_millis(50),
            raft_election: (Duration::from_millis(150), Duration::from_millis(300)),
            raft_snapshot_threshold: 16384,
            raft_trailing_logs: 10000,
            services: Vec::new(),
            checks: Vec::new(),
            debug_config: serde_json::Value::Null,
            check_update_interval: Duration::from_secs(300),
            min_deregister_critical: Duration::ZERO,
            sync_interval: Duration::from_secs(60),
            enable_script_checks: false,
            enable_local_script_checks: false,
            check_output_max_size: 4096,
            watches: Vec::new(),
            min_check_interval: Duration::from_millis(10),
            gossip: GossipConfig::for_test("placeholder"),
            join: Vec::new(),
            retry_interval: Duration::from_millis(200),
            retry_max: 0,
            rejoin_after_leave: false,
            dead_server_grace: Duration::from_secs(2),
            dns: crate::dns::DnsOptions::default(),
        }
    }
}

/// The running agent, shared by the HTTP handlers and background tasks.
pub struct Agent {
    /// Resolved options.
    pub opts: AgentOptions,
    /// Raft and the replicated state (servers only).
    pub raft: Option<RaftNode>,
    /// The LAN gossip pool.
    pub gossip: GossipHandle,
    /// The servers a client agent forwards to (unused on servers).
    pub servers: ServerPool,
    /// Services and checks owned by this agent.
    pub local: Mutex<LocalState>,
    /// User events seen here.
    pub events: EventLog,
    /// Session ID → expiry deadline; kept by the leader only.
    pub session_deadlines: Mutex<HashMap<String, Instant>>,
    /// Cancelled to stop the agent (leave, signal, test shutdown).
    pub token: CancellationToken,
    /// When the agent started.
    pub started: std::time::Instant,
    /// Re-reads the configuration files (set by the `agent` command).
    pub reloader: Mutex<Option<Reloader>>,
    /// Runs the HTTP/TCP/UDP/script/docker/alias checks of this agent.
    pub runner: CheckRunner,
    /// Lamport time of the newest pool-wide keyring state applied here.
    pub keyring_ltime: std::sync::atomic::AtomicU64,
}

/// Produces fresh options from the configuration files, for reload.
pub type Reloader = Arc<dyn Fn() -> anyhow::Result<AgentOptions> + Send + Sync>;

/// Sockets an agent serves on, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// HTTP API.
    pub http: TcpListener,
    /// Server RPC (Raft and forwarding between servers); `None` keeps the
    /// server to itself (single-server tests).
    pub server_rpc: Option<TcpListener>,
    /// Serf LAN gossip (UDP).
    pub serf_lan: UdpSocket,
    /// DNS, UDP and TCP on the same address, one pair per client address
    /// (empty when `ports.dns` is -1).
    pub dns: Vec<(UdpSocket, TcpListener)>,
}

impl Listeners {
    /// Binds HTTP, gossip and, for servers, the RPC port on 127.0.0.1 with OS-chosen ports.
    pub async fn loopback(server: bool) -> std::io::Result<Listeners> {
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let server_rpc = if server {
            Some(TcpListener::bind("127.0.0.1:0").await?)
        } else {
            None
        };
        let serf_lan = UdpSocket::bind("127.0.0.1:0").await?;
        let dns = vec![bind_dns("127.0.0.1:0".parse().expect("addr")).await?];
        Ok(Listeners {
            http,
            server_rpc,
            serf_lan,
            dns,
        })
    }
}

/// Binds DNS over UDP and TCP on one address; port 0 picks a port free for both.
pub async fn bind_dns(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((crate::dns::udp::bind(addr)?, TcpListener::bind(addr).await?));
    }
    let mut last = None;
    for _ in 0..16 {
        let udp = crate::dns::udp::bind(addr)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

impl Listeners {
    /// Where DNS is served (the first address), if anywhere.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.first().and_then(|(udp, _)| udp.local_addr().ok())
    }
}

/// How long a leaving server waits to be removed from Raft (Consul's `leave_drain_time`).
const LEAVE_DRAIN: Duration = Duration::from_secs(5);

/// Handle to a started agent.
pub struct AgentHandle {
    /// The agent.
    pub agent: Arc<Agent>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where DNS is served (UDP and TCP, first address); `None` when disabled.
    pub dns_addr: Option<SocketAddr>,
    tracker: TaskTracker,
}

impl AgentHandle {
    /// Stops accepting, stops Raft, waits for the tasks (bounded).
    pub async fn shutdown(self) {
        self.agent.token.cancel();
        self.wait().await;
    }

    /// Waits until the agent stopped (after a leave or a cancelled token).
    pub async fn wait(self) {
        self.agent.token.cancelled().await;
        self.agent.runner.shutdown().await;
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("tasks did not stop within 10s");
        }
        if let Some(raft) = &self.agent.raft {
            raft.shutdown().await;
        }
        tracing::info!("agent stopped");
    }
}

/// Local health for alias checks, reading the agent it is attached to.
#[derive(Default)]
struct LocalHealth {
    agent: std::sync::OnceLock<std::sync::Weak<Agent>>,
}

impl LocalHealth {
    fn summarize<'a>(checks: impl Iterator<Item = &'a HealthCheck>) -> (String, String) {
        let checks: Vec<&HealthCheck> = checks.collect();
        let status = registry_api::aggregate(checks.iter().map(|c| Agent::effective_status(c)));
        let status = if status == MAINTENANCE {
            CRITICAL
        } else {
            status
        };
        let failing: Vec<&str> = checks
            .iter()
            .filter(|c| c.status != PASSING)
            .map(|c| c.check_id.as_str())
            .collect();
        let output = if failing.is_empty() {
            "All checks passing.".to_string()
        } else {
            format!("Checks not passing: {}", failing.join(", "))
        };
        (status.to_string(), output)
    }
}

impl HealthView for LocalHealth {
    fn service_health(&self, service_id: &str) -> Option<(String, String)> {
        let agent = self.agent.get()?.upgrade()?;
        let local = agent.local.lock().expect("local lock");
        local.services.get(service_id)?;
        Some(Self::summarize(
            local
                .checks
                .values()
                .map(|c| &c.check)
                .filter(|c| c.service_id == service_id),
        ))
    }

    fn node_health(&self, node: &str) -> Option<(String, String)> {
        let agent = self.agent.get()?.upgrade()?;
        if node != agent.opts.node_name {
            return None;
        }
        let local = agent.local.lock().expect("local lock");
        Some(Self::summarize(
            local
                .checks
                .values()
                .map(|c| &c.check)
                .filter(|c| c.service_id.is_empty()),
        ))
    }
}

/// The `consul` service instance of a server with RPC port `port`.
pub fn consul_service(port: u16) -> NodeService {
    let meta = [
        ("raft_version", "3"),
        ("serf_protocol_current", "2"),
        ("serf_protocol_max", "5"),
        ("serf_protocol_min", "1"),
        ("version", registry_api::CONSUL_COMPAT_VERSION),
        ("non_voter", "false"),
        ("read_replica", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    NodeService {
        id: "consul".into(),
        service: "consul".into(),
        port,
        meta,
        ..Default::default()
    }
}

/// Milliseconds since the epoch (stamped on every Raft write).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Agent {
    /// Starts Raft, the HTTP API on the given listener, and the background tasks.
    pub async fn start(
        opts: AgentOptions,
        listeners: Listeners,
        token: CancellationToken,
    ) -> anyhow::Result<AgentHandle> {
        let dns_addr = listeners.dns_addr();
        let Listeners {
            http,
            server_rpc,
            serf_lan,
            dns,
        } = listeners;
        let mut opts = opts;
        // Ports of 0 (tests) are advertised as the ports actually bound.
        if let Some(rpc) = &server_rpc {
            opts.server_port = rpc.local_addr()?.port();
        }
        opts.serf_lan_port = serf_lan.local_addr()?.port();
        let http_addr = http.local_addr()?;
        let gossip = spawn_gossip(
            cluster::gossip_config(&opts),
            UdpTransport::new(serf_lan)?,
            token.child_token(),
        );
        tracing::info!(
            node = %opts.node_name,
            addr = %gossip.local_addr(),
            "serf: LAN gossip started"
        );
        let raft_opts = RaftOptions {
            dir: opts.data_dir.as_ref().map(|d| d.join("raft")),
            addr: SocketAddr::new(opts.advertise_addr, opts.server_port).to_string(),
            bootstrap: opts.bootstrap,
            heartbeat: opts.raft_heartbeat,
            election: opts.raft_election,
            snapshot_threshold: opts.raft_snapshot_threshold,
            trailing_logs: opts.raft_trailing_logs,
        };
        let raft_id = node_id_from_uuid(&opts.node_id);
        let raft = match (opts.server, server_rpc) {
            (true, Some(rpc)) => {
                Some(RaftNode::start_server(raft_id, raft_opts, rpc, token.clone()).await?)
            }
            (true, None) => Some(RaftNode::start(raft_id, raft_opts).await?),
            (false, _) => None,
        };
        let (updates_tx, mut updates_rx) = tokio::sync::mpsc::unbounded_channel();
        let view = Arc::new(LocalHealth::default());
        let settings = RunnerSettings {
            enable_script_checks: opts.enable_script_checks,
            enable_local_script_checks: opts.enable_local_script_checks,
            output_max_size: opts.check_output_max_size,
            docker_host: None,
        };
        let runner = CheckRunner::new(settings, updates_tx, view.clone(), token.clone());
        let watches = opts.watches.clone();
        let servers = ServerPool::new(gossip.clone(), opts.datacenter.clone());
        let agent = Arc::new(Agent {
            opts,
            raft,
            gossip,
            servers,
            local: Mutex::new(LocalState::default()),
            events: EventLog::default(),
            session_deadlines: Mutex::new(HashMap::new()),
            token,
            started: std::time::Instant::now(),
            reloader: Mutex::new(None),
            runner,
            keyring_ltime: Default::default(),
        });
        let _ = view.agent.set(Arc::downgrade(&agent));
        agent.load_config_definitions()?;
        let checks: Vec<String> = agent
            .local
            .lock()
            .expect("local lock")
            .checks
            .keys()
            .cloned()
            .collect();
        agent.start_runners(&checks);
        let tracker = TaskTracker::new();
        if let Some(raft) = &agent.raft {
            raft.set_api_handler(crate::http::api_handler(agent.clone()));
        }
        tracker.spawn(crate::http::serve(http, agent.clone()));
        tracker.spawn(crate::dns::server::serve(agent.clone(), dns));
        tasks::spawn_all(&agent, &tracker);
        cluster::spawn_all(&agent, &tracker);
        {
            let agent = agent.clone();
            tracker.spawn(async move {
                loop {
                    let update = tokio::select! {
                        biased;
                        _ = agent.token.cancelled() => return,
                        update = updates_rx.recv() => match update { Some(u) => u, None => return },
                    };
                    agent
                        .apply_check_result(&update.check_id, &update.status, &update.output)
                        .await;
                }
            });
        }
        // Watches talk to this agent's own API, over loopback when it listens on all addresses.
        let mut own_addr = http_addr;
        if own_addr.ip().is_unspecified() {
            own_addr.set_ip(if own_addr.is_ipv4() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
            });
        }
        crate::watches::spawn_agent_watches(
            &watches,
            own_addr,
            &tracker,
            agent.token.child_token(),
        )
        .map_err(|e| anyhow::anyhow!("invalid watch: {e}"))?;
        tracing::info!(addr = %http_addr, node = %agent.opts.node_name, "started HTTP server");
        Ok(AgentHandle {
            agent,
            http_addr,
            dns_addr,
            tracker,
        })
    }

    fn load_config_definitions(&self) -> anyhow::Result<()> {
        if let Some(dir) = &self.opts.data_dir {
            let persisted = persist::load(dir)?;
            if !persisted.services.is_empty() || !persisted.checks.is_empty() {
                tracing::info!(
                    services = persisted.services.len(),
                    checks = persisted.checks.len(),
                    "restored services and checks registered through the API"
                );
            }
            persist::restore(&mut self.local.lock().expect("local lock"), persisted);
        }
        for reg in self.opts.services.clone() {
            self.add_service_locally(&reg, false, true)
                .map_err(|e| anyhow::anyhow!("service {:?}: {e}", reg.name))?;
        }
        for def in self.opts.checks.clone() {
            self.add_check_locally(&def, true)
                .map_err(|e| anyhow::anyhow!("check {:?}: {e}", def.name))?;
        }
        Ok(())
    }

    /// Proposes a write through Raft (a client agent through a server) and
    /// maps refusals to errors.
    pub async fn write(&self, cmd: Command) -> Result<Response, Error> {
        let req = Request {
            now_ms: now_ms(),
            cmd,
        };
        let resp = match &self.raft {
            Some(raft) => raft.write(req).await?,
            None => self
                .servers
                .apply(vec![req])
                .await?
                .pop()
                .ok_or_else(|| Error::Rpc("empty answer from server".into()))?,
        };
        match resp {
            Response::Error(e) => Err(Error::Rpc(e)),
            other => Ok(other),
        }
    }

    /// Graceful leave (`leave`, `/v1/agent/leave`, SIGINT/SIGTERM per
    /// configuration): a leading server first removes itself from Raft so the
    /// others elect without it; then the leave intent is gossiped (others
    /// record `left`, not `failed`); a follower waits briefly until the leader
    /// has removed it. The caller stops the agent afterwards.
    pub async fn leave(&self) {
        if let Some(raft) = &self.raft
            && raft.is_leader()
            && raft.members().iter().filter(|m| m.voter).count() > 1
        {
            tracing::info!("consul: leader leaving, removing self from raft");
            if let Err(e) = raft.remove_server(raft.id).await {
                tracing::warn!(error = %e, "failed to remove self from raft");
            }
        }
        match self.gossip.leave().await {
            Ok(()) => tracing::info!("agent: Graceful leave complete"),
            Err(e) => tracing::warn!(error = %e, "serf: leave failed"),
        }
        mark_left(self);
        if let Some(raft) = &self.raft {
            let deadline = Instant::now() + LEAVE_DRAIN;
            while Instant::now() < deadline
                && raft.members().len() > 1
                && raft.members().iter().any(|m| m.id == raft.id)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The Raft node of a server; `None` on client agents.
    pub fn server_raft(&self) -> Option<&RaftNode> {
        self.raft.as_ref()
    }

    /// True when this agent knows where writes go: a leader (servers) or an
    /// alive server (clients).
    pub fn has_leader(&self) -> bool {
        match &self.raft {
            Some(raft) => raft.leader().is_some(),
            None => !self.servers.servers().is_empty(),
        }
    }

    /// The registration of this node itself (node entry only).
    pub fn node_registration(&self) -> CatalogRegistration {
        let addr = self.opts.advertise_addr.to_string();
        let mut tagged = BTreeMap::new();
        tagged.insert("lan".to_string(), addr.clone());
        tagged.insert(
            if self.opts.advertise_addr.is_ipv4() {
                "lan_ipv4"
            } else {
                "lan_ipv6"
            }
            .to_string(),
            addr.clone(),
        );
        tagged.insert("wan".to_string(), addr.clone());
        tagged.insert(
            if self.opts.advertise_addr.is_ipv4() {
                "wan_ipv4"
            } else {
                "wan_ipv6"
            }
            .to_string(),
            addr.clone(),
        );
        let mut meta = self.opts.node_meta.clone();
        meta.insert("consul-network-segment".into(), String::new());
        meta.insert(
            "consul-version".into(),
            registry_api::CONSUL_COMPAT_VERSION.into(),
        );
        CatalogRegistration {
            id: self.opts.node_id.clone(),
            node: self.opts.node_name.clone(),
            address: addr,
            datacenter: self.opts.datacenter.clone(),
            tagged_addresses: tagged,
            node_meta: meta,
            ..Default::default()
        }
    }

    /// The registration a service or check sync starts from: just the node name
    /// once the node is in the catalog (its details are kept in step by the full
    /// sync), so each log entry stays small; the full node entry otherwise.
    fn sync_registration(&self) -> CatalogRegistration {
        // Client agents hold no catalog: they always send the full entry.
        let known = self.raft.as_ref().is_some_and(|raft| {
            raft.shared
                .read(|s| s.catalog().node(&self.opts.node_name).is_some())
        });
        if known {
            CatalogRegistration {
                node: self.opts.node_name.clone(),
                skip_node_update: true,
                ..Default::default()
            }
        } else {
            self.node_registration()
        }
    }

    /// Registers this node, its `serfHealth` check and (on servers) the `consul` service.
    pub async fn register_self(&self) -> Result<(), Error> {
        let mut reg = self.node_registration();
        reg.checks.push(HealthCheck {
            node: self.opts.node_name.clone(),
            check_id: SERF_CHECK_ID.into(),
            name: SERF_CHECK_NAME.into(),
            status: PASSING.into(),
            output: "Agent alive and reachable".into(),
            ..Default::default()
        });
        if self.opts.server {
            reg.service = Some(consul_service(self.opts.server_port));
        }
        self.write(Command::Register(Box::new(reg)))
            .await
            .map(|_| ())
    }

    /// Re-reads the configuration and applies its service and check definitions:
    /// file-defined entries are added, changed or removed; API-registered ones stay.
    /// A broken configuration changes nothing.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let reloader = self.reloader.lock().expect("reloader lock").clone();
        let Some(reloader) = reloader else {
            anyhow::bail!("no configuration files to reload");
        };
        let new = reloader()?;
        // Validate everything before touching the running state.
        for reg in &new.services {
            local::service_from_registration(reg)
                .map_err(|e| anyhow::anyhow!("service {:?}: {e}", reg.name))?;
            local::service_checks(reg, &self.opts.node_name)
                .map_err(|e| anyhow::anyhow!("service {:?}: {e}", reg.name))?;
        }
        for def in &new.checks {
            if def.service_id.is_empty() {
                local::check_from_definition(def, &self.opts.node_name, None)
                    .map_err(|e| anyhow::anyhow!("check {:?}: {e}", def.name))?;
            }
        }
        {
            let mut local = self.local.lock().expect("local lock");
            local.services.retain(|_, s| !s.from_config);
            let services: Vec<String> = local.services.keys().cloned().collect();
            local.checks.retain(|cid, c| {
                let keep = !c.from_config
                    && (c.check.service_id.is_empty() || services.contains(&c.check.service_id));
                if !keep {
                    self.runner.stop(cid);
                }
                keep
            });
        }
        for reg in &new.services {
            self.add_service_locally(reg, false, true)?;
        }
        for def in &new.checks {
            self.add_check_locally(def, true)?;
        }
        tracing::info!(
            services = new.services.len(),
            checks = new.checks.len(),
            "configuration reloaded"
        );
        self.sync_all().await?;
        Ok(())
    }

    /// Saves the API-registered services and checks (no-op without a data dir).
    pub fn persist_local(&self) {
        let Some(dir) = &self.opts.data_dir else {
            return;
        };
        let state = persist::snapshot(&self.local.lock().expect("local lock"));
        if let Err(e) = persist::save(dir, &state) {
            tracing::error!(error = %e, dir = %dir.display(), "failed to persist local services and checks");
        }
    }

    // ----- local services and checks -------------------------------------------------------

    fn add_service_locally(
        &self,
        reg: &AgentServiceRegistration,
        replace_existing_checks: bool,
        from_config: bool,
    ) -> Result<String, Error> {
        let service = local::service_from_registration(reg).map_err(Error::BadRequest)?;
        crate::dns::warn_if_not_dns_label(&service.service);
        let checks = local::service_checks(reg, &self.opts.node_name).map_err(Error::BadRequest)?;
        for (_, definition) in &checks {
            self.runner
                .validate(&self.clamped(definition), from_config)
                .map_err(Error::BadRequest)?;
        }
        let id = service.id.clone();
        let mut local = self.local.lock().expect("local lock");
        if replace_existing_checks {
            let keep: Vec<&str> = checks.iter().map(|(c, _)| c.check_id.as_str()).collect();
            local.checks.retain(|cid, c| {
                let drop = c.check.service_id == id && !keep.contains(&cid.as_str());
                if drop {
                    self.runner.stop(cid);
                }
                !drop
            });
        }
        local.services.insert(
            id.clone(),
            LocalService {
                service,
                from_config,
            },
        );
        for (check, definition) in checks {
            let prev = local
                .checks
                .get(&check.check_id)
                .map(|c| (c.check.status.clone(), c.check.output.clone()));
            let mut check = check;
            // Re-registering keeps the current status unless an initial status was given.
            if let (Some((status, output)), true) = (prev, definition.status.is_empty()) {
                check.status = status;
                check.output = output;
            }
            let local_check = LocalCheck::new(check, definition, from_config);
            self.start_runner(&local_check);
            local
                .checks
                .insert(local_check.check.check_id.clone(), local_check);
        }
        Ok(id)
    }

    /// A check definition with its interval raised to the agent's minimum.
    fn clamped(&self, def: &CheckDefinition) -> CheckDefinition {
        let mut def = def.clone();
        if let Some(interval) = def.interval.as_mut() {
            interval.0 = interval.0.max(self.opts.min_check_interval);
        }
        def
    }

    /// Starts (or restarts) the runner task of a check; TTL and maintenance checks run nothing.
    fn start_runner(&self, check: &LocalCheck) {
        let id = &check.check.check_id;
        if let Err(e) = self
            .runner
            .start(id, &self.clamped(&check.definition), check.from_config)
        {
            tracing::warn!(check = %id, error = %e, "check not started");
        }
    }

    /// Starts the runners of the given local checks.
    fn start_runners(&self, ids: &[String]) {
        let local = self.local.lock().expect("local lock");
        for id in ids {
            if let Some(check) = local.checks.get(id) {
                self.start_runner(check);
            }
        }
    }

    fn add_check_locally(&self, def: &CheckDefinition, from_config: bool) -> Result<String, Error> {
        let mut local = self.local.lock().expect("local lock");
        let service = if def.service_id.is_empty() {
            None
        } else {
            Some(
                local
                    .services
                    .get(&def.service_id)
                    .map(|s| s.service.clone())
                    .ok_or_else(|| {
                        Error::BadRequest(format!(
                            "ServiceID \"{}\" does not exist",
                            def.service_id
                        ))
                    })?,
            )
        };
        let check = local::check_from_definition(def, &self.opts.node_name, service.as_ref())
            .map_err(Error::BadRequest)?;
        self.runner
            .validate(&self.clamped(def), from_config)
            .map_err(Error::BadRequest)?;
        let id = check.check_id.clone();
        let local_check = LocalCheck::new(check, def.clone(), from_config);
        self.start_runner(&local_check);
        local.checks.insert(id.clone(), local_check);
        Ok(id)
    }

    /// `PUT /v1/agent/service/register`.
    pub async fn register_service(
        &self,
        reg: &AgentServiceRegistration,
        replace_existing_checks: bool,
    ) -> Result<(), Error> {
        let id = self.add_service_locally(reg, replace_existing_checks, false)?;
        self.persist_local();
        self.sync_service(&id).await
    }

    /// `PUT /v1/agent/service/deregister/:id`.
    pub async fn deregister_service(&self, id: &str) -> Result<(), Error> {
        {
            let mut local = self.local.lock().expect("local lock");
            if local.services.remove(id).is_none() {
                return Err(Error::NotFound(format!(
                    "Unknown service ID \"{id}\". Ensure that the service ID is passed, not the service name."
                )));
            }
            local.checks.retain(|cid, c| {
                let drop = c.check.service_id == id;
                if drop {
                    self.runner.stop(cid);
                }
                !drop
            });
        }
        self.persist_local();
        let dereg = CatalogDeregistration {
            node: self.opts.node_name.clone(),
            service_id: id.into(),
            ..Default::default()
        };
        self.write(Command::Deregister(dereg)).await.map(|_| ())
    }

    /// `PUT /v1/agent/check/register`.
    pub async fn register_check(&self, def: &CheckDefinition) -> Result<(), Error> {
        let id = self.add_check_locally(def, false)?;
        self.persist_local();
        self.sync_check(&id).await
    }

    /// `PUT /v1/agent/check/deregister/:id`.
    pub async fn deregister_check(&self, id: &str) -> Result<(), Error> {
        if self
            .local
            .lock()
            .expect("local lock")
            .checks
            .remove(id)
            .is_none()
        {
            return Err(Error::NotFound(format!(
                "Unknown check ID \"{id}\". Ensure that the check ID is passed, not the check name."
            )));
        }
        self.runner.stop(id);
        self.persist_local();
        let dereg = CatalogDeregistration {
            node: self.opts.node_name.clone(),
            check_id: id.into(),
            ..Default::default()
        };
        self.write(Command::Deregister(dereg)).await.map(|_| ())
    }

    /// `PUT /v1/agent/check/{pass,warn,fail,update}/:id`: TTL checks only.
    pub async fn update_ttl(&self, id: &str, status: &str, output: &str) -> Result<(), Error> {
        if ![PASSING, WARNING, CRITICAL].contains(&status) {
            return Err(Error::BadRequest(format!("Invalid status \"{status}\"")));
        }
        {
            let mut local = self.local.lock().expect("local lock");
            let check = local.checks.get_mut(id).ok_or_else(|| {
                Error::NotFound(format!("Unknown check ID \"{id}\". Ensure that the check ID is passed, not the check name."))
            })?;
            let Some(ttl) = check.definition.ttl else {
                return Err(Error::BadRequest(format!(
                    "CheckID \"{id}\" does not have associated TTL"
                )));
            };
            check.ttl_deadline = Some(Instant::now() + ttl.get());
            check.record(status, output);
        }
        self.persist_local();
        self.sync_check(id).await
    }

    /// Applies a result of a running check. Status changes reach the catalog at
    /// once; output-only changes at most every `check_update_interval`, so a
    /// flapping output does not flood the Raft log (the TTL task pushes the rest).
    pub async fn apply_check_result(&self, id: &str, status: &str, output: &str) {
        let sync_now = {
            let mut local = self.local.lock().expect("local lock");
            let Some(check) = local.checks.get_mut(id) else {
                return;
            };
            if check.check.status == status && check.check.output == output {
                return;
            }
            let status_changed = check.check.status != status;
            check.record(status, output);
            let now = Instant::now();
            let due = check
                .output_synced_at
                .is_none_or(|t| now.duration_since(t) >= self.opts.check_update_interval);
            if status_changed || due {
                check.output_synced_at = Some(now);
                check.output_dirty = false;
                true
            } else {
                check.output_dirty = true;
                false
            }
        };
        if sync_now && let Err(e) = self.sync_check(id).await {
            tracing::warn!(check = %id, error = %e, "failed to sync check status");
        }
    }

    /// Pushes outputs held back by the rate limit once their interval has passed.
    pub(crate) async fn sync_dirty_outputs(&self) {
        let now = Instant::now();
        let due: Vec<String> = {
            let mut local = self.local.lock().expect("local lock");
            local
                .checks
                .values_mut()
                .filter(|c| {
                    c.output_dirty
                        && c.output_synced_at.is_none_or(|t| {
                            now.duration_since(t) >= self.opts.check_update_interval
                        })
                })
                .map(|c| {
                    c.output_dirty = false;
                    c.output_synced_at = Some(now);
                    c.check.check_id.clone()
                })
                .collect()
        };
        for id in due {
            if let Err(e) = self.sync_check(&id).await {
                tracing::debug!(check = %id, error = %e, "failed to sync check output");
            }
        }
    }

    /// Deregisters services whose check has been critical longer than its
    /// `deregister_critical_service_after` (never less than the agent's minimum).
    pub(crate) async fn reap_critical_services(&self) {
        let now = Instant::now();
        let doomed: Vec<(String, String)> = {
            let local = self.local.lock().expect("local lock");
            local
                .checks
                .values()
                .filter(|c| !c.check.service_id.is_empty())
                .filter_map(|c| {
                    let after = c
                        .definition
                        .deregister_critical_service_after?
                        .get()
                        .max(self.opts.min_deregister_critical);
                    let since = c.critical_since?;
                    (now.duration_since(since) >= after)
                        .then(|| (c.check.service_id.clone(), c.check.check_id.clone()))
                })
                .collect()
        };
        for (service, check) in doomed {
            tracing::info!(service = %service, check = %check, "check critical for too long; deregistering service");
            if let Err(e) = self.deregister_service(&service).await {
                tracing::warn!(service = %service, error = %e, "failed to deregister critical service");
            }
        }
    }

    /// Marks an expired TTL check critical (called by the TTL task).
    pub(crate) async fn expire_ttl(&self, id: &str) {
        {
            let mut local = self.local.lock().expect("local lock");
            let Some(check) = local.checks.get_mut(id) else {
                return;
            };
            check.ttl_deadline = None;
            check.record(CRITICAL, "TTL expired");
        }
        tracing::warn!(check = %id, "check TTL expired");
        if let Err(e) = self.sync_check(id).await {
            tracing::warn!(check = %id, error = %e, "failed to sync expired TTL check");
        }
    }

    /// `PUT /v1/agent/maintenance` and `/v1/agent/service/maintenance/:id`.
    pub async fn set_maintenance(
        &self,
        service_id: Option<&str>,
        enable: bool,
        reason: &str,
    ) -> Result<(), Error> {
        let (check_id, name, service) = match service_id {
            None => (
                NODE_MAINT_CHECK_ID.to_string(),
                "Node Maintenance Mode",
                None,
            ),
            Some(id) => {
                let svc = self
                    .local
                    .lock()
                    .expect("local lock")
                    .services
                    .get(id)
                    .map(|s| s.service.clone());
                let svc = svc.ok_or_else(|| {
                    Error::NotFound(format!("No service registered with ID \"{id}\""))
                })?;
                (
                    format!("{SERVICE_MAINT_PREFIX}{id}"),
                    "Service Maintenance Mode",
                    Some(svc),
                )
            }
        };
        if !enable {
            let existed = self
                .local
                .lock()
                .expect("local lock")
                .checks
                .remove(&check_id)
                .is_some();
            if existed {
                self.persist_local();
                let dereg = CatalogDeregistration {
                    node: self.opts.node_name.clone(),
                    check_id,
                    ..Default::default()
                };
                self.write(Command::Deregister(dereg)).await?;
            }
            return Ok(());
        }
        let notes = if reason.is_empty() {
            "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.".to_string()
        } else {
            reason.to_string()
        };
        let check = HealthCheck {
            node: self.opts.node_name.clone(),
            check_id: check_id.clone(),
            name: name.into(),
            status: CRITICAL.into(),
            notes,
            service_id: service.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
            service_name: service
                .as_ref()
                .map(|s| s.service.clone())
                .unwrap_or_default(),
            service_tags: service.as_ref().map(|s| s.tags.clone()).unwrap_or_default(),
            definition: Default::default(),
            ..Default::default()
        };
        let definition = CheckDefinition {
            name: name.into(),
            ..Default::default()
        };
        self.local
            .lock()
            .expect("local lock")
            .checks
            .insert(check_id.clone(), LocalCheck::new(check, definition, false));
        self.persist_local();
        self.sync_check(&check_id).await
    }

    /// Whether a maintenance check is set (node: `None`).
    pub fn in_maintenance(&self, service_id: Option<&str>) -> bool {
        let id = match service_id {
            None => NODE_MAINT_CHECK_ID.to_string(),
            Some(s) => format!("{SERVICE_MAINT_PREFIX}{s}"),
        };
        self.local
            .lock()
            .expect("local lock")
            .checks
            .contains_key(&id)
    }

    /// Status used for aggregation of a local check (maintenance checks rank highest).
    pub fn effective_status(check: &HealthCheck) -> &str {
        if check.check_id == NODE_MAINT_CHECK_ID || check.check_id.starts_with(SERVICE_MAINT_PREFIX)
        {
            MAINTENANCE
        } else {
            &check.status
        }
    }

    // ----- anti-entropy --------------------------------------------------------------------

    /// Pushes one local service (and its checks) to the catalog.
    pub async fn sync_service(&self, id: &str) -> Result<(), Error> {
        let (service, checks) = {
            let local = self.local.lock().expect("local lock");
            let Some(svc) = local.services.get(id) else {
                return Ok(());
            };
            let checks: Vec<HealthCheck> = local
                .checks
                .values()
                .filter(|c| c.check.service_id == id)
                .map(|c| c.check.clone())
                .collect();
            (svc.service.clone(), checks)
        };
        let mut reg = self.sync_registration();
        reg.service = Some(service);
        reg.checks = checks;
        self.write(Command::Register(Box::new(reg)))
            .await
            .map(|_| ())
    }

    /// Pushes one local check to the catalog.
    pub async fn sync_check(&self, id: &str) -> Result<(), Error> {
        let check = {
            let local = self.local.lock().expect("local lock");
            let Some(c) = local.checks.get(id) else {
                return Ok(());
            };
            c.check.clone()
        };
        let mut reg = self.sync_registration();
        reg.checks = vec![check];
        self.write(Command::Register(Box::new(reg)))
            .await
            .map(|_| ())
    }

    /// Full anti-entropy: the catalog's view of this node is made equal to the
    /// local state. Unchanged entries are no-ops in the store (no index bump).
    pub async fn sync_all(&self) -> Result<(), Error> {
        // The node entry first (a no-op in the store when nothing changed).
        self.write(Command::Register(Box::new(self.node_registration())))
            .await?;
        let ids: Vec<String> = self
            .local
            .lock()
            .expect("local lock")
            .services
            .keys()
            .cloned()
            .collect();
        for id in &ids {
            self.sync_service(id).await?;
        }
        let node_checks: Vec<String> = {
            let local = self.local.lock().expect("local lock");
            local
                .checks
                .values()
                .filter(|c| c.check.service_id.is_empty())
                .map(|c| c.check.check_id.clone())
                .collect()
        };
        for id in &node_checks {
            self.sync_check(id).await?;
        }
        // Remove what the catalog has for this node that we do not know.
        let node = self.opts.node_name.clone();
        let (remote_services, remote_checks) = self.catalog_entries(&node).await?;
        let (stale_services, stale_checks) = {
            let local = self.local.lock().expect("local lock");
            let services: Vec<String> = remote_services
                .into_iter()
                .filter(|id| {
                    !(local.services.contains_key(id) || (self.opts.server && id == "consul"))
                })
                .collect();
            let checks: Vec<String> = remote_checks
                .into_iter()
                .filter(|(id, _)| !local.checks.contains_key(id) && id != SERF_CHECK_ID)
                .filter(|(_, service)| !services.contains(service))
                .map(|(id, _)| id)
                .collect();
            (services, checks)
        };
        for id in stale_services {
            let dereg = CatalogDeregistration {
                node: node.clone(),
                service_id: id,
                ..Default::default()
            };
            self.write(Command::Deregister(dereg)).await?;
        }
        for id in stale_checks {
            let dereg = CatalogDeregistration {
                node: node.clone(),
                check_id: id,
                ..Default::default()
            };
            self.write(Command::Deregister(dereg)).await?;
        }
        Ok(())
    }

    /// The IDs of the services and (check ID, service ID) of the checks the
    /// catalog holds for `node`: read locally on servers, from a server on clients.
    async fn catalog_entries(
        &self,
        node: &str,
    ) -> Result<(Vec<String>, Vec<(String, String)>), Error> {
        if let Some(raft) = &self.raft {
            return Ok(raft.shared.read(|store| {
                (
                    store
                        .catalog()
                        .node_services(node)
                        .map(|s| s.id.clone())
                        .collect(),
                    store
                        .catalog()
                        .node_checks(node)
                        .map(|c| (c.check_id.clone(), c.service_id.clone()))
                        .collect(),
                )
            }));
        }
        let path = format!("/v1/health/node/{}", node);
        let checks: Vec<HealthCheck> = self.remote_get(&path).await?;
        let path = format!("/v1/catalog/node/{}", node);
        let services: Option<registry_api::NodeServices> = self.remote_get(&path).await?;
        Ok((
            services
                .map(|n| n.services.into_keys().collect())
                .unwrap_or_default(),
            checks
                .into_iter()
                .map(|c| (c.check_id, c.service_id))
                .collect(),
        ))
    }

    /// A GET of the HTTP API on a server, decoded (client agents).
    async fn remote_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let (status, _, body) = self
            .servers
            .http("GET", path, Vec::new(), &[], true, Duration::from_secs(30))
            .await?;
        if status != 200 {
            return Err(Error::Rpc(format!(
                "GET {path}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| Error::Rpc(format!("GET {path}: {e}")))
    }
}
