//! AWS: one STS role session per lease.
//!
//! Issuing calls STS `AssumeRole` on the IAM role configured for the lease's stint role,
//! signed with stint's own AWS identity as the AWS SDK's default credential chain finds it
//! (environment, profiles, web identity, container and instance roles; never a key in stint's
//! configuration; see [`stint_aws::client`]):
//!
//! - `RoleSessionName` is the lease id (`l_…`), so the assumed-role ARN, `aws:userid` and
//!   CloudTrail name the lease;
//! - `SourceIdentity` is who the lease is for: the user name, or the pipeline's `ci:…` subject
//!   made fit for STS ([`source_identity`]). It survives role chaining, shows in CloudTrail and
//!   is what revocation denies on (`aws:SourceIdentity`);
//! - session tags `stint-lease`, `stint-role`, `stint-session` (`none` without a session) and,
//!   under an approved request or break-glass grant, `stint-grant`;
//! - `DurationSeconds` is the time left on the lease, at least 900 (STS's minimum) and at
//!   most [`AwsConfig::max_session_secs`] (the role's `MaxSessionDuration`);
//! - a session policy ([`session_policy`]), always.
//!
//! **The session policy.** STS cannot issue a session shorter than 15 minutes, so for a
//! shorter lease AWS's `Expiration` is later than the lease end. Every session therefore
//! carries an inline session policy that allows `*` on `*` only while `aws:CurrentTime` is
//! before the lease end (`DateLessThan`) and explicitly denies everything from then on: the
//! keys stop working at the stint expiry even though AWS would honour them longer. A session
//! policy can only narrow what the role grants (a session gets the intersection), so this
//! widens nothing. It is attached even to leases of 15 minutes or more, where it covers the
//! second or two by which AWS's clock (which starts `DurationSeconds` when it receives the
//! call) runs past the lease end. The credential's `expires_at` is the earlier of the lease
//! end and AWS's `Expiration`; the latter is also given as the `aws_expiration` field.
//!
//! **Ending.** AWS cannot recall a key it issued. What stint does:
//! - on revocation, stint stops issuing and refreshing at once (the broker marks the lease);
//! - with [`AwsConfig::revoke_sessions`], the reaper then merges a "deny sessions of this
//!   source identity issued before the revocation" statement into the role's inline policy
//!   [`revoke::POLICY_NAME`] (see [`stint_aws::revoke`]). That neutralises *every* session
//!   of that person or pipeline on that role issued before the revocation, not only this
//!   lease's; later sessions are untouched, so they can ask again if still allowed. IAM
//!   policy changes can take a few minutes to propagate: that is the real revocation delay.
//!   Statements older than the longest possible session (12 h) are dropped on each write;
//! - without it, or on natural expiry, nothing is written: a key lives until AWS's
//!   expiry, and is refused by its session policy from the lease end on. `DurationSeconds`
//!   is the lease length, so AWS's expiry is the lease end too (give or take a second)
//!   unless the lease is under 15 minutes, where the session policy is what ends it, or
//!   longer than `max_session_secs`, where AWS's expiry comes first.
//!
//! The broker also revokes a lease whose issuance failed; with `revoke_sessions` that too
//! writes a deny statement, since a lost answer may hide a session STS did create. It
//! neutralises that identity's earlier sessions on the role as well.
//!
//! **What AWS must allow.** The role's trust policy lets stint's principal
//! `sts:AssumeRole`, `sts:TagSession` (session tags) and `sts:SetSourceIdentity`. With
//! `revoke_sessions`, stint's principal needs `iam:GetRolePolicy`, `iam:PutRolePolicy` and
//! `iam:DeleteRolePolicy` on the roles, and the roles' other inline policies must leave room
//! for the deny statements (a role's inline policies share 10,240 characters).
//!
//! The read-merge-write of the deny policy is serialised within this process; IAM has no
//! conditional write, so two stint processes revoking on the same role at the same instant
//! could lose one statement (the broker's reaper runs on one replica at a time).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stint_aws::iam::ROLE_INLINE_POLICY_LIMIT;
use stint_aws::revoke::{self, Revocation};
use stint_aws::sts::{MAX_DURATION_SECS, MIN_DURATION_SECS};
use stint_aws::{AssumedRole, Aws, Endpoint, Iam, Identity, Settings, Sts};
use stint_core::backend::{AuthorizedLease, Backend, Credential};
use stint_core::error::{Error, Result};
use stint_core::ids::RoleName;
use stint_core::inventory::{InventorySource, ListedKey, Snapshot};
use stint_core::model::{BackendKind, Lease};
use stint_core::{Clock, Timestamp};
use time::OffsetDateTime;
use tokio::sync::Mutex;

