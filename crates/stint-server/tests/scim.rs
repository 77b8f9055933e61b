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
    (status, ct, serde_json::from_str(&resp.text().await.unwrap()).unwrap())
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
