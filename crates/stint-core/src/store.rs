//! The storage port. Adapters (SQLite, PostgreSQL) live in `stint-store`.
//!
//! Every write goes through [`Store::apply`]: a [`Change`] is a list of mutations plus the
//! audit events describing them, committed in one transaction or not at all. A mutation
//! with a precondition (a code not yet used, a TOTP step not yet seen, a user still
//! enabled) that fails aborts the whole change with a peer error carrying a stable code: a
//! `Conflict`, or the refusal the caller answers with (`user_disabled` is `Forbidden`).

use crate::audit::{Draft, Record};
use crate::crypto::StoredKey;
use crate::error::Result;
use crate::ids::GroupName;
use crate::ids::LeaseId;
use crate::ids::{ScimGroupId, ScimTokenName, SessionId, UserId, Username, WorkloadId, WorkloadName};
use crate::inventory::Imported;
use crate::model::{Identity, Lease, LeaseScope, OneTimeCode, RequestStatus, RoleRequest, Session, SsoAttempt, SsoRefresh, SsoStatus, User};
use crate::scim::{ScimGroup, ScimProfile, ScimToken};
use crate::time::Timestamp;
use crate::workload::{JoinToken, Workload, WorkloadKey};

#[derive(Debug)]
pub enum Mutation {
    InsertUser(User),
    SetUserDisabled {
        user: UserId,
        disabled: bool,
    },
    /// Enrollment: sets the password hash and the sealed TOTP secret.
    SetCredentials {
        user: UserId,
        password_hash: String,
        totp_sealed: String,
    },
    /// Accepts TOTP `step` only if it is later than the last accepted one (`totp_replayed` otherwise).
    AdvanceTotp {
        user: UserId,
        step: i64,
    },
    InsertSession(Session),
    RevokeSession {
        session: SessionId,
        at: Timestamp,
    },
    RevokeUserSessions {
        user: UserId,
        at: Timestamp,
    },
    InsertCode(OneTimeCode),
    /// Marks a code used if it is unused and unexpired at `at` (`code_used` otherwise).
    ConsumeCode {
        lookup: String,
        at: Timestamp,
    },
    /// Expires every unused bootstrap code (a new one replaces it).
    ExpireBootstrapCodes {
        at: Timestamp,
    },
    InsertKey(StoredKey),
    /// Retires every unretired key but `keep` (the one that signs from now on).
    RetireKeysExcept {
        keep: String,
        at: Timestamp,
        verify_until: Timestamp,
    },
    /// Precondition: the user exists and is enabled (`user_disabled` otherwise), so a login
    /// racing a disable cannot leave a live session behind.
    RequireEnabledUser {
        user: UserId,
    },
    /// Precondition: nobody has enrolled yet (`already_bootstrapped` otherwise).
    RequireNoEnrolledUsers,
    /// Replaces a user's groups (the identity provider is their source of truth).
    SetUserGroups {
        user: UserId,
        groups: Vec<GroupName>,
    },
    /// Links a provider identity to a user; `identity_exists` if (issuer, subject) is linked.
    LinkIdentity(Identity),
    /// Records a login through a linked identity and the email it asserted this time.
    TouchIdentity {
        issuer: String,
        subject: String,
        email: Option<String>,
        at: Timestamp,
    },
    InsertSsoAttempt(SsoAttempt),
    /// Replaces an attempt only while it still has status `expect` (`sso_attempt_done`
    /// otherwise), so each step happens once even when two requests race.
    UpdateSsoAttempt {
        attempt: SsoAttempt,
        expect: SsoStatus,
    },
    /// Deletes attempts that expired before `before`.
    PurgeSsoAttempts {
        before: Timestamp,
    },
    /// Binds an SSO login's refresh token to the session it became.
    InsertSsoRefresh(SsoRefresh),
    /// Replaces the refresh row of `refresh.session_id` (a rotated token, a new validation or
    /// check time); nothing when the row is gone (its session was revoked meanwhile).
    UpdateSsoRefresh(SsoRefresh),
    /// Deletes the refresh tokens of sessions revoked, or expired by `at`: nobody may use them.
    /// (Revoking a session or a person's sessions deletes theirs in the same change.)
    PurgeSsoRefresh {
        at: Timestamp,
    },
    /// Remembers a CI token until it expires; `token_replayed` if it was already used.
    RecordTokenUse {
        key: String,
        expires_at: Timestamp,
    },
    /// Forgets used tokens that expired before `before`.
    PurgeTokenUses {
        before: Timestamp,
    },
    InsertRequest(RoleRequest),
    /// Replaces a request only while it still has status `expect` and `approvals` approvals
    /// (`request_changed` otherwise), so two approvers or an approver and a revoker cannot
    /// both act on the same state.
    UpdateRequest {
        request: RoleRequest,
        expect: RequestStatus,
        approvals: usize,
    },
    /// Records a lease before its backend is asked for the credential.
    InsertLease(Lease),
    /// Precondition: the session is neither revoked nor expired at `at` (`session_revoked`
    /// otherwise), so a lease cannot be recorded after its session's revocation committed.
    RequireLiveSession {
        session: SessionId,
        at: Timestamp,
    },
    /// Precondition: `user` has fewer than `max` live sessions at `at` (`too_many_sessions`
    /// otherwise). Placed before the `InsertSession` it guards; PostgreSQL counts under a
    /// per-person lock, so two concurrent logins cannot both take the last place.
    RequireSessionRoom {
        user: UserId,
        at: Timestamp,
        max: u32,
    },
    /// Precondition: `user` holds fewer than `max` live leases (neither revoked, ended nor
    /// expired at `at`; `too_many_leases` otherwise). Placed before the `InsertLease` it guards.
    RequireLeaseRoom {
        user: UserId,
        at: Timestamp,
        max: u32,
    },
    /// Precondition: the request is an approved grant (`grant_revoked` otherwise).
    RequireApprovedGrant {
        id: String,
    },
    /// The reaper could not end the lease: it tries again from `until` on, so one stuck lease
    /// never holds up the others.
    DeferLease {
        id: LeaseId,
        until: Timestamp,
    },
    /// Marks every lease in `scope` revoked (those not revoked or ended yet); the reaper
    /// then ends them on their backends.
    ///
    /// With `recorded_by` (the actor), each lease this change revoked gets its
    /// `lease.revoked` record ([`Lease::revoked_record`]), written from the rows the change
    /// updated: a lease recorded after the caller last looked is covered and recorded, and a
    /// lease a concurrent change revoked first is recorded by that change alone.
    RevokeLeases {
        scope: LeaseScope,
        at: Timestamp,
        reason: String,
        recorded_by: Option<String>,
    },
    /// Ends what a person was granted or is waiting for ([`RoleRequest::voided`]): approved
    /// grants are revoked and pending requests denied, each with its record, from the rows the
    /// change actually updated (a request approved meanwhile is covered).
    VoidRequestsOf {
        user: UserId,
        /// Who it is decided by, as `RoleRequest::decided_by` says.
        by: String,
        actor: String,
        at: Timestamp,
        reason: String,
    },
    /// Expires every unused one-time code (enrollment or reset) of the user.
    ExpireUserCodes {
        user: UserId,
        at: Timestamp,
    },
    /// Denies the user's SSO attempts that could still become a session: waiting for the
    /// step-up, or approved and not yet redeemed ([`SsoAttempt::denied_for`]).
    DenySsoAttemptsOf {
        user: UserId,
        reason: String,
    },
    /// The backend let go of the lease's credential; `lease_ended` if it had already ended.
    EndLease {
        id: LeaseId,
        at: Timestamp,
    },
    /// Takes or renews the named lock until `until`; `lock_held` while another holder's
    /// claim lasts past `now`. Lets one replica of several run the reaper.
    ClaimLock {
        name: String,
        holder: String,
        until: Timestamp,
        now: Timestamp,
    },
    /// Stores the SSH CA key unless one exists (two replicas starting at once keep one).
    InsertSshCa(StoredKey),
    /// Adds a workload; `workload_exists` if the name is taken.
    InsertWorkload(Workload),
    SetWorkloadDisabled {
        workload: WorkloadId,
        disabled: bool,
    },
    /// Replaces a workload's roles and platform binding.
    UpdateWorkload(Workload),
    /// Precondition: the workload exists and is enabled (`workload_disabled` otherwise), so
    /// nothing is issued or enrolled after a disable committed.
    RequireEnabledWorkload {
        workload: WorkloadId,
    },
    InsertJoinToken(JoinToken),
    /// Marks a join token used if it is unused and unexpired at `at` (`join_token_used` otherwise).
    ConsumeJoinToken {
        lookup: String,
        at: Timestamp,
    },
    /// Expires every unused join token `user` made (none is fine): part of their disable.
    ExpireJoinTokensOf {
        user: UserId,
        at: Timestamp,
    },
    /// Expires every unused join token of the workload.
    ExpireJoinTokens {
        workload: WorkloadId,
        at: Timestamp,
    },
    /// Enrolls an agent key; `key_exists` if this key is enrolled already.
    InsertWorkloadKey(WorkloadKey),
    /// Revokes every live key of the workload: its agents must enroll again.
    RevokeWorkloadKeys {
        workload: WorkloadId,
        at: Timestamp,
    },
    /// Precondition: the key is enrolled and not revoked (`key_revoked` otherwise).
    RequireLiveWorkloadKey {
        kid: String,
    },
    /// Precondition: the workload has fewer than `max` live keys (`too_many_keys` otherwise).
    /// Placed before the `InsertWorkloadKey` it guards.
    RequireWorkloadKeyRoom {
        workload: WorkloadId,
        max: u32,
    },
    /// Adds a SCIM token; `scim_token_exists` while a live token has that name.
    InsertScimToken(ScimToken),
    /// Revokes the live SCIM token of that name; `unknown_scim_token` if there is none.
    RevokeScimToken {
        name: ScimTokenName,
        at: Timestamp,
    },
    /// Revokes every live SCIM token `user` made (none is fine): part of their disable.
    RevokeScimTokensOf {
        user: UserId,
        at: Timestamp,
    },
    /// Sets when an account ends and who sponsors it (both `None`: it does not end); the
    /// sponsor is alerted again before the new end.
    SetUserExpiry {
        user: UserId,
        expires_at: Option<Timestamp>,
        sponsor: Option<UserId>,
    },
    /// Records that the sponsor was alerted of the account's end; `already_alerted` when
    /// another replica did first.
    MarkExpiryAlerted {
        user: UserId,
        at: Timestamp,
    },
    /// Sets what the provider says about a person, replacing what it said before.
    PutScimProfile {
        user: UserId,
        profile: ScimProfile,
        at: Timestamp,
    },
    /// Adds a provisioned group; `group_exists` when its id or display name is taken.
    InsertScimGroup(ScimGroup),
    /// Replaces a provisioned group's name, external id and members; `unknown_group` if none.
    UpdateScimGroup(ScimGroup),
    /// Removes a provisioned group; `unknown_group` if there is none.
    DeleteScimGroup(ScimGroupId),
    /// Precondition: `holder` (a lease's subject) holds fewer than `max` live leases at `at`
    /// (`too_many_leases` otherwise). Placed before the `InsertLease` it guards.
    RequireHolderLeaseRoom {
        holder: String,
        at: Timestamp,
        max: u32,
    },
    /// Keeps a snapshot of an account's long-lived credentials; `inventory_exists` when that
    /// account's report of that time is kept already.
    InsertInventorySnapshot(Imported),
}

