//! Key/value wire types: `/v1/kv` entries, `kv export` records and transactions.

use serde::{Deserialize, Serialize};

/// One KV entry as `/v1/kv/:key` returns it. Field order follows Consul's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KVPair {
    /// Number of times the key was acquired by a lock.
    #[serde(rename = "LockIndex", default)]
    pub lock_index: u64,
    /// Full key path (no leading slash).
    #[serde(rename = "Key")]
    pub key: String,
    /// Opaque client flags.
    #[serde(rename = "Flags", default)]
    pub flags: u64,
    /// Value bytes; base64 on the wire, `null` when absent (a key with an empty body
    /// is stored as `null` too, as Consul does).
    #[serde(rename = "Value", default, with = "crate::b64")]
    pub value: Option<Vec<u8>>,
    /// Session holding the lock, omitted when unlocked.
    #[serde(rename = "Session", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Raft index that created the key.
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    /// Raft index of the last write.
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
}

/// One record of `kv export` / `kv import` (lower-case keys, as Consul writes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvExportEntry {
    /// Key path.
    pub key: String,
    /// Client flags.
    #[serde(default)]
    pub flags: u64,
    /// Base64 of the value.
    pub value: String,
}
