//! The `checks` scenario: what it costs the node to run N HTTP health checks.
//!
//! The bench process serves a tiny HTTP/1.1 endpoint on `127.0.0.1:0` (see
//! [`CheckServer`]), registers N services on the node, each with one HTTP check
//! against `http://127.0.0.1:<port>/health/<i>` every second, waits for the
//! checks to get going, and then samples the node's CPU time (`/proc/<pid>/stat`)
//! and memory (`/proc/<pid>/status`) over the measured window. The endpoint
//! counts the requests it gets, so the report can show that the checks really
//! ran: a node that registers the checks but never runs them would otherwise
//! look very cheap.
//!
//! Every service is deregistered at the end, also when the run failed or was
//! interrupted with Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Client, StatusCode};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::sys::{Rss, clock_ticks, cpu_percent, read_cpu, read_rss};
use crate::target::{Target, http_client};

/// Prefix of the service (and service ID) names the scenario registers.
pub const SERVICE_PREFIX: &str = "bench-check-";

/// Check interval registered with every check.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Concurrent register/deregister requests.
const ADMIN_CONCURRENCY: usize = 16;

/// Longest request head the check endpoint accepts before closing the connection.
const MAX_HEAD: usize = 64 * 1024;

/// Parameters of one `checks` run.
#[derive(Debug, Clone)]
pub struct ChecksSpec {
    /// Services to register, one HTTP check each.
    pub checks: usize,
    /// Wait between the last registration and the measured window.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// PID of the node, whose `/proc` entries are sampled.
    pub pid: u32,
    /// Timeout of each register/deregister request.
    pub request_timeout: Duration,
}

/// Check statuses the agent reports for the scenario's checks after the window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StatusCounts {
    /// `passing`.
    pub passing: usize,
    /// `warning`.
    pub warning: usize,
    /// `critical`.
    pub critical: usize,
    /// Registered by the scenario but absent from `/v1/agent/checks`.
    pub missing: usize,
}

/// Outcome of the `checks` scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ChecksReport {
    /// Target name (always `registry`).
    pub target: String,
    /// Node PID sampled.
    pub pid: u32,
    /// Services registered, one HTTP check each.
    pub checks_registered: usize,
    /// Check interval, seconds.
    pub interval_s: f64,
    /// Time taken to register every service, seconds.
    pub register_s: f64,
    /// Wait between the last registration and the window, seconds.
    pub warmup_s: f64,
    /// Checks whose URL the endpoint saw at least once before the window.
    pub checks_seen_in_warmup: usize,
    /// Measured window (wall time between the two `/proc` readings), seconds.
    pub seconds: f64,
    /// Requests the check endpoint received in the window.
    pub target_requests: u64,
    /// The same per second.
    pub target_requests_per_sec: f64,
    /// What the endpoint should see if every check runs once per interval.
    pub expected_requests_per_sec: f64,
    /// Checks whose URL the endpoint saw at least once in the window.
    pub checks_seen_in_window: usize,
    /// Connections the node opened to the endpoint in the window (keep-alive
    /// reuse keeps this far below the request count).
    pub target_connections: u64,
    /// Node CPU time (utime + stime) in the window, in percent of one core.
    pub node_cpu_percent: f64,
    /// Node CPU ticks (utime + stime) used in the window.
    pub node_cpu_ticks: u64,
    /// Clock ticks per second used for the conversion.
    pub clk_tck: u64,
    /// Node threads at the end of the window.
    pub node_threads: u64,
    /// Node memory before the window (checks registered and warmed up).
    pub rss_before: Rss,
    /// Node memory at the end of the window.
    pub rss_after: Rss,
    /// CPU of this bench process in the window (endpoint + sampling), in
    /// percent of one core. It shares the machine with the node.
    pub bench_cpu_percent: f64,
    /// Statuses of the checks as the agent reports them after the window.
    pub agent_status: Option<StatusCounts>,
    /// Services deregistered at the end.
    pub deregistered: usize,
    /// First failure of the cleanup, if any deregistration failed.
    pub cleanup_error: Option<String>,
}

impl ChecksReport {
    /// Whether the endpoint saw at least 90 % of the expected request rate,
    /// i.e. the node really ran the checks and the CPU figure measures them.
    pub fn checks_running(&self) -> bool {
        self.target_requests_per_sec >= 0.9 * self.expected_requests_per_sec
    }
}

