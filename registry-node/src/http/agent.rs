//! `/v1/agent/*`: the local agent's view — its identity, members, the services
//! and checks it owns, TTL updates, maintenance, leave and reload.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use registry_api::{
    AgentSelf, AgentSelfConfig, AgentService, AgentServiceHealth, AgentServiceRegistration,
    CheckDefinition, HealthCheck, Member, aggregate,
};
use serde::Deserialize;

use super::Ctx;
use super::blocking::json;
use super::catalog::decode_body;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::agent::Agent;
use crate::filter;

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/members", get(members))
        .route("/v1/agent/services", get(services))
        .route("/v1/agent/service/{id}", get(service))
        .route("/v1/agent/service/register", put(register_service))
        .route("/v1/agent/service/deregister/{id}", put(deregister_service))
        .route(
            "/v1/agent/service/maintenance/{id}",
            put(service_maintenance),
        )
        .route("/v1/agent/checks", get(checks))
        .route("/v1/agent/check/register", put(register_check))
        .route("/v1/agent/check/deregister/{id}", put(deregister_check))
        .route(
            "/v1/agent/check/pass/{id}",
            put(|s, p, q| ttl_note(s, p, q, registry_api::PASSING)),
        )
        .route(
            "/v1/agent/check/warn/{id}",
            put(|s, p, q| ttl_note(s, p, q, registry_api::WARNING)),
        )
        .route(
            "/v1/agent/check/fail/{id}",
            put(|s, p, q| ttl_note(s, p, q, registry_api::CRITICAL)),
        )
        .route("/v1/agent/check/update/{id}", put(ttl_update))
        .route("/v1/agent/health/service/name/{name}", get(health_by_name))
        .route("/v1/agent/health/service/id/{id}", get(health_by_id))
        .route("/v1/agent/maintenance", put(node_maintenance))
        .route("/v1/agent/leave", put(leave))
        .route("/v1/agent/reload", put(reload))
        .route("/v1/agent/join/{addr}", put(join))
        .route("/v1/agent/force-leave/{node}", put(force_leave))
}

fn pretty(params: &Params) -> bool {
    params.get("pretty").is_some()
}

/// This agent as a gossip member, with Consul's tags.
pub fn self_member(agent: &Agent) -> Member {
    let name = agent.gossip.local_name();
    agent
        .gossip
        .members()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| Member {
            name: agent.opts.node_name.clone(),
            addr: agent.opts.advertise_addr.to_string(),
            port: agent.opts.serf_lan_port,
            tags: crate::agent::member_tags(&agent.opts),
            status: 1,
            protocol_min: 1,
            protocol_max: 5,
            protocol_cur: 2,
            delegate_min: 2,
            delegate_max: 5,
            delegate_cur: 4,
        })
}