pub use crate::aws_config::{AwsConfig, DEFAULT_MAX_SESSION_SECS};

/// AWS error codes that mean "refused" rather than "failed".
const REFUSALS: [&str; 4] = ["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"];

/// Every parameter of the `AssumeRole` call for one lease, decided without I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRequest {
    pub role_arn: String,
    /// `RoleSessionName`: the lease id.
    pub session_name: String,
    pub source_identity: String,
    pub tags: Vec<(String, String)>,
    pub duration_secs: u32,
    /// The session policy ([`session_policy`]) for the lease end.
    pub policy: String,
}

/// A role's ARN and the name IAM's role APIs take (the last path segment).
#[derive(Clone, Debug)]
struct Role {
    arn: String,
    name: String,
}

/// The inline policy written when the per-identity one is full: it denies every session of
/// the role issued before its time.
pub const ALL_SESSIONS_POLICY: &str = "StintRevokeAllOlderSessions";

pub struct AwsBackend {
    cfg: AwsConfig,
    roles: BTreeMap<RoleName, Role>,
    sts: Sts,
    iam: Iam,
    clock: Arc<dyn Clock>,
    /// Serialises the read-merge-write of deny policies in this process.
    policy_writes: Mutex<()>,
}

impl AwsBackend {
    /// A backend that calls AWS as `identity`: [`Identity::Ambient`] (the AWS SDK's default
    /// credential chain) in the server, fixed keys in tests. Fails on a configuration AWS
    /// would refuse; a missing identity shows at the first call ([`AwsBackend::check`]).
    pub async fn new(cfg: AwsConfig, identity: Identity, clock: Arc<dyn Clock>) -> Result<AwsBackend> {
        let bad = |what: String| Error::invalid("invalid_backend_config", format!("AWS backend {:?}: {what}", cfg.name));
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&cfg.max_session_secs) {
            return Err(bad(format!("max_session_secs {} must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS}", cfg.max_session_secs)));
        }
        let mut roles = BTreeMap::new();
        for (role, arn) in &cfg.roles {
            let parsed = stint_core::aws::RoleArn::parse(arn).map_err(|e| bad(format!("role {role}: {e}")))?;
            roles.insert(role.clone(), Role { arn: arn.clone(), name: parsed.name().to_owned() });
        }
        let endpoint = |url: &Option<String>| url.as_deref().map(|u| Endpoint::parse(u, cfg.allow_http_loopback)).transpose();
        let sts_endpoint = endpoint(&cfg.sts_endpoint).map_err(|e| bad(e.to_string()))?;
        let iam_endpoint = endpoint(&cfg.iam_endpoint).map_err(|e| bad(e.to_string()))?;
        let settings = Settings::new(&cfg.region, sts_endpoint, iam_endpoint).map_err(|e| bad(e.to_string()))?;
        let Aws { sts, iam } = Aws::load(&settings, &identity).await;
        Ok(AwsBackend { cfg, roles, sts, iam, clock, policy_writes: Mutex::new(()) })
    }

    /// Asks STS who stint is (`GetCallerIdentity`) and returns that ARN, at start-up, so
    /// missing or broken credentials are reported then rather than at the first request.
    pub async fn check(&self) -> Result<String> {
        self.sts.get_caller_identity().await.map(|me| me.arn).map_err(|e| self.failed("GetCallerIdentity", &e))
    }

    /// What `AssumeRole` is called with for `lease` at `now`.
    pub fn session_request(&self, lease: &Lease, now: Timestamp) -> Result<SessionRequest> {
        let role = self.role_of(lease)?;
        Ok(SessionRequest {
            role_arn: role.arn.clone(),
            session_name: lease.id.as_str().to_owned(),
            source_identity: source_identity(&lease.subject),
            tags: session_tags(lease),
            duration_secs: session_duration(now, lease.expires_at, self.cfg.max_session_secs),
            policy: session_policy(lease.expires_at),
        })
    }

    fn role_of(&self, lease: &Lease) -> Result<&Role> {
        self.roles.get(&lease.role).ok_or_else(|| Error::Internal(format!("AWS backend {:?} has no IAM role for stint role {}", self.cfg.name, lease.role)))
    }

    /// An error of stint-aws as the broker reports it. stint-aws never puts a secret in an
    /// error, so its text is safe to pass on.
    fn failed(&self, action: &str, e: &stint_aws::Error) -> Error {
        let message = format!("AWS backend {:?}: {action} failed: {e}", self.cfg.name);
        match e {
            stint_aws::Error::Aws { code, .. } if REFUSALS.contains(&code.as_str()) => Error::forbidden("backend_refused", message),
            // Also what stint-aws refuses before sending (a role's deny policy full, a value
            // out of range): `Internal` would hide the message from the reaper's log.
            _ => Error::upstream("backend_unavailable", message),
        }
    }

    fn credential(&self, lease: &Lease, req: &SessionRequest, assumed: AssumedRole) -> Result<Credential> {
        let keys = assumed.keys;
        let token = keys.session_token.ok_or_else(|| Error::Internal("STS returned temporary credentials without a session token".into()))?;
        let aws_end = Timestamp(assumed.expiration.unix_timestamp());
        let cred = Credential::new(aws_end.min(lease.expires_at))
            .field("access_key_id", &keys.access_key_id)
            .field("region", &self.cfg.region)
            .field("role_arn", &req.role_arn)
            .field("assumed_role_arn", &assumed.arn)
            .field("assumed_role_id", &assumed.assumed_role_id)
            .field("session_name", &req.session_name)
            .field("source_identity", &req.source_identity)
            .secret("secret_access_key", keys.secret_access_key)
            .secret("session_token", token)
            .env("AWS_ACCESS_KEY_ID", "access_key_id")
            .env("AWS_SECRET_ACCESS_KEY", "secret_access_key")
            .env("AWS_SESSION_TOKEN", "session_token")
            .env("AWS_REGION", "region")
            .env("AWS_DEFAULT_REGION", "region")
            .field("aws_expiration", aws_end.to_rfc3339());
        Ok(cred)
    }

    /// Merges `revocation` into the role's deny policy, dropping statements no live session
    /// can predate; deletes the policy when none is left.
    async fn merge_revocation(&self, role: &Role, revocation: Revocation, now: OffsetDateTime) -> Result<()> {
        let _one_writer = self.policy_writes.lock().await;
        let existing = self.iam.get_role_policy(&role.name, revoke::POLICY_NAME).await.map_err(|e| self.failed("GetRolePolicy", &e))?;
        let mut all = match &existing {
            Some(doc) => revocations_in(doc).map_err(|why| {
                Error::upstream(
                    "backend_unavailable",
                    format!(
                        "AWS backend {:?}: the inline policy {} of role {} {why}; stint owns that policy: move other statements to another policy",
                        self.cfg.name,
                        revoke::POLICY_NAME,
                        role.name
                    ),
                )
            })?,
            None => Vec::new(),
        };
        all.push(revocation);
        let doc = match revoke::deny_older_sessions(&all, now, ROLE_INLINE_POLICY_LIMIT) {
            Ok(doc) => doc,
            // More revocations than the role's inline policies can name: fail closed. Every
            // session of the role issued before now is denied (what AWS's own "revoke active
            // sessions" does); people simply get new credentials from stint.
            Err(stint_aws::Error::Invalid(_)) => {
                let all_older = revoke::deny_all_older_sessions(now);
                return self.iam.put_role_policy(&role.name, ALL_SESSIONS_POLICY, &all_older).await.map_err(|e| self.failed("PutRolePolicy", &e));
            }
            Err(e) => return Err(self.failed("building the deny policy", &e)),
        };
        match doc {
            Some(doc) if existing.as_deref() != Some(doc.as_str()) => {
                self.iam.put_role_policy(&role.name, revoke::POLICY_NAME, &doc).await.map_err(|e| self.failed("PutRolePolicy", &e))
            }
            Some(_) => Ok(()),
            None if existing.is_some() => {
                self.iam.delete_role_policy(&role.name, revoke::POLICY_NAME).await.map(drop).map_err(|e| self.failed("DeleteRolePolicy", &e))
            }
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Backend for AwsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Aws
    }

    fn roles(&self) -> Vec<RoleName> {
        self.cfg.roles.keys().cloned().collect()
    }

    fn role_for_target(&self, target: &str) -> Option<RoleName> {
        self.roles.iter().find(|(_, r)| r.arn == target).map(|(role, _)| role.clone())
    }

    fn max_ttl(&self) -> Option<stint_core::time::Ttl> {
        stint_core::time::Ttl::from_secs(u64::from(self.cfg.max_session_secs)).ok()
    }

    fn external_id(&self, lease: &Lease) -> String {
        lease.id.as_str().to_owned()
    }

    #[tracing::instrument(skip_all, fields(backend = %self.cfg.name, lease = %lease.id, role = %lease.role))]
    async fn issue(&self, lease: &AuthorizedLease) -> Result<Credential> {
        let now = self.clock.now();
        if now >= lease.expires_at {
            return Err(Error::Internal(format!("lease {} ended before its AWS session was asked for", lease.id)));
        }
        let req = self.session_request(lease, now)?;
        let assumed = self
            .sts
            .assume_role(&req.role_arn, &req.session_name, &req.source_identity, &req.tags, req.duration_secs, Some(&req.policy))
            .await
            .map_err(|e| self.failed("AssumeRole", &e))?;
        self.credential(lease, &req, assumed)
    }

    #[tracing::instrument(skip_all, fields(backend = %self.cfg.name, lease = %lease.id, role = %lease.role, revoked = revoked))]
    async fn end(&self, lease: &Lease, revoked: bool) -> Result<()> {
        // Natural expiry: the key's own expiry and its session policy end it. A failed
        // issuance handed no key to anyone: nothing to neutralise.
        if !(revoked && self.cfg.revoke_sessions) || lease.revoke_reason.as_deref() == Some(stint_core::model::ISSUANCE_FAILED) {
            return Ok(());
        }
        let role = self.role_of(lease)?;
        let now = self.clock.now();
        // One second on: the clock reads whole seconds, and a session issued earlier in the
        // revocation's second must be covered too.
        let cut = Timestamp(lease.revoked_at.unwrap_or(now).0 + 1);
        let revocation = Revocation { source_identity: source_identity(&lease.subject), revoked_at: datetime(cut)? };
        self.merge_revocation(role, revocation, datetime(now)?).await
    }
}

