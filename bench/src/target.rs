//! The two systems under test and how each one spells a KV put, get and watch
//! over HTTP. Scenarios only talk to a [`Target`], so both are driven by the
//! exact same load loops.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Client, StatusCode};

/// Consul's blocking-query index header.
pub const CONSUL_INDEX: &str = "X-Consul-Index";

/// Prefix of every key the tool writes, on both targets.
pub const KEY_PREFIX: &str = "bench/";

/// Which API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// registry-node (or Consul): HTTP API v1.
    Registry,
    /// etcd's grpc-gateway JSON API.
    Etcd,
}

/// A system under test: its base URL and, for etcd, the gateway path prefix.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which API this target speaks.
    pub kind: Kind,
    /// Base URL without trailing slash.
    pub base: String,
    /// etcd gateway prefix: `/v3` on etcd >= 3.4, `/v3beta` on 3.3,
    /// `/v3alpha` on 3.2. Unused for the registry.
    api: &'static str,
    /// Version string reported by the server, when it tells.
    pub version: Option<String>,
    /// etcd: send ranges with `serializable: true` (local read, no ReadIndex
    /// round), closer to Consul's `?stale` than to its default mode.
    serializable: bool,
}

/// Build a keep-alive HTTP/1 client. Proxies are ignored: the targets are
/// local and an inherited `HTTP_PROXY` would silently measure the proxy.
pub fn http_client(pool_idle: usize, timeout: Option<Duration>) -> Result<Client> {
    let mut builder = Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool_idle)
        .pool_idle_timeout(Duration::from_secs(300));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().context("building the HTTP client")
}

impl Target {
    /// Check that a registry node answers on `base`.
    pub async fn registry(base: &str) -> Result<Target> {
        let base = base.trim_end_matches('/').to_owned();
        let client = http_client(1, Some(Duration::from_secs(5)))?;
        // Any HTTP answer (404 for a missing key included) proves the API is up.
        client
            .get(format!("{base}/v1/kv/{KEY_PREFIX}probe"))
            .send()
            .await
            .with_context(|| format!("registry at {base} is not reachable"))?;
        Ok(Target {
            kind: Kind::Registry,
            base,
            api: "",
            version: None,
            serializable: false,
        })
    }

