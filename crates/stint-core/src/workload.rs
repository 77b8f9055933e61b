//! Services as principals: a **workload** is a named identity (`api`, `billing-worker`) with
//! its own roles, that holds no long-lived secret stint hands out.
//!
//! A workload proves who it is once, to enroll a key: with a one-time join token an
//! administrator made (`stint workload join-token`), or with a token its platform issued
//! (a Kubernetes service-account token, any OIDC issuer configured under `[[ci.issuer]]`)
//! that the workload's platform binding admits. Enrolling registers the public half of an
//! Ed25519 key the agent generated and keeps; from then on the agent asks for credentials
//! with a short [`Assertion`] signed by that key, never with a bearer secret. Disabling the
//! workload revokes its keys and everything it holds.
//!
//! Pure: no I/O.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SigningKey};
use crate::error::{Error, Result};
use crate::ids::{RoleName, WorkloadId, WorkloadName};
use crate::secret::SecretString;
use crate::time::Timestamp;

/// How long an assertion may live: long enough for one request across a slow network.
pub const ASSERTION_MAX_SECS: i64 = 300;
/// The lifetime the agent gives its assertions.
pub const ASSERTION_SECS: i64 = 60;
/// Tolerated difference between the agent's clock and the server's, seconds.
pub const ASSERTION_SKEW_SECS: i64 = 60;
/// Assertions larger than this are refused before parsing.
pub const MAX_ASSERTION_BYTES: usize = 2048;

/// A workload as stint keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub id: WorkloadId,
    pub name: WorkloadName,
    /// The roles it may assume (the policies decide, with these as the workload's entity).
    pub roles: Vec<RoleName>,
    /// The platform identity that may enroll keys for it, if any.
    pub platform: Option<PlatformBinding>,
    pub disabled: bool,
    pub created_at: Timestamp,
}

impl Workload {
    /// What leases and role tokens name it by: `workload:NAME`.
    pub fn holder(&self) -> String {
        format!("{WORKLOAD_SUBJECT_PREFIX}{}", self.name)
    }
}

/// The `sub` of a workload's role token, and the holder of its leases, start with this.
pub const WORKLOAD_SUBJECT_PREFIX: &str = "workload:";

/// Which platform tokens stand for a workload: those of the `[[ci.issuer]]` named `issuer`
/// whose `sub` is exactly `subject` (`system:serviceaccount:NS:NAME` on Kubernetes), with
/// `audience` among their `aud`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformBinding {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

/// One enrolled agent key: the workload's "session". Revoked with the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadKey {
    /// The key's id: its thumbprint ([`PublicKey::kid`]).
    pub kid: String,
    pub workload_id: WorkloadId,
    pub public: [u8; 32],
    /// How it enrolled: `join_token` or `platform:ISSUER`.
    pub enrolled_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl WorkloadKey {
    pub fn live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A one-time token that enrolls one agent key for a workload (`stint workload join-token`).
/// Stored as lookup + SHA-256 like every bearer secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    pub lookup: String,
    pub secret_hash: Vec<u8>,
    pub workload_id: WorkloadId,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// The administrator who made it: disabling them expires it unused (none for a token made
    /// before schema v14).
    pub created_by: Option<crate::ids::UserId>,
}

/// What an agent signs to ask for credentials: who it is, for which server, for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionClaims {
    /// The workload's name.
    pub iss: String,
    /// The workload's name again (RFC 7523 §3: a client asserting itself).
    pub sub: String,
    /// The server's issuer URL, so an assertion for one stint is useless at another.
    pub aud: String,
    pub iat: Timestamp,
    pub exp: Timestamp,
    /// Unique per assertion: issuance accepts each once.
    pub jti: String,
}

/// An assertion whose signature verified with an enrolled key and whose claims hold.
#[derive(Debug)]
pub struct Assertion {
    pub claims: AssertionClaims,
    pub kid: String,
}

fn refuse(message: impl Into<String>) -> Error {
    Error::unauthenticated("invalid_assertion", message)
}

/// Signs an assertion for `workload` with the agent's `key`, for the server whose issuer URL
/// is `audience`, valid [`ASSERTION_SECS`] from `now`.
pub fn sign_assertion(key: &SigningKey, workload: &WorkloadName, audience: &str, now: Timestamp, rng: &mut dyn rand_core::CryptoRngCore) -> SecretString {
    let mut jti = [0u8; 16];
    rng.fill_bytes(&mut jti);
    let claims = AssertionClaims {
        iss: workload.to_string(),
        sub: workload.to_string(),
        aud: audience.to_owned(),
        iat: now,
        exp: Timestamp(now.0 + ASSERTION_SECS),
        jti: B64.encode(jti),
    };
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.kid() });
    let mut out = format!("{}.{}", B64.encode(header.to_string()), B64.encode(serde_json::to_vec(&claims).unwrap_or_default()));
    let sig = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&B64.encode(sig));
    SecretString::new(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: String,
}

