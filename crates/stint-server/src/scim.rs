//! SCIM 2.0 (RFC 7643/7644): the identity provider provisions people through `/scim/v2/`,
//! with a bearer token an administrator made. Administrators manage those tokens under
//! `/v1/scim/tokens`.
//!
//! SCIM answers its errors in its own schema (RFC 7644 §3.12): `schemas`, `status` (a string),
//! `scimType` where one applies, and `detail`; stint adds its stable code as `error`.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use stint_core::broker::ScimCaller;

use crate::error::ApiResult;
use crate::extract::{ClientAddr, Json, Session};
use crate::routes::{to_json, JsonOut};
use crate::AppState;

/// The SCIM error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// SCIM's media type; plain `application/json` is accepted and answered too.
pub const MEDIA_TYPE: &str = "application/scim+json";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/scim/tokens", get(list_tokens).post(create_token))
        .route("/v1/scim/tokens/{name}/revoke", post(revoke_token))
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateScimTokenRequest {
    /// The identity provider it is for: `okta`, `entra`, `google`.
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct ScimTokenResponse {
    pub name: String,
    /// Shown once: the identity provider's SCIM connection takes it as its bearer token.
    pub token: String,
    pub created_at: String,
}

async fn list_tokens(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "scim.token.list").await?;
    Ok(to_json(serde_json::json!({ "tokens": s.broker.list_scim_tokens(&admin).await? })))
}

async fn create_token(State(s): State<AppState>, Session(c): Session, Json(req): Json<CreateScimTokenRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "scim.token.create").await?;
    let t = s.broker.create_scim_token(&admin, &req.name).await?;
    Ok(to_json(ScimTokenResponse { name: t.name.to_string(), token: t.token.expose().to_owned(), created_at: t.created_at.to_rfc3339() }))
}

async fn revoke_token(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>) -> ApiResult<StatusCode> {
    let admin = s.broker.admin(&c, "scim.token.revoke").await?;
    s.broker.revoke_scim_token(&admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A SCIM error (RFC 7644 §3.12).
pub struct ScimError {
    status: StatusCode,
    code: &'static str,
    scim_type: Option<&'static str>,
    detail: String,
}

impl From<stint_core::Error> for ScimError {
    fn from(e: stint_core::Error) -> Self {
        let api = crate::error::ApiError::from(e);
        ScimError { status: api.status, code: api.code, scim_type: None, detail: api.message }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
            "error": self.code,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.into();
        }
        (self.status, [(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
    }
}

/// The identity provider behind a SCIM request: its live bearer token.
pub struct Scim(pub ScimCaller);

impl FromRequestParts<AppState> for Scim {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let ClientAddr(addr) =
            ClientAddr::from_request_parts(parts, s).await.map_err(|e| ScimError { status: e.status, code: e.code, scim_type: None, detail: e.message })?;
        // The scheme's name is case-insensitive (RFC 9110 §11.1).
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        Ok(Scim(s.broker.scim_caller(value, &addr).await?))
    }
}

/// RFC 7643 §5: what this service provider supports.
async fn service_provider_config(Scim(_): Scim) -> Response {
    let body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/stint-dev/stint/blob/main/docs/scim.md",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": 200 },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A token from `stint scim token create`, as Authorization: Bearer",
            "primary": true
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig" }
    });
    ([(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
}
