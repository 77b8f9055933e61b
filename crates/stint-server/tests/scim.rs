//! SCIM 2.0 (issue 15), first step: the bearer tokens identity providers provision with. An
//! administrator makes one (shown once, stored hashed), the provider's requests are
//! authenticated by it, and revoking it shuts the door at the next request. Refusals answer in
//! SCIM's error schema and are audited.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn scim_get(app: &TestApp, path: &str, bearer: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = app.http.get(app.url(path));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let code = stint_code(&resp);
    (status, ct, with_code(serde_json::from_str(&resp.text().await.unwrap()).unwrap(), code))
}

/// stint's stable code of a SCIM error: its `Stint-Error` header (SCIM's error schema has no
/// room for it).
fn stint_code(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get("stint-error").map(|v| v.to_str().unwrap().to_owned())
}

/// The body with the code merged in as `error`, for the checks to read in one place; the body
/// itself never carries it.
fn with_code(mut v: Value, code: Option<String>) -> Value {
    if let (Some(obj), Some(code)) = (v.as_object_mut(), code) {
        assert!(!obj.contains_key("error"), "strict SCIM clients refuse attributes the error schema does not define: {obj:?}");
        obj.insert("error".into(), code.into());
    }
    v
}

fn scim_error(v: &Value, status: &str, code: &str) {
    assert_eq!(v["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{v}");
    assert_eq!((v["status"].as_str(), v["error"].as_str()), (Some(status), Some(code)), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
}

#[tokio::test]
async fn an_identity_providers_scim_token_opens_scim_until_it_is_revoked() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let (s, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    assert_eq!(s, StatusCode::OK, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("stint_scim_"), "{made}");
    let (s, e) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::CONFLICT, Some("scim_token_exists")), "one live token per name: {e}");

    let (s, ct, config) = scim_get(&app, "/scim/v2/ServiceProviderConfig", Some(&token)).await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/scim+json"), "{config}");
    assert_eq!(config["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
    assert_eq!(config["patch"]["supported"], json!(true));
    // What a provider reads when the connection is set up: the User resource and its schema.
    let (s, _, types) = scim_get(&app, "/scim/v2/ResourceTypes", Some(&token)).await;
    assert_eq!((s, types["Resources"][0]["endpoint"].as_str()), (StatusCode::OK, Some("/Users")), "{types}");
    let (s, _, schemas) = scim_get(&app, "/scim/v2/Schemas", Some(&token)).await;
    let user = &schemas["Resources"][0];
    assert_eq!((s, user["id"].as_str()), (StatusCode::OK, Some("urn:ietf:params:scim:schemas:core:2.0:User")), "{schemas}");
    let names: Vec<&str> = user["attributes"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["userName", "active", "externalId", "emails", "groups"]);
    assert_eq!(user["attributes"][0]["mutability"], json!("immutable"), "people are not renamed");
    // Every schema and resource type is at the location it gives; an unknown one is a SCIM 404.
    for listed in schemas["Resources"].as_array().unwrap().iter().chain(types["Resources"].as_array().unwrap()) {
        let at = listed["meta"]["location"].as_str().unwrap();
        let (s, _, one) = scim_get(&app, at, Some(&token)).await;
        assert_eq!((s, &one), (StatusCode::OK, listed), "{at}");
    }
    for (unknown, code) in [("/scim/v2/Schemas/urn:nope", "unknown_schema"), ("/scim/v2/ResourceTypes/Device", "unknown_resource_type")] {
        let (s, ct, e) = scim_get(&app, unknown, Some(&token)).await;
        assert_eq!((s, ct.as_str()), (StatusCode::NOT_FOUND, "application/scim+json"), "{unknown}: {e}");
        scim_error(&e, "404", code);
    }

    // No token, a token of another kind, a made-up one: refused in SCIM's error schema.
    let (s, ct, e) = scim_get(&app, "/scim/v2/ServiceProviderConfig", None).await;
    assert_eq!((s, ct.as_str()), (StatusCode::UNAUTHORIZED, "application/scim+json"));
    scim_error(&e, "401", "missing_credentials");
    for wrong in [admin.session.as_str(), "stint_scim_AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "garbage"] {
        let (s, _, e) = scim_get(&app, "/scim/v2/ServiceProviderConfig", Some(wrong)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        scim_error(&e, "401", "invalid_scim_token");
    }

    // Listed without its secret; revoked, it opens nothing, and the name is free again.
    let (_, list) = app.get("/v1/scim/tokens", Some(&admin.session)).await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&token[11..]), "the secret is never listed: {list}");
    let resp = app.http.post(app.url("/v1/scim/tokens/okta/revoke")).bearer_auth(&admin.session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (s, _, e) = scim_get(&app, "/scim/v2/ServiceProviderConfig", Some(&token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    scim_error(&e, "401", "scim_token_revoked");
    let (s, e) = app.post("/v1/scim/tokens/okta/revoke", Some(&admin.session), json!({})).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_scim_token")), "{e}");
    assert_eq!(app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await.0, StatusCode::OK);

    let refused = app.refusals_on_record("scim.denied").await;
    assert_eq!(
        (refused.get("missing_credentials"), refused.get("invalid_scim_token"), refused.get("scim_token_revoked")),
        (Some(&1), Some(&3), Some(&1)),
        "every refusal is on the record: {refused:?}"
    );
    let events: Vec<String> = app.audit_events_after(0).await.into_iter().map(|(e, _, _)| e).collect();
    assert!(events.contains(&"scim.token_created".to_owned()) && events.contains(&"scim.token_revoked".to_owned()), "{events:?}");
}

#[tokio::test]
async fn only_administrators_manage_scim_tokens() {
    let app = spawn_app(Backend::Postgres).await;
    let admin = app.admin().await;
    let bob = app.person(&admin, "bob", &[]).await;
    let (s, e) = app.post("/v1/scim/tokens", Some(&bob.session), json!({ "name": "okta" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{e}");
    assert_eq!(app.get("/v1/scim/tokens", Some(&bob.session)).await.0, StatusCode::FORBIDDEN);
    let (s, e) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "Not A Name" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scim_token_name")), "{e}");
    // On PostgreSQL too: made, used, revoked.
    let (_, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "entra" })).await;
    let token = made["token"].as_str().unwrap().to_owned();
    assert_eq!(scim_get(&app, "/scim/v2/ServiceProviderConfig", Some(&token)).await.0, StatusCode::OK);
    assert_eq!(app.http.post(app.url("/v1/scim/tokens/entra/revoke")).bearer_auth(&admin.session).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(scim_get(&app, "/scim/v2/ServiceProviderConfig", Some(&token)).await.0, StatusCode::UNAUTHORIZED);
}

async fn scim_send(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("content-type", "application/scim+json").body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let code = stint_code(&resp);
    let text = resp.text().await.unwrap();
    (status, with_code(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) }, code))
}

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The promise: deactivating a person in the identity provider ends their access now. The
/// provider finds them by `userName`, deactivates them in Microsoft Entra ID's shape, and their
/// session and role token stop working in the same transaction, on the record with the
/// provider as the actor; Okta's shape reactivates them (what ended stays ended); `DELETE`
/// disables too.
#[tokio::test]
async fn the_identity_provider_deactivates_a_person_and_their_access_ends_at_once() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let bob = app.person(&admin, "bob", &[]).await;
    let _carol = app.person(&admin, "carol", &[]).await;
    let role_token = app.token(&bob, "readonly").await;
    let (_, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "entra" })).await;
    let token = made["token"].as_str().unwrap().to_owned();

    let (s, found) = scim_send(&app, reqwest::Method::GET, "/scim/v2/Users?filter=userName%20eq%20%22BOB%22", &token, None).await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(
        (found["totalResults"].as_u64(), found["Resources"][0]["userName"].as_str(), found["Resources"][0]["active"].as_bool()),
        (Some(1), Some("bob"), Some(true)),
        "{found}"
    );
    let id = found["Resources"][0]["id"].as_str().unwrap().to_owned();

    let entra = json!({ "schemas": [PATCH], "Operations": [
        { "op": "Replace", "path": "displayName", "value": "Bob B." },
        { "op": "Replace", "path": "active", "value": "False" }
    ] });
    let (s, patched) = scim_send(&app, reqwest::Method::PATCH, &format!("/scim/v2/Users/{id}"), &token, Some(entra)).await;
    assert_eq!((s, patched["active"].as_bool()), (StatusCode::OK, Some(false)), "{patched}");
    // Everything bob held ended with it.
    let (s, _) = app.get("/v1/whoami", Some(&bob.session)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the session");
    assert_eq!(app.introspect(&role_token).await["active"], json!(false), "the role token");
    let records = app.store.audit_after(0, 1000).await.unwrap();
    assert!(
        records.iter().any(|r| r.event == "user.disabled" && r.actor == "scim:entra" && r.subject == id),
        "on the record with the provider as actor: {:?}",
        records.iter().map(|r| (&r.event, &r.actor)).collect::<Vec<_>>()
    );
    let (_, inactive) = scim_send(&app, reqwest::Method::GET, "/scim/v2/Users?filter=active%20eq%20false", &token, None).await;
    assert_eq!(inactive["totalResults"].as_u64(), Some(1), "{inactive}");

    // Okta's shape reactivates; the old session stays revoked.
    let okta = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "value": { "active": true } }] });
    let (s, back) = scim_send(&app, reqwest::Method::PATCH, &format!("/scim/v2/Users/{id}"), &token, Some(okta)).await;
    assert_eq!((s, back["active"].as_bool()), (StatusCode::OK, Some(true)), "{back}");
    assert_eq!(app.get("/v1/whoami", Some(&bob.session)).await.0, StatusCode::UNAUTHORIZED);
    // DELETE disables (stint keeps the person its audit trail names).
    let (s, _) = scim_send(&app, reqwest::Method::DELETE, &format!("/scim/v2/Users/{id}"), &token, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, gone) = scim_send(&app, reqwest::Method::GET, &format!("/scim/v2/Users/{id}"), &token, None).await;
    assert_eq!(gone["active"], json!(false), "{gone}");

    // Pagination: three people (root, bob, carol), one per page.
    let (_, page) = scim_send(&app, reqwest::Method::GET, "/scim/v2/Users?startIndex=2&count=1", &token, None).await;
    assert_eq!((page["totalResults"].as_u64(), page["startIndex"].as_u64(), page["itemsPerPage"].as_u64()), (Some(3), Some(2), Some(1)), "{page}");
}

