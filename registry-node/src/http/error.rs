//! The one mapping from errors to Consul's plain-text error responses.

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::agent;

/// An HTTP error: status and plain-text body, as Consul answers errors.
#[derive(Debug)]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// Body text.
    pub message: String,
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 500 with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// 500 `No cluster leader`.
    pub fn no_leader() -> Self {
        Self::internal("No cluster leader")
    }
}

impl From<agent::Error> for ApiError {
    fn from(e: agent::Error) -> Self {
        match e {
            agent::Error::BadRequest(m) => ApiError::bad_request(m),
            agent::Error::NotFound(m) => ApiError::not_found(m),
            agent::Error::NoLeader => ApiError::no_leader(),
            agent::Error::NoServers => ApiError::internal("No known Consul servers"),
            agent::Error::Rpc(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::filter::FilterError> for ApiError {
    fn from(e: crate::filter::FilterError) -> Self {
        if e.is_bad_request() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::internal(e.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T = Response> = Result<T, ApiError>;