impl ChecksReport {
    /// The human-readable block of the report.
    pub fn to_table(&self) -> String {
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        let mut out = format!("\nchecks on {} (pid {})\n", self.target, self.pid);
        out += &format!(
            "  registered     {} services, one HTTP check each every {}s (took {:.1} s); \
             {}/{} checks reached the endpoint during the {}s warm-up\n",
            self.checks_registered,
            self.interval_s,
            self.register_s,
            self.checks_seen_in_warmup,
            self.checks_registered,
            self.warmup_s
        );
        out += &format!(
            "  target server  {:.1} req/s (expected ~{:.0}/s); {}/{} checks seen in the {:.1} s window; \
             {} new connections\n",
            self.target_requests_per_sec,
            self.expected_requests_per_sec,
            self.checks_seen_in_window,
            self.checks_registered,
            self.seconds,
            self.target_connections
        );
        out += &format!(
            "  node CPU       {:.1}% of one core (utime+stime {} ticks at CLK_TCK {} over {:.1} s); \
             {} threads\n",
            self.node_cpu_percent,
            self.node_cpu_ticks,
            self.clk_tck,
            self.seconds,
            self.node_threads
        );
        out += &format!(
            "  node RSS       {} at window start, {} at end, peak {}\n",
            mib(self.rss_before.rss_kib),
            mib(self.rss_after.rss_kib),
            mib(self.rss_after.hwm_kib)
        );
        if let Some(s) = &self.agent_status {
            out += &format!(
                "  agent status   passing {}, warning {}, critical {}, missing {}\n",
                s.passing, s.warning, s.critical, s.missing
            );
        }
        out += &format!(
            "  bench process  {:.1}% of one core (check endpoint + sampling, same machine)\n",
            self.bench_cpu_percent
        );
        out += &format!(
            "  cleanup        {} services deregistered{}\n",
            self.deregistered,
            self.cleanup_error
                .as_ref()
                .map(|e| format!("; first error: {e}"))
                .unwrap_or_default()
        );
        if !self.checks_running() {
            out += "  WARNING: the endpoint saw under 90% of the expected requests, so the node \
                    is not running (all) the HTTP checks;\n  the CPU and RSS figures do not \
                    measure a running check load.\n";
        }
        out
    }
}

/// Service ID (and name) of check number `i`.
pub fn service_id(i: usize) -> String {
    format!("{SERVICE_PREFIX}{i}")
}

/// Registration body of service `i`, with its HTTP check against `port`.
pub fn registration_body(i: usize, port: u16) -> serde_json::Value {
    let id = service_id(i);
    serde_json::json!({
        "ID": id,
        "Name": id,
        "Check": {
            "HTTP": format!("http://127.0.0.1:{port}/health/{i}"),
            "Interval": format!("{}s", INTERVAL.as_secs()),
        },
    })
}

