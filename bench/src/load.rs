//! Closed-loop load: N client tasks, each with its own keep-alive connection,
//! issue one request after another for a fixed time. Latency is measured per
//! request from just before `send` to the end of the response body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::stats::{Latency, XorShift, micros};
use crate::target::{PreparedValue, Target, http_client, key_name};

/// Which request the clients repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Durable write of a random key.
    Put,
    /// Read of a random (preloaded) key.
    Get,
}

/// Parameters of one closed-loop run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Request kind.
    pub op: Op,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys are drawn uniformly from `0..keys`.
    pub keys: usize,
    /// Value written by `Put`.
    pub value: Arc<PreparedValue>,
    /// Unrecorded lead-in (connection setup, server warm caches).
    pub warmup: Duration,
    /// Recorded window.
    pub duration: Duration,
    /// Per-request timeout, so a stuck server cannot stall the run.
    pub request_timeout: Duration,
}

/// Outcome of one closed-loop run on one target.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Scenario name (`put1`, ...).
    pub scenario: String,
    /// Target name (`registry`, `etcd`).
    pub target: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Length of the recorded window in seconds.
    pub seconds: f64,
    /// Successful requests per second in the recorded window.
    pub ops_per_sec: f64,
    /// Failed requests in the recorded window.
    pub errors: usize,
    /// First error seen, to tell a down server from a semantic failure.
    pub first_error: Option<String>,
    /// Latency of the successful requests.
    pub latency: Latency,
}

/// What one client task brings back.
#[derive(Default)]
struct ClientTally {
    samples: Vec<u32>,
    errors: usize,
    first_error: Option<String>,
}

/// Run `spec` against `target`.
pub async fn run_load(scenario: &str, target: &Arc<Target>, spec: &LoadSpec) -> Result<LoadReport> {
    let start = Instant::now();
    let record_from = start + spec.warmup;
    let stop_at = record_from + spec.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..spec.clients {
        // One client (and so one pooled connection) per task: every client
        // keeps exactly one keep-alive connection, like a real service would.
        let client = http_client(1, Some(spec.request_timeout))?;
        let target = Arc::clone(target);
        let spec = spec.clone();
        tasks.spawn(async move {
            let mut rng = XorShift::new(id as u64 + 1);
            let mut tally = ClientTally::default();
            loop {
                let began = Instant::now();
                if began >= stop_at {
                    break;
                }
                let key = key_name(rng.below(spec.keys));
                let result = match spec.op {
                    Op::Put => target.put(&client, &key, &spec.value).await,
                    Op::Get => target.get(&client, &key).await,
                };
                let recorded = began >= record_from;
                match result {
                    Ok(()) if recorded => tally.samples.push(micros(began.elapsed())),
                    Ok(()) => {}
                    Err(e) => {
                        if recorded {
                            tally.errors += 1;
                        }
                        tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                        // A refused connection fails in microseconds; do not
                        // spin the CPU the server under test also needs.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            tally
        });
    }

    let mut samples = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let tally = joined?;
        samples.extend_from_slice(&tally.samples);
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    let seconds = spec.duration.as_secs_f64();
    Ok(LoadReport {
        scenario: scenario.to_owned(),
        target: target.name().to_owned(),
        clients: spec.clients,
        seconds,
        ops_per_sec: samples.len() as f64 / seconds,
        errors,
        first_error,
        latency: Latency::from_micros(&mut samples),
    })
}

/// Write every key once (64 writers) so that GETs find their key.
pub async fn preload(target: &Arc<Target>, keys: usize, value: &Arc<PreparedValue>) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64.min(keys.max(1)) {
        let client = http_client(1, Some(Duration::from_secs(10)))?;
        let (target, value, next) = (Arc::clone(target), Arc::clone(value), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys {
                    return Ok::<(), anyhow::Error>(());
                }
                target.put(&client, &key_name(i), &value).await?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}