/// `subject` as an STS `SourceIdentity`: 2–64 characters of `[A-Za-z0-9_+=,.@-]`. Other
/// characters become `-` (`ci:github:repo:org/x:ref:refs/heads/main` →
/// `ci-github-repo-org-x-ref-refs-heads-main`); a longer result keeps its first 55
/// characters and adds `-` and 8 hex digits of the SHA-256 of the whole subject, so two
/// long subjects sharing a prefix stay apart; a shorter one is padded with `-`.
pub fn source_identity(subject: &str) -> String {
    let clean: String = subject.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).collect();
    let mut out = if clean.len() <= 64 {
        clean
    } else {
        let hash = data_encoding::HEXLOWER.encode(&Sha256::digest(subject.as_bytes())[..4]);
        // `clean` is ASCII, so byte 55 is a character boundary.
        format!("{}-{hash}", &clean[..55])
    };
    while out.len() < 2 {
        out.push('-');
    }
    out
}

/// `DurationSeconds` for a lease ending at `end`: the time left, at least STS's 900 s, at most `max`.
pub fn session_duration(now: Timestamp, end: Timestamp, max: u32) -> u32 {
    let left = now.until(end).clamp(u64::from(MIN_DURATION_SECS), u64::from(max.max(MIN_DURATION_SECS)));
    u32::try_from(left).unwrap_or(max)
}

