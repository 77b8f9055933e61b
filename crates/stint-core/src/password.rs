//! Password hashing with argon2id (RFC 9106), PHC string format.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::{Error, Result};
use crate::secret::SecretString;

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 1024;

/// A password that meets the length rules. Parsed once, at the edge.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(p: SecretString) -> Result<NewPassword> {
        let n = p.expose().chars().count();
        if n < MIN_LEN || p.expose().len() > MAX_LEN {
            return Err(Error::invalid("weak_password", format!("password must be {MIN_LEN} to {MAX_LEN} characters long")));
        }
        Ok(NewPassword(p))
    }
}

/// argon2id with the crate's defaults (OWASP's m=19 MiB, t=2, p=1).
pub fn hash(p: &NewPassword, rng: &mut dyn rand_core::CryptoRngCore) -> Result<String> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Argon2::default().hash_password(p.0.expose().as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| Error::Internal(format!("argon2: {e}")))
}

/// Verifies `p` against `phc`. With `phc == None` (unknown user, not enrolled) it verifies
/// against `dummy` so the caller spends the same time either way.
pub fn verify(p: &SecretString, phc: Option<&str>, dummy: &str) -> bool {
    let target = phc.unwrap_or(dummy);
    let Ok(parsed) = PasswordHash::new(target) else { return false };
    let ok = Argon2::default().verify_password(p.expose().as_bytes(), &parsed).is_ok();
    ok && phc.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn hash_and_verify() {
        let p = NewPassword::parse(SecretString::new("correct horse battery".into())).unwrap();
        let h = hash(&p, &mut OsRng).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&SecretString::new("correct horse battery".into()), Some(&h), &h));
        assert!(!verify(&SecretString::new("wrong horse battery".into()), Some(&h), &h));
        assert!(!verify(&SecretString::new("correct horse battery".into()), None, &h), "no user never verifies");
    }

    #[test]
    fn short_passwords_are_refused() {
        assert_eq!(NewPassword::parse(SecretString::new("short".into())).err().unwrap().code(), "weak_password");
    }
}
