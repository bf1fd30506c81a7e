//! Agent wire types: `/v1/agent/self`, `/v1/agent/members`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Gossip member status codes (`Status` of `/v1/agent/members`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// 0
    None = 0,
    /// 1
    Alive = 1,
    /// 2
    Leaving = 2,
    /// 3
    Left = 3,
    /// 4
    Failed = 4,
}

impl MemberStatus {
    /// From the wire code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => MemberStatus::Alive,
            2 => MemberStatus::Leaving,
            3 => MemberStatus::Left,
            4 => MemberStatus::Failed,
            _ => MemberStatus::None,
        }
    }

    /// The word `members` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::None => "none",
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

/// One gossip member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Member {
    /// Node name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Gossip address (IP).
    #[serde(rename = "Addr")]
    pub addr: String,
    /// Gossip port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// Serf tags (`role`, `dc`, `id`, `port`, `build`, `vsn`, …).
    #[serde(rename = "Tags", default)]
    pub tags: BTreeMap<String, String>,
    /// Status code (see [`MemberStatus`]).
    #[serde(rename = "Status")]
    pub status: u8,
    /// Serf protocol range and current version.
    #[serde(rename = "ProtocolMin", default)]
    pub protocol_min: u8,
    /// .
    #[serde(rename = "ProtocolMax", default)]
    pub protocol_max: u8,
    /// .
    #[serde(rename = "ProtocolCur", default)]
    pub protocol_cur: u8,
    /// Delegate protocol range and current version.
    #[serde(rename = "DelegateMin", default)]
    pub delegate_min: u8,
    /// .
    #[serde(rename = "DelegateMax", default)]
    pub delegate_max: u8,
    /// .
    #[serde(rename = "DelegateCur", default)]
    pub delegate_cur: u8,
}

/// `Config` section of `/v1/agent/self`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentSelfConfig {
    /// Datacenter.
    #[serde(rename = "Datacenter")]
    pub datacenter: String,
    /// Primary datacenter.
    #[serde(rename = "PrimaryDatacenter", default)]
    pub primary_datacenter: String,
    /// Node name.
    #[serde(rename = "NodeName")]
    pub node_name: String,
    /// Node UUID.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Always "default".
    #[serde(rename = "Partition", default)]
    pub partition: String,
    /// Source revision.
    #[serde(rename = "Revision", default)]
    pub revision: String,
    /// Whether this agent is a server.
    #[serde(rename = "Server")]
    pub server: bool,
    /// The Consul API level we are compatible with.
    #[serde(rename = "Version")]
    pub version: String,
    /// Our own version.
    #[serde(rename = "RegistryVersion", default)]
    pub registry_version: String,
    /// Build date (RFC 3339).
    #[serde(rename = "BuildDate", default)]
    pub build_date: String,
}

/// `/v1/agent/self`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentSelf {
    /// Identity and version.
    #[serde(rename = "Config")]
    pub config: AgentSelfConfig,
    /// Effective configuration (unstable shape).
    #[serde(rename = "DebugConfig", default)]
    pub debug_config: Value,
    /// Network coordinate.
    #[serde(rename = "Coord", default)]
    pub coord: Value,
    /// This agent as a gossip member.
    #[serde(rename = "Member")]
    pub member: Member,
    /// `consul info` sections: section → key → value.
    #[serde(rename = "Stats", default)]
    pub stats: BTreeMap<String, BTreeMap<String, String>>,
    /// Node metadata.
    #[serde(rename = "Meta", default)]
    pub meta: BTreeMap<String, String>,
}
