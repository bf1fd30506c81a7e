//! `consul://`, `consul-tls://` and `consul-unix://`: services registered on the
//! local Consul (or registry-node) agent.
//!
//! | call | request |
//! |---|---|
//! | ping | `GET /v1/status/leader` |
//! | register | `PUT /v1/agent/service/register` (payload: [`crate::checks::registration`]) |
//! | deregister | `PUT /v1/agent/service/deregister/<ID>` |
//! | refresh | nothing (Consul has no service TTL; `-ttl` does nothing here, as upstream) |
//! | services | `GET /v1/agent/services` (this agent's services only) |
//! | set_docker_health | `PUT /v1/agent/check/update/<ID>:docker-health` (passing only when healthy) |
//!
//! The address comes from the URI's host, else `CONSUL_HTTP_ADDR`, else
//! `127.0.0.1:8500`; the ACL token from `CONSUL_HTTP_TOKEN` (or the file named by
//! `CONSUL_HTTP_TOKEN_FILE`). HTTPS is used for `consul-tls://`, for an `https://`
//! `CONSUL_HTTP_ADDR` and with `CONSUL_HTTP_SSL=true`, trusting `CONSUL_CACERT`
//! (or `CONSUL_CAPATH`, else the system roots) and presenting
//! `CONSUL_CLIENT_CERT`/`CONSUL_CLIENT_KEY` when both are set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use hyper::Method;
use registry_api::AgentService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::http::{Body, HttpTransport, Target, escape_path};
use super::uri::{RegistryUri, with_default_port};
use super::{Backend, BackendError, DockerHealth};
use crate::checks;
use crate::service::Service;

/// Agent address when neither the URI nor `CONSUL_HTTP_ADDR` names one.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8500";
/// Port added to a host given without one over HTTP (Go's client would use 80).
const DEFAULT_HTTP_PORT: u16 = 8500;
/// Port added to a host given without one over HTTPS (Consul's `ports.https` habit).
const DEFAULT_HTTPS_PORT: u16 = 8501;

const HINT_TCP: &str =
    "is the agent running? (set the address in the registry URI or CONSUL_HTTP_ADDR)";
const HINT_UNIX: &str = "is the agent running and listening on that socket?";

/// Registers services on a Consul agent.
#[derive(Debug)]
pub struct ConsulBackend {
    http: HttpTransport,
}

impl ConsulBackend {
    /// The backend of a `consul://`, `consul-tls://` or `consul-unix://` URI; `env`
    /// looks up `CONSUL_*` variables.
    pub fn new(
        uri: &RegistryUri,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConsulBackend, BackendError> {
        let addr = match uri.scheme.as_str() {
            "consul-unix" => AgentAddr::Unix(uri.unix_socket()),
            scheme => AgentAddr::Host {
                host: &uri.host,
                tls: scheme == "consul-tls",
            },
        };
        Ok(ConsulBackend {
            http: agent_transport("consul", addr, env)?,
        })
    }
}

#[async_trait]
impl Backend for ConsulBackend {
    async fn ping(&self) -> Result<String, BackendError> {
        let leader = status_leader(&self.http).await?;
        Ok(format!("consul: current leader {leader}"))
    }

    async fn register(&self, service: &Service) -> Result<(), BackendError> {
        let registration =
            crate::checks::registration(service).map_err(|e| BackendError::InvalidService {
                id: service.id.clone(),
                reason: e.to_string(),
            })?;
        let body = Body::json(&registration);
        self.http
            .call(Method::PUT, "/v1/agent/service/register", body)
            .await
            .map(drop)
    }

    async fn deregister(&self, service: &Service) -> Result<(), BackendError> {
        let path = format!("/v1/agent/service/deregister/{}", escape_path(&service.id));
        self.http
            .call(Method::PUT, &path, Body::Empty)
            .await
            .map(drop)
    }

    async fn refresh(&self, _service: &Service) -> Result<(), BackendError> {
        Ok(())
    }

    fn lists_services(&self) -> bool {
        true
    }

    async fn services(&self) -> Result<Vec<Service>, BackendError> {
        let services: BTreeMap<String, AgentService> = self
            .http
            .call_json(Method::GET, "/v1/agent/services", Body::Empty)
            .await?;
        Ok(services
            .into_values()
            .map(|s| Service {
                id: s.id,
                name: s.service,
                ip: s.address,
                port: s.port,
                tags: s.tags,
                attrs: s.meta,
                ..Service::default()
            })
            .collect())
    }

