//! `dns-bench`: DNS figures with Debian's `dnsperf` against a real
//! `registry-node` process, and Debian's `dnsmasq` answering one static record
//! as the reference, in the same run on the same machine.
//!
//! The agent (`-dev`, DNS on a free loopback port) is loaded with
//! `--instances` service instances (10,000) through `/v1/catalog/register`:
//! `small` (3 instances), `large` (100) and filler services of 100 instances
//! each, every instance on its own node with a passing service check, so the
//! DNS path does the health filtering it does in production. Then `dnsperf`
//! asks SRV questions for `small` and `large` for `--duration`; the same two
//! questions are repeated against an agent holding only those 103 instances,
//! to show whether latency grows with the catalog.
//!
//! dnsperf's defaults are kept (UDP, no EDNS: the answer is cut to 3 records
//! as Consul does), plus one `large` run with EDNS (`-e`: every record, as
//! many as fit the 4 KiB buffer dnsperf announces, then TC). Saturating runs
//! give the throughput; runs at a fixed `--rate` below saturation give the
//! latency of one query rather than the queueing of 100 outstanding ones.
//! The tool prints figures and never asserts a timing. Every process it
//! starts is killed when it exits.

use std::fmt::Write as _;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use reqwest::Client;
use serde_json::json;
use tokio::task::JoinSet;

use hickory_server::proto::rr::{Name, RecordType};
use registry_api::CatalogRegistration;
use registry_node::dns::DnsOptions;
use registry_node::dns::answer::{Context as AnswerContext, answer};
use registry_node::dns::cache::InstanceCache;
use registry_node::dns::query as dns_query;
use registry_node::state::{Command as StateCommand, Request, Store};

/// SRV lookups through dnsperf against registry-node (10,000 instances) and
/// dnsmasq (one static record).
#[derive(Debug, Clone, Parser)]
#[command(name = "dns-bench", version, about)]
struct Args {
    /// The registry-node binary to start.
    #[arg(long, default_value = "target/release/registry-node")]
    binary: PathBuf,
    /// Service instances in the big catalog.
    #[arg(long, default_value_t = 10_000)]
    instances: usize,
    /// Length of each dnsperf run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// dnsperf `-c` (simulated clients, each with its own socket).
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// dnsperf `-T` (threads).
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// dnsperf `-q` (queries outstanding).
    #[arg(long, default_value_t = 100)]
    outstanding: u32,
    /// Fixed rate (dnsperf `-Q`) of the latency runs, below saturation, so
    /// the latency is the service time rather than queueing.
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    /// Only time the answer computation in process (no sockets, no dnsperf):
    /// the cost of one answer against catalogs of 103 and `--instances`.
    #[arg(long)]
    answer_only: bool,
    /// Skip the dnsmasq reference.
    #[arg(long)]
    no_dnsmasq: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dns-bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dns-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A child process killed (and reaped) on drop.
struct Guard {
    name: &'static str,
    child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guard {
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited by itself ({status})", self.name)),
            _ => None,
        }
    }
}

/// A port free on 127.0.0.1 for both TCP and UDP (the DNS server binds both).
fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1")
}

/// One figure row: what dnsperf said.
struct Perf {
    label: String,
    qps: f64,
    avg_ms: f64,
    stddev_ms: f64,
    max_ms: f64,
    lost: u64,
    completed: u64,
}

/// A started agent and its addresses.
struct Agent {
    guard: Guard,
    http: String,
    dns_port: u16,
    _dir: PathBuf,
}

