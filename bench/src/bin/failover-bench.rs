//! `failover-bench`: figures for a 3-server cluster of real `registry-node`
//! processes, each on its own loopback address (127.0.0.2, .3, .4) with
//! Consul's default ports (8500 HTTP, 8300 RPC, 8301 gossip).
//!
//! - `failover`: a writer sends `PUT /v1/kv/bench/failover/<run>/<seq>` every
//!   `--write-interval` (open loop, each request with its own timeout),
//!   alternating between the two followers, which forward to the leader. The
//!   leader process is SIGKILLed at t0; the tool reports the time from t0 until
//!   both survivors name the same new leader in `/v1/status/leader`, and until
//!   the first write *sent after t0* is acknowledged. The killed server is then
//!   restarted on its data dir and the tool waits for 3 peers and a stable
//!   leader before the next run. Every acknowledged key is looked up again
//!   afterwards (on the leader, and on the restarted server once it caught up)
//!   so lost writes would show. Repeated `--runs` times per `--multiplier`
//!   (a fresh cluster per multiplier).
//! - `throughput`: 64 closed-loop clients doing durable PUTs of random keys out
//!   of `--keys` (1,000,000: nearly all distinct) for `--duration`, through the
//!   leader's HTTP API, through a follower's (forwarded), and on a single
//!   server (`-bootstrap-expect=1`), using the `registry-bench` load loop.
//!
//! It prints figures and never asserts a timing. Every process it starts is
//! killed when it exits, also on error, panic, Ctrl-C or SIGTERM.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use registry_bench::load::{LoadReport, LoadSpec, Op, run_load};
use registry_bench::target::{PreparedValue, Target, http_client};
use reqwest::{Client, StatusCode};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Loopback addresses of the three servers (the single server uses the first).
const IPS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
/// Consul's default ports, which the agents keep: HTTP, server RPC, Serf LAN, Serf WAN.
const TCP_PORTS: [u16; 4] = [8500, 8300, 8301, 8302];
const UDP_PORTS: [u16; 2] = [8301, 8302];
/// How long the cluster may take to elect, to accept a write after a kill, or to heal.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Kill the Raft leader of a 3-server cluster and time until writes are
/// accepted again; measure durable PUT throughput via leader, follower and on
/// a single server.
#[derive(Debug, Clone, Parser)]
#[command(name = "failover-bench", version, about)]
struct Args {
    /// The registry-node binary to start.
    #[arg(long, default_value = "target/release/registry-node")]
    binary: PathBuf,

