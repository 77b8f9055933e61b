//! Compact JWS (RFC 7515) with EdDSA (RFC 8037) — the only algorithm stint signs or accepts.
//!
//! Verification is strict by construction: the header must name `alg: EdDSA`, `typ: JWT`
//! and a known `kid`; `jku`, `x5u`, `jwk` and `x5c` are never consulted (RFC 8725 §3.1);
//! a `crit` header is refused (RFC 7515 §4.1.11); duplicate claims are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SigningKey};
use crate::error::{Error, Result};
use crate::ids::{SessionId, TokenId};
use crate::time::Timestamp;

/// Tokens larger than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Tolerated difference between clocks when checking `iat`, seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// The claims of a stint role token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub iss: String,
    /// The user's id (`u_…`), or for a CI credential `ci:<issuer>:<the CI token's sub>`.
    pub sub: String,
    pub aud: Vec<String>,
    pub role: String,
    /// The session the token came from; CI credentials have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    pub jti: TokenId,
    pub iat: Timestamp,
    pub exp: Timestamp,
    /// Login name at issuance, for humans reading logs; `sub` is the identity.
    pub preferred_username: String,
    /// The approved request whose grant allowed this token: revoking the grant revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// A workload's token: the enrolled agent key that asked for it. The token lives while
    /// that key does, as a person's lives with their session: a disable revokes the key, and
    /// enabling the workload again brings back none of what it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    // Accepted in the grammar only so their presence is not a parse error; never used.
    #[allow(dead_code)]
    jku: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    x5u: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    jwk: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    x5c: Option<serde::de::IgnoredAny>,
    #[allow(dead_code)]
    x5t: Option<serde::de::IgnoredAny>,
    crit: Option<serde::de::IgnoredAny>,
}

impl Serialize for HeaderOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("alg", "EdDSA")?;
        m.serialize_entry("typ", "JWT")?;
        m.serialize_entry("kid", self.0)?;
        m.end()
    }
}
struct HeaderOut<'a>(&'a str);

pub fn sign(claims: &Claims, key: &SigningKey) -> String {
    // Serializing these plain structs cannot fail.
    let header = serde_json::to_vec(&HeaderOut(key.kid())).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut out = String::with_capacity(64 + payload.len() * 2);
    out.push_str(&B64.encode(header));
    out.push('.');
    out.push_str(&B64.encode(payload));
    let sig = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&B64.encode(sig));
    out
}

/// A token whose signature verified and whose times hold at `now`.
/// Only [`verify`] constructs it, so "used without checking" does not compile.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
}

fn invalid(message: &str) -> Error {
    Error::unauthenticated("invalid_token", message.to_owned())
}

/// The key id a token names, read before verification to pick the key.
pub fn peek_kid(token: &str) -> Result<String> {
    let (header, _, _) = split(token)?;
    header.kid.ok_or_else(|| invalid("token header has no kid"))
}

fn split(token: &str) -> Result<(Header, &str, &str)> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid("token is too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("token is not a compact JWS (three dot-separated parts)"));
    };
    let hb = B64.decode(h).map_err(|_| invalid("token header is not base64url"))?;
    let header: Header = serde_json::from_slice(&hb).map_err(|_| invalid("token header is not valid JSON of the expected shape"))?;
    if header.alg != "EdDSA" {
        return Err(invalid("token algorithm must be EdDSA"));
    }
    if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(invalid("token typ must be JWT"));
    }
    if header.crit.is_some() {
        return Err(invalid("token has critical header extensions stint does not understand"));
    }
    Ok((header, p, s))
}

