//! End-to-end flows through the real HTTP server, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::Ordering;

both!(
    engineer_day,
    disable_revokes_everything_at_once,
    session_revoke_and_logout,
    audit_chain_covers_every_step,
    a_newer_code_voids_the_older_ones,
    a_bootstrap_lost_in_a_race_is_answered_as_a_reuse,
    an_enrollment_lost_in_a_race_is_answered_as_a_reuse,
);

/// The failure records of `event` after `seq`, as (actor, reason).
async fn failures(app: &TestApp, seq: u64, event: &str) -> Vec<(String, String)> {
    let records = app.store.audit_after(seq, 1000).await.unwrap();
    records.into_iter().filter(|r| r.event == event && r.outcome.as_str() == "failure").map(|r| (r.actor, r.reason)).collect()
}

/// A new reset code voids every older unused one; so does enrolling with the newest.
async fn a_newer_code_voids_the_older_ones(app: TestApp) {
    use stint_core::bearer::{self, BearerKind};
    use stint_core::model::{CodePurpose, OneTimeCode};
    use stint_core::store::{Change, Mutation};

    let admin = app.admin().await;
    let (s, v) = app.post("/v1/users", Some(&admin.session), json!({ "name": "ivy" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let first = v["enrollment_code"].as_str().unwrap().to_owned();
    let seq = app.audit_head().await;
    let (s, v) = app.post("/v1/users/ivy/enrollment", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let second = v["enrollment_code"].as_str().unwrap().to_owned();
    let enroll = |code: String| app.post("/v1/enroll", None, json!({ "code": code, "password": PASSWORD }));
    let refused = (StatusCode::UNAUTHORIZED, "invalid_enrollment_code");
    let (s, v) = enroll(first.clone()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), refused, "the older code is void once a newer one is out: {v}");

    // A code still outstanding beside the newest (issued by an earlier version, which voided
    // nothing): enrolling with the newest voids it.
    let ivy = app.store.user_by_name(&stint_core::ids::Username::parse("ivy").unwrap()).await.unwrap().unwrap();
    let left = bearer::mint(BearerKind::Enrollment, &mut rand_core::OsRng);
    let expires_at = stint_core::Timestamp(stint_core::Clock::now(&app.clock).0 + 3600);
    let row = OneTimeCode {
        lookup: left.lookup,
        secret_hash: left.hash.to_vec(),
        purpose: CodePurpose::Enrollment,
        user_id: Some(ivy.id),
        expires_at,
        used_at: None,
    };
    app.store.apply(Change::default().with(Mutation::InsertCode(row))).await.unwrap();
    let secret = app.enroll(&second).await;
    let (s, v) = enroll(left.value.expose().to_owned()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), refused, "an older code after enrollment with a newer one: {v}");
    let (s, v) = enroll(first).await;
    assert_eq!((s, v["error"].as_str().unwrap()), refused, "{v}");
    app.login("ivy", &secret).await;
    let reasons: Vec<String> = failures(&app, seq, "user.enrolled").await.into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons, ["code_expired"; 3]);
}

/// Twelve bootstraps with one token at once: one creates the administrator; every other
/// gets the answer and the audit record a later reuse gets.
async fn a_bootstrap_lost_in_a_race_is_answered_as_a_reuse(app: TestApp) {
    let answers =
        common::at_once(12, |i| app.http.post(app.url("/v1/bootstrap")).json(&json!({ "token": app.bootstrap_token, "username": format!("root{i}") }))).await;
    let reuse = app.post("/v1/bootstrap", None, json!({ "token": app.bootstrap_token, "username": "late" })).await;
    assert_eq!((reuse.0, reuse.1["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_bootstrap_token")));
    let won = common::one_winner(answers, &reuse);
    assert_eq!(app.store.users().await.unwrap().len(), 1, "one administrator: {won}");
    let refused = failures(&app, 0, "bootstrap.used").await;
    assert_eq!(refused, vec![("127.0.0.1".to_owned(), "code_used".to_owned()); 12], "eleven losers and the later reuse");
}

/// Eight enrollments with one code at once: one sets the credentials; every other gets the
/// answer and the audit record a later reuse gets.
async fn an_enrollment_lost_in_a_race_is_answered_as_a_reuse(app: TestApp) {
    let admin = app.admin().await;
    let (s, v) = app.post("/v1/users", Some(&admin.session), json!({ "name": "ivy" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let code = v["enrollment_code"].as_str().unwrap().to_owned();
    let seq = app.audit_head().await;
    let answers = common::at_once(8, |_| app.http.post(app.url("/v1/enroll")).json(&json!({ "code": code, "password": PASSWORD }))).await;
    let reuse = app.post("/v1/enroll", None, json!({ "code": code, "password": PASSWORD })).await;
    assert_eq!((reuse.0, reuse.1["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_enrollment_code")));
    let won = common::one_winner(answers, &reuse);
    let secret = data_encoding::BASE32_NOPAD.decode(won["totp_secret"].as_str().unwrap().as_bytes()).unwrap();
    app.login("ivy", &secret).await;
    let refused = failures(&app, seq, "user.enrolled").await;
    assert_eq!(refused, vec![("127.0.0.1".to_owned(), "code_used".to_owned()); 8], "seven losers and the later reuse");
}

/// Bootstrap → enroll → login → whoami → assume → verify → introspect.
async fn engineer_day(app: TestApp) {
    let admin = app.admin().await;
    let alice = app.person(&admin, "alice", &["developers"]).await;

    let (s, who) = app.get("/v1/whoami", Some(&alice.session)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(who["username"], "alice");
    let roles: Vec<&str> = who["roles"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["developer", "readonly"], "readonly for all, developer by group; never admin");
    assert_eq!(who["admin"], false);

    let (s, v) = app.assume(&alice, "developer", Some("30m")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["expires_in"], 1800);
    let token = v["token"].as_str().unwrap();

    let intro = app.introspect(token).await;
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["role"], "developer");
    assert_eq!(intro["sub"], who["user_id"]);
    assert_eq!(intro["sid"], alice.session_id);
    assert_eq!(intro["iss"], app.base);
    assert_eq!(intro["exp"].as_i64().unwrap() - intro["iat"].as_i64().unwrap(), 1800);

    let (s, v) = app.assume(&alice, "admin", None).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::FORBIDDEN, "role_not_granted"), "{v}");

    // Tokens expire by design.
    app.clock.advance(1800);
    assert_eq!(app.introspect(token).await["active"], false);
}

/// Disabling a person revokes every session and token they hold, at once.
async fn disable_revokes_everything_at_once(app: TestApp) {
    let admin = app.admin().await;
    let bob = app.person(&admin, "bob", &[]).await;
    let second = app.login("bob", &bob.secret).await;
    let t1 = app.token(&bob, "readonly").await;
    let t2 = app.token(&second, "readonly").await;
    assert_eq!(app.introspect(&t1).await["active"], true);

    let started = std::time::Instant::now();
    let (s, v) = app.post("/v1/users/bob/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let first_refusal = app.introspect(&t1).await;
    let elapsed = started.elapsed();
    assert_eq!(first_refusal["active"], false);
    eprintln!("disable → first refusal: {elapsed:?}");

    assert_eq!(app.introspect(&t2).await["active"], false, "tokens of every session");
    let (s, v) = app.get("/v1/whoami", Some(&bob.session)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "session_revoked"));
    let (s, _) = app.assume(&second, "readonly", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.clock.advance(30);
    let (s, v) = app.login_raw("bob", PASSWORD, &app.totp(&bob.secret)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::FORBIDDEN, "user_disabled"));

    // Enabling does not resurrect old sessions or tokens.
    let (s, _) = app.post("/v1/users/bob/enable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.introspect(&t1).await["active"], false);
    let again = app.login("bob", &bob.secret).await;
    assert_eq!(app.introspect(&app.token(&again, "readonly").await).await["active"], true);
}

async fn session_revoke_and_logout(app: TestApp) {
    let admin = app.admin().await;
    let carol = app.person(&admin, "carol", &[]).await;
    let token = app.token(&carol, "readonly").await;

    let (s, _) = app.post(&format!("/v1/sessions/{}/revoke", carol.session_id), Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.introspect(&token).await["active"], false);

    let carol = app.login("carol", &carol.secret).await;
    let token = app.token(&carol, "readonly").await;
    let (s, _) = app.post("/v1/auth/logout", Some(&carol.session), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.introspect(&token).await["active"], false, "logout revokes on the server");
    let (s, v) = app.get("/v1/whoami", Some(&carol.session)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "session_revoked"));

    // A user may not revoke someone else's session.
    let dave = app.person(&admin, "dave", &[]).await;
    let (s, v) = app.post(&format!("/v1/sessions/{}/revoke", admin.session_id), Some(&dave.session), json!({})).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::FORBIDDEN, "admin_required"));
}

