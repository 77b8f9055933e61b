//! Services: workloads, how their agents enroll a key, and the credentials they ask for.
//!
//! An administrator adds a workload with its roles (`stint workload add api --role
//! api-service`). Its agent enrolls an Ed25519 key once, proving the workload's identity with
//! a one-time join token or with a platform token the workload's binding admits; then asks
//! for credentials with assertions that key signs ([`crate::workload`]). A credential request
//! is decided by the same Cedar policies as anyone's (the workload is a `Stint::Workload`
//! with its roles) and issued by the one pipeline (`Broker::issue`), which re-checks the
//! workload enabled, the key live and the assertion unused in the issuance's transaction.
//! Disabling a workload revokes its keys, its unused join tokens and its leases at once.

use crate::audit::{Draft, Event, Outcome};
use crate::authz::{AuthzContext, Principal, Source};
use crate::bearer::{self, BearerKind};
use crate::error::{Error, Result};
use crate::fold::FoldKey;
use crate::ids::{truncate, LeaseId, RoleName, WorkloadId, WorkloadName};
use crate::model::{LeaseScope, ISSUANCE_FAILED};
use crate::policy::{GrantReason, Permit, Service};
use crate::secret::SecretString;
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};
use crate::workload::{self as wl, Assertion, JoinToken, PlatformBinding, Workload, WorkloadKey};

use super::admin::Admin;
use super::exchange::{bounded, CiIssuerConfig};
use super::issue::What;
use super::{Broker, Issued, LeaseAsk, Leased};

/// How long a service credential lives unless the role's maximum is shorter or the agent asks
/// for less: an hour, renewed by the agent before it ends.
pub const SERVICE_TTL_SECS: u64 = 3600;
/// The longest a join token may wait to be used.
pub const JOIN_TOKEN_MAX_SECS: u64 = 7 * 24 * 3600;
/// The reason recorded on everything a workload's disable ends.
const WORKLOAD_DISABLED: &str = "workload disabled";

/// A platform token that is not the workload's: one refusal, whichever part differs, so a
/// caller learns nothing of the binding.
fn unbound() -> Error {
    Error::forbidden(
        "no_matching_platform",
        "this platform token does not stand for that workload (its issuer, subject or audience differ from the workload's --platform binding)",
    )
}

fn disabled(w: &Workload) -> Error {
    Error::forbidden("workload_disabled", format!("workload {} is disabled", w.name))
}

/// A workload as `stint workload list` shows it.
#[derive(Debug, serde::Serialize)]
pub struct WorkloadInfo {
    pub id: WorkloadId,
    pub name: WorkloadName,
    pub roles: Vec<RoleName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformBinding>,
    pub disabled: bool,
    pub created_at: Timestamp,
    /// Enrolled agent keys not revoked: one per running agent.
    pub live_keys: usize,
    /// Set by a disable: the leases it revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leases_revoked: Option<usize>,
}

/// A join token, shown once to the administrator who made it.
pub struct NewJoinToken {
    pub token: SecretString,
    pub workload: WorkloadName,
    pub expires_at: Timestamp,
}

/// An agent enrolling with a join token.
pub struct JoinRequest {
    pub token: SecretString,
    /// The agent's Ed25519 public key ([`wl::encode_public_key`]).
    pub public_key: String,
    pub addr: String,
}

/// An agent enrolling with its platform's token (a Kubernetes service-account token…).
pub struct AttestRequest {
    pub workload: String,
    pub token: SecretString,
    pub public_key: String,
    pub addr: String,
}

/// An enrolled agent key.
#[derive(Debug, serde::Serialize)]
pub struct Enrolled {
    pub workload: WorkloadName,
    pub key_id: String,
    pub roles: Vec<RoleName>,
}

/// An agent whose assertion verified with a key enrolled for an enabled workload.
#[derive(Debug)]
pub struct WorkloadCaller {
    pub workload: Workload,
    pub key: WorkloadKey,
    assertion: Assertion,
    addr: String,
}

/// What an agent asks for.
#[derive(Debug, Default)]
pub struct WorkloadAsk {
    pub role: String,
    pub ttl: Option<Ttl>,
    /// A backend by name, `token` for the role token; by default the role's one backend.
    pub backend: Option<String>,
    /// The OpenSSH public key to certify (SSH backends).
    pub public_key: Option<String>,
    /// The lease the agent holds and is renewing: refused (`lease_revoked`) when an
    /// administrator revoked it, so a revocation stops the renewals.
    pub previous_lease: Option<String>,
}

