//! Validation of the merged configuration, and the values the agent derives from
//! it: node name, advertise addresses, and the addresses each listener binds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;

use base64::Engine;

use super::{Config, ConfigError};

/// Where a client-facing listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP (and for DNS also UDP) socket address.
    Tcp(SocketAddr),
    /// A Unix domain socket (`unix:///path` in `addresses`).
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Values computed from a validated [`Config`] and the host, read by the agent
/// when it binds listeners and announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `node_name`, or the hostname.
    pub node_name: String,
    /// Cluster bind address (templates resolved).
    pub bind_ip: IpAddr,
    /// LAN advertise address: `advertise_addr`, else the bind address, else
    /// (bind `0.0.0.0`) the host's private IPv4.
    pub advertise_ip: IpAddr,
    /// WAN advertise address (`advertise_addr_wan`, else `advertise_ip`).
    pub advertise_wan_ip: IpAddr,
    /// Parsed `client_addr`.
    pub client_ips: Vec<IpAddr>,
    /// HTTP API listeners (empty when `ports.http` is -1).
    pub http: Vec<ListenAddr>,
    /// HTTPS API listeners (empty unless `ports.https` is set).
    pub https: Vec<ListenAddr>,
    /// DNS listeners, UDP and TCP (empty when `ports.dns` is -1).
    pub dns: Vec<SocketAddr>,
    /// gRPC listeners (empty unless `ports.grpc` is set).
    pub grpc: Vec<ListenAddr>,
    /// Serf LAN bind address.
    pub serf_lan: SocketAddr,
    /// Serf WAN bind address (servers only; `None` on clients or when disabled).
    pub serf_wan: Option<SocketAddr>,
    /// Server RPC bind address (`None` on clients).
    pub server_rpc: Option<SocketAddr>,
    /// Leave the cluster on SIGTERM.
    pub leave_on_terminate: bool,
    /// Stay in the cluster on SIGINT.
    pub skip_leave_on_interrupt: bool,
    /// Serve the web UI.
    pub ui_enabled: bool,
    /// Serve the UI from this directory instead of the embedded assets.
    pub ui_dir: Option<PathBuf>,
    /// LAN addresses to join (`start_join` then `retry_join`).
    pub lan_join: Vec<String>,
    /// WAN addresses to join (`start_join_wan` then `retry_join_wan`).
    pub wan_join: Vec<String>,
}

impl Config {
    /// Checks the merged configuration the way Consul does after loading.
    /// Returns warnings that do not stop the agent.
    pub fn validate(&self) -> Result<Vec<String>, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut warnings = Vec::new();