async fn audit_chain_covers_every_step(app: TestApp) {
    let admin = app.admin().await;
    let erin = app.person(&admin, "erin", &[]).await;
    let _ = app.token(&erin, "readonly").await;
    let (s, _) = app.post("/v1/users/erin/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let events: Vec<String> = app.audit_events_after(0).await.into_iter().map(|e| e.0).collect();
    for want in [
        "key.created",
        "config.loaded",
        "bootstrap.issued",
        "bootstrap.used",
        "user.created",
        "user.enrolled",
        "auth.login.succeeded",
        "session.started",
        "credential.issued",
        "user.disabled",
        "session.revoked",
    ] {
        assert!(events.iter().any(|e| e == want), "missing {want} in {events:?}");
    }
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    let head = app.store.audit_head().await.unwrap();
    assert_eq!(stint_core::audit::verify_chain(&records, head).unwrap(), records.len() as u64);
    let issued = records.iter().find(|r| r.event == "credential.issued").unwrap();
    assert_eq!(issued.details["role"], "readonly");
    assert!(issued.details.contains_key("ttl") && issued.subject.starts_with("t_"), "jti and TTL recorded");
}

#[tokio::test]
async fn unknown_user_costs_the_same_password_work() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let before = app.work.verifies.load(Ordering::SeqCst);
    let (s1, v1) = app.login_raw("nobody", "wrong password here", "123456").await;
    let after_unknown = app.work.verifies.load(Ordering::SeqCst);
    let (s2, v2) = app.login_raw(&admin.name, "wrong password here", "123456").await;
    let after_wrong = app.work.verifies.load(Ordering::SeqCst);
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(v1, v2, "same answer for unknown user and wrong password");
    assert_eq!(after_unknown - before, 1, "one argon2 verification for an unknown user");
    assert_eq!(after_wrong - after_unknown, 1, "one argon2 verification for a wrong password");
    let reasons: Vec<String> = app.audit_events_after(0).await.into_iter().filter(|e| e.0 == "auth.login.failed").map(|e| e.2).collect();
    assert_eq!(reasons, ["unknown_user", "bad_password"], "the audit log keeps the real reason");
}

