//! `etcd://host:port/prefix`: each service as an etcd key `<prefix>/<Name>/<ID>`
//! whose value is `ip:port` (IPv6 in brackets), written through etcd's **v3** API.
//!
//! Upstream only speaks the v2 API, which etcd 3.4 turns off by default and 3.6
//! removed (gliderlabs/registrator#681). Instead of a gRPC client (and protoc) this
//! uses the v3 API's JSON gateway that every etcd ≥ 3.2 serves on its client port:
//! `POST <api>/kv/put`, `/kv/deleterange`, `/lease/grant`, `/lease/keepalive`,
//! `/lease/revoke`, keys and values base64-encoded. `<api>` is `/v3` from etcd 3.4
//! on, `/v3beta` on 3.3 and `/v3alpha` before; it is chosen once from
//! `GET /version`.
//!
//! With `-ttl N` (N > 0) a key is attached to a lease of N seconds, so it
//! disappears when registrator stops refreshing it; `refresh` keeps the lease
//! alive and re-writes the value (a fresh lease if the old one expired). Without a
//! TTL, `refresh` re-writes the value, as upstream's `Refresh` re-set it.
//!
//! Keys keep upstream's v2 shape (`/services/web/h:web:80` for
//! `etcd://host/services`; `/web/h:web:80` without a path); a trailing `/` on the
//! prefix is dropped rather than doubled. No host means `127.0.0.1:2379`. Unlike
//! upstream, nothing is contacted while the backend is built, so
//! `-retry-attempts` works for etcd too.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::http::{Body, HttpTransport, Target};
use super::uri::RegistryUri;
use super::{Backend, BackendError};
use crate::service::Service;

/// Client address when the URI names none.
pub const DEFAULT_ADDR: &str = "127.0.0.1:2379";
const DEFAULT_PORT: u16 = 2379;
const HINT: &str =
    "is etcd running and serving clients there? (etcd://host:port, default 127.0.0.1:2379)";

/// `GET /version`.
#[derive(Debug, Deserialize)]
struct Version {
    #[serde(rename = "etcdserver", default)]
    server: String,
    #[serde(rename = "etcdcluster", default)]
    cluster: String,
}

/// Writes services as etcd v3 keys.
#[derive(Debug)]
pub struct EtcdBackend {
    http: HttpTransport,
    /// `/prefix` without a trailing `/`; may be empty.
    prefix: String,
    /// The JSON gateway's path prefix (`/v3`), learnt from `/version` on first use.
    api: OnceCell<&'static str>,
    /// The lease each TTL'd key is attached to. A std mutex: held for a map
    /// operation only, never across an await.
    leases: Mutex<HashMap<String, i64>>,
}

impl EtcdBackend {
    /// The backend of an `etcd://` URI. Contacts nothing.
    pub fn new(uri: &RegistryUri) -> Result<EtcdBackend, BackendError> {
        let addr = uri
            .host_with_port(DEFAULT_PORT)
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        Ok(EtcdBackend {
            http: HttpTransport::new("etcd", Target::Tcp { addr }, HINT),
            prefix: uri.path.trim_end_matches('/').to_string(),
            api: OnceCell::new(),
            leases: Mutex::new(HashMap::new()),
        })
    }

    /// The key of a service: `<prefix>/<Name>/<ID>`.
    pub fn key(&self, service: &Service) -> String {
        format!("{}/{}/{}", self.prefix, service.name, service.id)
    }

    async fn version(&self) -> Result<Version, BackendError> {
        self.http
            .call_json(Method::GET, "/version", Body::Empty)
            .await
    }

