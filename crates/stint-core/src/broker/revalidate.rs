//! Sessions follow the identity provider.
//!
//! When a provider hands stint a refresh token at an SSO login, stint keeps it (sealed with
//! the master key, bound to the session the login became) and uses it every
//! [`BrokerConfig::revalidate`](super::BrokerConfig) to ask the provider whether it still
//! vouches for the person, without asking the person (RFC 6749 §6). A refusal
//! (`invalid_grant`: the account was disabled or deleted, the password reset, consent or the
//! provider's session revoked) ends the stint session at once, with everything it holds, as
//! revoking it by hand does. A provider that cannot answer (unreachable, a 5xx) ends nothing:
//! failing closed there would sign everyone out during a provider outage. It is audited, and
//! its sessions are asked again an interval later; every session still ends at its own
//! expiry, at most `session_ttl` after its login.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use crate::audit::{Draft, Event, Outcome};
use crate::error::{Error, Result};
use crate::ids::{truncate, SessionId};
use crate::model::{LeaseScope, SsoAttempt, SsoRefresh};
use crate::oidc::Expected;
use crate::secret::SecretString;
use crate::store::{Change, Mutation};
use crate::time::Timestamp;

use super::leases::Running;
use super::sso::{Refreshed, SsoProvider};
use super::Broker;

/// Sessions asked per run, least recently checked first; the rest wait for the next run.
pub const REVALIDATE_BATCH: u32 = 200;
/// How long a replica's claim on the revalidation lasts unless renewed (it is renewed before
/// each session, and one provider request takes at most 10 s).
const LOCK_SECS: i64 = 60;
/// The reason recorded when the provider refused the refresh.
pub const IDP_REFRESH_REFUSED: &str = "idp_refresh_refused";
/// The reason recorded when a refreshed ID token names another person than the login's.
pub const IDP_SUBJECT_CHANGED: &str = "idp_subject_changed";

/// The sealing context of a refresh token while its login is in flight.
pub(super) fn attempt_refresh_context(attempt: &str) -> String {
    format!("sso-refresh:attempt:{attempt}")
}

/// The sealing context of a refresh token bound to its session.
fn session_refresh_context(session: &SessionId) -> String {
    format!("sso-refresh:session:{session}")
}

/// What one revalidation run did.
#[derive(Debug, Default)]
pub struct Revalidated {
    /// False when another replica (or another run in this process) is revalidating.
    pub ran: bool,
    /// Sessions the provider still vouches for.
    pub refreshed: usize,
    /// Sessions ended because the provider refused.
    pub ended: usize,
    /// Per provider: sessions it could not be asked about this run (asked again an interval
    /// later), and why.
    pub failures: Vec<RevalidateFailure>,
}

#[derive(Debug)]
pub struct RevalidateFailure {
    pub provider: String,
    pub code: &'static str,
    pub message: String,
    pub sessions: usize,
}

impl RevalidateFailure {
    fn new(provider: &str, e: &Error) -> RevalidateFailure {
        RevalidateFailure { provider: provider.to_owned(), code: e.code(), message: e.to_string(), sessions: 0 }
    }
}

/// How asking the provider about one session went.
enum Step {
    Refreshed,
    Ended,
    /// The provider did not answer, or answered what stint cannot use.
    Down(Error),
    /// Not asked: its provider did not answer earlier in this run.
    Skipped,
}

impl Broker {
    /// Moves the refresh token an approved attempt carries to the session it becomes, sealed
    /// for that session; the attempt (kept a day for inspection) keeps no copy.
    pub(super) fn bind_refresh(&self, a: &mut SsoAttempt, session: &SessionId, now: Timestamp) -> Result<Option<SsoRefresh>> {
        let Some(sealed) = a.refresh_sealed.take() else { return Ok(None) };
        let token = self.kek.open(&attempt_refresh_context(&a.id), &sealed)?;
        let subject = a.subject.clone().ok_or_else(|| Error::Internal("approved attempt without subject".into()))?;
        Ok(Some(SsoRefresh {
            session_id: session.clone(),
            provider: a.provider.clone(),
            subject,
            refresh_sealed: self.kek.seal(&session_refresh_context(session), token.expose(), &mut *self.rng()),
            validated_at: now,
            checked_at: now,
        }))
    }

