//! `gossip-bench`: figures for the agent's SWIM gossip layer (`registry_node::gossip`),
//! every agent running in this one process.
//!
//! - `detect`: a cluster of agents on real UDP sockets on 127.0.0.1; one agent is
//!   killed abruptly (its task cancelled, no leave) and we time how long until the first
//!   and until every other agent lists it as `failed`.
//! - `converge`: a larger cluster (in-memory [`ChannelNetwork`] and/or UDP on loopback):
//!   time until every agent sees every agent alive, the process CPU and the datagram
//!   rate in the steady state, how long a tag update and a graceful leave take to reach
//!   everyone.
//!
//! Timings are real (wall clock, not tokio's paused clock) and shared with whatever else
//! runs on the machine, so they vary between runs; each figure is the median of the
//! runs with the range in parentheses. It prints figures and never asserts a timing.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use nix::sys::resource::{UsageWho, getrusage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registry_api::agent::{Member, MemberStatus};
use registry_node::gossip::{
    ChannelNetwork, GossipConfig, GossipHandle, MemberEvent, Transport, UdpTransport, spawn_gossip,
};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout_at};
use tokio_util::sync::CancellationToken;

/// Time failure detection, convergence, leave and tag propagation of the gossip layer
/// with many agents in one process, and print the figures.
#[derive(Debug, Clone, Parser)]
#[command(name = "gossip-bench", version, about)]
struct Args {
    /// Which measurements to run.
    #[arg(long, value_enum, default_value = "all")]
    scenario: ScenarioArg,

    /// Repetitions of each measurement (fresh cluster each time).
    #[arg(long, default_value_t = 5)]
    runs: usize,

    /// Cluster size (default: 10 for `detect`, 100 for `converge`).
    #[arg(long)]
    agents: Option<usize>,

    /// Timer set: Consul's LAN defaults (`GossipConfig::lan`), the fast test set
    /// (`GossipConfig::for_test`) or both.
    #[arg(long, value_enum, default_value = "both")]
    timings: TimingsArg,

    /// `converge`: network between the agents (`detect` always uses UDP).
    #[arg(long, value_enum, default_value = "both")]
    transport: TransportArg,

    /// How agents join: all through agent 0 at once (`seed`), or one after the other
    /// through a random agent that already joined (`random`).
    #[arg(long, value_enum, default_value = "seed")]
    join: JoinMode,

    /// `converge`: length of the steady-state window in which CPU and traffic are sampled.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    steady: Duration,

    /// Give up on a condition (convergence, failure seen, …) after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    Detect,
    Converge,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TimingsArg {
    Lan,
    Test,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Channel,
    Udp,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum JoinMode {
    Seed,
    Random,
}

fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timing {
    Lan,
    Test,
}

impl Timing {
    fn name(self) -> &'static str {
        match self {
            Timing::Lan => "lan",
            Timing::Test => "test",
        }
    }

    fn config(self, name: &str, seed: u64) -> GossipConfig {
        let mut cfg = match self {
            Timing::Lan => GossipConfig::lan(name, uuid::Uuid::new_v4().to_string()),
            Timing::Test => GossipConfig::for_test(name),
        };
        // Different member-selection sequences per agent, reproducible per run.
        cfg.rng_seed = Some(seed);
        cfg
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Channel,
    Udp,
}

impl Net {
    fn name(self) -> &'static str {
        match self {
            Net::Channel => "in-memory",
            Net::Udp => "UDP",
        }
    }
}

// ---- transport with a datagram counter ------------------------------------------------

/// Datagrams and bytes sent by every agent of a cluster.
#[derive(Debug, Default)]
struct Traffic {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl Traffic {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A transport that counts what it sends.
struct Counted<T> {
    inner: T,
    traffic: Arc<Traffic>,
}

impl<T: Transport> Transport for Counted<T> {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn send_to(&self, to: SocketAddr, packet: &[u8]) -> io::Result<()> {
        self.traffic.packets.fetch_add(1, Ordering::Relaxed);
        self.traffic
            .bytes
            .fetch_add(packet.len() as u64, Ordering::Relaxed);
        self.inner.send_to(to, packet)
    }