/// The session policy that ends a session at `end`: allow `*` on `*` while `aws:CurrentTime`
/// is before it, deny everything from it on (the explicit deny also binds resource-based
/// policies that name the session itself).
pub fn session_policy(end: Timestamp) -> String {
    let at = end.to_rfc3339();
    json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "UntilStintLeaseEnds", "Effect": "Allow", "Action": "*", "Resource": "*",
              "Condition": { "DateLessThan": { "aws:CurrentTime": at } } },
            { "Sid": "StintLeaseEnded", "Effect": "Deny", "Action": "*", "Resource": "*",
              "Condition": { "DateGreaterThanEquals": { "aws:CurrentTime": at } } }
        ]
    })
    .to_string()
}

fn session_tags(lease: &Lease) -> Vec<(String, String)> {
    let mut tags = vec![
        ("stint-lease".to_owned(), lease.id.as_str().to_owned()),
        ("stint-role".to_owned(), lease.role.as_str().to_owned()),
        ("stint-session".to_owned(), lease.session_id.as_ref().map_or("none", |s| s.as_str()).to_owned()),
    ];
    if let Some(grant) = &lease.grant_id {
        tags.push(("stint-grant".to_owned(), grant.clone()));
    }
    tags
}

/// The revocations of a deny policy [`revoke::deny_older_sessions`] wrote: each statement's
/// `aws:SourceIdentity` and `aws:TokenIssueTime`. Anything else is refused, so a statement
/// stint did not write is never silently dropped on the next write.
fn revocations_in(doc: &str) -> std::result::Result<Vec<Revocation>, String> {
    let v: Value = serde_json::from_str(doc).map_err(|_| "is not JSON".to_owned())?;
    let statements = match &v["Statement"] {
        Value::Array(all) => all.as_slice(),
        one @ Value::Object(_) => std::slice::from_ref(one),
        _ => return Err("has no statements".into()),
    };
    statements
        .iter()
        .map(|s| {
            let c = &s["Condition"];
            let id = c["StringEquals"]["aws:SourceIdentity"].as_str();
            let at =
                c["DateLessThan"]["aws:TokenIssueTime"].as_str().and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            match (s["Effect"].as_str(), id, at) {
                (Some("Deny"), Some(id), Some(at)) => Ok(Revocation { source_identity: id.to_owned(), revoked_at: at }),
                _ => Err("has a statement stint did not write".to_owned()),
            }
        })
        .collect()
}

