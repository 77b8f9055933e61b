//! A workload's way in, through the broker itself on a real SQLite store (in `/dev/shm`): an
//! agent enrolling with its platform's token (`Broker::attest`, `/v1/workload/attest`) over
//! claims the fuzzer writes and the harness signs as the platform's issuer, and an enrolled
//! agent asking for the role token (`Broker::workload_caller` then `workload_creds`,
//! `/v1/workload/creds`) with assertions whose claims the fuzzer writes and the harness signs
//! with the agent's key. Anyone who can read a pod's token file holds a platform token; a
//! proxy that logs requests holds assertions.
//! Invariants: nothing panics; a platform token is accepted at most once (presented again at
//! once it is refused as `token_replayed`, and no token whose `jti`, or without one whose
//! header and claims, was accepted before in the run is ever accepted), and only when it
//! verified and its issuer, `sub` and `aud` are the workload's binding; an assertion is
//! accepted at most once (again: `assertion_replayed`; no `jti` twice), and only when it
//! names the workload and this server and is current, living at most `ASSERTION_MAX_SECS`;
//! what it gets is the workload's token for its role, naming the agent's key, for at most the
//! role's `service_ttl`.
#![no_main]

mod scratch;
mod signed;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stint_core::broker::{AttestRequest, Broker, CiIssuer, InlinePasswordWork, NoObserver, WorkloadAsk, WorkloadCreds};
use stint_core::crypto::{MasterKey, SigningKey};
use stint_core::error::Result;
use stint_core::ids::{RoleName, WorkloadId, WorkloadName};
use stint_core::oidc::{self, ExpectedJwt};
use stint_core::secret::SecretString;
use stint_core::store::{Change, Mutation};
use stint_core::time::ManualClock;
use stint_core::workload::{encode_public_key, PlatformBinding, Workload, WorkloadKey, ASSERTION_MAX_SECS, ASSERTION_SKEW_SECS};
use stint_core::Timestamp;

const ISSUER: &str = "https://kubernetes.default.svc";
/// The workload's binding: the issuer's `sub` that stands for it, and the audience.
const SUBJECT: &str = "repo:acme/infra:ref:refs/heads/main";
const AUDIENCE: &str = "stint";
const SERVICE_TTL_SECS: i64 = 900;

const CONFIG: &str = r#"
[ci]
clock_skew = "60s"

[[ci.issuer]]
name = "k8s"
url = "https://kubernetes.default.svc"

[roles.app]
max_ttl = "1h"
service_ttl = "15m"

"#;

struct Harness {
    rt: tokio::runtime::Runtime,
    broker: Broker,
    /// The server's issuer URL: the audience of an assertion.
    server: String,
    /// The enrolled agent's key.
    agent: SigningKey,
    /// The `jti`s, or header and claims, of every platform token and assertion accepted.
    accepted: Mutex<HashSet<String>>,
    /// Seeds of the fresh keys agents enroll with.
    keys: AtomicU64,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (cfg, data) = scratch::config("workload-exchange", &[CONFIG, scratch::UNLIMITED].concat());
        let agent = SigningKey::from_seed(&[7u8; 32]).expect("a 32-byte seed");
        let server = cfg.broker.issuer.clone();
        let broker = rt.block_on(async {
            let store = stint_store::open("sqlite", &data).await.expect("store");
            let (kek, _) = MasterKey::generate(&mut rand_core::OsRng);
            let work = Arc::new(InlinePasswordWork::new(&mut rand_core::OsRng).expect("password work"));
            // The clock stands at the signed tokens' "now": nothing expires during a run.
            let now = Timestamp(signed::NOW);
            let broker = Broker::new(
                cfg.broker.clone(),
                store.clone(),
                Arc::new(ManualClock::new(now)),
                stint_core::broker::os_entropy(),
                kek,
                work,
                Arc::new(NoObserver),
            )
            .with_ci_issuers([(ISSUER.to_owned(), Arc::new(signed::Issuer) as Arc<dyn CiIssuer>)].into());
            broker.start(&cfg.digest()).await.expect("broker starts");
            // The workload `api`, bound to the platform's identity, with one agent enrolled.
            let id = WorkloadId::from_trusted("w_fuzzfuzzfuzzfuzzfuzzfuzzfu".into());
            let platform = PlatformBinding { issuer: "k8s".into(), subject: SUBJECT.into(), audience: AUDIENCE.into() };
            let w = Workload {
                id: id.clone(),
                name: WorkloadName::parse("api").expect("a name"),
                roles: vec![RoleName::parse("app").expect("a role")],
                platform: Some(platform),
                disabled: false,
                created_at: now,
            };
            let key = WorkloadKey {
                kid: agent.kid().to_owned(),
                workload_id: id,
                public: agent.public().bytes(),
                enrolled_by: "join_token".into(),
                created_at: now,
                revoked_at: None,
            };
            store.apply(Change::default().with(Mutation::InsertWorkload(w)).with(Mutation::InsertWorkloadKey(key))).await.expect("the workload");
            broker
        });
        Harness { rt, broker, server, agent, accepted: Mutex::new(HashSet::new()), keys: AtomicU64::new(1) }
    })
}

