//! Blocking queries: they return soon after a relevant write, stay blocked
//! through unrelated writes, honour `wait`, and never return an index below 1.

use std::time::{Duration, Instant};

use super::*;
use serde_json::json;

/// Starts a blocking GET in the background.
fn spawn_get(a: &TestAgent, path: &str) -> tokio::task::JoinHandle<(u16, u64, Instant)> {
    let (http, url) = (a.http.clone(), a.url(path));
    tokio::spawn(async move {
        let r = http.get(url).send().await.unwrap();
        let idx = r
            .headers()
            .get("X-Consul-Index")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        (r.status().as_u16(), idx, Instant::now())
    })
}

#[tokio::test]
async fn kv_key_watch_ignores_other_keys() {
    let a = TestAgent::start().await;
    put(&a, "/v1/kv/a", "1").await;
    put(&a, "/v1/kv/b", "1").await;
    let (_, idx, _) = get(&a, "/v1/kv/a").await;
    let watcher = spawn_get(&a, &format!("/v1/kv/a?index={idx}&wait=30s"));
    // --- step: writes to other keys do not release it
    for i in 0..5 {
        put(&a, "/v1/kv/b", format!("{i}")).await;
        put(&a, &format!("/v1/kv/c/{i}"), "x").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!watcher.is_finished(), "woke on unrelated writes");
    // --- step: a write to the key releases it promptly
    let before = Instant::now();
    put(&a, "/v1/kv/a", "2").await;
    let (status, new_idx, at) = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(new_idx > idx);
    // Reported, not asserted as a timing: CI machines vary.
    eprintln!(
        "watch released {:?} after the write returned",
        at.saturating_duration_since(before)
    );
    a.shutdown().await;
}

#[tokio::test]
async fn prefix_and_missing_key_watches() {
    let a = TestAgent::start().await;
    let (_, idx, _) = get(&a, "/v1/kv/app/?recurse").await;
    assert!(idx >= 1);
    let prefix = spawn_get(&a, &format!("/v1/kv/app/?recurse&index={idx}&wait=30s"));
    let missing = spawn_get(&a, &format!("/v1/kv/later?index={idx}&wait=30s"));
    put(&a, "/v1/kv/other", "x").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!prefix.is_finished() && !missing.is_finished());
    put(&a, "/v1/kv/app/x", "1").await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), prefix)
            .await
            .unwrap()
            .unwrap()
            .0,
        200
    );
    assert!(
        !missing.is_finished(),
        "the missing key's watcher is unaffected"
    );
    put(&a, "/v1/kv/later", "1").await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), missing)
            .await
            .unwrap()
            .unwrap()
            .0,
        200
    );
    // --- step: deleting the newest key under a prefix moves the index forward, not back
    let (_, before, _) = get(&a, "/v1/kv/app/?recurse").await;
    put(&a, "/v1/kv/app/y", "1").await;
    delete(&a, "/v1/kv/app/y").await;
    let (_, after, _) = get(&a, "/v1/kv/app/?recurse").await;
    assert!(after > before);
    a.shutdown().await;
}

#[tokio::test]
async fn service_watch_ignores_other_services() {
    let a = TestAgent::start().await;
    let reg = |name: &str, node: &str| {
        json!({"Node": node, "Address": "10.1.1.1", "Service": {"Service": name, "Port": 1}})
            .to_string()
    };
    put(&a, "/v1/catalog/register", reg("web", "n1")).await;
    let (_, idx, _) = get(&a, "/v1/health/service/web").await;
    let watcher = spawn_get(&a, &format!("/v1/health/service/web?index={idx}&wait=30s"));
    let cat_watcher = spawn_get(&a, &format!("/v1/catalog/service/web?index={idx}&wait=30s"));
    put(&a, "/v1/catalog/register", reg("db", "n2")).await;
    // Re-registering web unchanged is not a change either.
    put(&a, "/v1/catalog/register", reg("web", "n1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !watcher.is_finished() && !cat_watcher.is_finished(),
        "woke on unrelated or idempotent writes"
    );
    put(&a, "/v1/catalog/register", reg("web", "n3")).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .unwrap()
            .unwrap()
            .1
            > idx
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(5), cat_watcher)
            .await
            .unwrap()
            .unwrap()
            .1
            > idx
    );
    a.shutdown().await;
}

#[tokio::test]
async fn wait_times_out_with_same_index() {
    let a = TestAgent::start().await;
    put(&a, "/v1/kv/k", "1").await;
    let (_, idx, _) = get(&a, "/v1/kv/k").await;
    let started = Instant::now();
    let (status, new_idx, _) = get(&a, &format!("/v1/kv/k?index={idx}&wait=300ms")).await;
    assert_eq!((status, new_idx), (200, idx));
    assert!(started.elapsed() >= Duration::from_millis(300));
    a.shutdown().await;
}