/// Run the scenario against the registry `target` and always clean up.
pub async fn run_checks(target: &Arc<Target>, spec: &ChecksSpec) -> Result<ChecksReport> {
    // Fail before registering anything if the PID cannot be read.
    read_cpu(spec.pid).with_context(|| format!("--pid {}", spec.pid))?;
    read_rss(spec.pid).with_context(|| format!("--pid {}", spec.pid))?;

    let client = http_client(ADMIN_CONCURRENCY, Some(spec.request_timeout))?;
    let server = CheckServer::start(spec.checks).await?;
    eprintln!("check endpoint on http://{}/health/<i>", server.addr);

    // Leftovers of an earlier run that died before its cleanup would run
    // their checks too and skew the figures.
    let stale = match list_bench_services(target, &client).await {
        Ok(ids) => ids,
        Err(e) => {
            server.stop();
            return Err(e);
        }
    };
    if !stale.is_empty() {
        eprintln!(
            "removing {} {SERVICE_PREFIX}* services left over from an earlier run",
            stale.len()
        );
        let (_, err) = deregister(target, &client, stale).await;
        if let Some(e) = err {
            server.stop();
            bail!("removing left-over services: {e}");
        }
    }

    let registered = Arc::new(AtomicUsize::new(0));
    let outcome = tokio::select! {
        r = measure(target, &client, &server, spec, &registered) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    server.stop();

    // Deregister every ID a registration may have reached, even one whose
    // request failed or was cut short: the node may have applied it anyway.
    let attempted = registered.load(Ordering::Relaxed).min(spec.checks);
    eprintln!("deregistering {attempted} services");
    let (deregistered, cleanup_error) =
        deregister(target, &client, (0..attempted).map(service_id).collect()).await;
    if let Some(e) = &cleanup_error {
        eprintln!("cleanup: {e}");
    }
    let mut report = outcome?;
    report.deregistered = deregistered;
    report.cleanup_error = cleanup_error;
    Ok(report)
}

/// Register, warm up, measure. `registered` counts registrations started, so
/// the caller knows what to clean up whatever happens here.
async fn measure(
    target: &Arc<Target>,
    client: &Client,
    server: &CheckServer,
    spec: &ChecksSpec,
    registered: &Arc<AtomicUsize>,
) -> Result<ChecksReport> {
    let began = Instant::now();
    register_all(target, client, server.addr.port(), spec.checks, registered).await?;
    let register_s = began.elapsed().as_secs_f64();
    eprintln!(
        "registered {} services in {register_s:.1} s; warming up {}",
        spec.checks,
        humantime::format_duration(spec.warmup)
    );
    tokio::time::sleep(spec.warmup).await;

    let ticks_per_sec = clock_ticks();
    let bench_pid = std::process::id();
    let hits_before = server.snapshot();
    let rss_before = read_rss(spec.pid)?;
    let (node0, bench0, t0) = (read_cpu(spec.pid)?, read_cpu(bench_pid)?, Instant::now());
    tokio::time::sleep(spec.duration).await;
    let (node1, bench1, t1) = (read_cpu(spec.pid)?, read_cpu(bench_pid)?, Instant::now());
    let rss_after = read_rss(spec.pid)?;
    let hits_after = server.snapshot();
    let wall = t1 - t0;

    let agent_status = agent_status(target, client, spec.checks)
        .await
        .inspect_err(|e| eprintln!("reading /v1/agent/checks: {e:#}"))
        .ok();
    let requests = hits_after.requests - hits_before.requests;
    let seconds = wall.as_secs_f64();
    Ok(ChecksReport {
        target: target.name().to_owned(),
        pid: spec.pid,
        checks_registered: spec.checks,
        interval_s: INTERVAL.as_secs_f64(),
        register_s,
        warmup_s: spec.warmup.as_secs_f64(),
        checks_seen_in_warmup: hits_before.per_check.iter().filter(|&&n| n > 0).count(),
        seconds,
        target_requests: requests,
        target_requests_per_sec: requests as f64 / seconds,
        expected_requests_per_sec: spec.checks as f64 / INTERVAL.as_secs_f64(),
        checks_seen_in_window: hits_before
            .per_check
            .iter()
            .zip(&hits_after.per_check)
            .filter(|(b, a)| a > b)
            .count(),
        target_connections: hits_after.connections - hits_before.connections,
        node_cpu_percent: cpu_percent(node0, node1, wall, ticks_per_sec),
        node_cpu_ticks: node1.total().saturating_sub(node0.total()),
        clk_tck: ticks_per_sec,
        node_threads: node1.threads,
        rss_before,
        rss_after,
        bench_cpu_percent: cpu_percent(bench0, bench1, wall, ticks_per_sec),
        agent_status,
        deregistered: 0,
        cleanup_error: None,
    })
}

/// Register services `0..n`, [`ADMIN_CONCURRENCY`] at a time.
async fn register_all(
    target: &Arc<Target>,
    client: &Client,
    port: u16,
    n: usize,
    next: &Arc<AtomicUsize>,
) -> Result<()> {
    let mut tasks = JoinSet::new();
    for _ in 0..ADMIN_CONCURRENCY.min(n) {
        let (target, client, next) = (Arc::clone(target), client.clone(), Arc::clone(next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let url = format!("{}/v1/agent/service/register", target.base);
                let resp = client
                    .put(&url)
                    .json(&registration_body(i, port))
                    .send()
                    .await
                    .with_context(|| format!("registering {}", service_id(i)))?;
                let status = resp.status();
                if status != StatusCode::OK {
                    let body = resp.text().await.unwrap_or_default();
                    bail!("registering {}: {status} {}", service_id(i), body.trim());
                }
                resp.bytes().await?;
            }
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result
            && first_error.is_none()
        {
            // Stop the other workers: nothing more gets registered.
            next.fetch_add(n, Ordering::Relaxed);
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Deregister `ids`, [`ADMIN_CONCURRENCY`] at a time. An ID the agent does not
/// know (404) counts as done. Returns how many were removed and the first error.
async fn deregister(
    target: &Arc<Target>,
    client: &Client,
    ids: Vec<String>,
) -> (usize, Option<String>) {
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..ADMIN_CONCURRENCY.min(ids.len()) {
        let (target, client) = (Arc::clone(target), client.clone());
        let (ids, next) = (Arc::clone(&ids), Arc::clone(&next));
        tasks.spawn(async move {
            let (mut removed, mut errors, mut first_error) = (0, 0, None);
            while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                let url = format!("{}/v1/agent/service/deregister/{id}", target.base);
                let outcome = match client.put(&url).send().await {
                    Ok(resp) if resp.status() == StatusCode::OK => Ok(true),
                    Ok(resp) if resp.status() == StatusCode::NOT_FOUND => Ok(false),
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.text().await.unwrap_or_default();
                        Err(format!("deregistering {id}: {status} {}", body.trim()))
                    }
                    Err(e) => Err(format!("deregistering {id}: {e:#}")),
                };
                match outcome {
                    Ok(found) => removed += usize::from(found),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        // A dead node refuses in microseconds; give up after a few.
                        if errors >= 3 {
                            next.fetch_add(ids.len(), Ordering::Relaxed);
                        }
                    }
                }
            }
            (removed, first_error)
        });
    }
    let (mut removed, mut first_error) = (0, None);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((n, e)) => {
                removed += n;
                if first_error.is_none() {
                    first_error = e;
                }
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("deregister task: {e}"));
            }
        }
    }
    (removed, first_error)
}

