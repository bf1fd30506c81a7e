//! Agent configuration: Consul's config-file keys (JSON or HCL) and agent flags.
//!
//! [`load`] builds one [`Config`] the way Consul does, then validates it:
//!
//! ```text
//! defaults < -dev < -config-file / -config-dir (in order) < -hcl fragments < flags
//! ```
//!
//! Every source is parsed into a JSON value and merged: objects merge key by key,
//! lists append and scalars overwrite. Each source is checked on its own first so
//! that an unknown key or a bad value is reported with the file it came from.
//! `service`/`services` and `check`/`checks` blocks are gathered into lists and
//! decoded into the API crate's wire types, exactly as the HTTP API decodes them.
//!
//! # Layout
//! - `mod.rs`: [`Config`] (top-level keys), [`ConfigError`], [`load`].
//! - [`sections`]: nested blocks (`ports`, `dns_config`, `acl`...).
//! - `flags.rs`: [`AgentArgs`], the agent's command-line flags.
//! - `file.rs`: reading files and directories, HCL/JSON, merging.
//! - `runtime.rs`: validation and the resolved values the agent binds to ([`Resolved`]).
//! - [`logging`]: the tracing subscriber (`-log-level`, `-log-json`, `-log-file`).

mod de;
mod file;
mod flags;
pub mod logging;
mod runtime;
pub mod sections;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_api::{AgentServiceRegistration, CheckDefinition, GoDuration};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use file::{Source, parse_service_definition};
pub use flags::{AgentArgs, ConfigFormat};
pub use runtime::{ListenAddr, Resolved};
pub use sections::*;

/// Errors of loading and validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("Error reading {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A source is not valid JSON/HCL, or holds an unknown key or a bad value.
    #[error("Error parsing {source_name}: {message}")]
    Parse {
        /// File path, or `-hcl` / `command line flags` for inline sources.
        source_name: String,
        /// Dotted key path of the problem (`ports.http`); empty for syntax errors.
        key: String,
        /// What is wrong, including the key.
        message: String,
    },
    /// The merged configuration is inconsistent (`bootstrap` with `bootstrap_expect`...).
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// Whether the error is an unknown configuration key.
    pub fn is_unknown_key(&self) -> bool {
        matches!(self, ConfigError::Parse { message, .. } if message.starts_with("unknown field"))
    }

    /// The file (or inline source) the error comes from, if any.
    pub fn source_name(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { source_name, .. } => Some(source_name),
            ConfigError::Read { path, .. } => path.to_str(),
            ConfigError::Invalid(_) => None,
        }
    }
}

/// Loads the agent configuration from its flags, files and `-hcl` fragments, then
/// validates it. Warnings (deprecated keys, `bootstrap_expect = 1`...) are logged.
pub fn load(args: &AgentArgs) -> Result<Config, ConfigError> {
    let (config, warnings) = load_with_warnings(args)?;
    for warning in warnings {
        tracing::warn!(%warning, "configuration warning");
    }
    Ok(config)
}

/// [`load`], returning the warnings instead of logging them.
pub fn load_with_warnings(args: &AgentArgs) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let sources = args.sources(&mut warnings)?;
    let mut config = Config::from_sources(sources, args.is_dev())?;
    config.finish(&mut warnings);
    warnings.extend(config.validate()?);
    Ok((config, warnings))
}

/// Checks configuration files and directories the way `registry-node validate` does:
/// everything [`load`] checks except that `data_dir` may be missing (the data
/// directory is usually given on the command line, not in shared files).
pub fn check_paths(
    paths: &[PathBuf],
    format: Option<ConfigFormat>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    for path in paths {
        sources.extend(file::read_path(path, format, &mut warnings)?);
    }
    let mut config = Config::from_sources(sources, false)?;
    if config.data_dir.is_none() {
        // Stands in for the command line's -data-dir; never used for I/O.
        config.data_dir = Some(PathBuf::from("/"));
    }
    config.finish(&mut warnings);
    warnings.extend(config.validate()?);
    Ok((config, warnings))
}