    fn recv(&mut self) -> impl Future<Output = io::Result<(SocketAddr, Vec<u8>)>> + Send {
        self.inner.recv()
    }
}

// ---- cluster --------------------------------------------------------------------------

struct Agent {
    name: String,
    handle: GossipHandle,
    token: CancellationToken,
}

struct Cluster {
    net: ChannelNetwork,
    kind: Net,
    timing: Timing,
    root: CancellationToken,
    agents: Vec<Agent>,
    traffic: Arc<Traffic>,
}

impl Cluster {
    fn new(kind: Net, timing: Timing) -> Self {
        Cluster {
            net: ChannelNetwork::new(),
            kind,
            timing,
            root: CancellationToken::new(),
            agents: Vec::new(),
            traffic: Arc::default(),
        }
    }

    /// Starts `n` agents (not joined yet).
    async fn spawn(&mut self, n: usize, seed: u64) -> Result<()> {
        for i in 0..n {
            let name = format!("agent-{i:03}");
            let cfg = self
                .timing
                .config(&name, seed.wrapping_mul(1_000).wrapping_add(i as u64));
            let token = self.root.child_token();
            let traffic = Arc::clone(&self.traffic);
            let handle = match self.kind {
                Net::Channel => {
                    let inner = self.net.add_node();
                    spawn_gossip(cfg, Counted { inner, traffic }, token.clone())
                }
                Net::Udp => {
                    let socket = UdpSocket::bind("127.0.0.1:0")
                        .await
                        .context("binding a UDP socket on 127.0.0.1")?;
                    let inner = UdpTransport::new(socket).context("UDP transport")?;
                    spawn_gossip(cfg, Counted { inner, traffic }, token.clone())
                }
            };
            self.agents.push(Agent {
                name,
                handle,
                token,
            });
        }
        Ok(())
    }

    /// Joins every agent but the first into one pool.
    async fn join(&self, mode: JoinMode, rng: &mut StdRng) -> Result<()> {
        match mode {
            JoinMode::Seed => {
                let seed = self.agents[0].handle.local_addr();
                let mut set = JoinSet::new();
                for a in &self.agents[1..] {
                    let h = a.handle.clone();
                    set.spawn(async move { h.join(vec![seed]).await });
                }
                while let Some(res) = set.join_next().await {
                    res.context("join task")?.context("join through the seed")?;
                }
            }
            JoinMode::Random => {
                for i in 1..self.agents.len() {
                    let via = self.agents[rng.random_range(0..i)].handle.local_addr();
                    self.agents[i]
                        .handle
                        .join(vec![via])
                        .await
                        .with_context(|| {
                            format!("{} joining through {via}", self.agents[i].name)
                        })?;
                }
            }
        }
        Ok(())
    }

    fn handles(&self) -> Vec<GossipHandle> {
        self.agents.iter().map(|a| a.handle.clone()).collect()
    }

    fn handles_except(&self, skip: usize) -> Vec<GossipHandle> {
        self.agents
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, a)| a.handle.clone())
            .collect()
    }

    async fn shutdown(self) {
        self.root.cancel();
        for a in &self.agents {
            a.handle.stopped().await;
        }
    }
}

// ---- waiting on conditions ------------------------------------------------------------

/// How long after `t0` each of `handles` first saw `pred` hold (`None`: not before
/// `t0 + limit`). One waiter task per agent, on its member-list watch.
async fn times_until<P>(handles: Vec<GossipHandle>, t0: Instant, limit: Duration, pred: P) -> Reach
where
    P: Fn(&[Member]) -> bool + Clone + Send + Sync + 'static,
{
    let n = handles.len();
    let mut set = JoinSet::new();
    for (i, h) in handles.into_iter().enumerate() {
        let pred = pred.clone();
        set.spawn(async move {
            let seen = timeout_at(t0 + limit, h.wait_members(move |m| pred(m))).await;
            (i, matches!(seen, Ok(Ok(()))).then(|| t0.elapsed()))
        });
    }
    let mut times = vec![None; n];
    while let Some(res) = set.join_next().await {
        if let Ok((i, t)) = res {
            times[i] = t;
        }
    }
    Reach { times }
}

/// Per-agent times of one condition.
struct Reach {
    times: Vec<Option<Duration>>,
}

impl Reach {
    fn reached(&self) -> usize {
        self.times.iter().flatten().count()
    }

    fn first(&self) -> Option<Duration> {
        self.times.iter().flatten().min().copied()
    }

    /// When the last agent saw it; `None` if some never did.
    fn all(&self) -> Option<Duration> {
        if self.reached() == self.times.len() {
            self.times.iter().flatten().max().copied()
        } else {
            None
        }
    }

