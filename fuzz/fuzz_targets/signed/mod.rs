//! Tokens past the signature: the fuzzer writes a JWT's header and claims (structure-aware,
//! from [`Unstructured`], with now and then raw text), and the harness signs them with the
//! Ed25519 key its JWKS publishes, so every check after the signature runs on them.
//! Shared by the `ci_claims`, `id_token_claims`, `ci_exchange` and `workload_exchange` targets.
#![allow(dead_code)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::Value;
use stint_core::broker::CiIssuer;
use stint_core::oidc::{self, ExpectedJwt, IdToken, Jwk};

pub const NOW: i64 = 1_800_000_000;
pub const SKEW: i64 = 60;

pub struct Signer {
    key: Ed25519KeyPair,
    /// The JWKS the verifier trusts: this key as `k1`.
    pub keys: Vec<Jwk>,
    /// Another Ed25519 key under the same `kid`: nothing the harness signs verifies with it.
    pub other_keys: Vec<Jwk>,
}

fn jwks(key: &Ed25519KeyPair) -> Vec<Jwk> {
    let set = serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "x": B64.encode(key.public_key().as_ref()) }] });
    oidc::parse_jwks(set.to_string().as_bytes()).expect("the harness's JWKS parses")
}

pub fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = Ed25519KeyPair::from_seed_unchecked(&[9u8; 32]).expect("a 32-byte seed");
        let other = Ed25519KeyPair::from_seed_unchecked(&[10u8; 32]).expect("a 32-byte seed");
        Signer { keys: jwks(&key), other_keys: jwks(&other), key }
    })
}

impl Signer {
    /// The trusted key's public half as a JWK's `x` (base64url, unpadded).
    pub fn public_x(&self) -> String {
        B64.encode(self.key.public_key().as_ref())
    }

    /// A compact JWS of `header` and `claims` (any bytes) signed with the trusted key.
    pub fn sign(&self, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

/// A header and claims as the fuzzer wrote them (JSON text, possibly not JSON at all).
#[derive(Debug)]
pub struct Written {
    pub header: String,
    pub claims: String,
}

fn s(v: &str) -> String {
    Value::String(v.to_owned()).to_string()
}

fn any_string(u: &mut Unstructured) -> Result<String> {
    Ok(s(<&str>::arbitrary(u)?))
}

/// One of `picks` (JSON texts), or an arbitrary string, number or literal.
fn value(u: &mut Unstructured, picks: &[&str]) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0 => any_string(u)?,
        1 => i64::arbitrary(u)?.to_string(),
        2 => (*u.choose(&["null", "true", "false", "[]", "{}", "1.5", "-0", "1e308", "18446744073709551615", "[1,\"a\",null]"])?).to_owned(),
        _ if picks.is_empty() => any_string(u)?,
        _ => (*u.choose(picks)?).to_owned(),
    })
}

/// A time claim near [`NOW`], or something that is not quite one.
fn time(u: &mut Unstructured) -> Result<String> {
    let near = NOW + i64::from(u.int_in_range(-700i16..=700)?);
    Ok(match u.int_in_range(0..=5)? {
        0 => format!("{near}.{}", u.int_in_range(0u8..=99)?),
        1 => value(u, &["9223372036854775807", "-9223372036854775808", "1e400", "-1e400", "0", "\"1800000000\""])?,
        _ => near.to_string(),
    })
}

/// Mostly an object of `members` (name, JSON text), with now and then a repeated member or
/// arbitrary extra ones; now and then arbitrary text instead.
fn object(u: &mut Unstructured, mut members: Vec<(String, String)>) -> Result<String> {
    if u.ratio(1, 32)? {
        return Ok(<&str>::arbitrary(u)?.to_owned());
    }
    for _ in 0..u.int_in_range(0..=2)? {
        members.push((<&str>::arbitrary(u)?.to_owned(), value(u, &[])?));
    }
    if !members.is_empty() && u.ratio(1, 16)? {
        let i = u.choose_index(members.len())?;
        members.push((members[i].0.clone(), value(u, &[])?));
    }
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", s(k))).collect();
    Ok(format!("{{{}}}", body.join(",")))
}