/// The agent configuration: one field per Consul config-file key (snake_case).
///
/// Fields hold what the files said, with defaults filled in; values that depend on
/// other keys or on the host (node name, advertise address, listener addresses)
/// are computed by [`Config::resolve`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Set by `-dev`: in-memory server with UI; nothing is persisted. Not a file key.
    #[serde(skip)]
    pub dev_mode: bool,

    // --- role and identity ---------------------------------------------------
    /// Run as a server (Raft voter) instead of a client.
    #[serde(default)]
    pub server: bool,
    /// Elect itself leader without waiting for peers (one server per DC at most).
    #[serde(default)]
    pub bootstrap: bool,
    /// Wait for this many servers, then bootstrap Raft with all of them (0 = off).
    #[serde(default)]
    pub bootstrap_expect: u32,
    /// Datacenter name (lower-cased on load).
    #[serde(default = "default_datacenter")]
    pub datacenter: String,
    /// Authoritative datacenter for ACLs and intentions (empty = this one).
    #[serde(default)]
    pub primary_datacenter: String,
    /// Old name of `primary_datacenter`.
    #[serde(default)]
    pub acl_datacenter: String,
    /// Directory for Raft data, node ID and persisted services (required unless `-dev`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Node name (empty = hostname); unique in the datacenter.
    #[serde(default)]
    pub node_name: String,
    /// Node UUID (empty = generated and persisted in `data_dir`).
    #[serde(default)]
    pub node_id: String,
    /// Do not derive the node ID from the host; use a random one.
    #[serde(default = "default_true")]
    pub disable_host_node_id: bool,
    /// Node metadata.
    #[serde(default)]
    pub node_meta: BTreeMap<String, String>,

    // --- addresses -------------------------------------------------------------
    /// Address for cluster traffic (gossip, server RPC); `0.0.0.0` = all, advertise
    /// the private IPv4.
    #[serde(default = "default_bind_addr")]
    pub bind_addr: String,
    /// Serf LAN bind address (empty = `bind_addr`).
    #[serde(default)]
    pub serf_lan: String,
    /// Serf WAN bind address (empty = `bind_addr`).
    #[serde(default)]
    pub serf_wan: String,
    /// Address advertised to the LAN (empty = bind address or detected private IP).
    #[serde(default)]
    pub advertise_addr: String,
    /// Address advertised to the WAN (empty = `advertise_addr`).
    #[serde(default)]
    pub advertise_addr_wan: String,
    /// IPv4 tagged address (accepted; defaults to the advertise address).
    #[serde(default)]
    pub advertise_addr_ipv4: String,
    /// IPv6 tagged address (accepted).
    #[serde(default)]
    pub advertise_addr_ipv6: String,
    /// Address(es), space separated, of the client interfaces (HTTP, DNS, gRPC).
    #[serde(default = "default_client_addr")]
    pub client_addr: String,
    /// Per-interface overrides of `client_addr`.
    #[serde(default)]
    pub addresses: AddressesConfig,
    /// Listener ports.
    #[serde(default)]
    pub ports: PortsConfig,
    /// Answer with WAN addresses to queries from other datacenters.
    #[serde(default)]
    pub translate_wan_addrs: bool,

    // --- joining ---------------------------------------------------------------
    /// LAN addresses to join at start, retried until one answers.
    #[serde(default)]
    pub retry_join: Vec<String>,
    /// Wait between `retry_join` attempts.
    #[serde(default = "default_retry_interval")]
    pub retry_interval: GoDuration,
    /// `retry_join` attempts before giving up (0 = forever).
    #[serde(default)]
    pub retry_max: u32,
    /// WAN addresses to join (servers), retried.
    #[serde(default)]
    pub retry_join_wan: Vec<String>,
    /// Wait between `retry_join_wan` attempts.
    #[serde(default = "default_retry_interval")]
    pub retry_interval_wan: GoDuration,
    /// `retry_join_wan` attempts before giving up (0 = forever).
    #[serde(default)]
    pub retry_max_wan: u32,
    /// Deprecated: LAN addresses to join once at start (`-join`). Treated like `retry_join`.
    #[serde(default)]
    pub start_join: Vec<String>,
    /// Deprecated: WAN addresses to join once at start (`-join-wan`).
    #[serde(default)]
    pub start_join_wan: Vec<String>,
    /// Rejoin the cluster on restart even after a graceful leave.
    #[serde(default)]
    pub rejoin_after_leave: bool,
    /// Leave the cluster on SIGTERM (unset: clients yes, servers no).
    #[serde(default)]
    pub leave_on_terminate: Option<bool>,
    /// Do not leave on SIGINT (unset: clients leave, servers do not).
    #[serde(default)]
    pub skip_leave_on_interrupt: Option<bool>,
    /// Remove failed LAN members after this long (at least 8h).
    #[serde(default = "default_reconnect_timeout")]
    pub reconnect_timeout: GoDuration,
    /// Remove failed WAN members after this long (at least 8h).
    #[serde(default = "default_reconnect_timeout")]
    pub reconnect_timeout_wan: GoDuration,
    /// LAN gossip tuning.
    #[serde(default)]
    pub gossip_lan: GossipConfig,
    /// WAN gossip tuning.
    #[serde(default)]
    pub gossip_wan: GossipConfig,

    // --- gossip encryption -----------------------------------------------------
    /// Base64 gossip key (16, 24 or 32 bytes).
    #[serde(default)]
    pub encrypt: String,
    /// Reject unencrypted gossip.
    #[serde(default = "default_true")]
    pub encrypt_verify_incoming: bool,
    /// Send encrypted gossip.
    #[serde(default = "default_true")]
    pub encrypt_verify_outgoing: bool,
    /// Do not persist the keyring in `data_dir`.
    #[serde(default)]
    pub disable_keyring_file: bool,

    // --- DNS -------------------------------------------------------------------
    /// DNS domain served.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Second domain answered like `domain`.
    #[serde(default)]
    pub alt_domain: String,
    /// Upstream resolvers for names outside the domains.
    #[serde(default)]
    pub recursors: Vec<String>,
    /// DNS behaviour.
    #[serde(default)]
    pub dns_config: DnsConfig,

    // --- logging ---------------------------------------------------------------
    /// `trace`, `debug`, `info`, `warn` or `err` (any case).
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Log as JSON.
    #[serde(default)]
    pub log_json: bool,
    /// Also log to this file (prefix; a timestamp is appended).
    #[serde(default)]
    pub log_file: String,
    /// Rotate the log file after this many bytes (accepted, not implemented).
    #[serde(default)]
    pub log_rotate_bytes: u64,
    /// Rotate the log file after this long (accepted, not implemented).
    #[serde(default)]
    pub log_rotate_duration: Option<GoDuration>,
    /// Rotated files kept (accepted, not implemented).
    #[serde(default)]
    pub log_rotate_max_files: i32,
    /// Log to syslog (accepted, not implemented).
    #[serde(default)]
    pub enable_syslog: bool,
    /// Syslog facility (accepted, not implemented).
    #[serde(default)]
    pub syslog_facility: String,
    /// Write the agent's PID here.
    #[serde(default)]
    pub pid_file: String,
    /// Debug endpoints on (accepted).
    #[serde(default)]
    pub enable_debug: bool,

    // --- checks and services -----------------------------------------------------
    /// Allow script checks from any source (API included).
    #[serde(default)]
    pub enable_script_checks: bool,
    /// Allow script checks from config files only.
    #[serde(default)]
    pub enable_local_script_checks: bool,
    /// Sync unchanged-status check output to the servers at most this often.
    #[serde(default = "default_check_update_interval")]
    pub check_update_interval: GoDuration,
    /// Drop check output.
    #[serde(default)]
    pub discard_check_output: bool,
    /// Largest check output kept, in bytes.
    #[serde(default = "default_check_output_max_size")]
    pub check_output_max_size: usize,
    /// Refuse `exec` jobs.
    #[serde(default = "default_true")]
    pub disable_remote_exec: bool,
    /// Services defined in config files (`service` blocks and `services` lists).
    #[serde(default, deserialize_with = "de::consul_list")]
    pub services: Vec<AgentServiceRegistration>,
    /// Node-level checks defined in config files (`check` blocks and `checks` lists).
    #[serde(default, deserialize_with = "de::consul_list")]
    pub checks: Vec<CheckDefinition>,
    /// Watches (kept opaque; run by `watch` handlers).
    #[serde(default)]
    pub watches: Vec<Value>,
    /// Central service defaults (accepted).
    #[serde(default = "default_true")]
    pub enable_central_service_config: bool,

    // --- timing ------------------------------------------------------------------
    /// Shortest session TTL accepted.
    #[serde(default = "default_session_ttl_min")]
    pub session_ttl_min: GoDuration,
    /// Blocking-query wait when `?wait` is not given.
    #[serde(default = "default_default_query_time")]
    pub default_query_time: GoDuration,
    /// Longest blocking-query wait.
    #[serde(default = "default_max_query_time")]
    pub max_query_time: GoDuration,
    /// Stale-read staleness that triggers a consistent retry (0 = never).
    #[serde(default)]
    pub discovery_max_stale: GoDuration,

    // --- Raft ------------------------------------------------------------------
    /// Raft protocol version (only 3).
    #[serde(default = "default_raft_protocol")]
    pub raft_protocol: u32,
    /// Log entries between snapshots.
    #[serde(default = "default_raft_snapshot_threshold")]
    pub raft_snapshot_threshold: u64,
    /// How often to check whether a snapshot is due.
    #[serde(default = "default_raft_snapshot_interval")]
    pub raft_snapshot_interval: GoDuration,
    /// Log entries kept after a snapshot.
    #[serde(default = "default_raft_trailing_logs")]
    pub raft_trailing_logs: u64,
    /// Raft timing.
    #[serde(default)]
    pub performance: PerformanceConfig,
    /// Dead-server cleanup and server health.
    #[serde(default)]
    pub autopilot: AutopilotConfig,
    /// Request and size limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Non-voting server (Enterprise; accepted).
    #[serde(default)]
    pub non_voting_server: bool,
    /// Read replica (Enterprise; accepted).
    #[serde(default)]
    pub read_replica: bool,

    // --- HTTP / UI ---------------------------------------------------------------
    /// HTTP API behaviour.
    #[serde(default)]
    pub http_config: HttpConfig,
    /// Legacy switch for the web UI (same as `ui_config.enabled`).
    #[serde(default)]
    pub ui: bool,
    /// Legacy UI directory (same as `ui_config.dir`).
    #[serde(default)]
    pub ui_dir: String,
    /// Web UI.
    #[serde(default)]
    pub ui_config: UiConfig,
    /// Serve blocking queries from the streaming backend (accepted).
    #[serde(default = "default_true")]
    pub use_streaming_backend: bool,
    /// Server RPC options.
    #[serde(default)]
    pub rpc: RpcConfig,
    /// Do not check for new releases (nothing is ever checked).
    #[serde(default)]
    pub disable_update_check: bool,
    /// Accepted; there is no update check to sign.
    #[serde(default)]
    pub disable_anonymous_signature: bool,
    /// Reload config files when they change (accepted; use `reload` or SIGHUP).
    #[serde(default)]
    pub auto_reload_config: bool,

    // --- accepted, not enforced --------------------------------------------------
    /// ACLs (parsed, not enforced).
    #[serde(default)]
    pub acl: AclConfig,
    /// Legacy ACL default policy.
    #[serde(default)]
    pub acl_default_policy: String,
    /// Legacy ACL down policy.
    #[serde(default)]
    pub acl_down_policy: String,
    /// Legacy default token.
    #[serde(default)]
    pub acl_token: String,
    /// Legacy management token.
    #[serde(default)]
    pub acl_master_token: String,
    /// Legacy agent token.
    #[serde(default)]
    pub acl_agent_token: String,
    /// Legacy agent master token.
    #[serde(default)]
    pub acl_agent_master_token: String,
    /// Legacy replication token.
    #[serde(default)]
    pub acl_replication_token: String,
    /// Legacy ACL TTL.
    #[serde(default)]
    pub acl_ttl: Option<GoDuration>,
    /// Legacy ACL switch.
    #[serde(default)]
    pub acl_enforce_version_8: Option<bool>,
    /// TLS (parsed; TLS listeners are not implemented).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Legacy top-level CA bundle.
    #[serde(default)]
    pub ca_file: String,
    /// Legacy top-level CA directory.
    #[serde(default)]
    pub ca_path: String,
    /// Legacy top-level certificate.
    #[serde(default)]
    pub cert_file: String,
    /// Legacy top-level key.
    #[serde(default)]
    pub key_file: String,
    /// Legacy top-level `verify_incoming`.
    #[serde(default)]
    pub verify_incoming: bool,
    /// Legacy top-level `verify_outgoing`.
    #[serde(default)]
    pub verify_outgoing: bool,
    /// Legacy top-level `verify_server_hostname`.
    #[serde(default)]
    pub verify_server_hostname: bool,
    /// Use the agent's TLS settings for HTTP/gRPC checks.
    #[serde(default = "default_true")]
    pub enable_agent_tls_for_checks: bool,
    /// Telemetry (parsed; sinks are not implemented).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Service mesh (parsed; not implemented).
    #[serde(default)]
    pub connect: ConnectConfig,
    /// Auto-encrypt (kept opaque; not implemented).
    #[serde(default)]
    pub auto_encrypt: Option<Value>,
    /// Auto-config (kept opaque; not implemented).
    #[serde(default)]
    pub auto_config: Option<Value>,
    /// Config entries to bootstrap (kept opaque; not implemented).
    #[serde(default)]
    pub config_entries: Option<Value>,
    /// Cluster peering (kept opaque; not implemented).
    #[serde(default)]
    pub peering: Option<Value>,
    /// Locality of the node (kept opaque).
    #[serde(default)]
    pub locality: Option<Value>,
    /// Network segment (Enterprise; accepted).
    #[serde(default)]
    pub segment: String,
}

