//! Untrusted tokens: the JWT parser and verifier, and the opaque bearer parser.
//! Invariant: any input is refused or accepted without panicking, and nothing but a
//! token signed by the fixed key verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stint_core::bearer::{self, BearerKind};
use stint_core::crypto::SigningKey;
use stint_core::{jwt, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    // A fixed key: the fuzzer cannot produce its signatures, so nothing may verify.
    let key = SigningKey::from_seed(&[7u8; 32]).expect("32-byte seed");
    let audiences = ["stint".to_owned()];
    assert!(jwt::verify(token, &[key.public()], "https://stint.test", &audiences, Timestamp(1_800_000_000)).is_err());
    let _ = jwt::peek_kid(token);
    for kind in [BearerKind::Session, BearerKind::Enrollment, BearerKind::Bootstrap] {
        if let Ok(p) = bearer::parse(kind, token, "x") {
            assert!(!p.matches(&[0u8; 32]));
        }
    }
});
