//! Clusters of real agents in one process (servers and clients joined by
//! gossip on loopback, Raft over server RPC): the seeds' cluster scenarios.
//! Every wait is on a condition with a bound (STYLE.md practice 9).

mod t10_form;
mod t20_leave;
mod t30_failure;
mod t40_quorum;
mod t50_gossip;
mod t60_partition;

use std::time::Duration;

use registry_node::testing::{CLUSTER_WAIT, TestAgent, TestCluster};
use serde_json::Value;

/// GET `path` on agent `a`; returns (status, JSON body or Null).
pub async fn get(a: &TestAgent, path: &str) -> (u16, Value) {
    let resp = a.http.get(a.url(path)).send().await.expect("GET");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// PUT `body` to `path` on agent `a`; returns (status, text).
pub async fn put(a: &TestAgent, path: &str, body: &str) -> (u16, String) {
    let resp = a
        .http
        .put(a.url(path))
        .body(body.to_string())
        .send()
        .await
        .expect("PUT");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// The members agent `a` reports: (name, status code).
pub async fn members(a: &TestAgent) -> Vec<(String, u64)> {
    let (status, body) = get(a, "/v1/agent/members").await;
    assert_eq!(status, 200);
    body.as_array()
        .expect("member list")
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().expect("name").to_string(),
                m["Status"].as_u64().expect("status"),
            )
        })
        .collect()
}

/// Polls an async condition until it holds; panics after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Default bound of cluster waits.
pub const WAIT: Duration = CLUSTER_WAIT;

/// Starts a cluster (wrapper kept here so every test logs the same way).
pub async fn cluster(servers: usize, clients: usize) -> TestCluster {
    TestCluster::start(servers, clients).await
}