async fn start_agent(binary: &Path, tag: &str) -> Result<Agent> {
    let (http, dns, rpc, serf) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let dir = std::env::temp_dir().join(format!("dns-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = std::fs::File::create(dir.join("agent.log"))?;
    let child = Command::new(binary)
        .args([
            "agent",
            "-dev",
            "-client=127.0.0.1",
            "-bind=127.0.0.1",
            "-log-level=warn",
            &format!("-http-port={http}"),
            &format!("-dns-port={dns}"),
            &format!("-server-port={rpc}"),
            &format!("-serf-lan-port={serf}"),
            &format!("-node=bench-{tag}"),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut agent = Agent {
        guard: Guard {
            name: "registry-node",
            child,
        },
        http: format!("http://127.0.0.1:{http}"),
        dns_port: dns,
        _dir: dir,
    };
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = agent.guard.exited() {
            bail!("{e}; see {}", agent._dir.join("agent.log").display());
        }
        if let Ok(r) = client
            .get(format!("{}/v1/status/leader", agent.http))
            .send()
            .await
            && r.status().is_success()
            && r.text().await.is_ok_and(|t| t.len() > 2)
        {
            return Ok(agent);
        }
        if Instant::now() > deadline {
            bail!("registry-node did not elect itself within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The services and their sizes for a catalog of `total` instances.
fn layout(total: usize) -> Vec<(String, usize)> {
    let mut services = vec![("small".to_string(), 3), ("large".to_string(), 100)];
    let mut left = total.saturating_sub(103);
    let mut i = 0;
    while left > 0 {
        let n = left.min(100);
        services.push((format!("filler-{i}"), n));
        left -= n;
        i += 1;
    }
    services
}

/// Registers every instance (own node, own IP, one passing check), 32 at a time.
async fn load_catalog(agent: &Agent, total: usize) -> Result<()> {
    let client = Client::new();
    let mut bodies = Vec::with_capacity(total);
    let mut n = 0u32;
    for (service, count) in layout(total) {
        for i in 0..count {
            n += 1;
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n);
            let id = format!("{service}-{i}");
            bodies.push(json!({
                "Node": format!("node-{n}"),
                "Address": ip.to_string(),
                "Service": {"ID": id, "Service": service, "Port": 8000 + (i % 1000), "Tags": ["v1"]},
                "Check": {"CheckID": format!("check-{id}"), "Name": "alive", "Status": "passing", "ServiceID": id},
            }));
        }
    }
    let started = Instant::now();
    let url = format!("{}/v1/catalog/register", agent.http);
    let mut tasks = JoinSet::new();
    let mut iter = bodies.into_iter();
    let mut done = 0usize;
    loop {
        while tasks.len() < 32 {
            let Some(body) = iter.next() else { break };
            let (client, url) = (client.clone(), url.clone());
            tasks.spawn(async move {
                let r = client.put(url).json(&body).send().await?;
                if !r.status().is_success() {
                    bail!(
                        "register: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
                Ok(())
            });
        }
        let Some(r) = tasks.join_next().await else {
            break;
        };
        r??;
        done += 1;
        if done.is_multiple_of(2000) {
            eprintln!("  registered {done}/{total} instances");
        }
    }
    eprintln!(
        "  registered {total} instances in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs dnsperf with one question repeated and parses its summary.
fn dnsperf(
    args: &Args,
    label: &str,
    port: u16,
    question: &str,
    edns: bool,
    rate: Option<u32>,
) -> Result<Perf> {
    let dir = std::env::temp_dir();
    let file = dir.join(format!("dns-bench-{}-queries.txt", std::process::id()));
    std::fs::write(&file, format!("{question}\n"))?;
    let mut cmd = Command::new("dnsperf");
    cmd.args(["-s", "127.0.0.1", "-p", &port.to_string()])
        .arg("-d")
        .arg(&file)
        .args(["-l", &args.duration.as_secs().max(1).to_string()])
        .args(["-c", &args.clients.to_string()])
        .args(["-T", &args.threads.to_string()])
        .args(["-q", &args.outstanding.to_string()]);
    if edns {
        cmd.arg("-e");
    }
    if let Some(rate) = rate {
        cmd.args(["-Q", &rate.to_string()]);
    }
    let out = cmd
        .output()
        .context("running dnsperf (apt-get install dnsperf)")?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "dnsperf failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |name: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
    };
    let number = |s: &str| {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
    };
    let qps = field("Queries per second:")
        .and_then(number)
        .context("no qps in dnsperf output")?;
    let avg = field("Average Latency (s):").context("no latency in dnsperf output")?;
    let max_s = avg
        .split("max ")
        .nth(1)
        .and_then(|m| m.trim_end_matches(')').parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let stddev = field("Latency StdDev (s):")
        .and_then(number)
        .unwrap_or(f64::NAN);
    let count = |name: &str| field(name).and_then(number).unwrap_or(0.0) as u64;
    let perf = Perf {
        label: label.to_string(),
        qps,
        avg_ms: number(avg).unwrap_or(f64::NAN) * 1e3,
        stddev_ms: stddev * 1e3,
        max_ms: max_s * 1e3,
        lost: count("Queries lost:"),
        completed: count("Queries completed:"),
    };
    eprintln!("  {label}: {:.0} qps, avg {:.3} ms", perf.qps, perf.avg_ms);
    Ok(perf)
}

async fn bench_agent(args: &Args, tag: &str, total: usize) -> Result<Vec<Perf>> {
    eprintln!("registry-node with {total} service instances:");
    let agent = start_agent(&args.binary, tag).await?;
    load_catalog(&agent, total).await?;
    // The SRV answers must be right before they are timed.
    let probe = Command::new("dig")
        .args(["@127.0.0.1", "-p", &agent.dns_port.to_string()])
        .args(["+short", "+tcp", "large.service.consul", "SRV"])
        .output();
    if let Ok(out) = probe {
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        if lines != 100 {
            bail!("large.service.consul SRV over TCP gave {lines} records, not 100");
        }
    }
    let mut rows = Vec::new();
    let runs = [
        ("small", false, None),
        ("large", false, None),
        ("large", true, None),
        ("small", false, Some(args.rate)),
        ("large", false, Some(args.rate)),
    ];
    for (svc, edns, rate) in runs {
        let label = format!(
            "registry-node, {total} instances, {svc} ({}) SRV{}{}",
            if svc == "small" { 3 } else { 100 },
            if edns { ", EDNS" } else { "" },
            rate.map(|r| format!(", at {r} q/s")).unwrap_or_default()
        );
        let q = format!("{svc}.service.consul SRV");
        rows.push(dnsperf(args, &label, agent.dns_port, &q, edns, rate)?);
    }
    drop(agent.guard);
    Ok(rows)
}

fn bench_dnsmasq(args: &Args) -> Result<Perf> {
    let port = free_port()?;
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            &format!("--port={port}"),
            "--host-record=static.bench.test,10.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting dnsmasq (apt-get install dnsmasq-base)")?;
    let mut guard = Guard {
        name: "dnsmasq",
        child,
    };
    std::thread::sleep(Duration::from_millis(300));
    if let Some(e) = guard.exited() {
        bail!("{e}");
    }
    eprintln!("dnsmasq, one static record:");
    dnsperf(
        args,
        "dnsmasq, one static A record",
        port,
        "static.bench.test A",
        false,
        None,
    )
}

/// The catalog of [`layout`] as a store, built in process.
fn store_of(total: usize) -> Store {
    let mut store = Store::default();
    let mut n = 0u32;
    for (service, count) in layout(total) {
        for i in 0..count {
            n += 1;
            let id = format!("{service}-{i}");
            let reg: CatalogRegistration = serde_json::from_value(json!({
                "Node": format!("node-{n}"),
                "Address": std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string(),
                "Service": {"ID": id, "Service": service, "Port": 8000 + (i % 1000), "Tags": ["v1"]},
                "Check": {"CheckID": format!("check-{id}"), "Name": "alive", "Status": "passing", "ServiceID": id},
            }))
            .expect("registration");
            let index = store.index() + 1;
            store.apply(
                index,
                &Request {
                    now_ms: 0,
                    cmd: StateCommand::Register(Box::new(reg)),
                },
            );
        }
    }
    store
}

/// Mean time of one answer (the store part of a query), per catalog size and
/// service: read from the store each time (UDP limit), and from the instance
/// cache the DNS server keeps (UDP limit, and every record as over TCP).
fn answer_costs(args: &Args) -> String {
    let opts = DnsOptions::default();
    let mut out = String::from(
        "\nOne SRV answer computed from the store (no sockets), mean over 100,000\n\n\
         | catalog | service | uncached, UDP limit | cached, UDP limit | cached, all records |\n\
         |---|---|---:|---:|---:|\n",
    );
    for total in [103, args.instances] {
        let store = store_of(total);
        for (svc, size) in [("small", 3), ("large", 100)] {
            let qname = Name::from_ascii(format!("{svc}.service.consul.")).expect("name");
            let question =
                dns_query::parse(&qname.to_ascii(), true, &opts.domain, "").expect("in zone");
            let cache = InstanceCache::default();
            let mut cells = Vec::new();
            for (max_answers, cache) in [(4, None), (4, Some(&cache)), (usize::MAX, Some(&cache))] {
                let ctx = AnswerContext {
                    opts: &opts,
                    datacenter: "dc1",
                    now_unix: 0,
                    max_answers,
                    cache,
                };
                let mut rng = rand::rng();
                let rounds = 100_000;
                let started = Instant::now();
                let mut records = 0;
                for _ in 0..rounds {
                    let a = answer(&store, &question, &qname, RecordType::SRV, &ctx, &mut rng);
                    records += a.answers.len();
                }
                let per = started.elapsed() / rounds;
                assert!(records > 0);
                cells.push(format!("{:.2} µs", per.as_secs_f64() * 1e6));
            }
            let _ = writeln!(
                out,
                "| {total} instances | {svc} ({size}) | {} | {} | {} |",
                cells[0], cells[1], cells[2]
            );
        }
    }
    out
}

async fn run(args: &Args) -> Result<String> {
    if args.answer_only {
        return Ok(answer_costs(args));
    }
    let mut rows = bench_agent(args, "big", args.instances).await?;
    rows.extend(bench_agent(args, "small", 103).await?);
    if !args.no_dnsmasq {
        rows.push(bench_dnsmasq(args)?);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nUDP questions, dnsperf -c {} -T {} -q {} -l {}s on {} CPU(s)\n",
        args.clients,
        args.threads,
        args.outstanding,
        args.duration.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        out,
        "| setup | queries/s | avg latency | stddev | max | completed | lost |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} ms | {:.3} ms | {:.1} ms | {} | {} |",
            r.label, r.qps, r.avg_ms, r.stddev_ms, r.max_ms, r.completed, r.lost
        );
    }
    Ok(out)
}
