//! Workloads (services) end to end over HTTP: an administrator adds one, its agent enrolls a
//! key with a one-time join token or a platform token, then asks for credentials with
//! assertions that key signs; disabling the workload ends everything it holds. The agent's
//! side is played here by the same functions `stint agent` uses
//! (`stint_core::workload::sign_assertion`); `crates/stint-cli/tests/agent.rs` runs the agent
//! itself with the real AWS SDKs.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_core::crypto::SigningKey;
use stint_core::ids::WorkloadName;
use stint_core::workload::{encode_public_key, sign_assertion};
use stint_core::Clock;
use stint_testkit::aws::Moto;
use stint_testkit::github::{GithubIssuer, Run};

const ROLES: &str = "[roles.api-service]\nmax_ttl = \"4h\"\nservice_ttl = \"1h\"\n";

/// An agent: its key, and the workload it enrolled for.
struct Agent {
    key: SigningKey,
    workload: WorkloadName,
}

impl Agent {
    fn new(workload: &str) -> Agent {
        Agent { key: SigningKey::generate(&mut rand_core::OsRng), workload: WorkloadName::parse(workload).unwrap() }
    }
    fn public_key(&self) -> String {
        encode_public_key(&self.key.public())
    }
    /// A fresh assertion for `app`, at the server's time.
    async fn assertion(&self, app: &TestApp) -> String {
        let (_, d) = app.get("/.well-known/openid-configuration", None).await;
        sign_assertion(&self.key, &self.workload, d["issuer"].as_str().unwrap(), app.clock.now(), &mut rand_core::OsRng).expose().to_owned()
    }
    async fn join(&self, app: &TestApp, token: &str) -> (StatusCode, Value) {
        app.post("/v1/workload/join", None, json!({ "join_token": token, "public_key": self.public_key() })).await
    }
    async fn creds(&self, app: &TestApp, body: Value) -> (StatusCode, Value) {
        let mut body = body;
        body["assertion"] = json!(self.assertion(app).await);
        app.post("/v1/workload/creds", None, body).await
    }
}

