//! Against a real OpenID Provider: panva's oidc-provider (OpenID Certified), run by
//! `tests/oidc/provider.mjs` (installed by scripts/test). The browser's part of the
//! Authorization Code flow is driven with plain HTTP: follow redirects, post the login form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use stint_core::oidc::{self, Expected};
use stint_core::secret::SecretString;
use stint_core::Timestamp;
use stint_oidc::Provider;
use stint_testkit::{browser_login, free_port, Idp, IDP_CLIENT_SECRET as SECRET};

/// What a login produced: the authorization code and what stint must remember to redeem it.
struct Authorized {
    code: String,
    state: String,
    sent_state: String,
    nonce: String,
    verifier: SecretString,
}

fn random() -> String {
    oidc::pkce_verifier(&mut rand_core::OsRng).expose()[..22].to_owned()
}

/// Starts an authorization request as stint would and lets the browser stand-in log in.
async fn login(p: &Provider, redirect_uri: &str, user: &str, password: &str) -> Authorized {
    let verifier = oidc::pkce_verifier(&mut rand_core::OsRng);
    let (state, nonce) = (random(), random());
    let mut url = reqwest::Url::parse(p.discovery.authorization_endpoint.as_deref().unwrap()).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "stint")
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email groups")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &oidc::pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let cb = browser_login(url.as_str(), redirect_uri, user, password).await;
    Authorized { code: cb.code, state: cb.state, sent_state: state, nonce, verifier }
}

fn expected<'a>(issuer: &'a str, nonce: &'a str) -> Expected<'a> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    Expected { issuer, client_id: "stint", nonce: Some(nonce), now: Timestamp(now), skew_secs: 30 }
}

#[tokio::test]
async fn code_flow_with_pkce_yields_verified_identity_and_mfa() {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let idp = Idp::start(free_port(), &redirect, "k1");
    let p = Provider::discover(&idp.issuer, true).await.unwrap();
    let secret = SecretString::new(SECRET.into());
    let mfa = ["mfa".to_owned(), "otp".to_owned(), "hwk".to_owned()];

    let a = login(&p, &redirect, "alice", "alice-password").await;
    assert_eq!(a.state, a.sent_state, "state comes back unchanged");
    let tokens = p.exchange_code("stint", &secret, &a.code, &redirect, &a.verifier).await.unwrap();
    let id = p.verify_id_token(&tokens.id_token, &expected(&idp.issuer, &a.nonce)).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.claims["email"], "alice@example.com");
    assert_eq!(id.claims["groups"], serde_json::json!(["developers"]));
    assert_eq!(oidc::asserted_mfa(&id, &mfa, &[]).as_deref(), Some("amr:otp"), "alice used a second factor: {:?}", id.claims.get("amr"));

    // The code is single use; a wrong audience or nonce is refused.
    let again = p.exchange_code("stint", &secret, &a.code, &redirect, &a.verifier).await.unwrap_err();
    assert_eq!(again.code(), "sso_code_refused");
    let mut wrong = expected(&idp.issuer, &a.nonce);
    wrong.client_id = "other";
    assert_eq!(p.verify_id_token(&tokens.id_token, &wrong).await.unwrap_err().code(), "id_token_wrong_audience");
    assert_eq!(p.verify_id_token(&tokens.id_token, &expected(&idp.issuer, "not-this-login")).await.unwrap_err().code(), "id_token_nonce_mismatch");

    // A code redeemed with another PKCE verifier is refused.
    let b = login(&p, &redirect, "bob", "bob-password").await;
    let other = oidc::pkce_verifier(&mut rand_core::OsRng);
    assert_eq!(p.exchange_code("stint", &secret, &b.code, &redirect, &other).await.unwrap_err().code(), "sso_code_refused");
    // Bob has no second factor.
    let b = login(&p, &redirect, "bob", "bob-password").await;
    let tokens = p.exchange_code("stint", &secret, &b.code, &redirect, &b.verifier).await.unwrap();
    let id = p.verify_id_token(&tokens.id_token, &expected(&idp.issuer, &b.nonce)).await.unwrap();
    assert_eq!(oidc::asserted_mfa(&id, &mfa, &[]), None, "{:?}", id.claims.get("amr"));
}

#[tokio::test]
async fn key_rotation_and_an_unreachable_provider() {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let port = free_port();
    let idp = Idp::start(port, &redirect, "old");
    let p = Provider::discover(&idp.issuer, true).await.unwrap().with_refetch_interval(Duration::ZERO);
    let a = login(&p, &redirect, "alice", "alice-password").await;
    let secret = SecretString::new(SECRET.into());
    let old_token = p.exchange_code("stint", &secret, &a.code, &redirect, &a.verifier).await.unwrap().id_token;
    assert!(p.verify_id_token(&old_token, &expected(&idp.issuer, &a.nonce)).await.is_ok());

    // The provider restarts with a new key: the cache refetches on the unknown kid.
    drop(idp);
    let idp = Idp::start(port, &redirect, "new");
    let a2 = login(&p, &redirect, "alice", "alice-password").await;
    let new_token = p.exchange_code("stint", &secret, &a2.code, &redirect, &a2.verifier).await.unwrap().id_token;
    let id = p.verify_id_token(&new_token, &expected(&idp.issuer, &a2.nonce)).await.unwrap();
    assert_eq!(id.subject, "alice");

    // The provider goes away: discovery fails with a clear error; cached keys still verify.
    drop(idp);
    let e = Provider::discover(&format!("http://127.0.0.1:{port}"), true).await.err().unwrap();
    assert_eq!(e.code(), "idp_unreachable");
    assert!(p.verify_id_token(&new_token, &expected(&format!("http://127.0.0.1:{port}"), &a2.nonce)).await.is_ok());
    assert_eq!(p.refetch().await.unwrap_err().code(), "idp_unreachable");
    assert!(p.verify_id_token(&new_token, &expected(&format!("http://127.0.0.1:{port}"), &a2.nonce)).await.is_ok(), "a failed refetch keeps the keys");
}
