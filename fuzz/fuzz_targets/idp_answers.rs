//! What an identity provider or CI issuer answers: the discovery document, the key set
//! (JWKS) and the token endpoint's answer. Whoever controls the provider's host, or sits on a
//! path stint trusts, writes these bytes.
//! Invariants: nothing panics; an accepted discovery names exactly the expected issuer and
//! only https endpoints; every key taken from a JWKS has the algorithm its type implies; a
//! token the harness signed verifies with a fuzzed key set only if that set publishes the
//! harness's key, and nothing the harness did not sign ever verifies.
#![no_main]

mod signed;

use libfuzzer_sys::fuzz_target;
use stint_core::oidc::{self, Alg, ExpectedJwt};
use stint_oidc::{Discovery, TokenResponse};

const ISSUER: &str = "https://idp.example.com";

fn discovery(body: &[u8]) {
    if let Ok(d) = Discovery::parse(body, ISSUER, false) {
        assert_eq!(d.issuer, ISSUER);
        for u in [d.authorization_endpoint.as_ref(), d.token_endpoint.as_ref(), Some(&d.jwks_uri)].into_iter().flatten() {
            assert!(u.starts_with("https://"), "accepted a non-https endpoint {u:?}");
        }
    }
    // Tests allow loopback http; nothing else gets through even then.
    if let Ok(d) = Discovery::parse(body, ISSUER, true) {
        for u in [d.authorization_endpoint.as_ref(), d.token_endpoint.as_ref(), Some(&d.jwks_uri)].into_iter().flatten() {
            let loopback = ["http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://[::1]:"].iter().any(|p| u.starts_with(p));
            assert!(u.starts_with("https://") || loopback, "accepted {u:?}");
        }
    }
}

fn jwks(body: &[u8]) {
    let Ok(keys) = oidc::parse_jwks(body) else { return };
    for k in &keys {
        assert!(matches!(k.alg(), Alg::Rs256 | Alg::Es256 | Alg::EdDsa));
    }
    let signer = signed::signer();
    let claims = serde_json::json!({ "iss": ISSUER, "aud": "stint", "sub": "s", "iat": signed::NOW, "exp": signed::NOW + 300 }).to_string();
    let token = signer.sign(r#"{"alg":"EdDSA","kid":"k1"}"#, &claims);
    let expect = ExpectedJwt { issuer: ISSUER, now: stint_core::Timestamp(signed::NOW), skew_secs: signed::SKEW };
    let harness_x = signer.public_x();
    if oidc::verify_jwt(&token, &keys, &expect).is_ok() {
        // On the bytes: serde_json skips ignored members without checking their UTF-8.
        assert!(body.windows(harness_x.len()).any(|w| w == harness_x.as_bytes()), "verified with a key set that does not publish the signing key");
    }
    // A signature the harness did not make (its last byte changed) verifies with no key set.
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    if let Ok(forged) = String::from_utf8(forged) {
        assert!(oidc::verify_jwt(&forged, &keys, &expect).is_err(), "a forged signature verified");
    }
}

fn token_response(body: &[u8]) {
    if let Ok(t) = serde_json::from_slice::<TokenResponse>(body) {
        // The ID token is only ever verified, never trusted as is.
        let _ = oidc::peek_issuer(&t.id_token);
        let _ = oidc::peek_kid(&t.id_token);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 3 {
        0 => discovery(body),
        1 => jwks(body),
        _ => token_response(body),
    }
});