    /// Check that etcd answers on `base` and find its gateway prefix.
    pub async fn etcd(base: &str, serializable: bool) -> Result<Target> {
        let base = base.trim_end_matches('/').to_owned();
        let client = http_client(1, Some(Duration::from_secs(5)))?;
        let version = client
            .get(format!("{base}/version"))
            .send()
            .await
            .with_context(|| format!("etcd at {base} is not reachable"))?
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| {
                v.get("etcdserver")
                    .and_then(|s| s.as_str().map(str::to_owned))
            });
        // Probe instead of parsing the version: 3.4 serves both /v3 and
        // /v3beta, 3.3 only /v3beta, 3.2 only /v3alpha, 3.5+ only /v3.
        for api in ["/v3", "/v3beta", "/v3alpha"] {
            let resp = client
                .post(format!("{base}{api}/kv/range"))
                .body(range_body(&format!("{KEY_PREFIX}probe"), false))
                .send()
                .await?;
            if resp.status().is_success() {
                return Ok(Target {
                    kind: Kind::Etcd,
                    base,
                    api,
                    version,
                    serializable,
                });
            }
        }
        bail!("etcd at {base} (version {version:?}) serves none of /v3, /v3beta, /v3alpha kv/range")
    }

    /// Short name for the output tables.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Registry => "registry",
            Kind::Etcd => "etcd",
        }
    }

    /// etcd gateway prefix in use (empty for the registry).
    pub fn api_prefix(&self) -> &'static str {
        self.api
    }

    /// Whether etcd ranges are sent as serializable reads.
    pub fn serializable(&self) -> bool {
        self.serializable
    }

    /// Write `value` under `key`. Precomputed request bodies are passed in so
    /// the load loop does not spend the client's CPU on encoding.
    pub async fn put(&self, client: &Client, key: &str, value: &PreparedValue) -> Result<()> {
        match self.kind {
            Kind::Registry => {
                let resp = client
                    .put(format!("{}/v1/kv/{key}", self.base))
                    .body(value.raw.clone())
                    .send()
                    .await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                // Consul answers `true`, or `false` when a CAS/lock condition failed.
                if status != StatusCode::OK || body.trim_ascii() != b"true" {
                    bail!("PUT {key}: {status} {}", String::from_utf8_lossy(&body));
                }
                Ok(())
            }
            Kind::Etcd => {
                let body = format!(r#"{{"key":"{}","value":"{}"}}"#, B64.encode(key), value.b64);
                let resp = client
                    .post(format!("{}{}/kv/put", self.base, self.api))
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                if status != StatusCode::OK {
                    bail!("kv/put {key}: {status} {}", String::from_utf8_lossy(&body));
                }
                Ok(())
            }
        }
    }

    /// Read `key`; a missing key counts as an error because the scenario preloaded it.
    pub async fn get(&self, client: &Client, key: &str) -> Result<()> {
        match self.kind {
            Kind::Registry => {
                let resp = client
                    .get(format!("{}/v1/kv/{key}", self.base))
                    .send()
                    .await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                if status != StatusCode::OK {
                    bail!("GET {key}: {status} {}", String::from_utf8_lossy(&body));
                }
                Ok(())
            }
            Kind::Etcd => {
                let resp = client
                    .post(format!("{}{}/kv/range", self.base, self.api))
                    .body(range_body(key, self.serializable))
                    .send()
                    .await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                // The gateway omits `kvs` (and `count`) entirely when nothing matched;
                // a substring test avoids parsing JSON on the measuring client.
                if status != StatusCode::OK || !contains(&body, b"\"kvs\"") {
                    bail!(
                        "kv/range {key}: {status} {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                Ok(())
            }
        }
    }

    /// Registry only: non-blocking GET of `key`, returning its `X-Consul-Index`.
    pub async fn consul_index(&self, client: &Client, key: &str) -> Result<u64> {
        let resp = client
            .get(format!("{}/v1/kv/{key}", self.base))
            .send()
            .await?;
        let index = header_index(&resp)?;
        resp.bytes().await?;
        Ok(index)
    }

    /// URL of the etcd watch stream.
    pub fn etcd_watch_url(&self) -> String {
        format!("{}{}/watch", self.base, self.api)
    }
}

/// A value encoded once for both APIs.
#[derive(Debug, Clone)]
pub struct PreparedValue {
    /// Raw bytes for the registry's PUT body.
    pub raw: Vec<u8>,
    /// Base64 for etcd's JSON body.
    pub b64: String,
}

impl PreparedValue {
    /// A printable value of `size` bytes.
    pub fn new(size: usize) -> PreparedValue {
        let raw: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let b64 = B64.encode(&raw);
        PreparedValue { raw, b64 }
    }
}

/// `{"key": base64}` for etcd's range request.
pub fn range_body(key: &str, serializable: bool) -> String {
    if serializable {
        format!(r#"{{"key":"{}","serializable":true}}"#, B64.encode(key))
    } else {
        format!(r#"{{"key":"{}"}}"#, B64.encode(key))
    }
}

/// Body of an etcd watch-create request for `key`.
pub fn watch_body(key: &str) -> String {
    format!(r#"{{"create_request":{{"key":"{}"}}}}"#, B64.encode(key))
}

/// Parse `X-Consul-Index` from a response.
pub fn header_index(resp: &reqwest::Response) -> Result<u64> {
    let value = resp
        .headers()
        .get(CONSUL_INDEX)
        .ok_or_else(|| anyhow!("{} header missing ({})", CONSUL_INDEX, resp.status()))?;
    value
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad {CONSUL_INDEX} header {value:?}"))
}

/// Byte-substring test.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Key name for key number `i`.
pub fn key_name(i: usize) -> String {
    format!("{KEY_PREFIX}{i}")
}
