//! The records stint keeps: users, sessions, one-time codes.

use crate::audit::{Draft, Event, Outcome};
use crate::ids::{GroupName, SessionId, UserId, Username};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub name: Username,
    pub groups: Vec<GroupName>,
    pub disabled: bool,
    /// argon2id PHC string; `None` until the user enrolls.
    pub password_hash: Option<String>,
    /// TOTP secret sealed with the master key; `None` until the user enrolls.
    pub totp_sealed: Option<String>,
    /// The last TOTP time step accepted, so no code is accepted twice.
    pub totp_last_step: i64,
    pub created_at: Timestamp,
    /// When the account ends by itself (contractors, vendors); `None` for employees.
    pub expires_at: Option<Timestamp>,
    /// Who vouches for an account that expires: alerted before it does, named in the audit.
    pub sponsor: Option<UserId>,
}

impl User {
    /// Whether the account's end has come (it is disabled at once when the server notices).
    pub fn expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    pub fn in_group(&self, g: &GroupName) -> bool {
        self.groups.iter().any(|x| x == g)
    }
    pub fn enrolled(&self) -> bool {
        self.password_hash.is_some() && self.totp_sealed.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    /// The public lookup half of the session bearer.
    pub lookup: String,
    /// SHA-256 of the secret half of the session bearer.
    pub secret_hash: Vec<u8>,
    pub user_id: UserId,
    pub created_at: Timestamp,
    /// Absolute: never extended by activity.
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// How the login showed a second factor (`password+totp`, `amr:otp`, `stint_totp`…);
    /// policies see it as `context.mfa`.
    pub mfa: String,
}

impl Session {
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What a one-time code (enrollment or bootstrap) is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodePurpose {
    /// Sets the password and TOTP of the user it names.
    Enrollment,
    /// Creates the first administrator.
    Bootstrap,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Enrollment => "enrollment",
            CodePurpose::Bootstrap => "bootstrap",
        }
    }
    pub fn parse(s: &str) -> Option<CodePurpose> {
        match s {
            "enrollment" => Some(CodePurpose::Enrollment),
            "bootstrap" => Some(CodePurpose::Bootstrap),
            _ => None,
        }
    }
}

/// A single-use code, stored as lookup + hash like every bearer secret.
#[derive(Clone, Debug)]
pub struct OneTimeCode {
    pub lookup: String,
    pub secret_hash: Vec<u8>,
    pub purpose: CodePurpose,
    /// The user an enrollment code enrolls; `None` for bootstrap.
    pub user_id: Option<UserId>,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// A person's identity at an OpenID Provider: (issuer, `sub`), never the email alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub user_id: UserId,
    /// As the provider last asserted it; shown to administrators, never used to match.
    pub email: Option<String>,
    pub created_at: Timestamp,
    pub last_login_at: Timestamp,
}

/// How an SSO login reaches the command line that started it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoMode {
    /// Authorization Code flow; the browser returns to the CLI's loopback listener.
    Browser,
    /// Device authorization grant (RFC 8628): the CLI polls while the person logs in elsewhere.
    Device,
}

/// Where an SSO login stands. Each step moves it forward once, guarded by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoStatus {
    /// Waiting for the person to finish at the provider.
    Pending,
    /// The provider sent the browser back; one callback holds the attempt while it redeems
    /// the provider's single-use code, so no other talks to the provider.
    Redeeming,
    /// The provider said who it is but asserted no MFA; waiting for stint's TOTP.
    StepUp,
    /// Authenticated; the CLI may redeem it for a session once.
    Approved,
    /// Refused (the reason says why); final.
    Denied,
    /// Redeemed for a session; final.
    Consumed,
}

impl SsoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SsoStatus::Pending => "pending",
            SsoStatus::Redeeming => "redeeming",
            SsoStatus::StepUp => "step_up",
            SsoStatus::Approved => "approved",
            SsoStatus::Denied => "denied",
            SsoStatus::Consumed => "consumed",
        }
    }
}

