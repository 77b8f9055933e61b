//! SSO against a real OpenID Provider (panva's `oidc-provider`, run by `tests/oidc/provider.mjs`).
//!
//! The browser is played with plain HTTP (`stint_testkit::browse`): it follows redirects,
//! keeps cookies and posts the provider's login form. The CLI's loopback listener is never
//! contacted: the stand-in stops when the browser is sent there and hands over what it
//! carried, as the listener would. The server's clock starts at the real time (the
//! provider signs real timestamps) and is moved by the test, never slept on.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{body, real_now, spawn_app_at, spawn_app_pausing, Backend, PausingStore, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_core::oidc;
use stint_testkit::{browse, free_port, Idp, Landing};

/// Where the CLI would listen; nothing does, the browser stand-in stops before it.
const LOOPBACK: &str = "http://127.0.0.1:9/callback";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

struct Sso {
    app: TestApp,
    /// The server's store, to hold a request between a read and its write.
    store: Arc<PausingStore>,
    idp: Option<Idp>,
    idp_port: u16,
}

/// A server whose provider `corp` is the test provider; `extra` is added to its section.
async fn sso(backend: Backend, extra: &str) -> Sso {
    sso_with(backend, extra, "").await
}

/// As [`sso`], with `top` (other tables of the configuration) after the provider's.
async fn sso_with(backend: Backend, extra: &str, top: &str) -> Sso {
    let idp_port = free_port();
    let scopes = if extra.contains("scopes") { "" } else { "scopes = [\"openid\", \"email\", \"groups\"]\n" };
    let toml = format!(
        "[[identity.oidc]]\nname = \"corp\"\nissuer = \"http://127.0.0.1:{idp_port}\"\nclient_id = \"stint\"\n\
         danger_client_secret = \"stint-test-secret\"\ndanger_allow_http_loopback = true\njwks_min_refetch = \"0s\"\n\
         {scopes}provider_session = \"1h\"\n{extra}\n\
         [identity.oidc.roles]\ndevelopers = [\"developer\"]\n{top}"
    );
    let (app, store) = spawn_app_pausing(backend, &toml, real_now()).await;
    let idp = Idp::start(idp_port, &app.url("/v1/sso/callback"), "k1");
    Sso { app, store, idp: Some(idp), idp_port }
}

fn pkce() -> (String, String) {
    let v = oidc::pkce_verifier(&mut rand_core::OsRng);
    (v.expose().to_owned(), oidc::pkce_challenge(&v))
}

