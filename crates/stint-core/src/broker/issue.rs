//! The one issuance pipeline. Every credential — a role token, a lease on a backend, an SSH
//! certificate — for every kind of subject comes from a [`Permit`] through [`Broker::issue`]:
//! it records the issuance (the lease, the audit record) in one transaction with the
//! subject's re-checks, then signs or calls the backend. Nothing leaves before its record is
//! durable, and no revocation that committed first is escaped.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::audit::{Draft, Event, Outcome};
use crate::backend::{AuthorizedLease, Backend, Credential};
use crate::error::{Error, Result};
use crate::ids::{LeaseId, TokenId};
use crate::jwt::{self, Claims};
use crate::model::BackendKind;
use crate::policy::{GrantReason, Permit, Subject};
use crate::sshcert;
use crate::store::{Change, Mutation};
use crate::time::Timestamp;

use super::leases::{nonzero_serial, SshBackendConfig};
use super::{Broker, Caps, Issued, Leased};

/// What a permit is spent on.
pub(super) enum What<'a> {
    /// A role token stint signs.
    Token,
    /// A credential an external backend (by its configured name) issues.
    Backend(&'a str, &'a Arc<dyn Backend>),
    /// An OpenSSH certificate stint's CA signs for the key.
    SshCert(&'a SshBackendConfig, sshcert::PublicKey),
}

/// What [`Broker::issue`] issued: a token for [`What::Token`], a lease otherwise.
pub(super) enum Credentialed {
    Token(Issued),
    Lease(Leased),
}

impl Credentialed {
    pub(super) fn token(self) -> Result<Issued> {
        match self {
            Credentialed::Token(t) => Ok(t),
            Credentialed::Lease(_) => Err(Error::Internal("a lease was issued where a token was asked for".into())),
        }
    }
    pub(super) fn lease(self) -> Result<Leased> {
        match self {
            Credentialed::Lease(l) => Ok(l),
            Credentialed::Token(_) => Err(Error::Internal("a token was issued where a lease was asked for".into())),
        }
    }
}

impl Broker {
    /// Spends `permit` on `what`: records it with the re-checks of the permit's subject in one
    /// transaction, then signs or asks the backend. The only way any credential is issued.
    pub(super) async fn issue(&self, permit: Permit, what: What<'_>, now: Timestamp) -> Result<Credentialed> {
        let record = Self::issued_record(&permit, now);
        match what {
            What::Token => self.sign_token(&permit, record, now).await.map(Credentialed::Token),
            What::Backend(name, backend) => {
                let lease = AuthorizedLease::new(&permit, LeaseId::random(&mut *self.rng()), name, backend.kind(), now);
                let external_id = backend.external_id(&lease);
                let lease = lease.known_as(external_id);
                self.record_lease(&permit, &lease, record, now).await?;
                let issued = backend.issue(&lease).await;
                self.hand_out(&permit, lease, Some(backend), issued).await.map(Credentialed::Lease)
            }
            What::SshCert(cfg, key) => {
                let lease = AuthorizedLease::new(&permit, LeaseId::random(&mut *self.rng()), &cfg.name, BackendKind::Ssh, now);
                let serial = nonzero_serial(&mut *self.rng());
                let lease = lease.known_as(serial.to_string());
                self.record_lease(&permit, &lease, record.detail("public_key", key.fingerprint()), now).await?;
                let issued = self.sign_ssh(cfg, &lease, &key, serial, now);
                self.hand_out(&permit, lease, None, issued).await.map(Credentialed::Lease)
            }
        }
    }

    /// The re-checks every issuance commits together with its record, by subject:
    ///
    /// - a person: enabled, the session live, the grant (if one allowed it) still approved. A
    ///   revocation of any of them that committed first aborts the issuance; one that commits
    ///   later follows its record in the chain. So no credential's record follows a
    ///   revocation that covers it, on any replica.
    /// - a pipeline: its token not used before (the replay guard), remembered from now on.
    /// - a workload: enabled, the agent key live (a disable revokes both, and commits before
    ///   or after as a person's does), and the assertion not used before.
    pub(super) fn entitled(permit: &Permit, now: Timestamp) -> Change {
        match permit.subject() {
            Subject::Person { user, session, grant, .. } => {
                let change = Self::still_live(user, session, now);
                match grant {
                    Some(g) => change.with(Mutation::RequireApprovedGrant { id: g.clone() }),
                    None => change,
                }
            }
            Subject::Pipeline(p) => Change::default().with(Mutation::RecordTokenUse { key: p.replay_key.clone(), expires_at: p.replay_until }),
            Subject::Workload(w) => Change::default()
                .with(Mutation::RequireEnabledWorkload { workload: w.workload.clone() })
                .with(Mutation::RequireLiveWorkloadKey { kid: w.kid.clone() })
                .with(Mutation::RecordTokenUse { key: w.replay_key.clone(), expires_at: w.replay_until }),
        }
    }

