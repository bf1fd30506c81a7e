//! Server-to-server RPC (Consul's port 8300): Raft replication and votes,
//! snapshot chunks, writes forwarded by followers to the leader, read-index
//! requests for linearizable follower reads, and `Ping`.
//!
//! The transport is one TCP connection per peer carrying
//! [`LengthDelimitedCodec`](tokio_util::codec::LengthDelimitedCodec) frames.
//! Each frame is an [`Envelope`] in JSON: our wire types hold
//! `serde_json::Value` fields, which non-self-describing formats such as
//! postcard cannot decode. Every call carries a request ID, so several calls
//! can be in flight on one connection and answers may come back out of order.
//!
//! - [`server`]: [`spawn_rpc_server`] accepts connections on an already-bound
//!   listener and hands each request to an [`RpcHandler`].
//! - [`client`]: [`RpcClient`] keeps one pooled connection per peer address,
//!   reconnects after failures and applies a timeout per call.

pub mod client;
pub mod server;

use std::future::Future;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

pub use client::RpcClient;
pub use server::{RpcServerHandle, spawn_rpc_server};

use crate::raft::{NodeId, TypeConfig};
use crate::state::{Request, Response};

/// Largest frame accepted: a 3 MiB snapshot chunk is about 12 MiB of JSON.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// One frame: a call or its answer, matched by `id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Request ID, unique per connection; the answer carries the same one.
    pub id: u64,
    /// The message.
    pub body: T,
}

/// A call from one server to another.
///
/// Raft messages name the Raft ID they are meant for (`to`): a server
/// recreated without its data dir comes back on the same address with a new
/// ID, and must refuse what the leader still sends its old self (an empty log
/// answering for a member the leader had replicated to makes openraft panic).
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    /// Raft log replication and heartbeats.
    AppendEntries {
        to: NodeId,
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    /// Raft election.
    Vote {
        to: NodeId,
        rpc: VoteRequest<NodeId>,
    },
    /// One chunk of a Raft snapshot.
    InstallSnapshot {
        to: NodeId,
        rpc: InstallSnapshotRequest<TypeConfig>,
    },
    /// A follower's batch of writes for the leader to commit.
    ForwardWrite(Vec<Request>),
    /// A follower asks the leader for the index it must have applied before
    /// serving a linearizable read.
    ReadIndex,
    /// Liveness probe; the answer says whether the callee already has Raft
    /// state (what `-bootstrap-expect` must know before bootstrapping).
    Ping,
    /// A client agent's writes (its anti-entropy sync): the callee commits
    /// them through its own write path, forwarding to the leader if need be.
    Apply(Vec<Request>),
    /// An HTTP API call a client agent forwards to a server, answered by the
    /// server's own router (catalog, KV, health, session, txn, status...).
    Http(HttpCall),
    /// A DNS question a client agent forwards to a server, answered from the
    /// server's store with the client's `dns_config`.
    Dns(DnsCall),
}

/// A DNS question carried over server RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsCall {
    /// Question name.
    pub qname: String,
    /// Question type (RFC 1035 number).
    pub qtype: u16,
    /// The asking agent's DNS options (zone, TTLs, health filtering...).
    pub options: crate::dns::DnsOptions,
    /// Service answers worth building (`u32::MAX`: all).
    pub max_answers: u32,
}

/// The answer to a [`DnsCall`]: `Ok(Some(base64 DNS message))` with the RCODE
/// and sections, `Ok(None)` when the name is unknown and the asker decides
/// (a PTR for an address nobody has), `Err` when the server cannot answer.
pub type DnsReply = Result<Option<String>, String>;

/// An HTTP request carried over server RPC (bodies base64 in the JSON frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCall {
    /// Method (`GET`, `PUT`...).
    pub method: String,
    /// Path and query string.
    pub uri: String,
    /// Request headers worth forwarding.
    pub headers: Vec<(String, String)>,
    /// Base64 body.
    pub body: String,
}

/// The answer to an [`HttpCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Base64 body.
    pub body: String,
}

/// Answers forwarded HTTP calls on a server; set by the agent once its router exists.
pub trait ApiHandler: Send + Sync + 'static {
    /// Runs `call` through the server's HTTP router.
    fn http(&self, call: HttpCall) -> futures::future::BoxFuture<'static, HttpReply>;
    /// Answers a forwarded DNS question from the server's store.
    fn dns(&self, call: DnsCall) -> futures::future::BoxFuture<'static, DnsReply>;
}

/// Why the leader refused a forwarded write or read-index request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteRefusal {
    /// The callee is not (or no longer) the leader; the caller may retry elsewhere.
    #[error("not the leader")]
    NotLeader,
    /// The callee tried and failed; retrying is not known to be safe.
    #[error("{0}")]
    Failed(String),
}

/// What a server says about itself in answer to [`RpcRequest::Ping`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The callee's Raft ID.
    pub id: NodeId,
    /// It has Raft state (a log or a membership): it must not be bootstrapped again.
    pub initialized: bool,
    /// The leader it knows, if any.
    pub leader: Option<NodeId>,
}

/// The answer to an [`RpcRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    /// Answer to [`RpcRequest::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RpcRequest::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RpcRequest::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answer to [`RpcRequest::ForwardWrite`]: one response per request, in order.
    ForwardWrite(Result<Vec<Response>, RemoteRefusal>),
    /// Answer to [`RpcRequest::ReadIndex`]: the log index to wait for (0 = none yet).
    ReadIndex(Result<u64, RemoteRefusal>),
    /// Answer to [`RpcRequest::Ping`].
    Pong(PeerStatus),
    /// Answer to [`RpcRequest::Apply`]: one response per request, in order.
    Apply(Result<Vec<Response>, RemoteRefusal>),
    /// Answer to [`RpcRequest::Http`].
    Http(HttpReply),
    /// Answer to [`RpcRequest::Dns`].
    Dns(DnsReply),
    /// The server could not handle the frame (undecodable, shutting down).
    Error(String),
}

/// Serves RPC requests; implemented by the Raft node.
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one request. Runs concurrently with other requests of the same connection.
    fn handle(&self, req: RpcRequest) -> impl Future<Output = RpcResponse> + Send;
}

/// Transport errors of one call. [`RpcError::is_unreachable`] separates "never
/// reached the peer" (safe to retry anywhere, openraft backs off) from "broken
/// mid-call" (the peer may have acted on the request).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Could not connect (refused, no route, connect timed out).
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Peer address.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke after the request may have been sent.
    #[error("connection to {addr} closed mid-call")]
    Closed {
        /// Peer address.
        addr: String,
    },
    /// No answer within the call's timeout.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// A frame could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] serde_json::Error),
    /// The peer answered with an error frame.
    #[error("peer {addr} failed the call: {message}")]
    Remote {
        /// Peer address.
        addr: String,
        /// The peer's message.
        message: String,
    },
    /// The peer answered with a message of the wrong kind.
    #[error("unexpected answer from {addr}")]
    Unexpected {
        /// Peer address.
        addr: String,
    },
}

impl RpcError {
    /// True when the request certainly never reached the peer.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RpcError::Connect { .. })
    }

    /// True when the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RpcError::Timeout { .. })
    }
}

/// The frame codec shared by both ends.
pub(crate) fn codec() -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

#[cfg(test)]
mod tests;
