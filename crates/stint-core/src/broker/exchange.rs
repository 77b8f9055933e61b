//! CI token exchange (RFC 8693): a pipeline trades the OIDC token its platform signed for the
//! run (GitHub Actions, GitLab, a Kubernetes service account…) for a role credential that
//! lives minutes. The pipeline holds no secret; the role's trust policy decides.
//!
//! Order of checks, cheapest first: size and claimed issuer (untrusted issuers cost nothing),
//! signature and times against the issuer's published keys, the role's trust policy, the
//! lifetime, then — in the same transaction as the audit record — the replay check.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::audit::{Draft, Event, Outcome};
use crate::error::{Error, Result};
use crate::fold::FoldKey;
use crate::ids::{truncate, RoleName};
use crate::jwt::Claims;
use crate::oidc::{self, ExpectedJwt, IdToken};
use crate::policy::{GrantReason, Permit, Pipeline};
use crate::secret::SecretString;
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};
use crate::trust::TrustPolicy;

use super::issue::What;
use super::{Broker, Issued};

/// CI credentials live between these (seconds); 15 minutes unless the role says less.
pub const CI_TTL_MIN_SECS: u64 = 300;
pub const CI_TTL_MAX_SECS: u64 = 900;

/// A CI platform's token issuer as the broker sees it; `stint-oidc` implements it over HTTP
/// (discovery, cached JWKS, refetch on an unknown `kid`).
#[async_trait::async_trait]
pub trait CiIssuer: Send + Sync {
    /// Verifies the token's signature, `iss`, `exp`, `iat`, `nbf` and `sub` (not `aud`: the
    /// trust policy binds it).
    async fn verify(&self, token: &str, expect: &ExpectedJwt<'_>) -> Result<IdToken>;
}

/// A trusted issuer, as configured.
#[derive(Clone, Debug)]
pub struct CiIssuerConfig {
    /// Short name, used in credential subjects (`ci:github:…`) and audit records.
    pub name: String,
    /// The issuer URL, exactly as its tokens' `iss` spells it.
    pub url: String,
}

/// Who may exchange a CI token for a role, and for how long.
#[derive(Clone, Debug)]
pub struct RoleTrust {
    pub policy: Arc<TrustPolicy>,
    /// The longest (and default) lifetime of the role's CI credentials: 5–15 minutes.
    pub ttl: Ttl,
}

#[derive(Clone, Debug, Default)]
pub struct CiConfig {
    pub issuers: Vec<CiIssuerConfig>,
    pub trust: BTreeMap<RoleName, RoleTrust>,
    /// Tolerated clock difference with the issuers, seconds.
    pub skew_secs: i64,
}

pub struct ExchangeRequest {
    pub token: SecretString,
    pub role: String,
    /// Shorter than the role's CI lifetime if wanted; longer is refused.
    pub ttl: Option<Ttl>,
    pub addr: String,
}

/// A role credential for a pipeline. `token` is the credential; the rest is safe to print.
pub struct Exchanged {
    pub token: SecretString,
    pub claims: Claims,
}

/// A backend credential for a pipeline, with what STS's answer repeats of the token.
#[derive(Debug)]
pub struct CiLeased {
    pub leased: super::Leased,
    /// The token's `sub`.
    pub token_subject: String,
    /// The token's `aud` (the first, when several).
    pub audience: String,
    /// The token's issuer URL.
    pub provider: String,
}

/// The claims an audit record of an exchange keeps: what policies usually check.
const AUDITED_CLAIMS: [&str; 8] = ["sub", "aud", "repository", "ref", "environment", "event_name", "job_workflow_ref", "run_id"];

/// The claims of `token` an audit record keeps, bounded.
pub(super) fn audited_claims(token: &IdToken) -> Vec<(&'static str, String)> {
    let value = |v: &serde_json::Value| bounded(&v.as_str().map_or_else(|| v.to_string(), str::to_owned), 200);
    AUDITED_CLAIMS.iter().filter_map(|&name| token.claims.get(name).map(|v| (name, value(v)))).collect()
}

/// Peer-supplied text for an audit detail: bounded, without control characters.
pub(super) fn bounded(s: &str, max: usize) -> String {
    s.chars().take(max).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

/// ID-token codes from `oidc` renamed for CI tokens.
pub(super) fn ci_error(e: Error) -> Error {
    let message = e.to_string();
    match e.code() {
        "id_token_expired" => Error::unauthenticated("token_expired", "the CI token has expired; request a fresh one in the job (they live minutes)"),
        "id_token_wrong_issuer" => Error::unauthenticated("untrusted_issuer", message),
        "id_token_unknown_key" => Error::unauthenticated("invalid_token", "the CI token was signed by a key its issuer does not publish"),
        "invalid_id_token" => Error::unauthenticated("invalid_token", message),
        // The issuer's discovery or keys are wrong: stint's configuration or the issuer, not the caller.
        "issuer_mismatch" | "insecure_issuer" | "invalid_jwks" | "idp_no_keys" | "idp_answer_too_large" => {
            Error::upstream("ci_issuer_misconfigured", format!("the CI issuer cannot be used: {message}; an administrator checks [[ci.issuer]]"))
        }
        _ => e,
    }
}

impl Broker {
    /// Deletes what no longer matters: used CI tokens past their expiry, SSO attempts past a
    /// day; and writes the summaries of folded refusals whose window closed. Runs
    /// periodically; any replica may run it.
    pub async fn housekeeping(&self) -> Result<()> {
        self.flush_refusals(false).await?;
        self.expire_accounts().await?;
        let now = self.now();
        let change = Change::default()
            .with(Mutation::PurgeTokenUses { before: now })
            .with(Mutation::PurgeSsoAttempts { before: Timestamp(now.0 - super::sso::KEEP_FINISHED_SECS) });
        self.commit(change).await.map(|_| ())
    }

    /// Wires the configured CI issuers (`cfg.ci.issuers`) to their implementations, by URL.
    pub fn with_ci_issuers(mut self, issuers: BTreeMap<String, Arc<dyn CiIssuer>>) -> Broker {
        self.ci_issuers = issuers;
        self
    }

    /// Audits a refused exchange: the issuer, the claims checked and why; never the token.
    async fn exchange_denied(&self, req: &ExchangeRequest, issuer: Option<&CiIssuerConfig>, token: Option<&IdToken>, e: &Error, now: Timestamp) -> Result<()> {
        self.observer.auth_failed(e.code());
        let actor = issuer.map_or_else(|| req.addr.clone(), |i| format!("ci:{}", i.name));
        let mut d = Draft::new(now, Event::ExchangeDenied, Outcome::Failure)
            .actor(actor)
            .subject(truncate(&req.role))
            .reason(e.code())
            .detail("addr", &req.addr)
            .detail("why", bounded(&e.to_string(), 1000));
        if let Some(i) = issuer {
            d = d.detail("issuer", &i.url);
        }
        if let Some(t) = token {
            for (name, value) in audited_claims(t) {
                d = d.detail(&format!("claim.{name}"), value);
            }
        }
        let scope = format!("{}/{}", issuer.map_or("", |i| i.name.as_str()), truncate(&req.role));
        self.audit_refusal(FoldKey::of(&d, &scope, &req.addr), d).await
    }

    /// Finds the token's issuer among the configured ones and verifies the token with its
    /// keys. On failure, the issuer when it was found, and the refusal.
    pub(super) async fn ci_verify(
        &self,
        token: &SecretString,
        now: Timestamp,
    ) -> std::result::Result<(&CiIssuerConfig, IdToken), (Option<&CiIssuerConfig>, Error)> {
        let Some(claimed) = oidc::peek_issuer(token.expose()) else {
            return Err((None, Error::unauthenticated("invalid_token", "the token is not a JWT with an iss claim (at most 16 KiB)")));
        };
        let found = self.cfg.ci.issuers.iter().find(|i| i.url == claimed).and_then(|c| self.ci_issuers.get(&c.url).map(|v| (c, v)));
        let Some((issuer_cfg, issuer)) = found else {
            let why = format!("tokens from {:?} are not trusted here; an administrator adds the issuer under [[ci.issuer]]", truncate(&claimed));
            return Err((None, Error::unauthenticated("untrusted_issuer", why)));
        };
        let expect = ExpectedJwt { issuer: &issuer_cfg.url, now, skew_secs: self.cfg.ci.skew_secs };
        match issuer.verify(token.expose(), &expect).await.map_err(ci_error) {
            Ok(t) => Ok((issuer_cfg, t)),
            Err(e) => Err((Some(issuer_cfg), e)),
        }
    }

    /// The benchmark floor of the exchange: finding the issuer and verifying the token (RS256
    /// for GitHub), without policy, replay check, audit or signing.
    pub async fn verify_ci_token(&self, token: &SecretString) -> Result<IdToken> {
        self.ci_verify(token, self.now()).await.map(|(_, t)| t).map_err(|(_, e)| e)
    }

    /// Exchanges a CI token for a role credential, or refuses with a stable code and the reason.
    pub async fn exchange(&self, req: ExchangeRequest) -> Result<Exchanged> {
        let now = self.now();
        let (issuer_cfg, token) = match self.ci_verify(&req.token, now).await {
            Ok(found) => found,
            Err((issuer, e)) => {
                self.exchange_denied(&req, issuer, None, &e, now).await?;
                return Err(e);
            }
        };
        let permit = match self.admit_ci(&req, issuer_cfg, &token, now) {
            Ok(permit) => permit,
            Err(e) => {
                self.exchange_denied(&req, Some(issuer_cfg), Some(&token), &e, now).await?;
                return Err(e);
            }
        };
        let issued = self.issue(permit, What::Token, now).await;
        let Issued { token: signed, claims } = self.unless_replayed(&req, issuer_cfg, &token, issued, now).await?.token()?;
        Ok(Exchanged { token: signed, claims })
    }

    /// A token accepted before fails the replay re-check of its issuance: that refusal is
    /// the caller's (audited as one), any other error is returned as it is.
    async fn unless_replayed<T>(&self, req: &ExchangeRequest, issuer: &CiIssuerConfig, token: &IdToken, issued: Result<T>, now: Timestamp) -> Result<T> {
        match issued {
            Err(e) if e.code() == "token_replayed" => {
                let e = Error::unauthenticated("token_replayed", "this CI token was already exchanged; each token is accepted once: request a new one");
                self.exchange_denied(req, Some(issuer), Some(token), &e, now).await?;
                Err(e)
            }
            other => other,
        }
    }

    /// The decision for a pipeline: the role's trust policy, the Cedar policies and the
    /// lifetime rules. The permit carries what its issuance records and re-checks.
    fn admit_ci(&self, req: &ExchangeRequest, issuer: &CiIssuerConfig, token: &IdToken, now: Timestamp) -> Result<Permit> {
        let role = RoleName::parse(&req.role)?;
        if self.cfg.roles.get(&role).is_none() {
            return Err(Error::not_found("unknown_role", format!("no role named {role}")));
        }
        let trust = self
            .cfg
            .ci
            .trust
            .get(&role)
            .ok_or_else(|| Error::forbidden("no_trust_policy", format!("role {role} accepts no CI tokens: it has no trust_policy")))?;
        let eval = trust.policy.evaluate(&issuer.url, &token.claims);
        let Some(statement) =
            eval.allowed().then(|| eval.statements.iter().find(|s| s.matched && s.effect == crate::trust::Effect::Allow).map(|s| s.label.clone())).flatten()
        else {
            if eval.wrong_audience() {
                return Err(Error::forbidden("token_wrong_audience", format!("the token's audience is not one role {role} accepts: {}", eval.refusal())));
            }
            return Err(Error::forbidden("no_matching_trust_policy", format!("the trust policy of role {role} does not admit this token: {}", eval.refusal())));
        };
        // The trust policy admitted the token; the Cedar policies decide too (a generated one
        // permits each trust-policy role to workloads, and teams may forbid more).
        let mut ctx = crate::authz::AuthzContext::human("", now);
        ctx.source = crate::authz::Source::Ci;
        let principal = crate::authz::Principal::Workload { issuer: &issuer.name, subject: &token.subject };
        let d = self.cfg.roles.engine().decide(&principal, &role, &ctx)?;
        if !d.allowed {
            let why = if d.policies.is_empty() { "no policy permits it".to_owned() } else { format!("forbidden by policy {}", d.policies.join(", ")) };
            return Err(Error::forbidden("role_not_granted", format!("the trust policy of role {role} admits this token, but {why}")));
        }
        let ttl = req.ttl.unwrap_or(trust.ttl);
        if ttl > trust.ttl {
            return Err(Error::invalid("ttl_too_long", format!("role {role} issues CI credentials for at most {}; asked for {ttl}", trust.ttl)));
        }
        if ttl.as_secs() < CI_TTL_MIN_SECS {
            return Err(Error::invalid("ttl_too_short", format!("CI credentials live at least 5m; asked for {ttl}")));
        }
        let reasons = d.policies.into_iter().map(GrantReason::Policy).collect();
        Ok(Permit::for_pipeline(self.pipeline(req, issuer, token, &statement), role, ttl, now, reasons))
    }

    /// The pipeline an admitted token stands for, with what its audit record keeps.
    fn pipeline(&self, req: &ExchangeRequest, issuer: &CiIssuerConfig, token: &IdToken, statement: &str) -> Pipeline {
        let (replay_key, replay_until) = Self::token_use(&req.token, issuer, token, self.cfg.ci.skew_secs);
        let display_name = token.claims.get("repository").and_then(|v| v.as_str()).map_or_else(|| token.subject.clone(), str::to_owned);
        Pipeline {
            issuer: issuer.name.clone(),
            issuer_url: issuer.url.clone(),
            subject: token.subject.clone(),
            display_name,
            statement: bounded(statement, 200),
            claims: audited_claims(token),
            addr: req.addr.clone(),
            replay_key,
            replay_until,
        }
    }

    /// The replay guard: accepted once, by `jti` when the token has one, else by its signed
    /// content (header and claims, not the signature: an ECDSA signature can be rewritten and
    /// still verify). Remembered until the token expires.
    pub(super) fn token_use(raw: &SecretString, issuer: &CiIssuerConfig, token: &IdToken, skew_secs: i64) -> (String, Timestamp) {
        let jti = token.claims.get("jti").and_then(|v| v.as_str());
        let signed_part = raw.expose().rsplit_once('.').map_or(raw.expose(), |(signed, _)| signed);
        let seen = match jti {
            Some(j) => Sha256::new().chain_update(issuer.url.as_bytes()).chain_update(b"\n").chain_update(j.as_bytes()).finalize(),
            None => Sha256::new().chain_update(issuer.url.as_bytes()).chain_update(b"\n\n").chain_update(signed_part.as_bytes()).finalize(),
        };
        (data_encoding::HEXLOWER.encode(&seen), Timestamp(token.expires_at.0.saturating_add(skew_secs)))
    }

    /// Exchanges a CI token for a credential on a backend (AWS through the STS-compatible
    /// endpoint): the role is the one `target` (a role ARN) maps to, and the role's trust
    /// policy decides as for `exchange`. The lease is recorded with the token's use.
    pub async fn exchange_for_backend(&self, req: ExchangeRequest, target: &str) -> Result<CiLeased> {
        let now = self.now();
        // The token first: who has none learns nothing of which roles exist.
        let (issuer, token) = match self.ci_verify(&req.token, now).await {
            Ok(found) => found,
            Err((issuer, e)) => {
                self.exchange_denied(&req, issuer, None, &e, now).await?;
                return Err(e);
            }
        };
        let found = self.backends.iter().find_map(|(n, b)| b.role_for_target(target).map(|r| (n, b, r)));
        let Some((name, backend, role)) = found else {
            let e =
                Error::forbidden("unknown_role_arn", format!("no role here maps to {:?}; an administrator lists it under a backend's roles", truncate(target)));
            self.exchange_denied(&req, Some(issuer), Some(&token), &e, now).await?;
            return Err(e);
        };
        let req = ExchangeRequest { role: role.to_string(), ..req };
        let permit = match self.admit_ci(&req, issuer, &token, now) {
            Ok(permit) => permit,
            Err(e) => {
                self.exchange_denied(&req, Some(issuer), Some(&token), &e, now).await?;
                return Err(e);
            }
        };
        let issued = self.issue(permit, What::Backend(name, backend), now).await;
        let leased = self.unless_replayed(&req, issuer, &token, issued, now).await?.lease()?;
        // STS answers one audience: the first when the token has several.
        let audience = match token.claims.get("aud") {
            Some(serde_json::Value::String(a)) => a.clone(),
            Some(serde_json::Value::Array(all)) => all.first().and_then(|a| a.as_str()).unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        Ok(CiLeased { leased, token_subject: token.subject.clone(), audience, provider: issuer.url.clone() })
    }
}
