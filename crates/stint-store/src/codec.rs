//! Row decoding and value encoding shared by both dialects, so the two adapters cannot
//! drift apart in how they read the model back.

use std::collections::BTreeMap;

use stint_core::audit::{Outcome, Record};
use stint_core::crypto::StoredKey;
use stint_core::error::{Error, Result};
use stint_core::ids::{GroupName, SessionId, UserId, Username};
use stint_core::model::{CodePurpose, Identity, OneTimeCode, RoleRequest, Session, SsoAttempt, SsoRefresh, User};
use stint_core::Timestamp;

use crate::error::{corrupt, store};

/// Column lists; the decoders below read them in this order.
pub(crate) const USER_COLS: &str =
    "u.id, u.name, u.group_names, u.disabled, u.password_hash, u.totp_sealed, u.totp_last_step, u.created_at, u.expires_at, u.sponsor";
pub(crate) const SESSION_COLS: &str = "s.id, s.lookup, s.secret_hash, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.mfa";
/// Where the user columns start in a `SESSION_COLS, USER_COLS` row.
pub(crate) const SESSION_WIDTH: usize = 8;
pub(crate) const CODE_COLS: &str = "lookup, secret_hash, purpose, user_id, expires_at, used_at";
pub(crate) const KEY_COLS: &str = "kid, public, sealed_private, created_at, retired_at, verify_until";
pub(crate) const IDENTITY_COLS: &str = "i.issuer, i.subject, i.user_id, i.email, i.created_at, i.last_login_at";
/// Where the user columns start in an `IDENTITY_COLS, USER_COLS` row.
pub(crate) const IDENTITY_WIDTH: usize = 6;
pub(crate) const AUDIT_COLS: &str = "seq, at, event, outcome, actor, subject, reason, details, prev_hash, hash";

/// Typed access to one result row, implemented for both drivers.
pub(crate) trait Cells {
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn blob(&self, i: usize) -> Result<Vec<u8>>;
    fn flag(&self, i: usize) -> Result<bool>;

    fn time(&self, i: usize) -> Result<Timestamp> {
        self.int(i).map(Timestamp)
    }
    fn opt_time(&self, i: usize) -> Result<Option<Timestamp>> {
        Ok(self.opt_int(i)?.map(Timestamp))
    }
}

impl Cells for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String> {
        self.get(i).map_err(store)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.get(i).map_err(store)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.get(i).map_err(store)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.get(i).map_err(store)
    }
    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.get(i).map_err(store)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        self.get(i).map_err(store)
    }
}

impl Cells for tokio_postgres::Row {
    fn text(&self, i: usize) -> Result<String> {
        self.try_get(i).map_err(store)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        self.try_get(i).map_err(store)
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.try_get(i).map_err(store)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).map_err(store)
    }
    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.try_get(i).map_err(store)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        self.try_get(i).map_err(store)
    }
}

/// Decodes `USER_COLS` starting at column `at`.
pub(crate) fn user(r: &impl Cells, at: usize) -> Result<User> {
    Ok(User {
        id: UserId::from_trusted(r.text(at)?),
        name: Username::parse(&r.text(at + 1)?).map_err(|_| corrupt("users.name"))?,
        groups: serde_json::from_str::<Vec<GroupName>>(&r.text(at + 2)?).map_err(|_| corrupt("users.group_names"))?,
        disabled: r.flag(at + 3)?,
        password_hash: r.opt_text(at + 4)?,
        totp_sealed: r.opt_text(at + 5)?,
        totp_last_step: r.int(at + 6)?,
        created_at: r.time(at + 7)?,
        expires_at: r.opt_time(at + 8)?,
        sponsor: r.opt_text(at + 9)?.map(UserId::from_trusted),
    })
}

/// Decodes a `SESSION_COLS, USER_COLS` row.
pub(crate) fn session_with_user(r: &impl Cells) -> Result<(Session, User)> {
    let session = Session {
        id: SessionId::from_trusted(r.text(0)?),
        lookup: r.text(1)?,
        secret_hash: r.blob(2)?,
        user_id: UserId::from_trusted(r.text(3)?),
        created_at: r.time(4)?,
        expires_at: r.time(5)?,
        revoked_at: r.opt_time(6)?,
        mfa: r.text(7)?,
    };
    Ok((session, user(r, SESSION_WIDTH)?))
}

pub(crate) fn code(r: &impl Cells) -> Result<OneTimeCode> {
    Ok(OneTimeCode {
        lookup: r.text(0)?,
        secret_hash: r.blob(1)?,
        purpose: CodePurpose::parse(&r.text(2)?).ok_or_else(|| corrupt("codes.purpose"))?,
        user_id: r.opt_text(3)?.map(UserId::from_trusted),
        expires_at: r.time(4)?,
        used_at: r.opt_time(5)?,
    })
}

