//! `/v1/event/*`: user events. They are not replicated through Raft: gossip
//! carries them to every agent, each of which keeps its own list.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use registry_api::UserEvent;
use tokio::time::{Instant, sleep_until};

use super::Ctx;
use super::blocking::{ReadMeta, ReadOpts, json, reply};
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::agent::events::list_index;

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/event/fire/{name}", put(fire))
        .route("/v1/event/list", get(list))
}

async fn fire(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    if name.starts_with('_') {
        return Err(ApiError::bad_request(
            "User events with a leading underscore are reserved",
        ));
    }
    for (param, what) in [("node", "node"), ("service", "service"), ("tag", "tag")] {
        if let Some(re) = params.get(param) {
            regex::Regex::new(re)
                .map_err(|e| ApiError::bad_request(format!("Invalid {what} filter: {e}")))?;
        }
    }
    let event = UserEvent {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        payload: if body.is_empty() {
            None
        } else {
            Some(body.to_vec())
        },
        node_filter: params.get("node").unwrap_or("").into(),
        service_filter: params.get("service").unwrap_or("").into(),
        tag_filter: params.get("tag").unwrap_or("").into(),
        version: 1,
        ltime: 0,
    };
    let event = agent
        .gossip
        .fire_event(event)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    agent.events.record(event.clone());
    Ok(json(StatusCode::OK, &event, params.get("pretty").is_some()))
}

async fn list(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let name = params.get("name").filter(|n| !n.is_empty());
    let deadline = Instant::now() + opts.wait;
    loop {
        let mut tick = agent.events.subscribe();
        let events = agent.events.list(name);
        let index = list_index(&events);
        if opts.index == 0 || index != opts.index || Instant::now() >= deadline {
            let meta = ReadMeta {
                index,
                known_leader: agent.has_leader(),
                last_contact_ms: 0,
            };
            return Ok(reply(&events, &meta, &opts));
        }
        tokio::select! {
            _ = tick.changed() => {}
            _ = sleep_until(deadline) => {}
            _ = agent.token.cancelled() => return Err(ApiError::internal("agent is shutting down")),
        }
    }
}
