//! Prepared query wire types (`/v1/query`). Field names are Consul's; the
//! index fields are flattened as Go's embedded `RaftIndex` writes them.

use serde::{Deserialize, Serialize};

use crate::catalog::{Meta, null_default};
use crate::health::CheckServiceNode;

/// The only template type Consul knows.
pub const TEMPLATE_NAME_PREFIX_MATCH: &str = "name_prefix_match";

/// A prepared query definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PreparedQuery {
    /// UUID, assigned on create.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Optional unique name (also the template's prefix).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Session whose invalidation deletes the query.
    #[serde(rename = "Session", default)]
    pub session: String,
    /// Token the query executes with (no ACLs here: stored and echoed only).
    #[serde(rename = "Token", default)]
    pub token: String,
    /// Template settings (empty type = not a template).
    #[serde(rename = "Template", default, deserialize_with = "null_default")]
    pub template: QueryTemplate,
    /// What to look up.
    #[serde(rename = "Service", default, deserialize_with = "null_default")]
    pub service: ServiceQuery,
    /// DNS answer settings.
    #[serde(rename = "DNS", default, deserialize_with = "null_default")]
    pub dns: QueryDns,
    /// Raft index that created the query.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

/// `Template` of a prepared query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueryTemplate {
    /// `name_prefix_match` or "".
    #[serde(rename = "Type", default)]
    pub template_type: String,
    /// Regexp applied to the full looked-up name; captures feed `${match(N)}`.
    #[serde(rename = "Regexp", default)]
    pub regexp: String,
    /// Drop tags that interpolate to "" (e.g. an unmatched capture).
    #[serde(rename = "RemoveEmptyTags", default)]
    pub remove_empty_tags: bool,
}

/// `Service` of a prepared query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceQuery {
    /// Service name (required).
    #[serde(rename = "Service", default)]
    pub service: String,
    /// Other datacenters to try when none is healthy locally.
    #[serde(rename = "Failover", default, deserialize_with = "null_default")]
    pub failover: QueryFailover,
    /// Only `passing` instances (default: passing and warning).
    #[serde(rename = "OnlyPassing", default)]
    pub only_passing: bool,
    /// Checks whose state is ignored when filtering.
    #[serde(rename = "IgnoreCheckIDs", default, deserialize_with = "null_default")]
    pub ignore_check_ids: Vec<String>,
    /// Sort by RTT from this node (`_agent`, `_ip` or a node name).
    #[serde(rename = "Near", default)]
    pub near: String,
    /// Required tags; `!tag` excludes instances carrying `tag`.
    #[serde(rename = "Tags", default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// Required node metadata.
    #[serde(rename = "NodeMeta", default, deserialize_with = "null_default")]
    pub node_meta: Meta,
    /// Required service metadata.
    #[serde(rename = "ServiceMeta", default, deserialize_with = "null_default")]
    pub service_meta: Meta,
}

/// `Service.Failover` of a prepared query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueryFailover {
    /// Try this many nearest remote datacenters.
    #[serde(rename = "NearestN", default)]
    pub nearest_n: u32,
    /// Then these datacenters, in order.
    #[serde(rename = "Datacenters", default, deserialize_with = "null_default")]
    pub datacenters: Vec<String>,
}

/// `DNS` of a prepared query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueryDns {
    /// TTL of DNS answers as a Go duration ("" = agent default).
    #[serde(rename = "TTL", default)]
    pub ttl: String,
}

/// Answer of `GET /v1/query/:id/execute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PreparedQueryExecuteResponse {
    /// Service name that was looked up (after template rendering).
    #[serde(rename = "Service", default)]
    pub service: String,
    /// Matching healthy instances.
    #[serde(rename = "Nodes", default, deserialize_with = "null_default")]
    pub nodes: Vec<CheckServiceNode>,
    /// DNS settings of the query.
    #[serde(rename = "DNS", default, deserialize_with = "null_default")]
    pub dns: QueryDns,
    /// Datacenter that answered.
    #[serde(rename = "Datacenter", default)]
    pub datacenter: String,
    /// Number of remote datacenters tried.
    #[serde(rename = "Failovers", default)]
    pub failovers: u32,
}

/// Answer of `GET /v1/query/:id/explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PreparedQueryExplainResponse {
    /// The query with its template rendered for the looked-up name.
    #[serde(rename = "Query")]
    pub query: PreparedQuery,
}
