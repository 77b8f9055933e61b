//! The whole CI token exchange (`/v1/token`, `/v1/sts`) on tokens the harness signs over
//! claims the fuzzer writes: the broker's `exchange` with a real SQLite store (in `/dev/shm`),
//! a GitHub-shaped trust policy, the role's lifetime, the issuance and the replay check.
//! Anyone with a GitHub account mints such tokens, and a leaked one may be presented again.
//! Invariants: nothing panics; a token is accepted at most once: presented again at once it is
//! refused as `token_replayed`, and no token whose `jti` (or, without one, whose header and
//! claims) was accepted before, in this run, is ever accepted; an accepted token verified
//! (`signed::assert_accepted`), held the `aud` and `sub` the policy asks, and got a credential
//! for the role, of the pipeline (`ci:github:<sub>`), living at most the role's CI lifetime.
#![no_main]

mod scratch;
mod signed;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stint_core::broker::{Broker, CiIssuer, ExchangeRequest, InlinePasswordWork, NoObserver};
use stint_core::crypto::MasterKey;
use stint_core::oidc::{self, ExpectedJwt};
use stint_core::secret::SecretString;
use stint_core::time::ManualClock;
use stint_core::Timestamp;

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const CI_TTL_SECS: i64 = 600;

/// One repository's main branch may deploy, for stint's audience.
const CONFIG: &str = r#"
[ci]
clock_skew = "60s"

[[ci.issuer]]
name = "github"
url = "https://token.actions.githubusercontent.com"

[roles.deploy]
max_ttl = "1h"
ci_ttl = "10m"
trust_policy = '''{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Federated":"token.actions.githubusercontent.com"},"Action":"sts:AssumeRoleWithWebIdentity",
  "Condition":{"StringEquals":{"token.actions.githubusercontent.com:aud":"stint"},
               "StringLike":{"token.actions.githubusercontent.com:sub":"repo:acme/*:ref:refs/heads/main"}}}]}'''

[roles.readonly]
max_ttl = "1h"

"#;

struct Harness {
    rt: tokio::runtime::Runtime,
    broker: Broker,
    /// The `jti`s, or header and claims, of every token accepted so far.
    accepted: Mutex<HashSet<String>>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (cfg, data) = scratch::config("ci-exchange", &[CONFIG, scratch::UNLIMITED].concat());
        let broker = rt.block_on(async {
            let store = stint_store::open("sqlite", &data).await.expect("store");
            let (kek, _) = MasterKey::generate(&mut rand_core::OsRng);
            let work = Arc::new(InlinePasswordWork::new(&mut rand_core::OsRng).expect("password work"));
            // The clock stands at the signed tokens' "now": nothing expires during a run.
            let clock = Arc::new(ManualClock::new(Timestamp(signed::NOW)));
            let broker = Broker::new(cfg.broker.clone(), store, clock, stint_core::broker::os_entropy(), kek, work, Arc::new(NoObserver))
                .with_ci_issuers([(ISSUER.to_owned(), Arc::new(signed::Issuer) as Arc<dyn CiIssuer>)].into());
            broker.start(&cfg.digest()).await.expect("broker starts");
            broker
        });
        Harness { rt, broker, accepted: Mutex::new(HashSet::new()) }
    })
}

fn request(token: &str, role: &str) -> ExchangeRequest {
    ExchangeRequest { token: SecretString::new(token.to_owned()), role: role.to_owned(), ttl: None, addr: "203.0.113.7".to_owned() }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(w) = signed::Written::new(&mut u, ISSUER, &["stint", "sts.amazonaws.com"]) else { return };
    let role = if u.ratio(1, 8).unwrap_or(false) { "readonly" } else { "deploy" };
    let s = signed::signer();
    let token = s.sign(&w.header, &w.claims);
    let h = harness();
    let first = h.rt.block_on(h.broker.exchange(request(&token, role)));
    let Ok(issued) = first else { return };

    // Accepted: the token verified, and the policy's conditions held.
    let t = oidc::verify_jwt(&token, &s.keys, &ExpectedJwt { issuer: ISSUER, now: Timestamp(signed::NOW), skew_secs: signed::SKEW })
        .expect("an accepted token verifies");
    signed::assert_accepted(&w, &t, ISSUER);
    let claims: serde_json::Map<String, Value> = serde_json::from_str(&w.claims).expect("accepted claims are JSON");
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == "stint",
        Some(Value::Array(a)) => a.iter().any(|a| a == "stint"),
        _ => false,
    };
    assert!(aud_ok, "accepted without the audience: {w:?}");
    let sub = t.subject.as_str();
    assert!(sub.starts_with("repo:acme/") && sub.ends_with(":ref:refs/heads/main"), "accepted for another subject: {w:?}");
    assert_eq!(role, "deploy", "accepted for a role without a trust policy: {w:?}");
    let c = &issued.claims;
    assert_eq!((c.role.as_str(), c.sub.as_str()), ("deploy", format!("ci:github:{sub}").as_str()));
    assert!(c.sid.is_none() && c.exp.0 - c.iat.0 <= CI_TTL_SECS && c.exp.0 > c.iat.0, "{c:?}");

    // At most once.
    assert!(h.accepted.lock().expect("not poisoned").insert(signed::identity(&token, &claims)), "the same token was accepted twice: {w:?}");
    match h.rt.block_on(h.broker.exchange(request(&token, role))) {
        Ok(_) => panic!("a token was accepted again at once: {w:?}"),
        Err(e) => assert_eq!(e.code(), "token_replayed", "{w:?}"),
    }
});
