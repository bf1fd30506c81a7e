//! User events (`/v1/event/*`).

use serde::{Deserialize, Serialize};

/// A user event as fired and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserEvent {
    /// Event UUID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Event name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Base64 payload or null.
    #[serde(rename = "Payload", default, with = "crate::b64")]
    pub payload: Option<Vec<u8>>,
    /// Node name regex filter.
    #[serde(rename = "NodeFilter", default)]
    pub node_filter: String,
    /// Service name regex filter.
    #[serde(rename = "ServiceFilter", default)]
    pub service_filter: String,
    /// Tag regex filter.
    #[serde(rename = "TagFilter", default)]
    pub tag_filter: String,
    /// Always 1.
    #[serde(rename = "Version", default)]
    pub version: u32,
    /// Lamport time.
    #[serde(rename = "LTime", default)]
    pub ltime: u64,
}
