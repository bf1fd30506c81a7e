//! HTTP API integration suite: real agents in-process on port 0, spoken to
//! over HTTP with reqwest. One test binary (see STYLE.md practice 10).

mod t10_catalog;
mod t10_kv;
mod t20_agent;
mod t20_session;
mod t30_blocking;
mod t30_txn;
mod t40_durability;
mod t50_agent_state;
mod t60_checks;
mod t70_dns;
mod t80_query;

use registry_node::testing::TestAgent;
use serde_json::Value;

/// GET a path; returns status, `X-Consul-Index` and the body text.
pub async fn get(a: &TestAgent, path: &str) -> (u16, u64, String) {
    let r = a.http.get(a.url(path)).send().await.expect("GET");
    let status = r.status().as_u16();
    let index = r
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, index, r.text().await.expect("body"))
}

/// GET a path and parse JSON (asserts 200).
pub async fn get_json(a: &TestAgent, path: &str) -> (Value, u64) {
    let (status, index, body) = get(a, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    (
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}")),
        index,
    )
}

/// PUT a body; returns status and body text.
pub async fn put(a: &TestAgent, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let r = a
        .http
        .put(a.url(path))
        .body(body)
        .send()
        .await
        .expect("PUT");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// DELETE a path; returns status and body text.
pub async fn delete(a: &TestAgent, path: &str) -> (u16, String) {
    let r = a.http.delete(a.url(path)).send().await.expect("DELETE");
    (r.status().as_u16(), r.text().await.expect("body"))
}
