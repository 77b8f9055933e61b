//! SCIM 2.0 (RFC 7643/7644): the identity provider provisions people through `/scim/v2/`,
//! with a bearer token an administrator made. Administrators manage those tokens under
//! `/v1/scim/tokens`.
//!
//! SCIM answers its errors in its own schema (RFC 7644 §3.12): `schemas`, `status` (a string),
//! `scimType` where one applies, and `detail`; stint's stable code is the `Stint-Error` header.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::collections::BTreeMap;

use stint_api::scim::{CreateScimTokenRequest, ScimTokenResponse};
use stint_core::broker::{ScimCaller, ScimPerson};
use stint_core::scim::ScimGroup;

use crate::error::ApiResult;
use crate::extract::{ClientAddr, Json, Session};
use crate::routes::{to_json, JsonOut};
use crate::AppState;

/// The SCIM error message schema.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The header a SCIM error carries stint's stable code in.
pub const ERROR_HEADER: &str = "stint-error";
/// SCIM's media type; plain `application/json` is accepted and answered too.
pub const MEDIA_TYPE: &str = "application/scim+json";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/scim/tokens", get(list_tokens).post(create_token))
        .route("/v1/scim/tokens/{name}/revoke", post(revoke_token))
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/{id}", get(get_user).put(put_user).patch(patch_user).delete(delete_user))
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/{id}", get(get_group).put(put_group).patch(patch_group).delete(delete_group))
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
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = t.into();
        }
        // SCIM's error schema has no room for stint's code (strict clients refuse attributes it
        // does not define), so the code travels as a header.
        (self.status, [(header::CONTENT_TYPE, MEDIA_TYPE), (header::HeaderName::from_static(ERROR_HEADER), self.code)], body.to_string()).into_response()
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
        "etag": { "supported": true },
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

/// A resource's version (RFC 7644 §3.14): a weak ETag of everything it shows, so any change
/// a client could see changes it.
fn etag(resource: &serde_json::Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, resource.to_string().as_bytes());
    format!("W/\"{}\"", data_encoding::HEXLOWER.encode(&digest.as_ref()[..12]))
}

/// A resource with its version in `meta.version`.
fn with_version(mut resource: serde_json::Value) -> serde_json::Value {
    resource["meta"]["version"] = etag(&resource).into();
    resource
}

/// A resource with its version in `meta.version` and the `ETag` header.
fn versioned(status: StatusCode, resource: serde_json::Value) -> Response {
    let tag = etag(&resource);
    let mut r = scim_json(status, with_version(resource));
    if let Ok(v) = header::HeaderValue::from_str(&tag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// Whether a list of entity tags (`If-Match`, `If-None-Match`) names `tag` (or is `*`).
/// Weak comparison (RFC 9110 §8.8.3.2): `W/` is ignored.
fn names_tag(header: &header::HeaderValue, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    header.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim() == "*" || bare(t) == bare(tag)))
}

/// Refuses a change whose `If-Match` does not name the resource's current version
/// (`412 precondition_failed`): another change came first; read it again.
fn precondition(headers: &axum::http::HeaderMap, current: &serde_json::Value) -> Result<(), ScimError> {
    match headers.get(header::IF_MATCH) {
        Some(h) if !names_tag(h, &etag(current)) => Err(ScimError {
            status: StatusCode::PRECONDITION_FAILED,
            code: "precondition_failed",
            scim_type: None,
            detail: "the resource changed since the version If-Match names; read it again".into(),
        }),
        _ => Ok(()),
    }
}

/// A read answered `304 Not Modified` when `If-None-Match` names the current version.
fn read(headers: &axum::http::HeaderMap, resource: serde_json::Value) -> Response {
    match headers.get(header::IF_NONE_MATCH) {
        Some(h) if names_tag(h, &etag(&resource)) => StatusCode::NOT_MODIFIED.into_response(),
        _ => versioned(StatusCode::OK, resource),
    }
}