    /// The gateway prefix, asking `/version` the first time.
    async fn api(&self) -> Result<&'static str, BackendError> {
        self.api
            .get_or_try_init(|| async { Ok(gateway_prefix(&self.version().await?)) })
            .await
            .copied()
    }

    /// `POST <api><path>` with a JSON body, JSON answer.
    async fn post(&self, path: &str, body: Value) -> Result<Value, BackendError> {
        let url = format!("{}{path}", self.api().await?);
        self.http
            .call_json(Method::POST, &url, Body::json(&body))
            .await
    }

    async fn put(&self, key: &str, value: &str, lease: Option<i64>) -> Result<(), BackendError> {
        let mut body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
        if let Some(lease) = lease {
            body["lease"] = json!(lease.to_string());
        }
        self.post("/kv/put", body).await.map(drop)
    }

    async fn grant(&self, ttl: u64) -> Result<i64, BackendError> {
        let answer = self.post("/lease/grant", json!({ "TTL": ttl })).await?;
        int_field(&answer, "ID").ok_or_else(|| BackendError::BadResponse {
            backend: "etcd",
            addr: self.http.addr(),
            action: "POST /lease/grant".into(),
            reason: format!("no lease ID in {answer}"),
        })
    }

    /// Whether the lease was still alive (and is now renewed).
    async fn keepalive(&self, lease: i64) -> Result<bool, BackendError> {
        let answer = self
            .post("/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        // A stream answer: `{"result":{..,"TTL":"2"}}`; an expired lease has no TTL.
        Ok(answer
            .get("result")
            .and_then(|r| int_field(r, "TTL"))
            .is_some_and(|ttl| ttl > 0))
    }

    /// Revokes a lease nobody uses any more; failures only cost its expiry.
    async fn revoke_quietly(&self, lease: i64) {
        if let Err(e) = self
            .post("/lease/revoke", json!({ "ID": lease.to_string() }))
            .await
        {
            tracing::debug!(lease, error = %e, "etcd lease revoke failed");
        }
    }

    /// Writes a TTL'd key on a fresh lease; revokes the lease it replaces.
    async fn put_with_new_lease(&self, key: &str, service: &Service) -> Result<(), BackendError> {
        let lease = self.grant(service.ttl).await?;
        self.put(key, &service.host_port(), Some(lease)).await?;
        let old = self.lock_leases().insert(key.to_string(), lease);
        if let Some(old) = old.filter(|old| *old != lease) {
            self.revoke_quietly(old).await;
        }
        Ok(())
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // A panic while holding it cannot leave the map inconsistent.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    async fn ping(&self) -> Result<String, BackendError> {
        let version = self.version().await?;
        let api = *self
            .api
            .get_or_init(|| async { gateway_prefix(&version) })
            .await;
        Ok(format!(
            "etcd: version {} (cluster {}), v3 API at {api}",
            version.server, version.cluster
        ))
    }

    async fn register(&self, service: &Service) -> Result<(), BackendError> {
        let key = self.key(service);
        if service.ttl > 0 {
            return self.put_with_new_lease(&key, service).await;
        }
        self.put(&key, &service.host_port(), None).await?;
        let old = self.lock_leases().remove(&key);
        if let Some(old) = old {
            self.revoke_quietly(old).await;
        }
        Ok(())
    }

    async fn deregister(&self, service: &Service) -> Result<(), BackendError> {
        let key = self.key(service);
        self.post("/kv/deleterange", json!({ "key": B64.encode(&key) }))
            .await?;
        let lease = self.lock_leases().remove(&key);
        if let Some(lease) = lease {
            self.revoke_quietly(lease).await;
        }
        Ok(())
    }

    async fn refresh(&self, service: &Service) -> Result<(), BackendError> {
        if service.ttl == 0 {
            return self.register(service).await;
        }
        let key = self.key(service);
        let lease = self.lock_leases().get(&key).copied();
        match lease {
            Some(lease) if self.keepalive(lease).await? => {
                // Re-write the value too, as upstream's refresh did: it brings back
                // a key someone deleted.
                self.put(&key, &service.host_port(), Some(lease)).await
            }
            _ => self.put_with_new_lease(&key, service).await,
        }
    }
}

/// `/v3` from etcd 3.4 on, `/v3beta` on 3.3, `/v3alpha` on 3.2 and before.
fn gateway_prefix(version: &Version) -> &'static str {
    // `etcdcluster` is "not_decided" while a cluster forms; the server version then says it.
    let text = if version.cluster.starts_with(|c: char| c.is_ascii_digit()) {
        &version.cluster
    } else {
        &version.server
    };
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(3), Some(minor)) if minor <= 2 => "/v3alpha",
        (Some(3), Some(3)) => "/v3beta",
        _ => "/v3",
    }
}

/// An int64 field, which the gateway encodes as a JSON string (`"ID":"123"`).
fn int_field(value: &Value, name: &str) -> Option<i64> {
    match value.get(name)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(server: &str, cluster: &str) -> Version {
        Version {
            server: server.into(),
            cluster: cluster.into(),
        }
    }

    #[test]
    fn gateway_prefix_follows_the_cluster_version() {
        assert_eq!(gateway_prefix(&version("3.4.23", "3.4.0")), "/v3");
        assert_eq!(gateway_prefix(&version("3.5.9", "3.5.0")), "/v3");
        assert_eq!(gateway_prefix(&version("3.3.1", "3.3.0")), "/v3beta");
        assert_eq!(gateway_prefix(&version("3.2.0", "3.2.0")), "/v3alpha");
        assert_eq!(gateway_prefix(&version("3.3.1", "not_decided")), "/v3beta");
        assert_eq!(gateway_prefix(&version("", "")), "/v3");
    }

    #[test]
    fn keys_keep_upstreams_v2_shape() {
        let service = Service {
            id: "h:web:80".into(),
            name: "web".into(),
            ip: "10.0.0.1".into(),
            port: 80,
            ..Service::default()
        };
        let key = |uri: &str| {
            EtcdBackend::new(&RegistryUri::parse(uri).unwrap())
                .unwrap()
                .key(&service)
        };
        assert_eq!(key("etcd://h:2379/services"), "/services/web/h:web:80");
        assert_eq!(key("etcd://h/services/"), "/services/web/h:web:80");
        assert_eq!(key("etcd://"), "/web/h:web:80");
        let b = EtcdBackend::new(&RegistryUri::parse("etcd://").unwrap()).unwrap();
        assert_eq!(b.http.addr(), "127.0.0.1:2379");
        let b = EtcdBackend::new(&RegistryUri::parse("etcd://e1").unwrap()).unwrap();
        assert_eq!(b.http.addr(), "e1:2379");
    }

    #[test]
    fn int64_fields_parse_as_strings_or_numbers() {
        assert_eq!(
            int_field(&json!({"ID": "2324035523345373704"}), "ID"),
            Some(2324035523345373704)
        );
        assert_eq!(int_field(&json!({"TTL": 5}), "TTL"), Some(5));
        assert_eq!(int_field(&json!({}), "TTL"), None);
    }
}