impl Sso {
    /// `POST /v1/sso/begin` as the CLI does; returns the provider URL and the PKCE verifier.
    async fn begin(&self) -> (String, String) {
        let (verifier, challenge) = pkce();
        let (s, v) = self.app.post("/v1/sso/begin", None, json!({ "redirect_uri": LOOPBACK, "code_challenge": challenge })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (v["authorization_url"].as_str().unwrap().to_owned(), verifier)
    }

    /// A whole browser login as `user`; returns where the browser was sent and the verifier.
    async fn browser(&self, user: &str, password: &str) -> (Landing, String) {
        let (url, verifier) = self.begin().await;
        (browse(&url, LOOPBACK, Some((user, password))).await, verifier)
    }

    async fn redeem(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        let form = [("grant_type", "authorization_code"), ("code", code), ("code_verifier", verifier)];
        body(self.app.http.post(self.app.url("/v1/sso/token")).form(&form).send().await.unwrap()).await
    }

    /// Logs `user` in through the browser flow; returns the session response.
    async fn login(&self, user: &str, password: &str) -> Value {
        let (landing, verifier) = self.browser(user, password).await;
        let code = landing.query.get("code").unwrap_or_else(|| panic!("no login code: {:?}", landing.query));
        let (s, v) = self.redeem(code, &verifier).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Follows the browser to stint's callback and stops there, to act on it by hand.
    async fn to_callback(&self, url: &str, login: Option<(&str, &str)>) -> String {
        browse(url, &self.app.url("/v1/sso/callback"), login).await.url
    }

    /// The browser's request to stint's callback (or any stint page), without following.
    async fn visit(&self, url: &str) -> reqwest::Response {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        http.get(url).send().await.unwrap()
    }

    async fn device_authorize(&self) -> Value {
        let resp = self.app.http.post(self.app.url("/v1/sso/device/authorize")).form(&[("provider", "corp")]).send().await.unwrap();
        let (s, v) = body(resp).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn poll(&self, device_code: &str) -> (StatusCode, Value) {
        let form = [("grant_type", DEVICE_GRANT), ("device_code", device_code)];
        body(self.app.http.post(self.app.url("/v1/sso/token")).form(&form).send().await.unwrap()).await
    }

    /// Confirms the user code on stint's verification page; returns where it sends the browser.
    async fn verify_user_code(&self, user_code: &str) -> reqwest::Response {
        self.device_form(&[("user_code", user_code), ("confirm", "yes")], None).await
    }

    /// Posts the verification page's form, from a page at `origin` when given.
    async fn device_form(&self, form: &[(&str, &str)], origin: Option<&str>) -> reqwest::Response {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut req = http.post(self.app.url("/v1/sso/device")).form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }

    async fn events(&self) -> Vec<stint_core::audit::Record> {
        self.app.store.audit_after(0, 10_000).await.unwrap()
    }
}

fn location(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "expected a redirect");
    resp.headers()["location"].to_str().unwrap().to_owned()
}

fn loopback_query(location: &str) -> std::collections::BTreeMap<String, String> {
    assert!(location.starts_with(LOOPBACK), "{location}");
    reqwest::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

async fn browser_login_creates_the_user_and_a_session(t: Sso) {
    let before = real_now();
    let (landing, verifier) = t.browser("alice", "alice-password").await;
    let code = landing.query["code"].clone();
    assert!(code.starts_with("stint_sso_"), "{code}");

    // Only the CLI that began holds the verifier; a wrong one does not redeem the code.
    let (s, v) = t.redeem(&code, &pkce().0).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    let (s, v) = t.redeem(&code, &verifier).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["username"], "alice", "named after the email's local part");
    let (s, again) = t.redeem(&code, &verifier).await;
    assert_eq!((s, again["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "a login code is single-use: {again}");

    let session = v["session_token"].as_str().unwrap().to_owned();
    let (s, me) = t.app.get("/v1/whoami", Some(&session)).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    // The session ends with the provider's (auth_time + provider_session = 1h), not after 8h.
    let expires = me["session_expires_at"].as_i64().unwrap();
    assert!(expires <= before.0 + 3600 + 5 && expires >= before.0 + 3600 - 120, "expires {expires}, logged in at {}", before.0);

    // The provider's group `developers` maps to the developer role.
    let roles: Vec<&str> = me["roles"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert!(roles.contains(&"developer") && roles.contains(&"readonly") && !roles.contains(&"admin"), "{me}");
    let (s, tok) = t.app.post("/v1/assume", Some(&session), json!({ "role": "developer", "ttl": "30m" })).await;
    assert_eq!(s, StatusCode::OK, "{tok}");

    // A second login is the same person, not a new user.
    let v2 = t.login("alice", "alice-password").await;
    assert_eq!(v2["username"], "alice");
    assert_eq!(t.app.store.users().await.unwrap().len(), 1);

    let records = t.events().await;
    let created: Vec<_> = records.iter().filter(|r| r.event == "user.created").collect();
    assert_eq!(created.len(), 1);
    assert_eq!((created[0].actor.as_str(), created[0].details["idp_subject"].as_str()), ("sso:corp", "alice"));
    let ok: Vec<_> = records.iter().filter(|r| r.event == "auth.login.succeeded").collect();
    assert_eq!(ok.len(), 2);
    for r in ok {
        assert_eq!(r.details["method"], "sso");
        assert_eq!(r.details["provider"], "corp");
        assert_eq!(r.details["idp_subject"], "alice");
        assert_eq!(r.details["mfa"], "amr:otp");
    }
    let refused: Vec<_> = records.iter().filter(|r| r.event == "auth.login.failed").map(|r| r.reason.as_str()).collect();
    assert_eq!(refused, ["pkce_mismatch", "code_used"]);
}

async fn no_mfa_or_a_foreign_domain_is_refused_with_the_reason(t: Sso) {
    let (landing, _) = t.browser("bob", "bob-password").await;
    assert_eq!(landing.query["error"], "mfa_required", "{:?}", landing.query);
    assert!(landing.query["error_description"].contains("multi-factor"), "{:?}", landing.query);
    assert!(!landing.query.contains_key("code"));

    let (landing, _) = t.browser("carol", "carol-password").await;
    assert_eq!(landing.query["error"], "email_domain_not_allowed", "{:?}", landing.query);

    assert_eq!(t.app.store.active_sessions(real_now()).await.unwrap(), 0);
    let records = t.events().await;
    let refused: Vec<_> = records.iter().filter(|r| r.event == "auth.login.failed").collect();
    assert_eq!(refused.len(), 2);
    assert_eq!((refused[0].reason.as_str(), refused[0].details["idp_subject"].as_str()), ("mfa_required", "bob"));
    assert_eq!((refused[1].reason.as_str(), refused[1].details["idp_subject"].as_str()), ("email_domain_not_allowed", "carol"));
    assert!(records.iter().all(|r| r.event != "user.created"), "refused before any user is created");
}

async fn totp_step_up_for_a_provider_without_mfa(t: Sso) {
    let admin = t.app.admin().await;
    // bob has no stint TOTP yet: refused, but now exists so an administrator can enroll him.
    let (landing, _) = t.browser("bob", "bob-password").await;
    assert_eq!(landing.query["error"], "totp_enrollment_required", "{:?}", landing.query);
    let (s, v) = t.app.post("/v1/users/bob/enrollment", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = t.app.enroll(v["enrollment_code"].as_str().unwrap()).await;

    let (url, verifier) = t.begin().await;
    let callback = t.to_callback(&url, Some(("bob", "bob-password"))).await;
    let page = t.visit(&callback).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let state = html.split("name=\"state\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a step-up form");

    let step_up = |totp: String| {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let url = t.app.url("/v1/sso/step-up");
        let form = [("state", state.to_owned()), ("totp", totp)];
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    let wrong = step_up("000000".into()).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "a wrong code shows the form again");
    t.app.clock.advance(30);
    let done = step_up(t.app.totp(&secret)).await;
    let q = loopback_query(&location(&done));
    let (s, v) = t.redeem(&q["code"], &verifier).await;
    assert_eq!((s, v["username"].as_str()), (StatusCode::OK, Some("bob")), "{v}");
    let ok = t.events().await.into_iter().filter(|r| r.event == "auth.login.succeeded" && r.details["method"] == "sso").collect::<Vec<_>>();
    assert_eq!(ok[0].details["mfa"], "stint_totp");
}

async fn state_and_nonce_mismatches_are_refused(t: Sso) {
    // A state stint never issued.
    let forged = t.visit(&t.app.url("/v1/sso/callback?state=stint_state_AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code=x")).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.text().await.unwrap().contains("sso_state_mismatch"));

    // A real state with its secret half changed.
    let (url, _) = t.begin().await;
    let callback = t.to_callback(&url, Some(("alice", "alice-password"))).await;
    let cb = reqwest::Url::parse(&callback).unwrap();
    let q: std::collections::BTreeMap<String, String> = cb.query_pairs().into_owned().collect();
    let (lookup, _) = q["state"].split_once('.').unwrap();
    let tampered = t.app.url(&format!("/v1/sso/callback?state={lookup}.{}&code={}", "B".repeat(43), q["code"]));
    assert_eq!(t.visit(&tampered).await.status(), StatusCode::BAD_REQUEST);
    // The real callback still works: the tampered one changed nothing.
    let q = loopback_query(&location(&t.visit(&callback).await));
    assert!(q.contains_key("code"), "{q:?}");

    // A token minted for another login's nonce: begin two logins, send the first one's
    // request with the second one's nonce.
    let (first, _) = t.begin().await;
    let (second, _) = t.begin().await;
    let nonce_of = |u: &str| reqwest::Url::parse(u).unwrap().query_pairs().find(|(k, _)| k == "nonce").unwrap().1.into_owned();
    let mut swapped = reqwest::Url::parse(&first).unwrap();
    let pairs: Vec<(String, String)> =
        swapped.query_pairs().map(|(k, v)| if k == "nonce" { (k.into_owned(), nonce_of(&second)) } else { (k.into_owned(), v.into_owned()) }).collect();
    swapped.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = t.to_callback(swapped.as_str(), Some(("alice", "alice-password"))).await;
    let q = loopback_query(&location(&t.visit(&callback).await));
    assert_eq!(q["error"], "id_token_nonce_mismatch", "{q:?}");
    // The second state mismatch, identical to the first, is counted in its folding window.
    let reasons: Vec<String> = t.events().await.into_iter().filter(|r| r.event == "auth.login.failed").map(|r| r.reason).collect();
    assert_eq!(reasons, ["state_mismatch", "id_token_nonce_mismatch"]);
    let on_record = t.app.refusals_on_record("auth.login.failed").await;
    assert_eq!(on_record, [("id_token_nonce_mismatch".to_owned(), 1), ("state_mismatch".to_owned(), 2)].into_iter().collect());
}

async fn an_expired_id_token_is_refused(t: Sso) {
    let (url, _) = t.begin().await;
    let callback = t.to_callback(&url, Some(("alice", "alice-password"))).await;
    // The provider's ID tokens live 300 s from when it signed them (before now); stint
    // tolerates 60 s of skew. The server's clock moves past that, from the real time.
    t.app.clock.set(stint_core::Timestamp(real_now().0 + 300 + 61));
    let q = loopback_query(&location(&t.visit(&callback).await));
    assert_eq!(q["error"], "id_token_expired", "{q:?}");
    assert_eq!(t.app.store.active_sessions(stint_core::Clock::now(&t.app.clock)).await.unwrap(), 0);
}

async fn a_provider_key_rotation_is_followed(mut t: Sso) {
    t.login("alice", "alice-password").await;
    // The provider restarts with a new signing key (kid k2); stint refetches on the unknown kid.
    drop(t.idp.take());
    t.idp = Some(Idp::start(t.idp_port, &t.app.url("/v1/sso/callback"), "k2"));
    let v = t.login("alice", "alice-password").await;
    assert_eq!(v["username"], "alice");
}

async fn an_unreachable_provider_is_a_clear_error_and_no_session(mut t: Sso) {
    // Down at the callback: the code cannot be redeemed.
    let (url, _) = t.begin().await;
    let callback = t.to_callback(&url, Some(("alice", "alice-password"))).await;
    drop(t.idp.take());
    let q = loopback_query(&location(&t.visit(&callback).await));
    assert_eq!(q["error"], "idp_unreachable", "{q:?}");
    assert!(q["error_description"].contains("cannot reach the identity provider"), "{q:?}");
    assert_eq!(t.app.store.active_sessions(real_now()).await.unwrap(), 0);
    assert!(t.app.store.users().await.unwrap().is_empty());
}

async fn an_unreachable_provider_refuses_to_begin() {
    // Nothing listens on the issuer's port: discovery fails before anything is stored.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let t2 = spawn_app_at(
        Backend::Sqlite,
        &format!("[[identity.oidc]]\nissuer = \"{dead}\"\nclient_id = \"stint\"\ndanger_client_secret = \"x\"\ndanger_allow_http_loopback = true\n"),
        real_now(),
    )
    .await;
    let (_, challenge) = pkce();
    let (s, v) = t2.post("/v1/sso/begin", None, json!({ "redirect_uri": LOOPBACK, "code_challenge": challenge })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_GATEWAY, Some("idp_unreachable")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("try again"), "{v}");
    let failed: Vec<_> = t2.store.audit_after(0, 100).await.unwrap().into_iter().filter(|r| r.event == "auth.login.failed").collect();
    assert_eq!(
        (failed.len(), failed[0].reason.as_str(), failed[0].details["provider"].as_str()),
        (1, "idp_unreachable", "sso"),
        "the failed attempt is audited"
    );
    let resp = t2.http.post(t2.url("/v1/sso/device/authorize")).form(&[("provider", "sso")]).send().await.unwrap();
    // The device flow only needs the provider when the person visits the verification page.
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn a_disabled_user_cannot_log_in_even_when_the_provider_says_yes(t: Sso) {
    let admin = t.app.admin().await;
    let v = t.login("alice", "alice-password").await;
    let session = v["session_token"].as_str().unwrap().to_owned();
    let (s, v) = t.app.post("/v1/users/alice/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t.app.get("/v1/whoami", Some(&session)).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_revoked")), "disabling ends the SSO session too: {v}");
    let (landing, _) = t.browser("alice", "alice-password").await;
    assert_eq!(landing.query["error"], "user_disabled", "{:?}", landing.query);
}

/// A device login through the provider, approved and not polled yet; returns the device code.
async fn approved_device_login(t: &Sso, user: &str) -> String {
    let d = t.device_authorize().await;
    let to_provider = location(&t.verify_user_code(d["user_code"].as_str().unwrap()).await);
    let callback = t.to_callback(&to_provider, Some((user, &format!("{user}-password")))).await;
    let done = t.visit(&callback).await;
    assert_eq!(done.status(), StatusCode::OK, "{}", done.text().await.unwrap());
    d["device_code"].as_str().unwrap().to_owned()
}

/// The approved browser login (`code`, `verifier`) and device login no longer redeem.
async fn refused_after_disable(t: &Sso, code: &str, verifier: &str, device_code: &str) {
    let (s, v) = t.redeem(code, verifier).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    t.app.clock.advance(10);
    let (s, v) = t.poll(device_code).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("access_denied")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("user disabled"), "{v}");
}

async fn a_disable_ends_sso_logins_not_yet_redeemed(t: Sso) {
    let admin = t.app.admin().await;
    t.login("alice", "alice-password").await;
    // A browser login approved (the CLI holds its login code) and a device login approved
    // (the terminal has not polled yet).
    let (landing, verifier) = t.browser("alice", "alice-password").await;
    let code = landing.query.get("code").unwrap_or_else(|| panic!("{:?}", landing.query)).clone();
    let device_code = approved_device_login(&t, "alice").await;

    let (s, v) = t.app.post("/v1/users/alice/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    refused_after_disable(&t, &code, &verifier, &device_code).await;
    // Enabling the person again restores neither login.
    let (s, v) = t.app.post("/v1/users/alice/enable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    refused_after_disable(&t, &code, &verifier, &device_code).await;
    let now = stint_core::Clock::now(&t.app.clock);
    assert_eq!(t.app.store.active_sessions(now).await.unwrap(), 1, "the administrator's session only");
}

/// An account whose end comes between the provider's approval and the redemption gets no
/// session, before the housekeeping notices the end: the browser login's code and the
/// approved device login are both refused, and only the refusals are on the record.
async fn an_account_that_ends_before_its_login_is_redeemed_gets_no_session(t: Sso) {
    let admin = t.app.admin().await;
    t.login("alice", "alice-password").await;
    let end = stint_core::Timestamp(stint_core::Clock::now(&t.app.clock).0 + 120).to_rfc3339();
    let (s, v) = t.app.post("/v1/users/alice/expiry", Some(&admin.session), json!({ "expires": end, "sponsor": admin.name })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (landing, verifier) = t.browser("alice", "alice-password").await;
    let code = landing.query.get("code").unwrap_or_else(|| panic!("{:?}", landing.query)).clone();
    let device_code = approved_device_login(&t, "alice").await;
    let started = t.events().await.iter().filter(|r| r.event == "session.started").count();
    let live = t.app.store.active_sessions(stint_core::Clock::now(&t.app.clock)).await.unwrap();

    t.app.clock.advance(180);
    let (s, v) = t.redeem(&code, &verifier).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("user_disabled")), "{v}");
    let (_, v) = t.poll(&device_code).await;
    assert_eq!(v["error"].as_str(), Some("user_disabled"), "{v}");
    let records = t.events().await;
    assert_eq!(records.iter().filter(|r| r.event == "session.started").count(), started, "no session started");
    assert_eq!(t.app.refusals_on_record("auth.login.failed").await.get("user_disabled"), Some(&2), "both refusals on the record");
    assert_eq!(t.app.store.active_sessions(stint_core::Clock::now(&t.app.clock)).await.unwrap(), live, "no session stored");
}

async fn a_disable_ends_an_sso_login_whose_callback_is_in_flight(t: Sso) {
    let admin = t.app.admin().await;
    t.login("alice", "alice-password").await;
    let (url, _) = t.begin().await;
    let callback = t.to_callback(&url, Some(("alice", "alice-password"))).await;
    // The callback redeems the code and reads alice, still enabled; it is held there while
    // the administrator disables her, before it writes the approval.
    t.store.arm();
    let in_flight = tokio::spawn({
        let callback = callback.clone();
        async move { reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap().get(&callback).send().await.unwrap() }
    });
    t.store.held().await;
    let (s, v) = t.app.post("/v1/users/alice/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    t.store.resume();
    let q = loopback_query(&location(&in_flight.await.unwrap()));
    assert_eq!(q["error"], "user_disabled", "{q:?}");
    assert!(!q.contains_key("code"), "{q:?}");
    let (s, v) = t.app.post("/v1/users/alice/enable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The login is over: the same callback again is a late one.
    assert_eq!(t.visit(&callback).await.status(), StatusCode::CONFLICT);
    let now = stint_core::Clock::now(&t.app.clock);
    assert_eq!(t.app.store.active_sessions(now).await.unwrap(), 1, "the administrator's session only");
    let failed: Vec<String> = t.events().await.into_iter().filter(|r| r.event == "auth.login.failed").map(|r| r.reason).collect();
    assert_eq!(failed, ["user_disabled", "attempt_done"]);
}

/// Ten redemptions of one browser login code at once, then ten polls of one approved device
/// code: one session each; every other answer is the one a later reuse gets, and each is on
/// the record as that reuse is.
async fn a_login_or_device_code_lost_in_a_race_is_answered_as_a_reuse(t: Sso) {
    let (landing, verifier) = t.browser("alice", "alice-password").await;
    let code = landing.query.get("code").unwrap_or_else(|| panic!("{:?}", landing.query)).clone();
    let form = [("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)];
    let answers = common::at_once(10, |_| t.app.http.post(t.app.url("/v1/sso/token")).form(&form)).await;
    let reuse = t.redeem(&code, &verifier).await;
    assert_eq!((reuse.0, reuse.1["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{reuse:?}");
    common::one_winner(answers, &reuse);

    let device_code = approved_device_login(&t, "alice").await;
    let form = [("grant_type", DEVICE_GRANT), ("device_code", &device_code)];
    let answers = common::at_once(10, |_| t.app.http.post(t.app.url("/v1/sso/token")).form(&form)).await;
    let reuse = t.poll(&device_code).await;
    assert_eq!((reuse.0, reuse.1["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{reuse:?}");
    common::one_winner(answers, &reuse);

    let now = stint_core::Clock::now(&t.app.clock);
    assert_eq!(t.app.store.active_sessions(now).await.unwrap(), 2);
    // The first of each is written; the identical others are counted in its folding window.
    let failed: Vec<_> = t.events().await.into_iter().filter(|r| r.event == "auth.login.failed").collect();
    let seen: Vec<_> = failed.iter().map(|r| (r.reason.as_str(), r.details["flow"].as_str(), r.actor.as_str())).collect();
    assert_eq!(seen, [("code_used", "browser", "127.0.0.1"), ("code_used", "device", "127.0.0.1")]);
    let on_record = t.app.refusals_on_record("auth.login.failed").await;
    assert_eq!(on_record, [("code_used".to_owned(), 20)].into_iter().collect(), "nine losers and the later reuse, of each");
}

async fn device_flow_signs_in_and_honours_the_polling_interval(t: Sso) {
    let d = t.device_authorize().await;
    let device_code = d["device_code"].as_str().unwrap();
    assert_eq!(d["interval"], 5);
    assert_eq!(d["expires_in"], 600);
    let user_code = d["user_code"].as_str().unwrap();
    assert!(d["verification_uri"].as_str().unwrap().ends_with("/v1/sso/device"));

    let (s, v) = t.poll(device_code).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("authorization_pending")), "{v}");
    let (_, v) = t.poll(device_code).await;
    assert_eq!(v["error"], "slow_down", "a poll sooner than the interval: {v}");
    t.app.clock.advance(5);
    let (_, v) = t.poll(device_code).await;
    assert_eq!(v["error"], "slow_down", "the interval grew to 10 s: {v}");
    t.app.clock.advance(15);
    let (_, v) = t.poll(device_code).await;
    assert_eq!(v["error"], "authorization_pending", "{v}");

    // The person opens the verification link elsewhere: the page shows the code to confirm.
    let page = t.visit(d["verification_uri_complete"].as_str().unwrap()).await;
    assert!(page.text().await.unwrap().contains(&format!("value=\"{user_code}\"")));
    assert_eq!(t.verify_user_code("BBBB-BBBB").await.status(), StatusCode::BAD_REQUEST, "an unknown code");
    let to_provider = location(&t.verify_user_code(&user_code.to_lowercase()).await);
    let callback = t.to_callback(&to_provider, Some(("alice", "alice-password"))).await;
    let done = t.visit(&callback).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("signed in to stint as <b>alice</b>"));

    t.app.clock.advance(15);
    let (s, v) = t.poll(device_code).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["username"], "alice");
    let (s, me) = t.app.get("/v1/whoami", Some(v["session_token"].as_str().unwrap())).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    t.app.clock.advance(15);
    let (_, v) = t.poll(device_code).await;
    assert_eq!(v["error"], "invalid_grant", "a device code is used once: {v}");
    let ok = t.events().await.into_iter().find(|r| r.event == "auth.login.succeeded").unwrap();
    assert_eq!((ok.details["method"].as_str(), ok.details["mfa"].as_str()), ("sso", "amr:otp"));
}

async fn the_device_page_shows_what_is_approved_and_asks_first(t: Sso) {
    let d = t.device_authorize().await;
    let user_code = d["user_code"].as_str().unwrap();
    t.app.clock.advance(90);
    let shows_the_request = |html: &str| {
        assert!(html.contains(&format!("code <b>{user_code}</b>")), "{html}");
        assert!(html.contains("from <b>stint CLI</b> at <b>127.0.0.1</b>"), "the client and the requesting address: {html}");
        assert!(html.contains("started <b>90 seconds ago</b>"), "{html}");
        assert!(html.contains(&format!("<input type=\"hidden\" name=\"user_code\" value=\"{user_code}\">")), "{html}");
        assert!(html.contains("<button name=\"confirm\" value=\"yes\">"), "a confirm button: {html}");
    };
    // The link with the code filled in (verification_uri_complete) shows the request; it
    // does not go on to the provider.
    let page = t.visit(d["verification_uri_complete"].as_str().unwrap()).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("location").is_none());
    shows_the_request(&page.text().await.unwrap());
    // A code typed into the blank form: the same page first.
    let typed = t.device_form(&[("user_code", &user_code.to_lowercase())], None).await;
    assert_eq!(typed.status(), StatusCode::OK);
    shows_the_request(&typed.text().await.unwrap());
    // A confirming post made by another site's page only shows the request again.
    let forged = t.device_form(&[("user_code", user_code), ("confirm", "yes")], Some("https://evil.example")).await;
    assert_eq!(forged.status(), StatusCode::OK);
    assert!(forged.headers().get("location").is_none());
    shows_the_request(&forged.text().await.unwrap());
    // Only the confirming post goes on to the provider.
    let to = location(&t.verify_user_code(user_code).await);
    assert!(to.starts_with(&format!("http://127.0.0.1:{}/", t.idp_port)), "{to}");

    // An unknown code shows nothing of any other sign-in.
    let other = t.visit(&t.app.url("/v1/sso/device?user_code=BBBB-BBBB")).await;
    assert_eq!(other.status(), StatusCode::BAD_REQUEST);
    let html = other.text().await.unwrap();
    assert!(html.contains("invalid_user_code"), "{html}");
    for leaked in [user_code, "stint CLI", "127.0.0.1", "seconds ago", "confirm"] {
        assert!(!html.contains(leaked), "{leaked} in {html}");
    }
    // The blank form asks for a code and has nothing to confirm.
    let blank = t.visit(&t.app.url("/v1/sso/device")).await.text().await.unwrap();
    assert!(blank.contains("name=\"user_code\"") && !blank.contains("confirm"), "{blank}");
    let failed: Vec<String> = t.events().await.into_iter().filter(|r| r.event == "auth.login.failed").map(|r| r.reason).collect();
    assert_eq!(failed, ["unknown_user_code"]);
}

async fn device_codes_expire(t: Sso) {
    let d = t.device_authorize().await;
    t.app.clock.advance(600);
    let (s, v) = t.poll(d["device_code"].as_str().unwrap()).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("expired_token")), "{v}");
    let resp = t.verify_user_code(d["user_code"].as_str().unwrap()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("invalid_user_code"));
}

async fn device_flow_denied_at_the_provider(t: Sso) {
    let d = t.device_authorize().await;
    let to_provider = location(&t.verify_user_code(d["user_code"].as_str().unwrap()).await);
    // The person presses Cancel at the provider.
    let callback = t.to_callback(&to_provider, None).await;
    let page = t.visit(&callback).await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let (s, v) = t.poll(d["device_code"].as_str().unwrap()).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("access_denied")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("provider_denied"), "{v}");
    let failed = t.events().await.into_iter().find(|r| r.event == "auth.login.failed").unwrap();
    assert_eq!((failed.reason.as_str(), failed.details["flow"].as_str()), ("provider_denied", "device"));
}

async fn begin_refuses_what_is_not_a_loopback_login(t: Sso) {
    let (_, challenge) = pkce();
    for (body, code) in [
        (json!({ "redirect_uri": "https://evil.example/cb", "code_challenge": challenge }), "invalid_redirect_uri"),
        (json!({ "redirect_uri": LOOPBACK, "code_challenge": "short" }), "invalid_code_challenge"),
        (json!({ "redirect_uri": LOOPBACK, "code_challenge": challenge, "code_challenge_method": "plain" }), "invalid_code_challenge"),
        (json!({ "redirect_uri": LOOPBACK, "code_challenge": challenge, "provider": "nope" }), "unknown_provider"),
    ] {
        let (s, v) = t.app.post("/v1/sso/begin", None, body).await;
        assert!(s.is_client_error() && v["error"] == code, "{s} {v}");
    }
    let (s, v) = t.app.get("/v1/sso/providers", None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({ "providers": ["corp"] })));
}

async fn groups_stay_as_set_in_stint_when_the_provider_sends_none(t: Sso) {
    let admin = t.app.admin().await;
    let v = t.login("alice", "alice-password").await;
    let (_, me) = t.app.get("/v1/whoami", Some(v["session_token"].as_str().unwrap())).await;
    assert_eq!(me["groups"], json!([]), "no groups claim (no groups scope): none mapped");
    let (s, u) =
        body(t.app.http.put(t.app.url("/v1/users/alice/groups")).bearer_auth(&admin.session).json(&json!({ "groups": ["developers"] })).send().await.unwrap())
            .await;
    assert_eq!((s, &u["groups"]), (StatusCode::OK, &json!(["developers"])), "{u}");
    let v = t.login("alice", "alice-password").await;
    let (_, me) = t.app.get("/v1/whoami", Some(v["session_token"].as_str().unwrap())).await;
    assert_eq!(me["groups"], json!(["developers"]), "kept across the login: {me}");
    let changed: Vec<_> = t.events().await.into_iter().filter(|r| r.event == "user.groups_changed").collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor, admin_id(&t, &admin.session).await);
}

async fn admin_id(t: &Sso, session: &str) -> String {
    t.app.get("/v1/whoami", Some(session)).await.1["user_id"].as_str().unwrap().to_owned()
}

async fn provider_groups_replace_stint_groups_at_each_login(t: Sso) {
    let admin = t.app.admin().await;
    t.login("alice", "alice-password").await;
    let resp = t.app.http.put(t.app.url("/v1/users/alice/groups")).bearer_auth(&admin.session).json(&json!({ "groups": ["admins"] })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v = t.login("alice", "alice-password").await;
    let (_, me) = t.app.get("/v1/whoami", Some(v["session_token"].as_str().unwrap())).await;
    assert_eq!(me["groups"], json!(["developers"]), "the provider is the source of truth: {me}");
    assert_eq!(me["admin"], false);
}

fn refusals(records: &[stint_core::audit::Record]) -> Vec<(String, String)> {
    records.iter().filter(|r| r.event == "auth.login.failed").map(|r| (r.reason.clone(), r.details.get("idp_subject").cloned().unwrap_or_default())).collect()
}

async fn user_names(t: &Sso) -> Vec<String> {
    t.app.store.users().await.unwrap().into_iter().map(|u| u.name.to_string()).collect()
}

async fn an_email_is_verified_only_when_the_provider_says_true(t: Sso) {
    // dave's provider sends email_verified "false" (a string), erin's none at all.
    for user in ["dave", "erin"] {
        let (landing, _) = t.browser(user, &format!("{user}-password")).await;
        assert_eq!(landing.query["error"], "email_domain_not_allowed", "{user}: {:?}", landing.query);
    }
    let v = t.login("frank", "frank-password").await;
    assert_eq!(v["username"], "frank", "the string \"true\" verifies");
    let v = t.login("alice", "alice-password").await;
    assert_eq!(v["username"], "alice");
    let want = [("email_domain_not_allowed", "dave"), ("email_domain_not_allowed", "erin")].map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(refusals(&t.events().await), want);
    assert_eq!(user_names(&t).await, ["alice", "frank"], "refused before any user is created");
}

async fn a_missing_email_verified_passes_only_where_configured(t: Sso) {
    let v = t.login("erin", "erin-password").await;
    assert_eq!(v["username"], "erin", "insecure_assume_email_verified: no claim counts as verified");
    let (landing, _) = t.browser("dave", "dave-password").await;
    assert_eq!(landing.query["error"], "email_domain_not_allowed", "an explicit \"false\" still refuses: {:?}", landing.query);
}

async fn an_unverified_email_names_nobody(t: Sso) {
    // No allowed_domains: the logins pass, but the addresses they claim choose no name.
    let v = t.login("dave", "dave-password").await;
    assert_eq!(v["username"], "corp-dave", "{v}");
    let v = t.login("erin", "erin-password").await;
    assert_eq!(v["username"], "corp-erin", "{v}");
    let v = t.login("frank", "frank-password").await;
    assert_eq!(v["username"], "frank", "{v}");
    // The person stays bound to (issuer, sub): a second login is the same user.
    let v = t.login("dave", "dave-password").await;
    assert_eq!(v["username"], "corp-dave", "{v}");
    assert_eq!(user_names(&t).await, ["corp-dave", "corp-erin", "frank"]);
}

/// A rotation naming `oncall.person`, and a team policy naming `frank`.
fn naming_config() -> String {
    let dir = std::env::temp_dir().join(format!("stint-sso-policy-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("team.cedar");
    std::fs::write(
        &policy,
        "@id(\"frank deploys\")\npermit(principal == Stint::Person::\"frank\", action == Stint::Action::\"assume\", resource == Stint::Role::\"developer\");\n",
    )
    .unwrap();
    format!(
        "[[oncall.schedule]]\nname = \"primary\"\ngrants = [\"developer\"]\npeople = [\"oncall.person\"]\nfirst_day = \"2020-01-06\"\n\
         handoff = \"09:00\"\nevery = \"7d\"\ntimezone = \"UTC\"\n[policy]\nfiles = [{:?}]\n",
        policy.display().to_string()
    )
}

async fn a_name_the_configuration_holds_is_not_taken_by_a_login(t: Sso) {
    // oscar's verified email is oncall.person@example.com: the rotation's name, which nobody holds.
    let (landing, _) = t.browser("oscar", "oscar-password").await;
    assert_eq!(landing.query["error"], "sso_name_reserved", "{:?}", landing.query);
    let why = &landing.query["error_description"];
    assert!(why.contains("oncall.person") && why.contains("administrator") && why.contains("subject \"oscar\""), "{why}");
    // frank's name is in a team policy.
    let (landing, _) = t.browser("frank", "frank-password").await;
    assert_eq!(landing.query["error"], "sso_name_reserved", "{:?}", landing.query);
    assert!(user_names(&t).await.is_empty(), "no user was created");
    let want = [("sso_name_reserved", "oscar"), ("sso_name_reserved", "frank")].map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(refusals(&t.events().await), want);

    // The administrator creates the user and links oscar's sign-in to it.
    let admin = t.app.admin().await;
    let (s, v) = t.app.post("/v1/users", Some(&admin.session), json!({ "name": "oncall.person", "groups": [] })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let link = json!({ "provider": "corp", "subject": "oscar" });
    let (s, v) = t.app.post("/v1/users/oncall.person/identities", Some(&admin.session), link.clone()).await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::OK, Some("oncall.person")), "{v}");
    let (s, v) = t.app.post("/v1/users/oncall.person/identities", Some(&admin.session), link).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("identity_exists")), "an identity is linked once: {v}");
    let v = t.login("oscar", "oscar-password").await;
    assert_eq!(v["username"], "oncall.person", "{v}");
}

async fn only_an_administrator_links_an_identity(t: Sso) {
    let admin = t.app.admin().await;
    let bob = t.app.person(&admin, "bob", &[]).await;
    let link = json!({ "provider": "corp", "subject": "alice" });
    let (s, v) = t.app.post("/v1/users/bob/identities", Some(&bob.session), link.clone()).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{v}");
    for (body, code) in [
        (json!({ "provider": "nope", "subject": "alice" }), "unknown_provider"),
        (json!({ "provider": "corp", "subject": "" }), "invalid_subject"),
        (json!({ "provider": "corp", "subject": "a\u{0}b" }), "invalid_subject"),
    ] {
        let (s, v) = t.app.post("/v1/users/bob/identities", Some(&admin.session), body).await;
        assert!(s.is_client_error() && v["error"] == code, "{s} {v}");
    }
    let (s, v) = t.app.post("/v1/users/nobody/identities", Some(&admin.session), link.clone()).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_user")), "{v}");
    let (s, _) = t.app.post("/v1/users/bob/identities", Some(&admin.session), link).await;
    assert_eq!(s, StatusCode::OK);
    let records = t.events().await;
    let linked: Vec<_> = records.iter().filter(|r| r.event == "user.identity_linked").collect();
    assert_eq!(linked.len(), 1);
    assert_eq!((linked[0].actor.clone(), linked[0].details["idp_subject"].as_str()), (admin_id(&t, &admin.session).await, "alice"));
    // alice's sign-in is now bob's.
    let v = t.login("alice", "alice-password").await;
    assert_eq!(v["username"], "bob");
}

async fn a_callback_without_iss_is_refused_when_the_provider_promises_it(t: Sso) {
    // oidc-provider advertises authorization_response_iss_parameter_supported (RFC 9207 §3).
    let (url, _) = t.begin().await;
    let callback = t.to_callback(&url, Some(("alice", "alice-password"))).await;
    let mut stripped = reqwest::Url::parse(&callback).unwrap();
    assert!(stripped.query_pairs().any(|(k, _)| k == "iss"), "the provider sends iss: {callback}");
    let kept: Vec<(String, String)> = stripped.query_pairs().filter(|(k, _)| k != "iss").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    stripped.query_pairs_mut().clear().extend_pairs(kept);
    let q = loopback_query(&location(&t.visit(stripped.as_str()).await));
    assert_eq!(q["error"], "issuer_missing", "{q:?}");
    // The login is over: the genuine response, iss and all, no longer counts.
    assert_eq!(t.visit(&callback).await.status(), StatusCode::CONFLICT);
    assert_eq!(t.app.store.active_sessions(real_now()).await.unwrap(), 0);
    assert!(t.app.store.users().await.unwrap().is_empty(), "refused before the code was redeemed");
    let reasons: Vec<String> = t.events().await.into_iter().filter(|r| r.event == "auth.login.failed").map(|r| r.reason).collect();
    assert_eq!(reasons, ["issuer_missing", "attempt_done"]);
}

async fn concurrent_callbacks_redeem_the_code_once(t: Sso) {
    let (url, verifier) = t.begin().await;
    let callback = t.to_callback(&url, Some(("alice", "alice-password"))).await;
    // Eight hits of one callback at once (a double-submitted redirect, or an attacker racing).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut hits = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, callback) = (http.clone(), callback.clone());
        hits.spawn(async move {
            let resp = http.get(&callback).send().await.unwrap();
            let to = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
            (resp.status(), to, resp.text().await.unwrap())
        });
    }
    let mut won = Vec::new();
    let mut lost = 0;
    while let Some(hit) = hits.join_next().await {
        match hit.unwrap() {
            (StatusCode::SEE_OTHER, Some(to), _) => won.push(to),
            (StatusCode::CONFLICT, None, page) => {
                assert!(page.contains("sso_attempt_done"), "{page}");
                lost += 1;
            }
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    assert_eq!((won.len(), lost), (1, 7), "exactly one callback goes on: {won:?}");
    // The one that went on is a real success: the provider redeemed its code once.
    let q = loopback_query(&won[0]);
    assert!(!q.contains_key("error"), "{q:?}");
    let (s, v) = t.redeem(&q["code"], &verifier).await;
    assert_eq!((s, v["username"].as_str()), (StatusCode::OK, Some("alice")), "{v}");
    let on_record = t.app.refusals_on_record("auth.login.failed").await;
    assert_eq!(on_record, [("attempt_done".to_owned(), 7)].into_iter().collect(), "every loser is on the record (written or folded), as a late callback is");
}

macro_rules! sso_tests {
    ($($name:ident: $extra:expr),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::sso(super::Backend::Sqlite, $extra).await).await;
            })*
        }
    };
}

