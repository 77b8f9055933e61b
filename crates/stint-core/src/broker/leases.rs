//! Credentials on backends (AWS, PostgreSQL, SSH certificates), held as leases.
//!
//! Issuing: decide (the same policies as role tokens); the one issuance pipeline
//! (`Broker::issue`) records the lease and its audit record, then asks the backend.
//! Revoking: mark the leases revoked in the same change as what caused it (a disable, a
//! logout, a revoked grant), then end them on their backends.
//! Ending is the reaper's work: it also ends leases that expired, retries what failed, and
//! runs on one replica at a time (a lock in the store).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::audit::{Draft, Event, Outcome};
use crate::backend::{AuthorizedLease, Backend, Credential};
use crate::crypto::{SigningKey, StoredKey};
use crate::error::{Error, Result};
use crate::ids::{truncate, LeaseId, RoleName, UserId};
use crate::model::{BackendKind, Lease, LeaseScope};
use crate::sshcert;
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};

use super::issue::What;
use super::{Broker, Caller};

/// An SSH certificate backend: stint's own CA signs, so it needs no adapter.
#[derive(Clone, Debug)]
pub struct SshBackendConfig {
    pub name: String,
    /// The principals (login names) a certificate for each role carries.
    pub roles: BTreeMap<RoleName, Vec<String>>,
    /// Certificate extensions, e.g. `permit-pty`.
    pub extensions: Vec<String>,
}

/// A backend a role has credentials on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackendChoice {
    pub name: String,
    pub kind: BackendKind,
}

/// What a caller asks for.
#[derive(Debug, Default)]
pub struct LeaseAsk {
    pub role: String,
    pub ttl: Option<Ttl>,
    /// The backend by name; by default the one backend (other than SSH) the role has.
    pub backend: Option<String>,
    /// The OpenSSH public key to certify (SSH backends only).
    pub public_key: Option<String>,
}

/// A credential and the lease it is held under.
#[derive(Debug)]
pub struct Leased {
    pub lease: Lease,
    pub credential: Credential,
}

/// What one run of the reaper did.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reaped {
    /// False when another replica holds the reaper lock.
    pub ran: bool,
    pub ended: usize,
    pub failed: usize,
    /// Why each failure failed, for the host's log; retried on the next run.
    pub failures: Vec<ReapFailure>,
}

/// A lease the reaper could not end on its backend.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReapFailure {
    pub lease: LeaseId,
    pub backend: String,
    pub code: &'static str,
    pub message: String,
}

/// How long a reaper's claim lasts unless renewed; another replica takes over after it.
const REAPER_LOCK_SECS: i64 = 30;
/// Leases ended per batch, and batches per reaper run (the rest waits for the next run).
const REAP_BATCH: u32 = 200;
const REAP_BATCHES_PER_RUN: usize = 25;
/// A lease the reaper failed to end waits this long before it is tried again.
const REAP_RETRY_SECS: i64 = 60;
/// Certificates are valid from a little before issuance, for servers whose clocks lag.
const SSH_BACKDATE_SECS: i64 = 60;

/// A lease checked and ready to be decided on: where, with which key, capped how.
pub(super) struct LeasePlan<'a> {
    target: Target<'a>,
    key: Option<sshcert::PublicKey>,
    cap: Option<Ttl>,
}

impl LeasePlan<'_> {
    /// The backend's name.
    pub(super) fn backend(&self) -> &str {
        self.target.name()
    }
}

enum Target<'a> {
    Ssh(&'a SshBackendConfig),
    External(&'a str, &'a Arc<dyn Backend>),
}

impl<'a> Target<'a> {
    fn name(&self) -> &'a str {
        match self {
            Target::Ssh(s) => &s.name,
            Target::External(n, _) => n,
        }
    }
    /// The adapter, for backends other than stint's own SSH CA.
    fn external(&self) -> Option<&'a Arc<dyn Backend>> {
        match self {
            Target::Ssh(_) => None,
            Target::External(_, b) => Some(b),
        }
    }
}

