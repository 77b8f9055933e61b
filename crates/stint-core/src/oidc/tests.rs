//! ID token verification against keys made here: RSA from fixed test keys (ring cannot
//! generate RSA keys), P-256 and Ed25519 generated per run.

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

/// Test-only RSA keys (2048-bit, PKCS#1 DER, base64), generated with `openssl genpkey` for
/// stint's tests; `stint-testkit`'s stand-in CI issuer signs with the same files.
const RSA_1: &str = include_str!("../../../stint-testkit/keys/rsa-1.pkcs1.b64");
const RSA_2: &str = include_str!("../../../stint-testkit/keys/rsa-2.pkcs1.b64");

const ISS: &str = "https://idp.example.com";
const CLIENT: &str = "stint";
const NOW: i64 = 1_800_000_000;

fn rsa(pkcs1_b64: &str) -> RsaKeyPair {
    let der = base64::engine::general_purpose::STANDARD.decode(pkcs1_b64.trim()).unwrap();
    RsaKeyPair::from_der(&der).unwrap()
}

fn rsa_jwk(k: &RsaKeyPair, kid: &str) -> Value {
    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(&c.n), "e": B64.encode(&c.e) })
}

fn sign_rs256(k: &RsaKeyPair, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let mut sig = vec![0; k.public().modulus_len()];
    k.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
    format!("{input}.{}", B64.encode(sig))
}

fn claims() -> Value {
    json!({ "iss": ISS, "sub": "248289761001", "aud": CLIENT, "exp": NOW + 300, "iat": NOW - 5, "nonce": "n-0S6_WzA2Mj", "email": "alice@example.com", "amr": ["pwd", "mfa"] })
}

fn expect() -> Expected<'static> {
    Expected { issuer: ISS, client_id: CLIENT, nonce: Some("n-0S6_WzA2Mj"), now: Timestamp(NOW), skew_secs: 60 }
}

fn jwks(keys: &[Value]) -> Vec<Jwk> {
    parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
}

#[test]
fn accepts_rs256_es256_and_eddsa() {
    let r = rsa(RSA_1);
    let rs = sign_rs256(&r, &json!({"alg": "RS256", "kid": "r1", "typ": "JWT"}), &claims());
    let keys = jwks(&[rsa_jwk(&r, "r1")]);
    let t = verify_id_token(&rs, &keys, &expect()).unwrap();
    assert_eq!((t.subject.as_str(), t.claims["email"].as_str()), ("248289761001", Some("alice@example.com")));

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = ec.public_key().as_ref();
    let ec_jwk = json!({ "kty": "EC", "crv": "P-256", "kid": "e1", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]) });
    let input = format!("{}.{}", B64.encode(json!({"alg": "ES256", "kid": "e1"}).to_string()), B64.encode(claims().to_string()));
    let es = format!("{input}.{}", B64.encode(ec.sign(&rng, input.as_bytes()).unwrap()));
    assert!(verify_id_token(&es, &jwks(&[ec_jwk]), &expect()).is_ok());

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let ed_jwk = json!({ "kty": "OKP", "crv": "Ed25519", "kid": "d1", "x": B64.encode(ed.public_key().as_ref()) });
    let input = format!("{}.{}", B64.encode(json!({"alg": "EdDSA", "kid": "d1"}).to_string()), B64.encode(claims().to_string()));
    let eddsa = format!("{input}.{}", B64.encode(ed.sign(input.as_bytes())));
    assert!(verify_id_token(&eddsa, &jwks(&[ed_jwk]), &expect()).is_ok());
}

