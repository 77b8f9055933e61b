//! Verifying ID tokens from an OpenID Connect provider (OpenID Connect Core 1.0 §3.1.3.7).
//!
//! Pure: the caller fetches the provider's JWKS and passes the keys and the time in. Only
//! asymmetric algorithms are accepted (RS256, ES256, EdDSA), each only with a key of its own
//! type, so neither `alg: none` nor HMAC signed with a public key can pass (RFC 8725 §3.1).
//! `jku`, `x5u`, `jwk` and `x5c` headers are never consulted; `crit` is refused.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::de::{MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Tokens larger than this are refused before parsing.
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// A JWKS larger than this is refused.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point: 0x04 || x || y.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A provider's signing key, as published in its JWKS.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    alg: Alg,
    material: Material,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jwk({:?}, {:?})", self.kid, self.alg)
    }
}

impl Jwk {
    pub fn alg(&self) -> Alg {
        self.alg
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
        match &self.material {
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig).is_ok(),
            Material::P256(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, sig).is_ok(),
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn b64(field: &Option<String>) -> Option<Vec<u8>> {
    B64.decode(field.as_deref()?.trim_end_matches('=')).ok()
}

fn parse_key(raw: &RawJwk) -> Option<Jwk> {
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, material) = match (raw.kty.as_deref()?, raw.crv.as_deref()) {
        ("RSA", _) => {
            let n = b64(&raw.n)?;
            // ring refuses moduli under 2048 bits when verifying; refuse them here too.
            if n.len() < 256 {
                return None;
            }
            (Alg::Rs256, Material::Rsa { n, e: b64(&raw.e)? })
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (b64(&raw.x)?, b64(&raw.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            (Alg::Es256, Material::P256([&[4u8][..], &x, &y].concat()))
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(&raw.x)?;
            if x.len() != 32 {
                return None;
            }
            (Alg::EdDsa, Material::Ed25519(x))
        }
        _ => return None,
    };
    // A key that names an algorithm is used with that algorithm only.
    if let Some(named) = raw.alg.as_deref() {
        if Alg::parse(named) != Some(alg) {
            return None;
        }
    }
    Some(Jwk { kid: raw.kid.clone(), alg, material })
}

/// The signing keys of a JWKS (RFC 7517 §5) that stint can use; others are skipped.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>> {
    let bad = |why: &str| Error::invalid("invalid_jwks", format!("the provider's JWKS {why}"));
    if body.len() > MAX_JWKS_BYTES {
        return Err(bad("is too large"));
    }
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<RawJwk>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|_| bad("is not a JSON key set"))?;
    Ok(set.keys.iter().filter_map(parse_key).collect())
}

/// Top-level JSON object that refuses duplicate member names (RFC 7519 §4 lets a verifier
/// refuse them, and two different "aud" values must never be read two ways).
struct UniqueObject(BTreeMap<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueObject, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if out.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                }
                Ok(UniqueObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What an ID token must say to be accepted.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce stint sent with the authorization request, if any.
    pub nonce: Option<&'a str>,
    pub now: Timestamp,
    /// Tolerated clock difference with the provider, seconds (kept small).
    pub skew_secs: i64,
}

/// A verified token's claims, as [`verify_id_token`] or [`verify_jwt`] return them.
#[derive(Debug)]
pub struct IdToken {
    pub issuer: String,
    pub subject: String,
    pub expires_at: Timestamp,
    pub claims: BTreeMap<String, Value>,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Error {
    Error::unauthenticated(code, message)
}

fn int_claim(c: &BTreeMap<String, Value>, name: &str) -> Result<Option<i64>> {
    match c.get(name) {
        None => Ok(None),
        Some(v) => {
            v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).map(Some).ok_or_else(|| refuse("invalid_id_token", format!("claim {name} is not a number")))
        }
    }
}

/// What any token from an issuer must satisfy, whatever it is for.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedJwt<'a> {
    pub issuer: &'a str,
    pub now: Timestamp,
    /// Tolerated clock difference with the issuer, seconds (kept small).
    pub skew_secs: i64,
}

/// Verifies signature, header and claims. `id_token_unknown_key` tells the caller to refetch
/// the JWKS (once, rate-limited) and try again.
pub fn verify_id_token(token: &str, keys: &[Jwk], expect: &Expected<'_>) -> Result<IdToken> {
    let base = ExpectedJwt { issuer: expect.issuer, now: expect.now, skew_secs: expect.skew_secs };
    let t = verify_jwt(token, keys, &base)?;
    check_id_token(&t.claims, expect)?;
    Ok(t)
}