/// One SSO login in progress. Secrets are kept as lookup + SHA-256 like every bearer; the
/// PKCE verifier stint sends to the provider is sealed with the master key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SsoAttempt {
    pub id: String,
    /// The configured provider's name.
    pub provider: String,
    pub mode: SsoMode,
    pub status: SsoStatus,
    /// Lookup half of the `state` sent through the provider.
    pub state_lookup: String,
    /// SHA-256 of the secret half of the `state`, hex.
    pub state_hash: String,
    pub nonce: String,
    /// The PKCE verifier for the provider, sealed.
    pub verifier_sealed: String,
    /// Browser mode: the CLI's own PKCE challenge, so only the CLI that began can redeem.
    pub client_challenge: Option<String>,
    /// Browser mode: the CLI's loopback URL.
    pub redirect_uri: Option<String>,
    /// Device mode: the device code from the start; browser mode: the login code from approval.
    pub code_lookup: Option<String>,
    pub code_hash: Option<String>,
    /// Device mode: SHA-256 of the normalized user code, hex.
    pub user_code_hash: Option<String>,
    pub user_id: Option<UserId>,
    /// The provider's `sub`, once known (for the audit record).
    pub subject: Option<String>,
    /// How MFA was shown (`amr:otp`, `acr:…`, `stint_totp`).
    pub mfa: Option<String>,
    /// Why it was denied: a stable code.
    pub reason: Option<String>,
    /// The session's end: the SSO session length, or the provider's session end if sooner.
    pub session_expires_at: Option<Timestamp>,
    /// The address the login began from.
    pub addr: String,
    pub created_at: Timestamp,
    /// The attempt's own deadline (device codes expire; so do abandoned browser logins).
    pub expires_at: Timestamp,
    /// Device mode: the least seconds between polls (RFC 8628 §3.5 `slow_down` adds 5).
    pub interval_secs: i64,
    pub last_poll_at: Option<Timestamp>,
    /// The provider's refresh token, sealed for this attempt, from the code's redemption
    /// until the attempt becomes a session (which takes it over as an [`SsoRefresh`]) or is
    /// denied (which drops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_sealed: Option<String>,
}

impl SsoAttempt {
    /// This attempt denied for `reason` if it belongs to `user` and could still become a
    /// session (waiting for the step-up, or approved and not yet redeemed).
    pub fn denied_for(&self, user: &UserId, reason: &str) -> Option<SsoAttempt> {
        let open = matches!(self.status, SsoStatus::StepUp | SsoStatus::Approved);
        (open && self.user_id.as_ref() == Some(user)).then(|| SsoAttempt {
            status: SsoStatus::Denied,
            reason: Some(reason.to_owned()),
            refresh_sealed: None,
            ..self.clone()
        })
    }
}

/// The refresh token an SSO login got from its provider, bound to the stint session the
/// login became: stint uses it to ask the provider, now and then, whether it still vouches
/// for the person ([`crate::broker::Broker::revalidate_sessions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoRefresh {
    pub session_id: SessionId,
    /// The configured provider's name.
    pub provider: String,
    /// The provider's `sub` for the person: a refreshed ID token must name the same one.
    pub subject: String,
    /// The refresh token, sealed with the master key for this session.
    pub refresh_sealed: String,
    /// The last time the provider accepted the refresh (at first, the login).
    pub validated_at: Timestamp,
    /// The last time stint asked, answered or not: a session is due an interval after this.
    pub checked_at: Timestamp,
}

/// Where a request for a role stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Waiting for approvals until `pending_until`.
    Pending,
    /// Granted for `[granted_from, granted_until)`.
    Approved,
    Denied,
    /// Revoked after approval: every credential issued under it is refused from then on.
    Revoked,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Revoked => "revoked",
        }
    }
}

/// A person's request for a role (admin, say) that approvers decide on; once approved, a
/// time-boxed grant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoleRequest {
    pub id: String,
    pub requester: UserId,
    pub requester_name: Username,
    pub role: crate::ids::RoleName,
    pub reason: String,
    /// How long the grant lasts once approved, seconds.
    pub duration_secs: i64,
    pub status: RequestStatus,
    pub created_at: Timestamp,
    /// A pending request expires at this time.
    pub pending_until: Timestamp,
    /// The approvers so far, by user name.
    pub approvals: Vec<Username>,
    pub granted_from: Option<Timestamp>,
    pub granted_until: Option<Timestamp>,
    /// Who denied or revoked it, and why.
    /// Who denied or revoked it: a person's user name, or `scim:NAME` for the identity
    /// provider that deactivated the requester.
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    /// A break-glass grant: approved by nobody, alerted to everyone.
    #[serde(default)]
    pub break_glass: bool,
}

