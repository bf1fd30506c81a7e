//! Flags of `registry-node agent`, named exactly as Consul's (`-bootstrap-expect`,
//! `-data-dir`, ...). `main` turns Go's single dash into clap's double dash first.
//!
//! Flags are a config source like any file: [`AgentArgs::sources`] returns the
//! `-dev` defaults, the files, the `-hcl` fragments and finally the flags
//! themselves as config keys, so they override scalars and append to lists exactly
//! as Consul's command line does.

use std::path::{Path, PathBuf};

use clap::ArgAction;
use serde_json::{Map, Value, json};

use super::ConfigError;
use super::file::{self, Source};
use crate::cli::goflags::parse_bool as go_bool;

/// Format of config files whose extension does not say (`-config-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigFormat {
    /// JSON.
    Json,
    /// HCL.
    Hcl,
}

impl ConfigFormat {
    /// The format a file name implies (`.json` / `.hcl`).
    pub fn from_path(path: &Path) -> Option<ConfigFormat> {
        match path.extension()?.to_str()? {
            "json" => Some(ConfigFormat::Json),
            "hcl" => Some(ConfigFormat::Hcl),
            _ => None,
        }
    }
}

/// Flags of `registry-node agent`.
///
/// Booleans accept `-server`, `-server=true` and `-server=false`; they are
/// `Option`s so that "not given" does not override a config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// Development mode: in-memory server with the UI, bound to 127.0.0.1.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub dev: Option<bool>,
    /// Run in server mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub server: Option<bool>,
    /// Bootstrap mode: elect itself leader (one server per datacenter at most).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub bootstrap: Option<bool>,
    /// Number of servers to wait for before bootstrapping.
    #[arg(long, value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// Directory for persistent state.
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Node name (default: hostname).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Node UUID (default: generated and persisted).
    #[arg(long, value_name = "UUID")]
    pub node_id: Option<String>,
    /// Use a random node ID instead of one derived from the host.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub disable_host_node_id: Option<bool>,
    /// Datacenter of the agent (`-dc` is the pre-1.0 name).
    #[arg(long, alias = "dc", value_name = "DC")]
    pub datacenter: Option<String>,
    /// Address to bind cluster traffic to.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Address to advertise to the LAN.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<String>,
    /// Address to advertise to the WAN.
    #[arg(long, value_name = "ADDR")]
    pub advertise_wan: Option<String>,
    /// Serf LAN bind address.
    #[arg(long, value_name = "ADDR")]
    pub serf_lan_bind: Option<String>,
    /// Serf WAN bind address.
    #[arg(long, value_name = "ADDR")]
    pub serf_wan_bind: Option<String>,
    /// Address(es) of the client interfaces (HTTP, DNS), space separated.
    #[arg(long, value_name = "ADDR")]
    pub client: Option<String>,
    /// Serve the web UI.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub ui: Option<bool>,
    /// Serve the web UI from this directory.
    #[arg(long, value_name = "PATH")]
    pub ui_dir: Option<String>,
    /// URL path of the web UI.
    #[arg(long, value_name = "PATH")]
    pub ui_content_path: Option<String>,
    /// Config file to load (repeatable).
    #[arg(long, value_name = "PATH")]
    pub config_file: Vec<PathBuf>,
    /// Directory of *.json / *.hcl config files (repeatable).
    #[arg(long, value_name = "PATH")]
    pub config_dir: Vec<PathBuf>,
    /// Format of config files regardless of their extension.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub config_format: Option<ConfigFormat>,
    /// HTTP API port (-1 disables).
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub http_port: Option<i32>,
    /// HTTPS API port (-1 disables).
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub https_port: Option<i32>,
    /// DNS port (-1 disables).
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub dns_port: Option<i32>,
    /// Server RPC port.
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub server_port: Option<i32>,
    /// Serf LAN port.
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub serf_lan_port: Option<i32>,
    /// Serf WAN port (-1 disables).
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub serf_wan_port: Option<i32>,
    /// gRPC port (-1 disables).
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub grpc_port: Option<i32>,
    /// gRPC-TLS port (-1 disables).
    #[arg(long, value_parser = port(), allow_negative_numbers = true, value_name = "PORT")]
    pub grpc_tls_port: Option<i32>,
    /// Log level: trace, debug, info, warn, err.
    #[arg(long, value_parser = log_level, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Also write logs to this file (a timestamp is appended to the name).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<String>,
    /// Log as JSON.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub log_json: Option<bool>,
    /// Write the agent's PID to this file.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<String>,
    /// Node metadata as key:value (repeatable).
    #[arg(long, value_parser = key_value, value_name = "KEY:VALUE")]
    pub node_meta: Vec<(String, String)>,
    /// Allow script checks from any source.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub enable_script_checks: Option<bool>,
    /// Allow script checks from config files only.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub enable_local_script_checks: Option<bool>,
    /// Join this LAN address at start (deprecated; like -retry-join).
    #[arg(long, value_name = "ADDR")]
    pub join: Vec<String>,
    /// Join this LAN address, retrying until it answers (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// Wait between join attempts.
    #[arg(long, value_parser = go_duration, value_name = "DURATION")]
    pub retry_interval: Option<String>,
    /// Join attempts before giving up (0 = forever).
    #[arg(long, value_name = "N")]
    pub retry_max: Option<u32>,
    /// Join this WAN address at start (deprecated; like -retry-join-wan).
    #[arg(long, value_name = "ADDR")]
    pub join_wan: Vec<String>,
    /// Join this WAN address, retrying (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub retry_join_wan: Vec<String>,
    /// Wait between WAN join attempts.
    #[arg(long, value_parser = go_duration, value_name = "DURATION")]
    pub retry_interval_wan: Option<String>,
    /// WAN join attempts before giving up (0 = forever).
    #[arg(long, value_name = "N")]
    pub retry_max_wan: Option<u32>,
    /// Rejoin the cluster on restart even after a graceful leave.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_parser = go_bool, value_name = "BOOL")]
    pub rejoin: Option<bool>,
    /// Base64 gossip encryption key.
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,
    /// DNS domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Alternate DNS domain.
    #[arg(long, value_name = "DOMAIN")]
    pub alt_domain: Option<String>,
    /// Upstream DNS resolver (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub recursor: Vec<String>,
    /// Inline HCL config fragment (repeatable), applied after the files.
    #[arg(long, value_name = "HCL")]
    pub hcl: Vec<String>,
    /// Blocking-query wait when none is given.
    #[arg(long, value_parser = go_duration, value_name = "DURATION")]
    pub default_query_time: Option<String>,
    /// Longest blocking-query wait.
    #[arg(long, value_parser = go_duration, value_name = "DURATION")]
    pub max_query_time: Option<String>,
    /// Raft protocol version (3).
    #[arg(long, value_name = "N")]
    pub raft_protocol: Option<u32>,
    /// Serf protocol version (accepted and ignored, as in Consul 1.x).
    #[arg(long, value_name = "N")]
    pub protocol: Option<u32>,
}

