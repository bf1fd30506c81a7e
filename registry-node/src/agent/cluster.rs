//! The agent's part in the cluster, all driven by LAN gossip:
//! - joining (`-join`, `-retry-join`, and the peers remembered in the data dir
//!   for a restart or `-rejoin`);
//! - `-bootstrap-expect`: bootstrap Raft once N servers see each other;
//! - the leader's reconciliation (Consul's `leader.go`): every member's node
//!   in the catalog with a `serfHealth` check that follows gossip, servers added
//!   to Raft when they appear and removed when they leave or stay dead;
//! - user events received by gossip into the agent's event log;
//! - the first sync of this agent's services once a leader is known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use registry_api::agent::{Member, MemberStatus};
use registry_api::{
    CRITICAL, CatalogDeregistration, CatalogRegistration, HealthCheck, PASSING, SERF_CHECK_ID,
    SERF_CHECK_NAME,
};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep};
use tokio_util::task::TaskTracker;

use super::Agent;
use super::servers::{is_server, raft_id, server_addr};
use crate::gossip::GossipConfig;
use crate::gossip::member::tags;
use crate::raft::NodeId;
use crate::state::Command;

/// Serf's default LAN port, used for join addresses given without one.
pub const DEFAULT_SERF_LAN_PORT: u16 = 8301;
/// The output of `serfHealth` for an alive member.
pub const ALIVE_OUTPUT: &str = "Agent alive and reachable";
/// The output of `serfHealth` for a failed member.
pub const FAILED_OUTPUT: &str = "Agent not live or unreachable";
/// The service every server registers.
const CONSUL_SERVICE: &str = "consul";
/// How often the leader reconciles even without membership changes.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// The LAN pool configuration of this agent: the template's timers and keyring,
/// our identity and Consul's tags.
pub fn gossip_config(opts: &super::AgentOptions) -> GossipConfig {
    let mut config = opts.gossip.clone();
    config.node_name = opts.node_name.clone();
    config.node_id = opts.node_id.clone();
    config.advertise = Some(SocketAddr::new(opts.advertise_addr, opts.serf_lan_port));
    config.tags = member_tags(opts);
    config
}

/// The Serf tags Consul puts on a LAN member.
pub fn member_tags(opts: &super::AgentOptions) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    let mut put = |k: &str, v: String| t.insert(k.to_string(), v);
    put(tags::DC, opts.datacenter.clone());
    put(tags::ID, opts.node_id.clone());
    put(tags::VSN, "2".into());
    put(tags::VSN_MIN, "2".into());
    put(tags::VSN_MAX, "3".into());
    put(
        tags::BUILD,
        format!("{}:registry", registry_api::CONSUL_COMPAT_VERSION),
    );
    if opts.server {
        put(tags::ROLE, "consul".into());
        put(tags::PORT, opts.server_port.to_string());
        put(tags::RAFT_VSN, "3".into());
        put(tags::WAN_JOIN_PORT, "8302".into());
        if opts.bootstrap_expect > 0 {
            put(tags::EXPECT, opts.bootstrap_expect.to_string());
        }
        if opts.bootstrap {
            put("bootstrap", "1".into());
        }
    } else {
        put(tags::ROLE, "node".into());
        put(tags::SEGMENT, String::new());
    }
    t
}

pub(super) fn spawn_all(agent: &Arc<Agent>, tracker: &TaskTracker) {
    tracker.spawn(event_loop(agent.clone()));
    tracker.spawn(join_loop(agent.clone()));
    tracker.spawn(first_sync(agent.clone()));
    if agent.opts.data_dir.is_some() {
        tracker.spawn(snapshot_loop(agent.clone()));
    }
    if agent.raft.is_some() {
        if agent.opts.bootstrap_expect > 1 && !agent.opts.bootstrap {
            tracker.spawn(bootstrap_loop(agent.clone()));
        }
        tracker.spawn(reconcile_loop(agent.clone()));
    }
}

// ----- user events -------------------------------------------------------------------

