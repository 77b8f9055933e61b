//! CI token exchange (RFC 8693) against a stand-in for GitHub Actions' token issuer
//! (`stint_testkit::github`: discovery, JWKS, RS256 tokens with GitHub's claim set): the
//! trust policy decides, a token is accepted once, and a table of hostile tokens is refused
//! with the right code, each leaving an audit record and no credential.
#![allow(clippy::unwrap_used)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::{body, spawn_app_with, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_testkit::github::{self, GithubIssuer, Run};

const NOW: i64 = 1_800_000_000;
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn trust_policy(issuer: &str) -> String {
    let host = issuer.trim_start_matches("http://");
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "InfraMain",
            "Effect": "Allow",
            "Principal": { "Federated": issuer },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": { "StringEquals": {
                format!("{host}:aud"): "stint",
                format!("{host}:sub"): "repo:acme/infra:ref:refs/heads/main",
            } }
        }]
    })
    .to_string()
}

async fn setup(backend: Backend) -> (TestApp, GithubIssuer) {
    let gh = GithubIssuer::start().await;
    let toml = format!(
        "[[ci.issuer]]\nname = \"github\"\nurl = \"{}\"\ndanger_allow_http_loopback = true\njwks_min_refetch = \"0s\"\n\
         [roles.deploy]\nmax_ttl = \"1h\"\nci_ttl = \"15m\"\ntrust_policy = '''{}'''\n",
        gh.url,
        trust_policy(&gh.url)
    );
    (spawn_app_with(backend, &toml).await, gh)
}

async fn exchange(app: &TestApp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    body(app.http.post(app.url("/v1/token")).form(form).send().await.unwrap()).await
}

async fn exchange_token(app: &TestApp, token: &str, role: &str) -> (StatusCode, Value) {
    exchange(app, &[("grant_type", GRANT), ("subject_token", token), ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"), ("role", role)]).await
}

async fn a_workflow_on_main_gets_a_credential_once(app: TestApp, gh: GithubIssuer) {
    let token = gh.sign(&gh.claims(&Run::default(), "stint", NOW));
    let (s, v) = exchange_token(&app, &token, "deploy").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["token_type"].as_str(), v["issued_token_type"].as_str()), (Some("Bearer"), Some("urn:ietf:params:oauth:token-type:jwt")));
    assert_eq!((v["role"].as_str(), v["expires_in"].as_u64()), (Some("deploy"), Some(900)), "15 minutes by default");
    let credential = v["access_token"].as_str().unwrap();
    let seen = app.introspect(credential).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["sub"], "ci:github:repo:acme/infra:ref:refs/heads/main");
    assert_eq!(seen["preferred_username"], "acme/infra");
    assert!(seen.get("sid").is_none(), "a CI credential belongs to no session");

    // Accepted once, on every replica: the replay record is in the store.
    let (s, v) = exchange_token(&app, &token, "deploy").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_replayed")), "{v}");

    // A token without jti is accepted once too, by its signed content.
    let no_jti = signed(&gh, header(), claims_with(&gh, |c| c.as_object_mut().unwrap().retain(|k, _| k != "jti")));
    assert_eq!(exchange_token(&app, &no_jti, "deploy").await.0, StatusCode::OK);
    let (s, v) = exchange_token(&app, &no_jti, "deploy").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_replayed")), "{v}");

    // Shorter on request; longer is refused, not capped.
    let fresh = gh.sign(&gh.claims(&Run::default(), "stint", NOW));
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &fresh), ("role", "deploy"), ("ttl", "20m")]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("ttl_too_long")), "{v}");
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &fresh), ("role", "deploy"), ("ttl", "1m")]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("ttl_too_short")), "{v}");
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &fresh), ("role", "deploy"), ("ttl", "5m")]).await;
    assert_eq!((s, v["expires_in"].as_u64()), (StatusCode::OK, Some(300)), "{v}");

    // The second replay's record would be identical to the first's but for its time: it is
    // counted, and the summary written when its window closes (here: at once).
    app.state.broker.flush_refusals(true).await.unwrap();
    let records = app.store.audit_after(0, 1000).await.unwrap();
    let issued: Vec<_> = records.iter().filter(|r| r.event == "credential.issued").collect();
    assert_eq!(issued.len(), 3);
    let r = issued[0];
    assert_eq!((r.actor.as_str(), r.details["source"].as_str(), r.details["role"].as_str()), ("ci:github", "ci", "deploy"));
    assert_eq!(r.details["claim.repository"], "acme/infra");
    assert_eq!(r.details["statement"], "statement 1 (\"InfraMain\")");
    let denied: Vec<_> = records.iter().filter(|r| r.event == "ci.exchange.denied").map(|r| r.reason.as_str()).collect();
    assert_eq!(denied, ["token_replayed", "ttl_too_long", "ttl_too_short"]);
    let folded: Vec<_> = records
        .iter()
        .filter(|r| r.event == "refusals.folded")
        .map(|r| (r.reason.as_str(), r.details["event"].as_str(), r.details["count"].as_str()))
        .collect();
    assert_eq!(folded, [("token_replayed", "ci.exchange.denied", "1")], "every refusal is written or counted");
    for r in &records {
        let text = serde_json::to_string(r).unwrap();
        assert!(!text.contains(&token) && !text.contains(credential), "no token in the audit log");
    }
}