    /// Nearest-rank quantile (`q` in 0..=1) over the agents; `None` if some never did.
    fn quantile(&self, q: f64) -> Option<Duration> {
        let mut t: Vec<Duration> = self.times.iter().flatten().copied().collect();
        t.sort();
        let rank = ((q * t.len() as f64).ceil() as usize).clamp(1, t.len().max(1));
        (self.reached() == self.times.len() && !t.is_empty()).then(|| t[rank - 1])
    }
}

fn status(m: &Member) -> MemberStatus {
    MemberStatus::from_code(m.status)
}

fn all_alive(n: usize) -> impl Fn(&[Member]) -> bool + Clone + Send + Sync + 'static {
    move |m: &[Member]| m.len() == n && m.iter().all(|x| status(x) == MemberStatus::Alive)
}

fn member_is(
    name: String,
    ok: impl Fn(&Member) -> bool + Clone + Send + Sync + 'static,
) -> impl Fn(&[Member]) -> bool + Clone + Send + Sync + 'static {
    move |m: &[Member]| m.iter().any(|x| x.name == name && ok(x))
}

/// "agent-003: alive ×7, failed ×2" over what every handle lists for `name`.
fn views_of(handles: &[GossipHandle], name: &str) -> String {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for h in handles {
        let s = h
            .members()
            .iter()
            .find(|m| m.name == name)
            .map_or("unknown", |m| status(m).as_str());
        *counts.entry(s).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, c)| format!("{s} ×{c}")).collect();
    format!("{name} seen as {}", parts.join(", "))
}

/// Smallest member list and how many agents list everyone alive.
fn convergence_state(handles: &[GossipHandle], n: usize) -> String {
    let pred = all_alive(n);
    let done = handles.iter().filter(|h| pred(&h.members())).count();
    let smallest = handles
        .iter()
        .map(|h| {
            h.members()
                .iter()
                .filter(|m| status(m) == MemberStatus::Alive)
                .count()
        })
        .min()
        .unwrap_or(0);
    format!("{done}/{n} agents see all {n} alive; the worst sees {smallest} alive")
}

/// Records in `line`, at a few points after `t`, how many (observer, member) pairs are
/// still missing: an agent that does not list another one as alive. Stops at zero.
async fn sample_missing(
    handles: Vec<GossipHandle>,
    t: Instant,
    n: usize,
    line: Arc<std::sync::Mutex<String>>,
) {
    for secs in [1, 2, 5, 10, 20, 30, 45, 60, 90, 120] {
        tokio::time::sleep_until(t + Duration::from_secs(secs)).await;
        let seen: usize = handles
            .iter()
            .map(|h| {
                h.members()
                    .iter()
                    .filter(|m| status(m) == MemberStatus::Alive)
                    .count()
            })
            .sum();
        let missing = (n * n).saturating_sub(seen);
        if let Ok(mut line) = line.lock() {
            line.push_str(&format!(" {secs}s: {missing};"));
        }
        if missing == 0 {
            break;
        }
    }
}

fn cpu_time() -> Result<Duration> {
    let u = getrusage(UsageWho::RUSAGE_SELF).context("getrusage")?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(tv(u.user_time()) + tv(u.system_time()))
}

// ---- results table --------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Unit {
    Secs,
    Percent,
    Rate,
    Count,
}

/// One value per run; `None` where the condition was never reached.
type RunValues = Vec<Option<f64>>;

/// Metric rows × configuration columns; each cell holds one value per run.
#[derive(Default)]
struct Table {
    columns: Vec<String>,
    rows: Vec<(String, Unit, Vec<RunValues>)>,
}

impl Table {
    fn column(&mut self, label: String) -> usize {
        self.columns.push(label);
        for row in &mut self.rows {
            row.2.push(Vec::new());
        }
        self.columns.len() - 1
    }

    fn push(&mut self, col: usize, metric: &str, unit: Unit, value: Option<f64>) {
        let ncols = self.columns.len();
        let pos = match self.rows.iter().position(|r| r.0 == metric) {
            Some(p) => p,
            None => {
                self.rows
                    .push((metric.to_owned(), unit, vec![Vec::new(); ncols]));
                self.rows.len() - 1
            }
        };
        self.rows[pos].2[col].push(value);
    }

    fn secs(&mut self, col: usize, metric: &str, value: Option<Duration>) {
        self.push(col, metric, Unit::Secs, value.map(|d| d.as_secs_f64()));
    }