/// The key id an assertion names, read before verifying it to find the enrolled key.
pub fn peek_kid(token: &str) -> Result<String> {
    let (header, _, _) = split(token)?;
    Ok(header.kid)
}

fn split(token: &str) -> Result<(Header, &str, &str)> {
    if token.len() > MAX_ASSERTION_BYTES {
        return Err(refuse(format!("the assertion is larger than {MAX_ASSERTION_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(refuse("the assertion is not a compact JWS"));
    };
    let header: Header = B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| refuse("the assertion's header is malformed"))?;
    if header.alg != "EdDSA" || header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(refuse("the assertion must be an EdDSA JWT"));
    }
    Ok((header, p, s))
}

/// Verifies `token` with the enrolled `key` of `workload`: the signature, that it names the
/// workload and this server (`audience`), and that it is current and short-lived.
pub fn verify_assertion(token: &str, key: &WorkloadKey, workload: &WorkloadName, audience: &str, now: Timestamp) -> Result<Assertion> {
    let (header, payload, sig) = split(token)?;
    let public = PublicKey::from_bytes(&key.public).map_err(|_| refuse("the enrolled key is unusable"))?;
    if header.kid != key.kid || public.kid() != key.kid {
        return Err(refuse("the assertion names another key"));
    }
    let sig = B64.decode(sig).map_err(|_| refuse("the assertion's signature is not base64url"))?;
    let signed = &token.as_bytes()[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    if !public.verify(signed, &sig) {
        return Err(refuse("the assertion's signature is invalid"));
    }
    let claims: AssertionClaims =
        B64.decode(payload).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| refuse("the assertion's claims are malformed"))?;
    if claims.iss != workload.as_str() || claims.sub != workload.as_str() {
        return Err(refuse("the assertion names another workload"));
    }
    if claims.aud != audience {
        return Err(refuse("the assertion is for another server"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 64 {
        return Err(refuse("the assertion's jti is missing or too long"));
    }
    // The claims are the agent's to write: saturating, so `iat` far in the past and `exp` far
    // in the future measure as a long life, not as a wrapped-around short one.
    if claims.iat.0 > now.0 + ASSERTION_SKEW_SECS || claims.exp.0.saturating_sub(claims.iat.0) > ASSERTION_MAX_SECS || claims.exp <= claims.iat {
        return Err(refuse(format!("the assertion must be issued now and live at most {ASSERTION_MAX_SECS}s (is the agent's clock right?)")));
    }
    if now.0 >= claims.exp.0.saturating_add(ASSERTION_SKEW_SECS) {
        return Err(Error::unauthenticated("assertion_expired", "the assertion has expired (is the agent's clock right?)"));
    }
    Ok(Assertion { claims, kid: header.kid })
}

/// The public key an agent sends to enroll: 32 bytes, base64url without padding.
pub fn parse_public_key(s: &str) -> Result<PublicKey> {
    let bad = || Error::invalid("invalid_public_key", "public_key must be an Ed25519 public key: 32 bytes, base64url without padding");
    let bytes = B64.decode(s.trim_end_matches('=')).map_err(|_| bad())?;
    PublicKey::from_bytes(&bytes).map_err(|_| bad())
}

/// How an agent spells its public key for [`parse_public_key`].
pub fn encode_public_key(key: &PublicKey) -> String {
    B64.encode(key.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const NOW: Timestamp = Timestamp(1_000_000);
    const AUD: &str = "https://stint.example";

    fn enrolled(key: &SigningKey) -> WorkloadKey {
        WorkloadKey {
            kid: key.kid().to_owned(),
            workload_id: WorkloadId::random(&mut OsRng),
            public: key.public().bytes(),
            enrolled_by: "join_token".into(),
            created_at: NOW,
            revoked_at: None,
        }
    }

    fn api() -> WorkloadName {
        WorkloadName::parse("api").unwrap()
    }

    #[test]
    fn an_assertion_verifies_with_its_key_for_its_workload_and_server_only() {
        let key = SigningKey::generate(&mut OsRng);
        let t = sign_assertion(&key, &api(), AUD, NOW, &mut OsRng);
        assert_eq!(peek_kid(t.expose()).unwrap(), key.kid());
        let a = verify_assertion(t.expose(), &enrolled(&key), &api(), AUD, NOW).unwrap();
        assert_eq!((a.claims.iss.as_str(), a.claims.aud.as_str(), a.kid.as_str()), ("api", AUD, key.kid()));
        assert_eq!(a.claims.exp, Timestamp(NOW.0 + ASSERTION_SECS));
        let again = sign_assertion(&key, &api(), AUD, NOW, &mut OsRng);
        assert_ne!(verify_assertion(again.expose(), &enrolled(&key), &api(), AUD, NOW).unwrap().claims.jti, a.claims.jti);

        let other = SigningKey::generate(&mut OsRng);
        let code = |r: Result<Assertion>| r.unwrap_err().code();
        assert_eq!(code(verify_assertion(t.expose(), &enrolled(&other), &api(), AUD, NOW)), "invalid_assertion");
        assert_eq!(code(verify_assertion(t.expose(), &enrolled(&key), &WorkloadName::parse("billing").unwrap(), AUD, NOW)), "invalid_assertion");
        assert_eq!(code(verify_assertion(t.expose(), &enrolled(&key), &api(), "https://other", NOW)), "invalid_assertion");
        assert_eq!(code(verify_assertion(t.expose(), &enrolled(&key), &api(), AUD, Timestamp(NOW.0 + 200))), "assertion_expired");
        assert_eq!(code(verify_assertion(t.expose(), &enrolled(&key), &api(), AUD, Timestamp(NOW.0 - 120))), "invalid_assertion");
    }

    #[test]
    fn tampered_or_long_lived_assertions_are_refused() {
        let key = SigningKey::generate(&mut OsRng);
        let k = enrolled(&key);
        let t = sign_assertion(&key, &api(), AUD, NOW, &mut OsRng);
        let (signed, sig) = t.expose().rsplit_once('.').unwrap();
        let (h, _) = signed.split_once('.').unwrap();
        // Claims rewritten to live a day, under the original signature.
        let long = AssertionClaims { exp: Timestamp(NOW.0 + 86_400), ..verify_assertion(t.expose(), &k, &api(), AUD, NOW).unwrap().claims };
        let forged = format!("{h}.{}.{sig}", B64.encode(serde_json::to_vec(&long).unwrap()));
        assert_eq!(verify_assertion(&forged, &k, &api(), AUD, NOW).unwrap_err().code(), "invalid_assertion");
        // Signed honestly, but for a day.
        let header = B64.encode(serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.kid() }).to_string());
        let body = format!("{header}.{}", B64.encode(serde_json::to_vec(&long).unwrap()));
        let honest = format!("{body}.{}", B64.encode(key.sign(body.as_bytes())));
        assert!(verify_assertion(&honest, &k, &api(), AUD, NOW).unwrap_err().to_string().contains("at most"));
        // Signed honestly, from the beginning of time to its end: the life is measured without
        // wrapping around (which once made it look short, and panicked in debug builds).
        for (iat, exp) in [(i64::MIN, i64::MAX), (-1, i64::MAX), (i64::MIN, NOW.0 + 60), (NOW.0 - 10, i64::MAX)] {
            let forever = AssertionClaims { iat: Timestamp(iat), exp: Timestamp(exp), ..long.clone() };
            let body = format!("{header}.{}", B64.encode(serde_json::to_vec(&forever).unwrap()));
            let signed = format!("{body}.{}", B64.encode(key.sign(body.as_bytes())));
            let e = verify_assertion(&signed, &k, &api(), AUD, NOW).unwrap_err();
            assert_eq!((e.code(), e.to_string().contains("at most")), ("invalid_assertion", true), "iat {iat}, exp {exp}");
        }
        for junk in ["", "a.b", "a.b.c.d", &"x".repeat(MAX_ASSERTION_BYTES + 1), "eyJhbGciOiJub25lIn0.e30."] {
            assert_eq!(verify_assertion(junk, &k, &api(), AUD, NOW).unwrap_err().code(), "invalid_assertion", "{junk:.20}");
        }
    }

    #[test]
    fn public_keys_round_trip_and_junk_is_refused() {
        let key = SigningKey::generate(&mut OsRng);
        let parsed = parse_public_key(&encode_public_key(&key.public())).unwrap();
        assert_eq!(parsed.kid(), key.kid());
        for junk in ["", "AAAA", "not base64!", &B64.encode([0u8; 31])] {
            assert_eq!(parse_public_key(junk).unwrap_err().code(), "invalid_public_key", "{junk}");
        }
    }
}