#[tokio::test]
async fn totp_is_mandatory_and_single_use() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    app.clock.advance(30);
    let code = app.totp(&admin.secret);
    let (s, v) = app.login_raw(&admin.name, PASSWORD, "").await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "invalid_credentials"), "no code, no session");
    let (s, _) = app.login_raw(&admin.name, PASSWORD, &code).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.login_raw(&admin.name, PASSWORD, &code).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "totp_replayed"));
    // The previous step's code, still inside the drift window, is also refused: steps only move forward.
    app.clock.advance(30);
    let (s, v) = app.login_raw(&admin.name, PASSWORD, &code).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "totp_replayed"));
}

#[tokio::test]
async fn repeated_failures_are_slowed_per_user_and_per_address() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    for _ in 0..5 {
        let (s, _) = app.login_raw(&admin.name, "wrong password here", "000000").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, v) = app.login_raw(&admin.name, "wrong password here", "000000").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the 6th failure is counted; the lock starts after it: {v}");
    app.clock.advance(30);
    let resp = app
        .http
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": admin.name, "password": PASSWORD, "totp": app.totp(&admin.secret)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "30 s later the 1 s lock has passed");
    // Spraying many user names from one address: the address's larger budget (20) runs out. The
    // login between took back only its own attempt: the six failures before it still count,
    // so logging in between sprays does not reset the address's budget. 6 + 15 = 21: the last
    // of these arms the lockout.
    for i in 0..15 {
        let (s, _) = app.login_raw(&format!("someone-{i}"), "wrong password here", "000000").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i} is within the address budget");
    }
    let resp = app.http.post(app.url("/v1/auth/login")).json(&json!({"username": "yet-another", "password": "x", "totp": "1"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "the address is throttled across user names");
    assert!(resp.headers().contains_key("retry-after"));
    let (_, v) = common::body(resp).await;
    assert_eq!(v["error"], "too_many_attempts");
}

#[tokio::test]
async fn sessions_are_absolute_and_ttls_are_refused_not_capped() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let (s, v) = app.assume(&admin, "admin", Some("2h")).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "ttl_exceeds_role_max"), "{v}");
    // Activity does not extend the session: use it all day, it still ends at 8 h.
    for _ in 0..7 {
        app.clock.advance(3600);
        let (s, _) = app.get("/v1/whoami", Some(&admin.session)).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, v) = app.assume(&admin, "readonly", Some("2h")).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "ttl_exceeds_session"), "{v}");
    let (s, v) = app.assume(&admin, "readonly", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["expires_in"], 3600, "the default TTL stops at the session end: {v}");
    app.clock.advance(3600);
    let (s, v) = app.get("/v1/whoami", Some(&admin.session)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "session_expired"));
}

