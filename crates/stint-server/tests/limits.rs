//! `[limits]` end to end: the rate limit of the routes without credential, the folding of
//! identical refusals in the audit log, and the caps on what one person holds.
#![allow(clippy::unwrap_used)]

mod common;

use common::{body, spawn_app_with, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One address may send 5 at once and 1 a second; the test's clients stand behind a trusted
/// proxy (the test itself, on 127.0.0.1) that names them in `X-Forwarded-For`. A 429 is sent
/// at once (the delay has its own test).
const LIMITED: &str = "[limits]\nper_address_rate = 1\nper_address_burst = 5\nrate_limited_delay_ms = 0\n\
                       trusted_proxy_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

async fn post_from(app: &TestApp, client: &str, path: &str, payload: Value) -> (StatusCode, Option<String>, Value) {
    let resp = app.http.post(app.url(path)).header("X-Forwarded-For", client).json(&payload).send().await.unwrap();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let (s, v) = body(resp).await;
    (s, retry_after, v)
}

fn bad_login() -> Value {
    json!({ "username": "nobody", "password": "wrong", "totp": "000000", "extra": 1 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_gets_429_while_another_is_served() {
    let app = spawn_app_with(Backend::Sqlite, LIMITED).await;
    for i in 0..5 {
        let (s, _, v) = post_from(&app, "203.0.113.1", "/v1/auth/login", bad_login()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "request {i} is within the burst: {v}");
    }
    let head = app.audit_head().await;
    for path in ["/v1/auth/login", "/v1/token", "/v1/introspect", "/v1/bootstrap", "/v1/enroll", "/v1/sso/begin"] {
        let (s, retry_after, v) = post_from(&app, "203.0.113.1", path, bad_login()).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{path}: {v}");
        assert_eq!(v["error"], "rate_limited", "{path}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{path}");
    }
    assert_eq!(app.audit_head().await, head, "a limited request writes nothing");

    // Another address is served; so is an authenticated route from the flooded one.
    let (s, _, v) = post_from(&app, "203.0.113.2", "/v1/auth/login", bad_login()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, v) = post_from(&app, "203.0.113.1", "/v1/assume", json!({ "role": "readonly" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_credentials")), "{v}");

    // STS clients get STS's error; browsers a page.
    let resp = app.http.post(app.url("/v1/sts")).header("X-Forwarded-For", "203.0.113.1").body("Action=AssumeRoleWithWebIdentity").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.text().await.unwrap().contains("<Code>Throttling</Code>"));
    let resp = app.http.get(app.url("/v1/sso/callback?state=x&code=y")).header("X-Forwarded-For", "203.0.113.1").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));

    // A second later, one more request gets through.
    app.clock.advance(1);
    let (s, _, _) = post_from(&app, "203.0.113.1", "/v1/auth/login", bad_login()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = post_from(&app, "203.0.113.1", "/v1/auth/login", bad_login()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_limit_waits_for_its_429() {
    let app = spawn_app_with(Backend::Sqlite, "[limits]\nper_address_rate = 1\nper_address_burst = 1\nrate_limited_delay_ms = 400\n").await;
    let (s, _) = app.login_raw("nobody", "wrong", "000000").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "within the burst");
    let started = std::time::Instant::now();
    let resp = app.http.post(app.url("/v1/token")).form(&[("subject_token", "x")]).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(waited >= std::time::Duration::from_millis(400), "the 429 came after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_header_is_believed_only_when_configured() {
    // Without trusted proxies, the header is the client's to write: every request is the peer's.
    let app = spawn_app_with(Backend::Sqlite, "[limits]\nper_address_rate = 1\nper_address_burst = 2\nrate_limited_delay_ms = 0\n").await;
    for (i, client) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        let (s, _, _) = post_from(&app, client, "/v1/auth/login", bad_login()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{i}");
    }
    let (s, _, _) = post_from(&app, "203.0.113.3", "/v1/auth/login", bad_login()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "a forged header does not buy a fresh bucket");
    let refused = app.store.audit_after(0, 100).await.unwrap().into_iter().filter(|r| r.event == "request.refused").collect::<Vec<_>>();
    assert!(refused.iter().all(|r| r.actor == "127.0.0.1"), "audited as the peer: {refused:?}");

    let app = spawn_app_with(Backend::Sqlite, LIMITED).await;
    post_from(&app, "203.0.113.9", "/v1/auth/login", bad_login()).await;
    let refused = app.store.audit_after(0, 100).await.unwrap().into_iter().filter(|r| r.event == "request.refused").collect::<Vec<_>>();
    assert_eq!(refused.last().unwrap().actor, "203.0.113.9", "behind a trusted proxy, audited as the client it names");
}

/// Records appended since `seq`, by event.
async fn appended(app: &TestApp, seq: u64) -> Vec<stint_core::audit::Record> {
    app.store.audit_after(seq, 10_000).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_identical_refusals_grows_the_audit_log_by_a_bounded_number_of_records() {
    // Within the default burst (600 at once from one address, over all the limited routes).
    let app = spawn_app_with(Backend::Sqlite, "").await;
    let n = 250u64;
    let head = app.audit_head().await;
    let form = [("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"), ("subject_token", "garbage"), ("role", "deploy")];
    for _ in 0..n {
        let resp = app.http.post(app.url("/v1/token")).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = app.http.post(app.url("/v1/auth/login")).header("content-type", "text/plain").body("x").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let written = appended(&app, head).await;
    let events: Vec<(&str, &str)> = written.iter().map(|r| (r.event.as_str(), r.reason.as_str())).collect();
    assert_eq!(events, [("ci.exchange.denied", "invalid_token"), ("request.refused", "unsupported_media_type")], "the first of each, written at once");

    // The window closes: the housekeeping writes one summary per kind with the count.
    app.clock.advance(60);
    app.state.broker.housekeeping().await.unwrap();
    let written = appended(&app, head).await;
    assert_eq!(written.len(), 4, "{written:?}");
    let summaries: Vec<_> = written.iter().filter(|r| r.event == "refusals.folded").collect();
    let counted = |event: &str| summaries.iter().find(|r| r.details["event"] == event).map(|r| r.details["count"].parse::<u64>().unwrap());
    assert_eq!(counted("ci.exchange.denied"), Some(n - 1), "every refusal is written or counted");
    assert_eq!(counted("request.refused"), Some(n - 1));
    assert!(summaries.iter().all(|r| r.actor == "127.0.0.1"));
    let all = app.store.audit_after(0, 10_000).await.unwrap();
    assert!(stint_core::audit::verify_chain(&all, app.store.audit_head().await.unwrap()).is_ok());

    // Refusals that differ in what they tell are each written.
    let head = app.audit_head().await;
    for role in ["a", "b"] {
        app.http.post(app.url("/v1/token")).form(&[("grant_type", form[0].1), ("subject_token", "garbage"), ("role", role)]).send().await.unwrap();
    }
    assert_eq!(appended(&app, head).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_refusals_are_summarised_at_shutdown() {
    let app = spawn_app_with(Backend::Sqlite, "").await;
    for _ in 0..3 {
        app.http.post(app.url("/v1/auth/login")).header("content-type", "text/plain").body("x").send().await.unwrap();
    }
    // No window closed yet: what `serve` does after its listener stops.
    app.state.broker.flush_refusals(true).await.unwrap();
    let summary = appended(&app, 0).await.into_iter().find(|r| r.event == "refusals.folded").expect("a summary at shutdown");
    assert_eq!(summary.details["count"], "2");
}

async fn caps_refuse_the_next_session_and_lease(app: TestApp) {
    let admin = app.admin().await;
    let (s, v) = app.post("/v1/users", Some(&admin.session), json!({ "name": "alice", "groups": ["developers"] })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = app.enroll(v["enrollment_code"].as_str().unwrap()).await;
    let alice_id = app.store.user_by_name(&stint_core::ids::Username::parse("alice").unwrap()).await.unwrap().unwrap().id.to_string();
    let first = app.login("alice", &secret).await;
    app.login("alice", &secret).await;
    let head = app.audit_head().await;
    // Two attempts at fresh TOTP steps, 30 s apart: within one folding window (60 s).
    for _ in 0..2 {
        app.clock.advance(30);
        let (s, v) = app.login_raw("alice", common::PASSWORD, &app.totp(&secret)).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("too_many_sessions")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("stint logout"), "{v}");
    }
    // The refusal is on the record, once; the repeats are counted in its folding window.
    let written = appended(&app, head).await;
    assert_eq!(written.len(), 1, "{written:?}");
    let r = &written[0];
    assert_eq!(
        (r.event.as_str(), r.reason.as_str(), r.subject.as_str(), r.actor.as_str()),
        ("auth.login.failed", "too_many_sessions", alice_id.as_str(), "127.0.0.1")
    );
    // Ending one makes room.
    let (s, _) = app.post("/v1/auth/logout", Some(&first.session), json!({})).await;
    assert!(s.is_success());
    let alice = app.login("alice", &secret).await;

    let dir = app.data_dir.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join("id")).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = std::fs::read_to_string(dir.join("id.pub")).unwrap();
    let creds = json!({ "role": "developer", "backend": "servers", "public_key": key.trim() });
    let mut leases = Vec::new();
    for _ in 0..2 {
        let (s, v) = app.post("/v1/creds", Some(&alice.session), creds.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        leases.push(v["lease_id"].as_str().unwrap().to_owned());
    }
    let head = app.audit_head().await;
    for _ in 0..3 {
        let (s, v) = app.post("/v1/creds", Some(&alice.session), creds.clone()).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("too_many_leases")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("stint leases revoke"), "{v}");
    }
    let written = appended(&app, head).await;
    assert_eq!(written.len(), 1, "one record, the repeats folded: {written:?}");
    let r = &written[0];
    assert_eq!(
        (r.event.as_str(), r.reason.as_str(), r.subject.as_str(), r.actor.as_str()),
        ("role.assume.denied", "too_many_leases", "developer", alice_id.as_str())
    );
    assert_eq!((r.details["backend"].as_str(), r.details["session"].as_str()), ("servers", alice.session_id.as_str()));
    let on_record = app.refusals_on_record("auth.login.failed").await;
    assert_eq!(on_record.get("too_many_sessions"), Some(&2), "every cap refusal is written or counted: {on_record:?}");
    assert_eq!(app.refusals_on_record("role.assume.denied").await.get("too_many_leases"), Some(&3));
    let (s, v) = app.post(&format!("/v1/leases/{}/revoke", leases[0]), Some(&alice.session), json!({})).await;
    assert!(s.is_success(), "{v}");
    let (s, v) = app.post("/v1/creds", Some(&alice.session), creds).await;
    assert_eq!(s, StatusCode::OK, "a revoked lease makes room: {v}");
}

const CAPPED: &str = "[limits]\nsessions_per_person = 2\nleases_per_person = 2\n\
                      [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_on_sqlite() {
    caps_refuse_the_next_session_and_lease(spawn_app_with(Backend::Sqlite, CAPPED).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_on_postgres() {
    caps_refuse_the_next_session_and_lease(spawn_app_with(Backend::Postgres, CAPPED).await).await;
}

/// A flood of identical failed logins from one address: the first of each kind is written,
/// the rest counted; the throttle still answers 429 after the free failures, and
/// `stint audit failures` still counts every one.
async fn failed_logins_are_folded(app: TestApp) {
    let n = 60u64;
    let head = app.audit_head().await;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (s, v) = app.login_raw("nobody", "wrong password", "000000").await;
        *statuses.entry((s.as_u16(), v["error"].as_str().unwrap().to_owned())).or_insert(0u64) += 1;
    }
    // The throttle lets five failures from one address for one name through, and locks with
    // the sixth: the rest are refused before any password work.
    let expected = [((401, "invalid_credentials".to_owned()), 6), ((429, "too_many_attempts".to_owned()), n - 6)];
    assert_eq!(statuses, expected.into_iter().collect(), "the login throttle still works");
    let written = appended(&app, head).await;
    let reasons: Vec<&str> = written.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, ["unknown_user", "throttled"], "one record per kind of failure: {written:?}");

    // The window closes: one summary each, with the count.
    app.clock.advance(60);
    app.state.broker.housekeeping().await.unwrap();
    let written = appended(&app, head).await;
    assert_eq!(written.len(), 4, "{written:?}");
    let summaries: Vec<_> = written.iter().filter(|r| r.event == "refusals.folded").collect();
    let counted = |reason: &str| summaries.iter().find(|r| r.reason == reason).map(|r| r.details["count"].parse::<u64>().unwrap());
    assert_eq!((counted("unknown_user"), counted("throttled")), (Some(5), Some(n - 7)), "every failure is written or counted");
    assert!(summaries.iter().all(|r| r.actor == "127.0.0.1" && r.details["scope"] == "password+totp"), "{summaries:?}");
    let all = app.store.audit_after(0, 10_000).await.unwrap();
    let failures = stint_core::audit::failures_by_reason(&all, stint_core::Timestamp(0));
    assert_eq!(failures.iter().map(|f| f.count).sum::<u64>(), n, "the failures report counts folded ones: {failures:?}");
    assert!(failures.iter().all(|f| f.method == "password+totp"), "{failures:?}");
    assert!(stint_core::audit::verify_chain(&all, app.store.audit_head().await.unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_folded_on_sqlite() {
    failed_logins_are_folded(spawn_app_with(Backend::Sqlite, "").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_folded_on_postgres() {
    failed_logins_are_folded(spawn_app_with(Backend::Postgres, "").await).await;
}

/// A session spinning on a role its person may not have: the first refusal is written, the
/// rest counted in one summary when the window closes.
async fn denied_assumes_are_folded(app: TestApp) {
    let admin = app.admin().await;
    let viewer = app.person(&admin, "vic", &[]).await;
    let head = app.audit_head().await;
    let n = 40u64;
    for _ in 0..n {
        let (s, v) = app.post("/v1/assume", Some(&viewer.session), serde_json::json!({ "role": "admin" })).await;
        assert_eq!((s.as_u16(), v["error"].as_str()), (403, Some("role_not_granted")), "{v}");
    }
    let written = appended(&app, head).await;
    assert_eq!(written.iter().map(|r| (r.event.as_str(), r.reason.as_str())).collect::<Vec<_>>(), [("role.assume.denied", "role_not_granted")], "{written:?}");
    app.clock.advance(60);
    app.state.broker.housekeeping().await.unwrap();
    let written = appended(&app, head).await;
    let summary = written.iter().find(|r| r.event == "refusals.folded").expect("a summary when the window closes");
    assert_eq!((summary.reason.as_str(), summary.details["count"].parse::<u64>().unwrap()), ("role_not_granted", n - 1), "{summary:?}");
    let all = app.store.audit_after(0, 10_000).await.unwrap();
    assert!(stint_core::audit::verify_chain(&all, app.store.audit_head().await.unwrap()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_assumes_are_folded_on_sqlite() {
    denied_assumes_are_folded(spawn_app_with(Backend::Sqlite, "").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_assumes_are_folded_on_postgres() {
    denied_assumes_are_folded(spawn_app_with(Backend::Postgres, "").await).await;
}
