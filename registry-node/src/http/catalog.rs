//! `/v1/catalog/*`: registration and the cluster-wide views of nodes and services.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use registry_api::{
    CatalogDeregistration, CatalogRegistration, Meta, Node, NodeService, NodeServiceList,
    NodeServices, decode,
};

use super::Ctx;
use super::blocking::{ReadMeta, ReadOpts, json, read, reply};
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::filter;
use crate::state::{Command, WatchKey};

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/catalog/register", put(register))
        .route("/v1/catalog/deregister", put(deregister))
        .route("/v1/catalog/datacenters", get(datacenters))
        .route("/v1/catalog/nodes", get(nodes))
        .route("/v1/catalog/services", get(services))
        .route("/v1/catalog/service/{name}", get(service))
        .route("/v1/catalog/node/{node}", get(node))
        .route("/v1/catalog/node-services/{node}", get(node_services))
}

/// Decodes a JSON body the way Go does; a syntax error is a 400 naming the problem.
pub fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    decode::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Request decode failed: {e}")))
}

/// Whether node metadata has every `key:value` pair asked for.
pub fn meta_matches(meta: &Meta, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| meta.get(k) == Some(v))
}

/// Whether an instance carries every tag asked for (`?tag=a&tag=b`).
pub fn tags_match(tags: &[String], wanted: &[&str]) -> bool {
    wanted.iter().all(|w| tags.iter().any(|t| t == w))
}

async fn register(State(agent): State<Ctx>, params: Params, body: Bytes) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let mut reg: CatalogRegistration = decode_body(&body)?;
    if reg.node.is_empty() {
        return Err(ApiError::bad_request("Missing node name"));
    }
    if reg.address.is_empty() && !reg.skip_node_update {
        return Err(ApiError::bad_request("Missing node address"));
    }
    if !reg.datacenter.is_empty() && reg.datacenter != agent.opts.datacenter {
        return Err(ApiError::internal("No path to datacenter"));
    }
    reg.datacenter = agent.opts.datacenter.clone();
    if let Some(svc) = reg.service.as_mut() {
        if svc.service.is_empty() {
            return Err(ApiError::bad_request("Missing service name"));
        }
        crate::dns::warn_if_not_dns_label(&svc.service);
        if svc.id.is_empty() {
            svc.id = svc.service.clone();
        }
    }
    for check in reg.check.iter_mut().chain(reg.checks.iter_mut()) {
        if !check.node.is_empty() && check.node != reg.node {
            return Err(ApiError::bad_request(format!(
                "Check node name {:?} does not match registration node name {:?}",
                check.node, reg.node
            )));
        }
    }
    agent.write(Command::Register(Box::new(reg))).await?;
    Ok(json(StatusCode::OK, &true, false))
}

async fn deregister(State(agent): State<Ctx>, params: Params, body: Bytes) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let dereg: CatalogDeregistration = decode_body(&body)?;
    if dereg.node.is_empty() {
        return Err(ApiError::bad_request("Missing node name"));
    }
    agent.write(Command::Deregister(dereg)).await?;
    Ok(json(StatusCode::OK, &true, false))
}

async fn datacenters(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        std::slice::from_ref(&agent.opts.datacenter),
        params.get("pretty").is_some(),
    ))
}

async fn nodes(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let wanted = params.node_meta();
    let (nodes, meta) = read(&agent, &opts, &[WatchKey::Nodes], |s| {
        s.catalog()
            .nodes()
            .filter(|n| meta_matches(&n.meta, &wanted))
            .cloned()
            .collect::<Vec<Node>>()
    })
    .await?;
    let nodes = filter::apply(opts.filter.as_deref(), nodes)?;
    Ok(reply(&nodes, &meta, &opts))
}

async fn services(State(agent): State<Ctx>, params: Params) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let wanted = params.node_meta();
    let filter = opts
        .filter
        .as_deref()
        .map(filter::parse_for_api)
        .transpose()?;
    let (result, meta) = read(&agent, &opts, &[WatchKey::Services, WatchKey::Nodes], |s| {
        if wanted.is_empty() && filter.is_none() {
            return Ok(s.catalog().service_names());
        }
        // With a filter or node-meta, aggregate over the matching instances only.
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for node in s
            .catalog()
            .nodes()
            .filter(|n| meta_matches(&n.meta, &wanted))
        {
            for svc in s.catalog().node_services(&node.node) {
                if let Some(f) = &filter {
                    let row = serde_json::to_value(registry_api::ServiceNode::new(node, svc))
                        .unwrap_or_default();
                    if !f.matches(&row)? {
                        continue;
                    }
                }
                let tags = out.entry(svc.service.clone()).or_default();
                for tag in &svc.tags {
                    if !tags.contains(tag) {
                        tags.push(tag.clone());
                    }
                }
            }
        }
        Ok(out)
    })
    .await?;
    let services = result.map_err(|e: filter::FilterError| ApiError::from(e))?;
    Ok(reply(&services, &meta, &opts))
}

async fn service(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let opts = ReadOpts::parse(&params, &agent)?;
    let tags = params.all("tag");
    let wanted = params.node_meta();
    let (rows, meta) = read(&agent, &opts, &[WatchKey::Service(name.clone())], |s| {
        s.catalog()
            .service_nodes(&name)
            .into_iter()
            .filter(|r| tags_match(&r.service_tags, &tags) && meta_matches(&r.node_meta, &wanted))
            .collect::<Vec<_>>()
    })
    .await?;
    let rows = filter::apply(opts.filter.as_deref(), rows)?;
    Ok(reply(&rows, &meta, &opts))
}

/// Reads a node and its instances (filtered by `?filter=`), blocking on the node's view.
async fn node_view(
    agent: &Ctx,
    name: &str,
    params: &Params,
) -> ApiResult<(Option<(Node, Vec<NodeService>)>, ReadMeta, ReadOpts)> {
    let opts = ReadOpts::parse(params, agent)?;
    let (found, meta) = read(agent, &opts, &[WatchKey::Node(name.to_string())], |s| {
        let node = s.catalog().node(name).cloned()?;
        Some((
            node,
            s.catalog().node_services(name).cloned().collect::<Vec<_>>(),
        ))
    })
    .await?;
    let found = match found {
        Some((node, services)) => Some((node, filter::apply(opts.filter.as_deref(), services)?)),
        None => None,
    };
    Ok((found, meta, opts))
}

/// `/v1/catalog/node/:node`: services keyed by ID; `null` for an unknown node.
async fn node(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (found, meta, opts) = node_view(&agent, &name, &params).await?;
    let body = found.map(|(node, services)| NodeServices {
        node,
        services: services.into_iter().map(|s| (s.id.clone(), s)).collect(),
    });
    Ok(reply(&body, &meta, &opts))
}

/// `/v1/catalog/node-services/:node`: services as a list.
async fn node_services(
    State(agent): State<Ctx>,
    Path(name): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let (found, meta, opts) = node_view(&agent, &name, &params).await?;
    let body = found.map(|(node, services)| NodeServiceList { node, services });
    Ok(reply(&body, &meta, &opts))
}
