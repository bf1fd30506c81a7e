//! Registry backends: where registrator writes the services it derives from
//! containers. One [`Backend`] trait (upstream's `bridge.RegistryAdapter`), one
//! module per registry URI scheme:
//!
//! | scheme | module | writes |
//! |---|---|---|
//! | `consul://`, `consul-tls://`, `consul-unix://` | [`consul`] | agent service registrations |
//! | `consulkv://`, `consulkv-unix://` | [`consulkv`] | KV `<prefix>/<Name>/<ID>` = `ip:port` |
//! | `etcd://` | [`etcd`] | etcd **v3** key `<prefix>/<Name>/<ID>` = `ip:port`, leased with `-ttl` |
//!
//! [`from_uri`] turns the command line's registry URI into a backend;
//! [`ping_with_retry`] is the startup loop of upstream's `-retry-attempts` /
//! `-retry-interval`. All backends talk HTTP/1.1 through one small hyper client
//! (`http.rs`), which turns transport failures into [`BackendError::Unreachable`]
//! (worth retrying) as opposed to [`BackendError::Refused`] (the registry
//! answered no).

pub mod consul;
pub mod consulkv;
pub mod etcd;
mod http;
mod uri;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::service::DockerHealth;
use crate::service::Service;

pub use uri::{RegistryUri, SCHEMES};

/// A registry registrator writes to. Implementations are cheap to share
/// (`Arc<dyn Backend>`) and safe to call concurrently.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Checks that the registry answers; the text is what upstream logs
    /// (`consul: current leader 10.0.0.1:8300`).
    async fn ping(&self) -> Result<String, BackendError>;

    /// Writes one service.
    async fn register(&self, service: &Service) -> Result<(), BackendError>;

    /// Removes one service.
    async fn deregister(&self, service: &Service) -> Result<(), BackendError>;

    /// Re-writes a service so its TTL starts again (`-ttl-refresh`). A no-op on
    /// backends without TTLs (Consul, Consul KV), as upstream.
    async fn refresh(&self, service: &Service) -> Result<(), BackendError>;

    /// The services registered on this registry, for `-cleanup`'s dangling sweep.
    /// Only the Consul agent can list them; the others return nothing, as upstream.
    async fn services(&self) -> Result<Vec<Service>, BackendError> {
        Ok(Vec::new())
    }

    /// Whether [`Backend::services`] really lists the registry (an empty answer then
    /// means an empty registry, e.g. an agent restarted without its state), so the
    /// bridge can re-register only what is missing instead of everything.
    fn lists_services(&self) -> bool {
        false
    }

    /// Reports a container's Docker health on the service's `<id>:docker-health`
    /// TTL check (Consul only; a no-op elsewhere). Also the heartbeat of that
    /// check: call it at least every `crate::checks::DOCKER_HEALTH_TTL`.
    async fn set_docker_health(
        &self,
        service: &Service,
        health: DockerHealth,
    ) -> Result<(), BackendError> {
        let _ = (service, health);
        Ok(())
    }
}

/// Errors of the backends. [`BackendError::is_retryable`] tells the event loop
/// which ones may go away by themselves.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No backend for the URI's scheme (upstream's wording).
    #[error("unrecognized adapter: {0}")]
    UnrecognizedAdapter(String),
    /// The URI could not be parsed (upstream's wording, plus what is wrong).
    #[error("bad adapter uri: {uri}: {reason}")]
    BadUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The service cannot be turned into a registration (a `SERVICE_CHECK_*`
    /// value is invalid); retrying will not help.
    #[error("service {id}: {reason}")]
    InvalidService {
        /// The service ID.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend's configuration (TLS files, token file) is unusable.
    #[error("{0}")]
    Config(String),
    /// Nothing answered at the registry's address: the connection was refused, the
    /// socket is missing, the request timed out or the connection broke.
    #[error("{backend} at {addr} is unreachable ({reason}); {hint}")]
    Unreachable {
        /// `consul`, `consulkv`, `etcd`.
        backend: &'static str,
        /// Where we tried (`127.0.0.1:8500`, `unix:///run/consul.sock`).
        addr: String,
        /// The transport error.
        reason: String,
        /// What to check next.
        hint: &'static str,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, client
    /// certificate rejected): retrying will not help.
    #[error(
        "TLS handshake with {backend} at {addr} failed: {reason}; check CONSUL_CACERT, \
         CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY and CONSUL_TLS_SERVER_NAME"
    )]
    Tls {
        /// The backend.
        backend: &'static str,
        /// Where we tried.
        addr: String,
        /// The handshake error.
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("{backend} at {addr} refused {action}: {status} {message}")]
    Refused {
        /// The backend.
        backend: &'static str,
        /// Its address.
        addr: String,
        /// What we asked (`PUT /v1/agent/service/register`).
        action: String,
        /// The HTTP status.
        status: u16,
        /// The registry's message.
        message: String,
    },
    /// The registry answered 2xx with a body we cannot read.
    #[error("{backend} at {addr} sent an unexpected answer to {action}: {reason}")]
    BadResponse {
        /// The backend.
        backend: &'static str,
        /// Its address.
        addr: String,
        /// What we asked.
        action: String,
        /// What is wrong with the answer.
        reason: String,
    },
}