    /// What to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "failover,throughput"
    )]
    parts: Vec<Part>,

    /// Leader kills per multiplier.
    #[arg(long, default_value_t = 5)]
    runs: usize,

    /// `performance.raft_multiplier` values to test (a fresh cluster each).
    /// The throughput part uses the first one.
    #[arg(long, value_delimiter = ',', default_value = "5,1")]
    multiplier: Vec<u32>,

    /// Failover: a new write is sent this often (open loop), alternating between
    /// the two followers.
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    write_interval: Duration,

    /// Failover: per-request timeout of the writer.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,

    /// Throughput: measured time of each load run (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Throughput: unrecorded warm-up before each load run.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,

    /// Throughput: concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,

    /// Throughput: keys are drawn from `bench/0..keys`.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,

    /// Size in bytes of each written value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,

    /// Keep the data dirs and agent logs (they are kept anyway after an error).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Failover,
    Throughput,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Failover => "failover",
            Part::Throughput => "throughput",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("failover-bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut work = match WorkDir::create(args.keep) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("failover-bench: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` (Ctrl-C, SIGTERM) drops its cluster guards, which kill the agents.
    let outcome = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let signal = tokio::select! {
            r = run(&args, &work.path) => return r.map(|()| None),
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        Ok(Some(signal))
    });
    match outcome {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(signal)) => {
            eprintln!("failover-bench: stopped by {signal}; every agent it started was killed");
            ExitCode::from(130)
        }
        Err(e) => {
            work.keep = true;
            eprintln!("failover-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Processes

/// Temporary directory for data dirs, config files and logs; removed on drop
/// unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(keep: bool) -> Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("failover-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("data dirs and agent logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// One agent: how to start it and, while it runs, its process.
struct Node {
    name: String,
    ip: &'static str,
    log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Node {
    fn http(&self) -> String {
        format!("http://{}:8500", self.ip)
    }

    /// `ip:8300`, the address `/v1/status/leader` reports.
    fn raft_addr(&self) -> String {
        format!("{}:8300", self.ip)
    }

    fn start(&mut self, binary: &Path) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} for {}", binary.display(), self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap; returns the instant just before the signal was sent.
    fn kill(&mut self) -> Option<Instant> {
        let mut child = self.child.take()?;
        let t0 = Instant::now();
        let _ = child.kill();
        let _ = child.wait();
        Some(t0)
    }

    /// The agent exited by itself (a crash): say so with its status.
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited by itself ({status}); see {}",
                self.name,
                self.log.display()
            )),
            _ => None,
        }
    }
}

/// The agents of one setup. Dropping it kills every one still running.
struct Cluster {
    nodes: Vec<Node>,
    binary: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

impl Cluster {
    /// Start `servers` agents (1 or 3) under `dir` with the given multiplier.
    fn start(binary: &Path, dir: &Path, servers: usize, multiplier: u32) -> Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("performance.json");
        std::fs::write(
            &config,
            format!(r#"{{"performance": {{"raft_multiplier": {multiplier}}}}}"#),
        )?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            binary: binary.to_owned(),
        };
        for (i, ip) in IPS.iter().copied().take(servers).enumerate() {
            let name = format!("n{}", i + 1);
            let data = dir.join(&name);
            std::fs::create_dir_all(&data)?;
            let mut args = vec![
                "agent".to_owned(),
                "-server".to_owned(),
                format!("-bootstrap-expect={servers}"),
                format!("-node={name}"),
                format!("-bind={ip}"),
                format!("-client={ip}"),
                format!("-data-dir={}", data.display()),
                "-dns-port=-1".to_owned(),
                format!("-config-file={}", config.display()),
            ];
            for other in IPS.iter().take(servers).filter(|o| **o != ip) {
                args.push(format!("-retry-join={other}"));
            }
            cluster.nodes.push(Node {
                log: dir.join(format!("{name}.log")),
                name,
                ip,
                args,
                child: None,
            });
        }
        for n in &mut cluster.nodes {
            n.start(binary)?;
        }
        Ok(cluster)
    }

    fn node_by_raft_addr(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.raft_addr() == addr)
    }

    fn crashed(&mut self) -> Option<String> {
        self.nodes.iter_mut().find_map(Node::exited)
    }

    /// Wait until every node answers, lists all servers as peers and names the
    /// same leader, continuously for `stable`, and a write through every node
    /// is accepted. Returns the leader's index.
    async fn wait_stable(&mut self, client: &Client, stable: Duration) -> Result<usize> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let mut agreed_since: Option<(Instant, String)> = None;
        loop {
            if let Some(crash) = self.crashed() {
                bail!(crash);
            }
            let mut views = Vec::new();
            for n in &self.nodes {
                let leader = status_leader(client, &n.http()).await;
                let peers = status_peers(client, &n.http()).await;
                views.push((n.name.clone(), leader, peers));
            }
            let leaders: BTreeSet<_> = views
                .iter()
                .map(|(_, l, _)| l.as_ref().ok().cloned().unwrap_or_default())
                .collect();
            let all_peers = views
                .iter()
                .all(|(_, _, p)| p.as_ref().is_ok_and(|p| p.len() == self.nodes.len()));
            let agreed = match leaders.iter().next() {
                Some(l) if leaders.len() == 1 && !l.is_empty() && all_peers => Some(l.clone()),
                _ => None,
            };
            match (&agreed, &agreed_since) {
                (Some(l), Some((since, prev))) if l == prev => {
                    if since.elapsed() >= stable {
                        let idx = self
                            .node_by_raft_addr(l)
                            .with_context(|| format!("leader {l} is none of the servers"))?;
                        // Every node serves (forwards) writes.
                        let mut write_ok = true;
                        for n in &self.nodes {
                            let url = format!("{}/v1/kv/bench/failover-probe", n.http());
                            if let Err(e) = put(client, &url, b"probe").await {
                                eprintln!("  probe write via {} failed: {e:#}", n.name);
                                write_ok = false;
                            }
                        }
                        if write_ok {
                            return Ok(idx);
                        }
                        agreed_since = None;
                    }
                }
                (Some(l), _) => agreed_since = Some((Instant::now(), l.clone())),
                (None, _) => agreed_since = None,
            }
            if Instant::now() >= deadline {
                let mut msg = format!(
                    "no stable leader with {} peers on every server within {:?}:",
                    self.nodes.len(),
                    CLUSTER_TIMEOUT
                );
                for (name, leader, peers) in &views {
                    let _ = write!(msg, " {name}: leader {leader:?}, peers {peers:?};");
                }
                bail!(msg);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Fail with a clear message if a port the agents need is taken.
fn check_ports() -> Result<()> {
    let mut busy = Vec::new();
    for ip in IPS {
        for port in TCP_PORTS {
            if let Err(e) = TcpListener::bind((ip, port)) {
                busy.push(format!("{ip}:{port}/tcp ({e})"));
            }
        }
        for port in UDP_PORTS {
            if let Err(e) = UdpSocket::bind((ip, port)) {
                busy.push(format!("{ip}:{port}/udp ({e})"));
            }
        }
    }
    if !busy.is_empty() {
        bail!(
            "ports needed by the agents are not free: {}. Stop whatever uses them \
             (`ss -ltnup | grep 127.0.0.[234]`) and run again",
            busy.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// HTTP helpers

async fn status_leader(client: &Client, base: &str) -> Result<String> {
    let resp = client
        .get(format!("{base}/v1/status/leader"))
        .send()
        .await?
        .error_for_status()?;
    Ok(resp.json::<String>().await?)
}

async fn status_peers(client: &Client, base: &str) -> Result<Vec<String>> {
    let resp = client
        .get(format!("{base}/v1/status/peers"))
        .send()
        .await?
        .error_for_status()?;
    Ok(resp.json::<Vec<String>>().await?)
}

async fn put(client: &Client, url: &str, body: &'static [u8]) -> Result<()> {
    let resp = client.put(url).body(body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status != StatusCode::OK || text.trim() != "true" {
        bail!("{status} {}", text.trim());
    }
    Ok(())
}

/// Keys under `prefix` (`?keys`), read from `base`; `stale` reads the node's own state.
async fn list_keys(client: &Client, base: &str, prefix: &str, stale: bool) -> Result<Vec<String>> {
    let mode = if stale { "&stale" } else { "&consistent" };
    let resp = client
        .get(format!("{base}/v1/kv/{prefix}?keys{mode}"))
        .send()
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    Ok(resp.error_for_status()?.json().await?)
}

// ---------------------------------------------------------------------------
// Failover

/// One write of the failover writer.
struct WriteOutcome {
    key: String,
    sent: Instant,
    done: Instant,
    result: Result<(), String>,
}

/// One leader kill.
struct KillRun {
    /// t0 → both survivors name the same new leader.
    leader_ms: Option<f64>,
    /// t0 → first write sent after t0 acknowledged.
    write_ok_ms: Option<f64>,
    /// Writes that failed or timed out (sent before or after t0).
    failed: usize,
    /// Acknowledged writes.
    acked: usize,
    /// Acknowledged keys missing afterwards (leader, consistent read).
    lost: usize,
    /// Acknowledged keys the restarted server still lacked after catching up.
    lost_on_restarted: usize,
    /// First error of a write sent after t0.
    first_error: Option<String>,
    /// First error of any write.
    any_error: Option<String>,
}

/// Writer: every `interval` a new PUT of a fresh key, alternating between
/// `bases`, each in its own task with its own timeout; outcomes go to `tx`.
async fn writer(
    bases: [String; 2],
    prefix: String,
    interval: Duration,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<WriteOutcome>,
) -> Result<()> {
    // Enough pooled connections for the requests in flight while writes hang.
    let client = http_client(1024, Some(timeout))?;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut inflight = JoinSet::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let key = format!("{prefix}{seq:07}");
        let url = format!("{}/v1/kv/{key}", bases[(seq % 2) as usize]);
        seq += 1;
        let (client, tx) = (client.clone(), tx.clone());
        inflight.spawn(async move {
            let sent = Instant::now();
            let result = put(&client, &url, b"failover").await;
            let _ = tx.send(WriteOutcome {
                key,
                sent,
                done: Instant::now(),
                result: result.map_err(|e| format!("{e:#}")),
            });
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
    Ok(())
}

/// Poll the survivors until both name the same leader that is not `old`.
async fn watch_new_leader(bases: [String; 2], old: String, t0: Instant) -> Option<Instant> {
    let client = http_client(4, Some(Duration::from_millis(500))).ok()?;
    while t0.elapsed() < CLUSTER_TIMEOUT {
        let (a, b) = tokio::join!(
            status_leader(&client, &bases[0]),
            status_leader(&client, &bases[1])
        );
        let now = Instant::now();
        if let (Ok(a), Ok(b)) = (a, b)
            && a == b
            && !a.is_empty()
            && a != old
        {
            return Some(now);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn kill_run(
    cluster: &mut Cluster,
    client: &Client,
    leader: usize,
    tag: &str,
    args: &Args,
) -> Result<(KillRun, usize)> {
    let followers: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != leader).collect();
    let bases = [
        cluster.nodes[followers[0]].http(),
        cluster.nodes[followers[1]].http(),
    ];
    let prefix = format!("bench/failover/{tag}/");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer(
        bases.clone(),
        prefix.clone(),
        args.write_interval,
        args.write_timeout,
        Arc::clone(&stop),
        tx,
    ));
    let mut outcomes = Vec::new();

    // Baseline: writes through both followers work before the kill.
    let warm_deadline = Instant::now() + Duration::from_secs(10);
    while outcomes
        .iter()
        .filter(|o: &&WriteOutcome| o.result.is_ok())
        .count()
        < 50
    {
        match tokio::time::timeout_at(warm_deadline.into(), rx.recv()).await {
            Ok(Some(o)) => outcomes.push(o),
            _ => {
                stop.store(true, Ordering::Relaxed);
                let err = outcomes.iter().find_map(|o| o.result.clone().err());
                bail!("{tag}: writes through the followers fail before any kill: {err:?}");
            }
        }
    }

    let old_leader = cluster.nodes[leader].raft_addr();
    let t0 = cluster.nodes[leader]
        .kill()
        .context("the leader process is not running")?;
    let watcher = tokio::spawn(watch_new_leader(bases.clone(), old_leader, t0));

    // Until the first write sent after t0 is acknowledged, then 200 ms more.
    let recover_deadline = t0 + CLUSTER_TIMEOUT;
    let mut write_ok: Option<Instant> = None;
    loop {
        let until = match write_ok {
            Some(ok) => (ok + Duration::from_millis(200)).min(recover_deadline),
            None => recover_deadline,
        };
        match tokio::time::timeout_at(until.into(), rx.recv()).await {
            Ok(Some(o)) => {
                if write_ok.is_none() && o.sent >= t0 && o.result.is_ok() {
                    write_ok = Some(o.done);
                }
                outcomes.push(o);
            }
            _ => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await??;
    while let Ok(o) = rx.try_recv() {
        outcomes.push(o);
    }
    let new_leader_at = watcher.await?;

    let mut run = KillRun {
        leader_ms: new_leader_at.map(|t| ms(t - t0)),
        write_ok_ms: write_ok.map(|t| ms(t - t0)),
        failed: outcomes.iter().filter(|o| o.result.is_err()).count(),
        acked: outcomes.iter().filter(|o| o.result.is_ok()).count(),
        lost: 0,
        lost_on_restarted: 0,
        first_error: outcomes
            .iter()
            .filter(|o| o.sent >= t0)
            .find_map(|o| o.result.clone().err()),
        any_error: outcomes.iter().find_map(|o| o.result.clone().err()),
    };
    if write_ok.is_none() {
        let mut views = String::new();
        for &f in &followers {
            let n = &cluster.nodes[f];
            let l = status_leader(client, &n.http()).await;
            let _ = write!(views, " {} says leader {l:?};", n.name);
        }
        eprintln!(
            "  {tag}: NO write sent after the kill was accepted within {CLUSTER_TIMEOUT:?}; \
             first error {:?};{views}",
            run.first_error
        );
    }

    // Bring the killed server back on its data dir and wait for a healthy cluster.
    let binary = cluster.binary.clone();
    cluster.nodes[leader].start(&binary)?;
    let new_leader = cluster
        .wait_stable(client, Duration::from_secs(1))
        .await
        .with_context(|| format!("{tag}: after restarting {}", cluster.nodes[leader].name))?;

    // Durability: every acknowledged key is there, and the restarted server
    // (which missed them while down) catches up on them.
    let acked: BTreeSet<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.key.as_str())
        .collect();
    let on_leader: BTreeSet<String> =
        list_keys(client, &cluster.nodes[new_leader].http(), &prefix, false)
            .await?
            .into_iter()
            .collect();
    run.lost = acked.iter().filter(|k| !on_leader.contains(**k)).count();
    let restarted = cluster.nodes[leader].http();
    let catch_up = Instant::now() + Duration::from_secs(15);
    loop {
        let there: BTreeSet<String> = list_keys(client, &restarted, &prefix, true)
            .await?
            .into_iter()
            .collect();
        run.lost_on_restarted = acked.iter().filter(|k| !there.contains(**k)).count();
        if run.lost_on_restarted == 0 || Instant::now() >= catch_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if run.lost > 0 || run.lost_on_restarted > 0 {
        let missing: Vec<&&str> = acked.iter().filter(|k| !on_leader.contains(**k)).collect();
        eprintln!(
            "  {tag}: LOST WRITES: {} acknowledged keys missing on the leader {} \
             (first: {:?}), {} missing on the restarted {}",
            run.lost,
            cluster.nodes[new_leader].name,
            missing.first(),
            run.lost_on_restarted,
            cluster.nodes[leader].name
        );
    }
    Ok((run, new_leader))
}

/// All kill runs for one multiplier on a fresh cluster.
async fn failover(args: &Args, root: &Path, multiplier: u32) -> Result<Vec<KillRun>> {
    let client = http_client(8, Some(Duration::from_secs(2)))?;
    let dir = root.join(format!("failover-m{multiplier}"));
    let mut cluster = Cluster::start(&args.binary, &dir, 3, multiplier)?;
    let mut leader = cluster
        .wait_stable(&client, Duration::from_secs(1))
        .await
        .context("initial election")?;
    eprintln!(
        "multiplier {multiplier}: 3 servers up, leader {}",
        cluster.nodes[leader].name
    );
    let mut runs = Vec::new();
    for i in 1..=args.runs {
        let tag = format!("m{multiplier}-r{i}");
        let killed = cluster.nodes[leader].name.clone();
        let (run, next) = kill_run(&mut cluster, &client, leader, &tag, args).await?;
        eprintln!(
            "  {tag}: killed {killed}; new leader after {}, write accepted after {}; \
             {} acked, {} failed (first: {}), {} lost; now leader {}",
            fmt_opt(run.leader_ms),
            fmt_opt(run.write_ok_ms),
            run.acked,
            run.failed,
            run.any_error.as_deref().unwrap_or("-"),
            run.lost + run.lost_on_restarted,
            cluster.nodes[next].name
        );
        runs.push(run);
        leader = next;
    }
    Ok(runs)
}

// ---------------------------------------------------------------------------
// Throughput

async fn put_load(args: &Args, url: &str, label: &str) -> Result<LoadReport> {
    let target = Arc::new(Target::registry(url).await?);
    let spec = LoadSpec {
        op: Op::Put,
        clients: args.clients,
        keys: args.keys,
        value: Arc::new(PreparedValue::new(args.value_size)),
        warmup: args.warmup,
        duration: args.duration,
        request_timeout: Duration::from_secs(10),
    };
    eprintln!("put{}: {label} ({url})", args.clients);
    run_load(label, &target, &spec).await
}

async fn throughput(args: &Args, root: &Path, multiplier: u32) -> Result<Vec<LoadReport>> {
    let client = http_client(8, Some(Duration::from_secs(2)))?;
    let mut reports = Vec::new();
    {
        let dir = root.join(format!("throughput-3-m{multiplier}"));
        let mut cluster = Cluster::start(&args.binary, &dir, 3, multiplier)?;
        let leader = cluster.wait_stable(&client, Duration::from_secs(1)).await?;
        let follower = (leader + 1) % 3;
        let l = cluster.nodes[leader].http();
        let f = cluster.nodes[follower].http();
        reports.push(put_load(args, &l, "3 servers, via the leader").await?);
        reports.push(put_load(args, &f, "3 servers, via a follower").await?);
        if let Some(crash) = cluster.crashed() {
            bail!(crash);
        }
    }
    let dir = root.join(format!("throughput-1-m{multiplier}"));
    let mut single = Cluster::start(&args.binary, &dir, 1, multiplier)?;
    let leader = single.wait_stable(&client, Duration::from_secs(1)).await?;
    let url = single.nodes[leader].http();
    reports.push(put_load(args, &url, "1 server (-bootstrap-expect=1)").await?);
    if let Some(crash) = single.crashed() {
        bail!(crash);
    }
    Ok(reports)
}

// ---------------------------------------------------------------------------
// Driver and output

async fn run(args: &Args, root: &Path) -> Result<()> {
    if args.runs == 0 || args.multiplier.is_empty() || args.clients == 0 || args.keys == 0 {
        bail!("--runs, --multiplier, --clients and --keys must be non-empty / greater than zero");
    }
    if let Some(m) = args.multiplier.iter().find(|m| !(1..=10).contains(*m)) {
        bail!("--multiplier {m}: raft_multiplier must be between 1 and 10");
    }
    if !args.binary.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p registry-node) or pass --binary",
            args.binary.display()
        );
    }
    check_ports()?;

    let mut failovers = Vec::new();
    if args.parts.contains(&Part::Failover) {
        for &m in &args.multiplier {
            failovers.push((m, failover(args, root, m).await?));
        }
    }
    let mut loads = Vec::new();
    if args.parts.contains(&Part::Throughput) {
        loads = throughput(args, root, args.multiplier[0]).await?;
    }

    print!("{}", table(args, &failovers, &loads));
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "NEVER".to_owned(), |v| format!("{v:.0} ms"))
}

/// `min / median / max` of the runs that recovered, plus how many did not.
fn summary(values: impl Iterator<Item = Option<f64>>) -> String {
    let mut missing = 0;
    let mut v: Vec<f64> = values
        .filter_map(|x| {
            if x.is_none() {
                missing += 1;
            }
            x
        })
        .collect();
    v.sort_by(f64::total_cmp);
    let mut s = if v.is_empty() {
        "-".to_owned()
    } else {
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        format!("{:.0} / {:.0} / {:.0}", v[0], median, v[n - 1])
    };
    if missing > 0 {
        let _ = write!(s, " ({missing} never)");
    }
    s
}

fn failover_row(c: [&str; 8]) -> String {
    format!(
        "{:<11} {:<17} {:<22} {:<22} {:>6} {:>6} {:>5}  {}\n",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    )
}

fn table(args: &Args, failovers: &[(u32, Vec<KillRun>)], loads: &[LoadReport]) -> String {
    let mut out = String::new();
    if !failovers.is_empty() {
        let _ = writeln!(
            out,
            "\nLeader SIGKILL, 3 servers; writer: a PUT every {:?} alternating between the \
             two followers, {:?} timeout; times from the kill, ms, min / median / max of {} runs",
            args.write_interval, args.write_timeout, args.runs
        );
        out.push_str(&failover_row([
            "multiplier",
            "election timeout",
            "new leader (both)",
            "first write accepted",
            "acked",
            "failed",
            "lost",
            "write accepted, each run (ms)",
        ]));
        for (m, runs) in failovers {
            let each: Vec<String> = runs
                .iter()
                .map(|r| {
                    r.write_ok_ms
                        .map_or("never".to_owned(), |v| format!("{v:.0}"))
                })
                .collect();
            let acked: usize = runs.iter().map(|r| r.acked).sum();
            let failed: usize = runs.iter().map(|r| r.failed).sum();
            let lost: usize = runs.iter().map(|r| r.lost + r.lost_on_restarted).sum();
            out.push_str(&failover_row([
                &m.to_string(),
                &format!("{}–{} ms", 100 * m, 160 * m),
                &summary(runs.iter().map(|r| r.leader_ms)),
                &summary(runs.iter().map(|r| r.write_ok_ms)),
                &acked.to_string(),
                &failed.to_string(),
                &lost.to_string(),
                &each.join(", "),
            ]));
            for r in runs.iter().filter(|r| r.write_ok_ms.is_none()) {
                let _ = writeln!(out, "  no recovery: first error {:?}", r.first_error);
            }
        }
    }
    if !loads.is_empty() {
        let _ = writeln!(
            out,
            "\nDurable PUT, {} clients, random keys of {} ({} B values), {:?} measured after {:?} \
             warm-up (raft_multiplier {})",
            args.clients,
            args.keys,
            args.value_size,
            args.duration,
            args.warmup,
            args.multiplier[0]
        );
        let h = ["setup", "ops/s", "p50 ms", "p99 ms", "errors"];
        let _ = writeln!(
            out,
            "{:<34} {:>9} {:>8} {:>8} {:>7}",
            h[0], h[1], h[2], h[3], h[4]
        );
        for r in loads {
            let _ = writeln!(
                out,
                "{:<34} {:>9.0} {:>8.2} {:>8.2} {:>7}",
                r.scenario, r.ops_per_sec, r.latency.p50_ms, r.latency.p99_ms, r.errors
            );
            if let Some(e) = &r.first_error {
                let _ = writeln!(out, "  first error: {e}");
            }
        }
    }
    let parts: Vec<&str> = args.parts.iter().map(|p| p.name()).collect();
    let multipliers: Vec<String> = args.multiplier.iter().map(u32::to_string).collect();
    let _ = writeln!(
        out,
        "\nReproduce: target/release/failover-bench --binary {} --parts {} --runs {} \
         --multiplier {} --write-interval {} --write-timeout {} --duration {} --warmup {} \
         --clients {} --keys {} --value-size {}",
        args.binary.display(),
        parts.join(","),
        args.runs,
        multipliers.join(","),
        humantime::format_duration(args.write_interval),
        humantime::format_duration(args.write_timeout),
        humantime::format_duration(args.duration),
        humantime::format_duration(args.warmup),
        args.clients,
        args.keys,
        args.value_size
    );
    out
}