        if self.data_dir.is_none() && !self.dev_mode {
            return invalid("data_dir cannot be empty (use -data-dir or -dev)".into());
        }
        if self.datacenter.is_empty() {
            return invalid("datacenter cannot be empty".into());
        }
        if !self
            .datacenter
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return invalid(format!(
                "datacenter {:?} can only contain lowercase alphanumeric, - or _ characters.",
                self.datacenter
            ));
        }
        self.validate_node(&mut warnings)?;

        if self.bootstrap && !self.server {
            return invalid("'bootstrap = true' requires 'server = true'".into());
        }
        if self.bootstrap_expect > 0 && !self.server {
            return invalid("'bootstrap_expect > 0' requires 'server = true'".into());
        }
        if self.bootstrap_expect > 0 && self.bootstrap {
            return invalid(
                "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive".into(),
            );
        }
        if self.bootstrap_expect > 0 && self.dev_mode {
            return invalid("'bootstrap_expect > 0' not allowed in dev mode".into());
        }
        if self.bootstrap_expect == 2 {
            warnings.push(
                "bootstrap_expect = 2: A cluster with 2 servers will provide no failure tolerance."
                    .into(),
            );
        } else if self.bootstrap_expect > 2 && self.bootstrap_expect.is_multiple_of(2) {
            warnings.push(format!(
                "bootstrap_expect is even number: A cluster with an even number of servers does not achieve optimum fault tolerance. (bootstrap_expect = {})",
                self.bootstrap_expect
            ));
        }
        if self.bootstrap {
            warnings.push("bootstrap = true: do not enable unless necessary".into());
        }

        for (name, port) in self.ports.named() {
            if !(-1..=65535).contains(&port) {
                return invalid(format!(
                    "ports.{name}: invalid port {port} (must be -1 to 65535)"
                ));
            }
        }
        if self.ports.serf_lan < 0 {
            return invalid("ports.serf_lan: the Serf LAN port cannot be disabled".into());
        }
        if self.server && self.ports.server < 0 {
            return invalid("ports.server: a server needs its RPC port".into());
        }

        parse_bind("bind_addr", &self.bind_addr)?;
        for (key, value) in [("serf_lan", &self.serf_lan), ("serf_wan", &self.serf_wan)] {
            if !value.is_empty() {
                parse_bind(key, value)?;
            }
        }
        for (key, value) in [
            ("advertise_addr", &self.advertise_addr),
            ("advertise_addr_wan", &self.advertise_addr_wan),
        ] {
            if value.is_empty() {
                continue;
            }
            let ip = parse_bind(key, value)?;
            if ip.is_some_and(|ip| ip.is_unspecified()) {
                return invalid(format!(
                    "{key}: Advertise address cannot be 0.0.0.0, :: or [::]"
                ));
            }
        }
        parse_ips("client_addr", &self.client_addr)?;
        let a = &self.addresses;
        for (key, value) in [
            ("addresses.dns", &a.dns),
            ("addresses.http", &a.http),
            ("addresses.https", &a.https),
            ("addresses.grpc", &a.grpc),
            ("addresses.grpc_tls", &a.grpc_tls),
        ] {
            parse_listen(key, value, key != "addresses.dns")?;
        }

        if !self.encrypt.is_empty() {
            match base64::engine::general_purpose::STANDARD.decode(self.encrypt.trim()) {
                Ok(key) if matches!(key.len(), 16 | 24 | 32) => {}
                Ok(key) => {
                    return invalid(format!(
                        "encrypt has invalid key: key size must be 16, 24 or 32 bytes (got {})",
                        key.len()
                    ));
                }
                Err(e) => return invalid(format!("encrypt has invalid key: {e}")),
            }
        }

        if super::logging::parse_level(&self.log_level).is_none() {
            return invalid(format!(
                "log_level: invalid log level {:?} (trace, debug, info, warn, err)",
                self.log_level
            ));
        }
        if self.raft_protocol != 3 {
            return invalid(format!(
                "raft_protocol version {} is not supported by this version of Consul",
                self.raft_protocol
            ));
        }
        let multiplier = self.performance.raft_multiplier;
        if !(1..=10).contains(&multiplier) {
            return invalid(format!(
                "performance.raft_multiplier cannot be {multiplier}. Must be between 1 and 10"
            ));
        }
        let eight_hours = std::time::Duration::from_secs(8 * 3600);
        if self.reconnect_timeout.get() < eight_hours {
            return invalid("reconnect_timeout must be >= 8h".into());
        }
        if self.reconnect_timeout_wan.get() < eight_hours {
            return invalid("reconnect_timeout_wan must be >= 8h".into());
        }
        if self.max_query_time.get().is_zero() {
            return invalid("max_query_time must be greater than 0".into());
        }
        if self.default_query_time > self.max_query_time {
            warnings
                .push("default_query_time is larger than max_query_time; waits are capped".into());
        }
        if !matches!(
            self.dns_config.recursor_strategy.as_str(),
            "sequential" | "random"
        ) {
            return invalid(format!(
                "dns_config.recursor_strategy: invalid value {:?} (sequential or random)",
                self.dns_config.recursor_strategy
            ));
        }
        if !matches!(self.acl.default_policy.as_str(), "allow" | "deny") {
            return invalid(format!(
                "acl.default_policy: invalid value {:?} (allow or deny)",
                self.acl.default_policy
            ));
        }
        if !matches!(
            self.acl.down_policy.as_str(),
            "allow" | "deny" | "extend-cache" | "async-cache"
        ) {
            return invalid(format!(
                "acl.down_policy: invalid value {:?} (allow, deny, extend-cache or async-cache)",
                self.acl.down_policy
            ));
        }
        if self.acl.enabled {
            warnings.push("acl.enabled: ACLs are parsed but not enforced".into());
        }

        let ui_on = self.ui || self.ui_config.enabled;
        let ui_dir = !self.ui_dir.is_empty() || !self.ui_config.dir.is_empty();
        if ui_on && ui_dir && !self.dev_mode {
            return invalid("Both the ui_config.enabled and ui_config.dir (or -ui and -ui-dir) were specified, please provide only one.".into());
        }
        if !self.ui_config.content_path.starts_with('/') {
            return invalid("ui_config.content_path must start with '/'".into());
        }
        if self.limits.kv_max_value_size == 0 {
            return invalid("limits.kv_max_value_size must be greater than 0".into());
        }
        Ok(warnings)
    }

    fn validate_node(&self, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
        let name = self.node_name();
        if name.is_empty() {
            return Err(ConfigError::Invalid("node_name cannot be empty".into()));
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
        {
            return Err(ConfigError::Invalid(format!(
                "node_name {name:?} must not contain whitespace or quotes"
            )));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || name.len() > 63 {
            warnings.push(format!(
                "Node name {name:?} will not be discoverable via DNS due to invalid characters. Valid characters include all alpha-numerics and dashes."
            ));
        }
        if !self.node_id.is_empty() && uuid::Uuid::parse_str(&self.node_id).is_err() {
            return Err(ConfigError::Invalid(format!(
                "node_id {:?} is not a valid UUID",
                self.node_id
            )));
        }
        if self.node_meta.len() > 64 {
            return Err(ConfigError::Invalid(
                "node_meta: at most 64 key/value pairs".into(),
            ));
        }
        for (key, value) in &self.node_meta {
            let key_ok = !key.is_empty()
                && key.len() <= 128
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !key_ok {
                return Err(ConfigError::Invalid(format!(
                    "node_meta: key {key:?} is invalid (1-128 characters of [A-Za-z0-9_-])"
                )));
            }
            if key.starts_with("consul-") {
                return Err(ConfigError::Invalid(format!(
                    "node_meta: key {key:?} uses the reserved prefix \"consul-\""
                )));
            }
            if value.len() > 512 {
                return Err(ConfigError::Invalid(format!(
                    "node_meta: value of {key:?} is longer than 512 characters"
                )));
            }
        }
        Ok(())
    }

    /// The node name: `node_name`, or the hostname when it is not set.
    pub fn node_name(&self) -> String {
        if self.node_name.is_empty() {
            hostname()
        } else {
            self.node_name.clone()
        }
    }

    /// Whether the web UI is served (`ui`, `ui_config.enabled`, or a UI directory).
    pub fn ui_enabled(&self) -> bool {
        self.ui || self.ui_config.enabled || !self.ui_dir().is_empty()
    }

    /// The UI directory (`ui_config.dir`, or legacy `ui_dir`); empty = embedded UI.
    pub fn ui_dir(&self) -> &str {
        if self.ui_config.dir.is_empty() {
            &self.ui_dir
        } else {
            &self.ui_config.dir
        }
    }

    /// Leave on SIGTERM: as configured, else clients yes and servers no.
    pub fn leave_on_terminate(&self) -> bool {
        self.leave_on_terminate.unwrap_or(!self.server)
    }

    /// Stay in the cluster on SIGINT: as configured, else servers yes and clients no.
    pub fn skip_leave_on_interrupt(&self) -> bool {
        self.skip_leave_on_interrupt.unwrap_or(self.server)
    }

    /// Computes the addresses and derived values the agent needs. Looks at the
    /// host (hostname, routing table) only when the configuration leaves it open.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        let bind_ip = resolve_ip("bind_addr", &self.bind_addr)?;
        let advertise_ip = if !self.advertise_addr.is_empty() {
            resolve_ip("advertise_addr", &self.advertise_addr)?
        } else if !bind_ip.is_unspecified() {
            bind_ip
        } else {
            private_ip().ok_or_else(|| {
                ConfigError::Invalid(
                    "No private IPv4 address found; set -bind or -advertise to the address to use"
                        .into(),
                )
            })?
        };
        let advertise_wan_ip = if self.advertise_addr_wan.is_empty() {
            advertise_ip
        } else {
            resolve_ip("advertise_addr_wan", &self.advertise_addr_wan)?
        };
        let client_ips = parse_ips("client_addr", &self.client_addr)?;
        let listeners = |key: &str, addresses: &str, port: i32, unix: bool| {
            if port < 0 {
                return Ok(Vec::new());
            }
            let port = port as u16;
            let parsed = parse_listen(key, addresses, unix)?;
            if parsed.is_empty() {
                Ok(client_ips
                    .iter()
                    .map(|ip| ListenAddr::Tcp(SocketAddr::new(*ip, port)))
                    .collect())
            } else {
                Ok(parsed
                    .into_iter()
                    .map(|l| match l {
                        Listen::Ip(ip) => ListenAddr::Tcp(SocketAddr::new(ip, port)),
                        Listen::Unix(path) => ListenAddr::Unix(path),
                    })
                    .collect())
            }
        };
        let a = &self.addresses;
        let p = &self.ports;
        let http = listeners("addresses.http", &a.http, p.http, true)?;
        let https = listeners("addresses.https", &a.https, p.https, true)?;
        let grpc = listeners("addresses.grpc", &a.grpc, p.grpc, true)?;
        let dns = listeners("addresses.dns", &a.dns, p.dns, false)?
            .into_iter()
            .filter_map(|l| match l {
                ListenAddr::Tcp(addr) => Some(addr),
                ListenAddr::Unix(_) => None,
            })
            .collect();
        let serf_lan_ip = if self.serf_lan.is_empty() {
            bind_ip
        } else {
            resolve_ip("serf_lan", &self.serf_lan)?
        };
        let serf_wan_ip = if self.serf_wan.is_empty() {
            bind_ip
        } else {
            resolve_ip("serf_wan", &self.serf_wan)?
        };
        let serf_wan = (self.server && p.serf_wan >= 0)
            .then(|| SocketAddr::new(serf_wan_ip, p.serf_wan as u16));
        let server_rpc = self
            .server
            .then(|| SocketAddr::new(bind_ip, p.server.max(0) as u16));
        let ui_dir = self.ui_dir();
        Ok(Resolved {
            node_name: self.node_name(),
            bind_ip,
            advertise_ip,
            advertise_wan_ip,
            client_ips,
            http,
            https,
            dns,
            grpc,
            serf_lan: SocketAddr::new(serf_lan_ip, p.serf_lan.max(0) as u16),
            serf_wan,
            server_rpc,
            leave_on_terminate: self.leave_on_terminate(),
            skip_leave_on_interrupt: self.skip_leave_on_interrupt(),
            ui_enabled: self.ui_enabled(),
            ui_dir: (!ui_dir.is_empty()).then(|| PathBuf::from(ui_dir)),
            lan_join: self
                .start_join
                .iter()
                .chain(&self.retry_join)
                .cloned()
                .collect(),
            wan_join: self
                .start_join_wan
                .iter()
                .chain(&self.retry_join_wan)
                .cloned()
                .collect(),
        })
    }
}

