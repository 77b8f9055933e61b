//! Password hashing with argon2id (RFC 9106), PHC string format.
//!
//! A [`Worker`] owns the 19 MiB of argon2 memory and reuses it for every hash, so a
//! server that hashes all day keeps a fixed footprint instead of leaving one freed
//! 19 MiB block per call to the allocator.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

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

/// Hashes and verifies with one reusable block of argon2 memory.
pub struct Worker {
    blocks: Vec<Block>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker { blocks: vec![Block::default(); Params::default().block_count()] }
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("argon2: {e}"))
}

impl Worker {
    fn compute(&mut self, argon: &Argon2<'_>, params: &Params, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> Result<()> {
        let need = params.block_count();
        if self.blocks.len() < need {
            // A hash made with heavier parameters than ours (an older or newer policy).
            self.blocks.resize(need, Block::default());
        }
        let r = argon.hash_password_into_with_memory(pwd, salt, out, &mut self.blocks[..need]);
        // The blocks hold password-derived state; do not leave it lying in memory.
        self.blocks.iter_mut().for_each(|b| *b = Block::default());
        r.map_err(internal)
    }

    /// argon2id with the crate's defaults (OWASP's m=19 MiB, t=2, p=1).
    pub fn hash(&mut self, p: &NewPassword, rng: &mut dyn rand_core::CryptoRngCore) -> Result<String> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(&argon, &params, p.0.expose().as_bytes(), &salt, &mut out)?;
        let salt = SaltString::encode_b64(&salt).map_err(internal)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(internal)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(internal)?),
        };
        Ok(phc.to_string())
    }

    /// Verifies `p` against `phc`. With `phc == None` (unknown user, not enrolled) it verifies
    /// against `dummy` so the caller spends the same time either way.
    pub fn verify(&mut self, p: &SecretString, phc: Option<&str>, dummy: &str) -> bool {
        let ok = self.check(p, phc.unwrap_or(dummy)).unwrap_or(false);
        ok && phc.is_some()
    }

    fn check(&mut self, p: &SecretString, phc: &str) -> Result<bool> {
        let parsed = PasswordHash::new(phc).map_err(internal)?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(internal)?;
        let version = parsed.version.map(Version::try_from).transpose().map_err(internal)?.unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(internal)?;
        let expected = parsed.hash.ok_or_else(|| internal("hash missing"))?;
        let salt = parsed.salt.ok_or_else(|| internal("salt missing"))?;
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf).map_err(internal)?;
        let mut out = vec![0u8; expected.len()];
        self.compute(&Argon2::new(algorithm, version, params.clone()), &params, p.expose().as_bytes(), salt, &mut out)?;
        Ok(out.ct_eq(expected.as_bytes()).into())
    }
}

/// One-off hash with a fresh worker (tools and tests; servers keep workers).
pub fn hash(p: &NewPassword, rng: &mut dyn rand_core::CryptoRngCore) -> Result<String> {
    Worker::default().hash(p, rng)
}

/// One-off verification with a fresh worker.
pub fn verify(p: &SecretString, phc: Option<&str>, dummy: &str) -> bool {
    Worker::default().verify(p, phc, dummy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;
    use rand_core::OsRng;

    #[test]
    fn hash_and_verify() {
        let mut w = Worker::default();
        let p = NewPassword::parse(SecretString::new("correct horse battery".into())).unwrap();
        let h = w.hash(&p, &mut OsRng).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(w.verify(&SecretString::new("correct horse battery".into()), Some(&h), &h));
        assert!(!w.verify(&SecretString::new("wrong horse battery".into()), Some(&h), &h));
        assert!(!w.verify(&SecretString::new("correct horse battery".into()), None, &h), "no user never verifies");
    }

    #[test]
    fn interoperates_with_the_reference_phc_implementation() {
        let p = NewPassword::parse(SecretString::new("correct horse battery".into())).unwrap();
        let ours = hash(&p, &mut OsRng).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery", &PasswordHash::new(&ours).unwrap()).is_ok());
        // A hash made elsewhere with other parameters still verifies.
        let params = Params::new(8 * 1024, 3, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs =
            argon2::password_hash::PasswordHasher::hash_password(&Argon2::new(Algorithm::Argon2id, Version::V0x13, params), b"pw", &salt).unwrap().to_string();
        assert!(verify(&SecretString::new("pw".into()), Some(&theirs), &ours));
        assert!(!verify(&SecretString::new("px".into()), Some(&theirs), &ours));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert_eq!(NewPassword::parse(SecretString::new("short".into())).err().unwrap().code(), "weak_password");
    }
}