async fn event_loop(agent: Arc<Agent>) {
    let mut rx = agent.gossip.user_events();
    loop {
        let event = tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            e = rx.recv() => e,
        };
        match event {
            Ok(event) if event.name == KEYRING_EVENT => apply_keyring_event(&agent, &event).await,
            Ok(event) => agent.events.record(event),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "user events arrived faster than recorded");
            }
            Err(_) => return,
        }
    }
}

/// The internal event that carries the keyring to every member (the leading
/// underscore keeps users from firing it through the API).
const KEYRING_EVENT: &str = "_registry-keyring";

/// The whole keyring after a change, primary first. Members apply the newest
/// state they hear of (by the event's Lamport time), so changes fired back to
/// back cannot be applied out of order.
#[derive(Serialize, Deserialize)]
struct KeyringState {
    keys: Vec<String>,
}

/// Applies a keyring change here, then spreads the resulting keyring to every
/// member of the pool (Consul fans out with a Serf query). A new key must be
/// installed everywhere before it is used, as in Consul, so members can
/// always decrypt the event that brings them the next state.
pub async fn keyring_cluster_wide(
    agent: &Agent,
    op: crate::gossip::KeyringOp,
) -> Result<(), crate::gossip::GossipError> {
    use crate::gossip::KeyringOp;
    let list = matches!(op, KeyringOp::List);
    let keys = agent.gossip.keyring(op).await?;
    if list {
        return Ok(());
    }
    let payload = serde_json::to_vec(&KeyringState { keys }).expect("keyring state encodes");
    let event = registry_api::UserEvent {
        name: KEYRING_EVENT.into(),
        payload: Some(payload),
        ..Default::default()
    };
    let sent = agent.gossip.fire_event(event).await?;
    agent
        .keyring_ltime
        .fetch_max(sent.ltime, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

async fn apply_keyring_event(agent: &Agent, event: &registry_api::UserEvent) {
    use crate::gossip::KeyringOp;
    let Some(state) = event
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice::<KeyringState>(p).ok())
    else {
        return;
    };
    let Some(primary) = state.keys.first() else {
        return;
    };
    let previous = agent
        .keyring_ltime
        .fetch_max(event.ltime, std::sync::atomic::Ordering::SeqCst);
    if previous >= event.ltime {
        return;
    }
    let apply = async {
        for key in &state.keys {
            agent
                .gossip
                .keyring(KeyringOp::Install(key.clone()))
                .await?;
        }
        let installed = agent
            .gossip
            .keyring(KeyringOp::Use(primary.clone()))
            .await?;
        for key in installed.iter().filter(|k| !state.keys.contains(k)) {
            agent.gossip.keyring(KeyringOp::Remove(key.clone())).await?;
        }
        Ok::<_, crate::gossip::GossipError>(())
    };
    if let Err(e) = apply.await {
        tracing::warn!(error = %e, "serf: keyring change from the cluster failed");
    }
}

// ----- joining -----------------------------------------------------------------------

/// Resolves `host[:port]` join addresses (Serf LAN port by default).
pub async fn resolve_join(addrs: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for addr in addrs {
        let with_port = if addr.parse::<SocketAddr>().is_ok()
            || (addr.contains(':') && !addr.contains("::") && !addr.starts_with('['))
        {
            addr.clone()
        } else if addr.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{addr}]:{DEFAULT_SERF_LAN_PORT}")
        } else {
            format!("{addr}:{DEFAULT_SERF_LAN_PORT}")
        };
        match tokio::net::lookup_host(&with_port).await {
            Ok(found) => out.extend(found),
            Err(e) => tracing::warn!(address = %addr, error = %e, "cannot resolve join address"),
        }
    }
    out
}

