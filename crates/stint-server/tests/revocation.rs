//! Revocation holds at the instant it commits: credentials asked for while a disable, a
//! logout or a grant revocation commits are either recorded before it or refused, never
//! handed out after it; each revoked lease gets exactly one record; and disabling a person
//! ends everything they hold. On SQLite and on PostgreSQL, through the real HTTP server.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{spawn_app_at, Backend, Person, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_core::audit::Record;

/// Approvals for admin, break-glass, and stint's own SSH CA as a backend for every role.
const CONFIG: &str = "[approvals]\nroles = [\"admin\"]\napprovers = \"approvers\"\nmax_duration = \"1h\"\npending_ttl = \"1h\"\n\
                      [break_glass]\ngroup = \"oncall\"\nmax_duration = \"1h\"\n\
                      [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\nreadonly = [\"ro\"]\nadmin = [\"root\"]\n";

/// Callers asking at once, each alternating role tokens and SSH certificates.
const CALLERS: usize = 12;

async fn app(backend: Backend) -> TestApp {
    spawn_app_at(backend, CONFIG, stint_core::Timestamp(1_800_000_000)).await
}

/// An OpenSSH public key line for a fresh Ed25519 key (RFC 8709 wire format).
fn ssh_public_key() -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), key.verifying_key().as_bytes().as_slice()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("ssh-ed25519 {}", data_encoding::BASE64.encode(&blob))
}

/// Every audit record after `seq`, in order.
async fn records_after(app: &TestApp, mut seq: u64) -> Vec<Record> {
    let mut all = Vec::new();
    loop {
        let page = app.store.audit_after(seq, 1000).await.unwrap();
        let Some(last) = page.last() else { return all };
        seq = last.seq;
        all.extend(page);
    }
}

/// Asks for credentials (`role`, as `p`) from [`CALLERS`] tasks until each caller has been
/// refused once after the revocation began; `revoke` runs once at least one
/// credential of each kind was handed out.
async fn race<F, Fut>(app: &Arc<TestApp>, p: &Person, role: &str, revoke: F) -> Raced
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let revoked = Arc::new(AtomicBool::new(false));
    let (tokens, certs, withheld) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut callers = Vec::new();
    for i in 0..CALLERS {
        let (app, session, role) = (app.clone(), p.session.clone(), role.to_owned());
        let (revoked, tokens, certs, withheld) = (revoked.clone(), tokens.clone(), certs.clone(), withheld.clone());
        let key = ssh_public_key();
        callers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            for n in 0.. {
                assert!(Instant::now() < deadline, "a caller was never refused after the revocation");
                let cert = (i + n) % 2 == 0;
                let body = if cert { json!({ "role": role, "backend": "servers", "public_key": key }) } else { json!({ "role": role, "backend": "token" }) };
                let (s, v) = app.post("/v1/creds", Some(&session), body).await;
                match s {
                    StatusCode::OK if cert => certs.fetch_add(1, Ordering::AcqRel),
                    StatusCode::OK => tokens.fetch_add(1, Ordering::AcqRel),
                    // Recorded, then revoked while its backend worked: recorded, never handed out.
                    _ if v["error"] == "lease_revoked" => withheld.fetch_add(1, Ordering::AcqRel),
                    _ if revoked.load(Ordering::Acquire) => return,
                    _ => panic!("refused before the revocation: {s} {v}"),
                };
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokens.load(Ordering::Acquire) == 0 || certs.load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < deadline, "no credential was issued before the revocation");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Set before: a caller refused from here on may have been refused by the revocation.
    revoked.store(true, Ordering::Release);
    revoke().await;
    for c in callers {
        c.await.unwrap();
    }
    Raced { handed_out: tokens.load(Ordering::Acquire) + certs.load(Ordering::Acquire), withheld: withheld.load(Ordering::Acquire) }
}

/// What a race handed out, and what it recorded but withheld (`lease_revoked`).
struct Raced {
    handed_out: usize,
    withheld: usize,
}

impl Raced {
    /// Every credential recorded before the revocation was handed out or withheld.
    fn recorded(&self) -> usize {
        self.handed_out + self.withheld
    }
}