/// A person as a SCIM User resource (RFC 7643 §4.1), without its version.
fn user_resource(p: &ScimPerson) -> serde_json::Value {
    let u = &p.user;
    let mut r = serde_json::json!({
        "schemas": [stint_core::scim::USER_SCHEMA],
        "id": u.id,
        "userName": u.name,
        "active": !u.disabled,
        "groups": u.groups.iter().map(|g| serde_json::json!({ "value": g, "display": g })).collect::<Vec<_>>(),
        "meta": { "resourceType": "User", "created": u.created_at.to_rfc3339(), "location": format!("/scim/v2/Users/{}", u.id) },
    });
    if let Some(x) = p.profile.as_ref().and_then(|p| p.external_id.as_deref()) {
        r["externalId"] = x.into();
    }
    if let Some(e) = p.profile.as_ref().and_then(|p| p.email.as_deref()) {
        r["emails"] = serde_json::json!([{ "value": e, "type": "work", "primary": true }]);
    }
    if let (Some(at), Some(sponsor)) = (u.expires_at, &p.sponsor) {
        let ext = stint_core::scim::STINT_USER_EXTENSION;
        r["schemas"] = serde_json::json!([stint_core::scim::USER_SCHEMA, ext]);
        r[ext] = serde_json::json!({ "expires": at.to_rfc3339(), "sponsor": sponsor });
    }
    r
}

/// A provider group as a SCIM Group resource (RFC 7643 §4.2), without its version.
fn group_resource(g: &ScimGroup, names: &BTreeMap<&str, &str>, members: bool) -> serde_json::Value {
    let mut r = serde_json::json!({
        "schemas": [stint_core::scim::GROUP_SCHEMA],
        "id": g.id,
        "displayName": g.display_name,
        "meta": { "resourceType": "Group", "created": g.created_at.to_rfc3339(), "location": format!("/scim/v2/Groups/{}", g.id) },
    });
    if let Some(x) = &g.external_id {
        r["externalId"] = x.as_str().into();
    }
    if members {
        r["members"] = g
            .members
            .iter()
            .map(|m| serde_json::json!({ "value": m, "display": names.get(m.as_str()), "type": "User", "$ref": format!("/scim/v2/Users/{m}") }))
            .collect();
    }
    r
}

