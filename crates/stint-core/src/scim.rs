//! Provisioning from the identity provider (SCIM 2.0, RFC 7643/7644): the provider is a client
//! of stint with a bearer token an administrator made (`stint scim token create`), shown once
//! and stored as lookup + SHA-256 like every bearer secret.
//!
//! Pure: no I/O.

use crate::ids::{ScimTokenName, UserId};
use crate::time::Timestamp;

/// A SCIM bearer token as stint keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimToken {
    /// The administrator's name for it (the provider it is for: `okta`, `entra`).
    pub name: ScimTokenName,
    pub lookup: String,
    pub secret_hash: Vec<u8>,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ScimToken {
    /// What audit records name the provider by: `scim:NAME`.
    pub fn actor(&self) -> String {
        format!("scim:{}", self.name)
    }
}