/// Decodes an `IDENTITY_COLS, USER_COLS` row.
pub(crate) fn identity_with_user(r: &impl Cells) -> Result<(Identity, User)> {
    let identity = Identity {
        issuer: r.text(0)?,
        subject: r.text(1)?,
        user_id: UserId::from_trusted(r.text(2)?),
        email: r.opt_text(3)?,
        created_at: r.time(4)?,
        last_login_at: r.time(5)?,
    };
    Ok((identity, user(r, IDENTITY_WIDTH)?))
}

pub(crate) const SSO_REFRESH_COLS: &str = "session_id, provider, subject, refresh_sealed, validated_at, checked_at";

/// Decodes a `SSO_REFRESH_COLS` row.
pub(crate) fn sso_refresh(r: &impl Cells) -> Result<SsoRefresh> {
    Ok(SsoRefresh {
        session_id: SessionId::from_trusted(r.text(0)?),
        provider: r.text(1)?,
        subject: r.text(2)?,
        refresh_sealed: r.text(3)?,
        validated_at: r.time(4)?,
        checked_at: r.time(5)?,
    })
}

/// Decodes the `body` column of `sso_attempts`.
pub(crate) fn sso_attempt(r: &impl Cells) -> Result<SsoAttempt> {
    sso_attempt_from_json(&r.text(0)?)
}

pub(crate) fn sso_attempt_from_json(body: &str) -> Result<SsoAttempt> {
    serde_json::from_str(body).map_err(|_| corrupt("sso_attempts.body"))
}

pub(crate) fn sso_attempt_json(a: &SsoAttempt) -> Result<String> {
    serde_json::to_string(a).map_err(|e| Error::Internal(format!("encoding an SSO attempt: {e}")))
}

pub(crate) fn role_request(r: &impl Cells) -> Result<RoleRequest> {
    role_request_from_json(&r.text(0)?)
}

pub(crate) fn role_request_from_json(body: &str) -> Result<RoleRequest> {
    serde_json::from_str(body).map_err(|_| corrupt("role_requests.body"))
}

pub(crate) fn role_request_json(q: &RoleRequest) -> Result<String> {
    serde_json::to_string(q).map_err(|e| Error::Internal(format!("encoding a request: {e}")))
}

pub(crate) fn request_changed() -> Error {
    Error::conflict("request_changed", "this request changed meanwhile (another approver or a revocation); look again with `stint requests`")
}

pub(crate) fn identity_exists() -> Error {
    Error::conflict("identity_exists", "this identity is already linked to a user")
}

pub(crate) fn token_replayed() -> Error {
    Error::conflict("token_replayed", "this token was already exchanged; each CI token is accepted once")
}

pub(crate) fn sso_attempt_done() -> Error {
    Error::conflict("sso_attempt_done", "this login has already moved on; start again with `stint login`")
}

pub(crate) fn key(r: &impl Cells) -> Result<StoredKey> {
    Ok(StoredKey {
        kid: r.text(0)?,
        public: r.blob(1)?,
        sealed_private: r.text(2)?,
        created_at: r.time(3)?,
        retired_at: r.opt_time(4)?,
        verify_until: r.opt_time(5)?,
    })
}

pub(crate) fn record(r: &impl Cells) -> Result<Record> {
    Ok(Record {
        seq: to_seq(r.int(0)?)?,
        at: r.time(1)?,
        event: r.text(2)?,
        outcome: Outcome::parse(&r.text(3)?).ok_or_else(|| corrupt("audit.outcome"))?,
        actor: r.text(4)?,
        subject: r.text(5)?,
        reason: r.text(6)?,
        details: serde_json::from_str::<BTreeMap<String, String>>(&r.text(7)?).map_err(|_| corrupt("audit.details"))?,
        prev_hash: r.text(8)?,
        hash: r.text(9)?,
    })
}

/// The `(seq, hash)` of the `audit_head` row; seq 0 means no record yet.
pub(crate) fn head(r: &impl Cells) -> Result<(u64, String)> {
    Ok((to_seq(r.int(0)?)?, r.text(1)?))
}

/// What `Store::audit_head` reports: `None` before the first append.
pub(crate) fn public_head(head: (u64, String)) -> Option<(u64, String)> {
    (head.0 > 0).then_some(head)
}

pub(crate) fn groups_json(groups: &[GroupName]) -> Result<String> {
    serde_json::to_string(groups).map_err(|e| Error::Internal(format!("encoding groups: {e}")))
}

