//! `consulkv://host:port/prefix` and `consulkv-unix:///sock/path:/prefix`: each
//! service as one Consul KV key `<prefix>/<Name>/<ID>` whose value is `ip:port`
//! (IPv6 in brackets). Tags and attributes are not written, as upstream.
//!
//! Deregister deletes the key; refresh does nothing (Consul KV has no TTL) and
//! `services()` lists nothing, so `-cleanup` cannot sweep KV entries (as upstream).
//!
//! Unlike upstream, a URI without a path (`consulkv://host`) does not crash on the
//! first registration: the prefix is empty and keys are `<Name>/<ID>`. Slashes
//! around the prefix are trimmed (`/a/b/` → `a/b`).
//!
//! The agent address, token and TLS settings follow `consul://` (see
//! [`super::consul`]); there is no `consulkv-tls://`, as upstream, but an
//! `https://` `CONSUL_HTTP_ADDR` or `CONSUL_HTTP_SSL=true` switch to HTTPS.

use async_trait::async_trait;
use hyper::Method;

use super::consul::{AgentAddr, agent_transport, status_leader};
use super::http::{Body, HttpTransport, escape_path};
use super::uri::RegistryUri;
use super::{Backend, BackendError};
use crate::service::Service;

/// Writes services as Consul KV entries.
#[derive(Debug)]
pub struct ConsulKvBackend {
    http: HttpTransport,
    /// Key prefix without leading or trailing `/`; may be empty.
    prefix: String,
}

impl ConsulKvBackend {
    /// The backend of a `consulkv://` or `consulkv-unix://` URI; `env` looks up
    /// `CONSUL_*` variables.
    pub fn new(
        uri: &RegistryUri,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConsulKvBackend, BackendError> {
        let addr = if uri.scheme == "consulkv-unix" {
            AgentAddr::Unix(uri.unix_socket())
        } else {
            AgentAddr::Host {
                host: &uri.host,
                tls: false,
            }
        };
        Ok(ConsulKvBackend {
            http: agent_transport("consulkv", addr, env)?,
            prefix: uri.key_prefix().to_string(),
        })
    }

    /// The key of a service: `<prefix>/<Name>/<ID>`, or `<Name>/<ID>` without a prefix.
    pub fn key(&self, service: &Service) -> String {
        if self.prefix.is_empty() {
            format!("{}/{}", service.name, service.id)
        } else {
            format!("{}/{}/{}", self.prefix, service.name, service.id)
        }
    }

    fn kv_path(&self, service: &Service) -> String {
        format!("/v1/kv/{}", escape_path(&self.key(service)))
    }
}

#[async_trait]
impl Backend for ConsulKvBackend {
    async fn ping(&self) -> Result<String, BackendError> {
        let leader = status_leader(&self.http).await?;
        Ok(format!("consulkv: current leader {leader}"))
    }

    async fn register(&self, service: &Service) -> Result<(), BackendError> {
        let value = service.host_port().into_bytes();
        self.http
            .call(Method::PUT, &self.kv_path(service), Body::Raw(value))
            .await
            .map(drop)
    }

    async fn deregister(&self, service: &Service) -> Result<(), BackendError> {
        self.http
            .call(Method::DELETE, &self.kv_path(service), Body::Empty)
            .await
            .map(drop)
    }

    async fn refresh(&self, _service: &Service) -> Result<(), BackendError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(uri: &str) -> ConsulKvBackend {
        ConsulKvBackend::new(&RegistryUri::parse(uri).unwrap(), &|_| None).unwrap()
    }

    fn service() -> Service {
        Service {
            id: "h:web:80".into(),
            name: "web".into(),
            ip: "::1".into(),
            port: 80,
            ..Service::default()
        }
    }

    #[test]
    fn keys_follow_the_prefix() {
        assert_eq!(
            backend("consulkv://h/services").key(&service()),
            "services/web/h:web:80"
        );
        assert_eq!(
            backend("consulkv://h/a/b/").key(&service()),
            "a/b/web/h:web:80"
        );
        // Upstream panics here; we write at the root.
        assert_eq!(backend("consulkv://h").key(&service()), "web/h:web:80");
        assert_eq!(backend("consulkv://h/").key(&service()), "web/h:web:80");
    }

    #[test]
    fn unix_uri_splits_socket_and_prefix() {
        let b = backend("consulkv-unix:///tmp/c.sock:/services");
        assert_eq!(b.http.addr(), "unix:///tmp/c.sock");
        assert_eq!(b.key(&service()), "services/web/h:web:80");
        let b = backend("consulkv-unix:///tmp/c.sock");
        assert_eq!(b.http.addr(), "unix:///tmp/c.sock");
        assert_eq!(b.key(&service()), "web/h:web:80");
        assert!(RegistryUri::parse("consulkv-unix://").is_err());
    }
}
