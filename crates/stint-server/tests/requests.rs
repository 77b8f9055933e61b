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
    root: Person,
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
        root,
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

/// Reasons that show nothing: control characters, a lone zero-width space, invisible padding.
const BLANK_REASONS: [&str; 4] = ["\u{0007}\u{0000}\u{001b}", "\u{200b}", " \u{200b}\u{feff}\u{2060} ", "o\u{200b}k"];

async fn events(app: &TestApp, event: &str) -> Vec<stint_core::audit::Record> {
    app.store.audit_after(0, 10_000).await.unwrap().into_iter().filter(|r| r.event == event).collect()
}

async fn reasons_must_say_something_and_are_kept_as_checked(app: TestApp) {
    let t = team(&app).await;
    for blank in BLANK_REASONS {
        let (s, v) = request(&app, &t.alice, json!({ "role": "admin", "reason": blank })).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("reason_required")), "{blank:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains("at least 3 visible characters"), "{v}");
    }
    assert!(events(&app, "request.created").await.is_empty(), "a refused reason creates nothing");
    let (s, r) = request(&app, &t.alice, json!({ "role": "admin", "reason": "fix\u{0}\u{200b}  the\n\tdb\u{1b}" })).await;
    assert_eq!((s, r["reason"].as_str()), (StatusCode::OK, Some("fix the db")), "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(events(&app, "request.created").await[0].details["reason"], "fix the db", "audited as stored");

    // A denial's reason is normalised and checked the same way.
    for blank in BLANK_REASONS {
        let (s, v) = act(&app, &t.carol, &format!("/v1/requests/{id}/deny"), json!({ "reason": blank })).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("reason_required")), "{blank:?}: {v}");
    }
    let (s, v) = act(&app, &t.carol, &format!("/v1/requests/{id}/deny"), json!({ "reason": "\u{200b}use\u{7}   developer " })).await;
    assert_eq!((s, v["decision_reason"].as_str()), (StatusCode::OK, Some("use developer")), "{v}");
    assert_eq!(events(&app, "request.denied").await[0].details["reason"], "use developer");
}

async fn a_refused_grant_revoke_is_audited_and_tells_nothing_of_ids(app: TestApp) {
    let t = team(&app).await;
    let erin = app.person(&t.root, "erin", &[]).await;
    let (_, r) = request(&app, &t.alice, json!({ "role": "admin", "reason": "rotate keys" })).await;
    let id = r["id"].as_str().unwrap().to_owned();
    act(&app, &t.carol, &format!("/v1/requests/{id}/approve"), json!({})).await;

    // Someone else's grant and an id that does not exist get the same refusal.
    let real = act(&app, &erin, &format!("/v1/grants/{id}/revoke"), json!({ "reason": "mine now" })).await;
    let unknown = act(&app, &erin, "/v1/grants/req_doesnotexist/revoke", json!({ "reason": "mine now" })).await;
    assert_eq!((real.0, real.1["error"].as_str()), (StatusCode::FORBIDDEN, Some("approver_required")), "{}", real.1);
    assert_eq!(real, unknown, "no oracle for which ids exist");
    let refused: Vec<_> =
        events(&app, "request.refused").await.into_iter().filter(|r| r.details.get("action").map(String::as_str) == Some("grant.revoke")).collect();
    assert_eq!(refused.len(), 2, "each refusal is on the record");
    assert!(refused.iter().all(|r| r.reason == "approver_required" && r.outcome.as_str() == "failure"));
    assert_eq!((refused[0].details["request"].as_str(), refused[1].details["request"].as_str()), (id.as_str(), "req_doesnotexist"));
    assert_eq!(app.assume(&t.alice, "admin", None).await.0, StatusCode::OK, "the grant stands");

    // Those who may revoke learn that an id is unknown; a revoke reason, when given, says something.
    let (s, v) = act(&app, &t.dave, "/v1/grants/req_doesnotexist/revoke", json!({ "reason": "" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_request")), "{v}");
    let (s, v) = act(&app, &t.dave, &format!("/v1/grants/{id}/revoke"), json!({ "reason": "\u{200b}x\u{0}" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("reason_required")), "{v}");
    let (s, v) = act(&app, &t.alice, &format!("/v1/grants/{id}/revoke"), json!({ "reason": "\u{7}" })).await;
    assert_eq!((s, v["status"].as_str(), &v["decision_reason"]), (StatusCode::OK, Some("revoked"), &Value::Null), "the requester ends their own grant: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_break_glass_reason_grants_nothing() {
    let glass = "[break_glass]\ngroup = \"break-glass\"\nrole = \"admin\"\nmax_duration = \"1h\"\nfresh_login = \"5m\"\n";
    let app = spawn_app_with(Backend::Sqlite, glass).await;
    let root = app.admin().await;
    let oncall = app.person(&root, "oncall", &["break-glass"]).await;
    for blank in BLANK_REASONS {
        let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": blank })).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("reason_required")), "{blank:?}: {v}");
    }
    assert_eq!(app.assume(&oncall, "admin", None).await.0, StatusCode::FORBIDDEN, "no grant from a blank reason");
    let used = events(&app, "break_glass.used").await;
    assert_eq!(used.len(), BLANK_REASONS.len(), "each refusal is flagged");
    assert!(used.iter().all(|r| r.outcome.as_str() == "failure" && r.reason == "reason_required"));

    let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": "prod\u{200b} is   down\u{7}" })).await;
    assert_eq!((s, v["reason"].as_str()), (StatusCode::OK, Some("prod is down")), "{v}");
    let ok = events(&app, "break_glass.used").await.into_iter().find(|r| r.outcome.as_str() == "success").unwrap();
    assert_eq!(ok.details["reason"], "prod is down", "the record carries exactly what was checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_reason_length_is_configurable() {
    let app = spawn_app_with(Backend::Sqlite, &format!("{}[reasons]\nmin_chars = 10\n", config(1))).await;
    let t = team(&app).await;
    let (s, v) = request(&app, &t.alice, json!({ "role": "admin", "reason": "incident" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("reason_required")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("at least 10 visible characters"), "{v}");
    let (s, _) = request(&app, &t.alice, json!({ "role": "admin", "reason": "incident 42" })).await;
    assert_eq!(s, StatusCode::OK);
    common::config_refused("[reasons]\nmin_chars = 0\n", "reasons.min_chars");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_login_is_fresh_only_within_its_whole_limit() {
    let glass = "[break_glass]\ngroup = \"break-glass\"\nrole = \"admin\"\nmax_duration = \"1h\"\nfresh_login = \"4s\"\n";
    let app = spawn_app_with(Backend::Sqlite, glass).await;
    let root = app.admin().await;
    let oncall = app.person(&root, "oncall", &["break-glass"]).await;
    // 4 s on the clock's whole seconds may be up to 5 s since the login: no longer fresh.
    app.clock.advance(4);
    let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": "prod is down" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("fresh_login_required")), "{v}");
    let oncall = app.login(&oncall.name, &oncall.secret).await;
    app.clock.advance(3);
    let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": "prod is down" })).await;
    assert_eq!(s, StatusCode::OK, "3 s (under 4 s) is fresh: {v}");
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

request_tests!(
    an_approved_request_grants_admin_until_revoked,
    grants_end_with_their_window,
    pending_requests_expire_and_can_be_denied,
    reasons_must_say_something_and_are_kept_as_checked,
    a_refused_grant_revoke_is_audited_and_tells_nothing_of_ids,
);