/// No `credential.issued` record matching `covered` comes after the first record that
/// `is_revocation` picks; returns how many were recorded before it.
fn none_after(records: &[Record], is_revocation: impl Fn(&Record) -> bool, covered: impl Fn(&Record) -> bool) -> usize {
    let at = records.iter().position(is_revocation).expect("the revocation was recorded");
    let late: Vec<u64> = records[at..].iter().filter(|r| r.event == "credential.issued" && covered(r)).map(|r| r.seq).collect();
    assert!(late.is_empty(), "{} credential(s) recorded after their revocation (seq {}): seq {late:?}", late.len(), records[at].seq);
    records[..at].iter().filter(|r| r.event == "credential.issued" && covered(r)).count()
}

async fn user_id(app: &TestApp, p: &Person) -> String {
    app.get("/v1/whoami", Some(&p.session)).await.1["user_id"].as_str().unwrap().to_owned()
}

async fn no_credential_follows_a_disable(backend: Backend) {
    let app = Arc::new(app(backend).await);
    let root = app.admin().await;
    for name in ["ann", "ben", "cat"] {
        let p = app.person(&root, name, &[]).await;
        let id = user_id(&app, &p).await;
        let start = app.audit_head().await;
        let raced = race(&app, &p, "readonly", || async {
            let (s, v) = app.post(&format!("/v1/users/{name}/disable"), Some(&root.session), json!({})).await;
            assert_eq!(s, StatusCode::OK, "{v}");
        })
        .await;
        let records = records_after(&app, start).await;
        let before = none_after(&records, |r| r.event == "user.disabled" && r.subject == id, |r| r.actor == id);
        assert_eq!(before, raced.recorded(), "every credential handed out was recorded before the disable");
    }
}

async fn no_credential_follows_a_logout(backend: Backend) {
    let app = Arc::new(app(backend).await);
    let root = app.admin().await;
    let p = app.person(&root, "dan", &[]).await;
    for _ in 0..3 {
        let p = app.login(&p.name, &p.secret).await;
        let start = app.audit_head().await;
        let raced = race(&app, &p, "readonly", || async {
            let (s, v) = app.post("/v1/auth/logout", Some(&p.session), json!({})).await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        })
        .await;
        let records = records_after(&app, start).await;
        let sid = p.session_id.as_str();
        let before = none_after(&records, |r| r.event == "session.ended" && r.subject == sid, |r| r.details.get("session").map(String::as_str) == Some(sid));
        assert_eq!(before, raced.recorded());
    }
}