/// Ten exchanges of one token at once: one credential; every other answer is the one a
/// later replay gets, and each is on the record as that replay is.
async fn a_token_replayed_in_a_race_is_answered_as_a_reuse(app: TestApp, gh: GithubIssuer) {
    let token = gh.sign(&gh.claims(&Run::default(), "stint", NOW));
    let form = [("grant_type", GRANT), ("subject_token", &token), ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"), ("role", "deploy")];
    let answers = common::at_once(10, |_| app.http.post(app.url("/v1/token")).form(&form)).await;
    let reuse = exchange_token(&app, &token, "deploy").await;
    assert_eq!((reuse.0, reuse.1["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_replayed")), "{reuse:?}");
    common::one_winner(answers, &reuse);
    let records = app.store.audit_after(0, 1000).await.unwrap();
    assert_eq!(records.iter().filter(|r| r.event == "credential.issued").count(), 1);
    assert!(records.iter().filter(|r| r.event == "ci.exchange.denied").all(|r| (r.reason.as_str(), r.actor.as_str()) == ("token_replayed", "ci:github")));
    let on_record = app.refusals_on_record("ci.exchange.denied").await;
    assert_eq!(on_record, [("token_replayed".to_owned(), 10)].into(), "nine losers and the later replay, written or counted");
}

/// A token with a changed header or claims, signed by the stand-in's key.
fn signed(gh: &GithubIssuer, header: Value, claims: Value) -> String {
    github::rs256(&gh.key(), &github::signing_input(&header, &claims))
}

fn header() -> Value {
    json!({ "typ": "JWT", "alg": "RS256", "kid": github::KID })
}

/// Claims of a good token with `edit` applied.
fn claims_with(gh: &GithubIssuer, edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = gh.claims(&Run::default(), "stint", NOW);
    edit(&mut c);
    c
}

async fn hostile_tokens_are_refused_with_the_right_code(app: TestApp, gh: GithubIssuer) {
    let good = || gh.claims(&Run::default(), "stint", NOW);
    let attacker = github::rsa(github::OTHER_KEY);
    let input = github::signing_input(&json!({ "alg": "HS256", "typ": "JWT", "kid": github::KID }), &good());
    // HMAC keyed with the issuer's public key, as published in its JWKS (the n||e bytes and the JSON text).
    let jwk = github::jwk(&gh.key(), github::KID);
    let hs256 = |key: &[u8]| {
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), input.as_bytes());
        format!("{input}.{}", B64.encode(tag.as_ref()))
    };
    let run = |r: Run| gh.sign(&gh.claims(&r, "stint", NOW));
    let good_token = gh.sign(&good());
    let mut sig_flipped = good_token.clone();
    let last = sig_flipped.pop().unwrap();
    sig_flipped.push(if last == 'A' { 'B' } else { 'A' });
    let dup_claims = {
        let c = good().to_string();
        let with_dup = c
            .replacen('{', "{\"sub\":\"repo:acme/infra:ref:refs/heads/main\",", 1)
            .replace("\"sub\":\"repo:acme/infra:ref:refs/heads/main\"", "\"sub\":\"repo:evil/x:ref:refs/heads/main\"");
        let with_dup = with_dup.replacen("\"sub\":\"repo:evil/x:ref:refs/heads/main\"", "\"sub\":\"repo:acme/infra:ref:refs/heads/main\"", 1);
        github::rs256(&gh.key(), &format!("{}.{}", B64.encode(header().to_string()), B64.encode(with_dup)))
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "alg none",
            format!("{}.{}.", B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()), B64.encode(good().to_string())),
            "deploy",
            "invalid_token",
        ),
        (
            "alg none with the real kid",
            format!("{}.{}.", B64.encode(json!({"alg": "none", "kid": github::KID}).to_string()), B64.encode(good().to_string())),
            "deploy",
            "invalid_token",
        ),
        ("HS256 keyed with the public JWK", hs256(jwk.to_string().as_bytes()), "deploy", "invalid_token"),
        ("HS256 keyed with the modulus", hs256(&B64.decode(jwk["n"].as_str().unwrap()).unwrap()), "deploy", "invalid_token"),
        ("RS512", signed(&gh, json!({"alg": "RS512", "kid": github::KID}), good()), "deploy", "invalid_token"),
        ("unknown kid", signed(&gh, json!({"alg": "RS256", "kid": "not-published"}), good()), "deploy", "invalid_token"),
        ("kid with a path", signed(&gh, json!({"alg": "RS256", "kid": "../../../../etc/passwd"}), good()), "deploy", "invalid_token"),
        ("kid with SQL", signed(&gh, json!({"alg": "RS256", "kid": "x' OR '1'='1"}), good()), "deploy", "invalid_token"),
        ("kid not a string", signed(&gh, json!({"alg": "RS256", "kid": 7}), good()), "deploy", "invalid_token"),
        (
            "jku to the attacker's keys",
            github::rs256(&attacker, &github::signing_input(&json!({"alg": "RS256", "kid": github::KID, "jku": "https://evil.example/jwks"}), &good())),
            "deploy",
            "invalid_token",
        ),
        (
            "x5u to the attacker's certificate",
            github::rs256(&attacker, &github::signing_input(&json!({"alg": "RS256", "kid": github::KID, "x5u": "https://evil.example/cert"}), &good())),
            "deploy",
            "invalid_token",
        ),
        (
            "embedded jwk of the attacker",
            github::rs256(&attacker, &github::signing_input(&json!({"alg": "RS256", "kid": github::KID, "jwk": github::jwk(&attacker, github::KID)}), &good())),
            "deploy",
            "invalid_token",
        ),
        ("signed by another key", github::rs256(&attacker, &github::signing_input(&header(), &good())), "deploy", "invalid_token"),
        ("bad signature", sig_flipped, "deploy", "invalid_token"),
        ("signature removed", good_token.rsplit_once('.').unwrap().0.to_owned() + ".", "deploy", "invalid_token"),
        ("truncated", good_token[..good_token.len() / 2].to_owned(), "deploy", "invalid_token"),
        ("four parts", format!("{good_token}.x"), "deploy", "invalid_token"),
        ("signature not base64url", format!("{}.!!!", good_token.rsplit_once('.').unwrap().0), "deploy", "invalid_token"),
        ("non-JSON header", format!("{}.{}", B64.encode("not json"), good_token.split_once('.').unwrap().1), "deploy", "invalid_token"),
        ("crit header", signed(&gh, json!({"alg": "RS256", "kid": github::KID, "crit": ["exp"]}), good()), "deploy", "invalid_token"),
        ("wrong typ", signed(&gh, json!({"alg": "RS256", "kid": github::KID, "typ": "at+jwt"}), good()), "deploy", "invalid_token"),
        ("duplicate claim names", dup_claims, "deploy", "invalid_token"),
        ("empty", String::new(), "deploy", "invalid_token"),
        ("20 KiB", signed(&gh, header(), claims_with(&gh, |c| c["pad"] = json!("x".repeat(20 * 1024)))), "deploy", "invalid_token"),
        ("1 MiB", "a".repeat(1024 * 1024), "deploy", "body_too_large"),
        (
            "wrong iss",
            signed(&gh, header(), claims_with(&gh, |c| c["iss"] = json!("https://token.actions.githubusercontent.com.evil.example"))),
            "deploy",
            "untrusted_issuer",
        ),
        ("iss with a trailing slash", signed(&gh, header(), claims_with(&gh, |c| c["iss"] = json!(format!("{}/", gh.url)))), "deploy", "untrusted_issuer"),
        ("no iss", signed(&gh, header(), claims_with(&gh, |c| c.as_object_mut().unwrap().retain(|k, _| k != "iss"))), "deploy", "invalid_token"),
        ("wrong aud", gh.sign(&gh.claims(&Run::default(), "https://github.com/acme", NOW)), "deploy", "token_wrong_audience"),
        ("expired", gh.sign(&gh.claims(&Run::default(), "stint", NOW - 3600)), "deploy", "token_expired"),
        ("no exp", signed(&gh, header(), claims_with(&gh, |c| c.as_object_mut().unwrap().retain(|k, _| k != "exp"))), "deploy", "invalid_token"),
        ("exp not a number", signed(&gh, header(), claims_with(&gh, |c| c["exp"] = json!("9999999999"))), "deploy", "invalid_token"),
        ("nbf beyond the skew", signed(&gh, header(), claims_with(&gh, |c| c["nbf"] = json!(NOW + 3600))), "deploy", "invalid_token"),
        ("iat far in the future", signed(&gh, header(), claims_with(&gh, |c| c["iat"] = json!(NOW + 86_400))), "deploy", "invalid_token"),
        ("no sub", signed(&gh, header(), claims_with(&gh, |c| c.as_object_mut().unwrap().retain(|k, _| k != "sub"))), "deploy", "invalid_token"),
        ("environment changes sub", run(Run { environment: Some("prod".into()), ..Run::default() }), "deploy", "no_matching_trust_policy"),
        ("owner case", run(Run { repository: "Acme/Infra".into(), ..Run::default() }), "deploy", "no_matching_trust_policy"),
        ("%3A in an environment name", run(Run { environment: Some("prod:eu".into()), ..Run::default() }), "deploy", "no_matching_trust_policy"),
        (
            "immutable owner@id/repo@id subject",
            signed(&gh, header(), claims_with(&gh, |c| c["sub"] = json!("repo:acme@65/infra@35:ref:refs/heads/main"))),
            "deploy",
            "no_matching_trust_policy",
        ),
        ("a pull request", run(Run { event_name: "pull_request".into(), ..Run::default() }), "deploy", "no_matching_trust_policy"),
        ("another branch", run(Run { git_ref: "refs/heads/dev".into(), ..Run::default() }), "deploy", "no_matching_trust_policy"),
        ("another repository", run(Run { repository: "acme/web".into(), ..Run::default() }), "deploy", "no_matching_trust_policy"),
        ("a role without a trust policy", gh.sign(&good()), "developer", "no_trust_policy"),
        ("an unknown role", gh.sign(&good()), "superuser", "unknown_role"),
    ];
    assert!(cases.len() >= 30);
    for (name, token, role, code) in &cases {
        // Cases refused with the same record would fold (see `limits.rs`): each starts afresh.
        app.state.broker.flush_refusals(true).await.unwrap();
        let before = app.audit_head().await;
        let (s, v) = exchange_token(&app, token, role).await;
        assert!(s.is_client_error(), "{name}: {s} {v}");
        assert_eq!(v["error"].as_str(), Some(*code), "{name}: {v}");
        let events = app.audit_events_after(before).await;
        let expected = if *code == "body_too_large" { "request.refused" } else { "ci.exchange.denied" };
        assert_eq!(events.len(), 1, "{name}: {events:?}");
        assert_eq!((events[0].0.as_str(), events[0].2.as_str()), (expected, *code), "{name}");
    }
    // Explanations name the condition and what the token had.
    let (_, v) = exchange_token(&app, &run(Run { environment: Some("prod".into()), ..Run::default() }), "deploy").await;
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("StringEquals on sub: got repo:acme/infra:environment:prod") && message.contains("environment"), "{message}");
    let (_, v) = exchange_token(&app, &run(Run { repository: "Acme/Infra".into(), ..Run::default() }), "deploy").await;
    assert!(v["message"].as_str().unwrap().contains("case-sensitive"), "{v}");
    assert!(app.store.audit_after(0, 1000).await.unwrap().iter().all(|r| r.event != "credential.issued"), "no credential for any of them");
}