#[derive(Deserialize)]
pub struct ListParams {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
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

type Query = Result<axum::extract::Query<ListParams>, axum::extract::rejection::QueryRejection>;

/// A list request's filter and page: 1-based `startIndex`, `count` up to 200.
fn list_params(q: Query) -> Result<(ListParams, Option<stint_core::scim::Filter>, usize, usize), ScimError> {
    let axum::extract::Query(q) = q.map_err(|_| ScimError::from(stint_core::Error::invalid("invalid_syntax", "the query string is malformed")))?;
    let filter = q.filter.as_deref().map(stint_core::scim::parse_filter).transpose()?;
    let start = number(q.start_index.as_deref(), "startIndex", 1)?.max(1);
    let count = number(q.count.as_deref(), "count", 100)?.min(MAX_PAGE);
    Ok((q, filter, start, count))
}

/// `GET /scim/v2/Users`: filtered (`userName`, `id`, `active`, `externalId`, `emails`), paginated.
async fn list_users(State(s): State<AppState>, Scim(c): Scim, q: Query) -> Result<Response, ScimError> {
    let (_, filter, start, count) = list_params(q)?;
    let mut found = Vec::new();
    for p in s.broker.scim_users(&c).await? {
        if filter.as_ref().map(|f| stint_core::scim::matches(f, &p.view())).transpose()?.unwrap_or(true) {
            found.push(p);
        }
    }
    let page: Vec<serde_json::Value> = found.iter().skip(start - 1).take(count).map(|p| with_version(user_resource(p))).collect();
    Ok(scim_json(StatusCode::OK, list_response(page, found.len(), start)))
}

/// `POST /scim/v2/Users`: the provider provisions a person (`201` with the resource).
async fn create_user(State(s): State<AppState>, Scim(c): Scim, ScimJson(v): ScimJson) -> Result<Response, ScimError> {
    let (name, changes) = stint_core::scim::user_resource(&v)?;
    let p = s.broker.scim_create_user(&c, &name, changes).await?;
    Ok(created(user_resource(&p)))
}

/// `201 Created` with the resource, its version and its `Location`.
fn created(resource: serde_json::Value) -> Response {
    let location = resource["meta"]["location"].as_str().and_then(|l| header::HeaderValue::from_str(l).ok());
    let mut r = versioned(StatusCode::CREATED, resource);
    if let Some(l) = location {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

async fn get_user(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>, headers: axum::http::HeaderMap) -> Result<Response, ScimError> {
    Ok(read(&headers, user_resource(&s.broker.scim_user(&c, &id).await?)))
}

/// `PUT /scim/v2/Users/{id}`: the person as the provider has them now (`userName` unchanged).
async fn put_user(
    State(s): State<AppState>,
    Scim(c): Scim,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ScimJson(v): ScimJson,
) -> Result<Response, ScimError> {
    precondition(&headers, &user_resource(&s.broker.scim_user(&c, &id).await?))?;
    let (name, changes) = stint_core::scim::user_resource(&v)?;
    Ok(versioned(StatusCode::OK, user_resource(&s.broker.scim_update_user(&c, &id, Some(&name), changes).await?)))
}

/// `PATCH /scim/v2/Users/{id}`: `active` false disables the person and ends what they hold.
async fn patch_user(
    State(s): State<AppState>,
    Scim(c): Scim,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ScimJson(v): ScimJson,
) -> Result<Response, ScimError> {
    precondition(&headers, &user_resource(&s.broker.scim_user(&c, &id).await?))?;
    let changes = stint_core::scim::UserChanges::from_patch(&v)?;
    Ok(versioned(StatusCode::OK, user_resource(&s.broker.scim_update_user(&c, &id, None, changes).await?)))
}

/// `DELETE /scim/v2/Users/{id}`: stint keeps people (their audit trail names them), so a
/// deletion disables the person, as deactivation does.
async fn delete_user(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>, headers: axum::http::HeaderMap) -> Result<StatusCode, ScimError> {
    precondition(&headers, &user_resource(&s.broker.scim_user(&c, &id).await?))?;
    let off = stint_core::scim::UserChanges { active: Some(false), ..Default::default() };
    s.broker.scim_update_user(&c, &id, None, off).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// User names by id, for the `display` of group members.
async fn names(s: &AppState, c: &ScimCaller) -> Result<Vec<(String, String)>, ScimError> {
    Ok(s.broker.scim_users(c).await?.into_iter().map(|p| (p.user.id.to_string(), p.user.name.to_string())).collect())
}

/// `GET /scim/v2/Groups`: filtered (`displayName`, `id`, `externalId`, `members`), paginated;
/// `excludedAttributes=members` leaves the members out (Microsoft Entra ID asks so).
async fn list_groups(State(s): State<AppState>, Scim(c): Scim, q: Query) -> Result<Response, ScimError> {
    let (q, filter, start, count) = list_params(q)?;
    let members = !q.excluded_attributes.as_deref().is_some_and(|x| x.split(',').any(|a| a.trim().eq_ignore_ascii_case("members")));
    let mut found = Vec::new();
    for g in s.broker.scim_groups(&c).await? {
        if filter.as_ref().map(|f| stint_core::scim::matches(f, &g)).transpose()?.unwrap_or(true) {
            found.push(g);
        }
    }
    let names = names(&s, &c).await?;
    let names: BTreeMap<&str, &str> = names.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let page: Vec<serde_json::Value> = found.iter().skip(start - 1).take(count).map(|g| with_version(group_resource(g, &names, members))).collect();
    Ok(scim_json(StatusCode::OK, list_response(page, found.len(), start)))
}

/// A group as its reads and writes answer it.
async fn group_json(s: &AppState, c: &ScimCaller, g: &ScimGroup) -> Result<serde_json::Value, ScimError> {
    let names = names(s, c).await?;
    Ok(group_resource(g, &names.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect(), true))
}

async fn create_group(State(s): State<AppState>, Scim(c): Scim, ScimJson(v): ScimJson) -> Result<Response, ScimError> {
    let (name, changes) = stint_core::scim::group_resource(&v)?;
    let g = s.broker.scim_create_group(&c, name, changes).await?;
    Ok(created(group_json(&s, &c, &g).await?))
}

async fn get_group(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>, headers: axum::http::HeaderMap) -> Result<Response, ScimError> {
    let g = s.broker.scim_group(&c, &id).await?;
    Ok(read(&headers, group_json(&s, &c, &g).await?))
}

async fn put_group(
    State(s): State<AppState>,
    Scim(c): Scim,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ScimJson(v): ScimJson,
) -> Result<Response, ScimError> {
    precondition(&headers, &group_json(&s, &c, &s.broker.scim_group(&c, &id).await?).await?)?;
    let (name, mut changes) = stint_core::scim::group_resource(&v)?;
    changes.display_name = Some(name);
    let g = s.broker.scim_update_group(&c, &id, changes).await?;
    Ok(versioned(StatusCode::OK, group_json(&s, &c, &g).await?))
}

async fn patch_group(
    State(s): State<AppState>,
    Scim(c): Scim,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    ScimJson(v): ScimJson,
) -> Result<Response, ScimError> {
    precondition(&headers, &group_json(&s, &c, &s.broker.scim_group(&c, &id).await?).await?)?;
    let changes = stint_core::scim::GroupChanges::from_patch(&v)?;
    let g = s.broker.scim_update_group(&c, &id, changes).await?;
    Ok(versioned(StatusCode::OK, group_json(&s, &c, &g).await?))
}

async fn delete_group(State(s): State<AppState>, Scim(c): Scim, Path(id): Path<String>, headers: axum::http::HeaderMap) -> Result<StatusCode, ScimError> {
    precondition(&headers, &group_json(&s, &c, &s.broker.scim_group(&c, &id).await?).await?)?;
    s.broker.scim_delete_group(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The User and Group schemas as stint keeps them (RFC 7643 §7): the attributes filters,
/// PATCH and PUT read.
fn resource_schemas() -> Vec<serde_json::Value> {
    let attr = |name: &str, ty: &str, mutability: &str, case_exact: bool, description: &str| {
        let unique = matches!(name, "userName" | "displayName");
        serde_json::json!({
            "name": name, "type": ty, "multiValued": false, "description": description, "required": unique,
            "caseExact": case_exact, "mutability": mutability, "returned": "default", "uniqueness": if unique { "server" } else { "none" },
        })
    };
    let multi = |name: &str, mutability: &str, description: &str, subs: Vec<serde_json::Value>| {
        serde_json::json!({
            "name": name, "type": "complex", "multiValued": true, "description": description,
            "required": false, "mutability": mutability, "returned": "default", "subAttributes": subs,
        })
    };
    let schema = |id: &str, name: &str, description: &str, attributes: Vec<serde_json::Value>| {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id, "name": name, "description": description, "attributes": attributes,
            "meta": { "resourceType": "Schema", "location": format!("/scim/v2/Schemas/{id}") },
        })
    };
    vec![
        schema(
            stint_core::scim::USER_SCHEMA,
            "User",
            "A stint person",
            vec![
                attr("userName", "string", "immutable", false, "The stint user name; people are not renamed"),
                attr("active", "boolean", "readWrite", false, "false disables the person and ends everything they hold"),
                attr("externalId", "string", "readWrite", true, "The provider's id for the person; matches their sign-in when [scim] match = \"externalId\""),
                multi(
                    "emails",
                    "readWrite",
                    "The work email (the primary one is kept); matches their sign-in when [scim] match = \"email\"",
                    vec![
                        attr("value", "string", "readWrite", false, "The address"),
                        attr("type", "string", "readWrite", false, "work"),
                        attr("primary", "boolean", "readWrite", false, "The one kept"),
                    ],
                ),
                multi(
                    "groups",
                    "readOnly",
                    "The person's stint groups",
                    vec![attr("value", "string", "readOnly", true, "The group's name"), attr("display", "string", "readOnly", true, "The group's name")],
                ),
            ],
        ),
        schema(
            stint_core::scim::STINT_USER_EXTENSION,
            "StintAccount",
            "An account that ends by itself (a contractor's or a vendor's)",
            vec![
                attr("expires", "dateTime", "readWrite", false, "When the account ends: an RFC 3339 time, or a date (through the end of that day, UTC)"),
                attr("sponsor", "string", "readWrite", false, "The user name of the person who vouches for it; alerted before the end"),
            ],
        ),
        schema(
            stint_core::scim::GROUP_SCHEMA,
            "Group",
            "A group at the identity provider; [scim.groups] maps it to a stint group",
            vec![
                attr("displayName", "string", "readWrite", false, "The group's name at the provider"),
                attr("externalId", "string", "readWrite", true, "The provider's id for the group"),
                multi(
                    "members",
                    "readWrite",
                    "The people in the group",
                    vec![
                        attr("value", "string", "immutable", true, "The member's user id"),
                        attr("display", "string", "readOnly", false, "The member's user name"),
                        attr("type", "string", "immutable", false, "User"),
                    ],
                ),
            ],
        ),
    ]
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
    scim_json(StatusCode::OK, list_response(resource_schemas(), 3, 1))
}

/// One schema, at the `meta.location` the list gives it (RFC 7644 §4).
async fn schema(Scim(_): Scim, Path(id): Path<String>) -> Result<Response, ScimError> {
    one_of(resource_schemas(), &id, "unknown_schema", "no such schema; GET /scim/v2/Schemas lists them")
}

/// One resource type, at the `meta.location` the list gives it (RFC 7644 §4).
async fn resource_type(Scim(_): Scim, Path(id): Path<String>) -> Result<Response, ScimError> {
    one_of(resource_type_list(), &id, "unknown_resource_type", "no such resource type; GET /scim/v2/ResourceTypes lists them")
}

fn one_of(all: Vec<serde_json::Value>, id: &str, code: &'static str, detail: &str) -> Result<Response, ScimError> {
    match all.into_iter().find(|r| r["id"].as_str() == Some(id)) {
        Some(r) => Ok(scim_json(StatusCode::OK, r)),
        None => Err(ScimError { status: StatusCode::NOT_FOUND, code, scim_type: None, detail: detail.to_owned() }),
    }
}

/// RFC 7644 §4: the resource types this service provider serves.
async fn resource_types(Scim(_): Scim) -> Response {
    scim_json(StatusCode::OK, list_response(resource_type_list(), 2, 1))
}

fn resource_type_list() -> Vec<serde_json::Value> {
    let kind = |name: &str, description: &str, schema: &str| {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": name,
            "name": name,
            "endpoint": format!("/{name}s"),
            "description": description,
            "schema": schema,
            "meta": { "resourceType": "ResourceType", "location": format!("/scim/v2/ResourceTypes/{name}") },
        })
    };
    let mut user = kind("User", "People", stint_core::scim::USER_SCHEMA);
    user["schemaExtensions"] = serde_json::json!([{ "schema": stint_core::scim::STINT_USER_EXTENSION, "required": false }]);
    vec![user, kind("Group", "The provider's groups", stint_core::scim::GROUP_SCHEMA)]
}