/// How long one replica's stalled or slow work may hold up the others (PostgreSQL; SQLite
/// has one writer and needs none). A replica paused
/// inside a transaction (a stopped process, a lost network) holds its row locks, and the
/// audit chain's head among them, until PostgreSQL ends its session: every other replica's
/// writes, and so a disable, wait that long at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A transaction idle this long is ended by the server (`idle_in_transaction_session_timeout`).
    pub idle_in_transaction_secs: u64,
    /// A statement waiting this long for a lock fails (`lock_timeout`); the request answers 503.
    pub lock_secs: u64,
    /// A statement running this long fails (`statement_timeout`).
    pub statement_secs: u64,
}

impl Default for Timeouts {
    /// stint's transactions take milliseconds; the lock wait outlasts the idle bound, so a
    /// writer queued behind a stalled replica gets through once the server ends it.
    fn default() -> Self {
        Timeouts { idle_in_transaction_secs: 1, lock_secs: 3, statement_secs: 5 }
    }
}

/// One atomic unit of work.
#[derive(Debug, Default)]
pub struct Change {
    pub mutations: Vec<Mutation>,
    pub audit: Vec<Draft>,
}

impl Change {
    pub fn audit_only(d: Draft) -> Change {
        Change { mutations: vec![], audit: vec![d] }
    }
    pub fn with(mut self, m: Mutation) -> Change {
        self.mutations.push(m);
        self
    }
    pub fn record(mut self, d: Draft) -> Change {
        self.audit.push(d);
        self
    }
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies mutations and appends audit records atomically; returns the new chain head seq.
    async fn apply(&self, change: Change) -> Result<u64>;

