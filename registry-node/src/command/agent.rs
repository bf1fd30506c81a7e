//! `registry-node agent`: load the configuration, bind the listeners, start
//! the agent, print Consul's start-up banner and run until a signal:
//! SIGHUP reloads the configuration, SIGINT/SIGTERM stop the agent.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentOptions, Listeners};
use crate::config::{self, AgentArgs, Config, ListenAddr, Resolved};
use crate::gossip::{GossipConfig, Keyring};

/// Runs the agent until it is told to stop.
pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    let config = config::load(&args)?;
    let resolved = config.resolve()?;
    let opts = options(&config, &resolved)?;

    let http_addr = resolved
        .http
        .iter()
        .find_map(|l| match l {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix(_) => None,
        })
        .context(
            "no TCP HTTP listener configured (ports.http is -1 or only unix sockets are set)",
        )?;
    let listener = TcpListener::bind(http_addr).await.with_context(|| {
        format!("Error starting HTTP server on {http_addr}: is another agent running?")
    })?;
    let bound = listener.local_addr()?;

    if let Some(pid_file) = Some(config.pid_file.as_str()).filter(|p| !p.is_empty()) {
        std::fs::write(pid_file, format!("{}", std::process::id()))
            .with_context(|| format!("cannot write pid file {pid_file}"))?;
    }
    if config.dev_mode {
        println!("==> WARNING: Dev mode enabled! Do not use in production; nothing is persisted");
    }
    if config.bootstrap_expect == 1 {
        println!("==> BootstrapExpect is set to 1; this is the same as Bootstrap mode.");
    } else if config.bootstrap_expect > 1 {
        println!(
            "==> WARNING: Expect Mode enabled, expecting {} servers",
            config.bootstrap_expect
        );
    }
    println!("==> Starting Consul agent...");
    let server_rpc = match resolved.server_rpc.filter(|_| config.server) {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("Error starting server RPC on {addr}: is another agent running?")
        })?),
        None => None,
    };
    let serf_lan = UdpSocket::bind(resolved.serf_lan).await.with_context(|| {
        format!(
            "Error starting Serf LAN on {}: is another agent running?",
            resolved.serf_lan
        )
    })?;
    let mut dns = Vec::new();
    for addr in &resolved.dns {
        dns.push(crate::agent::bind_dns(*addr).await.with_context(|| {
            format!("Error starting DNS server on {addr} (UDP and TCP): is another agent running?")
        })?);
    }
    let token = CancellationToken::new();
    let listeners = Listeners {
        http: listener,
        server_rpc,
        serf_lan,
        dns,
    };
    let handle = Agent::start(opts.clone(), listeners, token.clone()).await?;
    // The running agent's options carry the ports actually bound.
    print_banner(
        &handle.agent.opts,
        &config,
        &resolved,
        bound,
        handle.dns_addr,
    );

    // Reload re-reads the same flags and files.
    let reload_args = Arc::new(args);
    let reloader: crate::agent::Reloader = Arc::new(move || {
        let config = config::load(&reload_args)?;
        let resolved = config.resolve()?;
        options(&config, &resolved)
    });
    *handle.agent.reloader.lock().expect("reloader lock") = Some(reloader);

    let agent = handle.agent.clone();
    let (leave_on_terminate, skip_leave_on_interrupt) = (
        resolved.leave_on_terminate,
        resolved.skip_leave_on_interrupt,
    );
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("caught signal: hangup; reloading configuration");
                    if let Err(e) = agent.reload().await {
                        tracing::error!(error = %format!("{e:#}"), "failed to reload configuration; keeping the running one");
                    }
                }
                _ = int.recv() => {
                    tracing::info!("caught signal: interrupt");
                    if !skip_leave_on_interrupt {
                        println!("==> Gracefully shutting down agent...");
                        agent.leave().await;
                    }
                    agent.token.cancel();
                    break;
                }
                _ = term.recv() => {
                    tracing::info!("caught signal: terminated");
                    if leave_on_terminate {
                        println!("==> Gracefully shutting down agent...");
                        agent.leave().await;
                    }
                    agent.token.cancel();
                    break;
                }
                _ = agent.token.cancelled() => break,
            }
        }
    });
    handle.wait().await;
    if !config.pid_file.is_empty() {
        let _ = std::fs::remove_file(&config.pid_file);
    }
    println!("==> Graceful shutdown complete");
    Ok(0)
}

