//! `/v1/health/*`: checks and instances with their health.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use registry_api::{CheckServiceNode, PASSING};

use super::Ctx;
use super::blocking::{ReadOpts, read, reply};
use super::catalog::{meta_matches, tags_match};
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::filter;
use crate::state::WatchKey;

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/health/node/{node}", get(node))
        .route("/v1/health/checks/{service}", get(checks))
        .route("/v1/health/service/{service}", get(service))
        .route("/v1/health/state/{state}", get(state))
}

/// Whether every check of an instance (node checks included) is passing.
pub fn all_passing(row: &CheckServiceNode) -> bool {
    row.checks.iter().all(|c| c.status == PASSING)
}

async fn node(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (checks, meta) = read(&agent, &opts, &[WatchKey::Node(name.clone())], |s| {
        s.catalog().node_checks(&name).cloned().collect::<Vec<_>>()
    })
    .await?;
    let checks = filter::apply(opts.filter.as_deref(), checks)?;
    Ok(reply(&checks, &meta, &opts))
}

async fn checks(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (checks, meta) = read(&agent, &opts, &[WatchKey::Service(name.clone())], |s| {
        s.catalog().service_checks(&name)
    })
    .await?;
    let checks = filter::apply(opts.filter.as_deref(), checks)?;
    Ok(reply(&checks, &meta, &opts))
}

async fn service(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let tags = params.all("tag");
    let wanted = params.node_meta();
    let passing = params.flag("passing");
    let (rows, meta) = read(&agent, &opts, &[WatchKey::Service(name.clone())], |s| {
        s.health_service(&name)
            .into_iter()
            .filter(|r| tags_match(&r.service.tags, &tags) && meta_matches(&r.node.meta, &wanted))
            .filter(|r| !passing || all_passing(r))
            .collect::<Vec<_>>()
    })
    .await?;
    let rows = filter::apply(opts.filter.as_deref(), rows)?;
    Ok(reply(&rows, &meta, &opts))
}

async fn state(
    State(agent): State<Ctx>,
    Path(state): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    if !matches!(state.as_str(), "any" | "passing" | "warning" | "critical") {
        return Err(ApiError::bad_request(format!("Invalid state: {state}")));
    }
    let opts = ReadOpts::parse(&params, &agent)?;
    let (checks, meta) = read(&agent, &opts, &[WatchKey::Checks], |s| {
        s.checks_in_state(&state)
    })
    .await?;
    let checks = filter::apply(opts.filter.as_deref(), checks)?;
    Ok(reply(&checks, &meta, &opts))
}
