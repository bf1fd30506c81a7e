//! `registry-bench`: a load tool that drives a running registry node (Consul
//! HTTP API v1) and etcd (v3 JSON gateway) with the same scenarios in one run,
//! and prints throughput and latency percentiles side by side.
//!
//! It is a CLI, so it uses `anyhow` throughout and prints with `println!`.
//!
//! # Layout
//!
//! - [`cli`]: flags and the [`cli::Scenario`] list.
//! - [`target`]: the two systems under test and their HTTP spelling of put/get/watch.
//! - [`load`]: closed-loop PUT/GET scenarios (`put1`, `put64`, `get64`).
//! - [`fanout`]: blocking-query fan-out (`fanout`).
//! - [`checks`]: node CPU and RSS while it runs N HTTP health checks (`checks`).
//! - [`rawhttp`]: minimal HTTP/1.1 GET client for the registry fan-out watchers.
//! - [`stats`]: latency percentiles and the per-task RNG.
//! - [`sys`]: `RLIMIT_NOFILE`, `/proc/<pid>/status` memory and `/proc/<pid>/stat` CPU time.
//! - [`report`]: tables, JSON, goal check.

pub mod checks;
pub mod cli;
pub mod fanout;
pub mod load;
pub mod rawhttp;
pub mod report;
pub mod stats;
pub mod sys;
pub mod target;

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::checks::{ChecksSpec, run_checks};
use crate::cli::{Args, DEFAULT_REGISTRY, Scenario};
use crate::fanout::{FanoutSpec, run_fanout};
use crate::load::{LoadSpec, Op, preload, run_load};
use crate::report::{Results, RssReport, TargetInfo};
use crate::sys::{raise_nofile, read_rss};
use crate::target::{Kind, PreparedValue, Target};

/// File descriptors kept aside for everything that is not a fan-out watcher
/// or a connection to the checks' endpoint.
const FD_HEADROOM: u64 = 512;

/// Run every requested scenario against every given target and print the results.
pub async fn run(args: Args) -> Result<()> {
    if args.keys == 0 || args.watchers == 0 || args.duration.is_zero() {
        bail!("--keys, --watchers and --duration must be greater than zero");
    }
    let checks = args.scenarios.contains(&Scenario::Checks);
    if checks {
        if args.pid.is_none() {
            bail!(
                "the checks scenario samples the node's CPU and memory from /proc: \
                 pass the registry node's PID with --pid"
            );
        }
        if args.registry.is_none() && args.etcd.is_some() {
            bail!("the checks scenario needs the registry node: pass --registry");
        }
        if args.checks == 0 {
            bail!("--checks must be greater than zero");
        }
    }
    // The fan-out needs one descriptor per watcher; the checks' endpoint one
    // per connection the node opens to it (up to one per check).
    let mut needed_fds = 0;
    if args.scenarios.contains(&Scenario::Fanout) {
        needed_fds = needed_fds.max(args.watchers as u64);
    }
    if checks {
        needed_fds = needed_fds.max(args.checks as u64);
    }
    if needed_fds > 0 {
        let limit = raise_nofile(needed_fds + FD_HEADROOM)?;
        eprintln!("open-file limit: {limit}");
    }

    let registry_url = match (&args.registry, &args.etcd) {
        (None, None) => Some(DEFAULT_REGISTRY.to_owned()),
        (r, _) => r.clone(),
    };
    let mut targets = Vec::new();
    if let Some(url) = &registry_url {
        targets.push(Arc::new(Target::registry(url).await?));
    }
    if let Some(url) = &args.etcd {
        targets.push(Arc::new(Target::etcd(url, args.etcd_serializable).await?));
    }

    let mut results = Results {
        targets: targets
            .iter()
            .map(|t| TargetInfo {
                name: t.name().to_owned(),
                url: t.base.clone(),
                version: t.version.clone(),
                api: t.api_prefix().to_owned(),
                serializable_reads: t.serializable(),
            })
            .collect(),
        ..Results::default()
    };
    for t in &results.targets {
        eprintln!("target {} at {} {:?} {}", t.name, t.url, t.version, t.api);
    }

    let pids: Vec<(&str, u32)> = [("registry", args.pid), ("etcd", args.etcd_pid)]
        .into_iter()
        .filter_map(|(name, pid)| pid.map(|p| (name, p)))
        .collect();
    for &(name, pid) in &pids {
        results.rss.push(RssReport {
            target: name.to_owned(),
            pid,
            idle: Some(read_rss(pid).with_context(|| format!("{name} PID {pid}"))?),
            after: None,
        });
    }

    let value = Arc::new(PreparedValue::new(args.value_size));
    for &scenario in &args.scenarios {
        for target in &targets {
            if scenario == Scenario::Checks && target.kind != Kind::Registry {
                eprintln!("checks: skipped on {} (registry only)", target.name());
                continue;
            }
            eprintln!("running {} on {}", scenario.name(), target.name());
            let load = |op, clients| LoadSpec {
                op,
                clients,
                keys: args.keys,
                value: Arc::clone(&value),
                warmup: args.warmup,
                duration: args.duration,
                request_timeout: args.request_timeout,
            };
            match scenario {
                Scenario::Put1 => {
                    let spec = load(Op::Put, 1);
                    results
                        .load
                        .push(run_load(scenario.name(), target, &spec).await?);
                }
                Scenario::Put64 => {
                    let spec = load(Op::Put, 64);
                    results
                        .load
                        .push(run_load(scenario.name(), target, &spec).await?);
                }
                Scenario::Get64 => {
                    preload(target, args.keys, &value).await?;
                    let spec = load(Op::Get, 64);
                    results
                        .load
                        .push(run_load(scenario.name(), target, &spec).await?);
                }
                Scenario::Fanout => {
                    let spec = FanoutSpec {
                        watchers: args.watchers,
                        settle: args.settle,
                        timeout: args.fanout_timeout,
                        connect_concurrency: args.connect_concurrency,
                        value: Arc::clone(&value),
                    };
                    results.fanout.push(run_fanout(target, &spec).await?);
                }
                Scenario::Checks => {
                    let Some(pid) = args.pid else {
                        bail!("the checks scenario needs --pid");
                    };
                    let spec = ChecksSpec {
                        checks: args.checks,
                        warmup: args.checks_warmup,
                        duration: args.duration,
                        pid,
                        request_timeout: args.request_timeout,
                    };
                    results.checks.push(run_checks(target, &spec).await?);
                }
            }
        }
    }

    for r in &mut results.rss {
        // The process may have died under load; report that rather than fail.
        r.after = read_rss(r.pid)
            .inspect_err(|e| eprintln!("rss after run: {e:#}"))
            .ok();
    }
    results.check_goals();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", results.to_table());
    }
    Ok(())
}
