//! openraft's network over our server RPC ([`crate::rpc`]). `BasicNode.addr`
//! is the peer's `ip:server-port`. Clients are created per RPC by openraft, so
//! `new_client` never connects: the shared [`RpcClient`] pool does, lazily.
//!
//! Transport errors are mapped on purpose: a peer we could not connect to is
//! `Unreachable` (openraft backs off before retrying), as is a call the peer
//! refused (e.g. a server that is not the member we meant), a connection that broke
//! mid-call is a `NetworkError` (retried at once), a call without an answer
//! is a `Timeout`, and an error raised by the peer's Raft is a `RemoteError`.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::{Node, NodeId, TypeConfig};
use crate::rpc::{RpcClient, RpcError, RpcRequest, RpcResponse};

/// Creates per-peer clients sharing one connection pool.
#[derive(Clone)]
pub struct Network {
    /// This server's ID (for timeout errors).
    pub id: NodeId,
    /// The shared pool.
    pub client: RpcClient,
}

/// A client of one peer.
pub struct PeerClient {
    id: NodeId,
    target: NodeId,
    addr: String,
    client: RpcClient,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerClient {
            id: self.id,
            target,
            addr: node.addr.clone(),
            client: self.client.clone(),
        }
    }
}

/// The openraft error for a failed call.
fn rpc_error<E: std::error::Error>(
    e: RpcError,
    action: RPCTypes,
    id: NodeId,
    target: NodeId,
    timeout: Duration,
) -> RPCError<NodeId, Node, E> {
    match e {
        // Refused by the peer (another server now on that address, shutting
        // down...): back off as for a peer that is gone.
        RpcError::Connect { .. } | RpcError::Remote { .. } => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        RpcError::Timeout { .. } => RPCError::Timeout(Timeout {
            action,
            id,
            target,
            timeout,
        }),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl PeerClient {
    async fn call<T, E: std::error::Error>(
        &self,
        req: RpcRequest,
        action: RPCTypes,
        option: &RPCOption,
        pick: impl FnOnce(RpcResponse) -> Option<Result<T, E>>,
    ) -> Result<T, RPCError<NodeId, Node, E>> {
        let timeout = option.hard_ttl();
        let resp = self
            .client
            .call(&self.addr, req, timeout)
            .await
            .map_err(|e| rpc_error(e, action, self.id, self.target, timeout))?;
        match pick(resp) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            None => {
                let e = RpcError::Unexpected {
                    addr: self.addr.clone(),
                };
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(
            RpcRequest::AppendEntries {
                to: self.target,
                rpc,
            },
            RPCTypes::AppendEntries,
            &option,
            |r| match r {
                RpcResponse::AppendEntries(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(
            RpcRequest::InstallSnapshot {
                to: self.target,
                rpc,
            },
            RPCTypes::InstallSnapshot,
            &option,
            |r| match r {
                RpcResponse::InstallSnapshot(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(
            RpcRequest::Vote {
                to: self.target,
                rpc,
            },
            RPCTypes::Vote,
            &option,
            |r| match r {
                RpcResponse::Vote(r) => Some(r),
                _ => None,
            },
        )
        .await
    }
}
