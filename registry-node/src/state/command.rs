//! The Raft log payload: every write to the replicated state is one [`Request`].

use registry_api::{
    CatalogDeregistration, CatalogRegistration, KvTxnOp, PreparedQuery, SessionEntry, TxnResponse,
};
use serde::{Deserialize, Serialize};

/// A write, stamped by the proposer with the wall clock so that applying it is
/// deterministic on every replica (lock delays are computed from `now_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Milliseconds since the Unix epoch when the write was proposed.
    pub now_ms: u64,
    /// The operation.
    pub cmd: Command,
}

/// A state-machine operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Does nothing; used to commit a leader's first entry and in tests.
    Noop,
    /// `PUT /v1/kv/:key`.
    KvSet(KvSet),
    /// `DELETE /v1/kv/:key`.
    KvDelete {
        /// Key or prefix.
        key: String,
        /// Delete every key with this prefix.
        recurse: bool,
        /// Only delete when the entry's ModifyIndex equals this.
        cas: Option<u64>,
    },
    /// `PUT /v1/txn` (KV operations).
    Txn(Vec<KvTxnOp>),
    /// `PUT /v1/catalog/register` (also the agent's own syncs).
    Register(Box<CatalogRegistration>),
    /// `PUT /v1/catalog/deregister`.
    Deregister(CatalogDeregistration),
    /// `PUT /v1/session/create`; the ID is chosen by the proposer.
    SessionCreate(SessionEntry),
    /// `PUT /v1/session/destroy/:id`, and TTL expiry decided by the leader.
    SessionDestroy {
        /// Session ID.
        id: String,
    },
    /// Removes KV tombstones at or below an index (leader housekeeping).
    ReapTombstones {
        /// Highest index to reap.
        index: u64,
    },
    /// `POST /v1/query`; the ID is chosen by the proposer so apply stays deterministic.
    QueryCreate(Box<PreparedQuery>),
    /// `PUT /v1/query/:id`.
    QueryUpdate(Box<PreparedQuery>),
    /// `DELETE /v1/query/:id`.
    QueryDelete {
        /// Query ID.
        id: String,
    },
}

/// `PUT /v1/kv/:key` with its query parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KvSet {
    /// Key.
    pub key: String,
    /// Value (None for an empty body); base64 in the log, not a JSON array of numbers.
    #[serde(with = "registry_api::b64", default)]
    pub value: Option<Vec<u8>>,
    /// Client flags.
    pub flags: u64,
    /// `?cas=`: 0 = create only, N = only if ModifyIndex == N.
    pub cas: Option<u64>,
    /// `?acquire=<session>`.
    pub acquire: Option<String>,
    /// `?release=<session>`.
    pub release: Option<String>,
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Nothing to report.
    Ok,
    /// `true`/`false` of KV writes and deletes.
    Bool(bool),
    /// Outcome of a transaction.
    Txn(TxnResponse),
    /// The request was refused; the text is the HTTP error body.
    Error(String),
}

impl Response {
    /// The boolean a KV endpoint answers with.
    pub fn as_bool(&self) -> bool {
        matches!(self, Response::Bool(true) | Response::Ok)
    }
}