/// A workload's credential: the role token, or a lease on a backend.
pub enum WorkloadCreds {
    Token(Issued),
    Lease(Leased),
}

/// Whether an agent's identity and lease still hold.
#[derive(Debug, serde::Serialize)]
pub struct WorkloadStatus {
    pub workload: WorkloadName,
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseState>,
}

#[derive(Debug, serde::Serialize)]
pub struct LeaseState {
    pub id: LeaseId,
    pub status: &'static str,
    pub live: bool,
}

impl Broker {
    async fn target_workload(&self, name: &str) -> Result<Workload> {
        let name = WorkloadName::parse(name)?;
        self.store
            .workload(&name)
            .await?
            .ok_or_else(|| Error::not_found("unknown_workload", format!("no workload named {name}; `stint workload list` shows them")))
    }

    async fn info(&self, w: &Workload) -> Result<WorkloadInfo> {
        let live_keys = self.store.workload_keys(&w.id).await?.iter().filter(|k| k.live()).count();
        Ok(WorkloadInfo {
            id: w.id.clone(),
            name: w.name.clone(),
            roles: w.roles.clone(),
            platform: w.platform.clone(),
            disabled: w.disabled,
            created_at: w.created_at,
            live_keys,
            leases_revoked: None,
        })
    }

    /// Checks a platform binding against the configuration: the issuer is a `[[ci.issuer]]`.
    fn check_binding(&self, b: &PlatformBinding) -> Result<()> {
        if !self.cfg.ci.issuers.iter().any(|i| i.name == b.issuer) {
            let known: Vec<&str> = self.cfg.ci.issuers.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::invalid(
                "unknown_issuer",
                format!(
                    "no [[ci.issuer]] is named {:?} (configured: [{}]); add the platform's issuer to the configuration first",
                    truncate(&b.issuer),
                    known.join(", ")
                ),
            ));
        }
        if b.subject.is_empty() || b.subject.len() > 255 || b.audience.is_empty() || b.audience.len() > 255 {
            return Err(Error::invalid("invalid_platform", "the platform subject and audience must be 1-255 characters"));
        }
        Ok(())
    }

    /// Adds a workload with its roles, and the platform identity that may enroll its agents.
    pub async fn add_workload(&self, admin: &Admin<'_>, name: &str, roles: &[String], platform: Option<PlatformBinding>) -> Result<WorkloadInfo> {
        let name = WorkloadName::parse(name)?;
        let mut roles = roles.iter().map(|r| RoleName::parse(r)).collect::<Result<Vec<_>>>()?;
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(Error::invalid("role_required", "a workload needs at least one role: --role NAME"));
        }
        if let Some(unknown) = roles.iter().find(|r| self.cfg.roles.get(r).is_none()) {
            return Err(Error::not_found("unknown_role", format!("no role named {unknown}; the configuration's [roles] lists them")));
        }
        if let Some(b) = &platform {
            self.check_binding(b)?;
        }
        let now = self.now();
        let w = Workload { id: WorkloadId::random(&mut *self.rng()), name, roles, platform, disabled: false, created_at: now };
        let list: Vec<&str> = w.roles.iter().map(RoleName::as_str).collect();
        let mut d =
            Draft::new(now, Event::WorkloadCreated, Outcome::Success).actor(admin.id()).subject(&w.id).detail("name", &w.name).detail("roles", list.join(","));
        if let Some(b) = &w.platform {
            d = d.detail("platform_issuer", &b.issuer).detail("platform_subject", &b.subject);
        }
        self.commit(Change::default().with(Mutation::InsertWorkload(w.clone())).record(d)).await?;
        self.info(&w).await
    }

    pub async fn list_workloads(&self, _admin: &Admin<'_>) -> Result<Vec<WorkloadInfo>> {
        let mut out = Vec::new();
        for w in self.store.workloads().await? {
            out.push(self.info(&w).await?);
        }
        Ok(out)
    }

    /// Disables a workload and ends everything it holds, in one transaction: its agent keys
    /// (its agents must enroll again), its unused join tokens, and its leases (the reaper then
    /// ends them on their backends). Its role tokens stop introspecting as active.
    pub async fn disable_workload(&self, admin: &Admin<'_>, name: &str) -> Result<WorkloadInfo> {
        let mut w = self.target_workload(name).await?;
        let now = self.now();
        let by = admin.id().to_string();
        let d = Draft::new(now, Event::WorkloadDisabled, Outcome::Success).actor(&by).subject(&w.id).detail("name", &w.name);
        let change = Change::default()
            .with(Mutation::SetWorkloadDisabled { workload: w.id.clone(), disabled: true })
            .with(Mutation::RevokeWorkloadKeys { workload: w.id.clone(), at: now })
            .with(Mutation::ExpireJoinTokens { workload: w.id.clone(), at: now })
            .record(d);
        // For the administrator's summary: what was live just before (a lease recorded in
        // between is revoked by the change too, and only missing from the count).
        let live = self.store.live_leases(&LeaseScope::Holder(w.holder())).await?.len();
        self.commit(self.revocation(change, &by, LeaseScope::Holder(w.holder()), WORKLOAD_DISABLED)).await?;
        self.reap_now().await;
        w.disabled = true;
        let mut info = self.info(&w).await?;
        info.leases_revoked = Some(live);
        Ok(info)
    }

    /// Enables a disabled workload. Its old keys stay revoked: its agents enroll again.
    pub async fn enable_workload(&self, admin: &Admin<'_>, name: &str) -> Result<WorkloadInfo> {
        let mut w = self.target_workload(name).await?;
        let d = Draft::new(self.now(), Event::WorkloadEnabled, Outcome::Success).actor(admin.id()).subject(&w.id).detail("name", &w.name);
        self.commit(Change::default().with(Mutation::SetWorkloadDisabled { workload: w.id.clone(), disabled: false }).record(d)).await?;
        w.disabled = false;
        self.info(&w).await
    }

    /// A one-time token that enrolls one agent for the workload, valid for `ttl`.
    pub async fn join_token(&self, admin: &Admin<'_>, name: &str, ttl: Ttl) -> Result<NewJoinToken> {
        let w = self.target_workload(name).await?;
        if ttl.as_secs() > JOIN_TOKEN_MAX_SECS {
            return Err(Error::invalid("ttl_too_long", format!("a join token lives at most 7d; asked for {ttl}")));
        }
        if w.disabled {
            return Err(crate::error::Error::forbidden(
                "workload_disabled",
                format!("workload {} is disabled; `stint workload enable {}` first", w.name, w.name),
            ));
        }
        let now = self.now();
        let b = bearer::mint(BearerKind::Join, &mut *self.rng());
        let expires_at = now.plus(ttl);
        let row = JoinToken {
            lookup: b.lookup.clone(),
            secret_hash: b.hash.to_vec(),
            workload_id: w.id.clone(),
            expires_at,
            used_at: None,
            created_by: Some(admin.id().clone()),
        };
        let d = Draft::new(now, Event::JoinTokenIssued, Outcome::Success).actor(admin.id()).subject(&w.id).detail("expires_at", expires_at);
        // Its maker must still be enabled as it commits: a disable expires the join tokens they
        // made, and one made concurrently must not escape it.
        let change = Change::default()
            .with(Mutation::RequireEnabledUser { user: admin.id().clone() })
            .with(Mutation::RequireEnabledWorkload { workload: w.id.clone() })
            .with(Mutation::InsertJoinToken(row))
            .record(d);
        self.commit(change).await?;
        Ok(NewJoinToken { token: b.value, workload: w.name, expires_at })
    }

    /// Audits a refused enrollment or credential request, folded per source and reason.
    async fn workload_denied(&self, actor: &str, addr: &str, what: &str, e: &Error, now: Timestamp) -> Result<()> {
        self.observer.auth_failed(e.code());
        let d = Draft::new(now, Event::WorkloadDenied, Outcome::Failure)
            .actor(actor)
            .subject(what)
            .reason(e.code())
            .detail("addr", addr)
            .detail("why", bounded(&e.to_string(), 500));
        self.audit_refusal(FoldKey::of(&d, what, addr), d).await
    }

    /// Refuses with `e` after auditing it.
    async fn refuse<T>(&self, actor: &str, addr: &str, what: &str, e: Error, now: Timestamp) -> Result<T> {
        self.workload_denied(actor, addr, what, &e, now).await?;
        Err(e)
    }

    /// Enrolls an agent key with a join token; the token is spent in the same transaction.
    pub async fn join(&self, req: JoinRequest) -> Result<Enrolled> {
        let now = self.now();
        let addr = truncate(&req.addr);
        let bad = || Error::unauthenticated("invalid_join_token", "the join token is not valid; an administrator makes one with `stint workload join-token`");
        let Ok(presented) = bearer::parse(BearerKind::Join, req.token.expose(), "invalid_join_token") else {
            return self.refuse(&addr, &addr, "join", bad(), now).await;
        };
        let row = self.store.join_token(&presented.lookup).await?;
        let Some(row) = row.filter(|r| presented.matches(&r.secret_hash)) else {
            return self.refuse(&addr, &addr, "join", bad(), now).await;
        };
        let w = self.store.workload_by_id(&row.workload_id).await?.ok_or_else(|| Error::Internal("a join token names no workload".into()))?;
        let actor = w.holder();
        let refusal = if row.used_at.is_some() {
            Some(Error::unauthenticated(
                "join_token_used",
                "this join token was used already; each enrolls one agent: make a new one with `stint workload join-token`",
            ))
        } else if now >= row.expires_at {
            Some(Error::unauthenticated("join_token_expired", "this join token has expired; make a new one with `stint workload join-token`"))
        } else if w.disabled {
            Some(disabled(&w))
        } else {
            None
        };
        if let Some(e) = refusal {
            return self.refuse(&actor, &addr, "join", e, now).await;
        }
        let key = match wl::parse_public_key(&req.public_key) {
            Ok(k) => k,
            Err(e) => return self.refuse(&actor, &addr, "join", e, now).await,
        };
        let spend = Mutation::ConsumeJoinToken { lookup: row.lookup.clone(), at: now };
        self.enroll_key(&w, key, "join_token", spend, &addr, now).await
    }

    /// Enrolls an agent key with a token from the workload's platform, checked against the
    /// workload's binding (issuer, exact `sub`, audience) and accepted once.
    pub async fn attest(&self, req: AttestRequest) -> Result<Enrolled> {
        let now = self.now();
        let addr = truncate(&req.addr);
        // The token first: who has none learns nothing of which workloads exist.
        let (issuer, token) = match self.ci_verify(&req.token, now).await {
            Ok(found) => found,
            Err((_, e)) => return self.refuse(&addr, &addr, "attest", e, now).await,
        };
        let w = match WorkloadName::parse(&req.workload) {
            Ok(n) => self.store.workload(&n).await?,
            Err(_) => None,
        };
        let Some(w) = w else {
            return self.refuse(&format!("ci:{}", issuer.name), &addr, "attest", unbound(), now).await;
        };
        let actor = w.holder();
        if let Err(e) = self.binding_admits(&w, issuer, &token) {
            return self.refuse(&actor, &addr, "attest", e, now).await;
        }
        if w.disabled {
            return self.refuse(&actor, &addr, "attest", disabled(&w), now).await;
        }
        let key = match wl::parse_public_key(&req.public_key) {
            Ok(k) => k,
            Err(e) => return self.refuse(&actor, &addr, "attest", e, now).await,
        };
        let (replay_key, replay_until) = Self::token_use(&req.token, issuer, &token, self.cfg.ci.skew_secs);
        let spend = Mutation::RecordTokenUse { key: replay_key, expires_at: replay_until };
        match self.enroll_key(&w, key, &format!("platform:{}", issuer.name), spend, &addr, now).await {
            Err(e) if e.code() == "token_replayed" => {
                let e = Error::unauthenticated("token_replayed", "this platform token was used already; each is accepted once: the agent reads a fresh one");
                self.refuse(&actor, &addr, "attest", e, now).await
            }
            other => other,
        }
    }

    fn binding_admits(&self, w: &Workload, issuer: &CiIssuerConfig, token: &crate::oidc::IdToken) -> Result<()> {
        let Some(b) = &w.platform else {
            return Err(Error::forbidden("no_platform_binding", format!("workload {} enrolls with join tokens only: it has no --platform binding", w.name)));
        };
        let aud_ok = match token.claims.get("aud") {
            Some(serde_json::Value::String(a)) => *a == b.audience,
            Some(serde_json::Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(b.audience.as_str())),
            _ => false,
        };
        if b.issuer != issuer.name || b.subject != token.subject {
            return Err(unbound());
        }
        if !aud_ok {
            return Err(Error::forbidden("token_wrong_audience", format!("the platform token's audience must include {:?}", b.audience)));
        }
        Ok(())
    }

    /// Records the key with `spend` (the join token's or platform token's single use) and the
    /// workload's re-checks, in one transaction.
    async fn enroll_key(&self, w: &Workload, key: crate::crypto::PublicKey, how: &str, spend: Mutation, addr: &str, now: Timestamp) -> Result<Enrolled> {
        let row = WorkloadKey {
            kid: key.kid().to_owned(),
            workload_id: w.id.clone(),
            public: key.bytes(),
            enrolled_by: how.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        let d = Draft::new(now, Event::WorkloadEnrolled, Outcome::Success).actor(w.holder()).subject(&row.kid).detail("how", how).detail("addr", addr);
        let change = Change::default()
            .with(spend)
            .with(Mutation::RequireEnabledWorkload { workload: w.id.clone() })
            .with(Mutation::RequireWorkloadKeyRoom { workload: w.id.clone(), max: self.cfg.caps.keys_per_workload })
            .with(Mutation::InsertWorkloadKey(row.clone()))
            .record(d);
        match self.commit(change).await {
            Ok(_) => Ok(Enrolled { workload: w.name.clone(), key_id: row.kid, roles: w.roles.clone() }),
            Err(e) if matches!(e.code(), "too_many_keys" | "workload_disabled" | "key_exists" | "join_token_used") => {
                self.workload_denied(&w.holder(), addr, "enroll", &e, now).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The agent behind `assertion`: its key enrolled and live, its workload enabled, the
    /// assertion signed by that key for this server and current. Refusals are audited.
    pub async fn workload_caller(&self, assertion: &SecretString, addr: &str) -> Result<WorkloadCaller> {
        let now = self.now();
        let addr = truncate(addr);
        let unknown = || {
            Error::unauthenticated("invalid_assertion", "the assertion is not signed by an enrolled agent key; enroll the agent (join token or platform token)")
        };
        let Ok(kid) = wl::peek_kid(assertion.expose()) else {
            return self.refuse(&addr, &addr, "assertion", unknown(), now).await;
        };
        let Some((key, w)) = self.store.workload_key(&kid).await? else {
            return self.refuse(&addr, &addr, "assertion", unknown(), now).await;
        };
        let actor = w.holder();
        let verified = match wl::verify_assertion(assertion.expose(), &key, &w.name, &self.cfg.issuer, now) {
            Ok(a) => a,
            Err(e) => return self.refuse(&actor, &addr, "assertion", e, now).await,
        };
        if w.disabled {
            return self.refuse(&actor, &addr, "assertion", disabled(&w), now).await;
        }
        if !key.live() {
            return self
                .refuse(&actor, &addr, "assertion", Error::unauthenticated("key_revoked", "this agent's key was revoked; enroll the agent again"), now)
                .await;
        }
        Ok(WorkloadCaller { workload: w, key, assertion: verified, addr })
    }

    /// The decision for a workload: the role exists and the Cedar policies permit the
    /// workload (with its roles) to assume it as a service, for at most the role's maximum.
    fn decide_workload(&self, caller: &WorkloadCaller, role: &str, ttl: Option<Ttl>, now: Timestamp) -> Result<Permit> {
        let role = RoleName::parse(role)?;
        let def = self.cfg.roles.get(&role).ok_or_else(|| Error::not_found("unknown_role", format!("no role named {role}")))?;
        let mut ctx = AuthzContext::human("", now);
        ctx.source = Source::Service;
        let d = self.cfg.roles.engine().decide(&Principal::Service(&caller.workload), &role, &ctx)?;
        if !d.allowed {
            let why = if d.policies.is_empty() {
                format!("it was not given the role (its roles: {})", caller.workload.roles.iter().map(RoleName::as_str).collect::<Vec<_>>().join(", "))
            } else {
                format!("forbidden by policy {}", d.policies.join(", "))
            };
            return Err(Error::forbidden("role_not_granted", format!("workload {} may not assume {role}: {why}", caller.workload.name)));
        }
        let ttl = match ttl {
            Some(t) if t > def.max_ttl => {
                return Err(Error::invalid("ttl_exceeds_role_max", format!("requested {t} exceeds the maximum of {} for role {role}", def.max_ttl)));
            }
            Some(t) => t,
            None => def.service_ttl.map_or_else(|| Ttl::from_secs(def.max_ttl.as_secs().min(SERVICE_TTL_SECS)), Ok)?,
        };
        let reasons = d.policies.into_iter().map(GrantReason::Policy).collect();
        let a = &caller.assertion;
        let replay_key = {
            use sha2::Digest;
            let h = sha2::Sha256::new()
                .chain_update(b"workload\n")
                .chain_update(a.kid.as_bytes())
                .chain_update(b"\n")
                .chain_update(a.claims.jti.as_bytes())
                .finalize();
            data_encoding::HEXLOWER.encode(&h)
        };
        let service = Service {
            workload: caller.workload.id.clone(),
            name: caller.workload.name.clone(),
            kid: caller.key.kid.clone(),
            addr: caller.addr.clone(),
            replay_key,
            replay_until: Timestamp(a.claims.exp.0.saturating_add(wl::ASSERTION_SKEW_SECS)),
        };
        Ok(Permit::for_workload(service, role, ttl, now, reasons))
    }

    /// Issues a credential to a workload: the role token, or a lease on the role's backend.
    /// Refusals (policy, the workload's lease cap, a revoked lease being renewed, a replayed
    /// assertion) are audited.
    pub async fn workload_creds(&self, caller: &WorkloadCaller, ask: WorkloadAsk) -> Result<WorkloadCreds> {
        let now = self.now();
        let actor = caller.workload.holder();
        if let Some(id) = &ask.previous_lease {
            if let Err(e) = self.renewable(caller, id).await {
                return self.refuse(&actor, &caller.addr, &truncate(&ask.role), e, now).await;
            }
        }
        let token_only = ask.backend.as_deref() == Some("token");
        let lease_ask =
            LeaseAsk { role: ask.role.clone(), ttl: ask.ttl, backend: ask.backend.clone().filter(|_| !token_only), public_key: ask.public_key.clone() };
        let plan = if token_only { None } else { self.plan_lease(&lease_ask)? };
        if plan.is_none() && ask.public_key.is_some() {
            return Err(Error::invalid("unexpected_public_key", format!("role {} has no SSH backend", truncate(&ask.role))));
        }
        let permit = match self.decide_workload(caller, &ask.role, ask.ttl, now) {
            Ok(p) => p,
            Err(e) => return self.refuse(&actor, &caller.addr, &truncate(&ask.role), e, now).await,
        };
        let issued = match plan {
            Some(plan) => self.spend_on_lease(permit, plan, now).await.map(WorkloadCreds::Lease),
            None => self.issue(permit, What::Token, now).await.and_then(|c| c.token()).map(WorkloadCreds::Token),
        };
        match issued {
            Err(e) if matches!(e.code(), "too_many_leases" | "token_replayed" | "workload_disabled" | "key_revoked") => {
                let e = match e.code() {
                    "token_replayed" => {
                        Error::unauthenticated("assertion_replayed", "this assertion was used already; the agent signs a new one for each request")
                    }
                    _ => e,
                };
                self.refuse(&actor, &caller.addr, &truncate(&ask.role), e, now).await
            }
            other => other,
        }
    }

    /// A lease the agent renews must be the workload's, and not revoked by an administrator
    /// (a lease that ended at its expiry, or whose issuance failed, is renewed as usual).
    async fn renewable(&self, caller: &WorkloadCaller, id: &str) -> Result<()> {
        let id = LeaseId::parse(id)?;
        let lease = self.store.lease(&id).await?.filter(|l| l.subject == caller.workload.holder());
        let Some(lease) = lease else {
            return Err(Error::not_found("unknown_lease", format!("workload {} holds no lease {id}", caller.workload.name)));
        };
        match lease.revoke_reason.as_deref() {
            Some(r) if lease.revoked_at.is_some() && r != ISSUANCE_FAILED => Err(Error::forbidden(
                "lease_revoked",
                format!("lease {id} was revoked ({r}); the agent stops renewing it: restart it once the cause is dealt with"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the agent's identity holds and its lease (if it names one) is live: the agent
    /// drops what it caches as soon as this says no.
    pub async fn workload_status(&self, caller: &WorkloadCaller, lease: Option<&str>) -> Result<WorkloadStatus> {
        let now = self.now();
        let lease = match lease {
            None => None,
            Some(id) => {
                let id = LeaseId::parse(id)?;
                let l = self.store.lease(&id).await?.filter(|l| l.subject == caller.workload.holder());
                let l = l.ok_or_else(|| Error::not_found("unknown_lease", format!("workload {} holds no lease {id}", caller.workload.name)))?;
                Some(LeaseState { id: l.id.clone(), status: l.status(now), live: l.live_at(now) })
            }
        };
        Ok(WorkloadStatus { workload: caller.workload.name.clone(), live: true, lease })
    }
}
