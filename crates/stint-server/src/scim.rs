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
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Users", get(list_users))
        .route("/scim/v2/Users/{id}", get(get_user).patch(patch_user).delete(delete_user))
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

/// Every refusal reaches SCIM's schema this way: its `scimType` follows from stint's code
/// (`stint_core::scim::scim_type`).
impl From<crate::error::ApiError> for ScimError {
    fn from(api: crate::error::ApiError) -> Self {
        ScimError { status: api.status, code: api.code, scim_type: stint_core::scim::scim_type(api.code), detail: api.message }
    }
}

impl From<stint_core::Error> for ScimError {
    fn from(e: stint_core::Error) -> Self {
        crate::error::ApiError::from(e).into()
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

/// A SCIM request's JSON body: `application/scim+json` (or `application/json`), read as
/// stint's other bodies are (capped at 64 KiB, refusals audited), refused in SCIM's schema.
pub struct ScimJson(pub serde_json::Value);

impl axum::extract::FromRequest<AppState> for ScimJson {
    type Rejection = ScimError;

    async fn from_request(req: axum::extract::Request, s: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = crate::extract::body_of(req, s, &[MEDIA_TYPE, "application/json"]).await?;
        serde_json::from_slice(&bytes).map(ScimJson).map_err(|_| stint_core::Error::invalid("invalid_syntax", "the body is not JSON").into())
    }
}

/// The identity provider behind a SCIM request: its live bearer token.
pub struct Scim(pub ScimCaller);

impl FromRequestParts<AppState> for Scim {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let ClientAddr(addr) = ClientAddr::from_request_parts(parts, s).await.map_err(ScimError::from)?;
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

/// Resources per page at most (`ServiceProviderConfig` says so too).
const MAX_PAGE: usize = 200;

fn scim_json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
}

/// A person as a SCIM User resource (RFC 7643 §4.1).
fn user_resource(u: &stint_core::model::User) -> serde_json::Value {
    serde_json::json!({
        "schemas": [stint_core::scim::USER_SCHEMA],
        "id": u.id,
        "userName": u.name,
        "active": !u.disabled,
        "groups": u.groups.iter().map(|g| serde_json::json!({ "value": g, "display": g })).collect::<Vec<_>>(),
        "meta": { "resourceType": "User", "created": u.created_at.to_rfc3339(), "location": format!("/scim/v2/Users/{}", u.id) },
    })
}

#[derive(Deserialize)]
pub struct ListParams {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
}

fn number(v: Option<&str>, name: &str, default: usize) -> Result<usize, ScimError> {
    match v {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse::<i64>()
            .map(|n| n.max(0) as usize)
            .map_err(|_| stint_core::Error::invalid("invalid_value", format!("{name} must be an integer")).into()),
    }
}

/// `GET /scim/v2/Users`: filtered (`userName`, `id`, `active`, `externalId`), paginated
/// (1-based `startIndex`, `count` up to 200).
async fn list_users(
    State(s): State<AppState>,
    Scim(c): Scim,
    q: Result<axum::extract::Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ScimError> {
    let axum::extract::Query(q) = q.map_err(|_| ScimError::from(stint_core::Error::invalid("invalid_syntax", "the query string is malformed")))?;
    let filter = q.filter.as_deref().map(stint_core::scim::parse_filter).transpose()?;
    let start = number(q.start_index.as_deref(), "startIndex", 1)?.max(1);
    let count = number(q.count.as_deref(), "count", 100)?.min(MAX_PAGE);
    let mut found = Vec::new();
    for u in s.broker.scim_users(&c).await? {
        if filter.as_ref().map(|f| stint_core::scim::user_matches(f, &u)).transpose()?.unwrap_or(true) {
            found.push(u);
        }
    }
    let page: Vec<serde_json::Value> = found.iter().skip(start - 1).take(count).map(user_resource).collect();
    Ok(scim_json(StatusCode::OK, list_response(page, found.len(), start)))
}

async fn get_user(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>) -> Result<Response, ScimError> {
    Ok(scim_json(StatusCode::OK, user_resource(&s.broker.scim_user(&c, &id).await?)))
}

/// `PATCH /scim/v2/Users/{id}`: `active` false disables the person and ends what they hold.
async fn patch_user(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>, ScimJson(v): ScimJson) -> Result<Response, ScimError> {
    let user = match stint_core::scim::active_from_patch(&v)? {
        Some(active) => s.broker.scim_set_active(&c, &id, active).await?,
        None => s.broker.scim_user(&c, &id).await?,
    };
    Ok(scim_json(StatusCode::OK, user_resource(&user)))
}

/// `DELETE /scim/v2/Users/{id}`: stint keeps people (their audit trail names them), so a
/// deletion disables the person, as deactivation does.
async fn delete_user(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>) -> Result<StatusCode, ScimError> {
    s.broker.scim_set_active(&c, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The User schema as stint keeps it (RFC 7643 §7): the attributes filters and PATCH read.
fn user_schema() -> serde_json::Value {
    let attr = |name: &str, ty: &str, mutability: &str, case_exact: bool, description: &str| {
        serde_json::json!({
            "name": name, "type": ty, "multiValued": false, "description": description, "required": name == "userName",
            "caseExact": case_exact, "mutability": mutability, "returned": "default", "uniqueness": if name == "userName" { "server" } else { "none" },
        })
    };
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": stint_core::scim::USER_SCHEMA,
        "name": "User",
        "description": "A stint person",
        "attributes": [
            attr("userName", "string", "immutable", false, "The stint user name; people are not renamed"),
            attr("active", "boolean", "readWrite", false, "false disables the person and ends everything they hold"),
            {
                "name": "groups", "type": "complex", "multiValued": true, "description": "The person's stint groups",
                "required": false, "mutability": "readOnly", "returned": "default",
                "subAttributes": [attr("value", "string", "readOnly", true, "The group's name"), attr("display", "string", "readOnly", true, "The group's name")],
            },
        ],
        "meta": { "resourceType": "Schema", "location": format!("/scim/v2/Schemas/{}", stint_core::scim::USER_SCHEMA) },
    })
}

/// A `ListResponse` (RFC 7644 §3.4.2): one page of `total` results, starting at `start` (1-based).
fn list_response(page: Vec<serde_json::Value>, total: usize, start: usize) -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    })
}

/// RFC 7644 §4: the schemas this service provider serves.
async fn schemas(Scim(_): Scim) -> Response {
    scim_json(StatusCode::OK, list_response(vec![user_schema()], 1, 1))
}

/// RFC 7644 §4: the resource types this service provider serves.
async fn resource_types(Scim(_): Scim) -> Response {
    let user = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "People",
        "schema": stint_core::scim::USER_SCHEMA,
        "meta": { "resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User" },
    });
    scim_json(StatusCode::OK, list_response(vec![user], 1, 1))
}
