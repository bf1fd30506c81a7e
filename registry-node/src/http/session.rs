//! `/v1/session/*`: sessions for locks and ephemeral keys. Creation and
//! destruction go through Raft; TTL expiry is decided by the leader.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use registry_api::duration::{format_duration, parse_duration};
use registry_api::{IdResponse, SERF_CHECK_ID, SessionEntry, SessionRequest};

use super::Ctx;
use super::blocking::{ReadOpts, json, read, reply};
use super::catalog::decode_body;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::agent::tasks::touch_session;
use crate::state::{Command, DEFAULT_LOCK_DELAY, WatchKey};

/// Longest lock delay Consul accepts.
const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Longest session TTL.
const MAX_TTL: Duration = Duration::from_secs(86400);

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/session/create", put(create))
        .route("/v1/session/destroy/{id}", put(destroy))
        .route("/v1/session/renew/{id}", put(renew))
        .route("/v1/session/info/{id}", get(info))
        .route("/v1/session/node/{node}", get(node))
        .route("/v1/session/list", get(list))
}

/// Validates a create request and fills Consul's defaults.
pub fn session_from_request(
    req: SessionRequest,
    node: &str,
    ttl_min: Duration,
) -> ApiResult<SessionEntry> {
    let behavior = if req.behavior.is_empty() {
        "release".to_string()
    } else {
        req.behavior
    };
    if behavior != "release" && behavior != "delete" {
        return Err(ApiError::bad_request(format!(
            "Invalid Behavior setting '{behavior}'"
        )));
    }
    let ttl = if req.ttl.is_empty() {
        String::new()
    } else {
        let d = parse_duration(&req.ttl)
            .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))?;
        if !d.is_zero() && (d < ttl_min || d > MAX_TTL) {
            return Err(ApiError::bad_request(format!(
                "Invalid Session TTL '{}', must be between [{}={}]",
                format_duration(d),
                format_duration(ttl_min),
                format_duration(MAX_TTL)
            )));
        }
        if d.is_zero() {
            String::new()
        } else {
            req.ttl.clone()
        }
    };
    let node_checks = req
        .node_checks
        .or(req.checks)
        .unwrap_or_else(|| vec![SERF_CHECK_ID.to_string()]);
    Ok(SessionEntry {
        id: uuid::Uuid::new_v4().to_string(),
        name: req.name,
        node: if req.node.is_empty() {
            node.to_string()
        } else {
            req.node
        },
        lock_delay: req
            .lock_delay
            .map(|d| d.get())
            .unwrap_or(DEFAULT_LOCK_DELAY)
            .min(MAX_LOCK_DELAY),
        behavior,
        ttl,
        node_checks,
        service_checks: req.service_checks,
        create_index: 0,
        modify_index: 0,
    })
}

async fn create(State(agent): State<Ctx>, params: Params, body: Bytes) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let req: SessionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SessionRequest::default()
    } else {
        decode_body(&body)?
    };
    let session = session_from_request(req, &agent.opts.node_name, agent.opts.session_ttl_min)?;
    let id = session.id.clone();
    let ttl = parse_duration(&session.ttl).ok();
    agent.write(Command::SessionCreate(session)).await?;
    if let Some(ttl) = ttl {
        touch_session(&agent, &id, ttl);
    }
    Ok(json(
        StatusCode::OK,
        &IdResponse { id },
        params.get("pretty").is_some(),
    ))
}

async fn destroy(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad_request(format!(
            "Session id '{id}' is not a valid UUID"
        )));
    }
    agent.write(Command::SessionDestroy { id }).await?;
    Ok(json(StatusCode::OK, &true, false))
}

async fn renew(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let raft = super::raft(&agent)?;
    if !raft.is_leader() {
        // The leader keeps the TTL timers.
        let uri = format!("/v1/session/renew/{id}?{}", params.query_string());
        return super::forward::to_leader(&agent, "PUT", uri).await;
    }
    let session = raft.shared.read(|s| s.session(&id).cloned());
    let Some(session) = session else {
        return Err(ApiError::not_found(format!("Session id '{id}' not found")));
    };
    if let Ok(ttl) = parse_duration(&session.ttl) {
        touch_session(&agent, &id, ttl);
    }
    Ok(json(
        StatusCode::OK,
        &[session],
        params.get("pretty").is_some(),
    ))
}

async fn info(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (rows, meta) = read(&agent, &opts, &[WatchKey::Sessions], |s| {
        s.session(&id).cloned().into_iter().collect::<Vec<_>>()
    })
    .await?;
    Ok(reply(&rows, &meta, &opts))
}

async fn node(
    State(agent): State<Ctx>,
    Path(node): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (rows, meta) = read(&agent, &opts, &[WatchKey::Sessions], |s| {
        s.sessions()
            .filter(|x| x.node == node)
            .cloned()
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(reply(&rows, &meta, &opts))
}

async fn list(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let (rows, meta) = read(&agent, &opts, &[WatchKey::Sessions], |s| {
        s.sessions().cloned().collect::<Vec<_>>()
    })
    .await?;
    Ok(reply(&rows, &meta, &opts))
}
