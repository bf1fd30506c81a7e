//! demo-bench: how soon nginx in the compose demo routes to a new web container.
//!
//! Starts the demo (`docker-compose.yml`, images from `docker/build-demo-images.sh`)
//! with one web container and steady traffic through nginx, then adds web containers
//! one at a time (`up --no-deps --scale web=N web`). For each new container it takes
//! Docker's `State.StartedAt` (the process started) and the arrival of the first answer
//! that container gave through nginx (demo-web answers with its hostname), and prints
//! p50/p99 of the difference.
//!
//! The path measured: Docker's `start` event → registrator registers the service via
//! the client agent → Raft commit on the servers → templater's blocking query returns →
//! render + SIGHUP → nginx reload → the next request round-robined to it.
//!
//! The traffic (`--workers` loops, `--pause` between requests, a new connection each)
//! samples the upstream set: with N instances the first answer comes on average about
//! N / (2 × request rate) after nginx could send it, which the output reports.
//!
//!   cargo build -p registry-bench --bin demo-bench && target/debug/demo-bench --containers 20

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use registry_e2e::{Demo, Traffic};

#[derive(Parser, Debug)]
#[command(
    about = "Container start → first request answered by it through nginx, in the compose demo"
)]
struct Args {
    /// How many web containers to add, one after another.
    #[arg(long, default_value_t = 20)]
    containers: usize,
    /// Request loops through nginx.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Pause between two requests of a loop.
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// Do not run docker/build-demo-images.sh (the images exist already).
    #[arg(long)]
    no_build: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.no_build {
        registry_e2e::build_images().map_err(|e| anyhow!(e))?;
    }
    let mut demo = Demo::new("demobench").map_err(|e| anyhow!(e))?;
    eprintln!("demo-bench: project {}", demo.project);
    let result = run(&demo, &args);
    demo.down().map_err(|e| anyhow!(e))?;
    result
}

fn run(demo: &Demo, args: &Args) -> Result<()> {
    demo.up(1).map_err(|e| anyhow!(e))?;
    demo.wait_for_leader(Duration::from_secs(60))
        .map_err(|e| anyhow!(e))?;
    let traffic = Traffic::start(demo.rt().handle(), &demo.url(), args.workers, args.pause);
    let first = demo.containers("web").map_err(|e| anyhow!(e))?;
    wait_answered(&traffic, &first[0].hostname, Duration::from_secs(60))?;

    let mut from_start = Vec::new();
    let mut known: Vec<String> = first.iter().map(|c| c.id.clone()).collect();
    for n in 2..=args.containers + 1 {
        demo.scale_web(n).map_err(|e| anyhow!(e))?;
        let returned = Instant::now();
        let web = demo.containers("web").map_err(|e| anyhow!(e))?;
        let new: Vec<_> = web.iter().filter(|c| !known.contains(&c.id)).collect();
        let [new] = new[..] else {
            bail!("expected one new web container, found {new:?}");
        };
        known.push(new.id.clone());
        let answered = wait_answered(&traffic, &new.hostname, Duration::from_secs(30))?;
        let latency = traffic
            .wall_clock(answered)
            .duration_since(new.started_at)
            .context("first answer before the container started: clocks?")?;
        // Often negative: compose v1 returns a while after the container started.
        let after_up = ms(answered.saturating_duration_since(returned))
            - ms(returned.saturating_duration_since(answered));
        eprintln!(
            "web #{n}: first answer {:.0} ms after its start, {after_up:+.0} ms from `up` returning",
            ms(latency),
        );
        from_start.push(latency);
    }
    let samples = demo.rt().block_on(traffic.stop());
    let span = samples
        .last()
        .map(|s| s.done)
        .zip(samples.first().map(|s| s.sent));
    let rate = span.map_or(0.0, |(end, start)| {
        samples.len() as f64 / (end - start).as_secs_f64()
    });
    let failed = samples.iter().filter(|s| s.outcome.is_err()).count();

    println!(
        "container start → first request answered by it through nginx, {} containers added one at a time",
        args.containers
    );
    from_start.sort();
    let v = &from_start;
    println!("| p50 | p99 | min | max |");
    println!("|---|---|---|---|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
        ms(percentile(v, 50.0)),
        ms(percentile(v, 99.0)),
        ms(v[0]),
        ms(v[v.len() - 1])
    );
    println!(
        "traffic: {} requests at {rate:.0}/s ({} workers, {:?} pause), {failed} failed",
        samples.len(),
        args.workers,
        args.pause
    );
    Ok(())
}

/// Waits until `hostname` has answered; when its first answer arrived.
fn wait_answered(traffic: &Traffic, hostname: &str, timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let first = traffic
            .samples()
            .into_iter()
            .filter(|s| s.outcome.as_deref() == Ok(hostname))
            .map(|s| s.done)
            .min();
        if let Some(t) = first {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("{hostname} did not answer through nginx within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
