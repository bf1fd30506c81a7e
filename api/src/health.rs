//! Health wire types: checks, their definitions and `/v1/health/service` entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::GoDuration;
use crate::catalog::{AgentService, Node, NodeService, null_default};

/// Check status `passing`.
pub const PASSING: &str = "passing";
/// Check status `warning`.
pub const WARNING: &str = "warning";
/// Check status `critical`.
pub const CRITICAL: &str = "critical";
/// Aggregated status `maintenance` (never stored on a check).
pub const MAINTENANCE: &str = "maintenance";

/// The node-level gossip health check every agent has.
pub const SERF_CHECK_ID: &str = "serfHealth";
/// Name of [`SERF_CHECK_ID`].
pub const SERF_CHECK_NAME: &str = "Serf Health Status";
/// Node maintenance check ID.
pub const NODE_MAINT_CHECK_ID: &str = "_node_maintenance";
/// Prefix of service maintenance check IDs (`_service_maintenance:<id>`).
pub const SERVICE_MAINT_PREFIX: &str = "_service_maintenance:";

/// Health ordering for aggregation: maintenance > critical > warning > passing.
pub fn status_rank(status: &str) -> u8 {
    match status {
        PASSING => 0,
        WARNING => 1,
        CRITICAL => 2,
        MAINTENANCE => 3,
        _ => 2,
    }
}

/// A health check as the catalog stores and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthCheck {
    /// Node the check belongs to.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Check ID, unique on its node.
    #[serde(rename = "CheckID", default, alias = "ID")]
    pub check_id: String,
    /// Human name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// `passing`, `warning` or `critical`.
    #[serde(rename = "Status", default)]
    pub status: String,
    /// Operator notes.
    #[serde(rename = "Notes", default)]
    pub notes: String,
    /// Output of the last run.
    #[serde(rename = "Output", default)]
    pub output: String,
    /// Service instance the check is bound to ("" for node checks).
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    /// Name of that service.
    #[serde(rename = "ServiceName", default)]
    pub service_name: String,
    /// Tags of that service.
    #[serde(rename = "ServiceTags", default, deserialize_with = "null_default")]
    pub service_tags: Vec<String>,
    /// `http`, `tcp`, `ttl`, `script`, … ("" for serfHealth and maintenance).
    #[serde(rename = "Type", default)]
    pub check_type: String,
    /// Run interval as a Go duration ("" when not periodic).
    #[serde(rename = "Interval", default)]
    pub interval: String,
    /// Timeout as a Go duration.
    #[serde(rename = "Timeout", default)]
    pub timeout: String,
    /// Exposed port (Connect; always 0 here).
    #[serde(rename = "ExposedPort", default)]
    pub exposed_port: u16,
    /// The definition the check was registered with.
    #[serde(rename = "Definition", default)]
    pub definition: HealthCheckDefinition,
    /// Raft index that created the check.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `Definition` of a stored check: how it runs. Typed rather than a JSON map so
/// that a thousand stored checks do not cost a thousand small maps; empty
/// fields are omitted (`{}` for TTL and serfHealth checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthCheckDefinition {
    /// Run interval.
    #[serde(rename = "Interval", default, skip_serializing_if = "String::is_empty")]
    pub interval: String,
    /// Timeout.
    #[serde(rename = "Timeout", default, skip_serializing_if = "String::is_empty")]
    pub timeout: String,
    /// Deregister the service after being critical this long.
    #[serde(
        rename = "DeregisterCriticalServiceAfter",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub deregister_critical_service_after: String,
    /// HTTP URL.
    #[serde(rename = "HTTP", default, skip_serializing_if = "String::is_empty")]
    pub http: String,
    /// HTTP headers.
    #[serde(
        rename = "Header",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub header: BTreeMap<String, Vec<String>>,
    /// HTTP method.
    #[serde(rename = "Method", default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// HTTP body.
    #[serde(rename = "Body", default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// SNI name.
    #[serde(
        rename = "TLSServerName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub tls_server_name: String,
    /// Skip TLS verification.
    #[serde(rename = "TLSSkipVerify", default, skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    /// TCP target.
    #[serde(rename = "TCP", default, skip_serializing_if = "String::is_empty")]
    pub tcp: String,
    /// UDP target.
    #[serde(rename = "UDP", default, skip_serializing_if = "String::is_empty")]
    pub udp: String,
    /// gRPC target.
    #[serde(rename = "GRPC", default, skip_serializing_if = "String::is_empty")]
    pub grpc: String,
    /// TLS for gRPC.
    #[serde(rename = "GRPCUseTLS", default, skip_serializing_if = "is_false")]
    pub grpc_use_tls: bool,
}

