//! `/v1/query/*`: prepared queries. Definitions are replicated through Raft;
//! resolution and execution are the pure functions of [`crate::state::query`].
//!
//! Validation runs here first against local state so bad definitions get a
//! 400 with Consul's message; apply re-checks, since another write may race.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use registry_api::{
    IdResponse, PreparedQuery, PreparedQueryExecuteResponse, PreparedQueryExplainResponse,
};

use super::Ctx;
use super::blocking::{ReadOpts, json, read, reply};
use super::catalog::decode_body;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::state::{Command, WatchKey, query};

/// Consul's answer for an unknown ID or name.
const NOT_FOUND: &str = "Query not found";

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/query", get(list).post(create))
        .route("/v1/query/{id}", get(get_one).put(update).delete(remove))
        .route("/v1/query/{id}/execute", get(execute))
        .route("/v1/query/{id}/explain", get(explain))
}

/// Decodes a definition and checks it against the local state.
fn definition(agent: &Ctx, body: &[u8], id: String) -> ApiResult<PreparedQuery> {
    let mut q: PreparedQuery = decode_body(body)?;
    q.id = id;
    q.create_index = 0;
    q.modify_index = 0;
    super::raft(agent)?
        .shared
        .read(|s| query::validate(s, &q))
        .map_err(ApiError::bad_request)?;
    Ok(q)
}

/// Consul refuses to update or delete an unknown ID with this 500.
fn require_existing(agent: &Ctx, id: &str) -> ApiResult<()> {
    let exists = super::raft(agent)?
        .shared
        .read(|s| s.prepared_query(id).is_some());
    if exists {
        Ok(())
    } else {
        Err(ApiError::internal(format!(
            "Cannot modify non-existent prepared query: '{id}'"
        )))
    }
}

async fn create(State(agent): State<Ctx>, params: Params, body: Bytes) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    // The ID is chosen here, before the Raft write, so every replica stores the same one.
    let q = definition(&agent, &body, uuid::Uuid::new_v4().to_string())?;
    let id = q.id.clone();
    agent.write(Command::QueryCreate(Box::new(q))).await?;
    Ok(json(
        StatusCode::OK,
        &IdResponse { id },
        params.get("pretty").is_some(),
    ))
}

async fn update(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    require_existing(&agent, &id)?;
    let q = definition(&agent, &body, id)?;
    agent.write(Command::QueryUpdate(Box::new(q))).await?;
    Ok(StatusCode::OK.into_response())
}

async fn remove(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    require_existing(&agent, &id)?;
    agent.write(Command::QueryDelete { id }).await?;
    Ok(StatusCode::OK.into_response())
}

async fn list(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (rows, meta) = read(&agent, &opts, &[WatchKey::PreparedQueries], |s| {
        s.prepared_queries().cloned().collect::<Vec<_>>()
    })
    .await?;
    Ok(reply(&rows, &meta, &opts))
}

async fn get_one(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (row, meta) = read(&agent, &opts, &[WatchKey::PreparedQueries], |s| {
        s.prepared_query(&id).cloned()
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    Ok(reply(&[row], &meta, &opts))
}

/// `?near=` is accepted but only shuffles (no coordinates); `?limit=` caps the answer.
async fn execute(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let mut opts = ReadOpts::parse(&params, &agent)?;
    // Execute is not a blocking query in Consul.
    opts.index = 0;
    let limit = params.u64("limit", "limit")?.map(|l| l as usize);
    let (found, meta) = read(&agent, &opts, &[WatchKey::PreparedQueries], |s| {
        query::resolve(s, &id).map(|q| {
            let nodes = query::execute(s, &q, limit);
            (q, nodes)
        })
    })
    .await?;
    let (q, nodes) = found.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    let answer = PreparedQueryExecuteResponse {
        service: q.service.service,
        nodes,
        dns: q.dns,
        datacenter: agent.opts.datacenter.clone(),
        failovers: 0,
    };
    Ok(reply(&answer, &meta, &opts))
}

async fn explain(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let mut opts = ReadOpts::parse(&params, &agent)?;
    opts.index = 0;
    let (found, meta) = read(&agent, &opts, &[WatchKey::PreparedQueries], |s| {
        query::resolve(s, &id)
    })
    .await?;
    let query = found.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    Ok(reply(&PreparedQueryExplainResponse { query }, &meta, &opts))
}
