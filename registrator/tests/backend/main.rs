//! Registry backend suite: every backend against a real server. Consul and
//! Consul KV against an in-process registry-node (`TestAgent`), reached over TCP,
//! a unix socket and TLS (the last two through small relays in front of the
//! agent's TCP port); etcd against a real `etcd` 3.4 process this suite starts
//! (Debian package `etcd-server`). One test binary (STYLE.md practice 10).

mod t10_consul;
mod t20_consulkv;
mod t30_transports;
mod t40_ping_retry;
mod t50_etcd;

use std::collections::BTreeMap;
use std::time::Duration;

use registrator::service::Service;
use registry_node::testing::TestAgent;
use serde_json::Value;

/// A service as the mapping would produce it.
pub fn service(id: &str, name: &str, ip: &str, port: u16) -> Service {
    Service {
        id: id.to_string(),
        name: name.to_string(),
        ip: ip.to_string(),
        port,
        ..Service::default()
    }
}

/// An environment lookup over fixed pairs (the process environment stays untouched).
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// GET a path of the agent; returns status and parsed JSON (`Null` for an empty body).
pub async fn get_json(a: &TestAgent, path: &str) -> (u16, Value) {
    let r = a.http.get(a.url(path)).send().await.expect("GET");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    };
    (status, value)
}

/// GET a path of the agent as text.
pub async fn get_text(a: &TestAgent, path: &str) -> (u16, String) {
    let r = a.http.get(a.url(path)).send().await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