/// IDs of the agent's services that carry the scenario's prefix.
async fn list_bench_services(target: &Target, client: &Client) -> Result<Vec<String>> {
    let url = format!("{}/v1/agent/services", target.base);
    let services: serde_json::Map<String, serde_json::Value> = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()?
        .json()
        .await
        .with_context(|| format!("GET {url}: not a JSON object"))?;
    Ok(services
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id.starts_with(SERVICE_PREFIX))
        .collect())
}

/// Count the statuses of the scenario's checks in `/v1/agent/checks`.
async fn agent_status(target: &Target, client: &Client, n: usize) -> Result<StatusCounts> {
    let url = format!("{}/v1/agent/checks", target.base);
    let checks: serde_json::Map<String, serde_json::Value> = client
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut counts = StatusCounts::default();
    let mut seen = 0;
    for check in checks.values() {
        let service = check.get("ServiceID").and_then(|v| v.as_str());
        if service.and_then(index_of_id).is_none_or(|i| i >= n) {
            continue;
        }
        seen += 1;
        match check.get("Status").and_then(|v| v.as_str()) {
            Some("passing") => counts.passing += 1,
            Some("warning") => counts.warning += 1,
            _ => counts.critical += 1,
        }
    }
    counts.missing = n.saturating_sub(seen);
    Ok(counts)
}

/// `bench-check-<i>` → `i`.
fn index_of_id(id: &str) -> Option<usize> {
    id.strip_prefix(SERVICE_PREFIX)?.parse().ok()
}

/// `/health/<i>` (query ignored) → `i`.
pub fn index_of_path(path: &str) -> Option<usize> {
    let path = path.split('?').next()?;
    path.strip_prefix("/health/")?.parse().ok()
}

/// Counters of the check endpoint.
struct Counters {
    requests: AtomicU64,
    connections: AtomicU64,
    per_check: Vec<AtomicU64>,
}

/// A copy of the endpoint's counters at one instant.
#[derive(Debug, Clone)]
pub struct Hits {
    /// Requests answered, any path.
    pub requests: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Requests per check index (`/health/<i>`).
    pub per_check: Vec<u64>,
}