/// The `Stats` of `/v1/agent/self`, printed by `info`.
async fn stats(agent: &Agent) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = |name: &str, pairs: Vec<(&str, String)>| {
        out.insert(
            name.to_string(),
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        );
    };
    let (services, checks, ttls, monitors) = {
        let local = agent.local.lock().expect("local lock");
        let ttls = local
            .checks
            .values()
            .filter(|c| c.definition.ttl.is_some())
            .count();
        (
            local.services.len(),
            local.checks.len(),
            ttls,
            local.checks.len() - ttls,
        )
    };
    section(
        "agent",
        vec![
            ("check_monitors", monitors.to_string()),
            ("check_ttls", ttls.to_string()),
            ("checks", checks.to_string()),
            ("services", services.to_string()),
        ],
    );
    section(
        "build",
        vec![
            ("prerelease", String::new()),
            ("revision", registry_api::VERSION.to_string()),
            ("version", registry_api::CONSUL_COMPAT_VERSION.to_string()),
        ],
    );
    if let Some(raft) = &agent.raft {
        let m = raft.raft.metrics().borrow().clone();
        let leader_addr = raft.leader_addr().unwrap_or_default();
        section(
            "consul",
            vec![
                ("acl", "disabled".into()),
                ("bootstrap", agent.opts.bootstrap.to_string()),
                ("known_datacenters", "1".into()),
                ("leader", (m.current_leader == Some(raft.id)).to_string()),
                ("leader_addr", leader_addr),
                ("server", "true".into()),
            ],
        );
        let voters = m.membership_config.membership().voter_ids().count();
        let state = format!("{:?}", m.state);
        section(
            "raft",
            vec![
                (
                    "applied_index",
                    m.last_applied.map(|l| l.index).unwrap_or(0).to_string(),
                ),
                (
                    "commit_index",
                    m.last_applied.map(|l| l.index).unwrap_or(0).to_string(),
                ),
                ("fsm_pending", "0".into()),
                (
                    "last_contact",
                    if m.current_leader == Some(raft.id) {
                        "0".into()
                    } else if m.current_leader.is_some() {
                        format!("{}ms", raft.last_contact_ms())
                    } else {
                        "never".into()
                    },
                ),
                ("last_log_index", m.last_log_index.unwrap_or(0).to_string()),
                ("last_log_term", m.current_term.to_string()),
                (
                    "last_snapshot_index",
                    m.snapshot.map(|l| l.index).unwrap_or(0).to_string(),
                ),
                (
                    "last_snapshot_term",
                    m.snapshot
                        .map(|l| l.leader_id.term)
                        .unwrap_or(0)
                        .to_string(),
                ),
                (
                    "latest_configuration_index",
                    m.membership_config
                        .log_id()
                        .map(|l| l.index)
                        .unwrap_or(0)
                        .to_string(),
                ),
                ("num_peers", voters.saturating_sub(1).to_string()),
                ("protocol_version", "3".into()),
                ("protocol_version_max", "3".into()),
                ("protocol_version_min", "0".into()),
                ("snapshot_version_max", "1".into()),
                ("snapshot_version_min", "0".into()),
                ("state", state),
                ("term", m.current_term.to_string()),
            ],
        );
    } else {
        section(
            "consul",
            vec![
                ("acl", "disabled".into()),
                ("known_servers", agent.servers.servers().len().to_string()),
                ("server", "false".into()),
            ],
        );
    }
    section(
        "runtime",
        vec![
            ("arch", std::env::consts::ARCH.into()),
            (
                "cpu_count",
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .to_string(),
            ),
            ("goroutines", "0".into()),
            (
                "max_procs",
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
                    .to_string(),
            ),
            ("os", std::env::consts::OS.into()),
            (
                "version",
                format!("rust (registry-node {})", registry_api::VERSION),
            ),
        ],
    );
    let serf: Vec<(String, String)> = agent
        .gossip
        .stats()
        .await
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let serf: Vec<(&str, String)> = serf.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    section("serf_lan", serf.clone());
    if agent.opts.server {
        section("serf_wan", serf);
    }
    out
}

async fn agent_self(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let o = &agent.opts;
    let body = AgentSelf {
        config: AgentSelfConfig {
            datacenter: o.datacenter.clone(),
            primary_datacenter: o.datacenter.clone(),
            node_name: o.node_name.clone(),
            node_id: o.node_id.clone(),
            partition: String::new(),
            revision: registry_api::VERSION.into(),
            server: o.server,
            version: registry_api::CONSUL_COMPAT_VERSION.into(),
            registry_version: registry_api::VERSION.into(),
            build_date: String::new(),
        },
        debug_config: o.debug_config.clone(),
        coord: serde_json::json!({"Adjustment": 0, "Error": 1.5, "Height": 1e-5, "Vec": [0, 0, 0, 0, 0, 0, 0, 0]}),
        member: self_member(&agent),
        stats: stats(&agent).await,
        meta: o.node_meta.clone(),
    };
    Ok(json(StatusCode::OK, &body, pretty(&params)))
}

async fn members(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let members = if params.flag("wan") {
        if !agent.opts.server {
            return Ok(json(StatusCode::OK, &Vec::<Member>::new(), pretty(&params)));
        }
        // No WAN pool yet: the servers of this datacenter, named `node.dc`.
        agent
            .gossip
            .members()
            .into_iter()
            .filter(crate::agent::servers::is_server)
            .map(|mut m| {
                m.name = format!("{}.{}", m.name, agent.opts.datacenter);
                m
            })
            .collect()
    } else {
        agent.gossip.members()
    };
    let members = filter::apply(params.get("filter"), members)?;
    Ok(json(StatusCode::OK, &members, pretty(&params)))
}