    /// One revalidation run: asks the providers about the live SSO sessions not checked for
    /// an interval, at most [`REVALIDATE_BATCH`] of them, while this replica holds the
    /// revalidation lock. The server calls it on a timer; tests call it directly.
    pub async fn revalidate_sessions(&self) -> Result<Revalidated> {
        let mut out = Revalidated::default();
        if self.revalidating.swap(true, Ordering::AcqRel) {
            return Ok(out);
        }
        let _running = Running(&self.revalidating);
        let now = self.now();
        if !self.claim_revalidation(now).await? {
            return Ok(out);
        }
        out.ran = true;
        self.commit(Change::default().with(Mutation::PurgeSsoRefresh { at: now })).await?;
        let due_before = Timestamp(now.0 - self.cfg.revalidate.as_secs() as i64);
        let mut failures: BTreeMap<String, RevalidateFailure> = BTreeMap::new();
        // Providers that did not answer this run: their other sessions are not asked again.
        let mut down = BTreeSet::new();
        for r in self.store.sso_refresh_due(due_before, now, REVALIDATE_BATCH).await? {
            let now = self.now();
            if !self.claim_revalidation(now).await? {
                break;
            }
            let step = if down.contains(&r.provider) { Ok(Step::Skipped) } else { self.revalidate_one(&r, now).await };
            let failure = match step {
                Ok(Step::Refreshed) => {
                    out.refreshed += 1;
                    None
                }
                Ok(Step::Ended) => {
                    out.ended += 1;
                    None
                }
                Ok(Step::Skipped) => failures.get_mut(&r.provider),
                // A provider that did not answer is not asked again this run.
                Ok(Step::Down(e)) => {
                    down.insert(r.provider.clone());
                    Some(failures.entry(r.provider.clone()).or_insert_with(|| RevalidateFailure::new(&r.provider, &e)))
                }
                Err(e @ Error::Store(_)) => return Err(e),
                // A fault of stint's own with one session's row holds up no other.
                Err(e) => Some(failures.entry(r.provider.clone()).or_insert_with(|| RevalidateFailure::new(&r.provider, &e))),
            };
            if let Some(f) = failure {
                f.sessions += 1;
                // Asked again an interval from now, not at every tick of an outage.
                self.commit(Change::default().with(Mutation::UpdateSsoRefresh(SsoRefresh { checked_at: now, ..r }))).await?;
            }
        }
        out.failures = failures.into_values().collect();
        self.audit_revalidate_failures(&out.failures, now).await?;
        if out.ended > 0 {
            self.reap_now().await;
        }
        Ok(out)
    }

    /// Takes or renews the revalidation lock; false while another replica holds it.
    async fn claim_revalidation(&self, now: Timestamp) -> Result<bool> {
        let claim = Mutation::ClaimLock { name: "revalidate".into(), holder: self.replica.clone(), until: Timestamp(now.0 + LOCK_SECS), now };
        match self.store.apply(Change::default().with(claim)).await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == "lock_held" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Refreshes one session's grant at its provider, and acts on the answer.
    async fn revalidate_one(&self, r: &SsoRefresh, now: Timestamp) -> Result<Step> {
        let (p, idp) = match self.provider(Some(&r.provider)) {
            Ok(found) => found,
            Err(e) => return Ok(Step::Down(e)),
        };
        let token = self.kek.open(&session_refresh_context(&r.session_id), &r.refresh_sealed)?;
        let token = SecretString::new(String::from_utf8(token.expose().to_vec()).map_err(|_| Error::Internal("sealed refresh token is not text".into()))?);
        let expect = Expected { issuer: &p.issuer, client_id: &p.client_id, nonce: None, now, skew_secs: p.skew_secs };
        match idp.refresh(&token, &expect).await {
            // OpenID Connect Core §12.2: a refreshed ID token names the same person.
            Ok(Refreshed::Granted { id_token: Some(t), .. }) if t.subject != r.subject => {
                self.end_for_provider(r, p, IDP_SUBJECT_CHANGED, "subject_changed", now).await?;
                Ok(Step::Ended)
            }
            Ok(Refreshed::Granted { refresh_token, .. }) => {
                // A provider that rotates sent a new token (the old one is spent); one that
                // does not keeps the old one valid.
                let refresh_sealed = match refresh_token {
                    Some(t) => self.kek.seal(&session_refresh_context(&r.session_id), t.expose().as_bytes(), &mut *self.rng()),
                    None => r.refresh_sealed.clone(),
                };
                let next = SsoRefresh { refresh_sealed, validated_at: now, checked_at: now, ..r.clone() };
                self.commit(Change::default().with(Mutation::UpdateSsoRefresh(next))).await?;
                Ok(Step::Refreshed)
            }
            Ok(Refreshed::Refused { error }) => {
                self.end_for_provider(r, p, IDP_REFRESH_REFUSED, &error, now).await?;
                Ok(Step::Ended)
            }
            Err(e) => Ok(Step::Down(e)),
        }
    }

    /// Ends the session the provider no longer vouches for, and everything it holds, as
    /// revoking it by hand does, in the provider's name.
    async fn end_for_provider(&self, r: &SsoRefresh, p: &SsoProvider, reason: &str, idp_error: &str, now: Timestamp) -> Result<()> {
        let actor = format!("sso:{}", p.name);
        let owner = self.store.session(&r.session_id).await?.map(|(s, _)| s.user_id.to_string()).unwrap_or_default();
        let d = Draft::new(now, Event::SessionRevoked, Outcome::Success)
            .actor(&actor)
            .subject(&r.session_id)
            .reason(reason)
            .detail("owner", owner)
            .detail("provider", &p.name)
            .detail("idp_subject", truncate(&r.subject))
            .detail("idp_error", truncate(idp_error));
        let change = Change::default().with(Mutation::RevokeSession { session: r.session_id.clone(), at: now }).record(d);
        self.commit(self.revocation(change, &actor, LeaseScope::Session(r.session_id.clone()), reason)).await?;
        Ok(())
    }

    /// One record per provider that could not be asked this run.
    async fn audit_revalidate_failures(&self, failures: &[RevalidateFailure], now: Timestamp) -> Result<()> {
        let mut change = Change::default();
        for f in failures {
            let d = Draft::new(now, Event::SsoRevalidateFailed, Outcome::Failure)
                .actor(format!("sso:{}", f.provider))
                .reason(f.code)
                .detail("sessions", f.sessions)
                .detail("error", truncate(&f.message));
            change = change.record(d);
        }
        if change.audit.is_empty() {
            return Ok(());
        }
        self.commit(change).await.map(drop)
    }
}
