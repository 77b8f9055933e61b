//! ID tokens past the signature: any account at the identity provider shapes its own ID
//! token's email, groups, `amr` and `acr`. The harness signs whatever header and claims the
//! fuzzer writes, then runs what the SSO callback runs: `oidc::verify_id_token` (the JWT
//! checks, then audience, `azp`, nonce) and the mapping to a person
//! (`SsoProvider::claimed_person`: verified email, allowed domain, MFA, groups).
//! Invariants: nothing panics; accepted tokens passed every check (checked independently on
//! the claims as written); only a verified email of an allowed domain signs in where domains
//! are restricted; MFA is only what the token asserts; groups are only the mapped ones.
#![no_main]

mod signed;

use std::collections::BTreeMap;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stint_core::broker::SsoProvider;
use stint_core::ids::GroupName;
use stint_core::oidc::{self, Expected};
use stint_core::{Timestamp, Ttl};

const ISSUER: &str = "https://idp.example.com";

fn provider(restricted: bool, step_up: bool, assume_verified: bool) -> SsoProvider {
    let group = |g: &str| GroupName::parse(g).expect("a valid group name");
    SsoProvider {
        name: "corp".into(),
        issuer: ISSUER.into(),
        client_id: "stint".into(),
        email_claim: "email".into(),
        groups_claim: "groups".into(),
        allowed_domains: if restricted { vec!["example.com".into()] } else { vec![] },
        insecure_assume_email_verified: assume_verified,
        mfa_amr: vec!["mfa".into(), "otp".into()],
        mfa_acr: vec!["phr".into()],
        step_up_totp: step_up,
        groups: BTreeMap::from([("admins".into(), vec![group("admins"), group("developers")]), ("devs".into(), vec![group("developers")])]),
        session_ttl: Ttl::from_secs(3600).expect("a valid TTL"),
        provider_session: None,
        skew_secs: signed::SKEW,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(w) = signed::Written::new(&mut u, ISSUER, &["stint", "other-client"]) else { return };
    let Ok((restricted, step_up, assume_verified)) = <(bool, bool, bool) as libfuzzer_sys::arbitrary::Arbitrary>::arbitrary(&mut u) else { return };
    let s = signed::signer();
    let token = s.sign(&w.header, &w.claims);
    let expect = Expected { issuer: ISSUER, client_id: "stint", nonce: Some("n-1"), now: Timestamp(signed::NOW), skew_secs: signed::SKEW };
    assert!(oidc::verify_id_token(&token, &s.other_keys, &expect).is_err(), "verified with a key that did not sign it");
    let Ok(t) = oidc::verify_id_token(&token, &s.keys, &expect) else { return };
    signed::assert_accepted(&w, &t, ISSUER);
    let c = &t.claims;
    let auds: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    assert!(auds.contains(&"stint"), "{w:?}");
    // (stint reads `aud` and `azp` as strings only: a non-string `azp` counts as absent.)
    assert!(c.get("azp").and_then(Value::as_str).map_or(auds.len() == 1, |azp| azp == "stint"), "{w:?}");
    assert_eq!(c.get("nonce").and_then(Value::as_str), Some("n-1"), "{w:?}");

    let p = provider(restricted, step_up, assume_verified);
    let said_verified = match c.get("email_verified") {
        Some(v) => v == &Value::Bool(true) || v == "true",
        None => assume_verified,
    };
    let amr: Vec<&str> = c.get("amr").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let acr = c.get("acr").and_then(Value::as_str);
    let asserted = amr.iter().any(|m| p.mfa_amr.iter().any(|v| v == m)) || acr.is_some_and(|a| p.mfa_acr.iter().any(|v| v == a));
    match p.claimed_person(&t) {
        Ok(person) => {
            assert_eq!(person.email_verified, said_verified, "{w:?}");
            if restricted {
                let email = person.email.as_deref().expect("an email");
                assert!(person.email_verified && email.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case("example.com")), "{w:?}");
            }
            match person.mfa.as_deref() {
                Some(m) => {
                    let ok = m.strip_prefix("amr:").is_some_and(|m| amr.contains(&m) && p.mfa_amr.iter().any(|v| v == m))
                        || m.strip_prefix("acr:").is_some_and(|a| acr == Some(a) && p.mfa_acr.iter().any(|v| v == a));
                    assert!(ok, "{m} was not asserted: {w:?}");
                }
                None => assert!(step_up && !asserted, "{w:?}"),
            }
            match (&person.groups, c.get("groups")) {
                (None, None) => {}
                (Some(groups), Some(claim)) => {
                    let named: Vec<&str> = match claim {
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        Value::String(s) => vec![s.as_str()],
                        _ => vec![],
                    };
                    let allowed: Vec<&GroupName> = named.iter().filter_map(|g| p.groups.get(*g)).flatten().collect();
                    assert!(groups.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
                    assert!(groups.iter().all(|g| allowed.contains(&g)), "{groups:?} from {claim}");
                    assert!(allowed.iter().all(|g| groups.contains(g)), "{groups:?} from {claim}");
                }
                other => panic!("groups {other:?}"),
            }
        }
        Err(e) => match e.code() {
            "email_domain_not_allowed" => assert!(restricted, "{w:?}"),
            "mfa_required" => assert!(!step_up && !asserted, "{w:?}"),
            other => panic!("{other}: {e}"),
        },
    }
});