/// The checks' target: a minimal HTTP/1.1 server on `127.0.0.1:0` that answers
/// every request with `200 OK` and a two-byte body, keeps connections alive,
/// and counts what it answered. It runs on the bench's own runtime and stops
/// (with all its connections) on [`CheckServer::stop`] or when dropped.
pub struct CheckServer {
    /// Address it listens on.
    pub addr: std::net::SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl CheckServer {
    /// Listen on an ephemeral loopback port; `checks` sizes the per-check counters.
    pub async fn start(checks: usize) -> Result<CheckServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the check endpoint on 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters {
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            per_check: (0..checks).map(|_| AtomicU64::new(0)).collect(),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&counters)));
        Ok(CheckServer {
            addr,
            counters,
            accept,
        })
    }

    /// Current counters.
    pub fn snapshot(&self) -> Hits {
        let c = &self.counters;
        Hits {
            requests: c.requests.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
            per_check: c
                .per_check
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// Stop accepting and close every connection.
    pub fn stop(&self) {
        self.accept.abort();
    }
}

impl Drop for CheckServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accept connections; each one is served by a task in a `JoinSet` owned by
/// this task, so aborting it closes them all.
async fn accept_loop(listener: TcpListener, counters: Arc<Counters>) {
    let mut conns = JoinSet::new();
    let mut warned = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    conns.spawn(serve(stream, Arc::clone(&counters)));
                }
                Err(e) => {
                    // EMFILE and friends: do not spin, say it once.
                    if !warned {
                        eprintln!("check endpoint: accept failed: {e}");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serve one connection until the peer closes it or asks to.
async fn serve(mut stream: TcpStream, counters: Arc<Counters>) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK";
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer every complete request in the buffer (pipelining included).
        while let Some(req) = parse_request(&buf) {
            let Some(req) = req else { return };
            if buf.len() < req.total_len {
                break; // body not complete yet
            }
            buf.drain(..req.total_len);
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = req.check.and_then(|i| counters.per_check.get(i)) {
                slot.fetch_add(1, Ordering::Relaxed);
            }
            if stream.write_all(RESPONSE).await.is_err() || req.close {
                return;
            }
        }
        if buf.len() > MAX_HEAD {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What the endpoint needs to know about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Head plus `Content-Length` body, in bytes.
    pub total_len: usize,
    /// Check index from a `/health/<i>` path.
    pub check: Option<usize>,
    /// Close the connection after answering (`Connection: close`, or HTTP/1.0
    /// without `Connection: keep-alive`).
    pub close: bool,
}

/// Parse the request at the start of `buf`: `None` if its head is not
/// complete yet, `Some(None)` if it is not HTTP (the connection is dropped).
pub fn parse_request(buf: &[u8]) -> Option<Option<Request>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Some(None);
    };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(_method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Some(None);
    };
    if !version.starts_with("HTTP/1.") {
        return Some(None);
    }
    let mut content_length = 0usize;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.parse() else {
                return Some(None);
            };
            content_length = n;
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                close = true;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are not something a health check sends.
            return Some(None);
        }
    }
    Some(Some(Request {
        total_len: head_end + content_length,
        check: index_of_path(path),
        close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_shape() {
        let body = registration_body(7, 4321);
        assert_eq!(body["ID"], "bench-check-7");
        assert_eq!(body["Name"], "bench-check-7");
        assert_eq!(body["Check"]["HTTP"], "http://127.0.0.1:4321/health/7");
        assert_eq!(body["Check"]["Interval"], "1s");
    }

    #[test]
    fn indices() {
        assert_eq!(index_of_id("bench-check-12"), Some(12));
        assert_eq!(index_of_id("bench-check-x"), None);
        assert_eq!(index_of_id("web"), None);
        assert_eq!(index_of_path("/health/3"), Some(3));
        assert_eq!(index_of_path("/health/3?x=1"), Some(3));
        assert_eq!(index_of_path("/other/3"), None);
    }

    #[test]
    fn parses_requests() {
        let get = b"GET /health/5 HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n";
        let r = parse_request(get).unwrap().unwrap();
        assert_eq!(
            r,
            Request {
                total_len: get.len(),
                check: Some(5),
                close: false
            }
        );
        assert_eq!(parse_request(&get[..get.len() - 1]), None);

        let post = b"POST /x HTTP/1.1\r\ncontent-length: 3\r\nConnection: close\r\n\r\nab";
        let r = parse_request(post).unwrap().unwrap();
        assert_eq!(
            (r.total_len, r.check, r.close),
            (post.len() + 1, None, true)
        );

        let old = b"GET /health/1 HTTP/1.0\r\n\r\n";
        assert!(parse_request(old).unwrap().unwrap().close);
        assert_eq!(parse_request(b"garbage\r\n\r\n"), Some(None));
    }

    #[tokio::test]
    async fn endpoint_answers_and_counts() {
        let server = CheckServer::start(4).await.unwrap();
        let mut conn = TcpStream::connect(server.addr).await.unwrap();
        // Two pipelined requests on one keep-alive connection, then a third.
        conn.write_all(
            b"GET /health/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /health/3 HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        let one = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK";
        while got.len() < 2 * one.len() {
            let mut chunk = [0u8; 512];
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, [one.as_slice(), one.as_slice()].concat());
        conn.write_all(b"GET /health/1 HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, one);

        let hits = server.snapshot();
        assert_eq!(hits.requests, 3);
        assert_eq!(hits.connections, 1);
        assert_eq!(hits.per_check, vec![0, 2, 0, 1]);
        server.stop();
    }
}
