//! The AWS container credentials endpoint (PROTOCOLS.md §1) on loopback: the SDKs GET
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (documented as `/v1/credentials`; any path answers)
//! with the `Authorization` value read from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`. What it
//! answers is [`stint_api::loopback::agent`]'s; here is only the router.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use stint_api::loopback::agent::Answer;
pub use stint_api::loopback::agent::Endpoint;

/// The path `stint agent env` points the SDKs at.
pub const PATH: &str = "/v1/credentials";

/// The router: every path and method lands in one handler.
pub fn router(ep: Arc<Endpoint>) -> Router {
    Router::new().fallback(move |method: Method, headers: HeaderMap| {
        let ep = ep.clone();
        async move { reply(ep.respond(method.as_str(), headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()), Instant::now())) }
    })
}

fn reply(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], a.body).into_response()
}