/// Verifies signature, issuer, audience and lifetime. `keys` are the currently publishable keys.
pub fn verify(token: &str, keys: &[PublicKey], issuer: &str, audiences: &[String], now: Timestamp) -> Result<Verified> {
    let (header, payload, sig) = split(token)?;
    let kid = header.kid.ok_or_else(|| invalid("token header has no kid"))?;
    let key = keys.iter().find(|k| k.kid() == kid).ok_or_else(|| invalid("token was signed by a key stint does not publish"))?;
    let sig = B64.decode(sig).map_err(|_| invalid("token signature is not base64url"))?;
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    if !key.verify(&token.as_bytes()[..signed_len], &sig) {
        return Err(invalid("token signature is invalid"));
    }
    let pb = B64.decode(payload).map_err(|_| invalid("token payload is not base64url"))?;
    let claims: Claims = serde_json::from_slice(&pb).map_err(|_| invalid("token claims are not of the expected shape"))?;
    if claims.iss != issuer {
        return Err(invalid("token issuer is not this stint server"));
    }
    if !claims.aud.iter().any(|a| audiences.contains(a)) {
        return Err(invalid("token audience does not include this audience"));
    }
    if claims.iat.0 > now.0 + CLOCK_SKEW_SECS {
        return Err(invalid("token was issued in the future"));
    }
    if now >= claims.exp {
        return Err(Error::unauthenticated("token_expired", "token has expired"));
    }
    Ok(Verified { claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use rand_core::OsRng;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "https://stint.test".into(),
            sub: UserId::random(&mut OsRng).to_string(),
            aud: vec!["stint".into()],
            role: "readonly".into(),
            sid: Some(SessionId::random(&mut OsRng)),
            jti: TokenId::random(&mut OsRng),
            iat: Timestamp(now),
            exp: Timestamp(now + 600),
            preferred_username: "alice".into(),
            grant: None,
            agent_key: None,
        }
    }

    fn aud() -> Vec<String> {
        vec!["stint".to_owned()]
    }

    fn forge(header: &str, payload: &str, sig: &[u8]) -> String {
        format!("{}.{}.{}", B64.encode(header), B64.encode(payload), B64.encode(sig))
    }

    #[test]
    fn round_trip_and_time_checks() {
        let k = SigningKey::generate(&mut OsRng);
        let c = claims(1000);
        let t = sign(&c, &k);
        let keys = [k.public()];
        assert_eq!(verify(&t, &keys, "https://stint.test", &aud(), Timestamp(1001)).unwrap().claims, c);
        assert_eq!(verify(&t, &keys, "https://stint.test", &aud(), Timestamp(1600)).unwrap_err().code(), "token_expired");
        assert_eq!(verify(&t, &keys, "https://stint.test", &aud(), Timestamp(900)).unwrap_err().code(), "invalid_token");
        assert!(verify(&t, &keys, "https://other", &aud(), Timestamp(1001)).is_err());
        assert!(verify(&t, &keys, "https://stint.test", &["other".to_owned()], Timestamp(1001)).is_err());
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let k = SigningKey::generate(&mut OsRng);
        let other = SigningKey::generate(&mut OsRng);
        let keys = [k.public()];
        let good = sign(&claims(1000), &k);
        let payload = serde_json::to_string(&claims(1000)).unwrap();
        let kid = k.kid();
        let signed_by_other = sign(&claims(1000), &other);
        let mut flipped = good.clone().into_bytes();
        let n = flipped.len() - 5;
        flipped[n] = if flipped[n] == b'A' { b'B' } else { b'A' };
        let cases: Vec<(&str, String)> = vec![
            ("alg none", format!("{}.{}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#), B64.encode(&payload))),
            ("alg HS256", forge(&format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &payload, b"x")),
            ("no kid", forge(r#"{"alg":"EdDSA"}"#, &payload, &[0; 64])),
            ("unknown kid", signed_by_other),
            ("kid injection", forge(r#"{"alg":"EdDSA","kid":"../../etc/passwd' OR 1=1"}"#, &payload, &[0; 64])),
            ("embedded jwk", forge(&format!(r#"{{"alg":"EdDSA","kid":"{kid}","jwk":{{"kty":"OKP"}}}}"#), &payload, &[0; 64])),
            ("crit", forge(&format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp"]}}"#), &payload, &[0; 64])),
            ("wrong typ", forge(&format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#), &payload, &[0; 64])),
            ("bad signature", String::from_utf8(flipped).unwrap()),
            ("truncated", good[..good.len() - 10].to_owned()),
            ("two parts", good.rsplit_once('.').unwrap().0.to_owned()),
            ("huge", "a".repeat(MAX_TOKEN_BYTES + 1)),
            ("non-json header", forge("not json", &payload, &[0; 64])),
            ("empty", String::new()),
        ];
        for (name, token) in cases {
            let err = verify(&token, &keys, "https://stint.test", &aud(), Timestamp(1001)).unwrap_err();
            assert_eq!(err.code(), "invalid_token", "{name}");
        }
    }

    #[test]
    fn duplicate_claims_are_refused() {
        let k = SigningKey::generate(&mut OsRng);
        let mut payload = serde_json::to_string(&claims(1000)).unwrap();
        payload.insert_str(1, r#""role":"admin","#);
        let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, k.kid());
        let signing_input = format!("{}.{}", B64.encode(&header), B64.encode(&payload));
        let token = format!("{signing_input}.{}", B64.encode(k.sign(signing_input.as_bytes())));
        let err = verify(&token, &[k.public()], "https://stint.test", &aud(), Timestamp(1001)).unwrap_err();
        assert_eq!(err.code(), "invalid_token");
    }

    /// Property: no mutation of a valid token (byte flips, truncations, insertions, swapped
    /// segments) verifies, and none panics. A deterministic generator keeps failures reproducible;
    /// `fuzz/` runs the same check coverage-guided.
    #[test]
    fn mutated_tokens_never_verify() {
        let k = SigningKey::from_seed(&[9u8; 32]).unwrap();
        let keys = [k.public()];
        let good = sign(&claims(1000), &k);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let mut t = good.clone().into_bytes();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % t.len();
                match next() % 4 {
                    0 => t[i] = (next() % 256) as u8,
                    1 => t.truncate(i),
                    2 => t.insert(i, b"._-A\x00{"[(next() % 6) as usize]),
                    _ => {
                        let j = (next() as usize) % t.len();
                        t.swap(i, j);
                    }
                }
                if t.is_empty() {
                    break;
                }
            }
            if t == good.as_bytes() {
                continue;
            }
            let Ok(s) = String::from_utf8(t) else { continue };
            assert!(verify(&s, &keys, "https://stint.test", &aud(), Timestamp(1001)).is_err(), "{s}");
        }
    }
}