impl RoleRequest {
    /// Whether the request is an approved grant covering `now`.
    pub fn grants_at(&self, now: Timestamp) -> bool {
        self.status == RequestStatus::Approved && self.granted_from.is_some_and(|f| f <= now) && self.granted_until.is_some_and(|u| now < u)
    }
    /// This request once its requester is disabled, with the record of the change: an approved
    /// grant that has not ended is revoked, a pending request that has not expired is denied.
    /// `None` when nothing is left to end. Re-enabling the person restores neither.
    pub fn voided(&self, by: &str, actor: &str, reason: &str, at: Timestamp) -> Option<(RoleRequest, Draft)> {
        let (status, event) = match self.status {
            RequestStatus::Approved if self.granted_until.is_some_and(|u| at < u) => (RequestStatus::Revoked, Event::GrantRevoked),
            RequestStatus::Pending if at < self.pending_until => (RequestStatus::Denied, Event::RequestDenied),
            _ => return None,
        };
        let next = RoleRequest { status, decided_by: Some(by.to_owned()), decision_reason: Some(reason.to_owned()), ..self.clone() };
        let mut d =
            Draft::new(at, event, Outcome::Success).actor(actor).subject(&self.id).reason(reason).detail("role", &self.role).detail("holder", &self.requester);
        if self.break_glass {
            d = d.detail("break_glass", "true");
        }
        Some((next, d))
    }

    /// What a reader sees: a pending request past its deadline shows as expired.
    pub fn shown_status(&self, now: Timestamp) -> &'static str {
        match self.status {
            RequestStatus::Pending if now >= self.pending_until => "expired",
            RequestStatus::Approved if self.granted_until.is_some_and(|u| now >= u) => "ended",
            s => s.as_str(),
        }
    }
}

/// The kind of system a backend issues credentials for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Temporary AWS keys from STS `AssumeRole`.
    Aws,
    /// A PostgreSQL login role with a random password.
    Postgres,
    /// An OpenSSH user certificate signed by stint's SSH CA.
    Ssh,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Aws => "aws",
            BackendKind::Postgres => "postgres",
            BackendKind::Ssh => "ssh",
        }
    }
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s {
            "aws" => Some(BackendKind::Aws),
            "postgres" => Some(BackendKind::Postgres),
            "ssh" => Some(BackendKind::Ssh),
            _ => None,
        }
    }
}

/// One credential a backend issued, from issuance until the backend let go of it.
///
/// Written before the backend is asked (so a crash between the two leaves a lease the
/// reaper ends, never a credential nobody knows about). Revoked is stint's decision, taken at
/// once; ended is the backend's cleanup (role dropped, deny policy attached), done by the
/// reaper and retried until it succeeds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub id: crate::ids::LeaseId,
    /// The backend's name in the configuration.
    pub backend: String,
    pub kind: BackendKind,
    /// The person it was issued to; `None` for a CI pipeline.
    pub user_id: Option<UserId>,
    /// Who it names: the user name, or the pipeline's `ci:…` subject.
    pub subject: String,
    pub role: crate::ids::RoleName,
    pub session_id: Option<SessionId>,
    /// The approved request or break-glass grant it was issued under.
    pub grant_id: Option<String>,
    /// What the backend knows it by: the database role, the certificate serial, the STS
    /// session name. Never a secret.
    pub external_id: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoke_reason: Option<String>,
    pub ended_at: Option<Timestamp>,
    /// The reaper failed to end it and tries again from then on.
    pub retry_at: Option<Timestamp>,
}

impl Lease {
    /// Whether the credential is still honoured by stint at `now`.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.ended_at.is_none() && now < self.expires_at
    }
    /// What a reader sees.
    pub fn status(&self, now: Timestamp) -> &'static str {
        match (self.revoked_at, self.ended_at) {
            (Some(_), None) => "revoking",
            (Some(_), Some(_)) => "revoked",
            (None, Some(_)) => "ended",
            (None, None) if now >= self.expires_at => "expiring",
            (None, None) => "active",
        }
    }

    /// The `lease.revoked` record of this lease, revoked by `actor` for `reason`. The store
    /// writes it for each lease a revocation actually changed (`Mutation::RevokeLeases`).
    pub fn revoked_record(&self, actor: &str, reason: &str, at: Timestamp) -> Draft {
        Draft::new(at, Event::LeaseRevoked, Outcome::Success)
            .actor(actor)
            .subject(&self.id)
            .reason(reason)
            .detail("backend", &self.backend)
            .detail("external_id", &self.external_id)
            .detail("holder", &self.subject)
    }
}

/// The revocation reason of a lease whose backend failed to issue: no credential reached
/// anyone, and backends only clean up what they may have half made.
pub const ISSUANCE_FAILED: &str = "issuance failed";

/// Which leases a revocation covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseScope {
    Lease(crate::ids::LeaseId),
    Session(SessionId),
    Grant(String),
    User(UserId),
    /// Every lease held by this holder (`workload:NAME`, say): leases name their holder.
    Holder(String),
}