fn agent_services(agent: &Agent) -> BTreeMap<String, AgentService> {
    let local = agent.local.lock().expect("local lock");
    local
        .services
        .iter()
        .map(|(id, s)| {
            (
                id.clone(),
                AgentService::from_node_service(&s.service, &agent.opts.datacenter),
            )
        })
        .collect()
}

async fn services(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let services = filter::apply_map(params.get("filter"), agent_services(&agent))?;
    Ok(json(StatusCode::OK, &services, pretty(&params)))
}

fn content_hash(svc: &AgentService) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(svc).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

async fn service(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let wait = params
        .get("wait")
        .map(|w| {
            registry_api::duration::parse_duration(w)
                .map_err(|_| ApiError::bad_request("Invalid wait time"))
        })
        .transpose()?
        .unwrap_or(agent.opts.default_query_time)
        .min(agent.opts.max_query_time);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut svc = agent_services(&agent)
            .remove(&id)
            .ok_or_else(|| ApiError::not_found(format!("unknown service ID: {id}")))?;
        let hash = content_hash(&svc);
        // Hash-based blocking: wait while the caller already has this version.
        if params.get("hash") == Some(hash.as_str()) && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                _ = agent.token.cancelled() => {}
            }
        }
        svc.content_hash = Some(hash.clone());
        let mut resp = json(StatusCode::OK, &svc, pretty(&params));
        resp.headers_mut().insert(
            "X-Consul-ContentHash",
            hash.parse().expect("hex is a valid header"),
        );
        return Ok(resp);
    }
}

async fn register_service(
    State(agent): State<Ctx>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    let reg: AgentServiceRegistration = decode_body(&body)?;
    agent
        .register_service(&reg, params.flag("replace-existing-checks"))
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn deregister_service(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    agent.deregister_service(&id).await?;
    Ok(StatusCode::OK.into_response())
}

async fn checks(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let checks: BTreeMap<String, HealthCheck> = {
        let local = agent.local.lock().expect("local lock");
        local
            .checks
            .iter()
            .map(|(id, c)| (id.clone(), c.check.clone()))
            .collect()
    };
    let checks = filter::apply_map(params.get("filter"), checks)?;
    Ok(json(StatusCode::OK, &checks, pretty(&params)))
}

async fn register_check(State(agent): State<Ctx>, body: Bytes) -> ApiResult<Response> {
    let def: CheckDefinition = decode_body(&body)?;
    agent.register_check(&def).await?;
    Ok(StatusCode::OK.into_response())
}

async fn deregister_check(State(agent): State<Ctx>, Path(id): Path<String>) -> ApiResult<Response> {
    agent.deregister_check(&id).await?;
    Ok(StatusCode::OK.into_response())
}

async fn ttl_note(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
    status: &str,
) -> ApiResult<Response> {
    agent
        .update_ttl(&id, status, params.get("note").unwrap_or(""))
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CheckUpdate {
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "Output")]
    output: String,
}

async fn ttl_update(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let update: CheckUpdate = decode_body(&body)?;
    agent
        .update_ttl(&id, &update.status, &update.output)
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// Health of local instances: 200 all passing, 429 warning, 503 critical or maintenance.
fn health_response(rows: Vec<AgentServiceHealth>, single: bool, params: &Params) -> Response {
    let worst = aggregate(rows.iter().map(|r| r.aggregated_status.as_str()));
    let code = match worst {
        registry_api::PASSING => StatusCode::OK,
        registry_api::WARNING => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if params.get("format") == Some("text") {
        return (code, worst.to_string()).into_response();
    }
    if single {
        json(code, &rows[0], pretty(params))
    } else {
        json(code, &rows, pretty(params))
    }
}

fn local_health(agent: &Agent, matches: impl Fn(&AgentService) -> bool) -> Vec<AgentServiceHealth> {
    let services = agent_services(agent);
    let local = agent.local.lock().expect("local lock");
    services
        .into_values()
        .filter(|s| matches(s))
        .map(|svc| {
            let checks: Vec<HealthCheck> = local
                .checks
                .values()
                .filter(|c| c.check.service_id == svc.id || c.check.service_id.is_empty())
                .map(|c| c.check.clone())
                .collect();
            let status = aggregate(checks.iter().map(Agent::effective_status));
            AgentServiceHealth {
                aggregated_status: status.to_string(),
                service: svc,
                checks,
            }
        })
        .collect()
}

async fn health_by_name(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let rows = local_health(&agent, |s| s.service == name);
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("ServiceName {name} Not Found")));
    }
    Ok(health_response(rows, false, &params))
}