/// `PUT /v1/agent/check/register` body, and a check embedded in a service definition.
/// Every kind of check shares this one shape, as in Consul.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CheckDefinition {
    /// Check ID (defaults to the name, or `service:<id>` when embedded).
    #[serde(
        rename = "ID",
        default,
        alias = "CheckID",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    /// Name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Notes.
    #[serde(rename = "Notes", default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Bind to a local service.
    #[serde(
        rename = "ServiceID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub service_id: String,
    /// Initial status (default critical).
    #[serde(rename = "Status", default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Run interval.
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Timeout.
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// TTL of a TTL check.
    #[serde(rename = "TTL", default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<GoDuration>,
    /// Script arguments.
    #[serde(
        rename = "Args",
        default,
        alias = "ScriptArgs",
        deserialize_with = "null_default"
    )]
    pub args: Vec<String>,
    /// Docker container for a docker check.
    #[serde(
        rename = "DockerContainerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_container_id: String,
    /// Shell for a docker check.
    #[serde(rename = "Shell", default, skip_serializing_if = "String::is_empty")]
    pub shell: String,
    /// URL of an HTTP check.
    #[serde(rename = "HTTP", default, skip_serializing_if = "String::is_empty")]
    pub http: String,
    /// HTTP method (default GET).
    #[serde(rename = "Method", default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// HTTP headers.
    #[serde(rename = "Header", default, deserialize_with = "null_default")]
    pub header: BTreeMap<String, Vec<String>>,
    /// HTTP body.
    #[serde(rename = "Body", default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// Do not follow redirects.
    #[serde(rename = "DisableRedirects", default)]
    pub disable_redirects: bool,
    /// SNI name.
    #[serde(
        rename = "TLSServerName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub tls_server_name: String,
    /// Skip certificate verification.
    #[serde(rename = "TLSSkipVerify", default)]
    pub tls_skip_verify: bool,
    /// `host:port` of a TCP check.
    #[serde(rename = "TCP", default, skip_serializing_if = "String::is_empty")]
    pub tcp: String,
    /// TLS over TCP.
    #[serde(rename = "TCPUseTLS", default)]
    pub tcp_use_tls: bool,
    /// `host:port` of a UDP check.
    #[serde(rename = "UDP", default, skip_serializing_if = "String::is_empty")]
    pub udp: String,
    /// `host:port[/service]` of a gRPC check.
    #[serde(rename = "GRPC", default, skip_serializing_if = "String::is_empty")]
    pub grpc: String,
    /// TLS for gRPC.
    #[serde(rename = "GRPCUseTLS", default)]
    pub grpc_use_tls: bool,
    /// H2PING target.
    #[serde(rename = "H2PING", default, skip_serializing_if = "String::is_empty")]
    pub h2ping: String,
    /// Alias: node.
    #[serde(
        rename = "AliasNode",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub alias_node: String,
    /// Alias: service.
    #[serde(
        rename = "AliasService",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub alias_service: String,
    /// Output cap in bytes (default 4096).
    #[serde(rename = "OutputMaxSize", default)]
    pub output_max_size: usize,
    /// Remove the service after being critical this long.
    #[serde(
        rename = "DeregisterCriticalServiceAfter",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deregister_critical_service_after: Option<GoDuration>,
    /// Consecutive successes before passing.
    #[serde(rename = "SuccessBeforePassing", default)]
    pub success_before_passing: u32,
    /// Consecutive failures before warning.
    #[serde(rename = "FailuresBeforeWarning", default)]
    pub failures_before_warning: u32,
    /// Consecutive failures before critical.
    #[serde(rename = "FailuresBeforeCritical", default)]
    pub failures_before_critical: u32,
    /// Ignored (ACLs are not enforced).
    #[serde(rename = "Token", default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