    async fn set_docker_health(
        &self,
        service: &Service,
        health: DockerHealth,
    ) -> Result<(), BackendError> {
        let path = format!(
            "/v1/agent/check/update/{}",
            escape_path(&checks::docker_health_check_id(&service.id))
        );
        let body = Body::json(&CheckUpdate {
            status: checks::docker_health_status(health),
            output: format!("docker health: {}", docker_health_name(health)),
        });
        self.http.call(Method::PUT, &path, body).await.map(drop)
    }
}

/// Body of `PUT /v1/agent/check/update/:id`.
#[derive(serde::Serialize)]
struct CheckUpdate {
    #[serde(rename = "Status")]
    status: &'static str,
    #[serde(rename = "Output")]
    output: String,
}

/// Docker's word for a health state (`State.Health.Status`).
fn docker_health_name(health: DockerHealth) -> &'static str {
    match health {
        DockerHealth::Starting => "starting",
        DockerHealth::Healthy => "healthy",
        DockerHealth::Unhealthy => "unhealthy",
    }
}

/// `GET /v1/status/leader` (shared with `consulkv`); `(none)` when there is no leader.
pub(crate) async fn status_leader(http: &HttpTransport) -> Result<String, BackendError> {
    let leader: String = http
        .call_json(Method::GET, "/v1/status/leader", Body::Empty)
        .await?;
    Ok(if leader.is_empty() {
        "(none)".to_string()
    } else {
        leader
    })
}

/// Where the agent listens, as the URI says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AgentAddr<'a> {
    /// A `host[:port]` (empty: use the environment), over TLS or not.
    Host {
        /// The URI's host, possibly empty.
        host: &'a str,
        /// `consul-tls://`.
        tls: bool,
    },
    /// A unix socket path.
    Unix(&'a str),
}

/// The HTTP client of a Consul agent (shared with `consulkv`).
pub(crate) fn agent_transport(
    backend: &'static str,
    addr: AgentAddr<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HttpTransport, BackendError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (target, hint) = match addr {
        AgentAddr::Unix(path) => (
            Target::Unix {
                path: PathBuf::from(path),
            },
            HINT_UNIX,
        ),
        AgentAddr::Host { host, tls } => {
            // Go's api.DefaultConfig: CONSUL_HTTP_ADDR may carry a scheme, CONSUL_HTTP_SSL
            // switches to https; the URI's host overrides the address only.
            let mut tls = tls || var("CONSUL_HTTP_SSL").is_some_and(|v| go_bool(&v));
            let mut address = host.to_string();
            if address.is_empty() {
                let from_env = var("CONSUL_HTTP_ADDR").unwrap_or_else(|| DEFAULT_ADDR.into());
                let from_env = from_env.trim().trim_end_matches('/');
                if let Some(path) = from_env.strip_prefix("unix://") {
                    let target = Target::Unix {
                        path: PathBuf::from(path),
                    };
                    return with_token(HttpTransport::new(backend, target, HINT_UNIX), &var);
                }
                if let Some(rest) = from_env.strip_prefix("https://") {
                    tls = true;
                    address = rest.to_string();
                } else {
                    address = from_env
                        .strip_prefix("http://")
                        .unwrap_or(from_env)
                        .to_string();
                }
            }
            let default_port = if tls {
                DEFAULT_HTTPS_PORT
            } else {
                DEFAULT_HTTP_PORT
            };
            let addr = with_default_port(&address, default_port).unwrap_or_default();
            let target = if tls {
                Target::Tls {
                    server_name: server_name(&addr, var("CONSUL_TLS_SERVER_NAME"))?,
                    config: tls_config(&var)?,
                    addr,
                }
            } else {
                Target::Tcp { addr }
            };
            (target, HINT_TCP)
        }
    };
    with_token(HttpTransport::new(backend, target, hint), &var)
}

