//! The watcher: exactly one "view" (a task with a blocking-query loop) per
//! unique [`Dependency`] across all templates, publishing new data to the
//! runner.
//!
//! A view follows upstream's rules (B.5): `?index=` of the last
//! `X-Consul-Index` and `?wait=` (`block_query_wait`, 60 s); `?stale` when
//! `max_stale` > 0, re-asked consistently when `X-Consul-LastContact` exceeds
//! it; an index that goes backwards resets to 0; data equal to the previous
//! data is not published; at most one request per ~100 ms (+ jitter) so a
//! misbehaving server cannot make it spin.
//!
//! Beyond upstream, an outage does not kill the process: failures are retried
//! with capped exponential backoff forever, logged once when the view starts
//! failing and once when it recovers; the last good data (and so the last
//! output) stays. Only an explicit `-consul-retry-attempts` > 0 restores the
//! give-up (a [`WatchEvent::Fatal`], exit 14), and `-consul-retry=false`
//! makes the first failure fatal.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use registry_api::client::{blocking_timeout, escape_path, next_index, parse_query_meta};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::brain::{Data, decode};
use crate::config::RetryConfig;
use crate::dependency::{Dependency, Source};
use crate::fswatch::FileWatch;

/// Minimum time between two requests of one view (upstream's rate limit).
const MIN_DELAY: Duration = Duration::from_millis(100);
/// Re-poll period of non-blocking sources (`datacenters`).
const NON_BLOCKING_POLL: Duration = Duration::from_secs(15);
/// Poll period of `file` dependencies, as upstream (inotify usually wins).
const FILE_POLL: Duration = Duration::from_secs(2);
/// Time limit of a request that does not block.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a view tells the runner.
#[derive(Debug)]
pub enum WatchEvent {
    /// New data (different from the view's previous data).
    Data(Dependency, Data),
    /// The view gave up (retry attempts exhausted or retries disabled).
    Fatal(Dependency, String),
}

/// How views talk to the registry.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// `http://host:port`.
    pub base: String,
    /// ACL token ("" = none).
    pub token: String,
    /// Basic auth `user[:pass]`.
    pub auth: Option<String>,
    /// `block_query_wait`.
    pub block_query_wait: Duration,
    /// `max_stale` (0 = consistent reads).
    pub max_stale: Duration,
    /// Retry policy.
    pub retry: RetryConfig,
}

struct View {
    cancel: CancellationToken,
}

/// One view per dependency; cheap to query, owned by the runner.
pub struct Watcher {
    settings: Arc<WatchSettings>,
    http: reqwest::Client,
    views: HashMap<Dependency, View>,
    tx: mpsc::UnboundedSender<WatchEvent>,
    /// Blocking requests in flight (the "open blocking queries" gauge).
    open: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

impl Watcher {
    /// A watcher publishing to `tx`; every view stops when `cancel` fires.
    pub fn new(
        settings: WatchSettings,
        tx: mpsc::UnboundedSender<WatchEvent>,
        cancel: CancellationToken,
    ) -> Watcher {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let open = Arc::new(AtomicUsize::new(0));
        tokio::spawn(gauge_loop(open.clone(), cancel.clone()));
        Watcher {
            settings: Arc::new(settings),
            http,
            views: HashMap::new(),
            tx,
            open,
            cancel,
        }
    }

    /// Starts a view for `dep` unless one runs; returns whether it started.
    pub fn add(&mut self, dep: &Dependency) -> bool {
        if self.views.contains_key(dep) {
            return false;
        }
        let cancel = self.cancel.child_token();
        let ctx = ViewCtx {
            dep: dep.clone(),
            settings: self.settings.clone(),
            http: self.http.clone(),
            tx: self.tx.clone(),
            open: self.open.clone(),
            cancel: cancel.clone(),
        };
        debug!(dependency = %dep, "(watcher) adding");
        tokio::spawn(ctx.run());
        self.views.insert(dep.clone(), View { cancel });
        true
    }