/// One entry of an `addresses` value.
enum Listen {
    Ip(IpAddr),
    Unix(PathBuf),
}

/// Parses an address that may be a go-sockaddr template. `Ok(None)` = a template
/// resolved only at [`Config::resolve`] time.
fn parse_bind(key: &str, text: &str) -> Result<Option<IpAddr>, ConfigError> {
    let text = text.trim();
    if let Some(template) = template_body(text) {
        return match template {
            "GetPrivateIP" | "GetPrivateIPs" | "GetPublicIP" => Ok(None),
            other => Err(ConfigError::Invalid(format!(
                "{key}: unsupported go-sockaddr template \"{{{{ {other} }}}}\" (only GetPrivateIP is supported; give an IP address)"
            ))),
        };
    }
    text.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| ConfigError::Invalid(format!("{key}: {text:?} is not a valid IP address")))
}

/// The inside of `{{ ... }}`, trimmed.
fn template_body(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    Some(inner.trim())
}

/// A bind address, with `{{ GetPrivateIP }}` resolved.
fn resolve_ip(key: &str, text: &str) -> Result<IpAddr, ConfigError> {
    match parse_bind(key, text)? {
        Some(ip) => Ok(ip),
        None => private_ip().ok_or_else(|| {
            ConfigError::Invalid(format!("{key}: {text} did not resolve to an address"))
        }),
    }
}

