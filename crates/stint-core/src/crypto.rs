//! Keys: the key-encryption key that seals secrets at rest, and the Ed25519 signing keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use crate::time::Timestamp;

/// The key-encryption key (KEK). Everything secret that stint stores is sealed with it.
pub struct MasterKey {
    id: String,
    key: SecretBytes,
}

impl MasterKey {
    /// Parses the contents of a master key file: 32 random bytes, base64 (standard or URL alphabet).
    pub fn from_file_contents(text: &str) -> Result<MasterKey> {
        let t = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(t)
            .or_else(|_| B64.decode(t.trim_end_matches('=')))
            .map_err(|_| Error::invalid("invalid_master_key", "master key file must hold 32 bytes in base64"))?;
        if bytes.len() != 32 {
            return Err(Error::invalid("invalid_master_key", "master key file must hold exactly 32 bytes in base64"));
        }
        let id = hex8(&Sha256::digest(&bytes));
        Ok(MasterKey { id, key: SecretBytes::new(bytes) })
    }

    /// A new random master key and the text to write to its file.
    pub fn generate(rng: &mut dyn rand_core::CryptoRngCore) -> (MasterKey, String) {
        let mut b = vec![0u8; 32];
        rng.fill_bytes(&mut b);
        let text = base64::engine::general_purpose::STANDARD.encode(&b);
        let id = hex8(&Sha256::digest(&b));
        (MasterKey { id, key: SecretBytes::new(b) }, text)
    }

    /// Identifies the KEK in sealed blobs, so a later rotation knows which key opens which blob.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain`, bound by `context` (e.g. `signing-key:<kid>`) so blobs cannot be swapped between rows.
    pub fn seal(&self, context: &str, plain: &[u8], rng: &mut dyn rand_core::CryptoRngCore) -> String {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.key.expose()));
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        // Encryption with a 32-byte key and a 12-byte nonce cannot fail for inputs under 256 GiB.
        let ct = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: context.as_bytes() }).unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1:{}:{}", self.id, B64.encode(blob))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<SecretBytes> {
        let bad = |why: &str| Error::Internal(format!("cannot open sealed secret ({context}): {why}"));
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(kek), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("unknown format"));
        };
        if kek != self.id {
            return Err(bad("sealed with a different master key; is STINT_MASTER_KEY_FILE the one this data was created with?"));
        }
        let blob = B64.decode(body).map_err(|_| bad("not base64"))?;
        if blob.len() < 12 + 16 {
            return Err(bad("truncated"));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(self.key.expose()));
        cipher
            .decrypt(Nonce::from_slice(&blob[..12]), Payload { msg: &blob[12..], aad: context.as_bytes() })
            .map(SecretBytes::new)
            .map_err(|_| bad("authentication failed"))
    }
}

/// The first four bytes in lowercase hex: a key id.
fn hex8(d: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&d[..d.len().min(4)])
}

/// An Ed25519 signing key with its key id.
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    pub fn generate(rng: &mut dyn rand_core::CryptoRngCore) -> SigningKey {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        SigningKey { kid: kid_of(key.verifying_key().as_bytes()), key }
    }

    pub fn from_seed(seed: &[u8]) -> Result<SigningKey> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| Error::Internal("signing key seed is not 32 bytes".into()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok(SigningKey { kid: kid_of(key.verifying_key().as_bytes()), key })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn seed(&self) -> SecretBytes {
        SecretBytes::new(self.key.to_bytes().to_vec())
    }
    pub fn public(&self) -> PublicKey {
        PublicKey { kid: self.kid.clone(), key: self.key.verifying_key() }
    }
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// The public half, as published in the JWKS.
#[derive(Clone, Debug)]
pub struct PublicKey {
    kid: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey> {
        let b: [u8; 32] = bytes.try_into().map_err(|_| Error::Internal("public key is not 32 bytes".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&b).map_err(|_| Error::Internal("invalid Ed25519 public key".into()))?;
        Ok(PublicKey { kid: kid_of(&b), key })
    }
    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
        // verify_strict rejects small-order keys and non-canonical signatures (malleability).
        self.key.verify_strict(msg, &sig).is_ok()
    }
    /// The RFC 8037 JWK (`kty: OKP`, `crv: Ed25519`).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.kid, "x": B64.encode(self.key.as_bytes()),
        })
    }
}