    /// Whether `dep` has a view.
    pub fn watching(&self, dep: &Dependency) -> bool {
        self.views.contains_key(dep)
    }

    /// Stops the views of dependencies not in `keep`; returns the stopped ones.
    pub fn retain(&mut self, keep: &BTreeSet<Dependency>) -> Vec<Dependency> {
        let stop: Vec<Dependency> = self
            .views
            .keys()
            .filter(|d| !keep.contains(*d))
            .cloned()
            .collect();
        for d in &stop {
            if let Some(v) = self.views.remove(d) {
                debug!(dependency = %d, "(watcher) removing");
                v.cancel.cancel();
            }
        }
        stop
    }

    /// Number of views (unique dependencies watched).
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Blocking queries currently in flight.
    pub fn open_queries(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Stops every view.
    pub fn stop(&mut self) {
        for (_, v) in self.views.drain() {
            v.cancel.cancel();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
        self.cancel.cancel();
    }
}

/// Logs the open-blocking-queries gauge when it settles on a new value, for
/// operators, tests and the benchmark (sampled: it changes on every answer).
async fn gauge_loop(open: Arc<AtomicUsize>, cancel: CancellationToken) {
    let mut logged = usize::MAX;
    let mut prev = usize::MAX;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let now = open.load(Ordering::Relaxed);
        if now == prev && now != logged {
            info!("(watcher) open blocking queries: {now}");
            logged = now;
        }
        prev = now;
    }
}

/// Decrements the gauge when a request ends, even when it is cancelled.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(open: &Arc<AtomicUsize>) -> InFlight {
        open.fetch_add(1, Ordering::Relaxed);
        InFlight(open.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Failure bookkeeping of one view: counts, backoff and log-once.
struct Failures {
    count: u32,
}

impl Failures {
    /// Records a failure; `Err` when the view must give up.
    fn fail(
        &mut self,
        dep: &Dependency,
        retry: &RetryConfig,
        error: &str,
    ) -> Result<Duration, String> {
        self.count += 1;
        if !retry.enabled {
            return Err(format!("{dep}: {error} (retries disabled)"));
        }
        if let Some(max) = retry.attempts
            && self.count > max
        {
            return Err(format!("{dep}: {error} (gave up after {max} retries)"));
        }
        let delay = retry.delay(self.count - 1);
        if self.count == 1 {
            warn!(dependency = %dep, error, "(view) query failed; retrying with backoff, keeping the last data");
        } else {
            debug!(dependency = %dep, error, attempt = self.count, ?delay, "(view) still failing");
        }
        Ok(delay)
    }

    fn ok(&mut self, dep: &Dependency) {
        if self.count > 0 {
            info!(dependency = %dep, failures = self.count, "(view) recovered");
        }
        self.count = 0;
    }
}

struct ViewCtx {
    dep: Dependency,
    settings: Arc<WatchSettings>,
    http: reqwest::Client,
    tx: mpsc::UnboundedSender<WatchEvent>,
    open: Arc<AtomicUsize>,
    cancel: CancellationToken,
}

/// One response of a registry read.
struct Answer {
    status: u16,
    body: Vec<u8>,
    index: u64,
    last_contact: Duration,
}

impl ViewCtx {
    async fn run(self) {
        match self.dep.source() {
            Source::File(path) => self.file_loop(PathBuf::from(path)).await,
            Source::Consul {
                path,
                params,
                blocking,
            } => self.consul_loop(Some(path), params, blocking).await,
            Source::ConsulLocalNode { params } => self.consul_loop(None, params, true).await,
        }
        debug!(dependency = %self.dep, "(view) stopped");
    }

    /// Sleeps unless cancelled; `false` when cancelled.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    fn publish(&self, data: Data) {
        let _ = self.tx.send(WatchEvent::Data(self.dep.clone(), data));
    }

    fn fatal(&self, error: String) {
        let _ = self.tx.send(WatchEvent::Fatal(self.dep.clone(), error));
    }

    async fn get(
        &self,
        path: &str,
        params: &[(String, String)],
        index: u64,
        stale: bool,
        blocking: bool,
    ) -> Result<Answer, String> {
        let s = &self.settings;
        let mut query: Vec<(&str, String)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if blocking && index > 0 {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", s.block_query_wait.as_millis())));
        }
        if stale {
            query.push(("stale", String::new()));
        }
        let url = format!("{}{}", s.base, escape_path(path));
        let mut rb = self.http.get(&url).query(&query);
        if !s.token.is_empty() {
            rb = rb.header("X-Consul-Token", &s.token);
        }
        if let Some(auth) = &s.auth {
            let (u, p) = match auth.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (auth.as_str(), None),
            };
            rb = rb.basic_auth(u, p);
        }
        let timeout = if blocking && index > 0 {
            blocking_timeout(s.block_query_wait)
        } else {
            REQUEST_TIMEOUT
        };
        let _guard = (blocking && index > 0).then(|| InFlight::new(&self.open));
        let resp = rb.timeout(timeout).send().await.map_err(|e| describe(&e))?;
        let meta = parse_query_meta(resp.headers());
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| describe(&e))?.to_vec();
        Ok(Answer {
            status,
            body,
            index: meta.last_index,
            last_contact: Duration::from_millis(meta.last_contact_ms),
        })
    }

