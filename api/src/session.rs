//! Session wire types (`/v1/session/*`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::GoDuration;
use crate::catalog::null_default;

/// A bound service check of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceCheck {
    /// Check ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Always "" (Enterprise).
    #[serde(rename = "Namespace", default)]
    pub namespace: String,
}

/// A session as `/v1/session/info` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionEntry {
    /// Session UUID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Owning node.
    #[serde(rename = "Node", default)]
    pub node: String,
    /// Lock delay, nanoseconds on the wire.
    #[serde(rename = "LockDelay", with = "crate::duration::nanos", default)]
    pub lock_delay: Duration,
    /// `release` or `delete`.
    #[serde(rename = "Behavior", default)]
    pub behavior: String,
    /// TTL as a Go duration, "" when none.
    #[serde(rename = "TTL", default)]
    pub ttl: String,
    /// Bound node checks.
    #[serde(rename = "NodeChecks", default, deserialize_with = "null_default")]
    pub node_checks: Vec<String>,
    /// Bound service checks.
    #[serde(rename = "ServiceChecks", default, deserialize_with = "null_default")]
    pub service_checks: Vec<ServiceCheck>,
    /// Raft index that created the session.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

/// Body of `PUT /v1/session/create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionRequest {
    /// Name.
    #[serde(rename = "Name", default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Node (default: the agent's node).
    #[serde(rename = "Node", default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// Lock delay (default 15s; string or nanoseconds).
    #[serde(rename = "LockDelay", default, skip_serializing_if = "Option::is_none")]
    pub lock_delay: Option<GoDuration>,
    /// Deprecated alias of `NodeChecks`.
    #[serde(rename = "Checks", default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<String>>,
    /// Node checks (default `["serfHealth"]`).
    #[serde(
        rename = "NodeChecks",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub node_checks: Option<Vec<String>>,
    /// Service checks.
    #[serde(rename = "ServiceChecks", default, deserialize_with = "null_default")]
    pub service_checks: Vec<ServiceCheck>,
    /// `release` (default) or `delete`.
    #[serde(rename = "Behavior", default, skip_serializing_if = "String::is_empty")]
    pub behavior: String,
    /// TTL (10s – 24h), "" for none.
    #[serde(rename = "TTL", default, skip_serializing_if = "String::is_empty")]
    pub ttl: String,
}

/// `{"ID": "..."}` answer of session create (and prepared query create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    /// The new ID.
    #[serde(rename = "ID")]
    pub id: String,
}
