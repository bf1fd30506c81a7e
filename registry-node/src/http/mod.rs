//! Consul HTTP API v1 (axum on hyper). One module per endpoint family; each
//! exposes `routes()`. Blocking reads go through [`blocking`], errors through
//! [`error::ApiError`], query strings through [`params::Params`].
//!
//! Connections are served by hyper directly with title-case header names, so
//! headers go out as Go writes them (`X-Consul-Index`, `X-Consul-Knownleader`).

pub mod agent;
pub mod blocking;
pub mod catalog;
pub mod error;
pub mod event;
pub mod forward;
pub mod health;
pub mod kv;
pub mod operator;
pub mod params;
pub mod query;
pub mod session;
pub mod status;
pub mod txn;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::agent::Agent;
pub use forward::api_handler;

/// Handler state.
pub type Ctx = Arc<Agent>;

/// Largest request body accepted at all; endpoints enforce their own limits below it
/// (KV values, transactions) with Consul's 413 message.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The router of an agent: the local endpoints (agent, events, UI) and, on a
/// server, the endpoints of the replicated state; a client agent forwards
/// those to a server.
pub fn router(agent: Ctx) -> Router {
    let local = Router::new()
        .merge(agent::routes())
        .merge(event::routes())
        .merge(operator::local_routes())
        .merge(ui::routes());
    let app = if agent.raft.is_some() {
        local
            .merge(kv::routes())
            .merge(catalog::routes())
            .merge(query::routes())
            .merge(health::routes())
            .merge(session::routes())
            .merge(status::routes())
            .merge(txn::routes())
            .merge(operator::routes())
    } else {
        local.fallback(forward::proxy)
    };
    app.layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(agent)
}

/// The Raft node behind a server-only endpoint (never mounted on clients).
pub fn raft(agent: &Agent) -> Result<&crate::raft::RaftNode, error::ApiError> {
    agent
        .raft
        .as_ref()
        .ok_or_else(|| error::ApiError::internal("not a server"))
}

/// Adds the headers Consul sends on every response (a plain function, not a
/// boxed middleware: it runs on every request of the hot path).
fn common_headers(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        registry_api::HEADER_DEFAULT_ACL_POLICY,
        HeaderValue::from_static("allow"),
    );
    resp
}

/// Serves HTTP on `listener` until the agent's token is cancelled.
pub async fn serve(listener: TcpListener, agent: Ctx) {
    let app = router(agent.clone());
    let token = agent.token.clone();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(ServiceExt::<
            axum::http::Request<hyper::body::Incoming>,
        >::map_response(app.clone(), common_headers));
        let token = token.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(%peer, error = %e, "http connection ended");
                    }
                }
                _ = token.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
    tracing::info!("HTTP server stopped");
}