impl BackendError {
    /// Whether nothing answered (as opposed to an answer saying no).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, BackendError::Unreachable { .. })
    }

    /// Whether trying again later may succeed: the registry was unreachable, or
    /// answered with a server-side error (5xx, e.g. Consul's "No cluster leader")
    /// or 429. Client errors (a 400 for invalid metadata, a 403 from ACLs) and
    /// configuration errors are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Unreachable { .. } => true,
            BackendError::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            BackendError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Builds the backend for a registry URI (the command line's positional
/// argument), reading `CONSUL_*` settings from the process environment.
///
/// Nothing is contacted here (upstream's etcd factory pinged at construction and
/// died on failure, which defeated `-retry-attempts`): call [`ping_with_retry`].
pub fn from_uri(uri: &str) -> Result<Arc<dyn Backend>, BackendError> {
    from_uri_with_env(uri, &|name| std::env::var(name).ok())
}

/// [`from_uri`] for an already parsed URI (the command line's [`crate::cli::Config`]).
pub fn from_registry_uri(uri: &RegistryUri) -> Result<Arc<dyn Backend>, BackendError> {
    build(uri, &|name| std::env::var(name).ok())
}

/// [`from_uri`] with the environment given as a lookup function (tests pass a map:
/// the process environment cannot be changed safely while threads run).
pub fn from_uri_with_env(
    uri: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Backend>, BackendError> {
    build(&RegistryUri::parse(uri)?, env)
}

fn build(
    uri: &RegistryUri,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match uri.scheme.as_str() {
        "consul" | "consul-tls" | "consul-unix" => Arc::new(consul::ConsulBackend::new(uri, env)?),
        "consulkv" | "consulkv-unix" => Arc::new(consulkv::ConsulKvBackend::new(uri, env)?),
        "etcd" => Arc::new(etcd::EtcdBackend::new(uri)?),
        _ => return Err(BackendError::UnrecognizedAdapter(uri.raw.clone())),
    })
}

/// Pings until the registry answers, as upstream's startup loop: `retry_attempts`
/// extra attempts after the first (`0` = one attempt, `-1` = forever), sleeping
/// `interval` between them; the last error is returned when they run out (upstream
/// then exits 1).
///
/// Upstream's loop (`attempt <= retry`) never pings at all for a value below `-1`
/// and carries on unchecked; here any value below `-1` means one attempt.
pub async fn ping_with_retry(
    backend: &dyn Backend,
    retry_attempts: i64,
    interval: Duration,
) -> Result<String, BackendError> {
    let forever = retry_attempts == -1;
    let last = retry_attempts.max(0);
    let mut attempt: i64 = 0;
    loop {
        tracing::info!(
            attempt,
            retry_attempts,
            "connecting to backend ({attempt}/{retry_attempts})"
        );
        match backend.ping().await {
            Ok(text) => {
                tracing::info!("{text}");
                return Ok(text);
            }
            Err(e) if !forever && attempt >= last => return Err(e),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "backend ping failed; retrying");
            }
        }
        tokio::time::sleep(interval).await;
        attempt += 1;
    }
}