/// Adds `name` with a value from `gen` unless the fuzzer leaves it out.
fn maybe(u: &mut Unstructured, members: &mut Vec<(String, String)>, name: &str, gen: impl FnOnce(&mut Unstructured) -> Result<String>) -> Result<()> {
    if u.ratio(7, 8)? {
        let v = gen(u)?;
        members.push((name.to_owned(), v));
    }
    Ok(())
}

fn header(u: &mut Unstructured) -> Result<String> {
    let mut m = Vec::new();
    maybe(u, &mut m, "alg", |u| value(u, &["\"EdDSA\"", "\"EdDSA\"", "\"EdDSA\"", "\"RS256\"", "\"ES256\"", "\"none\"", "\"HS256\"", "\"eddsa\""]))?;
    maybe(u, &mut m, "typ", |u| value(u, &["\"JWT\"", "\"jwt\"", "\"at+jwt\""]))?;
    maybe(u, &mut m, "kid", |u| value(u, &["\"k1\"", "\"k1\"", "\"k2\""]))?;
    if u.ratio(1, 16)? {
        m.push(("crit".into(), "[\"exp\"]".into()));
    }
    object(u, m)
}

/// Claims: those GitHub Actions and OpenID Providers send, with values near what they should
/// be (`issuer`, one of `audiences`, times around [`NOW`]) or not.
fn claims(u: &mut Unstructured, issuer: &str, audiences: &[&str]) -> Result<String> {
    let iss = [s(issuer), s(issuer), s(&format!("{issuer}/")), s(&issuer.to_uppercase())];
    let auds: Vec<String> = audiences.iter().map(|a| s(a)).collect();
    let aud_list = format!("[{}]", auds.join(","));
    let mut m = Vec::new();
    maybe(u, &mut m, "iss", |u| value(u, &iss.iter().map(String::as_str).collect::<Vec<_>>()))?;
    maybe(u, &mut m, "sub", |u| {
        let long = s(&"a".repeat(256));
        value(
            u,
            &["\"repo:acme/infra:ref:refs/heads/main\"", "\"repo:acme/infra:environment:prod\"", "\"repo:acme/x\u{ffff}:ref:refs/heads/main\"", "\"\"", &long],
        )
    })?;
    maybe(u, &mut m, "aud", |u| {
        let mut picks: Vec<&str> = auds.iter().map(String::as_str).collect();
        picks.push(&aud_list);
        value(u, &picks)
    })?;
    maybe(u, &mut m, "exp", time)?;
    maybe(u, &mut m, "iat", time)?;
    if u.ratio(1, 2)? {
        m.push(("nbf".into(), time(u)?));
    }
    for (name, picks) in [
        ("jti", &["\"j-1\"", "\"j-2\""][..]),
        ("environment", &["\"prod\"", "null"][..]),
        ("repository", &["\"acme/infra\"", "\"acme/other\""][..]),
        ("azp", &["\"stint\"", "\"other\""][..]),
        ("nonce", &["\"n-1\"", "\"n-2\""][..]),
        ("email", &["\"dana@example.com\"", "\"dana@EXAMPLE.com\"", "\"dana@evil.example@example.com\"", "\"@example.com\""][..]),
        ("email_verified", &["true", "false", "\"true\"", "\"TRUE\"", "1"][..]),
        ("groups", &["[\"admins\",\"devs\"]", "\"devs\"", "[\"devs\",\"devs\",3]", "[]"][..]),
        ("amr", &["[\"pwd\",\"mfa\"]", "[\"pwd\"]", "\"mfa\"", "[\"otp\"]"][..]),
        ("acr", &["\"phr\"", "\"urn:basic\""][..]),
        ("auth_time", &["1799999000", "1"][..]),
    ] {
        if u.ratio(1, 2)? {
            m.push((name.to_owned(), value(u, picks)?));
        }
    }
    object(u, m)
}