impl CheckDefinition {
    /// The check type Consul reports for this definition.
    pub fn check_type(&self) -> &'static str {
        if !self.args.is_empty() && self.docker_container_id.is_empty() {
            "script"
        } else if !self.docker_container_id.is_empty() {
            "docker"
        } else if !self.http.is_empty() {
            "http"
        } else if !self.tcp.is_empty() {
            "tcp"
        } else if !self.udp.is_empty() {
            "udp"
        } else if !self.grpc.is_empty() {
            "grpc"
        } else if !self.h2ping.is_empty() {
            "h2ping"
        } else if self.ttl.is_some() {
            "ttl"
        } else if !self.alias_service.is_empty() || !self.alias_node.is_empty() {
            "alias"
        } else {
            ""
        }
    }

    /// Validates the definition the way Consul's agent does before registering it.
    pub fn validate(&self) -> Result<(), String> {
        let kind = self.check_type();
        if kind.is_empty() {
            return Err("Must provide TTL or Script/DockerContainerID/HTTP/TCP/UDP/GRPC/H2PING/AliasNode/AliasService and Interval".into());
        }
        let needs_interval = matches!(
            kind,
            "script" | "docker" | "http" | "tcp" | "udp" | "grpc" | "h2ping"
        );
        if needs_interval && self.interval.is_none() {
            return Err(format!("Interval must be specified for {kind} checks"));
        }
        if !self.status.is_empty() && ![PASSING, WARNING, CRITICAL].contains(&self.status.as_str())
        {
            return Err(format!(
                "Invalid initial health check status \"{}\"",
                self.status
            ));
        }
        Ok(())
    }

    /// The `Definition` object shown on stored checks.
    pub fn definition_value(&self) -> HealthCheckDefinition {
        let dur = |d: &Option<GoDuration>| d.map(|d| d.to_string()).unwrap_or_default();
        HealthCheckDefinition {
            interval: dur(&self.interval),
            timeout: dur(&self.timeout),
            deregister_critical_service_after: dur(&self.deregister_critical_service_after),
            http: self.http.clone(),
            header: self.header.clone(),
            method: self.method.clone(),
            body: self.body.clone(),
            tls_server_name: self.tls_server_name.clone(),
            tls_skip_verify: self.tls_skip_verify,
            tcp: self.tcp.clone(),
            udp: self.udp.clone(),
            grpc: self.grpc.clone(),
            grpc_use_tls: self.grpc_use_tls,
        }
    }
}

/// One element of `/v1/health/service/:name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckServiceNode {
    /// The node.
    #[serde(rename = "Node")]
    pub node: Node,
    /// The instance.
    #[serde(rename = "Service")]
    pub service: NodeService,
    /// Node-level checks and the instance's own checks.
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
}

impl CheckServiceNode {
    /// Worst status across the node's and the instance's checks ("passing" when none).
    pub fn aggregated_status(&self) -> &'static str {
        aggregate(self.checks.iter().map(|c| c.status.as_str()))
    }
}

/// Worst of a set of statuses by [`status_rank`]; `passing` for none.
pub fn aggregate<'a>(statuses: impl Iterator<Item = &'a str>) -> &'static str {
    match statuses.map(status_rank).max().unwrap_or(0) {
        0 => PASSING,
        1 => WARNING,
        2 => CRITICAL,
        _ => MAINTENANCE,
    }
}

/// Element of `/v1/agent/health/service/name/:name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentServiceHealth {
    /// Worst status of the instance's checks.
    #[serde(rename = "AggregatedStatus")]
    pub aggregated_status: String,
    /// The instance.
    #[serde(rename = "Service")]
    pub service: AgentService,
    /// Its checks.
    #[serde(rename = "Checks", default, deserialize_with = "null_default")]
    pub checks: Vec<HealthCheck>,
}