/// How long a fetch waits for IAM to generate its credential report.
const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `stint inventory fetch`: the account's credential report, through this backend's identity
/// (it needs `iam:GenerateCredentialReport`, `iam:GetCredentialReport`, `iam:ListUsers`,
/// `iam:ListAccessKeys` and `iam:GetAccessKeyLastUsed`).
#[async_trait::async_trait]
impl InventorySource for AwsBackend {
    async fn fetch(&self) -> Result<Snapshot> {
        let report = self.iam.credential_report(REPORT_WAIT).await.map_err(|e| self.failed("GetCredentialReport", &e))?;
        let mut snapshot = Snapshot::from_credential_report(&report.csv, Timestamp(report.generated_at))
            .map_err(|e| Error::upstream("backend_unavailable", format!("AWS backend {:?}: IAM's credential report: {e}", self.cfg.name)))?;
        let keys = self.iam.access_keys().await.map_err(|e| self.failed("ListAccessKeys", &e))?;
        snapshot.name_keys(keys.iter().map(|k| ListedKey { user: &k.user, id: &k.id, created: k.created.map(Timestamp), active: k.active }));
        Ok(snapshot)
    }
}

fn datetime(t: Timestamp) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.0).map_err(|_| Error::Internal(format!("timestamp {} out of range", t.0)))
}
