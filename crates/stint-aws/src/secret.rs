//! AWS credentials as types: the secret halves zeroize on drop and print as `<redacted>`.
//!
//! An access key id is an identifier (it appears in CloudTrail and in every `Authorization`
//! header), so it stays a plain `String`. The secret access key and the session token are
//! bearer secrets: they live only in [`SecretString`], which has no `Display`, no
//! `Serialize`, a redacting `Debug`, and wipes its buffer when dropped.

use std::fmt;

use time::OffsetDateTime;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret string. The only way to read it is [`SecretString::expose`], so every use is
/// easy to find when auditing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    /// The secret itself; never log or format what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// For filling the buffer in place (reading a file straight into it).
    pub(crate) fn expose_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A set of AWS credentials: long-term (an IAM user's key) or temporary (from STS, with a
/// session token and an expiration).
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
    expiration: Option<OffsetDateTime>,
}

impl Credentials {
    /// Long-term credentials (an `AKIA…` key pair).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: SecretString) -> Self {
        Credentials { access_key_id: access_key_id.into(), secret_access_key, session_token: None, expiration: None }
    }

    /// Temporary credentials (an `ASIA…` key with its session token). `expiration` is
    /// `None` only when the source did not say (the chain then refreshes them early).
    pub fn temporary(
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
        session_token: SecretString,
        expiration: Option<OffsetDateTime>,
    ) -> Self {
        Credentials { access_key_id: access_key_id.into(), secret_access_key, session_token: Some(session_token), expiration }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &SecretString {
        &self.secret_access_key
    }

    pub fn session_token(&self) -> Option<&SecretString> {
        self.session_token.as_ref()
    }

    pub fn expiration(&self) -> Option<OffsetDateTime> {
        self.expiration
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("expiration", &self.expiration)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secrets() {
        let c = Credentials::temporary("ASIAEXAMPLE", SecretString::new("s3cr3t-key"), SecretString::new("t0ken"), None);
        let shown = format!("{c:?} {:?}", c.clone());
        assert!(shown.contains("ASIAEXAMPLE"));
        assert!(!shown.contains("s3cr3t-key") && !shown.contains("t0ken"), "{shown}");
        assert_eq!(format!("{:?}", SecretString::new("x")), "<redacted>");
    }
}