sso_tests!(
    browser_login_creates_the_user_and_a_session: "",
    no_mfa_or_a_foreign_domain_is_refused_with_the_reason: "allowed_domains = [\"example.com\"]",
    totp_step_up_for_a_provider_without_mfa: "step_up_totp = true",
    state_and_nonce_mismatches_are_refused: "",
    an_expired_id_token_is_refused: "",
    a_provider_key_rotation_is_followed: "",
    an_unreachable_provider_is_a_clear_error_and_no_session: "",
    a_disabled_user_cannot_log_in_even_when_the_provider_says_yes: "",
    device_flow_signs_in_and_honours_the_polling_interval: "",
    device_codes_expire: "",
    device_flow_denied_at_the_provider: "",
    begin_refuses_what_is_not_a_loopback_login: "",
    groups_stay_as_set_in_stint_when_the_provider_sends_none: "scopes = [\"openid\", \"email\"]",
    provider_groups_replace_stint_groups_at_each_login: "",
    an_email_is_verified_only_when_the_provider_says_true: "allowed_domains = [\"example.com\"]",
    a_missing_email_verified_passes_only_where_configured: "allowed_domains = [\"example.com\"]\ninsecure_assume_email_verified = true",
    an_unverified_email_names_nobody: "",
    only_an_administrator_links_an_identity: "",
    a_callback_without_iss_is_refused_when_the_provider_promises_it: "",
    concurrent_callbacks_redeem_the_code_once: "",
    a_disable_ends_sso_logins_not_yet_redeemed: "",
    the_device_page_shows_what_is_approved_and_asks_first: "",
    a_login_or_device_code_lost_in_a_race_is_answered_as_a_reuse: "",
    a_disable_ends_an_sso_login_whose_callback_is_in_flight: "",
    an_account_that_ends_before_its_login_is_redeemed_gets_no_session: "",
);

