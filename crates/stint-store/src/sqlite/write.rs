//! One change's SQL on SQLite, run by the writer thread inside the change's savepoint.

use rusqlite::{params, Connection, OptionalExtension, Params};
use stint_core::audit::{chain, Draft};
use stint_core::error::Result;
use stint_core::model::User;
use stint_core::store::{Change, Mutation};

use crate::codec::{self, require};
use crate::error::store;

/// The audit chain head `(seq, hash)`.
pub(super) type Head = (u64, String);

/// Runs the change's mutations and appends its audit records after `head`; returns the new head.
pub(super) fn apply(c: &Connection, change: Change, head: &Head) -> Result<Head> {
    // Some mutations add records of what they changed, after the change's own.
    let mut audit = change.audit;
    for m in change.mutations {
        mutate(c, m, &mut audit)?;
    }
    append(c, audit, head)
}

fn exec(c: &Connection, sql: &str, p: impl Params) -> Result<u64> {
    let n = c.prepare_cached(sql).and_then(|mut s| s.execute(p)).map_err(store)?;
    Ok(n as u64)
}

fn count(c: &Connection, sql: &str, p: impl Params) -> Result<i64> {
    c.prepare_cached(sql).and_then(|mut s| s.query_row(p, |r| r.get(0))).map_err(store)
}

