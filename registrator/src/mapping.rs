//! The pure decision: one `docker inspect` result in, the services it should be
//! registered as out. Upstream master's rules (`bridge.add`, `servicePort`,
//! `newService`, `serviceMetaData`), with these deliberate differences:
//!
//! * Determinism where upstream iterates Go maps: ports come out sorted by
//!   (port, protocol); labels are read in key order after the environment; the
//!   container IP of a multi-network container is picked by [`container_ip`]'s rule.
//! * IPv6: a `::` binding counts as "all interfaces" like `0.0.0.0` (replaced by the
//!   resolved host IP); a port published on both IPv4 and IPv6 uses the IPv4 binding;
//!   other IPv6 host IPs are kept (and bracketed by [`Service::host_port`]).
//! * Docker 29 no longer reports `NetworkSettings.IPAddress`; the container IP comes
//!   from `NetworkSettings.Networks` (see [`container_ip`]).
//! * Tags keep their written order (see [`crate::tags::parse_tags`]).
//! * [`Service::health`] carries the Docker `HEALTHCHECK` state.
//!
//! Name resolution of registrator's hostname and inspecting the network container of
//! `container:<id>` mode are I/O, so the caller does them and hands the answers in
//! through [`MappingContext`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bollard::models::{ContainerInspectResponse, HealthStatusEnum, PortBinding};

use crate::cli::Config;
use crate::service::{DockerHealth, Origin, Service};
use crate::tags::{TagsError, TagsTemplate, parse_tags};

/// Everything besides the container that decides its services.
#[derive(Debug, Clone, Default)]
pub struct MappingContext {
    /// Registrator's own hostname: the first part of every service ID.
    pub hostname: String,
    /// `hostname` resolved to an address (upstream: first answer of a DNS lookup).
    /// Replaces the `0.0.0.0` / `::` host IP of ports published on all interfaces;
    /// `None` (lookup failed) leaves that host IP as is.
    pub resolved_host_ip: Option<String>,
    /// `-ip`.
    pub forced_ip: Option<String>,
    /// `-internal`.
    pub internal: bool,
    /// `-explicit`.
    pub explicit: bool,
    /// `-useIpFromLabel`.
    pub use_ip_from_label: Option<String>,
    /// `-tags`.
    pub tags: TagsTemplate,
    /// `-ttl` in seconds, copied to [`Service::ttl`].
    pub ttl: u64,
    /// IPs of network containers, keyed by what follows `container:` in
    /// `HostConfig.NetworkMode` (see [`network_container`]); fill it with
    /// [`container_ip`] of each inspected network container. A missing entry keeps
    /// the IP chosen otherwise, as upstream does when that inspect fails.
    pub network_container_ips: BTreeMap<String, String>,
}

impl MappingContext {
    /// The context for `config`, given registrator's hostname and its resolution.
    pub fn new(config: &Config, hostname: String, resolved_host_ip: Option<String>) -> Self {
        MappingContext {
            hostname,
            resolved_host_ip,
            forced_ip: config.host_ip.clone(),
            internal: config.internal,
            explicit: config.explicit,
            use_ip_from_label: config.use_ip_from_label.clone(),
            tags: config.tags.clone(),
            ttl: config.ttl.as_secs(),
            network_container_ips: BTreeMap::new(),
        }
    }
}

/// The services of one container, plus what was left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Services to register, sorted by (exposed port, protocol).
    pub services: Vec<Service>,
    /// Ports (or the whole container) not registered.
    pub skipped: Vec<Skipped>,
    /// Things upstream logs while mapping.
    pub notes: Vec<Note>,
}

/// A port (or, with `port: None`, a container) that produced no service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `80/tcp`; `None` for the whole container.
    pub port: Option<String>,
    /// Why.
    pub reason: SkipReason,
}

/// Why a port produced no service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Neither `Config.ExposedPorts` nor `NetworkSettings.Ports` has an entry.
    NoPorts,
    /// Exposed but not published on the host (and not `-internal`).
    NotPublished,
    /// `SERVICE_IGNORE` / `SERVICE_<port>_IGNORE` is set.
    Ignored,
    /// `-explicit` and no `SERVICE_NAME` / `SERVICE_<port>_NAME`.
    NoExplicitName,
}

impl fmt::Display for Skipped {
    /// Upstream's log text after `ignored: <id12>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port.as_deref().unwrap_or_default();
        let number = port.split('/').next().unwrap_or_default();
        match self.reason {
            SkipReason::NoPorts => f.write_str("no published ports"),
            SkipReason::NotPublished => write!(f, "port {number} not published on host"),
            SkipReason::Ignored => write!(f, "service on port {number} (SERVICE_IGNORE)"),
            SkipReason::NoExplicitName => {
                write!(
                    f,
                    "service on port {number} (no SERVICE_NAME with -explicit)"
                )
            }
        }
    }
}