async fn health_by_id(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let rows = local_health(&agent, |s| s.id == id);
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("ServiceId {id} Not Found")));
    }
    Ok(health_response(rows, true, &params))
}

fn maintenance_args(params: &Params) -> ApiResult<(bool, String)> {
    let enable = match params.get("enable") {
        None | Some("") => return Err(ApiError::bad_request("Missing value for enable")),
        Some(v) => v
            .parse::<bool>()
            .map_err(|_| ApiError::bad_request(format!("Invalid value for enable: {v:?}")))?,
    };
    Ok((enable, params.get("reason").unwrap_or("").to_string()))
}

async fn node_maintenance(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let (enable, reason) = maintenance_args(&params)?;
    agent.set_maintenance(None, enable, &reason).await?;
    Ok(StatusCode::OK.into_response())
}

async fn service_maintenance(
    State(agent): State<Ctx>,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (enable, reason) = maintenance_args(&params)?;
    agent.set_maintenance(Some(&id), enable, &reason).await?;
    Ok(StatusCode::OK.into_response())
}

async fn leave(State(agent): State<Ctx>) -> ApiResult<Response> {
    tracing::info!("graceful leave requested");
    agent.leave().await;
    // Answer first, then stop.
    let token = agent.token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        token.cancel();
    });
    Ok(StatusCode::OK.into_response())
}

async fn reload(State(agent): State<Ctx>) -> ApiResult<Response> {
    agent
        .reload()
        .await
        .map_err(|e| ApiError::internal(format!("Failed to reload configs: {e}")))?;
    Ok(StatusCode::OK.into_response())
}

async fn join(
    State(agent): State<Ctx>,
    Path(addr): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    if params.flag("wan") {
        return Err(ApiError::internal(
            "WAN join is not supported yet (no WAN gossip pool)",
        ));
    }
    let addrs = crate::agent::resolve_join(std::slice::from_ref(&addr)).await;
    if addrs.is_empty() {
        return Err(ApiError::internal(format!(
            "1 error occurred:\n\t* Failed to resolve {addr}\n\n"
        )));
    }
    match agent.gossip.join(addrs).await {
        Ok(n) => {
            tracing::info!(%addr, num_agents = n, "agent: Join LAN completed");
            Ok(StatusCode::OK.into_response())
        }
        Err(e) => Err(ApiError::internal(format!(
            "1 error occurred:\n\t* Failed to join {addr}: {e}\n\n"
        ))),
    }
}

async fn force_leave(
    State(agent): State<Ctx>,
    Path(node): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    if node == agent.opts.node_name {
        return Err(ApiError::internal(
            "Cannot force-leave this agent; use leave",
        ));
    }
    match agent.gossip.force_leave(&node).await {
        Ok(()) => {}
        Err(crate::gossip::GossipError::UnknownMember(_)) => {
            return Err(ApiError::not_found(format!(
                "agent: No node found with name '{node}'"
            )));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    }
    // `-prune` also drops the member and its catalog entry right away.
    if params.flag("prune") && agent.raft.is_some() {
        let dereg = registry_api::CatalogDeregistration {
            node: node.clone(),
            ..Default::default()
        };
        agent
            .write(crate::state::Command::Deregister(dereg))
            .await?;
    }
    Ok(StatusCode::OK.into_response())
}