    async fn user_by_name(&self, name: &Username) -> Result<Option<User>>;
    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>>;
    async fn users(&self) -> Result<Vec<User>>;
    /// Enabled accounts ending by `before` whose sponsor was not yet alerted.
    async fn expiring_unalerted(&self, before: Timestamp) -> Result<Vec<User>>;
    /// Whether anyone has finished enrollment (until then a bootstrap token is offered).
    async fn any_enrolled_user(&self) -> Result<bool>;

    /// A session with its owner, found by the lookup half of its bearer.
    async fn session_by_lookup(&self, lookup: &str) -> Result<Option<(Session, User)>>;
    /// A session with its owner, found by id.
    async fn session(&self, id: &SessionId) -> Result<Option<(Session, User)>>;
    async fn active_sessions(&self, now: Timestamp) -> Result<u64>;

    async fn code(&self, lookup: &str) -> Result<Option<OneTimeCode>>;

    /// The identity (issuer, subject) with the user it is linked to.
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<(Identity, User)>>;
    /// The SSO attempt whose `state` has this lookup half.
    async fn sso_attempt_by_state(&self, lookup: &str) -> Result<Option<SsoAttempt>>;
    /// The SSO attempt whose device or login code has this lookup half.
    async fn sso_attempt_by_code(&self, lookup: &str) -> Result<Option<SsoAttempt>>;
    async fn request(&self, id: &str) -> Result<Option<RoleRequest>>;
    /// Requests created at or after `since`, newest first, at most `limit`.
    async fn requests(&self, since: Timestamp, limit: u32) -> Result<Vec<RoleRequest>>;
    /// The approved requests of `user` for `role` (grants; the caller checks their window).
    async fn grants(&self, user: &UserId, role: &crate::ids::RoleName) -> Result<Vec<RoleRequest>>;
    /// The pending, unexpired device attempt with this user-code hash.
    async fn sso_attempt_by_user_code(&self, hash: &str, now: Timestamp) -> Result<Option<SsoAttempt>>;
    /// The refresh rows of sessions live at `now` last checked at or before `checked_before`,
    /// least recently checked first, at most `limit`.
    async fn sso_refresh_due(&self, checked_before: Timestamp, now: Timestamp, limit: u32) -> Result<Vec<SsoRefresh>>;
    /// The refresh row of one session, if its login got a refresh token.
    async fn sso_refresh(&self, session: &SessionId) -> Result<Option<SsoRefresh>>;