/// Informational events upstream logs during the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// `-useIpFromLabel` found its label.
    IpFromLabel {
        /// Label name.
        label: String,
        /// IP used.
        ip: String,
    },
    /// `-useIpFromLabel` label absent or empty: the usual IP is kept.
    LabelMissing {
        /// Label name.
        label: String,
    },
    /// `container:<id>` network mode, IP taken from that container.
    NetworkContainerIp {
        /// The network container.
        container: String,
        /// Its IP.
        ip: String,
    },
    /// `container:<id>` network mode but no IP known for that container.
    NetworkContainerUnknown {
        /// The network container.
        container: String,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::IpFromLabel { label, ip } => {
                write!(f, "using container IP {ip} from label '{label}'")
            }
            Note::LabelMissing { label } => {
                write!(f, "Label '{label}' not found in container configuration")
            }
            Note::NetworkContainerIp { container, ip } => {
                write!(f, "using network container {} IP {ip}", short(container))
            }
            Note::NetworkContainerUnknown { container } => {
                write!(
                    f,
                    "unable to inspect network container: {}",
                    short(container)
                )
            }
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// One candidate port: `servicePort`'s record before IP resolution.
struct Candidate {
    key: String,
    exposed_port: String,
    protocol: String,
    host_port: String,
    host_ip: String,
}

/// The services of `container` under `ctx`. Fails only when the `-tags` template
/// fails to execute (upstream: fatal).
pub fn services(
    container: &ContainerInspectResponse,
    ctx: &MappingContext,
) -> Result<Mapping, TagsError> {
    let mut out = Mapping::default();
    let candidates = candidates(container);
    if candidates.is_empty() {
        out.skipped.push(Skipped {
            port: None,
            reason: SkipReason::NoPorts,
        });
        return Ok(out);
    }
    let mut published = Vec::new();
    for candidate in candidates {
        if !ctx.internal && candidate.host_port.is_empty() {
            out.skipped.push(Skipped {
                port: Some(candidate.key),
                reason: SkipReason::NotPublished,
            });
        } else {
            published.push(candidate);
        }
    }
    // Counted before SERVICE_IGNORE, as upstream: ignoring one of two ports keeps
    // the `-<port>` suffix on the other.
    let is_group = published.len() > 1;

    let config = container.config.clone().unwrap_or_default();
    let network_mode = network_mode(container);
    let exposed_ip = container_ip(container).unwrap_or_default();
    let mut forced_tags: Option<Vec<String>> = None;

    for candidate in published {
        let meta = Metadata::collect(container, &candidate.exposed_port);
        if !meta.get("ignore").is_empty() {
            out.skipped.push(Skipped {
                port: Some(candidate.key),
                reason: SkipReason::Ignored,
            });
            continue;
        }
        let mut name = meta.get("name").to_string();
        if name.is_empty() {
            if ctx.explicit {
                out.skipped.push(Skipped {
                    port: Some(candidate.key),
                    reason: SkipReason::NoExplicitName,
                });
                continue;
            }
            name = default_name(config.image.as_deref().unwrap_or_default());
        }
        if is_group && !meta.from_port.contains("name") {
            name = format!("{name}-{}", candidate.exposed_port);
        }

        let mut host_ip = candidate.host_ip.clone();
        // User-defined networks (and none/container:): the network's own address.
        if !matches!(network_mode.as_str(), "bridge" | "default" | "host") {
            host_ip = network_ip(container, &network_mode).unwrap_or_default();
        }
        let hostname = if ctx.hostname.is_empty() {
            host_ip.clone()
        } else {
            ctx.hostname.clone()
        };
        if is_any_address(&host_ip)
            && let Some(resolved) = &ctx.resolved_host_ip
        {
            host_ip = resolved.clone();
        }
        if let Some(forced) = &ctx.forced_ip {
            host_ip = forced.clone();
        }

        let (mut ip, port) = if ctx.internal {
            (exposed_ip.clone(), go_atoi(&candidate.exposed_port))
        } else {
            (host_ip.clone(), go_atoi(&candidate.host_port))
        };
        if let Some(label) = &ctx.use_ip_from_label {
            match labels(container)
                .get(label.as_str())
                .filter(|v| !v.is_empty())
            {
                Some(value) => {
                    ip = value
                        .rsplit_once('/')
                        .map_or(*value, |(a, _)| a)
                        .to_string();
                    out.notes.push(Note::IpFromLabel {
                        label: label.clone(),
                        ip: ip.clone(),
                    });
                }
                None => out.notes.push(Note::LabelMissing {
                    label: label.clone(),
                }),
            }
        }
        if let Some(other) = network_container(container) {
            match ctx.network_container_ips.get(other) {
                Some(other_ip) => {
                    ip = other_ip.clone();
                    out.notes.push(Note::NetworkContainerIp {
                        container: other.to_string(),
                        ip: ip.clone(),
                    });
                }
                None => out.notes.push(Note::NetworkContainerUnknown {
                    container: other.to_string(),
                }),
            }
        }

        let forced = match &forced_tags {
            Some(tags) => tags.clone(),
            None => {
                let rendered = parse_tags(&ctx.tags.render(container, &exposed_ip)?);
                forced_tags = Some(rendered.clone());
                rendered
            }
        };
        let mut tags = parse_tags(meta.get("tags"));
        tags.extend(forced);

        let container_name = container
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let mut id = format!("{hostname}:{container_name}:{}", candidate.exposed_port);
        if candidate.protocol == "udp" {
            tags.push("udp".to_string());
            id.push_str(":udp");
        }
        if !meta.get("id").is_empty() {
            id = meta.get("id").to_string();
        }

        let mut attrs = meta.values;
        for key in ["id", "tags", "name"] {
            attrs.remove(key);
        }
        out.services.push(Service {
            id,
            name,
            ip,
            port,
            tags,
            attrs,
            ttl: ctx.ttl,
            origin: Origin {
                container_id: container.id.clone().unwrap_or_default(),
                container_name,
                container_hostname: config.hostname.clone().unwrap_or_default(),
                exposed_port: go_atoi(&candidate.exposed_port),
                exposed_ip: exposed_ip.clone(),
                host_port: go_atoi(&candidate.host_port),
                host_ip,
                protocol: candidate.protocol,
            },
            health: docker_health(container),
        });
    }
    Ok(out)
}

/// Ports from `Config.ExposedPorts` (as if published on the same number, which is
/// how host-network containers are found), overwritten by `NetworkSettings.Ports`.
fn candidates(container: &ContainerInspectResponse) -> Vec<Candidate> {
    let mut by_key: BTreeMap<String, Candidate> = BTreeMap::new();
    let exposed = container
        .config
        .as_ref()
        .and_then(|c| c.exposed_ports.as_ref());
    for key in exposed.into_iter().flatten() {
        let (port, _) = split_port(key);
        let binding = PortBinding {
            host_ip: Some("0.0.0.0".to_string()),
            host_port: Some(port.to_string()),
        };
        by_key.insert(key.clone(), candidate(key, Some(&binding)));
    }
    let runtime = container
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref());
    for (key, bindings) in runtime.into_iter().flatten() {
        let binding = pick_binding(bindings.as_deref().unwrap_or_default());
        by_key.insert(key.clone(), candidate(key, binding));
    }
    let mut list: Vec<Candidate> = by_key.into_values().collect();
    list.sort_by(|a, b| {
        (go_atoi(&a.exposed_port), &a.protocol, &a.key).cmp(&(
            go_atoi(&b.exposed_port),
            &b.protocol,
            &b.key,
        ))
    });
    list
}