async fn other_grants_and_malformed_requests_are_refused(app: TestApp, gh: GithubIssuer) {
    let token = gh.sign(&gh.claims(&Run::default(), "stint", NOW));
    let (s, v) = exchange(&app, &[("grant_type", "client_credentials"), ("subject_token", &token), ("role", "deploy")]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &token)]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
    let (s, v) = exchange(
        &app,
        &[("grant_type", GRANT), ("subject_token", &token), ("role", "deploy"), ("subject_token_type", "urn:ietf:params:oauth:token-type:saml2")],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &token), ("role", "deploy"), ("audience", "https://elsewhere.example")]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")), "{v}");
    let (s, v) = exchange(
        &app,
        &[("grant_type", GRANT), ("subject_token", &token), ("role", "deploy"), ("requested_token_type", "urn:ietf:params:oauth:token-type:saml2")],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &token), ("role", "deploy"), ("unknown", "x")]).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
    // None of these consumed the token.
    let (s, v) = exchange(&app, &[("grant_type", GRANT), ("subject_token", &token), ("scope", "deploy")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn cached_keys_serve_while_the_issuer_is_unreachable(app: TestApp, gh: GithubIssuer) {
    let (s, v) = exchange_token(&app, &gh.sign(&gh.claims(&Run::default(), "stint", NOW)), "deploy").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    gh.stop();
    // Keys fetched before the outage still verify new tokens…
    let (s, v) = exchange_token(&app, &gh.sign(&gh.claims(&Run::default(), "stint", NOW)), "deploy").await;
    assert_eq!(s, StatusCode::OK, "the cached keys serve: {v}");
    // …and a token naming a key stint has never seen cannot be checked: a clear error, no credential.
    let unknown = signed(&gh, json!({ "alg": "RS256", "kid": "rotated-in-during-the-outage" }), gh.claims(&Run::default(), "stint", NOW));
    let (s, v) = exchange_token(&app, &unknown, "deploy").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_GATEWAY, Some("idp_unreachable")), "{v}");
}