/// Key id: the RFC 7638-style thumbprint input reduced to 16 URL-safe characters.
fn kid_of(public: &[u8]) -> String {
    let thumb_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(public));
    B64.encode(Sha256::digest(thumb_input.as_bytes()))[..16].to_owned()
}

/// A signing key as the store keeps it: private half sealed, lifecycle in the open.
#[derive(Clone, Debug)]
pub struct StoredKey {
    pub kid: String,
    pub public: Vec<u8>,
    pub sealed_private: String,
    pub created_at: Timestamp,
    /// Set when a newer key took over signing.
    pub retired_at: Option<Timestamp>,
    /// After this instant no token it signed can still be valid, so it leaves the JWKS.
    pub verify_until: Option<Timestamp>,
}

impl StoredKey {
    pub fn seal(key: &SigningKey, kek: &MasterKey, now: Timestamp, rng: &mut dyn rand_core::CryptoRngCore) -> StoredKey {
        StoredKey {
            kid: key.kid().to_owned(),
            public: key.public().bytes().to_vec(),
            sealed_private: kek.seal(&format!("signing-key:{}", key.kid()), key.seed().expose(), rng),
            created_at: now,
            retired_at: None,
            verify_until: None,
        }
    }
    pub fn open(&self, kek: &MasterKey) -> Result<SigningKey> {
        let seed = kek.open(&format!("signing-key:{}", self.kid), &self.sealed_private)?;
        let key = SigningKey::from_seed(seed.expose())?;
        if key.kid() != self.kid {
            return Err(Error::Internal(format!("signing key {} does not match its id", self.kid)));
        }
        Ok(key)
    }
    /// Still in the JWKS at `now`?
    pub fn publishable(&self, now: Timestamp) -> bool {
        self.verify_until.is_none_or(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn key_ids_are_the_digests_first_four_bytes_in_lowercase_hex() {
        assert_eq!(hex8(&[0xde, 0xad, 0x0b, 0xef, 0x01]), "dead0bef");
        // SHA-256 of 32 zero bytes begins 66687aad (sealed blobs name their key by it).
        let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        assert_eq!(MasterKey::from_file_contents(&zeros).unwrap().id(), "66687aad");
    }

    #[test]
    fn seal_round_trips_and_binds_context() {
        let (kek, text) = MasterKey::generate(&mut OsRng);
        let again = MasterKey::from_file_contents(&format!("{text}\n")).unwrap();
        assert_eq!(kek.id(), again.id());
        let sealed = kek.seal("ctx-a", b"top secret", &mut OsRng);
        assert!(!sealed.contains("top secret"));
        assert_eq!(again.open("ctx-a", &sealed).unwrap().expose(), b"top secret");
        assert!(kek.open("ctx-b", &sealed).is_err(), "context must bind");
        let (other, _) = MasterKey::generate(&mut OsRng);
        assert!(other.open("ctx-a", &sealed).is_err(), "another KEK must not open it");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(kek.open("ctx-a", &tampered).is_err());
    }

    #[test]
    fn stored_key_opens_to_same_key() {
        let (kek, _) = MasterKey::generate(&mut OsRng);
        let k = SigningKey::generate(&mut OsRng);
        let stored = StoredKey::seal(&k, &kek, Timestamp(1), &mut OsRng);
        let back = stored.open(&kek).unwrap();
        assert_eq!(back.kid(), k.kid());
        let sig = back.sign(b"m");
        assert!(k.public().verify(b"m", &sig));
        assert!(!k.public().verify(b"n", &sig));
    }

    #[test]
    fn master_key_file_must_be_32_bytes() {
        assert!(MasterKey::from_file_contents("c2hvcnQ=").is_err());
        assert!(MasterKey::from_file_contents("not base64 !!").is_err());
    }
}
