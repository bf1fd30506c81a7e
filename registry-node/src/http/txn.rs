//! `PUT /v1/txn`: KV transactions, applied all-or-nothing as one Raft entry.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::put;
use registry_api::{MAX_TXN_OPS, TxnOp};

use super::Ctx;
use super::blocking::json;
use super::catalog::decode_body;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::state::{Command, Response as StateResponse};

/// Routes of this family.
pub fn routes() -> Router<Ctx> {
    Router::new().route("/v1/txn", put(txn))
}

async fn txn(State(agent): State<Ctx>, params: Params, body: Bytes) -> ApiResult<Response> {
    params.check_dc(&agent.opts.datacenter)?;
    let max = agent.opts.txn_max_req_len;
    if body.len() > max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "Request body({} bytes) too large, max size: {max} bytes.",
                body.len()
            ),
        });
    }
    let ops: Vec<TxnOp> = decode_body(&body)?;
    if ops.len() > MAX_TXN_OPS {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                ops.len()
            ),
        });
    }
    let mut kv_ops = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        match op.kv {
            Some(kv) => kv_ops.push(kv),
            None => {
                return Err(ApiError::bad_request(format!(
                    "Operation {i}: only KV operations are supported in transactions"
                )));
            }
        }
    }
    match agent.write(Command::Txn(kv_ops)).await? {
        StateResponse::Txn(resp) => {
            let status = if resp.errors.is_some() {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            Ok(json(status, &resp, params.get("pretty").is_some()))
        }
        other => Err(ApiError::internal(format!(
            "unexpected transaction result: {other:?}"
        ))),
    }
}
