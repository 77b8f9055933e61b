//! Untrusted CI tokens and trust policies: the OIDC token parser and verifier as the token
//! exchange uses them, and the trust-policy parser and evaluator.
//! Invariants: nothing panics; nothing signed by anyone but the fixed RSA key verifies;
//! evaluating any claims against any valid policy gives a decision whose explanation names
//! a statement of that policy.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use stint_core::oidc::{self, ExpectedJwt};
use stint_core::trust::{Decision, TrustPolicy};
use stint_core::Timestamp;

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","e":"AQAB","n":"tUTqQPhbbAsXbMr12jrlvFKGg6-MePi-DgztYNk-MgWDjzbBabiHfRzRJha2GDZx29evf-o9fYq75BqRqS-b9a-vMHRwkvQN83z_tXhBQQcXaZPqaK1fjQO0xjD62VsLE719lqv3oocGBjfh9aeNdzsqv3FDDrWV0voN1gef1DhDTjCzCmQ_-KhtRAsAjNLTpGfLieuxw0AFSIsUdtvIV8oTnaJaEJagN3SVLSNNTPLWQ_w49U1ESer4K9RIr3KykyNi4SDpD-9GAq5SmM51KjdPSzdEte53r4DvLOd071cjS2fxdLnLyzzW2UA4JRB8ptLqxjSeM4Nqo-Zp4kb-4w"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The input as a token: the fuzzer cannot produce this key's signatures.
    let keys = oidc::parse_jwks(JWKS.as_bytes()).expect("fixed JWKS parses");
    let expect = ExpectedJwt { issuer: ISSUER, now: Timestamp(1_800_000_000), skew_secs: 60 };
    assert!(oidc::verify_jwt(text, &keys, &expect).is_err());
    let _ = oidc::peek_issuer(text);

    // The input as a policy, then as claims for a fixed policy.
    let issuers = vec!["token.actions.githubusercontent.com".to_owned()];
    if let Ok((policy, _)) = TrustPolicy::parse(text, &issuers) {
        let claims: BTreeMap<String, serde_json::Value> = [("sub", "repo:acme/infra:ref:refs/heads/main"), ("aud", "stint")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        check(&policy, &claims);
    }
    let fixed = r#"{"Statement":{"Effect":"Allow","Principal":{"Federated":"token.actions.githubusercontent.com"},"Action":"sts:AssumeRoleWithWebIdentity",
        "Condition":{"StringEquals":{"aud":"stint"},"StringLike":{"sub":"repo:acme/*"},"ForAllValues:StringNotLike":{"groups":["*admin*"]},"Null":{"environment":"true"}}}}"#;
    let (policy, _) = TrustPolicy::parse(fixed, &issuers).expect("fixed policy parses");
    if let Ok(claims) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(text) {
        check(&policy, &claims);
    }
});

fn check(policy: &TrustPolicy, claims: &BTreeMap<String, serde_json::Value>) {
    let e = policy.evaluate(ISSUER, claims);
    assert_eq!(e.statements.len(), policy.statements.len());
    match e.decision {
        Decision::Allowed { statement } | Decision::Denied { statement } => assert!(e.statements[statement].matched),
        Decision::NoMatch => assert!(e.statements.iter().all(|s| !s.matched || s.effect == stint_core::trust::Effect::Deny)),
    }
}