/// Verifies a JWT's header, signature, `iss`, `exp`, `iat`, `nbf` and `sub`, but not its
/// audience: for tokens whose audience a policy binds (CI tokens). The codes are those of
/// ID tokens (`invalid_id_token`, `id_token_expired`…); callers may rename them.
pub fn verify_jwt(token: &str, keys: &[Jwk], expect: &ExpectedJwt<'_>) -> Result<IdToken> {
    let invalid = |why: &str| refuse("invalid_id_token", format!("token {why}"));
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(invalid("is too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("is not a compact JWS"));
    };
    let header: UniqueObject = B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| invalid("header is malformed"))?;
    let header = header.0;
    let alg = header.get("alg").and_then(Value::as_str).and_then(Alg::parse).ok_or_else(|| invalid("uses an algorithm stint does not accept"))?;
    if header.contains_key("crit") {
        return Err(invalid("has critical header extensions"));
    }
    if header.get("typ").and_then(Value::as_str).is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(invalid("has an unexpected typ"));
    }
    let kid = header.get("kid").map(|k| k.as_str().ok_or_else(|| invalid("kid is not a string"))).transpose()?;
    let candidates: Vec<&Jwk> = keys.iter().filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid)).collect();
    let key = match (kid, candidates.as_slice()) {
        (_, [one]) => *one,
        (None, []) | (Some(_), []) => return Err(refuse("id_token_unknown_key", "token was signed by a key the issuer does not publish")),
        (None, _) => return Err(invalid("names no kid and the issuer has several keys")),
        (Some(_), _) => return Err(invalid("kid matches several keys")),
    };
    let sig = B64.decode(s).map_err(|_| invalid("signature is not base64url"))?;
    if !key.verify(&token.as_bytes()[..h.len() + 1 + p.len()], &sig) {
        return Err(invalid("signature is invalid"));
    }
    let claims: UniqueObject = B64.decode(p).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| invalid("claims are malformed"))?;
    check_claims(claims.0, expect)
}

/// The `iss` a token claims, read without verifying anything: only to pick the keys that
/// will verify it.
pub fn peek_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let claims: UniqueObject = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    claims.0.get("iss")?.as_str().map(str::to_owned)
}

/// The `kid` a token's header names, read without verifying anything: only to tell whether a
/// failed token was checked against a key stint has cached.
pub fn peek_kid(token: &str) -> Option<String> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return None;
    }
    let header: UniqueObject = serde_json::from_slice(&B64.decode(token.split('.').next()?).ok()?).ok()?;
    header.0.get("kid")?.as_str().map(str::to_owned)
}

fn check_claims(c: BTreeMap<String, Value>, x: &ExpectedJwt<'_>) -> Result<IdToken> {
    let string = |name: &str| c.get(name).and_then(Value::as_str);
    let issuer = string("iss").ok_or_else(|| refuse("invalid_id_token", "token has no iss"))?.to_owned();
    if issuer != x.issuer {
        return Err(refuse("id_token_wrong_issuer", format!("token issuer is {:?}, expected {:?}", crate::ids::truncate(&issuer), x.issuer)));
    }
    let now = x.now.0;
    let exp = int_claim(&c, "exp")?.ok_or_else(|| refuse("invalid_id_token", "token has no exp"))?;
    if now >= exp.saturating_add(x.skew_secs) {
        return Err(refuse("id_token_expired", "token has expired"));
    }
    let iat = int_claim(&c, "iat")?.ok_or_else(|| refuse("invalid_id_token", "token has no iat"))?;
    if iat > now + x.skew_secs {
        return Err(refuse("invalid_id_token", "token was issued in the future; check the clocks"));
    }
    if int_claim(&c, "nbf")?.is_some_and(|nbf| nbf > now + x.skew_secs) {
        return Err(refuse("invalid_id_token", "token is not valid yet; check the clocks"));
    }
    let subject = string("sub").filter(|s| !s.is_empty() && s.len() <= 255).ok_or_else(|| refuse("invalid_id_token", "token has no valid sub"))?.to_owned();
    Ok(IdToken { issuer, subject, expires_at: Timestamp(exp), claims: c })
}

/// The ID-token-only checks (OpenID Connect Core §3.1.3.7): audience, `azp`, `nonce`.
fn check_id_token(c: &BTreeMap<String, Value>, x: &Expected<'_>) -> Result<()> {
    let audiences: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !audiences.contains(&x.client_id) {
        return Err(refuse("id_token_wrong_audience", format!("ID token audience does not include client {:?}", x.client_id)));
    }
    match c.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != x.client_id => return Err(refuse("id_token_wrong_audience", "ID token azp names another client")),
        None if audiences.len() > 1 => return Err(refuse("id_token_wrong_audience", "ID token has several audiences and no azp")),
        _ => {}
    }
    if let Some(want) = x.nonce {
        let got = c.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
            return Err(refuse("id_token_nonce_mismatch", "ID token nonce does not match this login"));
        }
    }
    Ok(())
}

/// A PKCE code verifier (RFC 7636 §4.1): 32 random bytes, base64url (43 characters).
pub fn pkce_verifier(rng: &mut dyn rand_core::CryptoRngCore) -> crate::secret::SecretString {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    crate::secret::SecretString::new(B64.encode(b))
}

/// The S256 code challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &crate::secret::SecretString) -> String {
    use sha2::Digest;
    B64.encode(sha2::Sha256::digest(verifier.expose().as_bytes()))
}

/// Whether the provider asserted multi-factor authentication: `amr` (RFC 8176) contains one of
/// `amr_values`, or `acr` is one of `acr_values`. Providers that assert neither need stint's
/// own TOTP as a step-up.
pub fn asserted_mfa(token: &IdToken, amr_values: &[String], acr_values: &[String]) -> Option<String> {
    let amr = token.claims.get("amr").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    if let Some(m) = amr.clone().find(|m| amr_values.iter().any(|v| v == m)) {
        return Some(format!("amr:{m}"));
    }
    let acr = token.claims.get("acr").and_then(Value::as_str)?;
    acr_values.iter().any(|v| v == acr).then(|| format!("acr:{acr}"))
}

#[cfg(test)]
mod tests;