fn default_true() -> bool {
    true
}
fn default_datacenter() -> String {
    "dc1".to_string()
}
fn default_bind_addr() -> String {
    "0.0.0.0".to_string()
}
fn default_client_addr() -> String {
    "127.0.0.1".to_string()
}
fn default_retry_interval() -> GoDuration {
    GoDuration(Duration::from_secs(30))
}
fn default_reconnect_timeout() -> GoDuration {
    GoDuration(Duration::from_secs(72 * 3600))
}
fn default_domain() -> String {
    "consul.".to_string()
}
fn default_log_level() -> String {
    "INFO".to_string()
}
fn default_check_update_interval() -> GoDuration {
    GoDuration(Duration::from_secs(5 * 60))
}
fn default_check_output_max_size() -> usize {
    4096
}
fn default_session_ttl_min() -> GoDuration {
    GoDuration(Duration::from_secs(10))
}
fn default_default_query_time() -> GoDuration {
    GoDuration(Duration::from_secs(300))
}
fn default_max_query_time() -> GoDuration {
    GoDuration(Duration::from_secs(600))
}
fn default_raft_protocol() -> u32 {
    3
}
fn default_raft_snapshot_threshold() -> u64 {
    16384
}
fn default_raft_snapshot_interval() -> GoDuration {
    GoDuration(Duration::from_secs(30))
}
fn default_raft_trailing_logs() -> u64 {
    10000
}