/// A redemption past the person's cap on live sessions is refused, and on the record as a
/// failed SSO login (the identical second one counted in the first one's folding window).
async fn an_sso_login_past_the_session_cap_is_refused_and_audited(t: Sso) {
    t.login("alice", "alice-password").await;
    let alice = t.app.store.user_by_name(&stint_core::ids::Username::parse("alice").unwrap()).await.unwrap().unwrap();
    let (landing, verifier) = t.browser("alice", "alice-password").await;
    let code = landing.query.get("code").unwrap_or_else(|| panic!("{:?}", landing.query)).clone();
    for _ in 0..2 {
        let (s, v) = t.redeem(&code, &verifier).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::CONFLICT, Some("too_many_sessions")), "{v}");
    }
    let failed: Vec<_> = t.events().await.into_iter().filter(|r| r.event == "auth.login.failed").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let r = &failed[0];
    assert_eq!((r.reason.as_str(), r.subject.as_str(), r.details["method"].as_str()), ("too_many_sessions", alice.id.as_str(), "sso"));
    assert_eq!(t.app.refusals_on_record("auth.login.failed").await, [("too_many_sessions".to_owned(), 2)].into_iter().collect());
}

mod session_cap {
    const ONE_SESSION: &str = "[limits]\nsessions_per_person = 1\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_sso_login_past_the_session_cap_is_refused_and_audited_on_sqlite() {
        let t = super::sso_with(super::Backend::Sqlite, "", ONE_SESSION).await;
        super::an_sso_login_past_the_session_cap_is_refused_and_audited(t).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_sso_login_past_the_session_cap_is_refused_and_audited_on_postgres() {
        let t = super::sso_with(super::Backend::Postgres, "", ONE_SESSION).await;
        super::an_sso_login_past_the_session_cap_is_refused_and_audited(t).await;
    }
}

