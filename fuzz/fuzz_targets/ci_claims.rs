//! CI tokens past the signature: anyone with a GitHub account mints tokens whose `sub`,
//! `ref` and `repository` they choose. The harness signs whatever header and claims the
//! fuzzer writes, then runs what `/v1/token` and `/v1/sts` run on them: the JWT checks
//! (`oidc::verify_jwt`: header, `check_claims`, `int_claim`), the trust policy, and the STS
//! answer's escaping.
//! Invariants: nothing panics; a token verifies only with the key that signed it, and only
//! with alg EdDSA, `iss`, `exp`, `iat`, `nbf` and `sub` as they must be; a policy allows only
//! claims its conditions hold for (checked independently), and explains every refusal; the
//! subject, audience and refusal escaped for the STS XML are well-formed character data.
#![no_main]

mod signed;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stint_api::html::escape;
use stint_core::oidc::{self, ExpectedJwt};
use stint_core::trust::{Decision, TrustPolicy};
use stint_core::Timestamp;

const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// GitHub's documented shape: one repository's main branch, outside environments, for STS.
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Main","Effect":"Allow","Principal":{"Federated":"token.actions.githubusercontent.com"},"Action":"sts:AssumeRoleWithWebIdentity",
   "Condition":{"StringEquals":{"token.actions.githubusercontent.com:aud":"sts.amazonaws.com"},
                "StringLike":{"token.actions.githubusercontent.com:sub":"repo:acme/*:ref:refs/heads/main"},
                "Null":{"environment":"true"}}},
  {"Effect":"Deny","Principal":{"Federated":"token.actions.githubusercontent.com"},"Action":"sts:AssumeRoleWithWebIdentity",
   "Condition":{"StringEquals":{"repository":"acme/other"}}}]}"#;

fn policy() -> &'static TrustPolicy {
    static P: std::sync::OnceLock<TrustPolicy> = std::sync::OnceLock::new();
    P.get_or_init(|| TrustPolicy::parse(POLICY, &["token.actions.githubusercontent.com".to_owned()]).expect("the fixed policy parses").0)
}

/// The claim's string values as IAM reads them (a list claim: any of its values).
fn values(c: &std::collections::BTreeMap<String, Value>, name: &str) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
        _ => None,
    };
    match c.get(name) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(w) = signed::Written::new(&mut u, ISSUER, &["sts.amazonaws.com", "stint"]) else { return };
    let s = signed::signer();
    let token = s.sign(&w.header, &w.claims);
    let expect = ExpectedJwt { issuer: ISSUER, now: Timestamp(signed::NOW), skew_secs: signed::SKEW };
    assert!(oidc::verify_jwt(&token, &s.other_keys, &expect).is_err(), "verified with a key that did not sign it");
    let _ = oidc::peek_issuer(&token);
    let t = match oidc::verify_jwt(&token, &s.keys, &expect) {
        Ok(t) => t,
        Err(e) => {
            assert_eq!(e.fault(), stint_core::Fault::Peer, "{e}");
            signed::assert_xml_text(&escape(&e.to_string()));
            return;
        }
    };
    signed::assert_accepted(&w, &t, ISSUER);

    let e = policy().evaluate(&t.issuer, &t.claims);
    assert_eq!(e.statements.len(), 2);
    let c = &t.claims;
    match e.decision {
        Decision::Allowed { statement } => {
            assert_eq!(statement, 0);
            assert!(values(c, "aud").iter().any(|a| a == "sts.amazonaws.com"), "{w:?}");
            assert!(values(c, "sub").iter().any(|s| s.starts_with("repo:acme/") && s.ends_with(":ref:refs/heads/main") && s.len() >= 30), "{w:?}");
            assert!(matches!(c.get("environment"), None | Some(Value::Null)), "{w:?}");
            assert!(!values(c, "repository").iter().any(|r| r == "acme/other"), "{w:?}");
            assert!(e.refusal().is_empty());
        }
        Decision::Denied { statement } => {
            assert_eq!(statement, 1);
            assert!(values(c, "repository").iter().any(|r| r == "acme/other"), "{w:?}");
        }
        Decision::NoMatch => assert!(!e.refusal().is_empty()),
    }
    // What /v1/sts writes between tags: the subject, the audience, the refusal.
    let refusal = e.refusal();
    for text in [t.subject.as_str(), c.get("aud").and_then(Value::as_str).unwrap_or(""), refusal.as_str()] {
        signed::assert_xml_text(&escape(text));
    }
});