/// Joins the configured addresses (retrying as `-retry-interval`/`-retry-max`
/// say; running out of attempts stops the agent, as in Consul) and the peers
/// remembered from a previous run.
async fn join_loop(agent: Arc<Agent>) {
    let remembered = agent
        .opts
        .data_dir
        .as_deref()
        .map(|dir| load_snapshot(dir, agent.opts.rejoin_after_leave))
        .unwrap_or_default();
    if !remembered.is_empty() {
        let own = agent.gossip.local_addr();
        let peers: Vec<SocketAddr> = remembered.into_iter().filter(|a| *a != own).collect();
        if !peers.is_empty() {
            match agent.gossip.join(peers.clone()).await {
                Ok(n) => tracing::info!(count = n, "serf: re-joined to previously known nodes"),
                Err(e) => {
                    tracing::warn!(peers = ?peers, error = %e, "serf: failed to re-join any previously known node")
                }
            }
        }
    }
    if agent.opts.join.is_empty() {
        return;
    }
    tracing::info!(addresses = ?agent.opts.join, "agent: Joining cluster...");
    let mut attempt = 0u32;
    loop {
        let addrs = resolve_join(&agent.opts.join).await;
        let result = if addrs.is_empty() {
            Err("no join address could be resolved".to_string())
        } else {
            agent.gossip.join(addrs).await.map_err(|e| e.to_string())
        };
        match result {
            Ok(n) => {
                tracing::info!(
                    num_agents = n,
                    "agent: Join cluster completed. Synced with {n} initial agents"
                );
                return;
            }
            Err(e) => {
                attempt += 1;
                if agent.opts.retry_max > 0 && attempt >= agent.opts.retry_max {
                    tracing::error!(error = %e, attempts = attempt, "agent: max join retry exhausted, exiting");
                    agent.token.cancel();
                    return;
                }
                tracing::warn!(
                    error = %e,
                    retry_interval = ?agent.opts.retry_interval,
                    "agent: Join cluster failed, will retry"
                );
            }
        }
        tokio::select! {
            _ = agent.token.cancelled() => return,
            _ = sleep(agent.opts.retry_interval) => {}
        }
    }
}

/// What the data dir remembers of the LAN pool (Serf's `local.snapshot`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    /// Gossip addresses of the members alive when last written.
    alive: Vec<SocketAddr>,
    /// This agent left gracefully: do not rejoin on restart without `-rejoin`.
    left: bool,
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("serf").join("local.snapshot")
}

fn load_snapshot(dir: &Path, rejoin_after_leave: bool) -> Vec<SocketAddr> {
    let path = snapshot_path(dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    match serde_json::from_str::<Snapshot>(&text) {
        Ok(s) if s.left && !rejoin_after_leave => {
            tracing::info!(
                "serf: ignoring previous leave in snapshot (start with -rejoin to rejoin)"
            );
            Vec::new()
        }
        Ok(s) => s.alive,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable serf snapshot");
            Vec::new()
        }
    }
}

fn save_snapshot(dir: &Path, snapshot: &Snapshot) {
    let path = snapshot_path(dir);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().expect("snapshot dir"))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(snapshot)?)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), error = %e, "cannot write serf snapshot");
    }
}

/// Records that this agent left gracefully (read by the next start).
pub fn mark_left(agent: &Agent) {
    if let Some(dir) = &agent.opts.data_dir {
        let alive = alive_peers(&agent.gossip.members(), agent.gossip.local_name());
        save_snapshot(dir, &Snapshot { alive, left: true });
    }
}

fn alive_peers(members: &[Member], local: &str) -> Vec<SocketAddr> {
    members
        .iter()
        .filter(|m| m.name != local && m.status == MemberStatus::Alive as u8)
        .filter_map(|m| Some(SocketAddr::new(m.addr.parse().ok()?, m.port)))
        .collect()
}