/// Space-separated IP addresses (or one template).
fn parse_ips(key: &str, text: &str) -> Result<Vec<IpAddr>, ConfigError> {
    if template_body(text.trim()).is_some() {
        return Ok(vec![resolve_ip(key, text)?]);
    }
    let ips = text
        .split_whitespace()
        .map(|part| resolve_ip(key, part))
        .collect::<Result<Vec<_>, _>>()?;
    if ips.is_empty() {
        return Err(ConfigError::Invalid(format!("{key} cannot be empty")));
    }
    Ok(ips)
}

/// An `addresses.*` value: space-separated IPs, or `unix:///path` where allowed.
fn parse_listen(key: &str, text: &str, unix_ok: bool) -> Result<Vec<Listen>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(path) = text.strip_prefix("unix://") {
        if !unix_ok {
            return Err(ConfigError::Invalid(format!(
                "{key}: unix sockets are not supported"
            )));
        }
        return Ok(vec![Listen::Unix(PathBuf::from(path))]);
    }
    Ok(parse_ips(key, text)?.into_iter().map(Listen::Ip).collect())
}

/// The host name, from the kernel or `$HOSTNAME`.
pub(super) fn hostname() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let name = from_kernel
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    name.trim().to_string()
}

/// The address the host would use for outbound traffic, if it is a private IPv4
/// (Consul advertises "the" private IP when bound to 0.0.0.0). Connecting a UDP
/// socket sends nothing; it only asks the kernel for a route.
fn private_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // Any private destination works; it only selects the route.
    socket.connect((Ipv4Addr::new(10, 254, 254, 254), 9)).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if is_private_v4(ip) => Some(IpAddr::V4(ip)),
        _ => {
            // No private route: fall back to the default route's source address.
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
            socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
            let ip = socket.local_addr().ok()?.ip();
            (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
        }
    }
}

/// RFC 1918 and RFC 6598 (shared address space), as go-sockaddr's `GetPrivateIP`.
fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private() || (a == 100 && (64..128).contains(&b))
}