impl Written {
    pub fn new(u: &mut Unstructured, issuer: &str, audiences: &[&str]) -> Result<Written> {
        Ok(Written { header: header(u)?, claims: claims(u, issuer, audiences)? })
    }
}

/// What a token the verifier accepted must have had, checked on the text the fuzzer wrote
/// (serde_json's own reading, not the verifier's): alg EdDSA (the only key it holds), no
/// `crit`, a string typ only JWT; `iss` exactly `issuer`; `exp` after and `iat`/`nbf` before now
/// (within the skew, and the whole second a fractional time rounds to); a `sub` of 1–255 bytes.
pub fn assert_accepted(w: &Written, t: &IdToken, issuer: &str) {
    let h: serde_json::Map<String, Value> = serde_json::from_str(&w.header).expect("an accepted header is a JSON object");
    assert_eq!(h.get("alg").and_then(Value::as_str), Some("EdDSA"), "{w:?}");
    assert!(!h.contains_key("crit"), "{w:?}");
    // (A `typ` that is not a string is ignored, as if absent.)
    assert!(h.get("typ").and_then(Value::as_str).is_none_or(|t| t.eq_ignore_ascii_case("JWT")), "{w:?}");
    let c: serde_json::Map<String, Value> = serde_json::from_str(&w.claims).expect("accepted claims are a JSON object");
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(issuer), "{w:?}");
    assert_eq!(t.issuer, issuer);
    let num = |name: &str| c.get(name).map(|v| v.as_f64().unwrap_or_else(|| panic!("{name} is not a number: {w:?}")));
    let (now, skew) = (NOW as f64, SKEW as f64);
    let exp = num("exp").expect("exp");
    assert!(exp + skew > now, "expired: {w:?}");
    assert!(num("iat").expect("iat") < now + skew + 1.0, "issued in the future: {w:?}");
    assert!(num("nbf").is_none_or(|nbf| nbf < now + skew + 1.0), "not valid yet: {w:?}");
    let sub = c.get("sub").and_then(Value::as_str).expect("a string sub");
    assert!(!sub.is_empty() && sub.len() <= 255 && t.subject == sub, "{w:?}");
    assert_eq!(&t.claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>(), &c, "the claims as written");
}

/// XML 1.0 character data with references (§2.4, §4.1): what may stand between two tags.
/// Only the five references `html::escape` writes are expected.
pub fn assert_xml_text(text: &str) {
    let xml_char = |c: char| matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
    assert!(text.chars().all(xml_char), "not XML characters: {text:?}");
    assert!(!text.contains('<') && !text.contains("]]>"), "markup in text: {text:?}");
    for (i, _) in text.match_indices('&') {
        let rest = &text[i..];
        assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|r| rest.starts_with(r)), "a bare '&': {text:?}");
    }
}

/// A CI or platform issuer whose key set is the harness's (stint-oidc fetches it over HTTP).
pub struct Issuer;

#[async_trait::async_trait]
impl CiIssuer for Issuer {
    async fn verify(&self, token: &str, expect: &ExpectedJwt<'_>) -> stint_core::error::Result<IdToken> {
        oidc::verify_jwt(token, &signer().keys, expect)
    }
}

/// What makes two tokens the same one for a replay check: the `jti` when it is a string, else
/// the signed part.
pub fn identity(token: &str, claims: &serde_json::Map<String, Value>) -> String {
    match claims.get("jti").and_then(Value::as_str) {
        Some(jti) => format!("jti {jti}"),
        None => format!("token {}", token.rsplit_once('.').map_or(token, |(signed, _)| signed)),
    }
}
