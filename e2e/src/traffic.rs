//! A steady request loop through nginx: `workers` tasks, each sending `GET /` one
//! after another (with a short pause) and recording every outcome. demo-web answers
//! `/` with its hostname, so each sample says which container served it.
//!
//! Every request opens a new connection (no pooling): a pooled keep-alive connection
//! that an nginx worker closes while it reloads fails the next request sent on it, a
//! client-side race that says nothing about routing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// One request: when it was sent, when it completed, and the container that
/// answered (`Ok(hostname)`) or why it failed (a non-200 status or a transport error).
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was sent.
    pub sent: Instant,
    /// When the answer (or the error) arrived.
    pub done: Instant,
    /// The hostname in the body of a 200, else the failure.
    pub outcome: Result<String, String>,
}

/// The running loop; [`Traffic::stop`] ends it.
pub struct Traffic {
    samples: Arc<Mutex<Vec<Sample>>>,
    /// Set by `stop`; each worker checks it before its next request.
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    /// The same moment on both clocks, to place samples on Docker's wall clock.
    anchor: (Instant, SystemTime),
}

impl Traffic {
    /// Starts `workers` loops on `rt` against `url`, pausing `pause` between requests.
    pub fn start(rt: &Handle, url: &str, workers: usize, pause: Duration) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let (client, url) = (client.clone(), url.to_string());
                let (samples, stopping) = (samples.clone(), stopping.clone());
                rt.spawn(async move {
                    while !stopping.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let outcome = get_hostname(&client, &url).await;
                        let done = Instant::now();
                        samples.lock().unwrap().push(Sample {
                            sent,
                            done,
                            outcome,
                        });
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Traffic {
            samples,
            stopping,
            workers,
            anchor: (Instant::now(), SystemTime::now()),
        }
    }

    /// `t` on the wall clock (to compare with Docker's timestamps).
    pub fn wall_clock(&self, t: Instant) -> SystemTime {
        let (instant, system) = self.anchor;
        if t >= instant {
            system + (t - instant)
        } else {
            system - (instant - t)
        }
    }

    /// The samples so far, in completion order.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// The hostnames that answered requests sent at or after `since`.
    pub fn hosts_since(&self, since: Instant) -> BTreeSet<String> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.sent >= since)
            .filter_map(|s| s.outcome.as_ref().ok().cloned())
            .collect()
    }

    /// Stops the workers (each finishes its current request) and returns every sample.
    pub async fn stop(self) -> Vec<Sample> {
        self.stopping.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        let samples = self.samples.lock().unwrap();
        samples.clone()
    }
}

/// `GET url`: the trimmed body of a 200, else the status or the transport error.
pub async fn get_hostname(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = client.get(url).send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| error_chain(&e))?;
    if status == reqwest::StatusCode::OK {
        Ok(body.trim().to_string())
    } else {
        Err(format!("HTTP {status}: {}", body.trim()))
    }
}

/// The error and its sources on one line (reqwest's Display hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
