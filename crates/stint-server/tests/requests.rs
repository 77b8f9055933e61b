//! Admin through approval: a request, approvers who are never the requester, a time-boxed
//! grant that policies honour, and a revocation that refuses the tokens issued under it.
//! The clock is moved by the test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{spawn_app_with, Backend, Person, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn config(required: usize) -> String {
    format!("[approvals]\nroles = [\"admin\"]\napprovers = \"approvers\"\nrequired = {required}\nmax_duration = \"1h\"\npending_ttl = \"1h\"\n")
}

struct Team {
    alice: Person,
    carol: Person,
    dave: Person,
}

async fn team(app: &TestApp) -> Team {
    let root = app.admin().await;
    Team {
        alice: app.person(&root, "alice", &[]).await,
        carol: app.person(&root, "carol", &["approvers"]).await,
        dave: app.person(&root, "dave", &["approvers"]).await,
    }
}

async fn request(app: &TestApp, p: &Person, body: Value) -> (StatusCode, Value) {
    app.post("/v1/requests", Some(&p.session), body).await
}

async fn act(app: &TestApp, p: &Person, path: &str, body: Value) -> (StatusCode, Value) {
    app.post(path, Some(&p.session), body).await
}

async fn an_approved_request_grants_admin_until_revoked(app: TestApp) {
    let t = team(&app).await;
    let (s, r) = request(&app, &t.alice, json!({ "role": "admin", "reason": "rotate the production database password", "duration": "30m" })).await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("pending")), "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(app.assume(&t.alice, "admin", None).await.1["error"], "role_not_granted", "not before approval");

    // Approvers only, and never for themselves.
    let (s, v) = act(&app, &t.alice, &format!("/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("approver_required")));
    let (_, own) = request(&app, &t.carol, json!({ "role": "admin", "reason": "curious" })).await;
    let (s, v) = act(&app, &t.carol, &format!("/v1/requests/{}/approve", own["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("self_approval")));

    let (s, v) = act(&app, &t.dave, &format!("/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!((s, v["status"].as_str(), v["approvals"].clone()), (StatusCode::OK, Some("approved"), json!(["dave"])), "{v}");

    // The grant is a policy reason; the token lives no longer than the grant.
    let (s, tok) = app.assume(&t.alice, "admin", None).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert!(tok["expires_in"].as_u64().unwrap() <= 1800, "{tok}");
    let (s, v) = app.assume(&t.alice, "admin", Some("45m")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "beyond the grant: {v}");
    let token = tok["token"].as_str().unwrap().to_owned();
    let seen = app.introspect(&token).await;
    assert_eq!((seen["active"].as_bool(), seen["grant"].as_str()), (Some(true), Some(id.as_str())), "{seen}");
    let issued = app.store.audit_after(0, 10_000).await.unwrap().into_iter().rev().find(|r| r.event == "credential.issued").unwrap();
    assert_eq!((issued.details["reasons"].as_str(), issued.details["grant"].as_str()), ("policy \"approved request: admin\"", id.as_str()));
    let (_, me) = app.get("/v1/whoami", Some(&t.alice.session)).await;
    assert!(me["roles"].as_array().unwrap().iter().any(|r| r["role"] == "admin"), "{me}");

    // Revoking the grant refuses the token at once, and any new one.
    let (s, v) = act(&app, &t.dave, &format!("/v1/grants/{id}/revoke"), json!({ "reason": "done early" })).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("revoked")), "{v}");
    assert_eq!(app.introspect(&token).await["active"], false);
    assert_eq!(app.assume(&t.alice, "admin", None).await.1["error"], "role_not_granted");

    let events: Vec<String> = app.store.audit_after(0, 10_000).await.unwrap().into_iter().map(|r| r.event).collect();
    for e in ["request.created", "request.approved", "grant.revoked"] {
        assert!(events.iter().any(|x| x == e), "{e} in the audit log");
    }
}

async fn grants_end_with_their_window(app: TestApp) {
    let t = team(&app).await;
    let (_, r) = request(&app, &t.alice, json!({ "role": "admin", "reason": "incident 42", "duration": "30m" })).await;
    let id = r["id"].as_str().unwrap();
    act(&app, &t.carol, &format!("/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(app.assume(&t.alice, "admin", Some("10m")).await.0, StatusCode::OK);
    app.clock.advance(30 * 60);
    assert_eq!(app.assume(&t.alice, "admin", Some("10m")).await.1["error"], "role_not_granted", "the grant ended");
    let (_, list) = app.get("/v1/requests", Some(&t.alice.session)).await;
    assert_eq!(list[0]["status"], "ended");
}

async fn pending_requests_expire_and_can_be_denied(app: TestApp) {
    let t = team(&app).await;
    let (s, v) = request(&app, &t.alice, json!({ "role": "admin", "reason": "x", "duration": "2h" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("duration_too_long")));
    let (s, v) = request(&app, &t.alice, json!({ "role": "developer", "reason": "x" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("not_requestable")));
    let (s, v) = request(&app, &t.alice, json!({ "role": "admin", "reason": "  " })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("reason_required")));

    let (_, late) = request(&app, &t.alice, json!({ "role": "admin", "reason": "can wait" })).await;
    let (_, denied) = request(&app, &t.alice, json!({ "role": "admin", "reason": "just because" })).await;
    let (_, _third) = request(&app, &t.alice, json!({ "role": "admin", "reason": "a third" })).await;
    let (s, v) = request(&app, &t.alice, json!({ "role": "admin", "reason": "a fourth, while three wait" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")), "{v}");
    let (s, v) = act(&app, &t.carol, &format!("/v1/requests/{}/deny", denied["id"].as_str().unwrap()), json!({ "reason": "use developer" })).await;
    assert_eq!((s, v["status"].as_str(), v["decision_reason"].as_str()), (StatusCode::OK, Some("denied"), Some("use developer")));
    app.clock.advance(3600);
    let (s, v) = act(&app, &t.carol, &format!("/v1/requests/{}/approve", late["id"].as_str().unwrap()), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("request_expired")));
    let (_, list) = app.get("/v1/requests", Some(&t.carol.session)).await;
    let statuses: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"expired") && statuses.contains(&"denied"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_from_two_approvers() {
    let app = spawn_app_with(Backend::Sqlite, &config(2)).await;
    let t = team(&app).await;
    let (_, r) = request(&app, &t.alice, json!({ "role": "admin", "reason": "migrate the schema" })).await;
    let id = r["id"].as_str().unwrap();
    let (_, v) = act(&app, &t.carol, &format!("/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!((v["status"].as_str(), v["approvals"].clone()), (Some("pending"), json!(["carol"])));
    let (s, v) = act(&app, &t.carol, &format!("/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("already_approved")));
    assert_eq!(app.assume(&t.alice, "admin", None).await.0, StatusCode::FORBIDDEN, "one of two approvals grants nothing");
    let (_, v) = act(&app, &t.dave, &format!("/v1/requests/{id}/approve"), json!({})).await;
    assert_eq!(v["status"], "approved");
    assert_eq!(app.assume(&t.alice, "admin", None).await.0, StatusCode::OK);
}

macro_rules! request_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::spawn_app_with(super::Backend::Sqlite, &super::config(1)).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::spawn_app_with(super::Backend::Postgres, &super::config(1)).await).await;
            })*
        }
    };
}

request_tests!(an_approved_request_grants_admin_until_revoked, grants_end_with_their_window, pending_requests_expire_and_can_be_denied);