fn mutate(c: &Connection, m: Mutation, audit: &mut Vec<Draft>) -> Result<()> {
    match m {
        Mutation::InsertUser(u) => insert_user(c, &u),
        Mutation::SetUserDisabled { user, disabled } => exec(c, "UPDATE users SET disabled = ?2 WHERE id = ?1", params![user.as_str(), disabled]).map(drop),
        Mutation::SetCredentials { user, password_hash, totp_sealed } => {
            exec(c, "UPDATE users SET password_hash = ?2, totp_sealed = ?3 WHERE id = ?1", params![user.as_str(), password_hash, totp_sealed]).map(drop)
        }
        Mutation::AdvanceTotp { user, step } => {
            let n = exec(c, "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2", params![user.as_str(), step])?;
            require(n, codec::totp_replayed)
        }
        Mutation::InsertSession(s) => exec(
            c,
            "INSERT INTO sessions (id, lookup, secret_hash, user_id, created_at, expires_at, revoked_at, mfa) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![s.id.as_str(), s.lookup, s.secret_hash, s.user_id.as_str(), s.created_at.0, s.expires_at.0, s.revoked_at.map(|t| t.0), s.mfa],
        )
        .map(drop),
        // A revoked session's refresh token goes with it.
        Mutation::RevokeSession { session, at } => {
            exec(c, "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", params![session.as_str(), at.0])?;
            exec(c, "DELETE FROM sso_refresh WHERE session_id = ?1", [session.as_str()]).map(drop)
        }
        Mutation::RevokeUserSessions { user, at } => {
            exec(c, "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL", params![user.as_str(), at.0])?;
            exec(c, "DELETE FROM sso_refresh WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?1)", [user.as_str()]).map(drop)
        }
        Mutation::InsertCode(k) => exec(
            c,
            "INSERT INTO codes (lookup, secret_hash, purpose, user_id, expires_at, used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![k.lookup, k.secret_hash, k.purpose.as_str(), k.user_id.as_ref().map(|u| u.as_str()), k.expires_at.0, k.used_at.map(|t| t.0)],
        )
        .map(drop),
        Mutation::ConsumeCode { lookup, at } => {
            let n = exec(c, "UPDATE codes SET used_at = ?2 WHERE lookup = ?1 AND used_at IS NULL AND expires_at > ?2", params![lookup, at.0])?;
            require(n, codec::code_used)
        }
        Mutation::ExpireBootstrapCodes { at } => {
            exec(c, "UPDATE codes SET expires_at = ?1 WHERE purpose = 'bootstrap' AND used_at IS NULL AND expires_at > ?1", params![at.0]).map(drop)
        }
        Mutation::InsertKey(k) => exec(
            c,
            "INSERT INTO signing_keys (kid, public, sealed_private, created_at, retired_at, verify_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![k.kid, k.public, k.sealed_private, k.created_at.0, k.retired_at.map(|t| t.0), k.verify_until.map(|t| t.0)],
        )
        .map(drop),
        Mutation::RetireKeysExcept { keep, at, verify_until } => {
            exec(c, "UPDATE signing_keys SET retired_at = ?2, verify_until = ?3 WHERE kid <> ?1 AND retired_at IS NULL", params![keep, at.0, verify_until.0])
                .map(drop)
        }
        Mutation::RequireEnabledUser { user } => {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM users WHERE id = ?1 AND disabled = 0")
                .and_then(|mut s| s.query_row([user.as_str()], |r| r.get(0)))
                .map_err(store)?;
            codec::require(n as u64, codec::user_disabled)
        }
        Mutation::RequireNoEnrolledUsers => {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM users WHERE password_hash IS NOT NULL")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(store)?;
            codec::require(u64::from(n == 0), codec::already_bootstrapped)
        }
        Mutation::SetUserGroups { user, groups } => {
            exec(c, "UPDATE users SET group_names = ?2 WHERE id = ?1", params![user.as_str(), codec::groups_json(&groups)?]).map(drop)
        }
        Mutation::LinkIdentity(i) => {
            let n = exec(
                c,
                "INSERT INTO identities (issuer, subject, user_id, email, created_at, last_login_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (issuer, subject) DO NOTHING",
                params![i.issuer, i.subject, i.user_id.as_str(), i.email, i.created_at.0, i.last_login_at.0],
            )?;
            require(n, codec::identity_exists)
        }
        Mutation::TouchIdentity { issuer, subject, email, at } => {
            exec(c, "UPDATE identities SET email = ?3, last_login_at = ?4 WHERE issuer = ?1 AND subject = ?2", params![issuer, subject, email, at.0]).map(drop)
        }
        Mutation::InsertSsoAttempt(a) => exec(
            c,
            "INSERT INTO sso_attempts (id, state_lookup, code_lookup, user_code_hash, status, expires_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![a.id, a.state_lookup, a.code_lookup, a.user_code_hash, a.status.as_str(), a.expires_at.0, codec::sso_attempt_json(&a)?],
        )
        .map(drop),
        Mutation::UpdateSsoAttempt { attempt: a, expect } => {
            let n = exec(
                c,
                "UPDATE sso_attempts SET state_lookup = ?2, code_lookup = ?3, status = ?4, body = ?5 WHERE id = ?1 AND status = ?6",
                params![a.id, a.state_lookup, a.code_lookup, a.status.as_str(), codec::sso_attempt_json(&a)?, expect.as_str()],
            )?;
            require(n, codec::sso_attempt_done)
        }
        Mutation::PurgeSsoAttempts { before } => exec(c, "DELETE FROM sso_attempts WHERE expires_at < ?1", params![before.0]).map(drop),
        Mutation::InsertSsoRefresh(r) => exec(
            c,
            &format!("INSERT INTO sso_refresh ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", codec::SSO_REFRESH_COLS),
            params![r.session_id.as_str(), r.provider, r.subject, r.refresh_sealed, r.validated_at.0, r.checked_at.0],
        )
        .map(drop),
        Mutation::UpdateSsoRefresh(r) => exec(
            c,
            "UPDATE sso_refresh SET refresh_sealed = ?2, validated_at = ?3, checked_at = ?4 WHERE session_id = ?1",
            params![r.session_id.as_str(), r.refresh_sealed, r.validated_at.0, r.checked_at.0],
        )
        .map(drop),
        Mutation::PurgeSsoRefresh { at } => {
            exec(c, "DELETE FROM sso_refresh WHERE session_id IN (SELECT id FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= ?1)", params![at.0])
                .map(drop)
        }
        Mutation::RecordTokenUse { key, expires_at } => {
            let n = exec(c, "INSERT INTO token_uses (key, expires_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING", params![key, expires_at.0])?;
            require(n, codec::token_replayed)
        }
        Mutation::PurgeTokenUses { before } => exec(c, "DELETE FROM token_uses WHERE expires_at < ?1", params![before.0]).map(drop),
        Mutation::InsertRequest(q) => exec(
            c,
            "INSERT INTO role_requests (id, requester_id, role, status, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![q.id, q.requester.as_str(), q.role.as_str(), q.status.as_str(), q.created_at.0, codec::role_request_json(&q)?],
        )
        .map(drop),
        Mutation::UpdateRequest { request: q, expect, approvals } => {
            let n = exec(
                c,
                "UPDATE role_requests SET status = ?2, body = ?3 WHERE id = ?1 AND status = ?4 AND json_array_length(json_extract(body, '$.approvals')) = ?5",
                params![q.id, q.status.as_str(), codec::role_request_json(&q)?, expect.as_str(), approvals as i64],
            )?;
            require(n, codec::request_changed)
        }
        Mutation::InsertLease(l) => exec(
            c,
            &format!("INSERT INTO leases ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)", codec::LEASE_COLS),
            params![
                l.id.as_str(),
                l.backend,
                l.kind.as_str(),
                l.user_id.as_ref().map(|u| u.as_str()),
                l.subject,
                l.role.as_str(),
                l.session_id.as_ref().map(|s| s.as_str()),
                l.grant_id,
                l.external_id,
                l.issued_at.0,
                l.expires_at.0,
                l.revoked_at.map(|t| t.0),
                l.revoke_reason,
                l.ended_at.map(|t| t.0),
                l.retry_at.map(|t| t.0)
            ],
        )
        .map(drop),
        Mutation::RequireLiveSession { session, at } => {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2")
                .and_then(|mut s| s.query_row(params![session.as_str(), at.0], |r| r.get(0)))
                .map_err(store)?;
            codec::require(n as u64, codec::session_revoked)
        }
        Mutation::RequireSessionRoom { user, at, max } => {
            let live = count(c, "SELECT COUNT(*) FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2", params![user.as_str(), at.0])?;
            codec::room(live, max, codec::too_many_sessions)
        }
        Mutation::RequireLeaseRoom { user, at, max } => {
            let live = count(
                c,
                "SELECT COUNT(*) FROM leases WHERE user_id = ?1 AND revoked_at IS NULL AND ended_at IS NULL AND expires_at > ?2",
                params![user.as_str(), at.0],
            )?;
            codec::room(live, max, codec::too_many_leases)
        }
        Mutation::RequireApprovedGrant { id } => {
            let n: i64 = c
                .prepare_cached("SELECT COUNT(*) FROM role_requests WHERE id = ?1 AND status = 'approved'")
                .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)))
                .map_err(store)?;
            codec::require(n as u64, codec::grant_revoked)
        }
        Mutation::DeferLease { id, until } => exec(c, "UPDATE leases SET retry_at = ?2 WHERE id = ?1", params![id.as_str(), until.0]).map(drop),
        Mutation::RevokeLeases { scope, at, reason, recorded_by } => {
            let (col, value) = codec::lease_scope(&scope);
            let sql = format!(
                "UPDATE leases SET revoked_at = ?2, revoke_reason = ?3, retry_at = NULL WHERE {col} = ?1 AND revoked_at IS NULL AND ended_at IS NULL \
                 RETURNING {}",
                codec::LEASE_COLS
            );
            let mut stmt = c.prepare_cached(&sql).map_err(store)?;
            let mut rows = stmt.query(params![value, at.0, reason]).map_err(store)?;
            while let Some(row) = rows.next().map_err(store)? {
                let lease = codec::lease(row)?;
                if let Some(actor) = &recorded_by {
                    audit.push(lease.revoked_record(actor, &reason, at));
                }
            }
            Ok(())
        }
        Mutation::VoidRequestsOf { user, by, actor, at, reason } => {
            let mut stmt = c.prepare_cached("SELECT body FROM role_requests WHERE requester_id = ?1 AND status IN ('pending', 'approved')").map_err(store)?;
            let found = stmt.query_map([user.as_str()], |r| r.get::<_, String>(0)).map_err(store)?.collect::<Result<Vec<_>, _>>().map_err(store)?;
            for body in found {
                let q = codec::role_request_from_json(&body)?;
                if let Some((next, record)) = q.voided(&by, &actor, &reason, at) {
                    exec(
                        c,
                        "UPDATE role_requests SET status = ?2, body = ?3 WHERE id = ?1",
                        params![next.id, next.status.as_str(), codec::role_request_json(&next)?],
                    )?;
                    audit.push(record);
                }
            }
            Ok(())
        }
        Mutation::ExpireUserCodes { user, at } => {
            exec(c, "UPDATE codes SET expires_at = ?2 WHERE user_id = ?1 AND used_at IS NULL AND expires_at > ?2", params![user.as_str(), at.0]).map(drop)
        }
        Mutation::DenySsoAttemptsOf { user, reason } => {
            let mut stmt = c.prepare_cached("SELECT body FROM sso_attempts WHERE status IN ('step_up', 'approved')").map_err(store)?;
            let found = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(store)?.collect::<Result<Vec<_>, _>>().map_err(store)?;
            for body in found {
                if let Some(a) = codec::sso_attempt_from_json(&body)?.denied_for(&user, &reason) {
                    exec(c, "UPDATE sso_attempts SET status = ?2, body = ?3 WHERE id = ?1", params![a.id, a.status.as_str(), codec::sso_attempt_json(&a)?])?;
                }
            }
            Ok(())
        }
        Mutation::EndLease { id, at } => {
            let n = exec(c, "UPDATE leases SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL", params![id.as_str(), at.0])?;
            require(n, codec::lease_ended)
        }
        Mutation::ClaimLock { name, holder, until, now } => {
            let n = exec(
                c,
                "INSERT INTO locks (name, holder, held_until) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE \
                 SET holder = excluded.holder, held_until = excluded.held_until WHERE locks.holder = excluded.holder OR locks.held_until <= ?4",
                params![name, holder, until.0, now.0],
            )?;
            require(n, codec::lock_held)
        }
        Mutation::InsertSshCa(k) => exec(
            c,
            "INSERT INTO ssh_ca (id, kid, public, sealed_private, created_at) VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
            params![k.kid, k.public, k.sealed_private, k.created_at.0],
        )
        .map(drop),
        Mutation::InsertWorkload(w) => {
            let n = exec(
                c,
                "INSERT INTO workloads (id, name, disabled, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                params![w.id.as_str(), w.name.as_str(), w.disabled, w.created_at.0, codec::workload_body(&w)?],
            )?;
            require(n, || codec::workload_exists(&w.name))
        }
        Mutation::SetWorkloadDisabled { workload, disabled } => {
            exec(c, "UPDATE workloads SET disabled = ?2 WHERE id = ?1", params![workload.as_str(), disabled]).map(drop)
        }
        Mutation::UpdateWorkload(w) => exec(c, "UPDATE workloads SET body = ?2 WHERE id = ?1", params![w.id.as_str(), codec::workload_body(&w)?]).map(drop),
        Mutation::RequireEnabledWorkload { workload } => {
            let n = count(c, "SELECT COUNT(*) FROM workloads WHERE id = ?1 AND disabled = 0", [workload.as_str()])?;
            require(n as u64, codec::workload_disabled)
        }
        Mutation::InsertJoinToken(t) => exec(
            c,
            &format!("INSERT INTO join_tokens ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", codec::JOIN_TOKEN_COLS),
            params![t.lookup, t.secret_hash, t.workload_id.as_str(), t.expires_at.0, t.used_at.map(|t| t.0), t.created_by.as_ref().map(|u| u.as_str())],
        )
        .map(drop),
        Mutation::ConsumeJoinToken { lookup, at } => {
            let n = exec(c, "UPDATE join_tokens SET used_at = ?2 WHERE lookup = ?1 AND used_at IS NULL AND expires_at > ?2", params![lookup, at.0])?;
            require(n, codec::join_token_used)
        }
        Mutation::ExpireJoinTokensOf { user, at } => {
            exec(c, "UPDATE join_tokens SET expires_at = ?2 WHERE created_by = ?1 AND used_at IS NULL AND expires_at > ?2", params![user.as_str(), at.0])
                .map(drop)
        }
        Mutation::ExpireJoinTokens { workload, at } => {
            exec(c, "UPDATE join_tokens SET expires_at = ?2 WHERE workload_id = ?1 AND used_at IS NULL AND expires_at > ?2", params![workload.as_str(), at.0])
                .map(drop)
        }
        Mutation::InsertWorkloadKey(k) => {
            let n = exec(
                c,
                "INSERT INTO workload_keys (kid, workload_id, public, enrolled_by, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (kid) DO NOTHING",
                params![k.kid, k.workload_id.as_str(), k.public.to_vec(), k.enrolled_by, k.created_at.0, k.revoked_at.map(|t| t.0)],
            )?;
            require(n, codec::key_exists)
        }
        Mutation::RevokeWorkloadKeys { workload, at } => {
            exec(c, "UPDATE workload_keys SET revoked_at = ?2 WHERE workload_id = ?1 AND revoked_at IS NULL", params![workload.as_str(), at.0]).map(drop)
        }
        Mutation::RequireLiveWorkloadKey { kid } => {
            let n = count(c, "SELECT COUNT(*) FROM workload_keys WHERE kid = ?1 AND revoked_at IS NULL", [kid.as_str()])?;
            require(n as u64, codec::key_revoked)
        }
        Mutation::RequireWorkloadKeyRoom { workload, max } => {
            let live = count(c, "SELECT COUNT(*) FROM workload_keys WHERE workload_id = ?1 AND revoked_at IS NULL", [workload.as_str()])?;
            codec::room(live, max, codec::too_many_keys)
        }
        Mutation::InsertScimToken(t) => {
            let n = exec(
                c,
                &format!("INSERT INTO scim_tokens ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING", codec::SCIM_TOKEN_COLS),
                params![t.name.as_str(), t.lookup, t.secret_hash, t.created_by.as_str(), t.created_at.0, t.revoked_at.map(|t| t.0)],
            )?;
            require(n, || codec::scim_token_exists(&t.name))
        }
        Mutation::RevokeScimToken { name, at } => {
            let n = exec(c, "UPDATE scim_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL", params![name.as_str(), at.0])?;
            require(n, || codec::unknown_scim_token(&name))
        }
        Mutation::RevokeScimTokensOf { user, at } => {
            exec(c, "UPDATE scim_tokens SET revoked_at = ?2 WHERE created_by = ?1 AND revoked_at IS NULL", params![user.as_str(), at.0]).map(drop)
        }
        Mutation::SetUserExpiry { user, expires_at, sponsor } => exec(
            c,
            "UPDATE users SET expires_at = ?2, sponsor = ?3, expiry_alerted_at = NULL WHERE id = ?1",
            params![user.as_str(), expires_at.map(|t| t.0), sponsor.as_ref().map(stint_core::ids::UserId::as_str)],
        )
        .map(drop),
        Mutation::MarkExpiryAlerted { user, at } => {
            let n = exec(c, "UPDATE users SET expiry_alerted_at = ?2 WHERE id = ?1 AND expiry_alerted_at IS NULL", params![user.as_str(), at.0])?;
            require(n, codec::already_alerted)
        }
        Mutation::PutScimProfile { user, profile, at } => exec(
            c,
            "INSERT INTO scim_profiles (user_id, external_id, email, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (user_id) DO UPDATE SET external_id = excluded.external_id, email = excluded.email, updated_at = excluded.updated_at",
            params![user.as_str(), profile.external_id, profile.email, at.0],
        )
        .map(drop),
        Mutation::InsertScimGroup(g) => {
            let n = exec(
                c,
                &format!("INSERT INTO scim_groups ({}) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING", codec::SCIM_GROUP_COLS),
                params![g.id.as_str(), g.display_name, g.external_id, codec::members_json(&g.members)?, g.created_at.0],
            )?;
            require(n, || codec::group_exists(&g.display_name))
        }
        Mutation::UpdateScimGroup(g) => {
            let n = exec(
                c,
                "UPDATE scim_groups SET display_name = ?2, external_id = ?3, members = ?4 WHERE id = ?1",
                params![g.id.as_str(), g.display_name, g.external_id, codec::members_json(&g.members)?],
            )?;
            require(n, || codec::unknown_group(&g.id))
        }
        Mutation::DeleteScimGroup(id) => {
            let n = exec(c, "DELETE FROM scim_groups WHERE id = ?1", params![id.as_str()])?;
            require(n, || codec::unknown_group(&id))
        }
        Mutation::InsertInventorySnapshot(i) => {
            let s = &i.snapshot;
            let n = exec(
                c,
                &format!("INSERT INTO inventory_snapshots ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING", codec::INVENTORY_COLS),
                params![s.source.as_str(), s.account, s.generated_at.0, i.imported_at.0, i.imported_by, codec::inventory_users(s)?],
            )?;
            require(n, || codec::inventory_exists(s))
        }
        Mutation::RequireHolderLeaseRoom { holder, at, max } => {
            let live = count(
                c,
                "SELECT COUNT(*) FROM leases WHERE subject = ?1 AND revoked_at IS NULL AND ended_at IS NULL AND expires_at > ?2",
                params![holder, at.0],
            )?;
            codec::room(live, max, codec::too_many_holder_leases)
        }
    }
}