impl Broker {
    /// Wires the configured backends to their adapters, by name.
    pub fn with_backends(mut self, backends: BTreeMap<String, Arc<dyn Backend>>) -> Broker {
        self.backends = backends;
        self
    }

    /// The backends that issue credentials for `role` (SSH ones included), by name.
    pub fn backends_of(&self, role: &RoleName) -> Vec<BackendChoice> {
        let ssh = self.cfg.ssh.iter().filter(|s| s.roles.contains_key(role)).map(|s| BackendChoice { name: s.name.clone(), kind: BackendKind::Ssh });
        let ext = self.backends.iter().filter(|(_, b)| b.roles().contains(role)).map(|(n, b)| BackendChoice { name: n.clone(), kind: b.kind() });
        ssh.chain(ext).collect()
    }

    fn target(&self, role: &RoleName, name: Option<&str>) -> Result<Option<Target<'_>>> {
        if let Some(name) = name {
            if let Some(s) = self.cfg.ssh.iter().find(|s| s.name == name) {
                return s.roles.contains_key(role).then_some(Some(Target::Ssh(s))).ok_or_else(|| not_on_backend(role, name));
            }
            let (n, b) = self.backends.get_key_value(name).ok_or_else(|| {
                Error::not_found(
                    "unknown_backend",
                    format!("no backend named {:?}; `stint whoami` lists the roles, the configuration the backends", truncate(name)),
                )
            })?;
            return b.roles().contains(role).then_some(Some(Target::External(n, b))).ok_or_else(|| not_on_backend(role, name));
        }
        let found: Vec<(&String, &Arc<dyn Backend>)> = self.backends.iter().filter(|(_, b)| b.roles().contains(role)).collect();
        match found.as_slice() {
            [] => Ok(None),
            [(n, b)] => Ok(Some(Target::External(n, b))),
            _ => {
                let all = self.backends_of(role);
                let names: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
                let ssh: Vec<&str> = all.iter().filter(|b| b.kind == BackendKind::Ssh).map(|b| b.name.as_str()).collect();
                let hint = match ssh.first() {
                    Some(s) => format!(" (an SSH certificate comes from `stint ssh-cert --role {role} --backend {s}`)"),
                    None => String::new(),
                };
                Err(Error::invalid("backend_required", format!("role {role} has credentials on {}; choose one with --backend{hint}", names.join(", "))))
            }
        }
    }

    /// Issues a backend credential for the caller. `Ok(None)` when the role has no backend
    /// (and none was named): its credential is the role token (`Broker::assume`).
    pub async fn lease(&self, caller: &Caller, ask: LeaseAsk) -> Result<Option<Leased>> {
        let Some(plan) = self.plan_lease(&ask)? else {
            return Ok(None);
        };
        let now = self.now();
        let permit = self.decide(caller, &ask.role, ask.ttl, now).await?;
        let (role, backend) = (permit.role().clone(), plan.backend().to_owned());
        match self.spend_on_lease(permit, plan, now).await {
            Ok(leased) => Ok(Some(leased)),
            Err(e) => Err(self.lease_refused(caller, &role, &backend, e, now).await),
        }
    }

    /// What a lease asked for will be issued on, checked before any decision (so a malformed
    /// key or a TTL beyond the backend's is a plain 400 that records nothing). `Ok(None)` when
    /// the role has no backend and none was named.
    pub(super) fn plan_lease<'a>(&'a self, ask: &LeaseAsk) -> Result<Option<LeasePlan<'a>>> {
        let role = RoleName::parse(&ask.role)?;
        let Some(target) = self.target(&role, ask.backend.as_deref())? else {
            return Ok(None);
        };
        let key = match (&target, &ask.public_key) {
            (Target::Ssh(_), Some(k)) => Some(sshcert::PublicKey::parse(k)?),
            (Target::Ssh(_), None) => {
                return Err(Error::invalid("public_key_required", "an SSH certificate needs your public key (`stint ssh-cert` sends it)"))
            }
            (Target::External(..), Some(_)) => return Err(Error::invalid("unexpected_public_key", "only SSH backends take a public key")),
            (Target::External(..), None) => None,
        };
        // A lease ends no later than its credential: the backend's longest credential caps it.
        let cap = target.external().and_then(|b| b.max_ttl());
        if let (Some(cap), Some(asked)) = (cap, ask.ttl) {
            if asked > cap {
                return Err(Error::invalid(
                    "ttl_too_long",
                    format!("backend {:?} issues credentials for at most {cap}; ask for --ttl {cap} or less", target.name()),
                ));
            }
        }
        Ok(Some(LeasePlan { target, key, cap }))
    }

    /// Spends a permit on the planned lease, through the one issuance pipeline.
    pub(super) async fn spend_on_lease(&self, permit: crate::policy::Permit, plan: LeasePlan<'_>, now: crate::time::Timestamp) -> Result<Leased> {
        let permit = match plan.cap {
            Some(cap) => permit.shortened_to(cap),
            None => permit,
        };
        let what = match (plan.target, plan.key) {
            (Target::Ssh(cfg), Some(key)) => What::SshCert(cfg, key),
            (Target::External(name, b), _) => What::Backend(name, b),
            (Target::Ssh(_), None) => return Err(Error::Internal("SSH lease without a key".into())),
        };
        self.issue(permit, what, now).await?.lease()
    }

    /// What became of an issuance: a failure is recorded (and the caller told without the
    /// backend's details); a lease revoked while its backend worked is ended again, now that
    /// the credential exists, and not handed out.
    pub(super) async fn settle_issuance(&self, lease: &Lease, backend: Option<&Arc<dyn Backend>>, issued: Result<Credential>) -> Result<Credential> {
        let credential = match issued {
            Ok(c) => c,
            Err(e) => {
                self.failed(lease, &e).await?;
                return Err(match e.code() {
                    "backend_unavailable" | "backend_refused" => Error::upstream(
                        e.code(),
                        format!(
                            "backend {:?} could not issue the credential; an administrator finds why in the audit log (credential.failed, lease {})",
                            lease.backend, lease.id
                        ),
                    ),
                    _ => e,
                });
            }
        };
        let now_lease = self.store.lease(&lease.id).await?;
        if let Some(revoked_at) = now_lease.as_ref().and_then(|l| l.revoked_at) {
            if let Some(b) = backend {
                // The reaper may have run before the credential existed: end what exists now.
                // The cut-off is now, after the credential was made (AWS denies by issue time).
                let mut ended = now_lease.clone().unwrap_or_else(|| lease.clone());
                ended.revoked_at = Some(Timestamp(revoked_at.0.max(self.now().0 + 1)));
                // If this fails the reaper retries, unless it had already ended the lease
                // before the credential existed: then the credential lives until its own end
                // (PostgreSQL's VALID UNTIL, the AWS session's expiry).
                let _ = b.end(&ended, true).await;
            }
            return Err(Error::forbidden("lease_revoked", "the credential was revoked while it was being issued"));
        }
        Ok(credential)
    }

    /// The backend refused or was unreachable: the lease ends at once (there is no
    /// credential to take back, or the reaper would find a half-made one: ending is idempotent).
    pub(super) async fn failed(&self, lease: &Lease, e: &Error) -> Result<()> {
        let now = self.now();
        let d = Draft::new(now, Event::CredentialFailed, Outcome::Failure)
            .actor(lease.user_id.as_ref().map_or(lease.subject.as_str(), UserId::as_str))
            .subject(&lease.id)
            .reason(e.code())
            .detail("backend", &lease.backend)
            .detail("why", e.to_string().chars().take(500).collect::<String>());
        let mut change = Change::default().record(d);
        // An external backend may have created part of the credential: the reaper ends it.
        // An SSH certificate that was not signed needs nothing.
        if lease.kind == BackendKind::Ssh {
            change = change.with(Mutation::EndLease { id: lease.id.clone(), at: now });
        } else {
            change = change.with(Mutation::RevokeLeases {
                scope: LeaseScope::Lease(lease.id.clone()),
                at: now,
                reason: crate::model::ISSUANCE_FAILED.into(),
                recorded_by: None,
            });
        }
        self.commit(change).await.map(drop)
    }

    pub(super) fn sign_ssh(
        &self,
        cfg: &SshBackendConfig,
        lease: &AuthorizedLease,
        key: &sshcert::PublicKey,
        serial: u64,
        now: Timestamp,
    ) -> Result<Credential> {
        let ca = self.ssh_ca()?;
        let principals = cfg.roles.get(&lease.role).cloned().unwrap_or_default();
        let spec = sshcert::CertSpec {
            serial,
            key_id: format!("{} lease={} session={} role={}", lease.subject, lease.id, lease.session_id.as_ref().map_or("-", |s| s.as_str()), lease.role),
            principals: principals.clone(),
            valid_after: Timestamp(now.0 - SSH_BACKDATE_SECS),
            valid_before: lease.expires_at,
            critical_options: vec![],
            extensions: cfg.extensions.clone(),
        };
        let mut nonce = [0u8; 32];
        self.rng().fill_bytes(&mut nonce);
        let cert = sshcert::sign_user_certificate(&ca, key, &spec, nonce)?;
        Ok(Credential::new(lease.expires_at)
            .field("certificate", cert)
            .field("serial", serial.to_string())
            .field("key_id", spec.key_id)
            .field("principals", principals.join(","))
            .field("public_key_fingerprint", key.fingerprint()))
    }

    /// The SSH CA, loaded at start.
    fn ssh_ca(&self) -> Result<Arc<SigningKey>> {
        self.ssh_ca
            .read()
            .map_err(|_| Error::Internal("SSH CA lock poisoned".into()))?
            .clone()
            .ok_or_else(|| Error::Internal("the SSH CA is not loaded; Broker::start must run first".into()))
    }

    /// Creates the SSH CA key on first start (when an SSH backend is configured) and loads it.
    pub(super) async fn load_ssh_ca(&self) -> Result<()> {
        if self.cfg.ssh.is_empty() {
            return Ok(());
        }
        let now = self.now();
        if self.store.ssh_ca().await?.is_none() {
            let key = SigningKey::generate(&mut *self.rng());
            let stored = StoredKey::seal(&key, &self.kek, now, &mut *self.rng());
            let d = Draft::new(now, Event::KeyCreated, Outcome::Success)
                .actor("system")
                .subject(key.kid())
                .detail("purpose", "ssh_ca")
                .detail("alg", "ssh-ed25519");
            self.commit(Change::default().with(Mutation::InsertSshCa(stored)).record(d)).await?;
        }
        // Two replicas starting at once: the first insert won; everyone loads that one.
        let stored = self.store.ssh_ca().await?.ok_or_else(|| Error::Internal("the SSH CA key was not stored".into()))?;
        let key = Arc::new(stored.open(&self.kek)?);
        *self.ssh_ca.write().map_err(|_| Error::Internal("SSH CA lock poisoned".into()))? = Some(key);
        Ok(())
    }

    /// The CA's public key, for sshd's `TrustedUserCAKeys`.
    pub fn ssh_ca_public(&self) -> Result<String> {
        if self.cfg.ssh.is_empty() {
            return Err(Error::not_found("ssh_not_configured", "this server has no SSH backend ([[backends.ssh]])"));
        }
        Ok(sshcert::ca_public_key_line(&self.ssh_ca()?.public(), "stint-ssh-ca"))
    }

    /// An OpenSSH KRL of the revoked certificates that have not expired, for sshd's `RevokedKeys`.
    pub async fn ssh_krl(&self) -> Result<Vec<u8>> {
        if self.cfg.ssh.is_empty() {
            return Err(Error::not_found("ssh_not_configured", "this server has no SSH backend ([[backends.ssh]])"));
        }
        let now = self.now();
        let ca = self.ssh_ca()?;
        let serials: Vec<u64> = self.store.revoked_unexpired(BackendKind::Ssh, now).await?.iter().filter_map(|s| s.parse().ok()).collect();
        Ok(sshcert::krl(&ca.public(), &serials, now.0.max(0) as u64, now, "stint"))
    }

    /// Leases newest first: the caller's own, or (administrators) one user's or everyone's.
    pub async fn leases_for(&self, caller: &Caller, user: Option<&str>, everyone: bool, include_ended: bool) -> Result<Vec<Lease>> {
        const LIMIT: u32 = 1000;
        match (user, everyone) {
            (None, false) => self.store.leases(Some(&caller.user.id), include_ended, LIMIT).await,
            (Some(name), _) => {
                self.admin(caller, "leases.list").await?;
                let u = self.target_user(name).await?;
                self.store.leases(Some(&u.id), include_ended, LIMIT).await
            }
            (None, true) => {
                self.admin(caller, "leases.list").await?;
                self.store.leases(None, include_ended, LIMIT).await
            }
        }
    }

    pub async fn find_lease(&self, id: &str) -> Result<Lease> {
        let id = LeaseId::parse(id)?;
        self.store.lease(&id).await?.ok_or_else(|| unknown_lease(&id))
    }

    /// One lease, for its holder (whose client asks before serving a cached credential) or
    /// an administrator. Anyone else gets the answer an unknown id gets, so a lease id reveals
    /// nothing about leases that are not the caller's.
    pub async fn lease_status(&self, caller: &Caller, id: &str) -> Result<Lease> {
        let lease = self.find_lease(id).await?;
        if lease.user_id.as_ref() == Some(&caller.user.id) || caller.user.in_group(&self.cfg.admin_group) {
            return Ok(lease);
        }
        Err(unknown_lease(&lease.id))
    }

    /// Revokes one lease: its owner or an administrator may.
    pub async fn revoke_lease(&self, caller: &Caller, id: &str) -> Result<Lease> {
        let lease = self.find_lease(id).await?;
        let admin = caller.user.in_group(&self.cfg.admin_group);
        if !admin && lease.user_id.as_ref() != Some(&caller.user.id) {
            let d = Draft::new(self.now(), Event::RequestRefused, Outcome::Failure)
                .actor(&caller.user.id)
                .subject(&lease.id)
                .reason("not_your_lease")
                .detail("action", "lease.revoke");
            self.commit(Change::audit_only(d)).await?;
            return Err(Error::forbidden("not_your_lease", "only its holder or an administrator may revoke this lease"));
        }
        if lease.revoked_at.is_none() && lease.ended_at.is_none() {
            self.commit(self.revocation(Change::default(), &caller.user.id, LeaseScope::Lease(lease.id.clone()), "revoked by request")).await?;
            self.reap_now().await;
        }
        self.find_lease(id).await
    }

    /// Adds the revocation of every live lease in `scope` to `change`. The store records each
    /// lease the change actually revoked, so a lease recorded after the caller looked is
    /// covered and recorded (issuance re-checks the person, session and grant in its own
    /// transaction), and two revocations racing for one lease record it once.
    pub(super) fn revocation(&self, change: Change, actor: &dyn std::fmt::Display, scope: LeaseScope, reason: &str) -> Change {
        change.with(Mutation::RevokeLeases { scope, at: self.now(), reason: reason.to_owned(), recorded_by: Some(actor.to_string()) })
    }

    /// Ends what must end now, right after a revocation, if this replica may run the reaper.
    /// What fails here is not lost: the periodic reaper retries it, and reports it.
    pub async fn reap_now(&self) {
        let _ = self.reap().await;
    }

    /// One reaper pass: ends revoked and expired leases on their backends, in batches, while
    /// this replica holds the reaper lock (claimed again before each batch, so a long pass
    /// never outlives its claim).
    ///
    /// One run at a time in this process: a call while another runs asks that one to look
    /// again when it finishes, and returns at once with `ran == false`.
    pub async fn reap(&self) -> Result<Reaped> {
        if self.reaping.swap(true, Ordering::AcqRel) {
            self.reap_again.store(true, Ordering::Release);
            return Ok(Reaped::default());
        }
        let _running = Running(&self.reaping);
        let mut out = Reaped::default();
        loop {
            self.reap_again.store(false, Ordering::Release);
            let more = self.reap_batches(&mut out).await?;
            if !self.reap_again.load(Ordering::Acquire) || !more {
                return Ok(out);
            }
        }
    }

    /// Up to `REAP_BATCHES_PER_RUN` batches; false when this replica does not hold the lock.
    async fn reap_batches(&self, out: &mut Reaped) -> Result<bool> {
        for _ in 0..REAP_BATCHES_PER_RUN {
            let now = self.now();
            let claim = Mutation::ClaimLock { name: "reaper".into(), holder: self.replica.clone(), until: Timestamp(now.0 + REAPER_LOCK_SECS), now };
            match self.store.apply(Change::default().with(claim)).await {
                Ok(_) => out.ran = true,
                Err(e) if e.code() == "lock_held" => return Ok(false),
                Err(e) => return Err(e),
            }
            let batch = self.store.leases_to_end(now, REAP_BATCH).await?;
            let full = batch.len() >= REAP_BATCH as usize;
            for lease in batch {
                self.end_lease(lease, out).await?;
            }
            // Failed leases are deferred, so the next batch holds others.
            if !full {
                break;
            }
        }
        Ok(true)
    }

    async fn end_lease(&self, lease: Lease, out: &mut Reaped) -> Result<()> {
        let revoked = lease.revoked_at.is_some();
        let ended = match lease.kind {
            // A revoked certificate is refused through the KRL until it expires.
            BackendKind::Ssh => Ok(()),
            _ => match self.backends.get(&lease.backend) {
                Some(b) => b.end(&lease, revoked).await,
                None => Err(Error::Internal(format!("backend {:?} is no longer configured; restore it to end lease {}", lease.backend, lease.id))),
            },
        };
        match ended {
            Ok(()) => {
                let d = Draft::new(self.now(), Event::LeaseEnded, Outcome::Success)
                    .actor("reaper")
                    .subject(&lease.id)
                    .reason(if revoked { "revoked" } else { "expired" })
                    .detail("backend", &lease.backend)
                    .detail("external_id", &lease.external_id);
                match self.commit(Change::default().with(Mutation::EndLease { id: lease.id.clone(), at: self.now() }).record(d)).await {
                    Ok(_) => out.ended += 1,
                    // Another replica's reaper, whose claim lapsed mid-run, got there first.
                    Err(e) if e.code() == "lease_ended" => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => {
                out.failed += 1;
                out.failures.push(ReapFailure { lease: lease.id.clone(), backend: lease.backend.clone(), code: e.code(), message: e.to_string() });
                let until = Timestamp(self.now().0 + REAP_RETRY_SECS);
                self.commit(Change::default().with(Mutation::DeferLease { id: lease.id.clone(), until })).await?;
            }
        }
        Ok(())
    }
}

/// Clears the in-process "reaping" flag however a run ends.
pub(super) struct Running<'a>(pub(super) &'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn unknown_lease(id: &LeaseId) -> Error {
    Error::not_found("unknown_lease", format!("no lease {id}"))
}

fn not_on_backend(role: &RoleName, backend: &str) -> Error {
    Error::forbidden("role_not_on_backend", format!("backend {:?} issues nothing for role {role}", truncate(backend)))
}

/// Serial 0 is reserved by some tools; anything else is fine.
pub(super) fn nonzero_serial(rng: &mut dyn rand_core::CryptoRngCore) -> u64 {
    loop {
        let s = rng.next_u64();
        if s != 0 {
            return s;
        }
    }
}