async fn no_credential_follows_a_grant_revoke(backend: Backend) {
    let app = Arc::new(app(backend).await);
    let root = app.admin().await;
    let eve = app.person(&root, "eve", &[]).await;
    let carol = app.person(&root, "carol", &["approvers"]).await;
    for _ in 0..3 {
        let (s, q) = app.post("/v1/requests", Some(&eve.session), json!({ "role": "admin", "reason": "rotate the database password" })).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        let id = q["id"].as_str().unwrap().to_owned();
        let (s, v) = app.post(&format!("/v1/requests/{id}/approve"), Some(&carol.session), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let start = app.audit_head().await;
        let raced = race(&app, &eve, "admin", || async {
            let (s, v) = app.post(&format!("/v1/grants/{id}/revoke"), Some(&carol.session), json!({ "reason": "done with it" })).await;
            assert_eq!(s, StatusCode::OK, "{v}");
        })
        .await;
        let records = records_after(&app, start).await;
        let before = none_after(&records, |r| r.event == "grant.revoked" && r.subject == id, |r| r.details.get("grant") == Some(&id));
        assert_eq!(before, raced.recorded());
    }
}

/// Eight revocations of one lease at once write one record; a disable racing issuance
/// records exactly the leases it revoked, however many were recorded while it ran.
async fn every_revoked_lease_is_recorded_once(backend: Backend) {
    let app = Arc::new(app(backend).await);
    let root = app.admin().await;
    let fay = app.person(&root, "fay", &[]).await;
    let (s, v) = app.post("/v1/creds", Some(&fay.session), json!({ "role": "readonly", "backend": "servers", "public_key": ssh_public_key() })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let lease = v["lease_id"].as_str().unwrap().to_owned();
    let start = app.audit_head().await;
    let revokes = (0..8).map(|_| {
        let (app, session, lease) = (app.clone(), fay.session.clone(), lease.clone());
        tokio::spawn(async move { app.post(&format!("/v1/leases/{lease}/revoke"), Some(&session), json!({})).await.0 })
    });
    for r in revokes {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    let records = records_after(&app, start).await;
    assert_eq!(records.iter().filter(|r| r.event == "lease.revoked" && r.subject == lease).count(), 1, "{records:?}");

    // Leases recorded while the disable ran are revoked by it and recorded by it, once each.
    let id = user_id(&app, &fay).await;
    let start = app.audit_head().await;
    race(&app, &fay, "readonly", || async {
        let (s, v) = app.post("/v1/users/fay/disable", Some(&root.session), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    })
    .await;
    let records = records_after(&app, start).await;
    let issued: Vec<&str> = records
        .iter()
        .filter(|r| r.event == "credential.issued" && r.details.get("backend").map(String::as_str) == Some("servers"))
        .map(|r| r.subject.as_str())
        .collect();
    let mut recorded: Vec<&str> = records
        .iter()
        .filter(|r| r.event == "lease.revoked" && r.details.get("holder").map(String::as_str) == Some("fay"))
        .map(|r| r.subject.as_str())
        .collect();
    let mut expected = issued.clone();
    expected.sort_unstable();
    recorded.sort_unstable();
    assert!(!expected.is_empty());
    assert_eq!(recorded, expected, "one lease.revoked per lease the disable revoked");
    let leases = app.store.leases(Some(&stint_core::ids::UserId::parse(&id).unwrap()), true, 10_000).await.unwrap();
    assert!(leases.iter().all(|l| l.revoked_at.is_some()), "every lease of fay is revoked");
}

/// Everything a person can hold ends when they are disabled, and re-enabling brings none
/// of it back: session, role token, lease, approved grant, break-glass grant, pending
/// request, unused reset code. (SSO logins not yet redeemed are covered in `sso.rs`; leases
/// on PostgreSQL and AWS in `postgres_backend.rs` and `aws_backend.rs`.)
async fn disable_ends_everything_a_person_holds(backend: Backend) {
    let app = app(backend).await;
    let root = app.admin().await;
    let carol = app.person(&root, "carol", &["approvers"]).await;
    let gil = app.person(&root, "gil", &["oncall"]).await;
    let token = app.token(&gil, "readonly").await;
    let (s, cert) = app.post("/v1/creds", Some(&gil.session), json!({ "role": "readonly", "backend": "servers", "public_key": ssh_public_key() })).await;
    assert_eq!(s, StatusCode::OK, "{cert}");
    let (_, approved) = app.post("/v1/requests", Some(&gil.session), json!({ "role": "admin", "reason": "migrate the billing tables" })).await;
    let approved = approved["id"].as_str().unwrap().to_owned();
    let (s, v) = app.post(&format!("/v1/requests/{approved}/approve"), Some(&carol.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, glass) = app.post("/v1/break-glass", Some(&gil.session), json!({ "reason": "the database is down" })).await;
    assert_eq!(s, StatusCode::OK, "{glass}");
    let glass = glass["id"].as_str().unwrap().to_owned();
    let (_, pending) = app.post("/v1/requests", Some(&gil.session), json!({ "role": "admin", "reason": "one more migration later" })).await;
    let pending = pending["id"].as_str().unwrap().to_owned();
    let (s, reset) = app.post("/v1/users/gil/enrollment", Some(&root.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{reset}");
    let admin_token = app.token(&gil, "admin").await;

    let (s, v) = app.post("/v1/users/gil/disable", Some(&root.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["leases_revoked"], 1, "{v}");

    // Held by the session: the session itself, and every role token.
    let (s, v) = app.get("/v1/whoami", Some(&gil.session)).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_revoked")));
    for t in [&token, &admin_token] {
        assert_eq!(app.introspect(t).await["active"], false);
    }
    // The lease, the grants and the pending request.
    let lease = app.store.lease(&stint_core::ids::LeaseId::parse(cert["lease_id"].as_str().unwrap()).unwrap()).await.unwrap().unwrap();
    assert_eq!(lease.revoke_reason.as_deref(), Some("user disabled"));
    for (id, want) in [(&approved, "revoked"), (&glass, "revoked"), (&pending, "denied")] {
        let q = app.store.request(id).await.unwrap().unwrap();
        assert_eq!((q.status.as_str(), q.decision_reason.as_deref()), (want, Some("user disabled")), "{id}");
    }
    // Nobody may approve what the disable ended.
    let (s, v) = app.post(&format!("/v1/requests/{pending}/approve"), Some(&carol.session), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("request_not_pending")), "{v}");
    // The reset code.
    let (s, v) = app.post("/v1/enroll", None, json!({ "code": reset["enrollment_code"], "password": common::PASSWORD })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // Re-enabled, gil logs in again and holds nothing of before.
    let (s, _) = app.post("/v1/users/gil/enable", Some(&root.session), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let again = app.login("gil", &gil.secret).await;
    let (s, v) = app.assume(&again, "admin", None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("role_not_granted")), "{v}");
    for t in [&token, &admin_token] {
        assert_eq!(app.introspect(t).await["active"], false);
    }
    let events: Vec<(String, String)> = records_after(&app, 0).await.into_iter().map(|r| (r.event, r.reason)).collect();
    for want in [("grant.revoked", "user disabled"), ("request.denied", "user disabled"), ("lease.revoked", "user disabled")] {
        assert!(events.iter().any(|(e, r)| (e.as_str(), r.as_str()) == want), "{want:?} recorded");
    }

    // An administrator also holds the SCIM tokens they made: whoever kept a copy could
    // provision people, or enable themselves again. A disable revokes those, not another's.
    let ann = app.person(&root, "ann", &["admins"]).await;
    let (s, made) = app.post("/v1/scim/tokens", Some(&ann.session), json!({ "name": "okta" })).await;
    assert_eq!(s, StatusCode::OK, "{made}");
    let (_, other) = app.post("/v1/scim/tokens", Some(&root.session), json!({ "name": "entra" })).await;
    // And the join tokens they made, unused: each would enroll an agent of the workload.
    let (s, v) = app.post("/v1/workloads", Some(&root.session), json!({ "name": "api", "roles": ["readonly"] })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let join_token = |p: &Person| {
        let (app, session) = (&app, p.session.clone());
        async move { app.post("/v1/workloads/api/join-tokens", Some(&session), json!({})).await.1["join_token"].as_str().unwrap().to_owned() }
    };
    let (anns, roots) = (join_token(&ann).await, join_token(&root).await);
    let join = |token: String| {
        let app = &app;
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let public_key = data_encoding::BASE64URL_NOPAD.encode(key.verifying_key().as_bytes());
        async move { app.post("/v1/workload/join", None, json!({ "join_token": token, "public_key": public_key })).await }
    };
    let scim_users = |token: String| {
        let app = &app;
        async move { app.http.get(app.url("/scim/v2/Users")).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(scim_users(made["token"].as_str().unwrap().to_owned()).await.status(), StatusCode::OK);
    let (s, v) = app.post("/v1/users/ann/disable", Some(&root.session), json!({})).await;
    assert_eq!((s, &v["scim_tokens_revoked"]), (StatusCode::OK, &json!(["okta"])), "{v}");
    let refused = scim_users(made["token"].as_str().unwrap().to_owned()).await;
    assert_eq!((refused.status(), refused.headers().get("stint-error").and_then(|h| h.to_str().ok())), (StatusCode::UNAUTHORIZED, Some("scim_token_revoked")));
    assert_eq!(scim_users(other["token"].as_str().unwrap().to_owned()).await.status(), StatusCode::OK, "another administrator's token stays");
    let (s, e) = join(anns).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("join_token_expired")), "{e}");
    assert_eq!(join(roots).await.0, StatusCode::OK, "another administrator's join token stays");
    let revoked = records_after(&app, 0).await.into_iter().find(|r| r.event == "scim.token_revoked").expect("on the record");
    assert_eq!((revoked.subject.as_str(), revoked.reason.as_str()), ("okta", "user disabled"));
    // Nor can a disabled administrator's session make another.
    let (s, v) = app.post("/v1/scim/tokens", Some(&ann.session), json!({ "name": "okta-2" })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(app.post("/v1/workloads/api/join-tokens", Some(&ann.session), json!({})).await.0, StatusCode::UNAUTHORIZED);
}

/// An approver cannot approve a disabled person's request, pending from before, nor after
/// the person is enabled again.
async fn a_disabled_persons_request_cannot_be_approved(backend: Backend) {
    let app = app(backend).await;
    let root = app.admin().await;
    let carol = app.person(&root, "carol", &["approvers"]).await;
    let hal = app.person(&root, "hal", &[]).await;
    let (_, q) = app.post("/v1/requests", Some(&hal.session), json!({ "role": "admin", "reason": "rebuild the search index" })).await;
    let id = q["id"].as_str().unwrap().to_owned();
    let (s, _) = app.post("/v1/users/hal/disable", Some(&root.session), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v): (StatusCode, Value) = app.post(&format!("/v1/requests/{id}/approve"), Some(&carol.session), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("request_not_pending")), "{v}");
    let (s, _) = app.post("/v1/users/hal/enable", Some(&root.session), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.post(&format!("/v1/requests/{id}/approve"), Some(&carol.session), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("request_not_pending")), "{v}");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await;
            })*
        }
    };
}

on_both!(
    no_credential_follows_a_disable,
    no_credential_follows_a_logout,
    no_credential_follows_a_grant_revoke,
    every_revoked_lease_is_recorded_once,
    disable_ends_everything_a_person_holds,
    a_disabled_persons_request_cannot_be_approved,
);

/// Replica B stalls inside a transaction holding the audit chain's head and ivy's row, as a
/// replica paused mid-request (SIGSTOP, a lost network) does; its connection is configured
/// as stint's own are. PostgreSQL ends B's transaction after `idle_in_transaction_timeout`,
/// so a disable on replica A commits within that bound and replica C enforces it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_replica_holds_up_a_disable_only_until_its_bound() {
    let a = common::spawn_app(Backend::Postgres).await;
    let root = a.admin().await;
    let ivy = a.person(&root, "ivy", &[]).await;
    let token = a.token(&ivy, "readonly").await;
    let c = a.replica().await;
    assert_eq!(c.introspect(&token).await["active"], true);

    let b = stalled_transaction(&a, "SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE; SELECT 1 FROM users WHERE name = 'ivy' FOR SHARE").await;
    let started = Instant::now();
    let disable = a.http.post(a.url("/v1/users/ivy/disable")).bearer_auth(&root.session).json(&json!({})).send();
    let resp = tokio::time::timeout(Duration::from_secs(15), disable).await.expect("the disable waited on the stalled replica past every bound").unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    eprintln!("disable committed {:?} after replica B stalled", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.is_closed() {
        assert!(Instant::now() < deadline, "PostgreSQL ended the stalled transaction");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Enforced on the other replica from its next request on.
    assert_eq!(c.introspect(&token).await["active"], false);
    let (s, v) = c.get("/v1/whoami", Some(&ivy.session)).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_revoked")));
}

/// A replica busy inside a slow statement while holding the chain's head is not idle, so it
/// keeps its lock until `statement_timeout`: a write on another replica that waits past
/// `lock_timeout` fails closed with 503 `store_busy`, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_that_cannot_get_its_locks_in_time_fails_closed() {
    let a = common::spawn_app(Backend::Postgres).await;
    let root = a.admin().await;
    let _jo = a.person(&root, "jo", &[]).await;
    let b = stalled_transaction(&a, "SELECT 1 FROM users FOR UPDATE").await;
    // Not idle: the server works for it, so only statement_timeout ends its transaction.
    let busy = tokio::spawn(async move { b.batch_execute("SELECT pg_sleep(30)").await.map(drop) });
    let (s, v) = a.post("/v1/users/jo/disable", Some(&root.session), json!({})).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("store_busy")), "{v}");
    assert!(busy.await.unwrap().is_err(), "statement_timeout ended the slow statement");
    let jo = a.store.user_by_name(&stint_core::ids::Username::parse("jo").unwrap()).await.unwrap().unwrap();
    assert!(!jo.disabled, "the refused disable changed nothing");
}

/// A connection configured as the store's own, left inside a transaction after `sql`.
async fn stalled_transaction(app: &TestApp, sql: &str) -> tokio_postgres::Client {
    let cfg = stint_store::session_config(&common::pg_url(), app.pg_schema(), stint_store::Timeouts::default()).unwrap();
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
    client
}
