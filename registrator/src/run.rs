//! The process around the bridge: who we are (hostname and its address), the
//! registry (built and pinged per `-retry-*`), the Docker daemon, then the
//! [`Bridge`] until shutdown. `main` only parses flags, sets up logging and maps
//! the [`RunError`] to an exit code.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use crate::backend::{self, BackendError};
use crate::bridge::{Bridge, BridgeConfig, BridgeError};
use crate::cli::{Config, RetryAttempts};
use crate::docker::{self, DockerEngine, DockerError};

/// Why registrator stopped with an error (exit 1, as upstream's `log.Fatal`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The backend could not be built (TLS files, token file...).
    #[error("{0}")]
    Backend(#[source] BackendError),
    /// The registry never answered the start-up pings.
    #[error("the registry never answered ({0}); giving up after -retry-attempts")]
    Unreachable(#[source] BackendError),
    /// Registrator's hostname could not be read.
    #[error("cannot read the hostname: {0}")]
    Hostname(String),
    /// The Docker daemon is unreachable at start-up.
    #[error("{0}")]
    Docker(#[source] DockerError),
    /// The bridge stopped.
    #[error("{0}")]
    Bridge(#[source] BridgeError),
}

/// Runs registrator until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    if let Some(ip) = &config.host_ip {
        tracing::info!(%ip, "forcing host IP to {ip}");
    }
    let hostname = hostname()?;
    let resolved = resolve(&hostname).await;
    tracing::info!(%hostname, resolved_ip = ?resolved, "registrator identity");

    let backend = backend::from_registry_uri(&config.registry).map_err(RunError::Backend)?;
    tracing::info!(
        "using {} adapter: {}",
        config.registry.scheme,
        config.registry
    );
    let retries = match config.retry_attempts {
        RetryAttempts::Forever => -1,
        RetryAttempts::Extra(n) => i64::from(n),
    };
    backend::ping_with_retry(backend.as_ref(), retries, config.retry_interval)
        .await
        .map_err(RunError::Unreachable)?;

    let env_host = std::env::var("DOCKER_HOST").ok();
    let host = docker::docker_host(env_host.as_deref(), &|p: &Path| p.exists());
    if let Some(note) = &host.note {
        tracing::info!("{note}");
    }
    let engine = DockerEngine::connect(&host.addr)
        .await
        .map_err(RunError::Docker)?;
    tracing::info!(docker = %host.addr, "connected to docker");

    let bridge = Bridge::new(
        engine,
        backend,
        BridgeConfig::new(&config, hostname, resolved),
    );
    bridge.run(shutdown).await.map_err(RunError::Bridge)
}

/// The OS hostname: the first part of every service ID.
fn hostname() -> Result<String, RunError> {
    nix::unistd::gethostname()
        .map_err(|e| RunError::Hostname(e.to_string()))?
        .into_string()
        .map_err(|h| RunError::Hostname(format!("not UTF-8: {h:?}")))
}

/// The hostname's address (IPv4 preferred), used for ports published on
/// `0.0.0.0`. Upstream used the first answer of a lookup; `None` when it fails.
async fn resolve(hostname: &str) -> Option<String> {
    let addrs: Vec<_> = match tokio::net::lookup_host((hostname, 0)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(e) => {
            tracing::warn!(%hostname, error = %e, "cannot resolve the hostname; use -ip");
            return None;
        }
    };
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addrs.first())
        .map(ToString::to_string)
}