    /// What a lease's transaction holds besides its record: the subject's re-checks, the
    /// holder's room for one more lease (people and workloads have a cap; a pipeline's
    /// token is accepted once and its credentials live minutes), and the lease.
    fn leasing(permit: &Permit, lease: &AuthorizedLease, caps: Caps, now: Timestamp) -> Change {
        let change = Self::entitled(permit, now);
        let change = match permit.subject() {
            Subject::Person { user, .. } => change.with(Mutation::RequireLeaseRoom { user: user.clone(), at: now, max: caps.leases_per_person }),
            Subject::Workload(w) => change.with(Mutation::RequireHolderLeaseRoom { holder: w.holder(), at: now, max: caps.leases_per_workload }),
            Subject::Pipeline(_) => change,
        };
        change.with(Mutation::InsertLease(lease.lease().clone()))
    }

    /// The `credential.issued` record, as far as the permit says: who, which role, how long,
    /// and why. The credential's own facts are added by kind.
    fn issued_record(permit: &Permit, now: Timestamp) -> Draft {
        let d = Draft::new(now, Event::CredentialIssued, Outcome::Success).detail("role", permit.role()).detail("ttl", permit.ttl().as_secs());
        match permit.subject() {
            Subject::Person { user, session, grant, .. } => {
                let d = d.actor(user).detail("session", session).detail("reasons", reasons(permit.reasons()));
                match grant {
                    Some(g) => d.detail("grant", g),
                    None => d,
                }
            }
            Subject::Pipeline(p) => {
                let mut d = d
                    .actor(format_args!("ci:{}", p.issuer))
                    .detail("source", "ci")
                    .detail("issuer", &p.issuer_url)
                    .detail("statement", &p.statement)
                    .detail("addr", &p.addr);
                for (name, value) in &p.claims {
                    d = d.detail(&format!("claim.{name}"), value);
                }
                d
            }
            Subject::Workload(w) => {
                d.actor(w.holder()).detail("source", "service").detail("workload", &w.workload).detail("key", &w.kid).detail("addr", &w.addr)
            }
        }
    }

    /// The token backend: a JWT for exactly what the permit allows, signed once its record
    /// committed.
    async fn sign_token(&self, permit: &Permit, record: Draft, now: Timestamp) -> Result<Issued> {
        let ring = self.keyring()?;
        let claims = self.claims(permit, now);
        let mut d = record.subject(&claims.jti).detail("backend", "token").detail("expires_at", claims.exp).detail("kid", ring.signer.kid());
        if permit.grant().is_some_and(|g| g.starts_with("bg_")) {
            d = d.detail("break_glass", "true");
        }
        self.commit(Self::entitled(permit, now).record(d)).await?;
        let token = jwt::sign(&claims, &ring.signer);
        self.observer.issued(permit.role().as_str());
        Ok(Issued { token: token.into(), claims })
    }

    fn claims(&self, permit: &Permit, now: Timestamp) -> Claims {
        let (sub, sid, preferred_username, grant, agent_key) = match permit.subject() {
            Subject::Person { user, name, session, grant } => (user.to_string(), Some(session.clone()), name.to_string(), grant.clone(), None),
            Subject::Pipeline(p) => (p.holder(), None, p.display_name.clone(), None, None),
            Subject::Workload(w) => (w.holder(), None, w.name.to_string(), None, Some(w.kid.clone())),
        };
        Claims {
            iss: self.cfg.issuer.clone(),
            sub,
            aud: self.cfg.audience.clone(),
            role: permit.role().to_string(),
            sid,
            jti: TokenId::random(&mut *self.rng()),
            iat: now,
            exp: permit.expires_at(),
            preferred_username,
            grant,
            agent_key,
        }
    }

    /// Records the lease first: whatever happens next, the reaper knows it. The subject is
    /// re-checked in the same transaction, so a lease cannot be recorded after a revocation
    /// that covers it committed (and so escape it).
    async fn record_lease(&self, permit: &Permit, lease: &AuthorizedLease, record: Draft, now: Timestamp) -> Result<()> {
        let d = record
            .subject(&lease.id)
            .detail("backend", &lease.backend)
            .detail("kind", lease.kind.as_str())
            .detail("external_id", &lease.external_id)
            .detail("expires_at", lease.expires_at);
        self.commit(Self::leasing(permit, lease, self.cfg.caps, now).record(d)).await.map(drop)
    }

