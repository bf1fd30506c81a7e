//! `/v1/kv/:key`: reads (single, `recurse`, `keys`, `raw`), writes (`flags`,
//! `cas`, `acquire`, `release`) and deletes (`recurse`, `cas`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Ctx;
use super::blocking::{ReadOpts, json, read, reply, with_meta};
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::state::{Command, KvSet, WatchKey};

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    let methods = || get(get_kv).put(put_kv).delete(delete_kv);
    Router::new()
        .route("/v1/kv/", methods())
        .route("/v1/kv/{*key}", methods())
}

fn key_of(path: Option<Path<String>>) -> String {
    path.map(|Path(k)| k).unwrap_or_default()
}

async fn get_kv(
    State(agent): State<Ctx>,
    key: Option<Path<String>>,
    params: Params,
) -> ApiResult<Response> {
    let key = key_of(key);
    let opts = ReadOpts::parse(&params, &agent)?;
    if params.flag("keys") {
        let separator = params.get("separator").map(str::to_string);
        let keys = [WatchKey::KvPrefix(key.clone())];
        let (list, meta) = read(&agent, &opts, &keys, |s| {
            s.kv().keys(&key, separator.as_deref()).0
        })
        .await?;
        if list.is_empty() {
            return Ok(with_meta(StatusCode::NOT_FOUND.into_response(), &meta));
        }
        return Ok(reply(&list, &meta, &opts));
    }
    if params.flag("recurse") {
        let keys = [WatchKey::KvPrefix(key.clone())];
        let (list, meta) = read(&agent, &opts, &keys, |s| {
            s.kv().list(&key).0.into_iter().cloned().collect::<Vec<_>>()
        })
        .await?;
        if list.is_empty() {
            return Ok(with_meta(StatusCode::NOT_FOUND.into_response(), &meta));
        }
        return Ok(reply(&list, &meta, &opts));
    }
    let keys = [WatchKey::Kv(key.clone())];
    let (entry, meta) = read(&agent, &opts, &keys, |s| s.kv().get(&key).cloned()).await?;
    let Some(entry) = entry else {
        return Ok(with_meta(StatusCode::NOT_FOUND.into_response(), &meta));
    };
    if params.flag("raw") {
        let body = entry.value.unwrap_or_default();
        let resp = (
            StatusCode::OK,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body,
        );
        return Ok(with_meta(resp.into_response(), &meta));
    }
    Ok(reply(&[entry], &meta, &opts))
}

async fn put_kv(
    State(agent): State<Ctx>,
    key: Option<Path<String>>,
    params: Params,
    body: Bytes,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let key = key_of(key);
    if key.is_empty() {
        return Err(ApiError::bad_request("Missing key name"));
    }
    let max = agent.opts.kv_max_value_size;
    if body.len() > max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "Request body({} bytes) too large, max size: {max} bytes. See https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size.",
                body.len()
            ),
        });
    }
    let (acquire, release) = (
        params.get("acquire").map(str::to_string),
        params.get("release").map(str::to_string),
    );
    if acquire.is_some() && release.is_some() {
        return Err(ApiError::bad_request("Conflicting flags: acquire, release"));
    }
    let set = KvSet {
        key,
        value: if body.is_empty() {
            None
        } else {
            Some(body.to_vec())
        },
        flags: params.u64("flags", "flags")?.unwrap_or(0),
        cas: params.u64("cas", "cas")?,
        acquire,
        release,
    };
    let response = agent.write(Command::KvSet(set)).await?;
    Ok(json(StatusCode::OK, &response.as_bool(), false))
}

async fn delete_kv(
    State(agent): State<Ctx>,
    key: Option<Path<String>>,
    params: Params,
) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let key = key_of(key);
    let recurse = params.flag("recurse");
    let cas = params.u64("cas", "cas")?;
    if recurse && cas.is_some() {
        return Err(ApiError::bad_request("Conflicting flags: cas, recurse"));
    }
    if key.is_empty() && !recurse {
        return Err(ApiError::bad_request("Missing key name"));
    }
    let response = agent.write(Command::KvDelete { key, recurse, cas }).await?;
    Ok(json(StatusCode::OK, &response.as_bool(), false))
}