#[test]
fn hostile_and_wrong_tokens_are_refused_with_their_code() {
    let r = rsa(RSA_1);
    let other = rsa(RSA_2);
    let keys = jwks(&[rsa_jwk(&r, "r1")]);
    let h = json!({"alg": "RS256", "kid": "r1"});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        sign_rs256(&r, &h, &c)
    };
    let good = sign_rs256(&r, &h, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let n_b64 = rsa_jwk(&r, "r1")["n"].as_str().unwrap().to_owned();
    let hs256_input = format!("{}.{}", B64.encode(json!({"alg": "HS256", "kid": "r1"}).to_string()), parts[1]);
    let hs256 = {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, n_b64.as_bytes());
        format!("{hs256_input}.{}", B64.encode(ring::hmac::sign(&key, hs256_input.as_bytes())))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]), "invalid_id_token"),
        ("HS256 with the public key", hs256, "invalid_id_token"),
        ("unknown kid", sign_rs256(&r, &json!({"alg": "RS256", "kid": "nope"}), &claims()), "id_token_unknown_key"),
        ("another provider's key", sign_rs256(&other, &h, &claims()), "invalid_id_token"),
        ("embedded jwk ignored", sign_rs256(&other, &json!({"alg": "RS256", "kid": "r1", "jwk": rsa_jwk(&other, "r1")}), &claims()), "invalid_id_token"),
        ("jku ignored", sign_rs256(&other, &json!({"alg": "RS256", "kid": "r1", "jku": "https://evil.example/jwks"}), &claims()), "invalid_id_token"),
        ("crit", sign_rs256(&r, &json!({"alg": "RS256", "kid": "r1", "crit": ["exp"]}), &claims()), "invalid_id_token"),
        ("wrong issuer", with(&|c| c["iss"] = json!("https://evil.example")), "id_token_wrong_issuer"),
        ("wrong audience", with(&|c| c["aud"] = json!("someone-else")), "id_token_wrong_audience"),
        ("several audiences, no azp", with(&|c| c["aud"] = json!([CLIENT, "other"])), "id_token_wrong_audience"),
        ("azp of another client", with(&|c| c["azp"] = json!("other")), "id_token_wrong_audience"),
        ("expired", with(&|c| c["exp"] = json!(NOW - 61)), "id_token_expired"),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "invalid_id_token",
        ),
        ("issued in the future", with(&|c| c["iat"] = json!(NOW + 3600)), "invalid_id_token"),
        ("not valid yet", with(&|c| c["nbf"] = json!(NOW + 3600)), "invalid_id_token"),
        ("nonce mismatch", with(&|c| c["nonce"] = json!("replayed")), "id_token_nonce_mismatch"),
        (
            "no nonce",
            with(&|c| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
            "id_token_nonce_mismatch",
        ),
        (
            "no sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            "invalid_id_token",
        ),
        ("tampered claims", format!("{}.{}.{}", parts[0], B64.encode(claims().to_string().replace("alice", "mallory")), parts[2]), "invalid_id_token"),
        ("truncated", good[..good.len() - 20].to_owned(), "invalid_id_token"),
        ("huge", "a".repeat(MAX_ID_TOKEN_BYTES + 1), "invalid_id_token"),
        ("non-JSON header", format!("{}.{}.{}", B64.encode("nope"), parts[1], parts[2]), "invalid_id_token"),
        (
            "duplicate claim",
            {
                let input = format!("{}.{}", parts[0], B64.encode(format!(r#"{{"aud":"other",{}"#, &claims().to_string()[1..])));
                let mut sig = vec![0; r.public().modulus_len()];
                r.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
                format!("{input}.{}", B64.encode(sig))
            },
            "invalid_id_token",
        ),
    ];
    for (name, token, code) in cases {
        let got = verify_id_token(&token, &keys, &expect()).map(|_| ()).map_err(|e| e.code());
        assert_eq!(got, Err(code), "{name}");
    }
}

#[test]
fn jwks_keeps_only_usable_signing_keys() {
    let r = rsa(RSA_1);
    let mut enc = rsa_jwk(&r, "enc");
    enc["use"] = json!("enc");
    let mut mislabeled = rsa_jwk(&r, "m");
    mislabeled["alg"] = json!("ES256");
    let keys = jwks(&[rsa_jwk(&r, "r1"), enc, mislabeled, json!({"kty": "oct", "k": "c2VjcmV0"}), json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})]);
    assert_eq!(keys.iter().map(|k| k.kid.as_deref()).collect::<Vec<_>>(), [Some("r1")]);
    assert_eq!(parse_jwks(b"not json").unwrap_err().code(), "invalid_jwks");
    assert_eq!(parse_jwks(&vec![b' '; MAX_JWKS_BYTES + 1]).unwrap_err().code(), "invalid_jwks");
}

#[test]
fn a_single_key_needs_no_kid_but_several_do() {
    let r = rsa(RSA_1);
    let t = sign_rs256(&r, &json!({"alg": "RS256"}), &claims());
    assert!(verify_id_token(&t, &jwks(&[rsa_jwk(&r, "r1")]), &expect()).is_ok());
    let two = jwks(&[rsa_jwk(&r, "r1"), rsa_jwk(&rsa(RSA_2), "r2")]);
    assert_eq!(verify_id_token(&t, &two, &expect()).unwrap_err().code(), "invalid_id_token");
}

/// The expected value was computed independently, with Python's hashlib and base64; a real
/// provider enforcing S256 checks it again in `crates/stint-oidc/tests`.
#[test]
fn pkce_challenge_is_base64url_sha256_of_the_verifier() {
    let v = crate::secret::SecretString::new("dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
    assert_eq!(pkce_challenge(&v), "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc");
    assert_eq!(pkce_verifier(&mut rand_core::OsRng).expose().len(), 43);
}

#[test]
fn mfa_is_read_from_amr_or_acr() {
    let r = rsa(RSA_1);
    let keys = jwks(&[rsa_jwk(&r, "r1")]);
    let token = |c: Value| verify_id_token(&sign_rs256(&r, &json!({"alg": "RS256", "kid": "r1"}), &c), &keys, &expect()).unwrap();
    let amr = ["mfa".to_owned(), "otp".to_owned(), "hwk".to_owned()];
    let acr = ["urn:example:mfa".to_owned()];
    assert_eq!(asserted_mfa(&token(claims()), &amr, &acr).as_deref(), Some("amr:mfa"));
    let mut c = claims();
    c["amr"] = json!(["pwd"]);
    assert_eq!(asserted_mfa(&token(c.clone()), &amr, &acr), None);
    c["acr"] = json!("urn:example:mfa");
    assert_eq!(asserted_mfa(&token(c), &amr, &acr).as_deref(), Some("acr:urn:example:mfa"));
}