/// `ON CONFLICT (name) DO NOTHING` turns a taken name into "0 rows" instead of a constraint
/// error, so no driver error text has to be parsed; an id collision still fails loudly.
fn insert_user(c: &Connection, u: &User) -> Result<()> {
    let n = exec(
        c,
        "INSERT INTO users (id, name, group_names, disabled, password_hash, totp_sealed, totp_last_step, created_at, expires_at, sponsor) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (name) DO NOTHING",
        params![
            u.id.as_str(),
            u.name.as_str(),
            codec::groups_json(&u.groups)?,
            u.disabled,
            u.password_hash,
            u.totp_sealed,
            u.totp_last_step,
            u.created_at.0,
            u.expires_at.map(|t| t.0),
            u.sponsor.as_ref().map(stint_core::ids::UserId::as_str)
        ],
    )?;
    require(n, || codec::user_exists(&u.name))
}

fn append(c: &Connection, drafts: Vec<Draft>, head: &Head) -> Result<Head> {
    let (mut seq, mut hash) = head.clone();
    if drafts.is_empty() {
        return Ok((seq, hash));
    }
    let mut stmt = c
        .prepare_cached(
            "INSERT INTO audit (seq, at, event, outcome, actor, subject, reason, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(store)?;
    for d in drafts {
        let r = chain(seq + 1, &hash, d);
        let details = codec::details_json(&r.details)?;
        stmt.execute(params![codec::to_db_int(r.seq)?, r.at.0, r.event, r.outcome.as_str(), r.actor, r.subject, r.reason, details, r.prev_hash, r.hash])
            .map_err(store)?;
        (seq, hash) = (r.seq, r.hash);
    }
    Ok((seq, hash))
}

pub(super) fn read_head(c: &Connection) -> Result<Head> {
    let row = c
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))))
        .optional();
    match row.map_err(store)? {
        Some((seq, hash)) => Ok((codec::to_seq(seq)?, hash)),
        None => Err(crate::error::corrupt("audit_head")),
    }
}

pub(super) fn write_head(c: &Connection, head: &Head) -> Result<()> {
    exec(c, "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1", params![codec::to_db_int(head.0)?, head.1]).map(drop)
}