    async fn signing_keys(&self) -> Result<Vec<StoredKey>>;
    /// The SSH certificate authority's key, once created.
    async fn ssh_ca(&self) -> Result<Option<StoredKey>>;

    async fn lease(&self, id: &LeaseId) -> Result<Option<Lease>>;
    /// Leases newest first, at most `limit`: of one user when given, and only those not yet
    /// ended unless `include_ended`.
    async fn leases(&self, user: Option<&UserId>, include_ended: bool, limit: u32) -> Result<Vec<Lease>>;
    /// Leases issued at or before `to` and not over before `from` (not ended, or ended at or
    /// after `from`, and expiring at or after `from`), oldest first, at most `limit`: what a
    /// report of the period `[from, to]` counts.
    async fn leases_during(&self, from: Timestamp, to: Timestamp, limit: u32) -> Result<Vec<Lease>>;
    /// The leases `scope` covers that are neither revoked nor ended.
    async fn live_leases(&self, scope: &LeaseScope) -> Result<Vec<Lease>>;
    /// Leases the reaper must end: revoked, or expired by `now`, not ended, and not deferred
    /// past `now`; revoked ones first, then by expiry.
    async fn leases_to_end(&self, now: Timestamp, limit: u32) -> Result<Vec<Lease>>;
    /// The external ids of revoked leases of `kind` that expire after `now` (for the SSH KRL).
    async fn revoked_unexpired(&self, kind: crate::model::BackendKind, now: Timestamp) -> Result<Vec<String>>;

