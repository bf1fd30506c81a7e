//! `templater-bench`: how fast the `templater` binary follows the catalog and
//! the KV store, what it costs in CPU, and how many blocking queries it holds.
//!
//! Starts an in-process registry-node (loopback) and the built `templater`
//! binary against it, in a temp directory:
//! * **(a) catalog**: `--services` services × `--instances` instances, one
//!   template per service (`range service`). After the first full render,
//!   `--changes` times: register one more instance of one service and time
//!   until its file shows it (no `-wait`, so this is the pipeline itself:
//!   Raft apply → blocking query → render → atomic write). Prints p50/p99 and
//!   templater's CPU time over the change phase (`/proc/<pid>/stat`).
//! * **(b) KV**: `--keys` keys spread over `--kv-templates` templates, run with
//!   `-once`: time from spawn to exit with every file written.
//! * **(c)** the number of watched dependencies and open blocking queries, as
//!   templater logs them, against the number of unique dependencies.
//!
//! `cargo build --release -p templater -p registry-bench &&
//!  target/release/templater-bench --templater target/release/templater`

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use registry_bench::stats::{Latency, micros};
use registry_bench::sys::{clock_ticks, raise_nofile, read_cpu};
use registry_node::agent::{Agent, AgentOptions, Listeners};
use reqwest::Client;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "templater-bench",
    about = "catalog/KV change → rendered file latency, CPU, watcher count"
)]
struct Args {
    /// The templater binary.
    #[arg(long, default_value = "target/release/templater")]
    templater: PathBuf,
    /// Services (one template each) in scenario (a).
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// Instances per service in scenario (a).
    #[arg(long, default_value_t = 50)]
    instances: usize,
    /// Timed changes in scenario (a).
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Keys in scenario (b).
    #[arg(long, default_value_t = 1200)]
    keys: usize,
    /// Templates in scenario (b).
    #[arg(long, default_value_t = 31)]
    kv_templates: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("templater-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<()> {
    // Children run in temp directories: the binary path must not be relative.
    args.templater = std::fs::canonicalize(&args.templater)
        .with_context(|| format!("{} (build it first)", args.templater.display()))?;
    raise_nofile(4 * (args.keys as u64 + args.services as u64) + 1024)?;
    let token = CancellationToken::new();
    let agent = Agent::start(
        AgentOptions::for_test(),
        Listeners::loopback(true).await?,
        token.clone(),
    )
    .await
    .context("starting the in-process registry-node")?;
    let addr = agent.http_addr.to_string();
    let base = format!("http://{addr}");
    let http = Client::builder().no_proxy().build()?;
    wait_leader(&http, &base).await?;
    let dir = std::env::temp_dir().join(format!("templater-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        catalog(&args, &http, &base, &addr, &dir).await?;
        kv(&args, &http, &base, &addr, &dir).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    token.cancel();
    result
}

async fn wait_leader(http: &Client, base: &str) -> Result<()> {
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/v1/status/leader")).send().await
            && r.text().await.is_ok_and(|t| t.len() > 2)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no leader")
}

/// Sends `f(i)` for i in `0..n`, 32 requests at a time.
async fn bulk<F>(n: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> reqwest::RequestBuilder,
{
    let mut i = 0;
    while i < n {
        let end = (i + 32).min(n);
        let mut set = tokio::task::JoinSet::new();
        for j in i..end {
            set.spawn(f(j).send());
        }
        while let Some(r) = set.join_next().await {
            let r = r??;
            if !r.status().is_success() {
                bail!("bulk request: {}", r.status());
            }
        }
        i = end;
    }
    Ok(())
}

fn register(
    http: &Client,
    base: &str,
    svc: usize,
    inst: usize,
    port: u16,
) -> reqwest::RequestBuilder {
    http.put(format!("{base}/v1/catalog/register"))
        .json(&json!({
            "Node": format!("node-{}", inst % 10),
            // One address per node: a node's address is part of every health
            // entry on it, so changing it would change every service there.
            "Address": format!("10.0.0.{}", 1 + inst % 10),
            "Service": {
                "ID": format!("svc{svc}-{inst}"),
                "Service": format!("svc{svc}"),
                "Address": format!("10.{}.{}.{}", 1 + svc / 250, svc % 250, 1 + inst % 250),
                "Port": port,
            }
        }))
}

/// A templater child with its log collected.
struct Running {
    child: tokio::process::Child,
    pid: u32,
    log: Arc<Mutex<Vec<String>>>,
}

fn spawn(bin: &Path, dir: &Path, args: &[String]) -> Result<Running> {
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("pid")?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().expect("log").push(l);
        }
    });
    Ok(Running { child, pid, log })
}

impl Running {
    /// Log lines containing `needle`.
    fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The number in the last log line containing `needle` (`... needle: N` / `needle N ...`).
    fn last_number(&self, needle: &str) -> Option<usize> {
        let log = self.log.lock().expect("log");
        let line = log.iter().rev().find(|l| l.contains(needle))?;
        let after = &line[line.find(needle)? + needle.len()..];
        after
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())?
            .parse()
            .ok()
    }
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

async fn catalog(args: &Args, http: &Client, base: &str, addr: &str, dir: &Path) -> Result<()> {
    let (s, n) = (args.services, args.instances);
    let t0 = Instant::now();
    bulk(s * n, |i| {
        register(http, base, i % s, i / s, 10000 + (i / s) as u16)
    })
    .await?;
    println!(
        "(a) registered {} instances ({} services x {}) in {:.1} s",
        s * n,
        s,
        n,
        t0.elapsed().as_secs_f64()
    );
    let dir = dir.join("catalog");
    std::fs::create_dir_all(&dir)?;
    let mut config = format!("consul {{\n  address = \"{addr}\"\n}}\nlog_level = \"info\"\n");
    for i in 0..s {
        std::fs::write(
            dir.join(format!("svc{i}.ctmpl")),
            format!(
                "upstream svc{i} {{\n{{{{range service \"svc{i}\"}}}}  server {{{{.Address}}}}:{{{{.Port}}}};\n{{{{end}}}}}}\n"
            ),
        )?;
        config += &format!(
            "template {{\n  source = \"svc{i}.ctmpl\"\n  destination = \"out/svc{i}.conf\"\n}}\n"
        );
    }
    std::fs::write(dir.join("templater.hcl"), config)?;
    let t0 = Instant::now();
    let mut t = spawn(
        &args.templater,
        &dir,
        &["-config".into(), "templater.hcl".into()],
    )?;
    let out = |i: usize| dir.join(format!("out/svc{i}.conf"));
    wait_for("first full render", Duration::from_secs(60), || {
        (0..s).all(|i| out(i).exists())
    })
    .await?;
    println!(
        "(a) first full render of {} templates: {:.0} ms from spawn",
        s,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    // Let the views settle on their blocking queries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ticks = clock_ticks();
    let idle0 = read_cpu(t.pid)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle1 = read_cpu(t.pid)?;
    println!(
        "(a) templater CPU while idle: {} ms over 3 s",
        (idle1.total() - idle0.total()) * 1000 / ticks
    );
    let cpu0 = read_cpu(t.pid)?;
    let runs0 = t.count("(runner) initiating run");
    let wall0 = Instant::now();
    let mut samples = Vec::with_capacity(args.changes);
    for c in 0..args.changes {
        let svc = (c * 37) % s;
        let port = 20000 + c as u16;
        let needle = format!(":{port};");
        let path = out(svc);
        let t1 = Instant::now();
        let r = register(http, base, svc, n + c, port).send().await?;
        if !r.status().is_success() {
            bail!("register: {}", r.status());
        }
        wait_for(
            &format!("svc{svc} shows port {port}"),
            Duration::from_secs(30),
            || std::fs::read_to_string(&path).is_ok_and(|t| t.contains(&needle)),
        )
        .await?;
        samples.push(micros(t1.elapsed()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = wall0.elapsed();
    let cpu1 = read_cpu(t.pid)?;
    let runs = t.count("(runner) initiating run") - runs0;
    let lat = Latency::from_micros(&mut samples);
    let cpu_ms = (cpu1.total() - cpu0.total()) as f64 * 1000.0 / ticks as f64;
    println!(
        "(a) instance change -> file rendered: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} changes)",
        lat.p50_ms, lat.p99_ms, lat.max_ms, lat.count
    );
    println!(
        "(a) templater CPU over the change phase: {:.0} ms in {:.1} s wall ({:.2} ms per change; utime+stime, {} ticks/s)",
        cpu_ms,
        wall.as_secs_f64(),
        cpu_ms / args.changes as f64,
        ticks
    );
    println!(
        "(a) render passes during the change phase: {runs} for {} changes (source re-reads: {})",
        args.changes,
        t.count("template source changed")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "(c) catalog: unique dependencies {}; templater watches {:?}; open blocking queries {:?}",
        s,
        t.last_number("(watcher) watching"),
        t.last_number("open blocking queries:")
    );
    let _ = t.child.kill().await;
    Ok(())
}

async fn kv(args: &Args, http: &Client, base: &str, addr: &str, dir: &Path) -> Result<()> {
    let (k, nt) = (args.keys, args.kv_templates);
    bulk(k, |i| {
        http.put(format!("{base}/v1/kv/bench/key{i:05}"))
            .body(format!("value-{i}"))
    })
    .await?;
    let dir = dir.join("kv");
    std::fs::create_dir_all(&dir)?;
    let mut cli: Vec<String> = vec!["-consul-addr".into(), addr.into(), "-log-level=info".into()];
    for t in 0..nt {
        let mut src = String::new();
        for i in (t..k).step_by(nt) {
            src += &format!("key{i:05} = {{{{ key \"bench/key{i:05}\" }}}}\n");
        }
        std::fs::write(dir.join(format!("kv{t}.ctmpl")), src)?;
        cli.push("-template".into());
        cli.push(format!("kv{t}.ctmpl:out/kv{t}.conf"));
    }
    let mut once = cli.clone();
    once.push("-once".into());
    let t0 = Instant::now();
    let mut t = spawn(&args.templater, &dir, &once)?;
    let status = tokio::time::timeout(Duration::from_secs(60), t.child.wait())
        .await
        .context("-once did not finish")??;
    let took = t0.elapsed();
    if !status.success() {
        bail!("templater -once failed: {status}");
    }
    let written = (0..nt)
        .filter(|i| dir.join(format!("out/kv{i}.conf")).exists())
        .count();
    println!(
        "(b) {k} keys in {nt} templates, -once: {:.0} ms from spawn to exit ({written}/{nt} files written)",
        took.as_secs_f64() * 1000.0
    );
    std::fs::remove_dir_all(dir.join("out"))?;
    let t0 = Instant::now();
    let t = spawn(&args.templater, &dir, &cli)?;
    wait_for("daemon full render", Duration::from_secs(60), || {
        (0..nt).all(|i| dir.join(format!("out/kv{i}.conf")).exists())
    })
    .await?;
    println!(
        "(b) same as a daemon: all {nt} files written {:.0} ms after spawn",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    wait_for("open queries settle", Duration::from_secs(30), || {
        t.last_number("open blocking queries:") == Some(k)
    })
    .await
    .ok();
    println!(
        "(c) kv: unique dependencies {k}; templater watches {:?}; open blocking queries {:?}",
        t.last_number("(watcher) watching"),
        t.last_number("open blocking queries:")
    );
    Ok(())
}
