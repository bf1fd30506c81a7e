//! Blocking reads, written once: `?index=&wait=`, `?stale`/`?consistent`, the
//! `X-Consul-*` headers, `?pretty` and JSON encoding.
//!
//! A read subscribes to the watch keys of its view *before* it reads, so no
//! write can slip between the read and the wait. It returns as soon as the
//! view's index exceeds `?index`, or when the wait (plus up to wait/16 jitter,
//! capped at the maximum) runs out, with the unchanged data.

use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_api::duration::parse_duration;
use registry_api::{Consistency, HEADER_INDEX, HEADER_KNOWN_LEADER, HEADER_LAST_CONTACT};
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::agent::Agent;
use crate::state::{Store, WatchKey};

/// Options of a read, parsed from the query string.
#[derive(Debug, Clone)]
pub struct ReadOpts {
    /// `?index=`: block until the view's index exceeds it (0 = don't block).
    pub index: u64,
    /// How long to block at most (jitter included).
    pub wait: Duration,
    /// Consistency mode.
    pub consistency: Consistency,
    /// `?pretty`.
    pub pretty: bool,
    /// `?filter=`.
    pub filter: Option<String>,
}

/// Metadata of a read, sent as headers.
#[derive(Debug, Clone, Copy)]
pub struct ReadMeta {
    /// `X-Consul-Index` (never below 1).
    pub index: u64,
    /// `X-Consul-KnownLeader`.
    pub known_leader: bool,
    /// `X-Consul-LastContact` in ms.
    pub last_contact_ms: u64,
}

impl ReadOpts {
    /// Parses and validates `index`, `wait`, `stale`, `consistent`, `pretty`, `filter` and `dc`.
    pub fn parse(params: &Params, agent: &Agent) -> Result<Self, ApiError> {
        params.check_dc(&agent.opts.datacenter)?;
        let index = params.u64("index", "index")?.unwrap_or(0);
        let wait = match params.get("wait") {
            None | Some("") => agent.opts.default_query_time,
            Some(w) => parse_duration(w).map_err(|_| ApiError::bad_request("Invalid wait time"))?,
        };
        let wait = wait.min(agent.opts.max_query_time);
        // Jitter spreads the returns of many watchers that started together.
        let jitter = if wait.is_zero() {
            Duration::ZERO
        } else {
            wait.mul_f64(rand::random::<f64>() / 16.0)
        };
        let wait = (wait + jitter).min(agent.opts.max_query_time);
        let (stale, consistent) = (params.flag("stale"), params.flag("consistent"));
        if stale && consistent {
            return Err(ApiError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics.",
            ));
        }
        let consistency = if stale {
            Consistency::Stale
        } else if consistent {
            Consistency::Consistent
        } else {
            Consistency::Default
        };
        let filter = params
            .get("filter")
            .filter(|f| !f.is_empty())
            .map(str::to_string);
        Ok(ReadOpts {
            index,
            wait,
            consistency,
            pretty: params.get("pretty").is_some(),
            filter,
        })
    }
}

/// Runs a (possibly blocking) read of the view made of `keys`. `view` reads the
/// store and returns the data with its index; it may run several times.
pub async fn read<T>(
    agent: &Agent,
    opts: &ReadOpts,
    keys: &[WatchKey],
    view: impl Fn(&Store) -> T,
) -> ApiResult<(T, ReadMeta)> {
    let raft = super::raft(agent)?;
    let known_leader = raft.known_leader();
    match opts.consistency {
        Consistency::Stale => {}
        // Default reads are served by a leader holding its lease (Consul's mode);
        // a follower first catches up to the leader's read index.
        Consistency::Default if raft.is_leader() => {
            if !known_leader {
                return Err(ApiError::no_leader());
            }
        }
        consistency => raft
            .read_barrier(consistency)
            .await
            .map_err(|_| ApiError::no_leader())?,
    }
    let last_contact_ms = raft.last_contact_ms();
    let meta = |index: u64| ReadMeta {
        index: index.max(1),
        known_leader,
        last_contact_ms,
    };
    let shared = &raft.shared;
    if opts.index == 0 {
        let (data, index) = shared.read(|store| (view(store), store.view_index(keys)));
        return Ok((data, meta(index)));
    }
    // Subscribe once, before the first read: a write between the read and the wait
    // still marks the subscription changed. Re-reading after a wake-up reuses it,
    // so 10,000 woken watchers never contend on the notifier's lock.
    let mut subscription = shared.notifier.subscribe(keys);
    let deadline = Instant::now() + opts.wait;
    loop {
        let (data, index) = shared.read(|store| (view(store), store.view_index(keys)));
        if index > opts.index || Instant::now() >= deadline {
            return Ok((data, meta(index)));
        }
        tokio::select! {
            _ = subscription.changed() => {}
            _ = sleep_until(deadline) => {}
            _ = agent.token.cancelled() => return Err(ApiError::internal("agent is shutting down")),
        }
    }
}

/// Encodes a JSON body as Consul does (`?pretty` indents with 4 spaces and ends with a newline).
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T, pretty: bool) -> Response {
    let bytes = if pretty {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        match body.serialize(&mut ser) {
            Ok(()) => {
                buf.push(b'\n');
                buf
            }
            Err(e) => return ApiError::internal(e.to_string()).into_response(),
        }
    } else {
        match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => return ApiError::internal(e.to_string()).into_response(),
        }
    };
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        bytes,
    )
        .into_response()
}

/// Adds the blocking-read headers to a response.
pub fn with_meta(mut response: Response, meta: &ReadMeta) -> Response {
    let headers = response.headers_mut();
    headers.insert(HEADER_INDEX, HeaderValue::from(meta.index));
    headers.insert(
        HEADER_KNOWN_LEADER,
        HeaderValue::from_static(if meta.known_leader { "true" } else { "false" }),
    );
    headers.insert(HEADER_LAST_CONTACT, HeaderValue::from(meta.last_contact_ms));
    response
}

/// A 200 JSON read response with its headers.
pub fn reply<T: Serialize + ?Sized>(body: &T, meta: &ReadMeta, opts: &ReadOpts) -> Response {
    with_meta(json(StatusCode::OK, body, opts.pretty), meta)
}