impl Default for Config {
    /// Consul's defaults: what an empty config file means.
    fn default() -> Self {
        de::from_value(Value::Object(Default::default())).expect("every Config field has a default")
    }
}

impl Config {
    /// A dev-mode server for tests: every port 0 (the OS picks), everything on
    /// 127.0.0.1, in memory, a unique node name. Tests change fields before
    /// starting the agent.
    pub fn for_test() -> Config {
        let mut config = Config {
            dev_mode: true,
            server: true,
            bootstrap: true,
            // Unique, so several test nodes can share one process.
            node_name: format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            bind_addr: "127.0.0.1".to_string(),
            advertise_addr: "127.0.0.1".to_string(),
            client_addr: "127.0.0.1".to_string(),
            ..Config::default()
        };
        config.ports = PortsConfig {
            dns: 0,
            http: 0,
            https: -1,
            grpc: -1,
            grpc_tls: -1,
            serf_lan: 0,
            serf_wan: 0,
            server: 0,
            ..PortsConfig::default()
        };
        config.performance.raft_multiplier = 1;
        config
    }

    /// Builds a configuration from sources merged in order (no validation).
    pub fn from_sources(sources: Vec<Source>, dev_mode: bool) -> Result<Config, ConfigError> {
        let mut merged = Value::Object(Default::default());
        for source in sources {
            // Check each source alone, so errors name the file they come from.
            source.check()?;
            file::merge(&mut merged, source.value);
        }
        let mut config: Config = de::from_value(merged).map_err(|e| ConfigError::Parse {
            source_name: "merged configuration".to_string(),
            key: e.path(),
            message: e.to_string(),
        })?;
        config.dev_mode = dev_mode;
        Ok(config)
    }

