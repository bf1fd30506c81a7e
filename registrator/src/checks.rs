//! What the Consul backends send for a [`Service`]: `PUT /v1/agent/service/register`
//! with the health check described by its `SERVICE_CHECK_*` attributes (upstream's
//! `buildCheck`), and its attributes as service meta.
//!
//! Beyond upstream:
//! * `SERVICE_CHECK_SCRIPT` is sent as `["sh", "-c", script]`: upstream sends the whole
//!   string as one argv element, which Consul ≥ 1.1 runs as a program name, so any
//!   script with a space failed (#637).
//! * HTTP, TCP and gRPC targets bracket IPv6 addresses.
//! * Meta keys Consul would reject (and the `check_*` keys) are left out instead of
//!   failing the whole registration with HTTP 400 ([`consul_meta`]).
//! * A malformed duration (`SERVICE_CHECK_INTERVAL=abc`) is reported as a
//!   [`CheckError`] rather than sent for Consul to reject.
//! * A Docker `HEALTHCHECK` is mirrored as a second, TTL check
//!   ([`docker_health_check`]) which the caller keeps up to date.

use registry_api::catalog::{AgentServiceRegistration, Meta};
use registry_api::duration::parse_duration;
use registry_api::{CheckDefinition, GoDuration};

use crate::service::{DockerHealth, Service};

/// Upstream's default interval of script, HTTP(S), TCP and gRPC checks.
pub const DEFAULT_INTERVAL: &str = "10s";

/// Name of the check mirroring the Docker `HEALTHCHECK`.
pub const DOCKER_HEALTH_CHECK_NAME: &str = "Docker health check";

/// TTL of the Docker health check: the caller must heartbeat within this period.
pub const DOCKER_HEALTH_TTL: &str = "60s";

/// Consul's meta limits (`structs.ValidateServiceMetadata`).
const META_MAX_PAIRS: usize = 64;
const META_MAX_KEY_LEN: usize = 128;
const META_MAX_VALUE_LEN: usize = 512;

/// A `SERVICE_CHECK_*` value Consul would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A duration attribute is not a Go duration.
    #[error("SERVICE_{} is not a duration: {value:?}", key.to_uppercase())]
    BadDuration {
        /// Attribute name (`check_interval`).
        key: String,
        /// Its value.
        value: String,
    },
}

/// The full Consul registration (upstream A.7 payload): ID, Name, Port, Address,
/// Tags, Meta ([`consul_meta`]), Check ([`consul_check`]) and, when the container
/// has a Docker `HEALTHCHECK`, the [`docker_health_check`] in `Checks`.
pub fn registration(service: &Service) -> Result<AgentServiceRegistration, CheckError> {
    let (meta, _dropped) = consul_meta(service);
    Ok(AgentServiceRegistration {
        id: service.id.clone(),
        name: service.name.clone(),
        port: service.port,
        address: service.ip.clone(),
        tags: service.tags.clone(),
        meta,
        check: consul_check(service)?,
        checks: docker_health_check(service).into_iter().collect(),
        ..Default::default()
    })
}