pub(crate) fn details_json(details: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(details).map_err(|e| Error::Internal(format!("encoding audit details: {e}")))
}

pub(crate) fn to_seq(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("audit sequence number"))
}

/// Sequence numbers and counts go to the database as signed 64-bit integers.
pub(crate) fn to_db_int(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Internal("sequence number out of range".into()))
}

/// Refuses a database migrated by a newer build: this one would misread it.
pub(crate) fn check_schema_version(current: i64, known: &[(i64, &str)]) -> Result<()> {
    let latest = known.iter().map(|(v, _)| *v).max().unwrap_or(0);
    if current > latest {
        return Err(Error::store(crate::error::StoreError::SchemaTooNew(current)));
    }
    Ok(())
}

pub(crate) fn user_exists(name: &Username) -> Error {
    Error::conflict("user_exists", format!("a user named {name} already exists"))
}

pub(crate) fn totp_replayed() -> Error {
    Error::conflict("totp_replayed", "this one-time code was already used; wait for the next one")
}

pub(crate) fn code_used() -> Error {
    Error::conflict("code_used", "this code was already used or has expired")
}

pub(crate) fn user_disabled() -> Error {
    Error::forbidden("user_disabled", "this user is disabled; ask an administrator")
}

pub(crate) fn already_bootstrapped() -> Error {
    Error::conflict("already_bootstrapped", "stint already has an enrolled user; ask an administrator for an account")
}

/// Turns a precondition's "rows affected" into its conflict.
pub(crate) fn require(rows: u64, conflict: impl FnOnce() -> Error) -> Result<()> {
    if rows == 0 {
        return Err(conflict());
    }
    Ok(())
}

pub(crate) const LEASE_COLS: &str =
    "id, backend, kind, user_id, subject, role, session_id, grant_id, external_id, issued_at, expires_at, revoked_at, revoke_reason, ended_at, retry_at";

pub(crate) fn lease(r: &impl Cells) -> Result<stint_core::model::Lease> {
    use stint_core::ids::{LeaseId, RoleName};
    use stint_core::model::BackendKind;
    Ok(stint_core::model::Lease {
        id: LeaseId::from_trusted(r.text(0)?),
        backend: r.text(1)?,
        kind: BackendKind::parse(&r.text(2)?).ok_or_else(|| corrupt("leases.kind"))?,
        user_id: r.opt_text(3)?.map(UserId::from_trusted),
        subject: r.text(4)?,
        role: RoleName::parse(&r.text(5)?).map_err(|_| corrupt("leases.role"))?,
        session_id: r.opt_text(6)?.map(SessionId::from_trusted),
        grant_id: r.opt_text(7)?,
        external_id: r.text(8)?,
        issued_at: r.time(9)?,
        expires_at: r.time(10)?,
        revoked_at: r.opt_time(11)?,
        revoke_reason: r.opt_text(12)?,
        ended_at: r.opt_time(13)?,
        retry_at: r.opt_time(14)?,
    })
}

/// The column and value a revocation scope selects leases by.
pub(crate) fn lease_scope(scope: &stint_core::model::LeaseScope) -> (&'static str, &str) {
    use stint_core::model::LeaseScope;
    match scope {
        LeaseScope::Lease(id) => ("id", id.as_str()),
        LeaseScope::Session(id) => ("session_id", id.as_str()),
        LeaseScope::Grant(id) => ("grant_id", id.as_str()),
        LeaseScope::User(id) => ("user_id", id.as_str()),
        LeaseScope::Holder(h) => ("subject", h.as_str()),
    }
}

pub(crate) const WORKLOAD_COLS: &str = "w.id, w.name, w.disabled, w.created_at, w.body";
/// Where the workload columns start in a `WORKLOAD_KEY_COLS, WORKLOAD_COLS` row.
pub(crate) const WORKLOAD_KEY_WIDTH: usize = 6;
pub(crate) const WORKLOAD_KEY_COLS: &str = "k.kid, k.workload_id, k.public, k.enrolled_by, k.created_at, k.revoked_at";
pub(crate) const JOIN_TOKEN_COLS: &str = "lookup, secret_hash, workload_id, expires_at, used_at, created_by";

/// What a workload row keeps as JSON: the parts that are lists or optional.
pub(crate) fn workload_body(w: &stint_core::workload::Workload) -> Result<String> {
    Ok(serde_json::json!({ "roles": w.roles, "platform": w.platform }).to_string())
}

