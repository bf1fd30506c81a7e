//! The web UI: one embedded page that lists services with their health, nodes
//! and KV entries, refreshed with blocking queries. Served under `/ui/` when `-ui`
//! is set; `/` redirects there.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Ctx;

const INDEX: &str = include_str!("../../ui/index.html");

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/", get(root))
        .route("/ui", get(root))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(index))
}

async fn root(State(agent): State<Ctx>) -> Response {
    if !agent.opts.ui {
        return (StatusCode::NOT_FOUND, "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent configuration and restart.").into_response();
    }
    (StatusCode::MOVED_PERMANENTLY, [(LOCATION, "/ui/")]).into_response()
}

async fn index(State(agent): State<Ctx>) -> Response {
    if !agent.opts.ui {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}