#[tokio::test]
async fn bootstrap_is_single_use_and_expires() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let (s, v) = app.post("/v1/bootstrap", None, json!({ "token": app.bootstrap_token, "username": "first" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.post("/v1/bootstrap", None, json!({ "token": app.bootstrap_token, "username": "second" })).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "invalid_bootstrap_token"));

    let fresh = common::spawn_app(Backend::Sqlite).await;
    fresh.clock.advance(3600);
    let (s, v) = fresh.post("/v1/bootstrap", None, json!({ "token": fresh.bootstrap_token, "username": "late" })).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "invalid_bootstrap_token"), "valid one hour only");
    let reasons: Vec<String> = fresh.audit_events_after(0).await.into_iter().filter(|e| e.0 == "bootstrap.used").map(|e| e.2).collect();
    assert_eq!(reasons, ["code_expired"]);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_verifiable_until_they_expire() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let old_token = app.token(&admin, "readonly").await;
    let (_, jwks) = app.get("/v1/jwks", None).await;
    let old_kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();

    let (s, v) = app.post("/v1/keys/rotate", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new_kid = v["kid"].as_str().unwrap().to_owned();
    let (_, jwks) = app.get("/v1/jwks", None).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()), "{kids:?}");
    assert_eq!(app.introspect(&old_token).await["active"], true, "old token still verifies");
    let new_token = app.token(&admin, "readonly").await;
    assert_eq!(stint_core::jwt::peek_kid(&new_token).unwrap(), new_kid, "the new key signs from now on");

    // Once every token the old key signed has expired, the key leaves the JWKS.
    app.clock.advance(8 * 3600 + 1);
    app.state.broker.refresh_keys().await.unwrap();
    let (_, jwks) = app.get("/v1/jwks", None).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new_kid.as_str()]);
}

#[tokio::test]
async fn only_admins_administer() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let frank = app.person(&admin, "frank", &["developers"]).await;
    for (path, body) in [("/v1/users", json!({"name": "x"})), ("/v1/users/root/disable", json!({})), ("/v1/keys/rotate", json!({}))] {
        let (s, v) = app.post(path, Some(&frank.session), body).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::FORBIDDEN, "admin_required"), "{path}");
    }
    let (s, v) = app.get("/v1/audit", Some(&frank.session)).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::FORBIDDEN, "admin_required"));
    let (s, v) = app.post("/v1/users", Some(&admin.session), json!({"name": "frank"})).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::CONFLICT, "user_exists"));
    let (s, v) = app.post("/v1/users/root/disable", Some(&admin.session), json!({})).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::CONFLICT, "cannot_disable_self"));
}

#[tokio::test]
async fn discovery_jwks_and_metrics() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let _ = app.token(&admin, "readonly").await;
    let (s, d) = app.get("/.well-known/openid-configuration", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["issuer"], app.base);
    assert_eq!(d["jwks_uri"], format!("{}/v1/jwks", app.base));
    assert_eq!(d["introspection_endpoint"], format!("{}/v1/introspect", app.base));
    let (_, jwks) = app.get("/v1/jwks", None).await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("stint_credentials_issued_total{role=\"readonly\"} 1"), "{text}");
    assert!(text.contains("stint_active_sessions 1"), "{text}");
    assert!(text.contains("stint_issuance_duration_seconds_count 1"), "{text}");
    assert!(text.contains("stint_audit_appends_total"), "{text}");
    let (s, _) = app.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get("/readyz", None).await;
    assert_eq!(s, StatusCode::OK);
}

fn login_request(name: &str, password: &str, totp: &str, addr: &str) -> stint_core::broker::LoginRequest {
    stint_core::broker::LoginRequest {
        username: name.to_owned(),
        password: stint_core::secret::SecretString::new(password.to_owned()),
        totp: stint_core::secret::SecretString::new(totp.to_owned()),
        addr: addr.to_owned(),
    }
}

#[tokio::test]
async fn concurrent_attempts_cannot_outrun_the_throttle() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let attempts = (0..20).map(|_| app.login_raw(&admin.name, "wrong password here", "000000"));
    let statuses: Vec<StatusCode> = futures_join_all(attempts).await.into_iter().map(|(s, _)| s).collect();
    let through = statuses.iter().filter(|s| **s != StatusCode::TOO_MANY_REQUESTS).count();
    assert!(through <= 6, "at most the free attempts plus one get past the throttle at once: {statuses:?}");
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
}