/// Bad input answers in SCIM's error schema with the `scimType` a provider understands, and
/// changes nothing.
#[tokio::test]
async fn bad_scim_requests_get_scim_errors_and_change_nothing() {
    let app = spawn_app(Backend::Postgres).await;
    let admin = app.admin().await;
    let bob = app.person(&admin, "bob", &[]).await;
    let (_, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    let token = made["token"].as_str().unwrap().to_owned();
    let (_, found) = scim_send(&app, reqwest::Method::GET, "/scim/v2/Users?filter=userName%20eq%20%22bob%22", &token, None).await;
    let user = format!("/scim/v2/Users/{}", found["Resources"][0]["id"].as_str().unwrap());

    // (method, path, body, status, stint's code, scimType)
    type Case<'a> = (reqwest::Method, String, Option<Value>, StatusCode, &'a str, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (reqwest::Method::GET, "/scim/v2/Users?filter=userName%20eq".into(), None, StatusCode::BAD_REQUEST, "invalid_filter", Some("invalidFilter")),
        (reqwest::Method::GET, "/scim/v2/Users?filter=title%20eq%20%22x%22".into(), None, StatusCode::BAD_REQUEST, "invalid_filter", Some("invalidFilter")),
        (reqwest::Method::GET, "/scim/v2/Users?count=many".into(), None, StatusCode::BAD_REQUEST, "invalid_value", Some("invalidValue")),
        (reqwest::Method::GET, "/scim/v2/Users/u_nope".into(), None, StatusCode::NOT_FOUND, "unknown_user", None),
        (
            reqwest::Method::PATCH,
            user.clone(),
            Some(json!({ "Operations": [{ "op": "replace", "value": { "active": false } }] })),
            StatusCode::BAD_REQUEST,
            "invalid_syntax",
            Some("invalidSyntax"),
        ),
        (
            reqwest::Method::PATCH,
            user.clone(),
            Some(json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "userName", "value": "eve" }] })),
            StatusCode::BAD_REQUEST,
            "mutability",
            Some("mutability"),
        ),
        (
            reqwest::Method::PATCH,
            user.clone(),
            Some(json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "active", "value": "perhaps" }] })),
            StatusCode::BAD_REQUEST,
            "invalid_value",
            Some("invalidValue"),
        ),
        (reqwest::Method::PATCH, user.clone(), Some(json!("not an object")), StatusCode::BAD_REQUEST, "invalid_syntax", Some("invalidSyntax")),
    ];
    for (method, path, body, status, code, scim_type) in cases {
        let (s, e) = scim_send(&app, method.clone(), &path, &token, body).await;
        assert_eq!(s, status, "{method} {path}: {e}");
        scim_error(&e, &status.as_u16().to_string(), code);
        assert_eq!(e["scimType"].as_str(), scim_type, "{method} {path}: {e}");
    }
    let resp = app.http.patch(app.url(&user)).bearer_auth(&token).header("content-type", "application/xml").body("<x/>").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let code = stint_code(&resp);
    scim_error(&with_code(resp.json().await.unwrap(), code), "415", "unsupported_media_type");
    let big = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "displayName", "value": "x".repeat(70_000) }] });
    let (s, e) = scim_send(&app, reqwest::Method::PATCH, &user, &token, Some(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    scim_error(&e, "413", "body_too_large");
    // Nothing changed: bob is still active, his session live.
    assert_eq!(app.get("/v1/whoami", Some(&bob.session)).await.0, StatusCode::OK);
}

/// The whole service through the PyPI `scim2-client` (pinned in tests/requirements.txt), which
/// validates every answer against the SCIM models: discovery, create, filters, pagination,
/// ETags, PUT, PATCH in the Okta and Entra shapes, groups driving a stint group, DELETE, and bad
/// input in the SCIM error format. Then stint's side: bob's access ended, on the record with
/// the provider as the actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_provider_drives_every_scim_operation_through_scim2_client() {
    let app = spawn_app_with(Backend::Postgres, "[scim]\ngroups = { \"Engineering On-Call\" = \"oncall\" }\n").await;
    let admin = app.admin().await;
    let bob = app.person(&admin, "bob", &["developers"]).await;
    let role_token = app.token(&bob, "readonly").await;
    let (_, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    let token = made["token"].as_str().unwrap().to_owned();
    let (url, script) = (app.url("/scim/v2/"), std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scim_client.py"));
    let bearer = token.clone();
    // The client blocks; the server keeps answering on the runtime's other worker.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(stint_testkit::aws::python()).arg(script).env("SCIM_URL", url).env("SCIM_TOKEN", bearer).output().expect("python runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "scim2-client failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!((seen["etag_supported"].as_bool(), seen["patch_supported"].as_bool()), (Some(true), Some(true)), "{seen}");
    assert_eq!(seen["created"]["userName"], json!("dana"), "{seen}");
    assert_eq!(seen["created"]["active"], json!(true), "{seen}");
    assert!(seen["created"]["version"].as_str().is_some_and(|v| v.starts_with("W/\"")), "{seen}");
    assert_eq!(seen["created_email"], json!("dana@example.com"), "kept lowercased");
    assert_eq!(seen["create_taken"], json!({ "status": 409, "scimType": "uniqueness" }), "{seen}");
    assert_eq!(seen["filter_username"], json!(["bob"]));
    assert_eq!(seen["filter_external"], json!(["dana"]));
    assert_eq!(seen["filter_and_or"], json!(["bob", "dana"]));
    assert_eq!(seen["page"], json!({ "total": 3, "start": 2, "per_page": 1 }), "root, bob, dana");
    assert_eq!(seen["read_version"], json!({ "present": true, "same_as_listed": true }));
    assert_eq!((seen["stale_if_match"].as_u64(), seen["if_none_match"].as_u64()), (Some(412), Some(304)), "{seen}");
    assert_eq!(seen["replaced"], json!({ "externalId": "00u-bob", "version_changed": true }), "{seen}");
    let bob_id = seen["group_created"]["members"][0].as_str().unwrap().to_owned();
    let dana_id = seen["created"]["id"].as_str().unwrap().to_owned();
    assert_eq!(seen["bob_groups_after_join"], json!(["developers", "oncall"]), "the provider's group gives its stint group");
    let mut both = vec![bob_id.clone(), dana_id.clone()];
    both.sort();
    assert_eq!(seen["members_after_add"], json!(both));
    assert_eq!(seen["members_after_remove"], json!([dana_id]));
    assert_eq!(seen["bob_groups_after_leave"], json!(["developers"]), "leaving it takes the stint group away; the others stay");
    assert_eq!(seen["renamed"], json!("SRE On-Call"));
    assert_eq!(seen["group_filter"].as_array().map(Vec::len), Some(1), "displayName is case-insensitive: {seen}");
    assert_eq!(seen["group_deleted"], json!(404));
    assert_eq!((seen["deactivated"].as_bool(), seen["dana_after_delete"].as_bool()), (Some(false), Some(false)), "{seen}");
    let bad = &seen["bad"];
    for (case, status, scim_type) in [
        ("malformed_filter", 400, Some("invalidFilter")),
        ("unknown_attribute", 400, Some("invalidFilter")),
        ("wrong_schema", 400, Some("invalidSyntax")),
        ("oversized", 413, None),
        ("bad_patch_path", 400, Some("invalidPath")),
        ("unknown_group", 404, None),
    ] {
        assert_eq!(bad[case]["status"].as_u64(), Some(status), "{case}: {bad}");
        assert_eq!(bad[case]["scimType"].as_str(), scim_type, "{case}: {bad}");
        assert_eq!(bad[case]["detail"], json!(true), "{case}: {bad}");
    }

    // stint's side: bob's session and role token ended with the deactivation, dana (created
    // then deleted) is disabled, and the provider is the actor of every change.
    assert_eq!(app.get("/v1/whoami", Some(&bob.session)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.introspect(&role_token).await["active"], json!(false));
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    let by_provider = |event: &str, subject: &str| records.iter().any(|r| r.event == event && r.actor == "scim:okta" && r.subject == subject);
    assert!(by_provider("user.created", &dana_id) && by_provider("user.disabled", &dana_id), "dana");
    assert!(by_provider("user.disabled", &bob_id) && by_provider("scim.user_updated", &bob_id), "bob");
    assert!(by_provider("user.groups_changed", &bob_id), "bob's groups");
    for e in ["scim.group_created", "scim.group_updated", "scim.group_deleted"] {
        assert!(records.iter().any(|r| r.event == e && r.actor == "scim:okta"), "{e}");
    }
}

/// An `externalId` names one person: a second person claiming it is refused and nothing is
/// made. A provisioned person has no password: they sign in through the provider (tests/sso.rs
/// matches that sign-in to them).
#[tokio::test]
async fn an_external_id_names_one_person_and_provisioned_people_have_no_password() {
    let app = spawn_app_with(Backend::Sqlite, "").await;
    let admin = app.admin().await;
    let (_, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    let token = made["token"].as_str().unwrap().to_owned();
    let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "erin", "externalId": "00u-erin" });
    let (s, erin) = scim_send(&app, reqwest::Method::POST, "/scim/v2/Users", &token, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{erin}");
    let (s, e) = scim_send(
        &app,
        reqwest::Method::POST,
        "/scim/v2/Users",
        &token,
        Some(json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "frank", "externalId": "00u-erin" })),
    )
    .await;
    assert_eq!((s, e["scimType"].as_str(), e["error"].as_str()), (StatusCode::CONFLICT, Some("uniqueness"), Some("external_id_taken")), "{e}");
    assert!(app.store.user_by_name(&stint_core::ids::Username::parse("frank").unwrap()).await.unwrap().is_none(), "refused: nothing made");
    let users = app.store.users().await.unwrap();
    let erin_id = erin["id"].as_str().unwrap();
    let row = users.iter().find(|u| u.id.as_str() == erin_id).unwrap();
    assert!(row.password_hash.is_none() && !row.disabled, "provisioned: signs in through the provider");
}

/// A contractor provisioned by the identity provider: stint's User extension carries the
/// account's end and sponsor (as `stint user add --expires --sponsor` does), PATCH extends it,
/// and an end without a sponsor is refused.
#[tokio::test]
async fn the_provider_provisions_a_contractor_with_an_end_and_a_sponsor() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let (_, made) = app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    let token = made["token"].as_str().unwrap().to_owned();
    const EXT: &str = "urn:ietf:params:scim:schemas:extension:stint:2.0:User";
    let user = "urn:ietf:params:scim:schemas:core:2.0:User";
    let body = json!({ "schemas": [user, EXT], "userName": "vic", EXT: { "expires": "2027-03-31", "sponsor": "root" } });
    let (s, vic) = scim_send(&app, reqwest::Method::POST, "/scim/v2/Users", &token, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{vic}");
    assert_eq!(vic[EXT], json!({ "expires": "2027-04-01T00:00:00Z", "sponsor": "root" }), "{vic}");
    let id = vic["id"].as_str().unwrap().to_owned();
    let row = app.store.user_by_id(&stint_core::ids::UserId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(row.expires_at.map(|t| t.to_rfc3339()).as_deref(), Some("2027-04-01T00:00:00Z"));

    let extend = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": format!("{EXT}:expires"), "value": "2027-06-30" }] });
    let (s, v) = scim_send(&app, reqwest::Method::PATCH, &format!("/scim/v2/Users/{id}"), &token, Some(extend)).await;
    assert_eq!((s, v[EXT]["expires"].as_str(), v[EXT]["sponsor"].as_str()), (StatusCode::OK, Some("2027-07-01T00:00:00Z"), Some("root")), "{v}");
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    assert!(records.iter().any(|r| r.event == "user.expiry_changed" && r.actor == "scim:okta" && r.subject == id), "on the record");
    // A profile PUT that knows nothing of the extension (Okta's) leaves the end and sponsor.
    let profile = json!({ "schemas": [user], "userName": "vic", "active": true, "externalId": "00uVIC" });
    let (s, v) = scim_send(&app, reqwest::Method::PUT, &format!("/scim/v2/Users/{id}"), &token, Some(profile)).await;
    assert_eq!((s, v[EXT]["expires"].as_str(), v["externalId"].as_str()), (StatusCode::OK, Some("2027-07-01T00:00:00Z"), Some("00uVIC")), "{v}");
    let row = app.store.user_by_id(&stint_core::ids::UserId::parse(&id).unwrap()).await.unwrap().unwrap();
    assert_eq!(row.expires_at.map(|t| t.to_rfc3339()).as_deref(), Some("2027-07-01T00:00:00Z"), "the account still ends");
    // A PATCH one of whose operations fails changes nothing (RFC 7644 §3.5.2), even what the
    // operations before it would have changed.
    let mixed = json!({ "schemas": [PATCH], "Operations": [
        { "op": "replace", "path": "externalId", "value": "00uNEW" },
        { "op": "replace", "path": format!("{EXT}:expires"), "value": "2020-01-01" },
        { "op": "replace", "path": "active", "value": false },
    ] });
    let (s, e) = scim_send(&app, reqwest::Method::PATCH, &format!("/scim/v2/Users/{id}"), &token, Some(mixed)).await;
    assert_eq!((s, e["scimType"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidValue")), "an end that has passed: {e}");
    let (_, v) = scim_send(&app, reqwest::Method::GET, &format!("/scim/v2/Users/{id}"), &token, None).await;
    assert_eq!(
        (v["externalId"].as_str(), v["active"].as_bool(), v[EXT]["expires"].as_str()),
        (Some("00uVIC"), Some(true), Some("2027-07-01T00:00:00Z")),
        "{v}"
    );

    let half = json!({ "schemas": [user, EXT], "userName": "val", EXT: { "expires": "2027-03-31" } });
    let (s, e) = scim_send(&app, reqwest::Method::POST, "/scim/v2/Users", &token, Some(half)).await;
    assert_eq!((s, e["scimType"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidValue")), "{e}");
    let never = json!({ "schemas": [PATCH], "Operations": [{ "op": "remove", "path": EXT }] });
    let (s, v) = scim_send(&app, reqwest::Method::PATCH, &format!("/scim/v2/Users/{id}"), &token, Some(never)).await;
    assert_eq!((s, v.get(EXT)), (StatusCode::OK, None), "an account that no longer ends: {v}");
}