async fn snapshot_loop(agent: Arc<Agent>) {
    let dir = agent.opts.data_dir.clone().expect("data dir");
    let mut rx = agent.gossip.watch_members();
    let mut last = Vec::new();
    loop {
        let mut alive = alive_peers(&rx.borrow_and_update(), agent.gossip.local_name());
        alive.sort();
        // Keep the last non-empty list: an isolated node must still know whom to rejoin.
        // Written at once: a crash right after joining must find its peers on restart.
        if alive != last && !alive.is_empty() {
            save_snapshot(
                &dir,
                &Snapshot {
                    alive: alive.clone(),
                    left: false,
                },
            );
            last = alive;
            // Coalesce the burst of changes a join brings.
            sleep(Duration::from_millis(200)).await;
        }
        tokio::select! {
            _ = agent.token.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

// ----- first sync --------------------------------------------------------------------

/// Registers this agent's node, services and checks as soon as a leader (or,
/// on a client, a server) is known, retrying with backoff until it works.
async fn first_sync(agent: Arc<Agent>) {
    let mut delay = Duration::from_millis(100);
    loop {
        if agent.has_leader() {
            match agent.sync_all().await {
                Ok(()) => {
                    tracing::info!("agent: Synced node info");
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "first sync failed; retrying"),
            }
        }
        tokio::select! {
            _ = agent.token.cancelled() => return,
            _ = sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

// ----- bootstrap-expect --------------------------------------------------------------

/// Alive servers of our datacenter: (name, Raft ID, RPC address, expect tag).
fn server_members(members: &[Member], dc: &str) -> Vec<(String, NodeId, String, Option<u32>)> {
    members
        .iter()
        .filter_map(|m| {
            let addr = server_addr(m, dc)?;
            let id = raft_id(m)?;
            let expect = m.tags.get(tags::EXPECT).and_then(|e| e.parse().ok());
            Some((m.name.clone(), id, addr, expect))
        })
        .collect()
}

async fn bootstrap_loop(agent: Arc<Agent>) {
    let raft = agent.raft.clone().expect("server");
    let expect = agent.opts.bootstrap_expect as usize;
    let mut rx = agent.gossip.watch_members();
    let mut warned_waiting = false;
    loop {
        if raft_initialized(&raft) {
            return;
        }
        let servers = server_members(&rx.borrow_and_update(), &agent.opts.datacenter);
        if let Some((name, ..)) = servers
            .iter()
            .find(|s| s.3.is_some_and(|e| e as usize != expect))
        {
            tracing::error!(
                member = %name,
                "consul: Member {name} has a conflicting expect value. All nodes should expect the same number."
            );
        } else if servers.len() < expect {
            if !warned_waiting {
                tracing::info!(
                    expect,
                    seen = servers.len(),
                    "consul: Waiting for servers to join before bootstrapping"
                );
                warned_waiting = true;
            }
        } else if try_bootstrap(&agent, &raft, &servers).await {
            return;
        }
        tokio::select! {
            _ = agent.token.cancelled() => return,
            _ = rx.changed() => {}
            _ = sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn raft_initialized(raft: &crate::raft::RaftNode) -> bool {
    let m = raft.raft.metrics().borrow().clone();
    m.last_log_index.is_some() || m.current_term > 0
}

/// Bootstraps once every expected server answers and none has Raft state. The
/// server with the lowest Raft ID does it; the others learn the configuration
/// from the leader it elects. Returns true when this server is done waiting.
async fn try_bootstrap(
    agent: &Agent,
    raft: &crate::raft::RaftNode,
    servers: &[(String, NodeId, String, Option<u32>)],
) -> bool {
    for (name, id, addr, _) in servers {
        if *id == raft.id {
            continue;
        }
        match raft.ping(addr, Duration::from_secs(2)).await {
            Ok(status) if status.initialized => {
                tracing::info!(
                    server = %name,
                    "consul: Existing Raft peers reported by server, disabling bootstrap mode"
                );
                return true;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(server = %name, error = %e, "bootstrap: server not reachable yet");
                return false;
            }
        }
    }
    let lowest = servers.iter().map(|s| s.1).min();
    if lowest != Some(raft.id) {
        return false;
    }
    let members: BTreeMap<NodeId, BasicNode> = servers
        .iter()
        .map(|(_, id, addr, _)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    let names: Vec<&str> = servers.iter().map(|s| s.0.as_str()).collect();
    tracing::info!(servers = ?names, "consul: Found expected number of peers, attempting bootstrap");
    match raft.bootstrap_cluster(members).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "consul: Failed to bootstrap cluster");
            agent.token.is_cancelled()
        }
    }
}

// ----- leader reconciliation ---------------------------------------------------------

async fn reconcile_loop(agent: Arc<Agent>) {
    let raft = agent.raft.clone().expect("server");
    let mut members_rx = agent.gossip.watch_members();
    let mut metrics = raft.raft.metrics();
    let mut state = ReconcileState::default();
    loop {
        if raft.is_leader() {
            reconcile(&agent, &raft, &mut state).await;
        } else {
            state = ReconcileState::default();
        }
        tokio::select! {
            biased;
            _ = agent.token.cancelled() => return,
            _ = members_rx.changed() => {}
            _ = metrics.changed() => {}
            _ = sleep(RECONCILE_INTERVAL) => {}
        }
        // Coalesce bursts (a join brings several updates).
        sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Default)]
struct ReconcileState {
    /// When each server was first seen failed by this leader.
    failed_since: HashMap<String, Instant>,
    /// Servers being added (the catch-up can take a while).
    adding: Arc<std::sync::Mutex<HashSet<NodeId>>>,
    /// Members this leader has seen in gossip. Only those are reaped when they
    /// disappear: a leader elected before its gossip has (re)joined sees an
    /// empty pool, and must not take that for everyone being gone.
    seen: HashSet<String>,
    /// When each Raft member that no gossip member carries was first noticed.
    unknown_since: HashMap<NodeId, Instant>,
}

async fn reconcile(agent: &Arc<Agent>, raft: &crate::raft::RaftNode, state: &mut ReconcileState) {
    let dc = agent.opts.datacenter.clone();
    let members = agent.gossip.members();
    // Only the members' (and once-members') entries are read: the catalog may
    // hold many more nodes (registered by API), and this runs often.
    let names: HashSet<&String> = members.iter().map(|m| &m.name).chain(&state.seen).collect();
    let facts: HashMap<String, NodeFacts> = raft.shared.read(|s| {
        let catalog = s.catalog();
        names
            .iter()
            .filter(|n| catalog.node(n).is_some())
            .map(|n| {
                let facts = NodeFacts {
                    serf: catalog.check(n, SERF_CHECK_ID).map(|c| c.status.clone()),
                    consul: catalog
                        .node_services(n)
                        .any(|svc| svc.service == CONSUL_SERVICE),
                };
                (n.to_string(), facts)
            })
            .collect()
    });
    let serf_of = |name: &str| facts.get(name).and_then(|f| f.serf.as_deref());
    let mut known = HashSet::new();
    for m in &members {
        if m.tags.get(tags::DC).map(String::as_str) != Some(dc.as_str()) {
            continue;
        }
        known.insert(m.name.clone());
        state.seen.insert(m.name.clone());
        let status = MemberStatus::from_code(m.status);
        match status {
            MemberStatus::Alive => {
                state.failed_since.remove(&m.name);
                let is_server = server_addr(m, &dc).is_some();
                let healthy = serf_of(&m.name) == Some(PASSING)
                    && (!is_server || facts.get(&m.name).is_some_and(|f| f.consul));
                if !healthy {
                    set_serf_health(agent, m, PASSING, ALIVE_OUTPUT).await;
                }
                if let Some(addr) = server_addr(m, &dc) {
                    ensure_voter(raft, m, addr, state);
                }
            }
            MemberStatus::Failed => {
                if facts.contains_key(&m.name) && serf_of(&m.name) != Some(CRITICAL) {
                    tracing::info!(member = %m.name, "consul: member failed, marking health critical");
                    set_serf_health(agent, m, CRITICAL, FAILED_OUTPUT).await;
                }
                if is_server(m) {
                    let since = *state
                        .failed_since
                        .entry(m.name.clone())
                        .or_insert_with(Instant::now);
                    if since.elapsed() >= agent.opts.dead_server_grace {
                        remove_dead_server(raft, m).await;
                    }
                }
            }
            MemberStatus::Left => {
                state.failed_since.remove(&m.name);
                if m.name != agent.opts.node_name && facts.contains_key(&m.name) {
                    tracing::info!(member = %m.name, "consul: member left, deregistering");
                    deregister_node(agent, &m.name).await;
                }
                if is_server(m)
                    && let Some(id) = raft_id(m)
                    && id != raft.id
                    && raft.members().iter().any(|r| r.id == id)
                {
                    tracing::info!(server = %m.name, "consul: removing server that left from raft");
                    if let Err(e) = raft.remove_server(id).await {
                        tracing::warn!(server = %m.name, error = %e, "failed to remove server");
                    }
                }
            }
            MemberStatus::Leaving | MemberStatus::None => {}
        }
    }
    // Reaped members: nodes with a serfHealth check that gossip no longer knows.
    for (node, f) in &facts {
        if f.serf.is_some()
            && state.seen.contains(node)
            && !known.contains(node)
            && *node != agent.opts.node_name
        {
            tracing::info!(member = %node, "consul: member reaped, deregistering");
            deregister_node(agent, node).await;
        }
    }
    remove_stale_servers(agent, raft, &members, state).await;
}

/// Autopilot's stale-server cleanup: a Raft member that no gossip member of
/// this datacenter carries any more (a server recreated without its data on a
/// new address rejoins under a new ID, and its old ID would count against the
/// quorum forever) is removed after `dead_server_grace`, and only while the
/// voters that gossip sees alive are a majority without it.
async fn remove_stale_servers(
    agent: &Agent,
    raft: &crate::raft::RaftNode,
    members: &[Member],
    state: &mut ReconcileState,
) {
    let dc = &agent.opts.datacenter;
    let carried: HashSet<NodeId> = members
        .iter()
        .filter(|m| m.tags.get(tags::DC) == Some(dc))
        .filter_map(raft_id)
        .collect();
    // server_addr is for alive servers only.
    let alive: HashSet<NodeId> = members
        .iter()
        .filter_map(|m| server_addr(m, dc).and(raft_id(m)))
        .chain([raft.id])
        .collect();
    let raft_members = raft.members();
    state
        .unknown_since
        .retain(|id, _| !carried.contains(id) && raft_members.iter().any(|r| r.id == *id));
    let adding = state.adding.lock().expect("adding lock").clone();
    for r in &raft_members {
        if r.id == raft.id || carried.contains(&r.id) || adding.contains(&r.id) {
            continue;
        }
        let since = *state.unknown_since.entry(r.id).or_insert_with(Instant::now);
        if since.elapsed() < agent.opts.dead_server_grace {
            continue;
        }
        let voters: Vec<NodeId> = raft_members
            .iter()
            .filter(|v| v.voter)
            .map(|v| v.id)
            .collect();
        let alive_voters = voters.iter().filter(|v| alive.contains(v)).count();
        if r.voter && alive_voters <= voters.len() / 2 {
            continue;
        }
        tracing::info!(id = r.id, addr = %r.addr, "autopilot: removing stale server unknown to gossip");
        match raft.remove_server(r.id).await {
            Ok(()) => {
                state.unknown_since.remove(&r.id);
            }
            Err(e) => {
                tracing::warn!(id = r.id, error = %e, "autopilot: failed to remove stale server")
            }
        }
    }
}

/// What the catalog holds about a member's node.
struct NodeFacts {
    /// Status of its serfHealth check, if it has one.
    serf: Option<String>,
    /// Whether it runs an instance of the `consul` service (servers do).
    consul: bool,
}

async fn set_serf_health(agent: &Agent, m: &Member, status: &str, output: &str) {
    let reg = CatalogRegistration {
        id: m.tags.get(tags::ID).cloned().unwrap_or_default(),
        node: m.name.clone(),
        address: m.addr.clone(),
        datacenter: agent.opts.datacenter.clone(),
        // An existing node keeps what its own agent registered (meta, tagged addresses).
        skip_node_update: status != PASSING,
        checks: vec![HealthCheck {
            node: m.name.clone(),
            check_id: SERF_CHECK_ID.into(),
            name: SERF_CHECK_NAME.into(),
            status: status.into(),
            output: output.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut reg = if status == PASSING && m.name == agent.opts.node_name {
        // Our own entry carries meta and tagged addresses.
        let mut own = agent.node_registration();
        own.checks = reg.checks;
        own
    } else if status == PASSING {
        CatalogRegistration {
            skip_node_update: true,
            ..reg
        }
    } else {
        reg
    };
    // Every alive server is an instance of the `consul` service.
    if status == PASSING
        && let Some(port) = server_addr(m, &agent.opts.datacenter)
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.port())
    {
        reg.service = Some(super::consul_service(port));
    }
    if let Err(e) = agent.write(Command::Register(Box::new(reg))).await {
        tracing::warn!(member = %m.name, error = %e, "failed to update serfHealth");
    }
}

async fn deregister_node(agent: &Agent, node: &str) {
    let dereg = CatalogDeregistration {
        node: node.to_string(),
        ..Default::default()
    };
    if let Err(e) = agent.write(Command::Deregister(dereg)).await {
        tracing::warn!(member = %node, error = %e, "failed to deregister node");
    }
}

/// Adds an alive server that is not a voter yet (in the background: it has to catch up).
fn ensure_voter(
    raft: &crate::raft::RaftNode,
    m: &Member,
    addr: String,
    state: &mut ReconcileState,
) {
    let Some(id) = raft_id(m) else {
        return;
    };
    if id == raft.id
        || raft
            .members()
            .iter()
            .any(|r| r.id == id && r.voter && r.addr == addr)
    {
        return;
    }
    if !state.adding.lock().expect("adding lock").insert(id) {
        return;
    }
    let raft = raft.clone();
    let adding = state.adding.clone();
    let name = m.name.clone();
    tokio::spawn(async move {
        // A server back on a new address is removed first, then added again;
        // so is another member on its address: the same server, recreated
        // without its data dir under a new ID (as Consul does).
        let stale: Vec<_> = raft
            .members()
            .into_iter()
            .filter(|r| (r.id == id) != (r.addr == addr))
            .map(|r| r.id)
            .collect();
        for old in stale {
            if old != raft.id {
                tracing::info!(server = %name, %addr, old, "consul: removing stale raft member");
                let _ = raft.remove_server(old).await;
            }
        }
        tracing::info!(server = %name, %addr, "consul: adding server to raft");
        match raft.add_server(id, addr).await {
            Ok(()) => tracing::info!(server = %name, "consul: server added as voter"),
            Err(e) => tracing::warn!(server = %name, error = %e, "consul: failed to add server"),
        }
        adding.lock().expect("adding lock").remove(&id);
    });
}

/// Autopilot's dead-server cleanup: removes a failed server unless that would
/// leave fewer healthy voters than a quorum of the remaining configuration.
async fn remove_dead_server(raft: &crate::raft::RaftNode, m: &Member) {
    let Some(id) = raft_id(m) else {
        return;
    };
    let voters: Vec<_> = raft.members().into_iter().filter(|r| r.voter).collect();
    if id == raft.id || !voters.iter().any(|r| r.id == id) {
        return;
    }
    // Only when the others are a majority of the current voters: the change
    // must commit, and removing half a cluster on a partition would be wrong.
    let remaining = voters.len() - 1;
    if remaining <= voters.len() / 2 {
        return;
    }
    tracing::info!(server = %m.name, "autopilot: removing dead server");
    if let Err(e) = raft.remove_server(id).await {
        tracing::warn!(server = %m.name, error = %e, "autopilot: failed to remove dead server");
    }
}
