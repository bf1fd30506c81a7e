//! Watches: Consul's blocking-query views (`key`, `keyprefix`, `services`,
//! `nodes`, `service`, `checks`, `event`) with a handler that runs when the
//! view's data changes.
//!
//! Two users: `registry-node watch` (the handler comes from its command line)
//! and the agent, which starts one watch per entry of its `watches`
//! configuration with [`spawn_agent_watches`]. Both are plain HTTP clients of an
//! agent: a watch never reads node state directly, so it behaves the same
//! against this agent or a remote one.
//!
//! # Layout
//! - [`spec`]: parsing a watch definition (pure, unit-tested).
//! - [`plan`]: the blocking-query loop and the "did it change" decision.
//! - [`handler`]: print, command or HTTP handler.
//! - [`exec`]: child-process helpers shared with `registry-node lock`.

pub mod exec;
pub mod handler;
pub mod plan;
pub mod spec;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use registry_api::client::Client;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use exec::ChildCommand;
pub use handler::Handler;
pub use plan::run_watch;
pub use spec::{
    ChecksTarget, HandlerSpec, HttpHandlerConfig, WatchKind, WatchSpec, parse_watch,
    parse_watch_query,
};

/// Errors that end a watch.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The handler failed and the watch was configured to stop on that; the
    /// message is Consul's (`Error executing handler: exit status 1`).
    #[error("{0}")]
    Handler(String),
}

/// Starts the agent's configured watches against its own HTTP API at
/// `http_addr`, one tracked task each, stopped by `token`.
///
/// Every definition is parsed first; if any is invalid nothing is started and the
/// error names its position (`watches[1]: Must specify a single key to watch`).
/// Returns how many watches were started.
pub fn spawn_agent_watches(
    defs: &[serde_json::Value],
    http_addr: SocketAddr,
    tracker: &TaskTracker,
    token: CancellationToken,
) -> Result<usize, String> {
    let mut planned = Vec::with_capacity(defs.len());
    for (i, def) in defs.iter().enumerate() {
        let spec = parse_watch(def).map_err(|e| format!("watches[{i}]: {e}"))?;
        let handler_spec = spec
            .handler
            .as_ref()
            .ok_or_else(|| format!("watches[{i}]: Must define a watch handler"))?;
        let handler = Handler::from_spec(handler_spec).map_err(|e| format!("watches[{i}]: {e}"))?;
        planned.push((spec, handler));
    }
    if planned.is_empty() {
        return Ok(0);
    }
    // A wildcard listener is reachable on loopback.
    let mut addr = http_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let client = Client::new(&addr.to_string()).map_err(|e| e.to_string())?;
    let count = planned.len();
    for (spec, handler) in planned {
        let mut client = client.clone();
        if let Some(token) = &spec.token {
            client = client.with_token(token.clone());
        }
        let token = token.child_token();
        tracker.spawn(async move {
            // Agent handlers never stop the watch, so this only returns on shutdown.
            let _ = run_watch(client, spec, handler, token).await;
        });
    }
    tracing::info!(count, "started configured watches");
    Ok(count)
}