/// Decodes `WORKLOAD_COLS` starting at column `at`.
pub(crate) fn workload(r: &impl Cells, at: usize) -> Result<stint_core::workload::Workload> {
    use stint_core::ids::{WorkloadId, WorkloadName};
    let body: serde_json::Value = serde_json::from_str(&r.text(at + 4)?).map_err(|_| corrupt("workloads.body"))?;
    let roles = serde_json::from_value(body["roles"].clone()).map_err(|_| corrupt("workloads.body"))?;
    let platform = serde_json::from_value(body["platform"].clone()).map_err(|_| corrupt("workloads.body"))?;
    Ok(stint_core::workload::Workload {
        id: WorkloadId::from_trusted(r.text(at)?),
        name: WorkloadName::parse(&r.text(at + 1)?).map_err(|_| corrupt("workloads.name"))?,
        roles,
        platform,
        disabled: r.flag(at + 2)?,
        created_at: r.time(at + 3)?,
    })
}

pub(crate) fn workload_key(r: &impl Cells) -> Result<stint_core::workload::WorkloadKey> {
    Ok(stint_core::workload::WorkloadKey {
        kid: r.text(0)?,
        workload_id: stint_core::ids::WorkloadId::from_trusted(r.text(1)?),
        public: r.blob(2)?.try_into().map_err(|_| corrupt("workload_keys.public"))?,
        enrolled_by: r.text(3)?,
        created_at: r.time(4)?,
        revoked_at: r.opt_time(5)?,
    })
}

/// Decodes a `WORKLOAD_KEY_COLS, WORKLOAD_COLS` row.
pub(crate) fn workload_key_with_workload(r: &impl Cells) -> Result<(stint_core::workload::WorkloadKey, stint_core::workload::Workload)> {
    Ok((workload_key(r)?, workload(r, WORKLOAD_KEY_WIDTH)?))
}

pub(crate) fn join_token(r: &impl Cells) -> Result<stint_core::workload::JoinToken> {
    Ok(stint_core::workload::JoinToken {
        lookup: r.text(0)?,
        secret_hash: r.blob(1)?,
        workload_id: stint_core::ids::WorkloadId::from_trusted(r.text(2)?),
        expires_at: r.time(3)?,
        used_at: r.opt_time(4)?,
        created_by: r.opt_text(5)?.map(stint_core::ids::UserId::from_trusted),
    })
}

pub(crate) fn workload_exists(name: &stint_core::ids::WorkloadName) -> Error {
    Error::conflict("workload_exists", format!("a workload named {name} exists already; `stint workload list` shows them"))
}

pub(crate) fn workload_disabled() -> Error {
    Error::forbidden("workload_disabled", "this workload is disabled; an administrator enables it with `stint workload enable`")
}

pub(crate) fn join_token_used() -> Error {
    Error::unauthenticated(
        "join_token_used",
        "this join token was used already or has expired; an administrator makes a new one with `stint workload join-token`",
    )
}

pub(crate) fn key_exists() -> Error {
    Error::conflict("key_exists", "this agent key is enrolled already; the agent generates a new key to enroll again")
}

pub(crate) fn key_revoked() -> Error {
    Error::unauthenticated(
        "key_revoked",
        "this agent's key was revoked (the workload was disabled); enroll the agent again with a new join token or platform token",
    )
}

pub(crate) fn too_many_keys(max: u32) -> Error {
    Error::conflict(
        "too_many_keys",
        format!("this workload has {max} live agent keys, the most allowed; disable and enable it to revoke them all, or raise [limits] keys_per_workload"),
    )
}

pub(crate) fn too_many_holder_leases(max: u32) -> Error {
    Error::conflict(
        "too_many_leases",
        format!(
            "this workload already holds {max} live leases, the most allowed: raise [limits] leases_per_workload, or revoke some with `stint leases revoke`"
        ),
    )
}

pub(crate) fn session_revoked() -> Error {
    Error::unauthenticated("session_revoked", "your session ended; run `stint login`")
}

pub(crate) fn too_many_sessions(max: u32) -> Error {
    Error::conflict(
        "too_many_sessions",
        format!("you already have {max} live sessions, the most allowed: run `stint logout` where you no longer need one (or ask an administrator to revoke one), then log in again"),
    )
}

pub(crate) fn too_many_leases(max: u32) -> Error {
    Error::conflict(
        "too_many_leases",
        format!("you already hold {max} live leases, the most allowed: end those you no longer need with `stint leases revoke <id>` (see `stint leases`), or wait for them to expire"),
    )
}

/// Whether `live` leaves room for one more under `max`.
pub(crate) fn room(live: i64, max: u32, refused: impl FnOnce(u32) -> Error) -> Result<()> {
    if live >= i64::from(max) {
        return Err(refused(max));
    }
    Ok(())
}

