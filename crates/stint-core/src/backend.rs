//! The backend port: systems stint issues credentials for (AWS, PostgreSQL) and takes them
//! back from. Adapters live in `stint-backends`; stint's own credentials (role tokens, SSH
//! certificates) are issued by the broker itself.
//!
//! The broker decides (policy), records the lease, then asks the backend. A backend only
//! carries out: it never decides who may have what.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::ids::RoleName;
use crate::model::{BackendKind, Lease};
use crate::secret::SecretString;
use crate::time::Timestamp;

/// A credential as issued: what it is, and how a tool receives it.
#[derive(Debug)]
pub struct Credential {
    /// When the backend stops honouring it (never later than the lease).
    pub expires_at: Timestamp,
    /// Safe to print: user names, hosts, key ids, certificates.
    pub fields: BTreeMap<String, String>,
    /// The secret parts: passwords, secret keys, session tokens.
    pub secrets: BTreeMap<String, SecretString>,
    /// Environment variables a tool reads it from, each naming a key of `fields` or `secrets`.
    pub env: BTreeMap<String, String>,
}

impl Credential {
    pub fn new(expires_at: Timestamp) -> Credential {
        Credential { expires_at, fields: BTreeMap::new(), secrets: BTreeMap::new(), env: BTreeMap::new() }
    }
    pub fn field(mut self, name: &str, value: impl Into<String>) -> Credential {
        self.fields.insert(name.to_owned(), value.into());
        self
    }
    pub fn secret(mut self, name: &str, value: SecretString) -> Credential {
        self.secrets.insert(name.to_owned(), value);
        self
    }
    /// Exposes `key` (a field or a secret) as environment variable `var`.
    pub fn env(mut self, var: &str, key: &str) -> Credential {
        self.env.insert(var.to_owned(), key.to_owned());
        self
    }
}

/// A system stint issues credentials for.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;
    /// The stint roles this backend issues credentials for.
    fn roles(&self) -> Vec<RoleName>;
    /// The stint role a backend-native name maps to (an AWS role ARN), for callers that
    /// speak the backend's own protocol (STS `AssumeRoleWithWebIdentity`).
    fn role_for_target(&self, _target: &str) -> Option<RoleName> {
        None
    }
    /// The longest credential this backend can issue (AWS: the role's `MaxSessionDuration`).
    /// A lease never outlives its credential: the broker ends leases no later than this.
    fn max_ttl(&self) -> Option<crate::time::Ttl> {
        None
    }
    /// What the backend will know the lease by (a database role name, an STS session name).
    /// Chosen before issuing so the lease is recorded first.
    fn external_id(&self, lease: &Lease) -> String;
    /// Issues the credential for `lease` (its role, subject and end are decided).
    async fn issue(&self, lease: &Lease) -> Result<Credential>;
    /// Makes the lease's credential unusable and removes what issuing created. Idempotent: it
    /// may run again after a crash, or for a credential whose issuance failed half-way.
    /// `revoked` tells an early end (revocation) from the natural one (expiry).
    async fn end(&self, lease: &Lease, revoked: bool) -> Result<()>;
}