/// Upstream takes the first binding. Docker publishes each port on `0.0.0.0` and
/// `::`; the IPv4 one is preferred whatever the order, then the first.
fn pick_binding(bindings: &[PortBinding]) -> Option<&PortBinding> {
    bindings
        .iter()
        .find(|b| !b.host_ip.as_deref().unwrap_or_default().contains(':'))
        .or_else(|| bindings.first())
}

fn candidate(key: &str, binding: Option<&PortBinding>) -> Candidate {
    let (port, protocol) = split_port(key);
    let host_ip = binding
        .and_then(|b| b.host_ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "0.0.0.0".to_string());
    Candidate {
        key: key.to_string(),
        exposed_port: port.to_string(),
        protocol: protocol.to_string(),
        host_port: binding
            .and_then(|b| b.host_port.clone())
            .unwrap_or_default(),
        host_ip,
    }
}

/// `80/tcp` → (`80`, `tcp`); no protocol means tcp.
fn split_port(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or((key, "tcp"))
}

/// Go's `strconv.Atoi` with errors ignored, as upstream does: 0 when not a port.
fn go_atoi(text: &str) -> u16 {
    text.parse().unwrap_or(0)
}

/// `0.0.0.0`, or (beyond upstream) `::`: published on every interface.
fn is_any_address(ip: &str) -> bool {
    ip == "0.0.0.0" || ip == "::"
}

/// `path.Base(Config.Image)` cut at the first `:`: `registry:5000/x/app:tag` → `app`.
pub fn default_name(image: &str) -> String {
    let trimmed = image.trim_end_matches('/');
    let base = if image.is_empty() {
        "."
    } else if trimmed.is_empty() {
        "/"
    } else {
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    };
    base.split(':').next().unwrap_or(base).to_string()
}