    /// The credential, once its issuance settled ([`Self::settle_issuance`]).
    async fn hand_out(&self, permit: &Permit, lease: AuthorizedLease, backend: Option<&Arc<dyn Backend>>, issued: Result<Credential>) -> Result<Leased> {
        let credential = self.settle_issuance(&lease, backend, issued).await?;
        self.observer.issued(permit.role().as_str());
        Ok(Leased { lease: lease.into_lease(), credential })
    }
}

/// The reasons of a decision as the audit record spells them: `policy "a"; policy "b"`.
/// Written into one buffer sized up front (each reason adds `; policy "…"`): this runs on
/// every issuance to a person.
fn reasons(all: &[GrantReason]) -> String {
    let len: usize = all.iter().map(|GrantReason::Policy(id)| id.len() + 11).sum();
    let mut out = String::with_capacity(len);
    for (i, r) in all.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let _ = write!(out, "{sep}{r}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::AuthzContext;
    use crate::ids::{RoleName, SessionId, UserId, Username};
    use crate::model::{Session, User};
    use crate::policy::{Pipeline, Roles};
    use crate::time::Ttl;
    use rand_core::OsRng;

    const NOW: Timestamp = Timestamp(1_000);

    fn alice() -> (User, Session) {
        let user = User {
            id: UserId::random(&mut OsRng),
            name: Username::parse("alice").unwrap(),
            groups: vec![],
            disabled: false,
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            expires_at: None,
            sponsor: None,
            created_at: Timestamp(0),
        };
        let session = Session {
            id: SessionId::random(&mut OsRng),
            lookup: String::new(),
            secret_hash: vec![],
            user_id: user.id.clone(),
            created_at: Timestamp(0),
            expires_at: Timestamp(100_000),
            revoked_at: None,
            mfa: "password+totp".into(),
        };
        (user, session)
    }

    /// A person's permit for `readonly`, through the real decision.
    fn person(user: &User, session: &Session) -> Permit {
        let role = RoleName::parse("readonly").unwrap();
        Roles::builtin().decide(user, session, &role, Some(Ttl::from_secs(600).unwrap()), &AuthzContext::human("password+totp", NOW)).unwrap()
    }

    fn pipeline() -> Permit {
        let p = Pipeline {
            issuer: "github".into(),
            issuer_url: "https://token.actions.githubusercontent.com".into(),
            subject: "repo:org/app:ref:refs/heads/main".into(),
            display_name: "org/app".into(),
            statement: "main branch".into(),
            claims: vec![("repository", "org/app".into())],
            addr: "192.0.2.7".into(),
            replay_key: "seen-once".into(),
            replay_until: Timestamp(2_000),
        };
        let reasons = vec![GrantReason::Policy("deploy: trust policy".into())];
        Permit::for_pipeline(p, RoleName::parse("deploy").unwrap(), Ttl::from_secs(600).unwrap(), NOW, reasons)
    }

    fn lease(permit: &Permit) -> AuthorizedLease {
        AuthorizedLease::new(permit, LeaseId::random(&mut OsRng), "pg", BackendKind::Postgres, NOW).known_as("role_x".into())
    }

    #[test]
    fn a_persons_issuance_rechecks_the_person_the_session_and_the_grant() {
        let (user, session) = alice();
        let (u, s) = (&user.id, &session.id);
        let change = Broker::entitled(&person(&user, &session), NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RequireEnabledUser { user: a },
            Mutation::RequireLiveSession { session: b, at: NOW },
        ] if a == u && b == s),
            "{:?}",
            change.mutations
        );

        let granted = person(&user, &session).under_grant("bg_1".into());
        let change = Broker::entitled(&granted, NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RequireEnabledUser { .. },
            Mutation::RequireLiveSession { .. },
            Mutation::RequireApprovedGrant { id },
        ] if id == "bg_1"),
            "{:?}",
            change.mutations
        );

        // A lease adds the person's cap and the lease itself, in the same transaction.
        let l = lease(&granted);
        let change = Broker::leasing(&granted, &l, Caps::default(), NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RequireEnabledUser { .. },
            Mutation::RequireLiveSession { .. },
            Mutation::RequireApprovedGrant { .. },
            Mutation::RequireLeaseRoom { user: a, at: NOW, max: 200 },
            Mutation::InsertLease(recorded),
        ] if a == u && recorded == l.lease()),
            "{:?}",
            change.mutations
        );
        assert_eq!((l.user_id.as_ref(), l.subject.as_str(), l.session_id.as_ref(), l.grant_id.as_deref()), (Some(u), "alice", Some(s), Some("bg_1")));
        assert_eq!((l.issued_at, l.expires_at, l.external_id.as_str()), (NOW, Timestamp(NOW.0 + 600), "role_x"));
    }

    #[test]
    fn a_pipelines_issuance_rechecks_that_its_token_is_used_once() {
        let permit = pipeline();
        let change = Broker::entitled(&permit, NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RecordTokenUse { key, expires_at: Timestamp(2_000) },
        ] if key == "seen-once"),
            "{:?}",
            change.mutations
        );

        let l = lease(&permit);
        let change = Broker::leasing(&permit, &l, Caps::default(), NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RecordTokenUse { .. },
            Mutation::InsertLease(recorded),
        ] if recorded == l.lease()),
            "no person cap for a pipeline: {:?}",
            change.mutations
        );
        assert_eq!(
            (l.user_id.as_ref(), l.subject.as_str(), l.session_id.as_ref(), l.grant_id.as_deref()),
            (None, "ci:github:repo:org/app:ref:refs/heads/main", None, None)
        );
    }

    fn workload() -> Permit {
        let w = crate::policy::Service {
            workload: crate::ids::WorkloadId::random(&mut OsRng),
            name: crate::ids::WorkloadName::parse("api").unwrap(),
            kid: "kid-1".into(),
            addr: "10.0.0.9".into(),
            replay_key: "assertion-once".into(),
            replay_until: Timestamp(1_120),
        };
        Permit::for_workload(w, RoleName::parse("api-service").unwrap(), Ttl::from_secs(3600).unwrap(), NOW, vec![])
    }

    #[test]
    fn a_workloads_issuance_rechecks_the_workload_its_key_and_the_assertion() {
        let permit = workload();
        let Subject::Workload(w) = permit.subject() else { unreachable!() };
        let change = Broker::entitled(&permit, NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RequireEnabledWorkload { workload: id },
            Mutation::RequireLiveWorkloadKey { kid },
            Mutation::RecordTokenUse { key, expires_at: Timestamp(1_120) },
        ] if *id == w.workload && kid == "kid-1" && key == "assertion-once"),
            "{:?}",
            change.mutations
        );
        // A lease adds the workload's cap, counted by holder, and the lease.
        let l = lease(&permit);
        let change = Broker::leasing(&permit, &l, Caps { leases_per_workload: 7, ..Caps::default() }, NOW);
        assert!(
            matches!(change.mutations.as_slice(), [
            Mutation::RequireEnabledWorkload { .. },
            Mutation::RequireLiveWorkloadKey { .. },
            Mutation::RecordTokenUse { .. },
            Mutation::RequireHolderLeaseRoom { holder, at: NOW, max: 7 },
            Mutation::InsertLease(recorded),
        ] if holder == "workload:api" && recorded == l.lease()),
            "{:?}",
            change.mutations
        );
        assert_eq!((l.user_id.as_ref(), l.subject.as_str(), l.session_id.as_ref()), (None, "workload:api", None));
        let d = Broker::issued_record(&permit, NOW);
        assert_eq!(d.actor, "workload:api");
        assert!(d.details.iter().any(|(k, v)| k == "source" && v == "service"), "{:?}", d.details);
    }

    #[test]
    fn the_issued_record_names_the_subject_and_why() {
        let (user, session) = alice();
        let d = Broker::issued_record(&person(&user, &session).under_grant("rq_1".into()), NOW);
        assert_eq!(d.actor, user.id.as_str());
        let keys: Vec<&str> = d.details.keys().map(String::as_str).collect();
        assert_eq!(keys, ["grant", "reasons", "role", "session", "ttl"]);
        assert_eq!(d.details["reasons"], "policy \"readonly: everyone\"");

        let d = Broker::issued_record(&pipeline(), NOW);
        assert_eq!(d.actor, "ci:github");
        let keys: Vec<&str> = d.details.keys().map(String::as_str).collect();
        assert_eq!(keys, ["addr", "claim.repository", "issuer", "role", "source", "statement", "ttl"]);
        assert_eq!((d.details["source"].as_str(), d.details["statement"].as_str()), ("ci", "main branch"));
    }

    #[test]
    fn reasons_are_joined_as_before() {
        let r = |s: &str| GrantReason::Policy(s.into());
        assert_eq!(reasons(&[]), "");
        assert_eq!(reasons(&[r("a"), r("b")]), "policy \"a\"; policy \"b\"");
    }
}
