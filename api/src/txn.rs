//! Transaction wire types (`PUT /v1/txn`).

use serde::{Deserialize, Serialize};

use crate::kv::KVPair;

/// Consul's limit on operations per transaction.
pub const MAX_TXN_OPS: usize = 128;

/// One operation of a transaction. Only `KV` operations are supported here;
/// catalog operations are rejected with a clear error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TxnOp {
    /// A KV operation.
    #[serde(rename = "KV", default, skip_serializing_if = "Option::is_none")]
    pub kv: Option<KvTxnOp>,
    /// Catalog node operation (not supported).
    #[serde(rename = "Node", default, skip_serializing_if = "Option::is_none")]
    pub node: Option<serde_json::Value>,
    /// Catalog service operation (not supported).
    #[serde(rename = "Service", default, skip_serializing_if = "Option::is_none")]
    pub service: Option<serde_json::Value>,
    /// Catalog check operation (not supported).
    #[serde(rename = "Check", default, skip_serializing_if = "Option::is_none")]
    pub check: Option<serde_json::Value>,
}

/// A KV transaction operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KvTxnOp {
    /// `set`, `cas`, `lock`, `unlock`, `get`, `get-tree`, `check-index`,
    /// `check-session`, `check-not-exists`, `delete`, `delete-tree`, `delete-cas`.
    #[serde(rename = "Verb")]
    pub verb: String,
    /// Key (or prefix for tree verbs).
    #[serde(rename = "Key", default)]
    pub key: String,
    /// Base64 value.
    #[serde(rename = "Value", default, with = "crate::b64")]
    pub value: Option<Vec<u8>>,
    /// Flags.
    #[serde(rename = "Flags", default)]
    pub flags: u64,
    /// ModifyIndex for cas/check-index/delete-cas.
    #[serde(rename = "Index", default)]
    pub index: u64,
    /// Session for lock/unlock/check-session.
    #[serde(rename = "Session", default)]
    pub session: String,
}

/// One result entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResult {
    /// The KV entry.
    #[serde(rename = "KV")]
    pub kv: KVPair,
}

/// One error entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    /// Index of the failing operation.
    #[serde(rename = "OpIndex")]
    pub op_index: usize,
    /// What went wrong.
    #[serde(rename = "What")]
    pub what: String,
}

/// Response of `PUT /v1/txn` (200 on commit, 409 on rollback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnResponse {
    /// Results (null on failure).
    #[serde(rename = "Results")]
    pub results: Option<Vec<TxnResult>>,
    /// Errors (null on success).
    #[serde(rename = "Errors")]
    pub errors: Option<Vec<TxnError>>,
}