pub(crate) fn grant_revoked() -> Error {
    Error::forbidden("grant_revoked", "the grant this credential was asked under is no longer approved")
}

pub(crate) fn lease_ended() -> Error {
    Error::conflict("lease_ended", "this lease has already ended")
}

pub(crate) fn lock_held() -> Error {
    Error::conflict("lock_held", "another replica holds this lock")
}

pub(crate) const SCIM_TOKEN_COLS: &str = "name, lookup, secret_hash, created_by, created_at, revoked_at";

pub(crate) fn scim_token(r: &impl Cells) -> Result<stint_core::scim::ScimToken> {
    Ok(stint_core::scim::ScimToken {
        name: stint_core::ids::ScimTokenName::parse(&r.text(0)?).map_err(|_| corrupt("scim_tokens.name"))?,
        lookup: r.text(1)?,
        secret_hash: r.blob(2)?,
        created_by: UserId::from_trusted(r.text(3)?),
        created_at: r.time(4)?,
        revoked_at: r.opt_time(5)?,
    })
}

pub(crate) fn scim_token_exists(name: &stint_core::ids::ScimTokenName) -> Error {
    Error::conflict(
        "scim_token_exists",
        format!("a live SCIM token is named {name}; revoke it first (`stint scim token revoke {name}`) or choose another name"),
    )
}

pub(crate) fn unknown_scim_token(name: &stint_core::ids::ScimTokenName) -> Error {
    Error::not_found("unknown_scim_token", format!("no live SCIM token is named {name}; `stint scim token list` shows them"))
}

pub(crate) const SCIM_PROFILE_COLS: &str = "user_id, external_id, email";

pub(crate) fn scim_profile(r: &impl Cells) -> Result<(UserId, stint_core::scim::ScimProfile)> {
    Ok((UserId::from_trusted(r.text(0)?), stint_core::scim::ScimProfile { external_id: r.opt_text(1)?, email: r.opt_text(2)? }))
}

pub(crate) const SCIM_GROUP_COLS: &str = "id, display_name, external_id, members, created_at";

pub(crate) fn scim_group(r: &impl Cells) -> Result<stint_core::scim::ScimGroup> {
    Ok(stint_core::scim::ScimGroup {
        id: stint_core::ids::ScimGroupId::from_trusted(r.text(0)?),
        display_name: r.text(1)?,
        external_id: r.opt_text(2)?,
        members: serde_json::from_str::<Vec<UserId>>(&r.text(3)?).map_err(|_| corrupt("scim_groups.members"))?,
        created_at: r.time(4)?,
    })
}

pub(crate) fn members_json(members: &[UserId]) -> Result<String> {
    serde_json::to_string(members).map_err(|e| Error::Internal(format!("encoding members: {e}")))
}

pub(crate) fn group_exists(name: &str) -> Error {
    Error::conflict("group_exists", format!("a group named {:?} exists already", stint_core::ids::truncate(name)))
}

pub(crate) fn unknown_group(id: &stint_core::ids::ScimGroupId) -> Error {
    Error::not_found("unknown_group", format!("no group with id {id}"))
}

pub(crate) fn already_alerted() -> Error {
    Error::conflict("already_alerted", "the sponsor was already alerted of this account's end")
}

pub(crate) const INVENTORY_COLS: &str = "source, account, generated_at, imported_at, imported_by, users";

/// The users of a snapshot as the `users` column keeps them (JSON).
pub(crate) fn inventory_users(s: &stint_core::inventory::Snapshot) -> Result<String> {
    serde_json::to_string(&s.users).map_err(|e| Error::Internal(format!("inventory snapshot: {e}")))
}

pub(crate) fn inventory(r: &impl Cells) -> Result<stint_core::inventory::Imported> {
    use stint_core::inventory::{Imported, Snapshot, Source};
    Ok(Imported {
        snapshot: Snapshot {
            source: Source::parse(&r.text(0)?).map_err(|_| corrupt("inventory_snapshots.source"))?,
            account: r.text(1)?,
            generated_at: r.time(2)?,
            users: serde_json::from_str(&r.text(5)?).map_err(|_| corrupt("inventory_snapshots.users"))?,
        },
        imported_at: r.time(3)?,
        imported_by: r.text(4)?,
    })
}

pub(crate) fn inventory_exists(s: &stint_core::inventory::Snapshot) -> Error {
    Error::conflict("inventory_exists", format!("account {}'s report generated at {} is imported already", s.account, s.generated_at.to_rfc3339()))
}