    async fn workload(&self, name: &WorkloadName) -> Result<Option<Workload>>;
    async fn workload_by_id(&self, id: &WorkloadId) -> Result<Option<Workload>>;
    /// Every workload, by name.
    async fn workloads(&self) -> Result<Vec<Workload>>;
    /// An enrolled key with its workload.
    async fn workload_key(&self, kid: &str) -> Result<Option<(WorkloadKey, Workload)>>;
    /// The keys of a workload, live or revoked, oldest first.
    async fn workload_keys(&self, workload: &WorkloadId) -> Result<Vec<WorkloadKey>>;
    async fn join_token(&self, lookup: &str) -> Result<Option<JoinToken>>;
    /// A SCIM token, live or revoked, by the lookup half of its bearer.
    async fn scim_token(&self, lookup: &str) -> Result<Option<ScimToken>>;
    /// Every SCIM token, live and revoked, oldest first.
    async fn scim_tokens(&self) -> Result<Vec<ScimToken>>;
    /// What the provider said about each person it described, by user id.
    async fn scim_profiles(&self) -> Result<Vec<(UserId, ScimProfile)>>;
    /// Every provisioned group, by display name.
    async fn scim_groups(&self) -> Result<Vec<ScimGroup>>;

    /// The inventory snapshots generated at or after `since`, oldest first.
    async fn inventory_snapshots(&self, since: Timestamp) -> Result<Vec<Imported>>;
    /// Records with `seq > after`, in order, at most `limit`.
    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<Record>>;
    /// Records with `seq > after` written in `[from, to]`, in order, at most `limit`.
    async fn audit_during(&self, from: Timestamp, to: Timestamp, after: u64, limit: u32) -> Result<Vec<Record>>;
    /// The chain head `(seq, hash)` kept apart from the records; `None` before the first append.
    async fn audit_head(&self) -> Result<Option<(u64, String)>>;

    /// Word of changes committed by any process sharing this store, for a store several
    /// replicas share; `None` (the default) for a store only this process writes.
    fn invalidations(&self) -> Option<Box<dyn Invalidations>> {
        None
    }
}

/// What a replica holds in memory that a committed change can make stale
/// (see `docs/replicas.md`). Everything else is read from the store on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stale {
    /// The signing keys: the signer, the published key set, and the tokens verified with them.
    Keys,
    /// Anything: word of some changes may have been lost (the store was unreachable).
    Everything,
}

impl Stale {
    /// The stable name a store sends between replicas.
    pub fn as_str(self) -> &'static str {
        match self {
            Stale::Keys => "keys",
            Stale::Everything => "everything",
        }
    }

    /// The inverse of [`Stale::as_str`]; an unknown name (a newer replica's) counts as
    /// [`Stale::Everything`], so nothing a replica does not understand is left stale.
    pub fn parse(name: &str) -> Stale {
        match name {
            "keys" => Stale::Keys,
            _ => Stale::Everything,
        }
    }
}

impl Mutation {
    /// What this mutation makes stale in the memory of the replicas that did not commit it.
    pub fn stales(&self) -> Option<Stale> {
        match self {
            Mutation::InsertKey(_) | Mutation::RetireKeysExcept { .. } => Some(Stale::Keys),
            _ => None,
        }
    }
}

impl Change {
    /// What this change makes stale on other replicas, each once.
    pub fn stales(&self) -> std::collections::BTreeSet<Stale> {
        self.mutations.iter().filter_map(Mutation::stales).collect()
    }
}

/// A stream of [`Stale`] notices from a shared store; reconnects by itself, and says
/// [`Stale::Everything`] after any gap in which notices may have been lost.
#[async_trait::async_trait]
pub trait Invalidations: Send {
    /// Waits for the next notice; notices arriving meanwhile may be merged.
    async fn next(&mut self) -> Stale;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_changes_make_a_replica_stale() {
        let now = Timestamp(1_800_000_000);
        let retire = Mutation::RetireKeysExcept { keep: "k2".into(), at: now, verify_until: now };
        let disable = Mutation::SetUserDisabled { user: UserId::random(&mut rand_core::OsRng), disabled: true };
        assert_eq!(retire.stales(), Some(Stale::Keys));
        // Read from the store on every request: nothing to tell the other replicas.
        assert_eq!(disable.stales(), None);
        let change = Change::default().with(disable).with(retire).with(Mutation::RetireKeysExcept { keep: "k3".into(), at: now, verify_until: now });
        assert_eq!(change.stales().into_iter().collect::<Vec<_>>(), vec![Stale::Keys]);
    }

    #[test]
    fn notice_names_round_trip_and_unknown_ones_mean_everything() {
        for s in [Stale::Keys, Stale::Everything] {
            assert_eq!(Stale::parse(s.as_str()), s);
        }
        assert_eq!(Stale::parse("policies"), Stale::Everything);
        assert_eq!(Stale::parse(""), Stale::Everything);
    }
}
