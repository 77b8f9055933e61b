//! Extractors: JSON and form bodies with strict content types, the session bearer, the
//! caller's address. Every rejection is a stable 4xx and is itself audited.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use stint_core::broker::{Broker, Caller};

use crate::error::ApiError;
use crate::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The client address as text, for throttling and audit records.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(ClientAddr(addr_in(&parts.extensions)))
    }
}

async fn refuse(state: &AppState, route: &str, addr: &str, err: ApiError) -> ApiError {
    if let Err(e) = state.broker.record_refusal(route, err.code, addr).await {
        tracing::error!(error = %e, "cannot audit a refused request");
    }
    err
}

/// The client's address: as the limit layer resolved it (through trusted proxies), else
/// the peer's from the connection info axum attaches to each request.
fn addr_in(extensions: &axum::http::Extensions) -> String {
    if let Some(ip) = extensions.get::<crate::limits::ClientIp>() {
        return ip.0.clone();
    }
    extensions.get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

fn addr_of(req: &Request) -> String {
    addr_in(req.extensions())
}

/// The body, if its media type is one of `mimes` (the first is the one named to the caller)
/// and it is at most [`MAX_BODY_BYTES`]; a refusal is audited.
pub(crate) async fn body_of(req: Request, state: &AppState, mimes: &[&str]) -> Result<axum::body::Bytes, ApiError> {
    let too_large = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("request bodies are limited to {} KiB", MAX_BODY_BYTES / 1024));
    body_within(req, state, mimes, MAX_BODY_BYTES, too_large).await
}

/// As [`body_of`], for the one route that takes more than [`MAX_BODY_BYTES`] (and only from an
/// administrator): at most `limit` bytes, cut off while read, else `too_large`.
pub(crate) async fn body_within(req: Request, state: &AppState, mimes: &[&str], limit: usize, too_large: ApiError) -> Result<axum::body::Bytes, ApiError> {
    let route = req.uri().path().to_owned();
    let addr = addr_of(&req);
    let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !mimes.iter().any(|m| essence.eq_ignore_ascii_case(m)) {
        let e = ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("send the body as {}", mimes.first().unwrap_or(&"")));
        return Err(refuse(state, &route, &addr, e).await);
    }
    match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => Ok(b),
        Err(_) => Err(refuse(state, &route, &addr, too_large).await),
    }
}

/// A JSON body of type `T`: `application/json`, at most 64 KiB, unknown fields refused by `T`.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let route = req.uri().path().to_owned();
        let addr = addr_of(&req);
        let bytes = body_of(req, state, &["application/json"]).await?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Json(v)),
            Err(e) => {
                // serde's message names the field and position, never echoes a value.
                let msg = format!("malformed JSON body: {}", e.to_string().chars().take(200).collect::<String>());
                Err(refuse(state, &route, &addr, ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", msg)).await)
            }
        }
    }
}

/// An `application/x-www-form-urlencoded` body, as RFC 7662 requires for introspection.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Form<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let route = req.uri().path().to_owned();
        let addr = addr_of(&req);
        let bytes = body_of(req, state, &["application/x-www-form-urlencoded"]).await?;
        match serde_urlencoded::from_bytes(&bytes) {
            Ok(v) => Ok(Form(v)),
            Err(_) => Err(refuse(state, &route, &addr, ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "malformed form body")).await),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <session token>`.
pub struct Session(pub Caller);

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let result = match value {
            None => {
                Err(ApiError::new(StatusCode::UNAUTHORIZED, "missing_credentials", "send your session as `Authorization: Bearer …`; run `stint login` first"))
            }
            Some(v) if v.starts_with("ey") => Err(Broker::refuse_role_token_as_session().into()),
            Some(v) => state.broker.authenticate(v.trim()).await.map_err(ApiError::from),
        };
        match result {
            Ok(c) => Ok(Session(c)),
            Err(e) => {
                let addr = addr_in(&parts.extensions);
                Err(refuse(state, parts.uri.path(), &addr, e).await)
            }
        }
    }
}

/// Query parameters of type `T`; a malformed query is a stable 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri).map(|q| Query(q.0)).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("malformed query: {}", e.body_text().chars().take(200).collect::<String>()))
        })
    }
}

/// A time given in a query (`since`, `as_of`, `generated_at`): RFC 3339, or `invalid_time`.
pub(crate) fn time_param(name: &str, value: &str) -> Result<stint_core::Timestamp, stint_core::Error> {
    stint_core::Timestamp::parse_rfc3339(value).ok_or_else(|| {
        stint_core::Error::invalid("invalid_time", format!("{name}: {:?} is not an RFC 3339 time like 2026-11-30T12:00:00Z", stint_core::ids::truncate(value)))
    })
}