    /// Parses one config text (for tests and `services register`-style tools).
    pub fn parse_str(name: &str, text: &str, format: ConfigFormat) -> Result<Config, ConfigError> {
        let source = Source::parse(name, text, format)?;
        let mut config = Config::from_sources(vec![source], false)?;
        config.finish(&mut Vec::new());
        Ok(config)
    }

    /// Consul's post-merge adjustments, before validation.
    fn finish(&mut self, warnings: &mut Vec<String>) {
        self.datacenter = self.datacenter.to_lowercase();
        if self.bootstrap_expect == 1 && !self.bootstrap {
            warnings
                .push("BootstrapExpect is set to 1; this is the same as Bootstrap mode.".into());
            self.bootstrap = true;
            self.bootstrap_expect = 0;
        }
        if !self.domain.ends_with('.') {
            self.domain.push('.');
        }
        if !self.alt_domain.is_empty() && !self.alt_domain.ends_with('.') {
            self.alt_domain.push('.');
        }
        if self.primary_datacenter.is_empty() && !self.acl_datacenter.is_empty() {
            warnings.push("The 'acl_datacenter' field is deprecated. Use the 'primary_datacenter' field instead.".into());
            self.primary_datacenter = self.acl_datacenter.to_lowercase();
        }
        if !self.start_join.is_empty() {
            warnings.push(
                "The 'start_join' field (-join) is deprecated; its addresses are joined like 'retry_join'."
                    .into(),
            );
        }
        if self.dev_mode && self.data_dir.is_none() {
            warnings.push("Dev mode: nothing is persisted; all data is lost on exit.".into());
        }
    }

    /// Whether the agent keeps everything in memory (`-dev`).
    pub fn in_memory(&self) -> bool {
        self.dev_mode
    }

    /// The data directory, `None` in dev mode.
    pub fn data_dir(&self) -> Option<&Path> {
        if self.dev_mode {
            None
        } else {
            self.data_dir.as_deref()
        }
    }
}
