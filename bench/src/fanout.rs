//! Blocking-query fan-out: W watchers park on one key, one write happens, and
//! we time how long it takes until every watcher has its answer.
//!
//! Registry: each watcher learns `X-Consul-Index` with a plain GET (which also
//! opens its connection), then sends `GET ?index=<i>&wait=60s`. etcd: each
//! watcher opens a `POST /v3/watch` stream and waits for the `created`
//! message, then for the first message carrying `events`.
//!
//! Every watcher has its own `reqwest::Client`, i.e. its own connection. With
//! one shared client the pool decides how many connections exist, and a
//! watcher whose warm-up connection was taken by another one would connect
//! *after* the settle pause, racing the write. Per-watcher clients also let the
//! warm-up be throttled (`--connect-concurrency`) without shrinking the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::rawhttp::Conn;
use crate::stats::{Latency, micros};
use crate::target::{Kind, PreparedValue, Target, contains, http_client, watch_body};

/// Key all watchers watch.
pub const FANOUT_KEY: &str = "bench/fanout";

/// Longest we wait for all watchers to get their request in flight.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Server-side wait of each registry blocking query.
const BLOCKING_WAIT: &str = "60s";

/// Parameters of one fan-out run.
#[derive(Debug, Clone)]
pub struct FanoutSpec {
    /// Number of watchers.
    pub watchers: usize,
    /// Pause between "all requests sent" and the write.
    pub settle: Duration,
    /// How long after the write we wait for stragglers.
    pub timeout: Duration,
    /// Concurrent connection set-ups during warm-up.
    pub connect_concurrency: usize,
    /// Value written by the trigger PUT.
    pub value: Arc<PreparedValue>,
}

/// Outcome of one fan-out run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Target name.
    pub target: String,
    /// Watchers started.
    pub watchers: usize,
    /// Watchers whose blocking request was in flight before the write
    /// (etcd: whose watch the server confirmed as created).
    pub ready: usize,
    /// Seconds it took to get `ready` watchers in flight.
    pub ready_secs: f64,
    /// Watchers that failed or returned before the write.
    pub early: usize,
    /// Watchers that returned after the write.
    pub released: usize,
    /// Of `released`, those that saw the change (registry: a higher
    /// `X-Consul-Index`; etcd: an event).
    pub changed: usize,
    /// Watchers still blocked when `--fanout-timeout` expired, or that errored.
    pub not_released: usize,
    /// Latency of the trigger PUT itself.
    pub put_ms: f64,
    /// From just before the PUT was sent until the last watcher returned.
    pub last_from_put_sent_ms: f64,
    /// From the PUT's response until the last watcher returned (negative if
    /// every watcher was released before the PUT's response arrived).
    pub last_from_put_done_ms: f64,
    /// Per-watcher release latency, measured from just before the PUT was sent.
    pub release: Latency,
    /// First watcher error, if any.
    pub first_error: Option<String>,
}

/// What one watcher brings back.
struct Outcome {
    /// When the answer (or the error) arrived.
    at: Instant,
    /// Whether the answer carried the change.
    changed: bool,
    error: Option<String>,
    /// The watcher's connection, kept open until the report is built.
    _keep: Keep,
}

/// Whatever holds a watcher's connection open. Dropping it inside the watcher
/// would close 10k sockets (and free 10k clients) while other watchers are
/// still being released, which the measurement would then include: on a
/// 2-core box that alone added ~300 ms to the last release.
#[derive(Default)]
struct Keep {
    conn: Option<Conn>,
    client: Option<reqwest::Client>,
    stream: Option<reqwest::Response>,
}