    /// The blocking-query loop. `path` `None` = the local agent's node
    /// (`node` without a name), resolved through `/v1/agent/self` first.
    async fn consul_loop(
        &self,
        path: Option<String>,
        params: Vec<(String, String)>,
        blocking: bool,
    ) {
        let retry = self.settings.retry;
        let mut failures = Failures { count: 0 };
        let mut path = path;
        let mut index = 0u64;
        let mut last: Option<Data> = None;
        let mut last_body: Vec<u8> = Vec::new();
        let mut stale = !self.settings.max_stale.is_zero();
        let mut last_request: Option<Instant> = None;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            // Rate limit: never two requests of one view within MIN_DELAY.
            if let Some(t) = last_request {
                let since = t.elapsed();
                if since < MIN_DELAY {
                    let jitter = Duration::from_millis(rand::rng().random_range(0..=20));
                    if !self.sleep(MIN_DELAY - since + jitter).await {
                        return;
                    }
                }
            }
            last_request = Some(Instant::now());
            let p = match &path {
                Some(p) => p.clone(),
                None => match self.local_node().await {
                    Ok(name) => {
                        let p = format!("/v1/catalog/node/{name}");
                        path = Some(p.clone());
                        p
                    }
                    Err(e) => {
                        if !self.retry_after(&mut failures, &retry, &e).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            let answer = tokio::select! {
                _ = self.cancel.cancelled() => return,
                a = self.get(&p, &params, index, stale, blocking) => a,
            };
            let answer = match answer.and_then(|a| self.check_status(a)) {
                Ok(a) => a,
                Err(e) => {
                    // After a failure the agent may be a new one with a lower
                    // index: a blocking read on our old index would hang until
                    // `wait` expires. Ask without an index first (beyond upstream).
                    index = 0;
                    if !self.retry_after(&mut failures, &retry, &e).await {
                        return;
                    }
                    continue;
                }
            };
            failures.ok(&self.dep);
            if stale && answer.last_contact > self.settings.max_stale {
                debug!(dependency = %self.dep, last_contact = ?answer.last_contact,
                    "(view) stale data (last contact exceeded max_stale); asking the leader");
                stale = false;
                continue;
            }
            stale = !self.settings.max_stale.is_zero();
            if blocking && last.is_some() && answer.index == index {
                // Timed out with no change.
                continue;
            }
            index = next_index(index, answer.index);
            if last.is_some() && last_body == answer.body {
                // Woken by a write that did not change this view: skip decoding.
                continue;
            }
            let data = match decode(&self.dep, &answer.body) {
                Ok(d) => d,
                Err(e) => {
                    if !self
                        .retry_after(&mut failures, &retry, &e.to_string())
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            last_body = answer.body;
            if last.as_ref() != Some(&data) {
                debug!(dependency = %self.dep, index, "(view) data changed");
                last = Some(data.clone());
                self.publish(data);
            }
            if !blocking && !self.sleep(NON_BLOCKING_POLL).await {
                return;
            }
        }
    }

    /// A 404 of a KV read is "no such key" (empty data); other non-2xx are errors.
    fn check_status(&self, mut a: Answer) -> Result<Answer, String> {
        match a.status {
            200..=299 => Ok(a),
            404 if matches!(
                self.dep,
                Dependency::Key { .. } | Dependency::KeyPrefix { .. }
            ) =>
            {
                a.body.clear();
                Ok(a)
            }
            s => Err(format!(
                "Unexpected response code: {s} ({})",
                String::from_utf8_lossy(&a.body).trim()
            )),
        }
    }

    /// Backs off after a failure; `false` when the view ends (gave up or cancelled).
    async fn retry_after(&self, failures: &mut Failures, retry: &RetryConfig, error: &str) -> bool {
        match failures.fail(&self.dep, retry, error) {
            Ok(delay) => self.sleep(delay).await,
            Err(e) => {
                self.fatal(e);
                false
            }
        }
    }

    /// `Config.NodeName` of the agent we talk to.
    async fn local_node(&self) -> Result<String, String> {
        let a = self.get("/v1/agent/self", &[], 0, false, false).await?;
        let a = self.check_status(a)?;
        let v: serde_json::Value = serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
        v.pointer("/Config/NodeName")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .ok_or_else(|| "agent/self: no Config.NodeName".to_string())
    }

    /// `file`: read on every notification, and every [`FILE_POLL`] as a fallback.
    async fn file_loop(&self, path: PathBuf) {
        let mut fw = FileWatch::new(std::slice::from_ref(&path));
        let mut last: Option<Data> = None;
        let mut failing = false;
        loop {
            match tokio::fs::read(&path).await {
                Ok(bytes) => {
                    if failing {
                        info!(dependency = %self.dep, "(view) file readable again");
                        failing = false;
                    }
                    match decode(&self.dep, &bytes) {
                        Ok(d) if last.as_ref() != Some(&d) => {
                            last = Some(d.clone());
                            self.publish(d);
                        }
                        Ok(_) => {}
                        Err(e) => warn!(dependency = %self.dep, error = %e, "(view) cannot decode"),
                    }
                }
                Err(e) if !failing => {
                    // Upstream exits here; we keep the last data and keep watching.
                    warn!(dependency = %self.dep, error = %e, "(view) cannot read file; waiting for it");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = fw.changed() => {}
                _ = tokio::time::sleep(FILE_POLL) => {}
            }
        }
    }
}

/// A transport error as one line with its causes.
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let r = RetryConfig {
            enabled: true,
            attempts: None,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
        };
        let d: Vec<u64> = (0..10).map(|i| r.delay(i).as_millis() as u64).collect();
        assert_eq!(
            d,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        assert_eq!(r.delay(1000), Duration::from_secs(60));
    }

    #[test]
    fn give_up_only_when_attempts_set() {
        let dep = Dependency::key("a").unwrap();
        let mut r = RetryConfig {
            enabled: true,
            attempts: None,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        };
        let mut f = Failures { count: 0 };
        for _ in 0..100 {
            assert!(f.fail(&dep, &r, "down").is_ok());
        }
        r.attempts = Some(2);
        let mut f = Failures { count: 0 };
        assert!(f.fail(&dep, &r, "down").is_ok());
        assert!(f.fail(&dep, &r, "down").is_ok());
        assert!(f.fail(&dep, &r, "down").is_err());
        r.enabled = false;
        let mut f = Failures { count: 0 };
        assert!(f.fail(&dep, &r, "down").is_err());
    }
}
