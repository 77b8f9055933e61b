//! The one place errors become HTTP responses: `{"error": "<stable_code>", "message": "…"}`.
//! Peer faults map to 4xx with their message; internal causes go to the log only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stint_api::ErrorBody;
use stint_core::Error;

/// An error on its way to the peer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(cause) => {
                tracing::error!(error = %cause, "store failure");
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let retry_after = match &e {
            Error::Throttled { retry_after_secs } => Some(*retry_after_secs),
            Error::Unavailable { .. } => Some(1),
            _ => None,
        };
        ApiError { status, code: e.code(), message: e.to_string(), retry_after }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.to_owned(), message: self.message };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
