//! SSH public keys as people paste them to `POST /v1/creds` (`stint ssh-cert`): any
//! authenticated person chooses these bytes, and stint signs a certificate over them.
//! Invariants: nothing panics; a key that parses round-trips (its blob, written back as
//! standard base64, parses to the same key); its fingerprint is `SHA256:`; a certificate
//! signed for it with a valid spec is one line of the certificate type, and names the key.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use stint_core::crypto::SigningKey;
use stint_core::sshcert::{sign_user_certificate, CertSpec, PublicKey};
use stint_core::Timestamp;

fn ca() -> &'static SigningKey {
    static CA: OnceLock<SigningKey> = OnceLock::new();
    CA.get_or_init(|| SigningKey::from_seed(&[7u8; 32]).expect("a 32-byte seed"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok(key) = PublicKey::parse(line) else { return };
    let again = format!("{} {} {}", key.key_type().name(), STANDARD.encode(key.blob()), key.comment());
    let reparsed = PublicKey::parse(&again).expect("a parsed key written back parses");
    assert_eq!((reparsed.key_type(), reparsed.blob()), (key.key_type(), key.blob()));
    assert!(key.fingerprint().starts_with("SHA256:"));
    let spec = CertSpec {
        serial: 1,
        key_id: "fuzz".into(),
        principals: vec!["deploy".into()],
        valid_after: Timestamp(1_800_000_000),
        valid_before: Timestamp(1_800_003_600),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
    };
    let cert = sign_user_certificate(ca(), &key, &spec, [3u8; 32]).expect("a valid spec signs any parsed key");
    assert!(!cert.contains('\n') && cert.starts_with(&format!("{} ", key.key_type().cert_name())), "{cert}");
    let body = cert.split(' ').nth(1).and_then(|b| STANDARD.decode(b).ok()).expect("the certificate is base64");
    // The key's own fields follow the certificate type and nonce inside the certificate.
    let fields = &key.blob()[4 + key.key_type().name().len()..];
    assert!(body.windows(fields.len().max(1)).any(|w| w == fields), "the certificate names the key");
});