async fn join_token(app: &TestApp, admin: &Person, name: &str) -> String {
    let (s, t) = app.post(&format!("/v1/workloads/{name}/join-tokens"), Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t["join_token"].as_str().unwrap().to_owned()
}

async fn add_api(app: &TestApp, admin: &Person, platform: Option<Value>) {
    let mut body = json!({ "name": "api", "roles": ["api-service"] });
    if let Some(p) = platform {
        body["platform"] = p;
    }
    let (s, w) = app.post("/v1/workloads", Some(&admin.session), body).await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!((w["name"].as_str(), w["roles"].clone(), w["live_keys"].as_u64()), (Some("api"), json!(["api-service"]), Some(0)));
}

async fn enrolls_with_a_join_token_once_and_gets_role_tokens(backend: Backend) {
    let app = spawn_app_at(backend, ROLES, real_now()).await;
    let admin = app.admin().await;
    add_api(&app, &admin, None).await;
    let (s, e) = app.post("/v1/workloads", Some(&admin.session), json!({ "name": "api", "roles": ["api-service"] })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::CONFLICT, Some("workload_exists")), "{e}");

    let token = join_token(&app, &admin, "api").await;
    assert!(token.starts_with("stint_join_"));
    let agent = Agent::new("api");
    let (s, enrolled) = agent.join(&app, &token).await;
    assert_eq!(s, StatusCode::OK, "{enrolled}");
    assert_eq!((enrolled["workload"].as_str(), enrolled["key_id"].as_str()), (Some("api"), Some(agent.key.kid())));
    // The token enrolls one agent: a second, or the same agent again, is refused.
    for again in [Agent::new("api"), agent_with(&agent)] {
        let (s, e) = again.join(&app, &token).await;
        assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("join_token_used")), "{e}");
    }
    let (_, list) = app.get("/v1/workloads", Some(&admin.session)).await;
    assert_eq!(list["workloads"][0]["live_keys"].as_u64(), Some(1), "{list}");

    // A role token for its role, an hour by default, naming the workload.
    let (s, c) = agent.creds(&app, json!({ "role": "api-service" })).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!((c["kind"].as_str(), c["expires_in"].as_u64()), (Some("token"), Some(3600)), "{c}");
    let shown = app.introspect(c["token"].as_str().unwrap()).await;
    assert_eq!((shown["active"].as_bool(), shown["sub"].as_str(), shown["role"].as_str()), (Some(true), Some("workload:api"), Some("api-service")), "{shown}");
    // Not a role it was given; nor longer than the role allows.
    let (s, e) = agent.creds(&app, json!({ "role": "admin" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("role_not_granted")), "{e}");
    let (s, e) = agent.creds(&app, json!({ "role": "api-service", "ttl": "5h" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("ttl_exceeds_role_max")), "{e}");

    // An assertion is accepted once.
    let assertion = agent.assertion(&app).await;
    let ask = json!({ "assertion": assertion, "role": "api-service" });
    assert_eq!(app.post("/v1/workload/creds", None, ask.clone()).await.0, StatusCode::OK);
    let (s, e) = app.post("/v1/workload/creds", None, ask).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("assertion_replayed")), "{e}");
    // Signed by a key never enrolled, or for another server: refused alike.
    let stranger = Agent::new("api");
    let (s, e) = stranger.creds(&app, json!({ "role": "api-service" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_assertion")), "{e}");
    let elsewhere = sign_assertion(&agent.key, &agent.workload, "https://other.example", app.clock.now(), &mut rand_core::OsRng);
    let (s, e) = app.post("/v1/workload/creds", None, json!({ "assertion": elsewhere.expose(), "role": "api-service" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_assertion")), "{e}");

    // A join token not used in time expires.
    let late = join_token(&app, &admin, "api").await;
    app.clock.advance(3601);
    let (s, e) = Agent::new("api").join(&app, &late).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("join_token_expired")), "{e}");
    let (s, e) = Agent::new("api").join(&app, "stint_join_garbage").await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_join_token")), "{e}");

    // Everything is on the record.
    let events: Vec<String> = app.audit_events_after(0).await.into_iter().map(|(e, _, _)| e).collect();
    for expected in ["workload.created", "workload.join_token_issued", "workload.enrolled", "credential.issued", "workload.denied"] {
        assert!(events.iter().any(|e| e == expected), "{expected} missing from {events:?}");
    }
}

/// The same key as `a`, to enroll it a second time.
fn agent_with(a: &Agent) -> Agent {
    Agent { key: SigningKey::from_seed(a.key.seed().expose()).unwrap(), workload: a.workload.clone() }
}

#[tokio::test]
async fn a_workload_enrolls_with_a_join_token_once_and_gets_role_tokens_sqlite() {
    enrolls_with_a_join_token_once_and_gets_role_tokens(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_workload_enrolls_with_a_join_token_once_and_gets_role_tokens_postgres() {
    enrolls_with_a_join_token_once_and_gets_role_tokens(Backend::Postgres).await;
}

/// An AWS backend on moto for role `api-service`, and the server.
async fn with_aws(extra: &str) -> (TestApp, Moto) {
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "stint-test-secret");
    let moto = Moto::start();
    let arn = moto.create_role("api-service");
    let toml = format!(
        "{ROLES}{extra}\n[[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{m}\"\niam_endpoint = \"{m}\"\ndanger_allow_http_loopback = true\n\
         [backends.aws.roles]\napi-service = \"{arn}\"\n",
        m = moto.url
    );
    (spawn_app_at(Backend::Sqlite, &toml, real_now()).await, moto)
}

/// Disable ends whatever a workload holds: its agent keys, its unused join tokens, its leases
/// (AWS keys, ended on the backend) and its role tokens. Enabling it again restores none.
#[tokio::test]
async fn disabling_a_workload_ends_its_keys_join_tokens_leases_and_tokens() {
    let (app, _moto) = with_aws("").await;
    let admin = app.admin().await;
    add_api(&app, &admin, None).await;
    let agent = Agent::new("api");
    assert_eq!(agent.join(&app, &join_token(&app, &admin, "api").await).await.0, StatusCode::OK);
    let unused = join_token(&app, &admin, "api").await;

    let (s, aws) = agent.creds(&app, json!({ "role": "api-service" })).await;
    assert_eq!(s, StatusCode::OK, "{aws}");
    assert_eq!(aws["kind"].as_str(), Some("aws"));
    assert!(aws["access_key_id"].as_str().is_some_and(|k| !k.is_empty()) && aws["session_token"].as_str().is_some());
    let lease = aws["lease_id"].as_str().unwrap().to_owned();
    let (_, tok) = agent.creds(&app, json!({ "role": "api-service", "backend": "token" })).await;
    let token = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(app.introspect(&token).await["active"], json!(true));

    let (s, d) = app.post("/v1/workloads/api/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!((d["disabled"].as_bool(), d["live_keys"].as_u64(), d["leases_revoked"].as_u64()), (Some(true), Some(0), Some(1)), "{d}");

    // Each thing it held, ended.
    let held = app.store.lease(&stint_core::ids::LeaseId::parse(&lease).unwrap()).await.unwrap().unwrap();
    assert_eq!((held.revoke_reason.as_deref(), held.subject.as_str()), (Some("workload disabled"), "workload:api"), "the AWS lease is revoked: {held:?}");
    assert!(held.ended_at.is_some(), "and ended on AWS by the reaper: {held:?}");
    assert_eq!(app.introspect(&token).await["active"], json!(false), "the role token");
    let (s, e) = agent.creds(&app, json!({ "role": "api-service" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("workload_disabled")), "the agent key: {e}");
    let (s, e) = Agent::new("api").join(&app, &unused).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the unused join token: {e}");
    let (s, e) = app.post("/v1/workloads/api/join-tokens", Some(&admin.session), json!({})).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("workload_disabled")), "no new join token: {e}");

    // Enabled again: the old key stays revoked, and a new enrollment works.
    assert_eq!(app.post("/v1/workloads/api/enable", Some(&admin.session), json!({})).await.0, StatusCode::OK);
    let (s, e) = agent.creds(&app, json!({ "role": "api-service" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("key_revoked")), "{e}");
    assert_eq!(app.introspect(&token).await["active"], json!(false), "the role token stays ended: its key is still revoked");
    let fresh = Agent::new("api");
    assert_eq!(fresh.join(&app, &join_token(&app, &admin, "api").await).await.0, StatusCode::OK);
    let (s, tok) = fresh.creds(&app, json!({ "role": "api-service", "backend": "token" })).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    let new = app.introspect(tok["token"].as_str().unwrap()).await;
    assert_eq!((new["active"].as_bool(), new["sub"].as_str()), (Some(true), Some("workload:api")), "the new agent's token: {new}");
    assert_eq!(app.introspect(&token).await["active"], json!(false), "the old token, beside a live key of the same workload");
}

/// An administrator's revocation of a workload's lease shows in the agent's status check, and
/// renewing it is refused: the agent drops the credential and stops.
#[tokio::test]
async fn a_revoked_lease_shows_in_the_status_and_is_not_renewed() {
    let (app, _moto) = with_aws("[limits]\nleases_per_workload = 2\n").await;
    let admin = app.admin().await;
    add_api(&app, &admin, None).await;
    let agent = Agent::new("api");
    assert_eq!(agent.join(&app, &join_token(&app, &admin, "api").await).await.0, StatusCode::OK);
    let (_, aws) = agent.creds(&app, json!({ "role": "api-service" })).await;
    let lease = aws["lease_id"].as_str().unwrap().to_owned();

    let status = |lease: String| {
        let (app, agent) = (&app, &agent);
        async move { app.post("/v1/workload/status", None, json!({ "assertion": agent.assertion(app).await, "lease_id": lease })).await }
    };
    let (s, st) = status(lease.clone()).await;
    assert_eq!((s, st["live"].as_bool(), st["lease"]["live"].as_bool()), (StatusCode::OK, Some(true), Some(true)), "{st}");
    // Renewing a live lease is fine; it counts towards the workload's cap of two.
    let (s, renewed) = agent.creds(&app, json!({ "role": "api-service", "previous_lease": lease })).await;
    assert_eq!(s, StatusCode::OK, "{renewed}");
    let (s, e) = agent.creds(&app, json!({ "role": "api-service" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::CONFLICT, Some("too_many_leases")), "the workload's lease cap: {e}");

    assert_eq!(app.post(&format!("/v1/leases/{lease}/revoke"), Some(&admin.session), json!({})).await.0, StatusCode::OK);
    let (_, st) = status(lease.clone()).await;
    assert_eq!((st["lease"]["live"].as_bool(), st["lease"]["status"].as_str()), (Some(false), Some("revoked")), "{st}");
    let (s, e) = agent.creds(&app, json!({ "role": "api-service", "previous_lease": lease })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("lease_revoked")), "{e}");
    // Another workload's lease is not this agent's to ask about.
    let (s, e) = app.post("/v1/workload/status", None, json!({ "assertion": agent.assertion(&app).await, "lease_id": "l_aaaaaaaaaaaaaaaaaaaaaaaaaa" })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_lease")), "{e}");
}

fn service_account(gh: &GithubIssuer, sub: &str, aud: &str, now: i64) -> String {
    let run = Run::default();
    let mut claims = gh.claims(&run, aud, now);
    claims["sub"] = json!(sub);
    gh.sign(&claims)
}

/// A platform token (a Kubernetes projected service-account token: `sub`
/// `system:serviceaccount:NS:NAME`, audience `stint`) enrolls an agent for the workload bound
/// to it, once. The cluster is played by the CI tests' OpenID issuer (discovery and JWKS over
/// HTTP), which signs whatever claims the test gives it.
#[tokio::test]
async fn a_platform_token_enrolls_the_workload_it_is_bound_to_once() {
    let gh = GithubIssuer::start().await;
    let toml = format!("{ROLES}[[ci.issuer]]\nname = \"k8s\"\nurl = \"{}\"\ndanger_allow_http_loopback = true\n", gh.url);
    let app = spawn_app_at(Backend::Sqlite, &toml, real_now()).await;
    let admin = app.admin().await;
    let (s, e) = app
        .post(
            "/v1/workloads",
            Some(&admin.session),
            json!({ "name": "x", "roles": ["api-service"], "platform": { "issuer": "nope", "subject": "s", "audience": "stint" } }),
        )
        .await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_issuer")), "{e}");
    add_api(&app, &admin, Some(json!({ "issuer": "k8s", "subject": "system:serviceaccount:prod:api", "audience": "stint" }))).await;
    let now = app.clock.now().0;
    let attest = |token: String, agent: &Agent| {
        let body = json!({ "workload": "api", "token": token, "public_key": agent.public_key() });
        let app = &app;
        async move { app.post("/v1/workload/attest", None, body).await }
    };

    let agent = Agent::new("api");
    let cases = [
        (service_account(&gh, "system:serviceaccount:prod:api", "kubernetes", now), StatusCode::FORBIDDEN, "token_wrong_audience"),
        (service_account(&gh, "system:serviceaccount:prod:billing", "stint", now), StatusCode::FORBIDDEN, "no_matching_platform"),
        (service_account(&gh, "system:serviceaccount:prod:api", "stint", now - 7200), StatusCode::UNAUTHORIZED, "token_expired"),
    ];
    for (token, status, code) in cases {
        let (s, e) = attest(token, &agent).await;
        assert_eq!((s, e["error"].as_str()), (status, Some(code)), "{e}");
    }
    let good = service_account(&gh, "system:serviceaccount:prod:api", "stint", now);
    let (s, enrolled) = attest(good.clone(), &agent).await;
    assert_eq!((s, enrolled["key_id"].as_str()), (StatusCode::OK, Some(agent.key.kid())), "{enrolled}");
    let (s, e) = attest(good, &Agent::new("api")).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_replayed")), "a platform token is accepted once: {e}");
    assert_eq!(agent.creds(&app, json!({ "role": "api-service" })).await.0, StatusCode::OK);
    // A workload without a binding enrolls with join tokens only.
    let (s, _) = app.post("/v1/workloads", Some(&admin.session), json!({ "name": "batch", "roles": ["api-service"] })).await;
    assert_eq!(s, StatusCode::OK);
    let body = json!({ "workload": "batch", "token": service_account(&gh, "system:serviceaccount:prod:api", "stint", now), "public_key": Agent::new("batch").public_key() });
    let (s, e) = app.post("/v1/workload/attest", None, body).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("no_platform_binding")), "{e}");
}

/// What a workload may do is the administrators' to say: a person who is not one cannot add,
/// list, disable or make join tokens.
#[tokio::test]
async fn only_administrators_manage_workloads() {
    let app = spawn_app_at(Backend::Sqlite, ROLES, real_now()).await;
    let admin = app.admin().await;
    let bob = app.person(&admin, "bob", &[]).await;
    add_api(&app, &admin, None).await;
    for (path, body) in [
        ("/v1/workloads", json!({ "name": "x", "roles": ["api-service"] })),
        ("/v1/workloads/api/disable", json!({})),
        ("/v1/workloads/api/join-tokens", json!({})),
    ] {
        let (s, e) = app.post(path, Some(&bob.session), body).await;
        assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{path}: {e}");
    }
    let (s, _) = app.get("/v1/workloads", Some(&bob.session)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = app.post("/v1/workloads", Some(&admin.session), json!({ "name": "y", "roles": ["nope"] })).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_role")), "{e}");
}

/// What one workload may hold is capped (issue 13): enrolled agent keys, as a person's
/// sessions are; its leases are capped in `a_revoked_lease_shows_in_the_status_and_is_not_renewed`.
#[tokio::test]
async fn a_workload_enrolls_at_most_its_cap_of_agent_keys() {
    let app = spawn_app_at(Backend::Sqlite, &format!("{ROLES}[limits]\nkeys_per_workload = 1\n"), real_now()).await;
    let admin = app.admin().await;
    add_api(&app, &admin, None).await;
    assert_eq!(Agent::new("api").join(&app, &join_token(&app, &admin, "api").await).await.0, StatusCode::OK);
    let second = join_token(&app, &admin, "api").await;
    let (s, e) = Agent::new("api").join(&app, &second).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::CONFLICT, Some("too_many_keys")), "{e}");
    let refused = app.refusals_on_record("workload.denied").await;
    assert_eq!(refused.get("too_many_keys"), Some(&1), "the refusal is on the record: {refused:?}");
    // The refused enrollment spent nothing: the token still works once there is room.
    assert_eq!(app.post("/v1/workloads/api/disable", Some(&admin.session), json!({})).await.0, StatusCode::OK);
    assert_eq!(app.post("/v1/workloads/api/enable", Some(&admin.session), json!({})).await.0, StatusCode::OK);
    let (s, e) = Agent::new("api").join(&app, &second).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a disable expires unused join tokens: {e}");
}
