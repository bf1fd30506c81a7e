//! The service model shared by the mapping (`crate::mapping`) and the backends
//! (`crate::backend`): what one exposed port of one container becomes.

use std::collections::BTreeMap;

/// One registration: a container's port as a registry service, as upstream's
/// `bridge.Service` (ID, Name, Port, IP, Tags, Attrs, TTL plus its origin).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// `hostname:container-name:exposed-port[:udp]`, or `SERVICE_ID`.
    pub id: String,
    /// Image base name, `SERVICE_NAME` or `SERVICE_<port>_NAME` (plus the `-<port>` group suffix).
    pub name: String,
    /// Address registered (host IP, `-ip`, internal IP, label IP...). May be IPv6.
    pub ip: String,
    /// Port registered (published host port, or the exposed port with `-internal`).
    pub port: u16,
    /// `SERVICE_TAGS` ++ `-tags` ++ `udp` for UDP ports.
    pub tags: Vec<String>,
    /// Every other `SERVICE_*` key, lower-cased (`check_*` included, as upstream).
    pub attrs: BTreeMap<String, String>,
    /// `-ttl` in seconds; 0 means none.
    pub ttl: u64,
    /// Where the service came from.
    pub origin: Origin,
    /// State of the container's Docker `HEALTHCHECK`; `None` when it has none.
    /// Not upstream (#578): the Consul backend mirrors it as a TTL check.
    pub health: Option<DockerHealth>,
}

/// A container's Docker health (`State.Health.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerHealth {
    /// Within the start period, or no probe has finished yet.
    Starting,
    /// The last probes passed.
    Healthy,
    /// `Retries` consecutive probes failed.
    Unhealthy,
}

/// The container port a [`Service`] was made from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// Full container ID.
    pub container_id: String,
    /// Container name without the leading `/`.
    pub container_name: String,
    /// The container's configured hostname (`Config.Hostname`).
    pub container_hostname: String,
    /// Port inside the container (`80` of `80/tcp`).
    pub exposed_port: u16,
    /// The container's own IP.
    pub exposed_ip: String,
    /// Published host port (0 when not published).
    pub host_port: u16,
    /// Published host IP.
    pub host_ip: String,
    /// `tcp` or `udp` (or `sctp`).
    pub protocol: String,
}

impl Service {
    /// `ip:port`, brackets around IPv6 addresses (`[::1]:80`): the value the KV backends write.
    pub fn host_port(&self) -> String {
        if self.ip.contains(':') {
            format!("[{}]:{}", self.ip, self.port)
        } else {
            format!("{}:{}", self.ip, self.port)
        }
    }
}
