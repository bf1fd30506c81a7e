//! `etcd://` against a real etcd 3.4 (Debian `etcd-server`) started by the test on
//! loopback ports with a temporary data dir, with its v2 API off (3.4's default):
//! the backend speaks v3 (gliderlabs/registrator#681). Keys are read back through
//! the v3 JSON API (`/v3/kv/range`).
//!
//! A missing `etcd` binary fails these tests (no skip): install it with
//! `apt-get install etcd-server`.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use registrator::backend;
use serde_json::json;
use tokio::process::{Child, Command};

use super::*;

/// A running etcd; killed on drop.
struct Etcd {
    /// `127.0.0.1:<client port>`.
    addr: String,
    http: reqwest::Client,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Etcd {
    async fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (closed_port(), closed_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start etcd ({e}): these tests need etcd 3.4+ on PATH; \
                     install it with `apt-get install etcd-server`"
                )
            });
        let etcd = Etcd {
            addr: format!("127.0.0.1:{client}"),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            _child: child,
            _dir: dir,
        };
        // --- step: wait for /health
        eventually("etcd /health", || async {
            let r = etcd.http.get(etcd.url("/health")).send().await.ok()?;
            let body: serde_json::Value = r.json().await.ok()?;
            (body["health"] == "true").then_some(())
        })
        .await;
        etcd
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The value of `key` and its lease (0 = none), or `None` when absent.
    async fn get(&self, key: &str) -> Option<(String, i64)> {
        let answer: serde_json::Value = self
            .http
            .post(self.url("/v3/kv/range"))
            .json(&json!({ "key": B64.encode(key) }))
            .send()
            .await
            .expect("range")
            .json()
            .await
            .expect("range answer");
        let kv = answer["kvs"].as_array()?.first()?.clone();
        let value =
            String::from_utf8(B64.decode(kv["value"].as_str().unwrap_or("")).unwrap()).unwrap();
        let lease = kv["lease"]
            .as_str()
            .map_or(0, |l| l.parse().expect("lease id"));
        Some((value, lease))
    }
}

/// What this test does:
/// - pings (`etcd: version 3.x ... v3 API at /v3`);
/// - registers (no TTL) IPv4 and IPv6 services and reads `ip:port` / `[ip]:port`
///   at `/services/<Name>/<ID>`, with no lease;
/// - refresh re-writes a key deleted behind its back;
/// - deregister deletes the key; `services()` lists nothing.
#[tokio::test]
async fn put_refresh_delete() {
    let etcd = Etcd::start().await;
    let b = backend::from_uri(&format!("etcd://{}/services", etcd.addr)).unwrap();
    let text = b.ping().await.unwrap();
    assert!(text.starts_with("etcd: version 3."), "{text}");
    assert!(text.ends_with("v3 API at /v3"), "{text}");

    // --- step: register
    let v4 = service("host1:web.1:80", "web", "10.0.0.5", 32768);
    let v6 = service("host1:web.2:80", "web", "fd00::5", 32769);
    b.register(&v4).await.unwrap();
    b.register(&v6).await.unwrap();
    assert_eq!(
        etcd.get("/services/web/host1:web.1:80").await,
        Some(("10.0.0.5:32768".to_string(), 0))
    );
    assert_eq!(
        etcd.get("/services/web/host1:web.2:80").await,
        Some(("[fd00::5]:32769".to_string(), 0))
    );

    // --- step: refresh re-writes
    etcd.http
        .post(etcd.url("/v3/kv/deleterange"))
        .json(&json!({ "key": B64.encode("/services/web/host1:web.1:80") }))
        .send()
        .await
        .unwrap();
    assert_eq!(etcd.get("/services/web/host1:web.1:80").await, None);
    b.refresh(&v4).await.unwrap();
    assert_eq!(
        etcd.get("/services/web/host1:web.1:80").await,
        Some(("10.0.0.5:32768".to_string(), 0))
    );

    // --- step: deregister
    b.deregister(&v4).await.unwrap();
    assert_eq!(etcd.get("/services/web/host1:web.1:80").await, None);
    assert!(etcd.get("/services/web/host1:web.2:80").await.is_some());
    assert!(b.services().await.unwrap().is_empty());
}

/// What this test does:
/// - registers two services with `-ttl 2`: both keys carry a lease;
/// - refreshes one of them every 500 ms for 4 s: it stays, the other expires;
/// - stops refreshing: the refreshed one expires too;
/// - refresh after expiry writes it again on a fresh lease; deregister removes it.
#[tokio::test]
async fn ttl_keys_expire_unless_refreshed() {
    let etcd = Etcd::start().await;
    let b = backend::from_uri(&format!("etcd://{}/ttl", etcd.addr)).unwrap();
    let mut kept = service("host1:kept:80", "kept", "10.0.0.1", 80);
    let mut dropped = service("host1:dropped:80", "dropped", "10.0.0.2", 80);
    kept.ttl = 2;
    dropped.ttl = 2;
    b.register(&kept).await.unwrap();
    b.register(&dropped).await.unwrap();
    let (value, lease) = etcd.get("/ttl/kept/host1:kept:80").await.unwrap();
    assert_eq!(value, "10.0.0.1:80");
    assert_ne!(lease, 0, "a TTL'd key has a lease");
    assert!(etcd.get("/ttl/dropped/host1:dropped:80").await.is_some());

    // --- step: refresh one for twice the TTL
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.refresh(&kept).await.unwrap();
    }
    assert!(
        etcd.get("/ttl/kept/host1:kept:80").await.is_some(),
        "refreshed key expired"
    );
    eventually("the unrefreshed key to expire", || async {
        etcd.get("/ttl/dropped/host1:dropped:80")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // --- step: stop refreshing
    eventually(
        "the refreshed key to expire once refreshes stop",
        || async {
            etcd.get("/ttl/kept/host1:kept:80")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;

    // --- step: refresh after expiry comes back on a new lease
    b.refresh(&kept).await.unwrap();
    let (_, new_lease) = etcd.get("/ttl/kept/host1:kept:80").await.unwrap();
    assert_ne!(new_lease, 0);
    assert_ne!(new_lease, lease);
    b.deregister(&kept).await.unwrap();
    assert_eq!(etcd.get("/ttl/kept/host1:kept:80").await, None);
}

/// What this test does: an etcd URI on a closed port is `Unreachable` (and is
/// not contacted while the backend is built, unlike upstream's factory).
#[tokio::test]
async fn unreachable_etcd() {
    let port = closed_port();
    let b = backend::from_uri(&format!("etcd://127.0.0.1:{port}/services")).unwrap();
    let err = b.ping().await.unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "etcd at 127.0.0.1:{port} is unreachable (connection refused); is etcd running"
        )),
        "{err}"
    );
    let err = b
        .register(&service("a", "b", "10.0.0.1", 1))
        .await
        .unwrap_err();
    assert!(err.is_unreachable(), "{err:?}");
}
