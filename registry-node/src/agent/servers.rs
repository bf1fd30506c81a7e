//! How a client agent reaches the servers: it picks an alive server of its
//! datacenter learned from gossip (tags `role=consul`, `dc`, `port`), sticks to
//! it, and moves on to another when a call cannot reach it (Consul's server
//! manager rebalances the same way).

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::seq::SliceRandom;
use registry_api::agent::{Member, MemberStatus};

use super::Error;
use crate::gossip::GossipHandle;
use crate::gossip::member::tags;
use crate::rpc::{
    DnsCall, DnsReply, HttpCall, HttpReply, RemoteRefusal, RpcClient, RpcRequest, RpcResponse,
};
use crate::state::{Request, Response};

/// Longest wait for a forwarded write (the server may itself wait for an election).
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `m` is a server (tag `role=consul`), whatever its status.
pub fn is_server(m: &Member) -> bool {
    m.tags.get(tags::ROLE).map(String::as_str) == Some("consul")
}

/// The Raft ID of member `m`, derived from its node ID tag.
pub fn raft_id(m: &Member) -> Option<crate::raft::NodeId> {
    m.tags
        .get(tags::ID)
        .map(|id| crate::raft::node_id_from_uuid(id))
}

/// The RPC address (`ip:port`) of `m` if it is an alive server of `dc`.
pub fn server_addr(m: &Member, dc: &str) -> Option<String> {
    if m.status != MemberStatus::Alive as u8
        || !is_server(m)
        || m.tags.get(tags::DC).map(String::as_str) != Some(dc)
    {
        return None;
    }
    let port: u16 = m.tags.get(tags::PORT)?.parse().ok()?;
    let ip: std::net::IpAddr = m.addr.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, port).to_string())
}

/// The servers a client agent forwards to.
pub struct ServerPool {
    gossip: GossipHandle,
    datacenter: String,
    rpc: RpcClient,
    /// The server used last; kept while it answers.
    current: Mutex<Option<String>>,
}

impl ServerPool {
    /// A pool fed by `gossip`'s member list.
    pub fn new(gossip: GossipHandle, datacenter: String) -> Self {
        ServerPool {
            gossip,
            datacenter,
            rpc: RpcClient::new(),
            current: Mutex::new(None),
        }
    }

    /// Alive servers of our datacenter, as RPC addresses.
    pub fn servers(&self) -> Vec<String> {
        self.gossip
            .members()
            .iter()
            .filter_map(|m| server_addr(m, &self.datacenter))
            .collect()
    }

    /// The servers to try, the current one first, the others shuffled.
    fn candidates(&self) -> Vec<String> {
        let mut all = self.servers();
        all.shuffle(&mut rand::rng());
        let current = self.current.lock().expect("pool lock").clone();
        if let Some(c) = current
            && let Some(pos) = all.iter().position(|a| *a == c)
        {
            all.swap(0, pos);
        }
        all
    }

    fn keep(&self, addr: &str) {
        *self.current.lock().expect("pool lock") = Some(addr.to_string());
    }

    /// Commits `reqs` through a server (which routes them to the leader).
    /// Only calls that never reached a server are retried on another one.
    pub async fn apply(&self, reqs: Vec<Request>) -> Result<Vec<Response>, Error> {
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(Error::NoServers);
        }
        let mut last = None;
        let mut no_leader = false;
        for addr in candidates {
            match self
                .rpc
                .call(&addr, RpcRequest::Apply(reqs.clone()), APPLY_TIMEOUT)
                .await
            {
                Ok(RpcResponse::Apply(Ok(responses))) => {
                    self.keep(&addr);
                    return Ok(responses);
                }
                // That server knows no leader; another one (the other side of a
                // partition) may.
                Ok(RpcResponse::Apply(Err(RemoteRefusal::NotLeader))) => no_leader = true,
                Ok(RpcResponse::Apply(Err(RemoteRefusal::Failed(m)))) => return Err(Error::Rpc(m)),
                Ok(_) => return Err(Error::Rpc(format!("unexpected answer from {addr}"))),
                Err(e) if e.is_unreachable() => {
                    tracing::debug!(%addr, error = %e, "server unreachable; trying another");
                    last = Some(e);
                }
                Err(e) => return Err(Error::Rpc(e.to_string())),
            }
        }
        if no_leader {
            return Err(Error::NoLeader);
        }
        Err(Error::Rpc(format!(
            "no server could be reached: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// The RPC client (tests cut links through it).
    #[cfg(feature = "test-util")]
    pub fn rpc_client(&self) -> &RpcClient {
        &self.rpc
    }

    /// Asks a server a DNS question; any transport failure moves on to another server.
    pub async fn dns(&self, call: DnsCall, timeout: Duration) -> Result<DnsReply, Error> {
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(Error::NoServers);
        }
        let mut last = String::new();
        for addr in candidates {
            match self
                .rpc
                .call(&addr, RpcRequest::Dns(call.clone()), timeout)
                .await
            {
                Ok(RpcResponse::Dns(reply)) => {
                    self.keep(&addr);
                    return Ok(reply);
                }
                Ok(RpcResponse::Error(m)) => last = m,
                Ok(_) => last = format!("unexpected answer from {addr}"),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Rpc(format!("no server could answer: {last}")))
    }

    /// Runs an HTTP API call on a server. Reads (`idempotent`) move on to
    /// another server after any transport failure, writes only when the
    /// server was never reached.
    pub async fn http(
        &self,
        method: &str,
        uri: &str,
        headers: Vec<(String, String)>,
        body: &[u8],
        idempotent: bool,
        timeout: Duration,
    ) -> Result<(u16, Vec<(String, String)>, Vec<u8>), Error> {
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(Error::NoServers);
        }
        let call = HttpCall {
            method: method.to_string(),
            uri: uri.to_string(),
            headers,
            body: B64.encode(body),
        };
        let mut last = None;
        for addr in candidates {
            match self
                .rpc
                .call(&addr, RpcRequest::Http(call.clone()), timeout)
                .await
            {
                Ok(RpcResponse::Http(HttpReply {
                    status,
                    headers,
                    body,
                })) => {
                    self.keep(&addr);
                    let body = B64
                        .decode(body)
                        .map_err(|e| Error::Rpc(format!("bad body from {addr}: {e}")))?;
                    return Ok((status, headers, body));
                }
                Ok(RpcResponse::Error(m)) if idempotent => last = Some(m),
                Ok(_) => return Err(Error::Rpc(format!("unexpected answer from {addr}"))),
                Err(e) if idempotent || e.is_unreachable() => {
                    tracing::debug!(%addr, error = %e, "server call failed; trying another");
                    last = Some(e.to_string());
                }
                Err(e) => return Err(Error::Rpc(e.to_string())),
            }
        }
        Err(Error::Rpc(format!(
            "no server could answer: {}",
            last.unwrap_or_default()
        )))
    }
}
