//! `/v1/operator/*`: the Raft configuration (`operator raft list-peers`,
//! `remove-peer`) on servers, and the gossip keyring on every agent.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use registry_api::agent::Member;
use registry_api::operator::{KeyringRequest, KeyringResponse, RaftConfiguration, RaftServer};

use super::Ctx;
use super::blocking::json;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::agent::Agent;
use crate::gossip::KeyringOp;
use crate::gossip::member::tags;
use crate::raft::{NodeId, node_id_from_uuid};

/// Server-only routes.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/operator/raft/configuration", get(configuration))
        .route("/v1/operator/raft/peer", axum::routing::delete(remove_peer))
}

/// Routes every agent serves.
pub fn local_routes() -> Router<Ctx> {
    Router::new().route(
        "/v1/operator/keyring",
        get(keyring_list)
            .post(|s, b| keyring_change(s, b, Change::Install))
            .put(|s, b| keyring_change(s, b, Change::Use))
            .delete(|s, b| keyring_change(s, b, Change::Remove)),
    )
}

/// The gossip member carrying Raft ID `id`, if any.
fn member_of(members: &[Member], id: NodeId) -> Option<&Member> {
    members
        .iter()
        .find(|m| crate::agent::servers::raft_id(m) == Some(id))
}

async fn configuration(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let raft = super::raft(&agent)?;
    if !params.flag("stale") {
        raft.read_barrier(registry_api::Consistency::Default)
            .await
            .map_err(|_| ApiError::no_leader())?;
    }
    let m = raft.raft.metrics().borrow().clone();
    let members = agent.gossip.members();
    let servers = raft
        .members()
        .into_iter()
        .map(|r| {
            let member = member_of(&members, r.id);
            let last_index = match (&m.replication, m.current_leader == Some(r.id)) {
                (_, true) => m.last_log_index.unwrap_or(0),
                (Some(rep), false) => rep.get(&r.id).cloned().flatten().map_or(0, |l| l.index),
                (None, false) => 0,
            };
            RaftServer {
                id: member
                    .and_then(|m| m.tags.get(tags::ID).cloned())
                    .unwrap_or_else(|| r.id.to_string()),
                node: member.map(|m| m.name.clone()).unwrap_or_default(),
                address: r.addr.clone(),
                leader: m.current_leader == Some(r.id),
                protocol_version: "3".into(),
                voter: r.voter,
                last_index,
            }
        })
        .collect();
    let body = RaftConfiguration {
        servers,
        index: m.membership_config.log_id().map_or(0, |l| l.index),
    };
    Ok(json(StatusCode::OK, &body, params.get("pretty").is_some()))
}

async fn remove_peer(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let raft = super::raft(&agent)?;
    let members = raft.members();
    let target = match (params.get("id"), params.get("address")) {
        (Some(id), _) if !id.is_empty() => {
            let rid = id
                .parse::<NodeId>()
                .unwrap_or_else(|_| node_id_from_uuid(id));
            members
                .iter()
                .find(|m| m.id == rid)
                .cloned()
                .ok_or_else(|| {
                    ApiError::internal(format!("id {id:?} was not found in the Raft configuration"))
                })?
        }
        (_, Some(addr)) if !addr.is_empty() => members
            .iter()
            .find(|m| m.addr == addr)
            .cloned()
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "address {addr:?} was not found in the Raft configuration"
                ))
            })?,
        _ => {
            return Err(ApiError::bad_request(
                "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove",
            ));
        }
    };
    match raft.remove_server(target.id).await {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(e) if e.is_not_leader() => forward_to_leader(&agent, params).await,
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// A membership change asked of a follower is made by the leader.
async fn forward_to_leader(agent: &Agent, params: Params) -> ApiResult<Response> {
    let uri = format!("/v1/operator/raft/peer?{}", params.query_string());
    super::forward::to_leader(agent, "DELETE", uri).await
}

#[derive(Clone, Copy)]
enum Change {
    Install,
    Use,
    Remove,
}

async fn keyring_list(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let keys = agent
        .gossip
        .keyring(KeyringOp::List)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if keys.is_empty() {
        return Err(ApiError::internal(
            "Keyring is empty (encryption not enabled)",
        ));
    }
    let alive = agent
        .gossip
        .members()
        .iter()
        .filter(|m| m.status == registry_api::agent::MemberStatus::Alive as u8)
        .count();
    // Every member shares the pool's keyring (changes are applied cluster-wide).
    // Consul answers per pool; we have the LAN one.
    let body = vec![KeyringResponse {
        wan: false,
        datacenter: agent.opts.datacenter.clone(),
        primary_keys: keys
            .first()
            .map(|k| (k.clone(), alive))
            .into_iter()
            .collect(),
        keys: keys.into_iter().map(|k| (k, alive)).collect(),
        num_nodes: alive,
        ..KeyringResponse::default()
    }];
    Ok(json(StatusCode::OK, &body, params.get("pretty").is_some()))
}

async fn keyring_change(
    State(agent): State<Ctx>,
    body: Bytes,
    change: Change,
) -> ApiResult<Response> {
    let key: KeyringRequest = registry_api::decode::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
    let op = match change {
        Change::Install => KeyringOp::Install(key.key),
        Change::Use => KeyringOp::Use(key.key),
        Change::Remove => KeyringOp::Remove(key.key),
    };
    crate::agent::keyring_cluster_wide(&agent, op)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(StatusCode::OK.into_response())
}
