//! HTTP calls between agents and servers over server RPC.
//!
//! A client agent keeps no state: every endpoint that reads or writes the
//! replicated state (catalog, health, KV, sessions, txn, status, operator) is
//! carried to a server as an [`HttpCall`] and answered by the server's own
//! router, blocking queries included. Servers answer them through
//! [`api_handler`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::future::BoxFuture;
use tower::ServiceExt;

use super::error::ApiError;
use super::{BODY_LIMIT, Ctx};
use crate::agent::Agent;
use crate::rpc::{ApiHandler, DnsCall, DnsReply, HttpCall, HttpReply};

/// Headers not copied between the two hops.
const HOP_BY_HOP: [&str; 4] = ["content-length", "transfer-encoding", "connection", "host"];

/// Extra time a forwarded blocking query gets beyond the longest wait.
const BLOCKING_MARGIN: Duration = Duration::from_secs(15);
/// Timeout of a forwarded call that does not block.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn keep(name: &str) -> bool {
    !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str())
}

/// The end-to-end headers of one hop, as text pairs for the RPC frame.
fn header_pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| keep(n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The fallback route of a client agent: forwards the request to a server.
pub async fn proxy(State(agent): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let headers = header_pairs(&parts.headers);
    let blocking = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("index=")));
    let timeout = if blocking {
        agent.opts.max_query_time + BLOCKING_MARGIN
    } else {
        CALL_TIMEOUT
    };
    let idempotent = parts.method == Method::GET || parts.method == Method::HEAD;
    match agent
        .servers
        .http(
            parts.method.as_str(),
            &uri,
            headers,
            &body,
            idempotent,
            timeout,
        )
        .await
    {
        Ok((status, headers, body)) => response(status, headers, body),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Builds a response from the parts of a forwarded call's answer.
fn response(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) && keep(&name)
        {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

/// Runs a body-less call on the leader: what only the leader may do, asked of a
/// follower (session renewals feed the leader's TTL timers; Raft membership).
pub async fn to_leader(agent: &Agent, method: &str, uri: String) -> Result<Response, ApiError> {
    let raft = super::raft(agent)?;
    let leader = raft.leader_addr().ok_or_else(ApiError::no_leader)?;
    let call = HttpCall {
        method: method.into(),
        uri,
        headers: Vec::new(),
        body: String::new(),
    };
    let reply = raft
        .call_http(&leader, call)
        .await
        .map_err(|e| ApiError::internal(format!("forwarding to the leader: {e}")))?;
    let body = B64
        .decode(reply.body)
        .map_err(|e| ApiError::internal(format!("bad body from the leader: {e}")))?;
    Ok(response(reply.status, reply.headers, body))
}

/// Answers forwarded calls with this server's router.
struct RouterApi {
    router: axum::Router,
    agent: Arc<Agent>,
    /// For client agents' DNS questions.
    dns_cache: Arc<crate::dns::cache::InstanceCache>,
}

/// The handler a server's Raft RPC uses for forwarded HTTP calls.
pub fn api_handler(agent: Arc<Agent>) -> Arc<dyn ApiHandler> {
    Arc::new(RouterApi {
        router: super::router(agent.clone()),
        agent,
        dns_cache: Arc::default(),
    })
}

impl ApiHandler for RouterApi {
    fn dns(&self, call: DnsCall) -> BoxFuture<'static, DnsReply> {
        let (agent, cache) = (self.agent.clone(), self.dns_cache.clone());
        Box::pin(async move { crate::dns::remote::serve(&agent, &cache, call).await })
    }

    fn http(&self, call: HttpCall) -> BoxFuture<'static, HttpReply> {
        let router = self.router.clone();
        Box::pin(async move {
            let failed = |status: StatusCode, m: String| HttpReply {
                status: status.as_u16(),
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: B64.encode(m),
            };
            let body = match B64.decode(&call.body) {
                Ok(b) => b,
                Err(e) => return failed(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
            };
            let mut builder = axum::http::Request::builder()
                .method(call.method.as_str())
                .uri(call.uri.as_str());
            for (n, v) in &call.headers {
                builder = builder.header(n.as_str(), v.as_str());
            }
            let req = match builder.body(Body::from(body)) {
                Ok(r) => r,
                Err(e) => return failed(StatusCode::BAD_REQUEST, format!("bad request: {e}")),
            };
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            let (parts, body) = resp.into_parts();
            let body = match to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => return failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            };
            HttpReply {
                status: parts.status.as_u16(),
                headers: header_pairs(&parts.headers),
                body: B64.encode(body),
            }
        })
    }
}