fn first_time(h: &Harness, id: String, what: &dyn std::fmt::Debug) {
    assert!(h.accepted.lock().expect("not poisoned").insert(id), "accepted twice: {what:?}");
}

/// A fresh agent key each call, as each pod's agent generates its own.
fn fresh_key(h: &Harness) -> String {
    let n = h.keys.fetch_add(1, Ordering::Relaxed);
    let mut seed = [1u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    encode_public_key(&SigningKey::from_seed(&seed).expect("a 32-byte seed").public())
}

fn attest(h: &Harness, workload: &str, token: &str) -> Result<stint_core::broker::WorkloadEnrolled> {
    let req = AttestRequest { workload: workload.to_owned(), token: SecretString::new(token.to_owned()), public_key: fresh_key(h), addr: "203.0.113.7".into() };
    h.rt.block_on(h.broker.attest(req))
}

fn platform_token(u: &mut Unstructured) {
    let Ok(w) = signed::Written::new(u, ISSUER, &[AUDIENCE, "sts.amazonaws.com"]) else { return };
    let workload = if u.ratio(1, 8).unwrap_or(false) { "billing" } else { "api" };
    let s = signed::signer();
    let token = s.sign(&w.header, &w.claims);
    let h = harness();
    let Ok(enrolled) = attest(h, workload, &token) else { return };

    // Accepted: it verified, and it is the workload's platform identity.
    let t = oidc::verify_jwt(&token, &s.keys, &ExpectedJwt { issuer: ISSUER, now: Timestamp(signed::NOW), skew_secs: signed::SKEW })
        .expect("an accepted token verifies");
    signed::assert_accepted(&w, &t, ISSUER);
    let claims: serde_json::Map<String, Value> = serde_json::from_str(&w.claims).expect("accepted claims are JSON");
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "accepted without the binding's audience: {w:?}");
    assert_eq!((t.subject.as_str(), workload, enrolled.workload.as_str()), (SUBJECT, "api", "api"), "{w:?}");

    // At most once, whatever key the agent enrolls with.
    first_time(h, format!("platform {}", signed::identity(&token, &claims)), &w);
    match attest(h, workload, &token) {
        Ok(_) => panic!("a platform token was accepted again at once: {w:?}"),
        Err(e) => assert_eq!(e.code(), "token_replayed", "{w:?}"),
    }
}

/// A time near the broker's "now", or something that is not quite one.
fn time(u: &mut Unstructured) -> libfuzzer_sys::arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=7)? {
        0 => Value::from(i64::arbitrary(u)?),
        1 => Value::from(*u.choose(&[i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 59, 0, -1])?),
        2 => Value::from(signed::NOW as f64 + 0.5),
        3 => Value::from(signed::NOW.to_string()),
        _ => Value::from(signed::NOW + i64::from(u.int_in_range(-400i16..=400)?)),
    })
}

/// One of `picks`, or an arbitrary string, now and then another type or nothing.
fn text(u: &mut Unstructured, picks: &[&str]) -> libfuzzer_sys::arbitrary::Result<Option<Value>> {
    Ok(match u.int_in_range(0..=15)? {
        0 => None,
        1 => Some(Value::from(<&str>::arbitrary(u)?)),
        2 => Some(Value::from(i64::arbitrary(u)?)),
        3 => Some(Value::Null),
        _ => Some(Value::from(*u.choose(picks)?)),
    })
}

