//! What an agent sends to enroll and to ask for credentials (`POST /v1/workload/join`,
//! `/attest`, `/creds`, `/status`): any text as an assertion (`workload::peek_kid`, then
//! `verify_assertion` against a fixed enrolled key) and as a public key (`parse_public_key`).
//! The first byte picks which; the harness also signs a valid assertion and lets the fuzzer
//! change it (structure-aware: the rest of the input is spliced into its claims).
//! Invariants: nothing panics; nothing verifies that the enrolled key did not sign; an
//! accepted assertion names the workload and the audience, is current and lives at most
//! `ASSERTION_MAX_SECS`; a parsed public key round-trips.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use stint_core::crypto::SigningKey;
use stint_core::ids::{WorkloadId, WorkloadName};
use stint_core::workload::{encode_public_key, parse_public_key, peek_kid, verify_assertion, WorkloadKey, ASSERTION_MAX_SECS, ASSERTION_SKEW_SECS};
use stint_core::Timestamp;

const NOW: Timestamp = Timestamp(1_800_000_000);
const AUD: &str = "https://stint.example";

struct Fixture {
    key: SigningKey,
    enrolled: WorkloadKey,
    name: WorkloadName,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_seed(&[9u8; 32]).expect("a 32-byte seed");
        let enrolled = WorkloadKey {
            kid: key.kid().to_owned(),
            workload_id: WorkloadId::from_trusted("w_fuzzfuzzfuzzfuzzfuzzfuzzfu".into()),
            public: key.public().bytes(),
            enrolled_by: "join_token".into(),
            created_at: NOW,
            revoked_at: None,
        };
        Fixture { key, enrolled, name: WorkloadName::parse("api").expect("a valid name") }
    })
}

fn check(token: &str) {
    let f = fixture();
    let _ = peek_kid(token);
    if let Ok(a) = verify_assertion(token, &f.enrolled, &f.name, AUD, NOW) {
        assert_eq!((a.claims.iss.as_str(), a.claims.sub.as_str(), a.claims.aud.as_str(), a.kid.as_str()), ("api", "api", AUD, f.key.kid()));
        assert!(a.claims.exp > a.claims.iat && a.claims.exp.0 - a.claims.iat.0 <= ASSERTION_MAX_SECS, "{:?}", a.claims);
        assert!(a.claims.iat.0 <= NOW.0 + ASSERTION_SKEW_SECS && NOW.0 < a.claims.exp.0 + ASSERTION_SKEW_SECS, "{:?}", a.claims);
        assert!(!a.claims.jti.is_empty() && a.claims.jti.len() <= 64);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check(text);
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(k) = parse_public_key(text) {
                    assert_eq!(parse_public_key(&encode_public_key(&k)).expect("round-trips").kid(), k.kid());
                }
            }
        }
        _ => {
            // The fuzzer writes the claims (as JSON text); the harness signs them with the
            // enrolled key under a proper header: what verifies is the claims' checks alone.
            let f = fixture();
            let header = B64.encode(format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, f.key.kid()));
            let body = format!("{header}.{}", B64.encode(rest));
            let token = format!("{body}.{}", B64.encode(f.key.sign(body.as_bytes())));
            check(&token);
            // The same claims under a changed signature never verify.
            let mut forged = token.into_bytes();
            let last = forged.len() - 2;
            forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).expect("ASCII");
            assert!(verify_assertion(&forged, &f.enrolled, &f.name, AUD, NOW).is_err(), "a changed signature verified");
        }
    }
});
