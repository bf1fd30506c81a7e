//! The docker-compose demo end to end (issue 8, seed 001): registrator, three
//! registry-node servers and a client agent, templater supervising nginx, and `web`
//! containers, all from `docker-compose.yml` as a user runs it. One test binary
//! (STYLE.md practice 10); the scenario is one test, because starting the demo is
//! the expensive part.
//!
//! Needs a reachable Docker daemon and docker-compose (or `docker compose`): the test
//! fails, it does not skip, without them. Images come from
//! `docker/build-demo-images.sh`, run by the test itself (a quick no-op when `.ci/run`
//! ran it already). Every run uses its own compose project and free host ports, and
//! the project is removed at the end, also when the test fails (its logs are printed
//! first).

mod t10_demo;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use registry_e2e::{Container, Demo, Sample, Traffic};

/// The budget for nginx to follow a change (scale up, stop).
pub const BUDGET: Duration = Duration::from_secs(2);

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes; the value
/// and when it came (`Err(last error)` on timeout).
pub fn wait_for<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<(T, Instant), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok((v, Instant::now())),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("not within {timeout:?}: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Waits until `c`'s address has left nginx's rendered upstream; returns when.
pub fn wait_left_config(demo: &Demo, c: &Container, timeout: Duration) -> Result<Instant, String> {
    let upstream = format!("server {}:", c.ip);
    let (_, at) = wait_for(timeout, || {
        let conf = demo.rendered_conf()?;
        (!conf.contains(&upstream))
            .then_some(())
            .ok_or_else(|| format!("{upstream} still in the config"))
    })?;
    Ok(at)
}

/// The hostnames of `containers` (what demo-web answers).
pub fn hostnames(containers: &[Container]) -> BTreeSet<String> {
    containers.iter().map(|c| c.hostname.clone()).collect()
}

/// The running web containers, checked to be `n`.
pub fn web_containers(demo: &Demo, n: usize) -> Vec<Container> {
    let web = demo.containers("web").unwrap();
    assert_eq!(web.len(), n, "running web containers: {web:?}");
    web
}

/// `Ok` when the hosts that answered since `since` are exactly `expected`.
pub fn answered_by_exactly(
    seen: &BTreeSet<String>,
    expected: &BTreeSet<String>,
) -> Result<(), String> {
    let missing: Vec<_> = expected.difference(seen).collect();
    let unexpected: Vec<_> = seen.difference(expected).collect();
    if missing.is_empty() && unexpected.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not yet answered by {missing:?}; answered by unknown {unexpected:?}"
        ))
    }
}

/// Waits until the requests sent in the last half second were answered by exactly
/// `expected`: a sliding window, so answers from before nginx's last reload (the
/// rendered file changes a moment before nginx loads it) are forgotten.
pub fn wait_answered_by_exactly(
    traffic: &Traffic,
    expected: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), String> {
    wait_for(timeout, || {
        let window = Instant::now() - Duration::from_millis(500);
        answered_by_exactly(&traffic.hosts_since(window), expected)
    })
    .map(drop)
}

/// The failed samples among `samples`.
pub fn failures(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.outcome.is_err()).collect()
}