/// Run a fan-out on `target`.
pub async fn run_fanout(target: &Arc<Target>, spec: &FanoutSpec) -> Result<FanoutReport> {
    let writer = http_client(1, Some(Duration::from_secs(10)))?;
    // The key must exist, so the registry's index for it is well defined.
    target.put(&writer, FANOUT_KEY, &spec.value).await?;
    if target.kind == Kind::Registry {
        // Fail fast (before opening 10k connections) if the header is missing.
        target.consul_index(&writer, FANOUT_KEY).await?;
    }

    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for _ in 0..spec.watchers {
        let (target, ready, failed, gate) = (
            Arc::clone(target),
            Arc::clone(&ready),
            Arc::clone(&failed),
            Arc::clone(&gate),
        );
        tasks.spawn(async move {
            let mut keep = Keep::default();
            let result = watch_once(&target, &ready, &gate, &mut keep).await;
            let at = Instant::now();
            match result {
                Ok(changed) => Outcome {
                    at,
                    changed,
                    error: None,
                    _keep: keep,
                },
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    Outcome {
                        at,
                        changed: false,
                        error: Some(format!("{e:#}")),
                        _keep: keep,
                    }
                }
            }
        });
    }

    // Wait on the condition (all in flight or failed), bounded.
    let ready_deadline = started + READY_TIMEOUT;
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < spec.watchers
        && Instant::now() < ready_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_secs = started.elapsed().as_secs_f64();
    let ready_count = ready.load(Ordering::Relaxed);
    eprintln!(
        "  fanout {}: {ready_count}/{} watchers in flight after {ready_secs:.1}s, settling {:?}",
        target.name(),
        spec.watchers,
        spec.settle
    );
    if ready_count == 0 {
        tasks.abort_all();
        let first = first_error(&mut tasks).await;
        bail!(
            "no watcher got its request in flight: {}",
            first.unwrap_or_default()
        );
    }
    tokio::time::sleep(spec.settle).await;

    let mut outcomes = Vec::with_capacity(spec.watchers);
    while let Some(joined) = tasks.try_join_next() {
        outcomes.push(joined?);
    }

    let put_sent = Instant::now();
    target.put(&writer, FANOUT_KEY, &spec.value).await?;
    let put_done = Instant::now();

    let deadline = tokio::time::Instant::from_std(put_done + spec.timeout);
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        outcomes.push(joined?);
    }
    // Stragglers are abandoned: dropping the set aborts them and closes their connections.
    let not_finished = tasks.len();
    tasks.abort_all();

    let mut early = 0;
    let mut released = 0;
    let mut changed = 0;
    let mut errored_after = 0;
    let mut first_err = None;
    let mut last = None::<Instant>;
    let mut samples = Vec::with_capacity(outcomes.len());
    for o in &outcomes {
        if let Some(e) = &o.error {
            first_err.get_or_insert_with(|| e.clone());
        }
        if o.at < put_sent {
            early += 1;
        } else if o.error.is_some() {
            errored_after += 1;
        } else {
            released += 1;
            changed += usize::from(o.changed);
            samples.push(micros(o.at - put_sent));
            last = Some(last.map_or(o.at, |l| l.max(o.at)));
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (last_sent, last_done) = match last {
        Some(l) => (
            ms(l - put_sent),
            if l >= put_done {
                ms(l - put_done)
            } else {
                -ms(put_done - l)
            },
        ),
        None => (f64::NAN, f64::NAN),
    };
    Ok(FanoutReport {
        target: target.name().to_owned(),
        watchers: spec.watchers,
        ready: ready_count,
        ready_secs,
        early,
        released,
        changed,
        not_released: not_finished + errored_after,
        put_ms: ms(put_done - put_sent),
        last_from_put_sent_ms: last_sent,
        last_from_put_done_ms: last_done,
        release: Latency::from_micros(&mut samples),
        first_error: first_err,
    })
}

/// One watcher: warm up under the connection gate, mark itself ready, block
/// until the change arrives. Returns whether the answer carried the change.
async fn watch_once(
    target: &Target,
    ready: &AtomicUsize,
    gate: &Semaphore,
    keep: &mut Keep,
) -> Result<bool> {
    let permit = gate.acquire().await?;
    match target.kind {
        Kind::Registry => {
            let mut conn = Conn::connect(&target.base).await?;
            let path = format!("/v1/kv/{FANOUT_KEY}");
            let warm = conn.get(&path).await?;
            let index = warm
                .consul_index
                .ok_or_else(|| anyhow!("warm-up GET: no X-Consul-Index ({})", warm.status))?;
            // The connection is open and idle, so the blocking request below
            // goes out at once.
            ready.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            let head = conn
                .get(&format!("{path}?index={index}&wait={BLOCKING_WAIT}"))
                .await?;
            if !(200..300).contains(&head.status) {
                bail!("blocking GET: {}", head.status);
            }
            let new_index = head
                .consul_index
                .ok_or_else(|| anyhow!("blocking GET: no X-Consul-Index"))?;
            keep.conn = Some(conn);
            Ok(new_index > index)
        }
        Kind::Etcd => {
            let client = keep.client.insert(http_client(1, None)?);
            let mut resp = client
                .post(target.etcd_watch_url())
                .body(watch_body(FANOUT_KEY))
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("watch: {}", resp.status());
            }
            let mut buf = Vec::new();
            // `created` means the server has registered the watch: from here
            // on, a write cannot be missed.
            while !contains(&buf, b"\"created\":true") {
                let chunk = resp
                    .chunk()
                    .await?
                    .ok_or_else(|| anyhow!("watch stream ended before created"))?;
                buf.extend_from_slice(&chunk);
            }
            ready.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            while !contains(&buf, b"\"events\"") {
                let chunk = resp
                    .chunk()
                    .await?
                    .ok_or_else(|| anyhow!("watch stream ended before an event"))?;
                buf.extend_from_slice(&chunk);
            }
            keep.stream = Some(resp);
            Ok(true)
        }
    }
}

/// First error among already aborted/finished watchers (for the bail message).
async fn first_error(tasks: &mut JoinSet<Outcome>) -> Option<String> {
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Outcome { error: Some(e), .. }) = joined {
            return Some(e);
        }
    }
    None
}