mod configured_names {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_the_configuration_holds_is_not_taken_by_a_login() {
        let t = super::sso_with(super::Backend::Sqlite, "", &super::naming_config()).await;
        super::a_name_the_configuration_holds_is_not_taken_by_a_login(t).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn browser_login_creates_the_user_and_a_session() {
        super::browser_login_creates_the_user_and_a_session(super::sso(super::Backend::Postgres, "").await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn device_flow_signs_in_and_honours_the_polling_interval() {
        super::device_flow_signs_in_and_honours_the_polling_interval(super::sso(super::Backend::Postgres, "").await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callbacks_redeem_the_code_once() {
        super::concurrent_callbacks_redeem_the_code_once(super::sso(super::Backend::Postgres, "").await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_login_or_device_code_lost_in_a_race_is_answered_as_a_reuse() {
        super::a_login_or_device_code_lost_in_a_race_is_answered_as_a_reuse(super::sso(super::Backend::Postgres, "").await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_disable_ends_an_sso_login_whose_callback_is_in_flight() {
        super::a_disable_ends_an_sso_login_whose_callback_is_in_flight(super::sso(super::Backend::Postgres, "").await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_provider_refuses_to_begin() {
    an_unreachable_provider_refuses_to_begin().await;
}

/// SCIM provisions a person; their first sign-in through the provider `[scim] provider` names
/// is them (matched by `externalId` = the token's `sub`, or by verified email), not a new user.
async fn a_provisioned_person_is_their_first_sign_in(t: Sso, scim_user: Value, name: &str) {
    let admin = t.app.admin().await;
    let (_, made) = t.app.post("/v1/scim/tokens", Some(&admin.session), json!({ "name": "okta" })).await;
    let resp = t
        .app
        .http
        .post(t.app.url("/scim/v2/Users"))
        .bearer_auth(made["token"].as_str().unwrap())
        .header("content-type", "application/scim+json")
        .body(scim_user.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v = t.login("alice", "alice-password").await;
    assert_eq!(v["username"], name, "{v}");
    assert_eq!(user_names(&t).await, [name.to_owned(), "root".to_owned()], "no new user was created");
    let linked: Vec<_> = t.events().await.into_iter().filter(|r| r.event == "user.identity_linked").collect();
    assert_eq!(linked.len(), 1);
    assert_eq!((linked[0].actor.as_str(), linked[0].details["matched"].as_str(), linked[0].details["idp_subject"].as_str()), ("sso:corp", "scim", "alice"));
    // The second sign-in goes through the linked identity.
    assert_eq!(t.login("alice", "alice-password").await["username"], name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_person_is_matched_by_external_id() {
    let t = sso_with(Backend::Sqlite, "", "[scim]\nprovider = \"corp\"\n").await;
    let user = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice.smith", "externalId": "alice" });
    a_provisioned_person_is_their_first_sign_in(t, user, "alice.smith").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_person_is_matched_by_verified_email() {
    let t = sso_with(Backend::Postgres, "", "[scim]\nprovider = \"corp\"\nmatch = \"email\"\n").await;
    let user = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ally", "emails": [{ "value": "Alice@Example.com" }] });
    a_provisioned_person_is_their_first_sign_in(t, user, "ally").await;
}
