//! Alerts reach real HTTP receivers (a webhook server run by the test): a signed JSON body and
//! a Slack-compatible one, for a disabled user's login and for repeated failures; a dead
//! receiver is retried, then counted as dropped, without holding up the request that caused it.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::{spawn_app_with, Backend, TestApp, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRET: &str = "a webhook signing secret";

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on a loopback port: every POST is recorded with its path.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push((uri.path().to_owned(), headers, body.to_vec()));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn wait_for(seen: &Seen, n: usize) -> Vec<(String, HeaderMap, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = seen.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "only {} of {n} alerts arrived", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify(headers: &HeaderMap, body: &[u8]) {
    let ts = headers["x-stint-timestamp"].to_str().unwrap();
    let sig = headers["x-stint-signature"].to_str().unwrap().strip_prefix("sha256=").unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = (0..sig.len()).step_by(2).map(|i| u8::from_str_radix(&sig[i..i + 2], 16).unwrap()).collect::<Vec<_>>();
    ring::hmac::verify(&key, &[format!("{ts}.").as_bytes(), body].concat(), &tag).expect("the signature verifies with the shared secret");
}

async fn app_with_hooks(hooks: &str) -> TestApp {
    spawn_app_with(Backend::Sqlite, hooks).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_signed_json_and_slack_webhooks() {
    let (url, seen) = receiver().await;
    let toml = format!(
        "[[alerts.webhook]]\nurl = \"{url}/json\"\nformat = \"json\"\ndanger_secret = \"{SECRET}\"\n\n\
         [[alerts.webhook]]\nurl = \"{url}/slack\"\nformat = \"slack\"\nevents = [\"disabled_user_login\"]\n"
    );
    let app = app_with_hooks(&toml).await;
    let admin = app.admin().await;
    let alice = app.person(&admin, "alice", &[]).await;
    let (s, _) = app.post("/v1/users/alice/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    app.clock.advance(30);
    let (s, v) = app.login_raw("alice", PASSWORD, &app.totp(&alice.secret)).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("user_disabled")));

    let got = wait_for(&seen, 2).await;
    let json_hook = got.iter().find(|(p, _, _)| p == "/json").unwrap();
    verify(&json_hook.1, &json_hook.2);
    let alert: Value = serde_json::from_slice(&json_hook.2).unwrap();
    assert_eq!((alert["event"].as_str(), alert["details"]["user"].as_str()), (Some("disabled_user_login"), Some("alice")), "{alert}");
    let slack = got.iter().find(|(p, _, _)| p == "/slack").unwrap();
    let text: Value = serde_json::from_slice(&slack.2).unwrap();
    assert_eq!(text, json!({ "text": "stint: Disabled user alice tried to log in from 127.0.0.1" }));
    assert!(slack.1.get("x-stint-signature").is_none(), "Slack webhooks are not signed");

    // Five wrong passwords for bob (the free allowance) raise one alert; the lockout that
    // follows raises none, and the Slack hook does not subscribe to it.
    let _bob = app.person(&admin, "bob", &[]).await;
    for _ in 0..6 {
        app.login_raw("bob", "not bob's password at all", "000000").await;
    }
    let got = wait_for(&seen, 3).await;
    let repeated: Vec<Value> = got
        .iter()
        .filter(|(p, _, _)| p == "/json")
        .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
        .filter(|a: &Value| a["event"] == "repeated_login_failures")
        .collect();
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    assert_eq!((repeated[0]["details"]["user"].as_str(), repeated[0]["details"]["failures"].as_str()), (Some("bob"), Some("5")));
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("stint_alerts_sent_total 3"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_is_retried_then_counted_as_dropped() {
    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}/hook", stint_testkit::free_port());
    let app = app_with_hooks(&format!("[[alerts.webhook]]\nurl = \"{dead}\"\nformat = \"slack\"\ntimeout = \"1s\"\n")).await;
    let admin = app.admin().await;
    let alice = app.person(&admin, "alice", &[]).await;
    app.post("/v1/users/alice/disable", Some(&admin.session), json!({})).await;
    app.clock.advance(30);
    let (s, _) = app.login_raw("alice", PASSWORD, &app.totp(&alice.secret)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let metrics = || async { app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    // The refusal came back while delivery was still being retried (3.5 s of backoff).
    assert!(metrics().await.contains("stint_alerts_dropped_total 0"), "the request did not wait for the webhook");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !metrics().await.contains("stint_alerts_dropped_total 1") {
        assert!(Instant::now() < deadline, "the undeliverable alert was never counted as dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_validated_at_start() {
    let refused = common::config_refused;
    refused("[[alerts.webhook]]\nurl = \"http://hooks.example.com/x\"\n", "https");
    refused("[[alerts.webhook]]\nurl = \"https://hooks.example.com/x\"\nformat = \"json\"\n", "signing secret");
    refused("[[alerts.webhook]]\nurl = \"https://hooks.example.com/x\"\nformat = \"xml\"\n", "\"xml\"");
    refused("[[alerts.webhook]]\nurl = \"https://hooks.example.com/x\"\nevents = [\"coffee\"]\n", "unknown event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_grants_admin_at_once_flags_it_and_alerts_everyone() {
    let (url, seen) = receiver().await;
    let toml = format!(
        "[break_glass]\ngroup = \"break-glass\"\nrole = \"admin\"\nmax_duration = \"1h\"\nfresh_login = \"5m\"\n\n\
         [[alerts.webhook]]\nurl = \"{url}/json\"\nformat = \"json\"\ndanger_secret = \"{SECRET}\"\n"
    );
    let app = app_with_hooks(&toml).await;
    let admin = app.admin().await;
    let oncall = app.person(&admin, "oncall", &["break-glass"]).await;
    let other = app.person(&admin, "other", &[]).await;
    assert_eq!(app.assume(&oncall, "admin", None).await.0, StatusCode::FORBIDDEN, "not without breaking the glass");

    let (s, v) = app.post("/v1/break-glass", Some(&other.session), json!({ "reason": "prod is down" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_break_glass_member")));
    let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": "prod is down", "duration": "2h" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("duration_too_long")));
    // A login older than five minutes is not fresh enough.
    app.clock.advance(301);
    let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": "prod is down" })).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("fresh_login_required")));
    let oncall = app.login(&oncall.name, &oncall.secret).await;
    let (s, v) = app.post("/v1/break-glass", Some(&oncall.session), json!({ "reason": "prod is down", "duration": "30m" })).await;
    assert_eq!((s, v["status"].as_str(), v["break_glass"].as_bool()), (StatusCode::OK, Some("approved"), Some(true)), "{v}");

    let (s, tok) = app.assume(&oncall, "admin", None).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert!(tok["expires_in"].as_u64().unwrap() <= 1800);
    let issued = app.store.audit_after(0, 10_000).await.unwrap().into_iter().rev().find(|r| r.event == "credential.issued").unwrap();
    assert_eq!((issued.details["break_glass"].as_str(), issued.details["reasons"].as_str()), ("true", "policy \"break-glass: admin\""));
    let used = app
        .store
        .audit_after(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "break_glass.used")
        .map(|r| r.outcome.as_str().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(used, ["failure", "failure", "success"], "refusals are flagged too");

    let got = wait_for(&seen, 1).await;
    let alert: Value = serde_json::from_slice(&got[0].2).unwrap();
    assert_eq!((alert["event"].as_str(), alert["details"]["user"].as_str()), (Some("break_glass"), Some("oncall")), "{alert}");
    verify(&got[0].1, &got[0].2);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("stint_break_glass_total 1"), "{metrics}");

    // Without [approvals], an administrator ends it early; its token is refused from then on.
    let (s, v) = app.post(&format!("/v1/grants/{}/revoke", v["id"].as_str().unwrap()), Some(&admin.session), json!({ "reason": "resolved" })).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("revoked")), "{v}");
    assert_eq!(app.introspect(tok["token"].as_str().unwrap()).await["active"], false);
    let got = wait_for(&seen, 2).await;
    let ended: Value = serde_json::from_slice(&got[1].2).unwrap();
    assert_eq!((ended["event"].as_str(), ended["details"]["revoked_by"].as_str()), (Some("break_glass"), Some("root")), "{ended}");
}

/// A contractor's account (issue 15 §3): made with an end and a sponsor, limited by a team
/// policy to `readonly`, its sponsor alerted once `[users] expiry_alert` before the end; past
/// the end it is refused at once, then disabled by the housekeeping with everything it holds,
/// on the record naming the sponsor.
#[tokio::test]
async fn a_contractor_account_alerts_its_sponsor_then_ends_with_everything_it_holds() {
    let (url, seen) = receiver().await;
    let dir = std::env::temp_dir().join(format!("stint-contractor-{}-{}", std::process::id(), stint_testkit::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("contractors.cedar");
    std::fs::write(
        &policy,
        "@id(\"contractors: readonly only\")\nforbid(principal, action, resource) when { principal has sponsor } unless { resource == Stint::Role::\"readonly\" };\n",
    )
    .unwrap();
    let app = spawn_app_with(
        Backend::Postgres,
        &format!(
            "[[alerts.webhook]]\nurl = \"{url}/json\"\nformat = \"json\"\ndanger_secret = \"{SECRET}\"\nevents = [\"account_expiring\"]\n\
             [users]\nexpiry_alert = \"2h\"\n[policy]\nfiles = [{:?}]\n",
            policy.display().to_string()
        ),
    )
    .await;
    let admin = app.admin().await;
    let alice = app.person(&admin, "alice", &["developers"]).await;
    let vera = app.person(&admin, "vera", &["developers"]).await;
    let end_at = stint_core::Clock::now(&app.clock).0 + 4 * 3600;
    let end = stint_core::Timestamp(end_at).to_rfc3339();

    // Terms are checked: a sponsor who exists, is not the person, and an end to come.
    for (body, code) in [
        (json!({ "expires": end, "sponsor": "nobody" }), "invalid_sponsor"),
        (json!({ "expires": end, "sponsor": "vera" }), "invalid_sponsor"),
        (json!({ "expires": "2001-01-01", "sponsor": "alice" }), "invalid_expiry"),
        (json!({ "expires": "next tuesday", "sponsor": "alice" }), "invalid_expiry"),
        (json!({ "expires": end }), "sponsor_required"),
    ] {
        let (s, e) = app.post("/v1/users/vera/expiry", Some(&admin.session), body).await;
        assert_eq!((s, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{e}");
    }
    let (s, v) = app.post("/v1/users/vera/expiry", Some(&admin.session), json!({ "expires": end, "sponsor": "alice" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, users) = app.get("/v1/users", Some(&admin.session)).await;
    let alice_id = users.as_array().unwrap().iter().find(|u| u["name"] == "alice").and_then(|u| u["id"].as_str()).map(str::to_owned);
    let listed = users.as_array().unwrap().iter().find(|u| u["name"] == "vera").unwrap().clone();
    assert_eq!((listed["expires_at"].as_i64(), listed["sponsor"].as_str().map(str::to_owned)), (Some(end_at), alice_id), "{listed}");
    // A new contractor in one step, on the record with the sponsor's name.
    let (s, v) = app.post("/v1/users", Some(&admin.session), json!({ "name": "vic", "expires": "2030-01-01", "sponsor": "alice" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let created = app.store.audit_after(0, 10_000).await.unwrap().into_iter().find(|r| r.event == "user.created" && r.details["name"] == "vic").unwrap();
    assert_eq!((created.details["sponsor"].as_str(), created.details["expires_at"].as_str()), ("alice", "2030-01-02T00:00:00Z"), "a date runs through its day");

    // The team policy limits the contractor to readonly; alice, in the same group, is not.
    let (s, e) = app.assume(&vera, "developer", None).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("role_not_granted")), "{e}");
    assert_eq!(app.assume(&alice, "developer", None).await.0, StatusCode::OK);

    // Within two hours of the end: one alert to the sponsor, and only one.
    app.clock.advance(3 * 3600);
    assert_eq!(app.state.broker.expire_accounts().await.unwrap(), stint_core::broker::ExpiredAccounts { alerted: 1, ended: 0 });
    assert_eq!(app.state.broker.expire_accounts().await.unwrap(), stint_core::broker::ExpiredAccounts::default());
    let got = wait_for(&seen, 1).await;
    let alert: Value = serde_json::from_slice(&got[0].2).unwrap();
    assert_eq!(
        (alert["event"].as_str(), alert["details"]["user"].as_str(), alert["details"]["sponsor"].as_str()),
        (Some("account_expiring"), Some("vera"), Some("alice")),
        "{alert}"
    );
    app.clock.advance(59 * 60);
    let token = app.token(&vera, "readonly").await;

    // Past the end: refused at once, before the housekeeping notices.
    app.clock.advance(2 * 60);
    let (s, e) = app.get("/v1/whoami", Some(&vera.session)).await;
    assert_eq!((s, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("account_expired")), "{e}");
    assert_eq!(app.introspect(&token).await["active"], json!(false));
    // The housekeeping ends it as a disable does: the session is revoked, the account disabled.
    assert_eq!(app.state.broker.expire_accounts().await.unwrap(), stint_core::broker::ExpiredAccounts { alerted: 0, ended: 1 });
    assert_eq!(app.get("/v1/whoami", Some(&vera.session)).await.0, StatusCode::UNAUTHORIZED);
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    let vera_id = listed["id"].as_str().unwrap();
    let expired = records.iter().find(|r| r.event == "user.expired" && r.subject == vera_id).expect("user.expired on the record");
    assert_eq!((expired.actor.as_str(), expired.details["sponsor"].as_str()), ("stint", "alice"));
    assert!(records.iter().any(|r| r.event == "user.disabled" && r.subject == vera_id && r.actor == "stint"));
    assert!(records.iter().any(|r| r.event == "user.expiry_alerted" && r.subject == vera_id));
    assert!(records.iter().any(|r| r.event == "session.revoked" && r.subject == vera_id));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[[users.account]]` sets an account's end and sponsor from the configuration: applied by
/// the housekeeping to the person once they exist (here, added after the start), audited with
/// `config` as the actor, and ended at that time like any other.
#[tokio::test]
async fn the_configuration_sets_a_contractors_end_and_sponsor() {
    let app = spawn_app_with(Backend::Sqlite, "[[users.account]]\nname = \"vic\"\nexpires = \"2027-01-20\"\nsponsor = \"root\"\n").await;
    let admin = app.admin().await;
    let vic = app.person(&admin, "vic", &[]).await;
    assert_eq!(app.state.broker.expire_accounts().await.unwrap(), stint_core::broker::ExpiredAccounts { alerted: 1, ended: 0 }, "within 7 days of its end");
    let (_, users) = app.get("/v1/users", Some(&admin.session)).await;
    let listed = users.as_array().unwrap().iter().find(|u| u["name"] == "vic").unwrap().clone();
    assert_eq!(listed["expires_at"].as_i64(), stint_core::Timestamp::parse_end("2027-01-20").map(|t| t.0), "{listed}");
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    assert!(records.iter().any(|r| r.event == "user.expiry_changed" && r.actor == "config" && r.details["sponsor"] == "root"));
    // Applied once: the next housekeeping changes nothing.
    app.state.broker.expire_accounts().await.unwrap();
    let again = app.store.audit_after(0, 10_000).await.unwrap().iter().filter(|r| r.event == "user.expiry_changed").count();
    assert_eq!(again, 1);
    // At its end it ends.
    app.clock.advance(30 * 86_400);
    assert_eq!(app.state.broker.expire_accounts().await.unwrap().ended, 1);
    assert!(app.get("/v1/whoami", Some(&vic.session)).await.0.is_client_error());
}