/// Adds `X-Consul-Token` from `CONSUL_HTTP_TOKEN`, or the file `CONSUL_HTTP_TOKEN_FILE`.
fn with_token(
    http: HttpTransport,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<HttpTransport, BackendError> {
    let token = match (var("CONSUL_HTTP_TOKEN"), var("CONSUL_HTTP_TOKEN_FILE")) {
        (Some(token), _) => Some(token),
        (None, Some(file)) => Some(
            std::fs::read_to_string(&file)
                .map_err(|e| {
                    BackendError::Config(format!(
                        "cannot read the ACL token file CONSUL_HTTP_TOKEN_FILE={file}: {e}"
                    ))
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    Ok(match token.filter(|t| !t.is_empty()) {
        Some(token) => http.with_header("X-Consul-Token", token),
        None => http,
    })
}

/// Go's `strconv.ParseBool` truth values.
fn go_bool(v: &str) -> bool {
    matches!(v.trim(), "1" | "t" | "T" | "TRUE" | "true" | "True")
}

/// The name the server certificate must carry: `CONSUL_TLS_SERVER_NAME`, else the host.
fn server_name(
    addr: &str,
    configured: Option<String>,
) -> Result<ServerName<'static>, BackendError> {
    let host = match configured {
        Some(name) => name,
        None => {
            let host = match addr.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
            };
            host.to_string()
        }
    };
    ServerName::try_from(host.clone())
        .map_err(|e| BackendError::Config(format!("invalid TLS server name {host:?}: {e}")))
}

/// The TLS client configuration from `CONSUL_CACERT` / `CONSUL_CAPATH` /
/// `CONSUL_CLIENT_CERT` / `CONSUL_CLIENT_KEY`, on an explicit ring provider (no
/// process-wide default needed). Verification is always on.
fn tls_config(var: &dyn Fn(&str) -> Option<String>) -> Result<Arc<ClientConfig>, BackendError> {
    let config_err = |what: String| BackendError::Config(format!("consul TLS: {what}"));
    if var("CONSUL_HTTP_SSL_VERIFY").is_some_and(|v| !go_bool(&v)) {
        return Err(config_err(
            "CONSUL_HTTP_SSL_VERIFY=false is not supported; give the CA with CONSUL_CACERT".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    if let Some(file) = var("CONSUL_CACERT") {
        let certs = read_certs(&file)
            .map_err(|e| config_err(format!("cannot read CONSUL_CACERT={file}: {e}")))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(config_err(format!(
                "CONSUL_CACERT={file} holds no usable certificate"
            )));
        }
    } else if let Some(dir) = var("CONSUL_CAPATH") {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| config_err(format!("cannot read CONSUL_CAPATH={dir}: {e}")))?;
        for entry in entries.flatten() {
            // Like Go's LoadCACerts: every file that parses as PEM certificates counts.
            if let Ok(certs) = read_certs(&entry.path().to_string_lossy()) {
                roots.add_parsable_certificates(certs);
            }
        }
        if roots.is_empty() {
            return Err(config_err(format!(
                "CONSUL_CAPATH={dir} holds no usable certificate"
            )));
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "failed to load a system root certificate");
        }
        roots.add_parsable_certificates(native.certs);
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(e.to_string()))?
            .with_root_certificates(roots);
    let mut config = match (var("CONSUL_CLIENT_CERT"), var("CONSUL_CLIENT_KEY")) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(&cert)
                .map_err(|e| config_err(format!("cannot read CONSUL_CLIENT_CERT={cert}: {e}")))?;
            let key_der = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| config_err(format!("cannot read CONSUL_CLIENT_KEY={key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| config_err(format!("client certificate {cert}: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(config_err(
                "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together".into(),
            ));
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file (an error when there is none).
fn read_certs(file: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn addr_of(uri: &str, env: &[(&str, &str)]) -> String {
        let uri = RegistryUri::parse(uri).unwrap();
        ConsulBackend::new(&uri, &env_of(env)).unwrap().http.addr()
    }

    #[test]
    fn address_comes_from_uri_then_env_then_default() {
        assert_eq!(addr_of("consul://", &[]), "127.0.0.1:8500");
        assert_eq!(addr_of("consul://10.0.0.1:1234", &[]), "10.0.0.1:1234");
        assert_eq!(addr_of("consul://agent", &[]), "agent:8500");
        assert_eq!(
            addr_of("consul://", &[("CONSUL_HTTP_ADDR", "http://a:1/")]),
            "a:1"
        );
        assert_eq!(
            addr_of("consul://h:2", &[("CONSUL_HTTP_ADDR", "a:1")]),
            "h:2"
        );
        assert_eq!(
            addr_of("consul://", &[("CONSUL_HTTP_ADDR", "unix:///run/c.sock")]),
            "unix:///run/c.sock"
        );
        assert_eq!(
            addr_of("consul-unix:///run/consul.sock", &[]),
            "unix:///run/consul.sock"
        );
        // No CA configured: the system roots (possibly none in a container) are used.
        assert_eq!(addr_of("consul-tls://h", &[]), "https://h:8501");
        assert_eq!(
            addr_of("consul://", &[("CONSUL_HTTP_ADDR", "https://h:9")]),
            "https://h:9"
        );
        assert_eq!(
            addr_of("consul://h:3", &[("CONSUL_HTTP_SSL", "true")]),
            "https://h:3"
        );
    }

    #[test]
    fn tls_settings_are_checked_up_front() {
        let uri = RegistryUri::parse("consul-tls://h:8501").unwrap();
        let err = |env: &[(&str, &str)]| {
            ConsulBackend::new(&uri, &env_of(env))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(&[("CONSUL_CACERT", "/nonexistent/ca.pem")])
                .starts_with("consul TLS: cannot read CONSUL_CACERT=/nonexistent/ca.pem"),
        );
        assert_eq!(
            err(&[("CONSUL_CLIENT_CERT", "/x.pem")]),
            "consul TLS: CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be set together"
        );
    }
}