    fn render(&self) -> String {
        let mut cells: Vec<Vec<String>> = vec![
            std::iter::once("measurement".to_owned())
                .chain(self.columns.iter().cloned())
                .collect(),
        ];
        for (metric, unit, cols) in &self.rows {
            let mut line = vec![metric.clone()];
            line.extend(cols.iter().map(|v| cell(v, *unit)));
            cells.push(line);
        }
        let widths: Vec<usize> = (0..cells[0].len())
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, row) in cells.iter().enumerate() {
            let padded: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
                .collect();
            out.push_str(&format!("| {} |\n", padded.join(" | ")));
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
            }
        }
        out
    }
}

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Secs if v < 0.01 => format!("{:.1} ms", v * 1000.0),
        Unit::Secs if v < 1.0 => format!("{:.0} ms", v * 1000.0),
        Unit::Secs => format!("{v:.2} s"),
        Unit::Percent => format!("{v:.1}%"),
        Unit::Rate if v < 100.0 => format!("{v:.1}"),
        Unit::Rate => format!("{v:.0}"),
        Unit::Count => format!("{v:.0}"),
    }
}

/// `median (min–max)` over the runs, with the number of runs that never got there.
fn cell(values: &[Option<f64>], unit: Unit) -> String {
    if values.is_empty() {
        return "–".to_owned();
    }
    let mut ok: Vec<f64> = values.iter().flatten().copied().collect();
    ok.sort_by(f64::total_cmp);
    let missed = values.len() - ok.len();
    let mut s = match ok.len() {
        0 => String::new(),
        1 => fmt_value(ok[0], unit),
        n => {
            let median = if n % 2 == 1 {
                ok[n / 2]
            } else {
                (ok[n / 2 - 1] + ok[n / 2]) / 2.0
            };
            format!(
                "{} ({}–{})",
                fmt_value(median, unit),
                fmt_value(ok[0], unit),
                fmt_value(ok[n - 1], unit)
            )
        }
    };
    if missed > 0 {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&format!("[{missed}/{} runs: never]", values.len()));
    }
    s
}

// ---- scenarios ------------------------------------------------------------------------

/// One failure-detection run: UDP cluster, converge, kill one agent, time `failed`.
async fn detect_run(
    timing: Timing,
    n: usize,
    run: usize,
    args: &Args,
    table: &mut Table,
    col: usize,
) -> Result<()> {
    let seed = 0xD0 + run as u64;
    let mut c = Cluster::new(Net::Udp, timing);
    c.spawn(n, seed).await?;
    let t = Instant::now();
    c.join(args.join, &mut StdRng::seed_from_u64(seed)).await?;
    let alive = times_until(c.handles(), t, args.timeout, all_alive(n)).await;
    table.secs(col, &format!("joins → all see {n} alive"), alive.all());
    if alive.all().is_none() {
        let state = convergence_state(&c.handles(), n);
        c.shutdown().await;
        bail!(
            "{} timings, run {}: the {n} agents did not converge within {:?}: {state}",
            timing.name(),
            run + 1,
            args.timeout
        );
    }
    // Let the join traffic die down so the kill hits a quiet pool.
    let cfg = timing.config("x", 0);
    sleep(cfg.probe_interval * 2).await;

    let victim = 1 + run % (n - 1);
    let name = c.agents[victim].name.clone();
    let observers = c.handles_except(victim);
    let t0 = Instant::now();
    c.agents[victim].token.cancel();
    let failed = times_until(
        observers.clone(),
        t0,
        args.timeout,
        member_is(name.clone(), |m| status(m) == MemberStatus::Failed),
    )
    .await;
    table.secs(col, "kill → first agent sees failed", failed.first());
    table.secs(
        col,
        &format!("kill → all {} others see failed", n - 1),
        failed.all(),
    );
    eprintln!(
        "  detect {} run {}: converged {}, killed {name}: first {}, all {}",
        timing.name(),
        run + 1,
        show(alive.all()),
        show(failed.first()),
        show(failed.all()),
    );
    if failed.all().is_none() {
        eprintln!(
            "  !! after {:?}: {}",
            args.timeout,
            views_of(&observers, &name)
        );
    }
    c.shutdown().await;
    Ok(())
}

fn show(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| fmt_value(d.as_secs_f64(), Unit::Secs),
    )
}