/// `HostConfig.NetworkMode`, with an absent value read as `default`.
fn network_mode(container: &ContainerInspectResponse) -> String {
    container
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// The container whose network stack `container` shares (`container:<id>` mode).
pub fn network_container(container: &ContainerInspectResponse) -> Option<&str> {
    container
        .host_config
        .as_ref()?
        .network_mode
        .as_deref()?
        .strip_prefix("container:")
        .filter(|id| !id.is_empty())
}

/// IP of `container` on network `name` (IPv4, else its global IPv6 address).
fn network_ip(container: &ContainerInspectResponse, name: &str) -> Option<String> {
    let endpoint = container
        .network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .get(name)?;
    [&endpoint.ip_address, &endpoint.global_ipv6_address]
        .into_iter()
        .flatten()
        .find(|ip| !ip.is_empty())
        .cloned()
}

/// The container's own IP (upstream's `ExposedIP`): the address of the network named
/// by `HostConfig.NetworkMode` (`bridge` for `default`), else of the first network in
/// name order that has an IPv4 address, else the first with an IPv6 one.
/// Upstream read the deprecated `NetworkSettings.IPAddress`, i.e. the default bridge
/// address, and fell back to a random network (#498).
pub fn container_ip(container: &ContainerInspectResponse) -> Option<String> {
    let mode = network_mode(container);
    let preferred = if mode == "default" { "bridge" } else { &mode };
    if let Some(ip) = network_ip(container, preferred) {
        return Some(ip);
    }
    let networks = container.network_settings.as_ref()?.networks.as_ref()?;
    let names: BTreeSet<&String> = networks.keys().collect();
    let first = |pick: fn(&bollard::models::EndpointSettings) -> &Option<String>| {
        names
            .iter()
            .filter_map(|n| pick(&networks[*n]).as_ref())
            .find(|ip| !ip.is_empty())
            .cloned()
    };
    first(|e| &e.ip_address).or_else(|| first(|e| &e.global_ipv6_address))
}

/// State of the container's Docker `HEALTHCHECK`, `None` without one (no test, or
/// `["NONE"]`). A container that has not reported yet counts as starting.
pub fn docker_health(container: &ContainerInspectResponse) -> Option<DockerHealth> {
    let test = container
        .config
        .as_ref()?
        .healthcheck
        .as_ref()?
        .test
        .as_ref()?;
    if test.first().is_none_or(|t| t == "NONE") {
        return None;
    }
    let status = container
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status);
    Some(match status {
        Some(HealthStatusEnum::HEALTHY) => DockerHealth::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => DockerHealth::Unhealthy,
        _ => DockerHealth::Starting,
    })
}

fn labels(container: &ContainerInspectResponse) -> BTreeMap<&str, &str> {
    container
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `SERVICE_*` metadata of one port (upstream's `serviceMetaData`).
struct Metadata {
    /// Lower-cased key (without `SERVICE_` and the port) → value; may be empty.
    values: BTreeMap<String, String>,
    /// Keys set by a `SERVICE_<port>_<key>` entry: those beat global ones.
    from_port: BTreeSet<String>,
}

impl Metadata {
    /// Reads `Config.Env`, then `Config.Labels` as `k=v` in key order (so labels win).
    fn collect(container: &ContainerInspectResponse, port: &str) -> Self {
        let config = container.config.as_ref();
        let env = config.and_then(|c| c.env.as_ref()).into_iter().flatten();
        let labels = labels(container);
        let entries = env
            .map(|e| e.split_once('='))
            .chain(labels.into_iter().map(Some));
        let mut meta = Metadata {
            values: BTreeMap::new(),
            from_port: BTreeSet::new(),
        };
        for (raw_key, value) in entries.flatten() {
            let Some(rest) = raw_key.strip_prefix("SERVICE_") else {
                continue;
            };
            let key = rest.to_lowercase();
            if meta.from_port.contains(&key) {
                continue;
            }
            match key.split_once('_') {
                Some((scope, scoped_key)) if is_go_int(scope) => {
                    if scope != port {
                        continue;
                    }
                    meta.values
                        .insert(scoped_key.to_string(), value.to_string());
                    meta.from_port.insert(scoped_key.to_string());
                }
                _ => {
                    meta.values.insert(key, value.to_string());
                }
            }
        }
        meta
    }

    /// The value, `""` when unset (`mapDefault`: empty counts as unset).
    fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }
}

/// Accepts what Go's `strconv.Atoi` accepts (sign, decimal digits).
fn is_go_int(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests;