/// The check from the service's `check_*` attributes; the first present of
/// `check_http`, `check_https`, `check_cmd`, `check_script`, `check_ttl`,
/// `check_tcp`, `check_grpc` wins. `None` when there is none.
pub fn consul_check(service: &Service) -> Result<Option<CheckDefinition>, CheckError> {
    let attr = |key: &str| {
        service
            .attrs
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let target = service.host_port();
    let mut check = CheckDefinition {
        status: attr("check_initial_status").unwrap_or_default().to_string(),
        ..Default::default()
    };
    let mut timed = false;
    if let Some(path) = attr("check_http") {
        check.http = format!("http://{target}{path}");
        check.method = attr("check_http_method").unwrap_or_default().to_string();
        timed = true;
    } else if let Some(path) = attr("check_https") {
        check.http = format!("https://{target}{path}");
        check.method = attr("check_https_method").unwrap_or_default().to_string();
        timed = true;
    } else if let Some(cmd) = attr("check_cmd") {
        // Legacy progrium/consul `check-cmd` helper: container, port, command.
        let id = &service.origin.container_id;
        check.args = vec![
            "check-cmd".to_string(),
            id.get(..12).unwrap_or(id).to_string(),
            service.origin.exposed_port.to_string(),
            cmd.to_string(),
        ];
    } else if let Some(script) = attr("check_script") {
        let script = script
            .replace("$SERVICE_IP", &service.ip)
            .replace("$SERVICE_PORT", &service.port.to_string());
        check.args = vec!["sh".to_string(), "-c".to_string(), script];
    } else if let Some(ttl) = attr("check_ttl") {
        check.ttl = Some(duration("check_ttl", ttl)?);
    } else if attr("check_tcp").is_some() {
        check.tcp = target;
        timed = true;
    } else if attr("check_grpc").is_some() {
        check.grpc = target;
        timed = true;
        if attr("check_grpc_use_tls").is_some() {
            check.grpc_use_tls = true;
            check.tls_skip_verify = attr("check_tls_skip_verify").is_some();
        }
    } else {
        return Ok(None);
    }
    if timed && let Some(timeout) = attr("check_timeout") {
        check.timeout = Some(duration("check_timeout", timeout)?);
    }
    if check.ttl.is_none() {
        let interval = attr("check_interval").unwrap_or(DEFAULT_INTERVAL);
        check.interval = Some(duration("check_interval", interval)?);
    }
    if let Some(after) = attr("check_deregister_after") {
        check.deregister_critical_service_after = Some(duration("check_deregister_after", after)?);
    }
    Ok(Some(check))
}

fn duration(key: &str, value: &str) -> Result<GoDuration, CheckError> {
    parse_duration(value)
        .map(GoDuration)
        .map_err(|_| CheckError::BadDuration {
            key: key.to_string(),
            value: value.to_string(),
        })
}

/// Service meta: the attributes Consul accepts, and the keys left out (so the caller
/// can warn). Upstream sends every attribute, so one label such as
/// `SERVICE_TRAEFIK.ENABLE` (key `traefik.enable`) made Consul refuse the service.
/// Dropped: `check_*` keys (they configure the check, not the service), keys outside
/// `[A-Za-z0-9_-]` or over 128 bytes, `consul-` prefixed keys, values over 512 bytes,
/// and pairs beyond the 64th (in key order).
pub fn consul_meta(service: &Service) -> (Meta, Vec<String>) {
    let mut meta = Meta::new();
    let mut dropped = Vec::new();
    for (key, value) in &service.attrs {
        let valid = !key.starts_with("check_")
            && !key.is_empty()
            && key.len() <= META_MAX_KEY_LEN
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !key.starts_with("consul-")
            && value.len() <= META_MAX_VALUE_LEN
            && meta.len() < META_MAX_PAIRS;
        if valid {
            meta.insert(key.clone(), value.clone());
        } else {
            dropped.push(key.clone());
        }
    }
    (meta, dropped)
}

/// ID of the check mirroring the Docker `HEALTHCHECK` of `service_id`.
pub fn docker_health_check_id(service_id: &str) -> String {
    format!("{service_id}:docker-health")
}

/// Consul status for a Docker health state: only healthy passes.
pub fn docker_health_status(health: DockerHealth) -> &'static str {
    match health {
        DockerHealth::Healthy => "passing",
        DockerHealth::Starting | DockerHealth::Unhealthy => "critical",
    }
}

/// The TTL check mirroring the container's Docker `HEALTHCHECK` (not upstream, #578),
/// registered with its current status; `None` when the container has no healthcheck.
/// The caller heartbeats it (`PUT /v1/agent/check/update/<id>`) with
/// [`docker_health_status`] at least every [`DOCKER_HEALTH_TTL`].
pub fn docker_health_check(service: &Service) -> Option<CheckDefinition> {
    let health = service.health?;
    Some(CheckDefinition {
        id: docker_health_check_id(&service.id),
        name: DOCKER_HEALTH_CHECK_NAME.to_string(),
        status: docker_health_status(health).to_string(),
        ttl: parse_duration(DOCKER_HEALTH_TTL).ok().map(GoDuration),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
