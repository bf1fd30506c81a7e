//! The receiving side of server RPC: hands Raft messages to openraft, joins
//! forwarded writes to the local group commit, and answers read-index
//! requests after confirming leadership with a quorum.

use openraft::error::RaftError;
use openraft::raft::AppendEntriesResponse;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Core, Pending, Route, write};
use crate::rpc::{PeerStatus, RemoteRefusal, RpcHandler, RpcRequest, RpcResponse};

/// The [`RpcHandler`] of a Raft server.
pub struct RaftService {
    pub(crate) core: Core,
    pub(crate) batch_tx: mpsc::Sender<Pending>,
}

impl RpcHandler for RaftService {
    async fn handle(&self, req: RpcRequest) -> RpcResponse {
        match req {
            RpcRequest::AppendEntries { to, .. }
            | RpcRequest::Vote { to, .. }
            | RpcRequest::InstallSnapshot { to, .. }
                if to != self.core.id =>
            {
                RpcResponse::Error(format!(
                    "this server is Raft member {}, not {to} (recreated without its data dir, \
                     it rejoins as a new server)",
                    self.core.id
                ))
            }
            RpcRequest::AppendEntries { rpc, .. } => {
                let resp = self.core.raft.append_entries(rpc).await;
                // Any answer but "higher vote" means we accept this sender as leader.
                if resp
                    .as_ref()
                    .is_ok_and(|r| !matches!(r, AppendEntriesResponse::HigherVote(_)))
                {
                    *self.core.contact.lock().expect("contact lock") = Some(Instant::now());
                }
                RpcResponse::AppendEntries(resp)
            }
            RpcRequest::Vote { rpc, .. } => RpcResponse::Vote(self.core.raft.vote(rpc).await),
            RpcRequest::InstallSnapshot { rpc, .. } => {
                RpcResponse::InstallSnapshot(self.core.raft.install_snapshot(rpc).await)
            }
            RpcRequest::ForwardWrite(reqs) => {
                if self.core.route() != Route::Local {
                    return RpcResponse::ForwardWrite(Err(RemoteRefusal::NotLeader));
                }
                let result = write::submit(&self.batch_tx, reqs, true).await;
                RpcResponse::ForwardWrite(result.map_err(|e| match e {
                    super::WriteError::NoLeader => RemoteRefusal::NotLeader,
                    super::WriteError::Fatal(m) => RemoteRefusal::Failed(m),
                }))
            }
            RpcRequest::ReadIndex => RpcResponse::ReadIndex(self.read_index().await),
            RpcRequest::Apply(reqs) => {
                // Not marked forwarded: this server routes it to the leader.
                let result = write::submit(&self.batch_tx, reqs, false).await;
                RpcResponse::Apply(result.map_err(|e| match e {
                    super::WriteError::NoLeader => RemoteRefusal::NotLeader,
                    super::WriteError::Fatal(m) => RemoteRefusal::Failed(m),
                }))
            }
            RpcRequest::Http(call) => match self.core.api.get() {
                Some(api) => RpcResponse::Http(api.http(call).await),
                None => RpcResponse::Error("server is starting".into()),
            },
            RpcRequest::Dns(call) => match self.core.api.get() {
                Some(api) => RpcResponse::Dns(api.dns(call).await),
                None => RpcResponse::Error("server is starting".into()),
            },
            RpcRequest::Ping => {
                let m = self.core.raft.metrics().borrow().clone();
                RpcResponse::Pong(PeerStatus {
                    id: self.core.id,
                    // A vote or a log entry means this server took part in a cluster.
                    initialized: m.last_log_index.is_some() || m.current_term > 0,
                    leader: m.current_leader,
                })
            }
        }
    }
}

impl RaftService {
    /// Confirms leadership with a quorum (one heartbeat round) and returns the
    /// index a follower must have applied to serve a linearizable read.
    async fn read_index(&self) -> Result<u64, RemoteRefusal> {
        if self.core.route() != Route::Local {
            return Err(RemoteRefusal::NotLeader);
        }
        let wait = self.core.timing.leader_wait();
        match tokio::time::timeout(wait, self.core.raft.get_read_log_id()).await {
            Ok(Ok((read_log_id, _applied))) => Ok(read_log_id.map(|l| l.index).unwrap_or(0)),
            Ok(Err(RaftError::Fatal(e))) => Err(RemoteRefusal::Failed(e.to_string())),
            // ForwardToLeader or QuorumNotEnough: this server cannot vouch for the read.
            Ok(Err(RaftError::APIError(_))) | Err(_) => Err(RemoteRefusal::NotLeader),
        }
    }
}