/// Polls every future to completion concurrently (a tiny join_all, to avoid a dependency).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

#[tokio::test]
async fn strangers_cannot_lock_a_user_out_and_known_passwords_cannot_guess_codes_from_many_addresses() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let broker = &app.state.broker;
    // Someone without the password fails from another address, again and again...
    for _ in 0..20 {
        let _ = broker.login(login_request(&admin.name, "not the password", "000000", "198.51.100.7")).await;
    }
    // ...and the user still logs in from their own.
    app.clock.advance(30);
    let (s, v) = app.login_raw(&admin.name, PASSWORD, &app.totp(&admin.secret)).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Someone *with* the password guesses codes, one address per guess: the second factor's
    // own counter stops them after the free attempts.
    let mut codes = Vec::new();
    for i in 0..12 {
        let r = broker.login(login_request(&admin.name, PASSWORD, "000000", &format!("203.0.113.{i}"))).await;
        codes.push(r.err().map(|e| e.code()).unwrap_or("ok"));
    }
    assert!(codes[..5].iter().all(|c| *c == "invalid_credentials"), "{codes:?}");
    assert!(codes[6..].iter().all(|c| *c == "too_many_attempts"), "{codes:?}");
    let reasons: Vec<String> = app.audit_events_after(0).await.into_iter().filter(|e| e.2 == "throttled_second_factor").map(|e| e.2).collect();
    assert!(!reasons.is_empty(), "second-factor throttling is audited");
}

#[tokio::test]
async fn enrollment_can_be_reissued_and_bootstrap_returns_until_someone_enrolls() {
    let app = common::spawn_app(Backend::Sqlite).await;
    // The first administrator is created but never enrolls; their code expires.
    let (s, v) = app.post("/v1/bootstrap", None, json!({ "token": app.bootstrap_token, "username": "root" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.clock.advance(25 * 3600);
    let (s, e) = app.post("/v1/enroll", None, json!({ "code": v["enrollment_code"], "password": PASSWORD })).await;
    assert_eq!((s, e["error"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "invalid_enrollment_code"));
    // A restart offers a new bootstrap token, since nobody has enrolled.
    let again = app.state.broker.start("restart").await.unwrap();
    let token = again.bootstrap_token.expect("a new bootstrap token").expose().to_owned();
    let (s, v) = app.post("/v1/bootstrap", None, json!({ "token": token, "username": "root2" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = app.enroll(v["enrollment_code"].as_str().unwrap()).await;
    let admin = app.login("root2", &secret).await;
    assert!(app.state.broker.start("restart").await.unwrap().bootstrap_token.is_none(), "no bootstrap once someone enrolled");

    // An administrator reissues a code for a user whose code expired.
    let (s, v) = app.post("/v1/users", Some(&admin.session), json!({ "name": "ivy" })).await;
    assert_eq!(s, StatusCode::OK);
    app.clock.advance(25 * 3600);
    let (s, _) = app.post("/v1/enroll", None, json!({ "code": v["enrollment_code"], "password": PASSWORD })).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let admin = app.login("root2", &secret).await;
    let (s, v) = app.post("/v1/users/ivy/enrollment", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ivy_secret = app.enroll(v["enrollment_code"].as_str().unwrap()).await;
    app.login("ivy", &ivy_secret).await;
    assert!(app.audit_events_after(0).await.iter().any(|e| e.0 == "user.enrollment_issued"));
    let (s, v) = app.post("/v1/users/nobody/enrollment", Some(&admin.session), json!({})).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (StatusCode::NOT_FOUND, "unknown_user"));
}

/// A team behind one office NAT: several people log in at the same moment from one address.
#[tokio::test]
async fn an_office_behind_one_address_logs_in_at_once() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let mut people = Vec::new();
    for i in 0..8 {
        let name = format!("colleague-{i}");
        let (s, v) = app.post("/v1/users", Some(&admin.session), json!({ "name": name })).await;
        assert_eq!(s, StatusCode::OK);
        people.push((name, app.enroll(v["enrollment_code"].as_str().unwrap()).await));
    }
    app.clock.advance(30);
    let codes: Vec<(String, String)> = people.iter().map(|(name, secret)| (name.clone(), app.totp(secret))).collect();
    let logins = codes.iter().map(|(name, code)| app.login_raw(name, PASSWORD, code));
    let statuses: Vec<StatusCode> = futures_join_all(logins).await.into_iter().map(|(s, _)| s).collect();
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
}