/// An issuer that replaces a key under the same `kid`: the first token signed with the new
/// key makes stint fetch the key set again (once, within `jwks_min_refetch`) and is accepted.
async fn a_key_replaced_under_its_kid_is_fetched_again(app: TestApp, gh: GithubIssuer) {
    let old = gh.sign(&gh.claims(&Run::default(), "stint", NOW));
    let (s, v) = exchange_token(&app, &gh.sign(&gh.claims(&Run::default(), "stint", NOW)), "deploy").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    gh.replace_key_keeping_kid();
    let (s, v) = exchange_token(&app, &gh.sign(&gh.claims(&Run::default(), "stint", NOW + 1)), "deploy").await;
    assert_eq!(s, StatusCode::OK, "the new key was fetched: {v}");
    let (s, v) = exchange_token(&app, &old, "deploy").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "the replaced key no longer verifies: {v}");
}

macro_rules! ci_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (app, gh) = super::setup(super::Backend::Sqlite).await;
                super::$name(app, gh).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (app, gh) = super::setup(super::Backend::Postgres).await;
                super::$name(app, gh).await;
            })*
        }
    };
}

ci_tests!(
    a_workflow_on_main_gets_a_credential_once,
    a_token_replayed_in_a_race_is_answered_as_a_reuse,
    hostile_tokens_are_refused_with_the_right_code,
    other_grants_and_malformed_requests_are_refused,
    a_key_replaced_under_its_kid_is_fetched_again,
    cached_keys_serve_while_the_issuer_is_unreachable
);

