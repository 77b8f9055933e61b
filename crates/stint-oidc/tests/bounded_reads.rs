//! An issuer or identity provider that answers without end (no `Content-Length`, the body
//! ends only when the connection does) or announces a huge body: stint stops reading at its
//! cap and refuses with `idp_answer_too_large`, instead of holding the stream in memory until
//! the 10 s request timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use stint_core::secret::SecretString;
use stint_oidc::{Provider, MAX_ANSWER_BYTES};
use stint_testkit::github::{jwk, rsa, SIGNING_KEY};
use stint_testkit::hostile::{Answer, Hostile, PROMPT};

fn discovery(url: &str) -> Answer {
    Answer::Json(
        serde_json::json!({
            "issuer": url,
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "jwks_uri": format!("{url}/jwks"),
        })
        .to_string(),
    )
}

fn jwks() -> Answer {
    Answer::Json(serde_json::json!({ "keys": [jwk(&rsa(SIGNING_KEY), "k1")] }).to_string())
}

async fn refused(p: impl std::future::Future<Output = stint_core::error::Result<Provider>>) -> stint_core::Error {
    let started = Instant::now();
    let Err(e) = p.await else { panic!("accepted") };
    assert!(started.elapsed() < PROMPT, "refused after {:?}: {e}", started.elapsed());
    e
}

#[tokio::test]
async fn an_endless_discovery_document_is_refused_while_reading() {
    let idp = Hostile::start(|_| vec![("/.well-known/openid-configuration", Answer::Endless(200, r#"{"issuer": ""#))]).await;
    let e = refused(Provider::discover(&idp.url, true)).await;
    assert_eq!(e.code(), "idp_answer_too_large", "{e}");
    assert_eq!(e.to_string(), format!("the identity provider's answer (discovery) is larger than {} KiB", MAX_ANSWER_BYTES / 1024));
    idp.reader_hung_up().await;
}

#[tokio::test]
async fn an_endless_key_set_is_refused_while_reading() {
    let idp = Hostile::start(|url| vec![("/.well-known/openid-configuration", discovery(url)), ("/jwks", Answer::Endless(200, r#"{"keys": ["#))]).await;
    let e = refused(Provider::discover(&idp.url, true)).await;
    assert_eq!(e.code(), "idp_answer_too_large", "{e}");
    assert!(e.to_string().contains("(key set) is larger than 256 KiB"), "{e}");
    idp.reader_hung_up().await;
}

#[tokio::test]
async fn a_huge_announced_body_is_refused_without_waiting_for_it() {
    let idp = Hostile::start(|_| vec![("/.well-known/openid-configuration", Answer::Announces(1 << 40))]).await;
    let e = refused(Provider::discover(&idp.url, true)).await;
    assert_eq!(e.code(), "idp_answer_too_large", "{e}");
}

#[tokio::test]
async fn endless_token_endpoint_answers_are_refused_while_reading() {
    let secret = SecretString::new("s".into());
    let verifier = SecretString::new("v".repeat(43));
    for (status, code) in [(200, "idp_answer_too_large"), (400, "sso_code_refused")] {
        let idp = Hostile::start(|url| {
            vec![
                ("/.well-known/openid-configuration", discovery(url)),
                ("/jwks", jwks()),
                ("/token", Answer::Endless(status, r#"{"error": "invalid_grant", "x": ""#)),
            ]
        })
        .await;
        let p = Provider::discover(&idp.url, true).await.unwrap();
        let started = Instant::now();
        let e = p.exchange_code("stint", &secret, "code", "http://127.0.0.1:1/cb", &verifier).await.expect_err("refused");
        assert!(started.elapsed() < PROMPT, "refused after {:?}: {e}", started.elapsed());
        assert_eq!(e.code(), code, "HTTP {status}: {e}");
        idp.reader_hung_up().await;
    }
}