/// Maps the loaded configuration to the agent's options.
pub fn options(config: &Config, resolved: &Resolved) -> anyhow::Result<AgentOptions> {
    let data_dir = config.data_dir().map(Path::to_path_buf);
    let node_id = node_id(config, data_dir.as_deref())?;
    let m = config.performance.raft_multiplier.max(1);
    let port = |p: i32, default: u16| if p > 0 { p as u16 } else { default };
    Ok(AgentOptions {
        node_name: resolved.node_name.clone(),
        node_id,
        datacenter: config.datacenter.clone(),
        advertise_addr: resolved.advertise_ip,
        server: config.server,
        bootstrap: config.bootstrap || config.bootstrap_expect == 1 || config.dev_mode,
        bootstrap_expect: config.bootstrap_expect,
        data_dir,
        server_port: port(config.ports.server, 8300),
        serf_lan_port: port(config.ports.serf_lan, 8301),
        node_meta: config.node_meta.clone(),
        kv_max_value_size: config.limits.kv_max_value_size as usize,
        txn_max_req_len: config.limits.txn_max_req_len as usize,
        default_query_time: config.default_query_time.get(),
        max_query_time: config.max_query_time.get(),
        session_ttl_min: config.session_ttl_min.get(),
        ui: resolved.ui_enabled,
        // Our timing per raft_multiplier unit; the default multiplier 5 gives a 100 ms
        // heartbeat and a 0.5–0.8 s election timeout (Consul's would be 5 s). A follower also
        // waits out openraft's leader lease (the maximum election timeout) before it
        // campaigns, so a crashed leader is replaced in 1.3–1.6 s (README, Performance).
        raft_heartbeat: Duration::from_millis(20) * m,
        raft_election: (
            Duration::from_millis(100) * m,
            Duration::from_millis(160) * m,
        ),
        raft_snapshot_threshold: config.raft_snapshot_threshold,
        // Entries carry batches of requests; trailing logs count entries, so keep
        // a tenth of Consul's number (followers further behind get a snapshot).
        raft_trailing_logs: (config.raft_trailing_logs / 10).max(100),
        services: config.services.clone(),
        checks: config.checks.clone(),
        debug_config: serde_json::to_value(config).unwrap_or_default(),
        check_update_interval: config.check_update_interval.get(),
        min_deregister_critical: Duration::from_secs(60),
        sync_interval: Duration::from_secs(60),
        enable_script_checks: config.enable_script_checks,
        enable_local_script_checks: config.enable_local_script_checks,
        check_output_max_size: config.check_output_max_size,
        watches: config.watches.clone(),
        min_check_interval: crate::checks::MIN_INTERVAL,
        gossip: gossip_config(config)?,
        join: resolved.lan_join.clone(),
        retry_interval: config.retry_interval.get(),
        retry_max: config.retry_max,
        rejoin_after_leave: config.rejoin_after_leave,
        // Autopilot: a server failed this long is removed (Consul waits for
        // `server_stabilization_time`, 10s, before acting on a server's health).
        dead_server_grace: Duration::from_secs(10),
        dns: crate::dns::DnsOptions::from_config(config),
    })
}

/// The LAN pool parameters: `gossip_lan`, `reconnect_timeout` and `-encrypt`.
fn gossip_config(config: &Config) -> anyhow::Result<GossipConfig> {
    let p = config.gossip_lan.lan();
    let mut g = GossipConfig::lan(String::new(), String::new());
    g.gossip_nodes = p.gossip_nodes as usize;
    g.gossip_interval = p.gossip_interval;
    g.probe_interval = p.probe_interval;
    g.probe_timeout = p.probe_timeout;
    g.suspicion_mult = p.suspicion_mult;
    g.retransmit_mult = p.retransmit_mult;
    g.reconnect_timeout = config.reconnect_timeout.get();
    if !config.encrypt.is_empty() {
        g.keyring = Some(
            Keyring::new(&config.encrypt)
                .map_err(|e| anyhow::anyhow!("Failed to configure keyring: {e}"))?,
        );
    }
    Ok(g)
}

/// The node ID: `-node-id`, else the one persisted in `<data-dir>/node-id`, else a
/// new random UUID (persisted when there is a data dir), as Consul does.
fn node_id(config: &Config, data_dir: Option<&Path>) -> anyhow::Result<String> {
    if !config.node_id.is_empty() {
        uuid::Uuid::parse_str(&config.node_id)
            .with_context(|| format!("node_id {:?} is not a UUID", config.node_id))?;
        return Ok(config.node_id.to_lowercase());
    }
    let Some(dir) = data_dir else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let path = dir.join("node-id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim().to_string();
        uuid::Uuid::parse_str(&id)
            .with_context(|| format!("{} does not hold a UUID", path.display()))?;
        return Ok(id);
    }
    let id = if config.disable_host_node_id {
        uuid::Uuid::new_v4().to_string()
    } else {
        host_node_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    };
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// A node ID derived from the host (`-disable-host-node-id=false`), as Consul
/// did before 0.8.5: every agent on one machine (containers included) gets the
/// same one, which is why gossip refuses the second with a node-ID conflict.
fn host_node_id() -> Option<String> {
    let source = [
        "/sys/class/dmi/id/product_uuid",
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/random/boot_id",
    ]
    .iter()
    .find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })?;
    Some(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, source.as_bytes()).to_string())
}

fn print_banner(
    opts: &AgentOptions,
    config: &Config,
    resolved: &Resolved,
    http: SocketAddr,
    dns: Option<SocketAddr>,
) {
    let clients: Vec<String> = resolved
        .client_ips
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    // The bound port (`-dns-port=0` picks one), -1 when disabled.
    let dns = dns.map_or(-1, |a| i32::from(a.port()));
    println!("==> Consul agent running!");
    println!(
        "           Version: '{}' (registry-node {})",
        registry_api::CONSUL_COMPAT_VERSION,
        registry_api::VERSION
    );
    println!("           Node ID: '{}'", opts.node_id);
    println!("         Node name: '{}'", opts.node_name);
    println!(
        "        Datacenter: '{}' (Segment: '{}')",
        opts.datacenter,
        if opts.server { "<all>" } else { "" }
    );
    println!(
        "            Server: {} (Bootstrap: {})",
        opts.server, opts.bootstrap
    );
    println!(
        "       Client Addr: [{}] (HTTP: {}, HTTPS: -1, gRPC: -1, DNS: {dns})",
        clients.join(" "),
        http.port()
    );
    println!(
        "      Cluster Addr: {} (LAN: {}, WAN: {})",
        opts.advertise_addr, opts.serf_lan_port, config.ports.serf_wan
    );
    println!(
        "           Encrypt: Gossip: {}, TLS-Outgoing: false, TLS-Incoming: false",
        !config.encrypt.is_empty()
    );
    println!();
    println!("==> Log data will now stream in as it occurs:");
    println!();
}