/// One convergence run: start `n` agents, join, time convergence, sample the steady
/// state, then time a tag update and a graceful leave.
async fn converge_run(
    net: Net,
    timing: Timing,
    n: usize,
    run: usize,
    args: &Args,
    table: &mut Table,
    col: usize,
) -> Result<()> {
    let seed = 0xC0 + run as u64;
    let mut c = Cluster::new(net, timing);
    c.spawn(n, seed).await?;
    let t = Instant::now();
    c.join(args.join, &mut StdRng::seed_from_u64(seed)).await?;
    let joined = t.elapsed();
    table.secs(col, "all join() calls returned", Some(joined));
    let missing = Arc::new(std::sync::Mutex::new(String::new()));
    let sampler = tokio::spawn(sample_missing(c.handles(), t, n, Arc::clone(&missing)));
    let alive = times_until(c.handles(), t, args.timeout, all_alive(n)).await;
    sampler.abort();
    if let Ok(line) = missing.lock() {
        eprintln!("    (observer, member) pairs not yet alive, after joins started:{line}");
    }
    table.secs(
        col,
        &format!("first agent sees all {n} alive"),
        alive.first(),
    );
    table.secs(
        col,
        &format!("median agent sees all {n} alive"),
        alive.quantile(0.5),
    );
    table.secs(
        col,
        &format!("90th pct agent sees all {n} alive"),
        alive.quantile(0.9),
    );
    table.secs(col, &format!("every agent sees all {n} alive"), alive.all());
    eprintln!(
        "  converge {} {} run {}: joins {}, all alive: first {}, all {}",
        net.name(),
        timing.name(),
        run + 1,
        show(Some(joined)),
        show(alive.first()),
        show(alive.all()),
    );
    if alive.all().is_none() {
        let state = convergence_state(&c.handles(), n);
        c.shutdown().await;
        eprintln!("  !! after {:?}: {state}", args.timeout);
        return Ok(());
    }

    // Steady state: CPU of the whole process, datagrams, spurious failures.
    let mut events: Vec<_> = c.agents.iter().map(|a| a.handle.events()).collect();
    let (cpu0, traffic0, w0) = (cpu_time()?, c.traffic.snapshot(), Instant::now());
    sleep(args.steady).await;
    let wall = w0.elapsed().as_secs_f64();
    let cpu = (cpu_time()? - cpu0).as_secs_f64();
    let traffic = c.traffic.snapshot();
    let packets = (traffic.0 - traffic0.0) as f64;
    let bytes = (traffic.1 - traffic0.1) as f64;
    let mut spurious = 0usize;
    for rx in &mut events {
        while let Ok(ev) = rx.try_recv() {
            spurious += usize::from(matches!(ev, MemberEvent::Fail(_)));
        }
    }
    table.push(
        col,
        "steady state: process CPU, % of one core",
        Unit::Percent,
        Some(cpu / wall * 100.0),
    );
    table.push(
        col,
        "steady state: datagrams/s sent per agent",
        Unit::Rate,
        Some(packets / wall / n as f64),
    );
    table.push(
        col,
        "steady state: KiB/s sent per agent",
        Unit::Rate,
        Some(bytes / wall / n as f64 / 1024.0),
    );
    table.push(
        col,
        "steady state: `failed` events (false positives)",
        Unit::Count,
        Some(spurious as f64),
    );
    eprintln!(
        "  steady {:.1} s: CPU {:.1}% of a core, {:.1} datagrams/s per agent, {spurious} fail events",
        wall,
        cpu / wall * 100.0,
        packets / wall / n as f64
    );
    // Let a spurious failure heal before timing the next steps.
    let healed = times_until(c.handles(), Instant::now(), args.timeout, all_alive(n)).await;
    if healed.all().is_none() {
        let state = convergence_state(&c.handles(), n);
        c.shutdown().await;
        eprintln!("  !! the pool did not return to all alive: {state}");
        return Ok(());
    }

    // Tag update on a middle agent.
    let k = n / 2;
    let name = c.agents[k].name.clone();
    let value = format!("run-{run}");
    let tags = BTreeMap::from([("bench".to_owned(), value.clone())]);
    let t0 = Instant::now();
    c.agents[k].handle.set_tags(tags).await?;
    let tagged = times_until(
        c.handles_except(k),
        t0,
        args.timeout,
        member_is(name.clone(), move |m| {
            m.tags.get("bench").is_some_and(|v| *v == value)
        }),
    )
    .await;
    table.secs(col, "set_tags → first agent sees it", tagged.first());
    table.secs(col, "set_tags → all others see it", tagged.all());

    // Graceful leave of the last agent.
    let j = n - 1;
    let name = c.agents[j].name.clone();
    let observers = c.handles_except(j);
    let leaver = c.agents[j].handle.clone();
    let t0 = Instant::now();
    let leave = tokio::spawn(async move { leaver.leave().await });
    let (leaving, left) = tokio::join!(
        times_until(
            observers.clone(),
            t0,
            args.timeout,
            member_is(name.clone(), |m| matches!(
                status(m),
                MemberStatus::Leaving | MemberStatus::Left
            )),
        ),
        times_until(
            observers.clone(),
            t0,
            args.timeout,
            member_is(name.clone(), |m| status(m) == MemberStatus::Left),
        ),
    );
    leave.await.context("leave task")?.context("leave")?;
    table.secs(col, "leave → all others see leaving", leaving.all());
    table.secs(col, "leave → all others see left", left.all());
    eprintln!(
        "  tags: first {}, all {}; leave: all leaving {}, all left {}",
        show(tagged.first()),
        show(tagged.all()),
        show(leaving.all()),
        show(left.all())
    );
    if tagged.all().is_none() {
        eprintln!("  !! tag update reached {}/{}", tagged.reached(), n - 1);
    }
    if left.all().is_none() {
        eprintln!(
            "  !! after {:?}: {}",
            args.timeout,
            views_of(&observers, &name)
        );
    }
    c.shutdown().await;
    Ok(())
}