/// Cedar decides for workloads too: a team policy can forbid what a trust policy admits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_policies_can_forbid_what_a_trust_policy_admits() {
    let gh = GithubIssuer::start().await;
    let dir = std::env::temp_dir().join(format!("stint-ci-cedar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("no-weekend-deploys.cedar");
    std::fs::write(
        &policy,
        "@id(\"no deploys from CI on weekends\")\nforbid(principal is Stint::Workload, action, resource == Stint::Role::\"deploy\")\nwhen { context.weekday_utc >= 5 };\n",
    )
    .unwrap();
    let toml = format!(
        "[[ci.issuer]]\nname = \"github\"\nurl = \"{}\"\ndanger_allow_http_loopback = true\n[roles.deploy]\nmax_ttl = \"1h\"\ntrust_policy = '''{}'''\n[policy]\nfiles = [{:?}]\n",
        gh.url,
        trust_policy(&gh.url),
        policy.display().to_string()
    );
    let app = spawn_app_with(Backend::Sqlite, &toml).await;
    // The harness's clock is Friday 2027-01-15, 08:00 UTC.
    let (s, v) = exchange_token(&app, &gh.sign(&gh.claims(&Run::default(), "stint", NOW)), "deploy").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let saturday = NOW + 86_400;
    app.clock.set(stint_core::Timestamp(saturday));
    let (s, v) = exchange_token(&app, &gh.sign(&gh.claims(&Run::default(), "stint", saturday)), "deploy").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("role_not_granted")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("forbidden by policy no deploys from CI on weekends"), "{v}");
    let issued = app.store.audit_after(0, 1000).await.unwrap().into_iter().find(|r| r.event == "credential.issued").unwrap();
    assert_eq!(issued.details["statement"], "statement 1 (\"InfraMain\")");
    std::fs::remove_dir_all(&dir).unwrap();
}