fn port() -> clap::builder::RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(-1..=65535)
}

fn go_duration(text: &str) -> Result<String, String> {
    registry_api::duration::parse_duration(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

fn log_level(text: &str) -> Result<String, String> {
    match super::logging::parse_level(text) {
        Some(_) => Ok(text.to_string()),
        None => Err("must be one of trace, debug, info, warn, err".to_string()),
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err("must be of the form key:value".to_string()),
    }
}

impl AgentArgs {
    /// Whether `-dev` was given.
    pub fn is_dev(&self) -> bool {
        self.dev == Some(true)
    }

    /// Every config source in precedence order: `-dev` defaults, files and
    /// directories, `-hcl` fragments, then the flags themselves.
    ///
    /// Files come before directories: clap does not keep the relative order of
    /// `-config-file` and `-config-dir` (Consul does).
    pub fn sources(&self, warnings: &mut Vec<String>) -> Result<Vec<Source>, ConfigError> {
        let mut sources = Vec::new();
        if self.is_dev() {
            sources.push(Source::from_value("dev mode defaults", dev_defaults())?);
        }
        for path in self.config_file.iter().chain(&self.config_dir) {
            sources.extend(file::read_path(path, self.config_format, warnings)?);
        }
        for (index, text) in self.hcl.iter().enumerate() {
            let name = format!("-hcl #{}", index + 1);
            sources.push(Source::parse(&name, text, ConfigFormat::Hcl)?);
        }
        sources.push(Source::from_value(
            "command line flags",
            self.flag_values(),
        )?);
        Ok(sources)
    }

    /// The flags that were given, as config-file keys.
    pub fn flag_values(&self) -> Value {
        let mut top = Map::new();
        let mut ports = Map::new();
        let mut ui_config = Map::new();
        let set = |map: &mut Map<String, Value>, key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.to_string(), value);
            }
        };
        let string = |v: &Option<String>| v.as_ref().map(|s| Value::from(s.as_str()));
        let list = |v: &[String]| (!v.is_empty()).then(|| Value::from(v.to_vec()));

        set(&mut top, "server", self.server.map(Value::from));
        set(&mut top, "bootstrap", self.bootstrap.map(Value::from));
        set(
            &mut top,
            "bootstrap_expect",
            self.bootstrap_expect.map(Value::from),
        );
        let data_dir = self
            .data_dir
            .as_ref()
            .map(|p| Value::from(p.to_string_lossy().as_ref()));
        set(&mut top, "data_dir", data_dir);
        set(&mut top, "node_name", string(&self.node));
        set(&mut top, "node_id", string(&self.node_id));
        set(
            &mut top,
            "disable_host_node_id",
            self.disable_host_node_id.map(Value::from),
        );
        set(&mut top, "datacenter", string(&self.datacenter));
        set(&mut top, "bind_addr", string(&self.bind));
        set(&mut top, "advertise_addr", string(&self.advertise));
        set(&mut top, "advertise_addr_wan", string(&self.advertise_wan));
        set(&mut top, "serf_lan", string(&self.serf_lan_bind));
        set(&mut top, "serf_wan", string(&self.serf_wan_bind));
        set(&mut top, "client_addr", string(&self.client));
        set(&mut ui_config, "enabled", self.ui.map(Value::from));
        set(&mut ui_config, "dir", string(&self.ui_dir));
        set(
            &mut ui_config,
            "content_path",
            string(&self.ui_content_path),
        );
        set(&mut ports, "http", self.http_port.map(Value::from));
        set(&mut ports, "https", self.https_port.map(Value::from));
        set(&mut ports, "dns", self.dns_port.map(Value::from));
        set(&mut ports, "server", self.server_port.map(Value::from));
        set(&mut ports, "serf_lan", self.serf_lan_port.map(Value::from));
        set(&mut ports, "serf_wan", self.serf_wan_port.map(Value::from));
        set(&mut ports, "grpc", self.grpc_port.map(Value::from));
        set(&mut ports, "grpc_tls", self.grpc_tls_port.map(Value::from));
        set(&mut top, "log_level", string(&self.log_level));
        set(&mut top, "log_file", string(&self.log_file));
        set(&mut top, "log_json", self.log_json.map(Value::from));
        set(&mut top, "pid_file", string(&self.pid_file));
        if !self.node_meta.is_empty() {
            let meta: Map<String, Value> = self
                .node_meta
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            top.insert("node_meta".to_string(), Value::Object(meta));
        }
        set(
            &mut top,
            "enable_script_checks",
            self.enable_script_checks.map(Value::from),
        );
        let local_scripts = self.enable_local_script_checks.map(Value::from);
        set(&mut top, "enable_local_script_checks", local_scripts);
        set(&mut top, "start_join", list(&self.join));
        set(&mut top, "retry_join", list(&self.retry_join));
        set(&mut top, "retry_interval", string(&self.retry_interval));
        set(&mut top, "retry_max", self.retry_max.map(Value::from));
        set(&mut top, "start_join_wan", list(&self.join_wan));
        set(&mut top, "retry_join_wan", list(&self.retry_join_wan));
        set(
            &mut top,
            "retry_interval_wan",
            string(&self.retry_interval_wan),
        );
        set(
            &mut top,
            "retry_max_wan",
            self.retry_max_wan.map(Value::from),
        );
        set(&mut top, "rejoin_after_leave", self.rejoin.map(Value::from));
        set(&mut top, "encrypt", string(&self.encrypt));
        set(&mut top, "domain", string(&self.domain));
        set(&mut top, "alt_domain", string(&self.alt_domain));
        set(&mut top, "recursors", list(&self.recursor));
        set(
            &mut top,
            "default_query_time",
            string(&self.default_query_time),
        );
        set(&mut top, "max_query_time", string(&self.max_query_time));
        set(
            &mut top,
            "raft_protocol",
            self.raft_protocol.map(Value::from),
        );
        if !ports.is_empty() {
            top.insert("ports".to_string(), Value::Object(ports));
        }
        if !ui_config.is_empty() {
            top.insert("ui_config".to_string(), Value::Object(ui_config));
        }
        Value::Object(top)
    }
}

/// What `-dev` sets before any file is read (Consul's `DevSource`).
fn dev_defaults() -> Value {
    json!({
        "server": true,
        "bootstrap": true,
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "log_level": "DEBUG",
        "disable_anonymous_signature": true,
        "disable_keyring_file": true,
        "ui_config": { "enabled": true },
        "connect": { "enabled": true },
        "ports": { "grpc": 8502 },
        "performance": { "raft_multiplier": 1 },
        "gossip_lan": {
            "gossip_interval": "100ms",
            "probe_interval": "100ms",
            "probe_timeout": "100ms",
            "suspicion_mult": 3,
            "retransmit_mult": 2
        },
        "gossip_wan": {
            "gossip_interval": "100ms",
            "probe_interval": "100ms",
            "probe_timeout": "100ms",
            "suspicion_mult": 3,
            "retransmit_mult": 2
        }
    })
}
