//! `registrator-bench`: how fast a started container shows up in the catalog, and
//! registrator's memory once it tracks them.
//!
//! Starts an in-process registry-node (dev mode, loopback) and the `registrator`
//! binary against it and the local Docker daemon. Then, one container at a time:
//! `docker create` (not timed), a blocking query on `/v1/catalog/service/<name>`
//! is parked, `docker start` runs, and the latency is the time from just before
//! `docker start` until the blocking query returns the service. Prints p50/p99 of
//! those and registrator's `VmRSS`/`VmHWM` with every container registered.
//! Containers carry the label `registrator-bench=<pid>` and are removed at the end.
//!
//! The image must publish nothing by itself and listen on 8080, e.g. demo-web:
//! `cargo build --release -p demo-web &&
//!  docker/build-image.sh target/release/demo-web demo-web:dev`.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use registry_bench::stats::{Latency, micros};
use registry_bench::sys::read_rss;
use registry_node::agent::{Agent, AgentOptions, Listeners};
use reqwest::Client;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "registrator-bench",
    about = "docker start → catalog latency and registrator RSS"
)]
struct Args {
    /// The registrator binary.
    #[arg(long, default_value = "target/release/registrator")]
    registrator: PathBuf,
    /// Image to run (listening on 8080).
    #[arg(long, default_value = "demo-web:dev")]
    image: String,
    /// Containers to start.
    #[arg(long, default_value_t = 50)]
    containers: usize,
    /// DOCKER_HOST for registrator.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    docker_host: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registrator-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn docker(args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .context("running docker")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn run(args: Args) -> Result<()> {
    let label = format!("registrator-bench={}", std::process::id());
    let token = CancellationToken::new();
    let listeners = Listeners::loopback(true).await?;
    let agent = Agent::start(AgentOptions::for_test(), listeners, token.clone())
        .await
        .context("starting the in-process registry-node")?;
    let base = format!("http://{}", agent.http_addr);
    let http = Client::builder().no_proxy().build()?;
    wait_leader(&http, &base).await?;

    let mut child = tokio::process::Command::new(&args.registrator)
        .arg("-ip=127.0.0.1")
        .arg(format!("consul://{}", agent.http_addr))
        .env("DOCKER_HOST", &args.docker_host)
        .env("RUST_LOG", "warn,registrator=info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.registrator.display()))?;
    let pid = child.id().context("registrator pid")?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("listening for docker events") {
                return Ok(());
            }
        }
        bail!("registrator exited before listening")
    })
    .await
    .context("registrator start-up")??;
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let rss_idle = read_rss(pid)?;

    let result = measure(&args, &http, &base, &label).await;
    let rss = read_rss(pid);
    let _ = child.kill().await;
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).await?;
    if !ids.is_empty() {
        let mut rm = vec!["rm", "-f"];
        rm.extend(ids.lines());
        docker(&rm).await?;
    }
    token.cancel();
    let (mut samples, mut start_cli, mut after) = result?;
    let rss = rss?;
    let latency = Latency::from_micros(&mut samples);
    let cli = Latency::from_micros(&mut start_cli);
    println!(
        "containers: {} (sequential), image {}",
        latency.count, args.image
    );
    println!(
        "docker start -> in catalog: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  mean {:.1} ms",
        latency.p50_ms, latency.p99_ms, latency.max_ms, latency.mean_ms
    );
    println!(
        "  of which the `docker start` CLI call: p50 {:.1} ms  p99 {:.1} ms",
        cli.p50_ms, cli.p99_ms
    );
    after.sort_unstable();
    let pick = |p: f64| after[((p * after.len() as f64).ceil() as usize).clamp(1, after.len()) - 1];
    println!(
        "  seen relative to `docker start` returning: p50 {:+.1} ms  p99 {:+.1} ms",
        pick(0.5) as f64 / 1000.0,
        pick(0.99) as f64 / 1000.0
    );
    println!(
        "registrator RSS: idle {} KiB; with {} containers tracked {} KiB (peak {} KiB)",
        rss_idle.rss_kib, latency.count, rss.rss_kib, rss.hwm_kib
    );
    Ok(())
}

/// Samples in microseconds: start → visible, the `docker start` call, and visible
/// relative to that call returning (negative: seen before it returned).
async fn measure(
    args: &Args,
    http: &Client,
    base: &str,
    label: &str,
) -> Result<(Vec<u32>, Vec<u32>, Vec<i64>)> {
    let mut samples = Vec::new();
    let mut start_cli = Vec::new();
    let mut after = Vec::new();
    for i in 0..args.containers {
        let name = format!("rbench{}-{i}", std::process::id());
        docker(&[
            "create",
            "--name",
            &name,
            "--label",
            label,
            "-p",
            "8080",
            "-e",
            &format!("SERVICE_NAME={name}"),
            &args.image,
        ])
        .await?;
        let url = format!("{base}/v1/catalog/service/{name}");
        let first = http.get(&url).send().await?;
        let index = first
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_string();
        let watcher = tokio::spawn(wait_visible(http.clone(), url, index));
        let t0 = Instant::now();
        docker(&["start", &name]).await?;
        let returned = Instant::now();
        start_cli.push(micros(returned - t0));
        let seen = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .with_context(|| format!("{name} never appeared in the catalog"))???;
        samples.push(micros(seen - t0));
        after.push(if seen >= returned {
            (seen - returned).as_micros() as i64
        } else {
            -((returned - seen).as_micros() as i64)
        });
    }
    Ok((samples, start_cli, after))
}

/// Blocking queries until the service is listed; returns when it was seen.
async fn wait_visible(http: Client, url: String, mut index: String) -> Result<Instant> {
    loop {
        let r = http
            .get(&url)
            .query(&[("index", index.as_str()), ("wait", "30s")])
            .send()
            .await?;
        if let Some(i) = r
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
        {
            index = i.to_string();
        }
        let body: Value = r.json().await?;
        if body.as_array().is_some_and(|a| !a.is_empty()) {
            return Ok(Instant::now());
        }
    }
}

async fn wait_leader(http: &Client, base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(format!("{base}/v1/status/leader")).send().await
            && let Ok(leader) = r.json::<String>().await
            && !leader.is_empty()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the in-process agent elected no leader");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
