//! `/v1/status/*`: the Raft leader and peers.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::Ctx;
use super::blocking::json;
use super::error::ApiResult;
use super::params::Params;

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/status/leader", get(leader))
        .route("/v1/status/peers", get(peers))
}

async fn leader(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let metrics = super::raft(&agent)?.raft.metrics().borrow().clone();
    let addr = metrics
        .current_leader
        .and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        })
        .unwrap_or_default();
    Ok(json(StatusCode::OK, &addr, params.get("pretty").is_some()))
}

async fn peers(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let metrics = super::raft(&agent)?.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let peers: Vec<String> = membership
        .voter_ids()
        .filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone()))
        .collect();
    Ok(json(StatusCode::OK, &peers, params.get("pretty").is_some()))
}