fn assertion(u: &mut Unstructured) {
    let h = harness();
    let Ok(claims) = (|| -> libfuzzer_sys::arbitrary::Result<serde_json::Map<String, Value>> {
        let mut c = serde_json::Map::new();
        for (name, picks) in [("iss", &["api", "api", "billing", "API"][..]), ("sub", &["api", "api", "billing", ""][..])] {
            if let Some(v) = text(u, picks)? {
                c.insert(name.into(), v);
            }
        }
        if let Some(v) = text(u, &[h.server.as_str(), h.server.as_str(), "https://other.example", ""])? {
            c.insert("aud".into(), v);
        }
        for name in ["iat", "exp"] {
            if !u.ratio(1, 16)? {
                c.insert(name.into(), time(u)?);
            }
        }
        let long = "j".repeat(65);
        if let Some(v) = text(u, &["j-1", "j-2", "j-3", "", &long])? {
            c.insert("jti".into(), v);
        }
        if u.ratio(1, 16)? {
            c.insert(<&str>::arbitrary(u)?.to_owned(), Value::from(<&str>::arbitrary(u)?));
        }
        Ok(c)
    })() else {
        return;
    };
    let header = if u.ratio(1, 16).unwrap_or(false) {
        serde_json::json!({ "alg": *u.choose(&["none", "EdDSA", "HS256"]).unwrap_or(&"none"), "kid": h.agent.kid() })
    } else {
        serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": h.agent.kid() })
    };
    let body = format!("{}.{}", B64.encode(header.to_string()), B64.encode(Value::Object(claims.clone()).to_string()));
    let token = format!("{body}.{}", B64.encode(h.agent.sign(body.as_bytes())));
    let ask = || WorkloadAsk { role: "app".into(), backend: Some("token".into()), ..WorkloadAsk::default() };
    let creds = |token: &str| {
        h.rt.block_on(async {
            let caller = h.broker.workload_caller(&SecretString::new(token.to_owned()), "203.0.113.7").await?;
            h.broker.workload_creds(&caller, ask()).await
        })
    };
    let Ok(issued) = creds(&token) else { return };
    let WorkloadCreds::Token(issued) = issued else { panic!("the role has no backend: a token was asked for") };

    // Accepted: the claims named the workload and this server, and were current.
    let num = |n: &str| claims.get(n).and_then(Value::as_i64).unwrap_or_else(|| panic!("{n} is not an integer: {claims:?}"));
    let (iat, exp) = (num("iat"), num("exp"));
    assert_eq!((claims.get("iss"), claims.get("sub")), (Some(&Value::from("api")), Some(&Value::from("api"))), "{claims:?}");
    assert_eq!(claims.get("aud").and_then(Value::as_str), Some(h.server.as_str()), "{claims:?}");
    assert!(iat <= signed::NOW + ASSERTION_SKEW_SECS && exp > iat && exp - iat <= ASSERTION_MAX_SECS, "{claims:?}");
    assert!(signed::NOW < exp + ASSERTION_SKEW_SECS, "expired: {claims:?}");
    let jti = claims.get("jti").and_then(Value::as_str).expect("a string jti");
    assert!(!jti.is_empty() && jti.len() <= 64, "{claims:?}");
    let c = &issued.claims;
    assert_eq!((c.sub.as_str(), c.role.as_str(), c.agent_key.as_deref()), ("workload:api", "app", Some(h.agent.kid())), "{c:?}");
    assert!(c.sid.is_none() && c.exp.0 > c.iat.0 && c.exp.0 - c.iat.0 <= SERVICE_TTL_SECS, "{c:?}");

    // At most once.
    first_time(h, format!("assertion {}", signed::identity(&token, &claims)), &claims);
    match creds(&token) {
        Ok(_) => panic!("an assertion was accepted again at once: {claims:?}"),
        Err(e) => assert_eq!(e.code(), "assertion_replayed", "{claims:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut u = Unstructured::new(rest);
    if pick % 2 == 0 {
        platform_token(&mut u);
    } else {
        assertion(&mut u);
    }
});
