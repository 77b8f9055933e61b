//! Opaque bearer secrets (session tokens, enrollment codes, the bootstrap token).
//!
//! Shape: `stint_<kind>_<lookup>.<secret>`. The lookup part is stored in clear to find the
//! row; only a SHA-256 of the secret part is stored, and it is compared in constant time.
//! A stolen database therefore yields no usable bearer secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// What a bearer secret is for; part of its visible prefix so leaks are easy to triage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerKind {
    Session,
    Enrollment,
    Bootstrap,
    /// The OAuth `state` of an SSO login, sent through the identity provider.
    SsoState,
    /// An RFC 8628 device code, held by the CLI that polls.
    DeviceCode,
    /// Handed to the CLI's loopback listener when a browser SSO login succeeds.
    SsoLogin,
    /// Enrolls one agent key for a workload, once.
    Join,
    /// An identity provider's SCIM client.
    Scim,
}

impl BearerKind {
    fn tag(self) -> &'static str {
        match self {
            BearerKind::Session => "ses",
            BearerKind::Enrollment => "enr",
            BearerKind::Bootstrap => "boot",
            BearerKind::SsoState => "state",
            BearerKind::DeviceCode => "dev",
            BearerKind::SsoLogin => "sso",
            BearerKind::Join => "join",
            BearerKind::Scim => "scim",
        }
    }
}

/// A freshly minted bearer secret: the full value goes to its holder once; the store
/// keeps `lookup` and `hash`.
pub struct NewBearer {
    pub value: SecretString,
    pub lookup: String,
    pub hash: [u8; 32],
}

/// A presented bearer secret, split but not yet checked against the store.
pub struct PresentedBearer {
    pub lookup: String,
    secret: SecretString,
}

pub fn mint(kind: BearerKind, rng: &mut dyn rand_core::CryptoRngCore) -> NewBearer {
    let mut id = [0u8; 12];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let lookup = B64.encode(id);
    let secret_s = B64.encode(secret);
    let hash = Sha256::digest(secret_s.as_bytes()).into();
    NewBearer { value: SecretString::new(format!("stint_{}_{}.{}", kind.tag(), lookup, secret_s)), lookup, hash }
}

/// Splits a presented value; anything not of the expected kind and shape is refused.
pub fn parse(kind: BearerKind, value: &str, code: &'static str) -> Result<PresentedBearer> {
    let bad = || Error::unauthenticated(code, format!("malformed {} credential", kind.tag()));
    let rest = value.strip_prefix("stint_").and_then(|r| r.strip_prefix(kind.tag())).and_then(|r| r.strip_prefix('_')).ok_or_else(bad)?;
    let (lookup, secret) = rest.split_once('.').ok_or_else(bad)?;
    let b64ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !b64ok(lookup, 16) || !b64ok(secret, 43) {
        return Err(bad());
    }
    Ok(PresentedBearer { lookup: lookup.to_owned(), secret: SecretString::new(secret.to_owned()) })
}

impl PresentedBearer {
    /// Constant-time check of the secret against the stored hash.
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        let h: [u8; 32] = Sha256::digest(self.secret.expose().as_bytes()).into();
        h.ct_eq(stored_hash).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn minted_values_parse_and_match() {
        let b = mint(BearerKind::Session, &mut OsRng);
        assert!(b.value.expose().starts_with("stint_ses_"));
        let p = parse(BearerKind::Session, b.value.expose(), "invalid_session").unwrap();
        assert_eq!(p.lookup, b.lookup);
        assert!(p.matches(&b.hash));
        assert!(!p.matches(&[0u8; 32]));
    }

    #[test]
    fn wrong_kind_or_shape_is_refused() {
        let b = mint(BearerKind::Enrollment, &mut OsRng);
        assert!(parse(BearerKind::Session, b.value.expose(), "x").is_err());
        for bad in ["", "stint_ses_", "stint_ses_abc.def", "Bearer x", &format!("{}x", b.value.expose())] {
            assert!(parse(BearerKind::Session, bad, "x").is_err(), "{bad}");
        }
    }
}
