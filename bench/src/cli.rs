//! Command-line flags. This is our own tool, so plain GNU-style `--flags`
//! (no Consul-style single-dash normalisation).

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Default registry address used when neither `--registry` nor `--etcd` is given.
pub const DEFAULT_REGISTRY: &str = "http://127.0.0.1:8500";

/// Drive a registry node (Consul HTTP API v1) and/or etcd (v3 JSON gateway)
/// and print throughput and latency percentiles per scenario.
#[derive(Debug, Clone, Parser)]
#[command(name = "registry-bench", version, about)]
pub struct Args {
    /// Base URL of the registry node's HTTP API. If neither this nor
    /// `--etcd` is given, http://127.0.0.1:8500 is used.
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,

    /// Base URL of etcd's client port (v3 JSON gateway), e.g. http://127.0.0.1:2379.
    #[arg(long, value_name = "URL")]
    pub etcd: Option<String>,

    /// etcd GETs as serializable (local, possibly stale) reads instead of
    /// etcd's default linearizable ones.
    #[arg(long)]
    pub etcd_serializable: bool,

    /// Measured duration of each load scenario (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Warm-up before each load scenario; requests started in it are not recorded.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    /// Scenarios to run, in this order. `checks` is not in the default set.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "put1,put64,get64,fanout"
    )]
    pub scenarios: Vec<Scenario>,

    /// Number of blocking watchers in the fan-out scenario.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,

    /// Number of distinct keys (`bench/0` .. `bench/<keys-1>`) the load scenarios use.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,

    /// Size in bytes of each written value.
    #[arg(long, default_value_t = 64)]
    pub value_size: usize,

    /// PID of the registry node: its VmRSS is read before (idle) and after the
    /// run. Required by the `checks` scenario, which samples its CPU time.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// PID of etcd: its VmRSS is read before (idle) and after the run.
    #[arg(long, value_name = "PID")]
    pub etcd_pid: Option<u32>,

    /// Fan-out: pause after all watchers have sent their blocking request,
    /// so the server has parked them before the write.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub settle: Duration,

    /// Fan-out: give up on watchers not released this long after the write.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub fanout_timeout: Duration,

    /// Fan-out: how many watchers may open their connection at the same time
    /// (keeps the server's listen backlog from overflowing into SYN retries).
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,

    /// Checks: number of services registered, each with one HTTP check
    /// (interval 1 s) against an endpoint served by this tool.
    #[arg(long, default_value_t = 1000)]
    pub checks: usize,

    /// Checks: wait after the last registration before the measured window,
    /// so that every check has started running.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub checks_warmup: Duration,

    /// Per-request timeout of the load scenarios.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Print one machine-readable JSON document instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Durable PUT, 1 client.
    Put1,
    /// Durable PUT, 64 concurrent clients.
    Put64,
    /// GET of preloaded keys, 64 concurrent clients.
    Get64,
    /// N blocking watchers on one key, one write, time until all returned.
    Fanout,
    /// N services with one HTTP check each: node CPU and RSS (registry only).
    Checks,
}

impl Scenario {
    /// Name as used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Put1 => "put1",
            Scenario::Put64 => "put64",
            Scenario::Get64 => "get64",
            Scenario::Fanout => "fanout",
            Scenario::Checks => "checks",
        }
    }
}