fn reproduce(args: &Args) -> String {
    let mut cmd = format!(
        "target/release/gossip-bench --scenario {} --runs {} --timings {} --transport {} --join {} --steady {} --timeout {}",
        value_name(&args.scenario),
        args.runs,
        value_name(&args.timings),
        value_name(&args.transport),
        value_name(&args.join),
        humantime::format_duration(args.steady),
        humantime::format_duration(args.timeout),
    );
    if let Some(n) = args.agents {
        cmd.push_str(&format!(" --agents {n}"));
    }
    cmd
}

async fn run(args: Args) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.agents.is_some_and(|n| n < 3) {
        bail!("--agents must be at least 3");
    }
    let timings: &[Timing] = match args.timings {
        TimingsArg::Lan => &[Timing::Lan],
        TimingsArg::Test => &[Timing::Test],
        TimingsArg::Both => &[Timing::Lan, Timing::Test],
    };
    let nets: &[Net] = match args.transport {
        TransportArg::Channel => &[Net::Channel],
        TransportArg::Udp => &[Net::Udp],
        TransportArg::Both => &[Net::Channel, Net::Udp],
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = String::new();

    if matches!(args.scenario, ScenarioArg::Detect | ScenarioArg::All) {
        let n = args.agents.unwrap_or(10);
        let mut table = Table::default();
        for &timing in timings {
            let col = table.column(format!("{} timings", timing.name()));
            eprintln!("detect: {n} agents, {} timings", timing.name());
            for run in 0..args.runs {
                detect_run(timing, n, run, &args, &mut table, col).await?;
            }
        }
        out.push_str(&format!(
            "\nFailure detection: {n} agents on UDP 127.0.0.1, one killed without leaving \
             (task cancelled); median (min–max) of {} runs\n\n{}",
            args.runs,
            table.render()
        ));
    }

    if matches!(args.scenario, ScenarioArg::Converge | ScenarioArg::All) {
        let n = args.agents.unwrap_or(100);
        let mut table = Table::default();
        for &net in nets {
            for &timing in timings {
                let col = table.column(format!("{}, {} timings", net.name(), timing.name()));
                eprintln!(
                    "converge: {n} agents, {}, {} timings",
                    net.name(),
                    timing.name()
                );
                for run in 0..args.runs {
                    converge_run(net, timing, n, run, &args, &mut table, col).await?;
                }
            }
        }
        out.push_str(&format!(
            "\nConvergence: {n} agents in one process, joined via {} ({}); \
             steady-state window {}; median (min–max) of {} runs\n\n{}",
            value_name(&args.join),
            match args.join {
                JoinMode::Seed => "all at once through agent 0",
                JoinMode::Random => "one by one through a random joined agent",
            },
            humantime::format_duration(args.steady),
            args.runs,
            table.render()
        ));
    }

    print!("{out}");
    println!("\n{cores} CPU core(s); reproduce with:");
    println!("  cargo build --release -p registry-bench");
    println!("  {}", reproduce(&args));
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gossip-bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gossip-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
