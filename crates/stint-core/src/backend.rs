//! The backend port: systems stint issues credentials for (AWS, PostgreSQL) and takes them
//! back from. Adapters live in `stint-backends`; stint's own credentials (role tokens, SSH
//! certificates) are issued by the broker itself.
//!
//! The broker decides (policy), records the lease, then asks the backend. A backend only
//! carries out: it never decides who may have what, and it is only ever handed an
//! [`AuthorizedLease`], which only a [`Permit`] builds.

use std::collections::BTreeMap;
use std::ops::Deref;

use crate::error::Result;
use crate::ids::{LeaseId, RoleName};
use crate::model::{BackendKind, Lease};
use crate::policy::{Permit, Subject};
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

/// A lease a decision authorised: built only from a [`Permit`] (by the broker, as it records
/// the issuance), so [`Backend::issue`] cannot be called for a lease nobody decided on.
/// Backends read it as a [`Lease`].
///
/// A backend is handed one:
///
/// ```
/// use stint_core::backend::{AuthorizedLease, Backend};
/// async fn issue(backend: &dyn Backend, lease: &AuthorizedLease) {
///     let _ = backend.issue(lease).await;
/// }
/// ```
///
/// A lease built any other way is not one, and does not compile:
///
/// ```compile_fail,E0308
/// use stint_core::backend::Backend;
/// async fn issue(backend: &dyn Backend, lease: &stint_core::model::Lease) {
///     let _ = backend.issue(lease).await;
/// }
/// ```
///
/// ```compile_fail,E0451
/// use stint_core::backend::AuthorizedLease;
/// fn forge(lease: stint_core::model::Lease) -> AuthorizedLease {
///     AuthorizedLease { lease }
/// }
/// ```
#[derive(Debug)]
pub struct AuthorizedLease {
    lease: Lease,
}

impl AuthorizedLease {
    /// The lease `permit` allows on backend `backend`, from `now` until the permit ends. Its
    /// `external_id` is set by [`Self::known_as`] before it is recorded.
    pub(crate) fn new(permit: &Permit, id: LeaseId, backend: &str, kind: BackendKind, now: Timestamp) -> AuthorizedLease {
        let (user_id, subject, session_id, grant_id) = match permit.subject() {
            Subject::Person { user, name, session, grant } => (Some(user.clone()), name.to_string(), Some(session.clone()), grant.clone()),
            Subject::Pipeline(p) => (None, p.holder(), None, None),
            Subject::Workload(w) => (None, w.holder(), None, None),
        };
        let lease = Lease {
            id,
            backend: backend.to_owned(),
            kind,
            user_id,
            subject,
            role: permit.role().clone(),
            session_id,
            grant_id,
            external_id: String::new(),
            issued_at: now,
            expires_at: permit.expires_at(),
            revoked_at: None,
            revoke_reason: None,
            ended_at: None,
            retry_at: None,
        };
        AuthorizedLease { lease }
    }

    /// The same lease, with what the backend will know it by (chosen before issuing, so the
    /// lease is recorded first).
    pub(crate) fn known_as(mut self, external_id: String) -> AuthorizedLease {
        self.lease.external_id = external_id;
        self
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    pub fn into_lease(self) -> Lease {
        self.lease
    }

    /// A lease nobody decided on, for testing a backend adapter on its own: it skips the
    /// decision that every other lease comes from. Only with the `danger-unchecked-leases`
    /// feature, which nothing but adapter tests enables.
    #[cfg(feature = "danger-unchecked-leases")]
    pub fn danger_unchecked(lease: Lease) -> AuthorizedLease {
        AuthorizedLease { lease }
    }
}

impl Deref for AuthorizedLease {
    type Target = Lease;
    fn deref(&self) -> &Lease {
        &self.lease
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
    /// Issues the credential for `lease` (its role, subject and end are decided, and it is
    /// recorded).
    async fn issue(&self, lease: &AuthorizedLease) -> Result<Credential>;
    /// Makes the lease's credential unusable and removes what issuing created. Idempotent: it
    /// may run again after a crash, or for a credential whose issuance failed half-way.
    /// `revoked` tells an early end (revocation) from the natural one (expiry).
    async fn end(&self, lease: &Lease, revoked: bool) -> Result<()>;
}
