//! One change as one PostgreSQL transaction.

use stint_core::audit::{chain, Draft};
use stint_core::error::Result;
use stint_core::model::User;
use stint_core::store::{Change, Mutation};

use super::pool::{Db, Slot};
use crate::codec::{self, require};
use crate::error::store;

/// `schema` names the deployment whose replicas hear of what the change makes stale.
pub(super) async fn apply(slot: &mut Slot, change: Change, schema: &str) -> Result<u64> {
    let stale = change.stales();
    let Slot { client, stmts } = slot;
    // Dropping the transaction on an early return rolls it back.
    let tx = client.transaction().await.map_err(store)?;
    let mut db = Db { client: tx.client(), stmts };
    // Some mutations add records of what they changed, after the change's own.
    let mut audit = change.audit;
    for m in change.mutations {
        mutate(&mut db, m, &mut audit).await?;
    }
    let seq = append(&mut db, audit).await?;
    // Delivered by PostgreSQL when (and only if) the transaction commits.
    super::notify::announce(&mut db, schema, &stale).await?;
    tx.commit().await.map_err(store)?;
    Ok(seq)
}

async fn mutate(db: &mut Db<'_>, m: Mutation, audit: &mut Vec<Draft>) -> Result<()> {
    match m {
        Mutation::InsertUser(u) => insert_user(db, &u).await,
        Mutation::SetUserDisabled { user, disabled } => {
            db.execute("UPDATE users SET disabled = $2 WHERE id = $1", &[&user.as_str(), &disabled]).await.map(drop)
        }
        Mutation::SetCredentials { user, password_hash, totp_sealed } => {
            db.execute("UPDATE users SET password_hash = $2, totp_sealed = $3 WHERE id = $1", &[&user.as_str(), &password_hash, &totp_sealed]).await.map(drop)
        }
        Mutation::AdvanceTotp { user, step } => {
            let n = db.execute("UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2", &[&user.as_str(), &step]).await?;
            require(n, codec::totp_replayed)
        }
        Mutation::InsertSession(s) => db
            .execute(
                "INSERT INTO sessions (id, lookup, secret_hash, user_id, created_at, expires_at, revoked_at, mfa) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&s.id.as_str(), &s.lookup, &s.secret_hash, &s.user_id.as_str(), &s.created_at.0, &s.expires_at.0, &s.revoked_at.map(|t| t.0), &s.mfa],
            )
            .await
            .map(drop),
        // A revoked session's refresh token goes with it.
        Mutation::RevokeSession { session, at } => {
            db.execute("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[&session.as_str(), &at.0]).await?;
            db.execute("DELETE FROM sso_refresh WHERE session_id = $1", &[&session.as_str()]).await.map(drop)
        }
        Mutation::RevokeUserSessions { user, at } => {
            db.execute("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", &[&user.as_str(), &at.0]).await?;
            db.execute("DELETE FROM sso_refresh WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)", &[&user.as_str()]).await.map(drop)
        }
        Mutation::InsertCode(k) => db
            .execute(
                "INSERT INTO codes (lookup, secret_hash, purpose, user_id, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&k.lookup, &k.secret_hash, &k.purpose.as_str(), &k.user_id.as_ref().map(|u| u.as_str()), &k.expires_at.0, &k.used_at.map(|t| t.0)],
            )
            .await
            .map(drop),
        Mutation::ConsumeCode { lookup, at } => {
            let n = db.execute("UPDATE codes SET used_at = $2 WHERE lookup = $1 AND used_at IS NULL AND expires_at > $2", &[&lookup, &at.0]).await?;
            require(n, codec::code_used)
        }
        Mutation::ExpireBootstrapCodes { at } => {
            db.execute("UPDATE codes SET expires_at = $1 WHERE purpose = 'bootstrap' AND used_at IS NULL AND expires_at > $1", &[&at.0]).await.map(drop)
        }
        Mutation::InsertKey(k) => db
            .execute(
                "INSERT INTO signing_keys (kid, public, sealed_private, created_at, retired_at, verify_until) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&k.kid, &k.public, &k.sealed_private, &k.created_at.0, &k.retired_at.map(|t| t.0), &k.verify_until.map(|t| t.0)],
            )
            .await
            .map(drop),
        Mutation::RetireKeysExcept { keep, at, verify_until } => db
            .execute("UPDATE signing_keys SET retired_at = $2, verify_until = $3 WHERE kid <> $1 AND retired_at IS NULL", &[&keep, &at.0, &verify_until.0])
            .await
            .map(drop),
        // FOR SHARE: a concurrent disable waits for this transaction, or this one sees it.
        Mutation::RequireEnabledUser { user } => {
            let rows = db.query("SELECT 1 FROM users WHERE id = $1 AND NOT disabled FOR SHARE", &[&user.as_str()]).await?;
            require(rows.len() as u64, codec::user_disabled)
        }
        Mutation::RequireNoEnrolledUsers => {
            let rows = db.query("SELECT 1 FROM users WHERE password_hash IS NOT NULL LIMIT 1", &[]).await?;
            require(u64::from(rows.is_empty()), codec::already_bootstrapped)
        }
        Mutation::SetUserGroups { user, groups } => {
            db.execute("UPDATE users SET group_names = $2 WHERE id = $1", &[&user.as_str(), &codec::groups_json(&groups)?]).await.map(drop)
        }
        Mutation::LinkIdentity(i) => {
            let n = db
                .execute(
                    "INSERT INTO identities (issuer, subject, user_id, email, created_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (issuer, subject) DO NOTHING",
                    &[&i.issuer, &i.subject, &i.user_id.as_str(), &i.email, &i.created_at.0, &i.last_login_at.0],
                )
                .await?;
            require(n, codec::identity_exists)
        }
        Mutation::TouchIdentity { issuer, subject, email, at } => db
            .execute("UPDATE identities SET email = $3, last_login_at = $4 WHERE issuer = $1 AND subject = $2", &[&issuer, &subject, &email, &at.0])
            .await
            .map(drop),
        Mutation::InsertSsoAttempt(a) => {
            let body = codec::sso_attempt_json(&a)?;
            db.execute(
                "INSERT INTO sso_attempts (id, state_lookup, code_lookup, user_code_hash, status, expires_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&a.id, &a.state_lookup, &a.code_lookup, &a.user_code_hash, &a.status.as_str(), &a.expires_at.0, &body],
            )
            .await
            .map(drop)
        }
        Mutation::UpdateSsoAttempt { attempt: a, expect } => {
            let body = codec::sso_attempt_json(&a)?;
            let n = db
                .execute(
                    "UPDATE sso_attempts SET state_lookup = $2, code_lookup = $3, status = $4, body = $5 WHERE id = $1 AND status = $6",
                    &[&a.id, &a.state_lookup, &a.code_lookup, &a.status.as_str(), &body, &expect.as_str()],
                )
                .await?;
            require(n, codec::sso_attempt_done)
        }
        Mutation::PurgeSsoAttempts { before } => db.execute("DELETE FROM sso_attempts WHERE expires_at < $1", &[&before.0]).await.map(drop),
        Mutation::InsertSsoRefresh(r) => db
            .execute(
                &format!("INSERT INTO sso_refresh ({}) VALUES ($1, $2, $3, $4, $5, $6)", codec::SSO_REFRESH_COLS),
                &[&r.session_id.as_str(), &r.provider, &r.subject, &r.refresh_sealed, &r.validated_at.0, &r.checked_at.0],
            )
            .await
            .map(drop),
        Mutation::UpdateSsoRefresh(r) => db
            .execute(
                "UPDATE sso_refresh SET refresh_sealed = $2, validated_at = $3, checked_at = $4 WHERE session_id = $1",
                &[&r.session_id.as_str(), &r.refresh_sealed, &r.validated_at.0, &r.checked_at.0],
            )
            .await
            .map(drop),
        Mutation::PurgeSsoRefresh { at } => db
            .execute("DELETE FROM sso_refresh WHERE session_id IN (SELECT id FROM sessions WHERE revoked_at IS NOT NULL OR expires_at <= $1)", &[&at.0])
            .await
            .map(drop),
        Mutation::RecordTokenUse { key, expires_at } => {
            let n = db.execute("INSERT INTO token_uses (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&key, &expires_at.0]).await?;
            require(n, codec::token_replayed)
        }
        Mutation::PurgeTokenUses { before } => db.execute("DELETE FROM token_uses WHERE expires_at < $1", &[&before.0]).await.map(drop),
        Mutation::InsertRequest(q) => {
            let body = codec::role_request_json(&q)?;
            db.execute(
                "INSERT INTO role_requests (id, requester_id, role, status, created_at, body) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&q.id, &q.requester.as_str(), &q.role.as_str(), &q.status.as_str(), &q.created_at.0, &body],
            )
            .await
            .map(drop)
        }
        Mutation::UpdateRequest { request: q, expect, approvals } => {
            let body = codec::role_request_json(&q)?;
            let n = db
                .execute(
                    "UPDATE role_requests SET status = $2, body = $3 WHERE id = $1 AND status = $4 AND json_array_length((body::json)->'approvals') = $5",
                    &[&q.id, &q.status.as_str(), &body, &expect.as_str(), &(approvals as i32)],
                )
                .await?;
            require(n, codec::request_changed)
        }
        Mutation::InsertLease(l) => db
            .execute(
                &format!("INSERT INTO leases ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)", codec::LEASE_COLS),
                &[
                    &l.id.as_str(),
                    &l.backend,
                    &l.kind.as_str(),
                    &l.user_id.as_ref().map(|u| u.as_str()),
                    &l.subject,
                    &l.role.as_str(),
                    &l.session_id.as_ref().map(|s| s.as_str()),
                    &l.grant_id,
                    &l.external_id,
                    &l.issued_at.0,
                    &l.expires_at.0,
                    &l.revoked_at.map(|t| t.0),
                    &l.revoke_reason,
                    &l.ended_at.map(|t| t.0),
                    &l.retry_at.map(|t| t.0),
                ],
            )
            .await
            .map(drop),
        // FOR SHARE: a revocation updating the row waits for this transaction, or this one
        // sees the revocation.
        Mutation::RequireLiveSession { session, at } => {
            let rows =
                db.query("SELECT 1 FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 FOR SHARE", &[&session.as_str(), &at.0]).await?;
            require(rows.len() as u64, codec::session_revoked)
        }
        // A per-person lock held to the end of the transaction: two concurrent logins of one
        // person count one after the other, so they cannot both take the last place. Advisory,
        // so it cannot deadlock with the row locks taken around it.
        Mutation::RequireSessionRoom { user, at, max } => {
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&format!("stint.sessions.{}", user.as_str())]).await?;
            let row =
                db.query_one("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2", &[&user.as_str(), &at.0]).await?;
            codec::room(row.get(0), max, codec::too_many_sessions)
        }
        Mutation::RequireLeaseRoom { user, at, max } => {
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&format!("stint.leases.{}", user.as_str())]).await?;
            let row = db
                .query_one(
                    "SELECT COUNT(*) FROM leases WHERE user_id = $1 AND revoked_at IS NULL AND ended_at IS NULL AND expires_at > $2",
                    &[&user.as_str(), &at.0],
                )
                .await?;
            codec::room(row.get(0), max, codec::too_many_leases)
        }
        Mutation::InsertWorkload(w) => {
            let n = db
                .execute(
                    "INSERT INTO workloads (id, name, disabled, created_at, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                    &[&w.id.as_str(), &w.name.as_str(), &w.disabled, &w.created_at.0, &codec::workload_body(&w)?],
                )
                .await?;
            require(n, || codec::workload_exists(&w.name))
        }
        Mutation::SetWorkloadDisabled { workload, disabled } => {
            db.execute("UPDATE workloads SET disabled = $2 WHERE id = $1", &[&workload.as_str(), &disabled]).await.map(drop)
        }
        Mutation::UpdateWorkload(w) => {
            db.execute("UPDATE workloads SET body = $2 WHERE id = $1", &[&w.id.as_str(), &codec::workload_body(&w)?]).await.map(drop)
        }
        // FOR SHARE: a concurrent disable waits for this transaction, or this one sees it.
        Mutation::RequireEnabledWorkload { workload } => {
            let rows = db.query("SELECT 1 FROM workloads WHERE id = $1 AND NOT disabled FOR SHARE", &[&workload.as_str()]).await?;
            require(rows.len() as u64, codec::workload_disabled)
        }
        Mutation::InsertJoinToken(t) => db
            .execute(
                &format!("INSERT INTO join_tokens ({}) VALUES ($1, $2, $3, $4, $5, $6)", codec::JOIN_TOKEN_COLS),
                &[&t.lookup, &t.secret_hash, &t.workload_id.as_str(), &t.expires_at.0, &t.used_at.map(|t| t.0), &t.created_by.as_ref().map(|u| u.as_str())],
            )
            .await
            .map(drop),
        Mutation::ConsumeJoinToken { lookup, at } => {
            let n = db.execute("UPDATE join_tokens SET used_at = $2 WHERE lookup = $1 AND used_at IS NULL AND expires_at > $2", &[&lookup, &at.0]).await?;
            require(n, codec::join_token_used)
        }
        Mutation::ExpireJoinTokensOf { user, at } => db
            .execute("UPDATE join_tokens SET expires_at = $2 WHERE created_by = $1 AND used_at IS NULL AND expires_at > $2", &[&user.as_str(), &at.0])
            .await
            .map(drop),
        Mutation::ExpireJoinTokens { workload, at } => db
            .execute("UPDATE join_tokens SET expires_at = $2 WHERE workload_id = $1 AND used_at IS NULL AND expires_at > $2", &[&workload.as_str(), &at.0])
            .await
            .map(drop),
        Mutation::InsertWorkloadKey(k) => {
            let n = db
                .execute(
                    "INSERT INTO workload_keys (kid, workload_id, public, enrolled_by, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (kid) DO NOTHING",
                    &[&k.kid, &k.workload_id.as_str(), &k.public.to_vec(), &k.enrolled_by, &k.created_at.0, &k.revoked_at.map(|t| t.0)],
                )
                .await?;
            require(n, codec::key_exists)
        }
        Mutation::RevokeWorkloadKeys { workload, at } => {
            db.execute("UPDATE workload_keys SET revoked_at = $2 WHERE workload_id = $1 AND revoked_at IS NULL", &[&workload.as_str(), &at.0]).await.map(drop)
        }
        Mutation::RequireLiveWorkloadKey { kid } => {
            let rows = db.query("SELECT 1 FROM workload_keys WHERE kid = $1 AND revoked_at IS NULL FOR SHARE", &[&kid]).await?;
            require(rows.len() as u64, codec::key_revoked)
        }
        // Counted under a per-workload lock, as a person's sessions are.
        Mutation::RequireWorkloadKeyRoom { workload, max } => {
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&format!("stint.keys.{}", workload.as_str())]).await?;
            let row = db.query_one("SELECT COUNT(*) FROM workload_keys WHERE workload_id = $1 AND revoked_at IS NULL", &[&workload.as_str()]).await?;
            codec::room(row.get(0), max, codec::too_many_keys)
        }
        Mutation::InsertScimToken(t) => {
            let n = db
                .execute(
                    &format!("INSERT INTO scim_tokens ({}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", codec::SCIM_TOKEN_COLS),
                    &[&t.name.as_str(), &t.lookup, &t.secret_hash, &t.created_by.as_str(), &t.created_at.0, &t.revoked_at.map(|t| t.0)],
                )
                .await?;
            require(n, || codec::scim_token_exists(&t.name))
        }
        Mutation::RevokeScimToken { name, at } => {
            let n = db.execute("UPDATE scim_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL", &[&name.as_str(), &at.0]).await?;
            require(n, || codec::unknown_scim_token(&name))
        }
        Mutation::RevokeScimTokensOf { user, at } => {
            db.execute("UPDATE scim_tokens SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL", &[&user.as_str(), &at.0]).await.map(drop)
        }
        Mutation::SetUserExpiry { user, expires_at, sponsor } => db
            .execute(
                "UPDATE users SET expires_at = $2, sponsor = $3, expiry_alerted_at = NULL WHERE id = $1",
                &[&user.as_str(), &expires_at.map(|t| t.0), &sponsor.as_ref().map(stint_core::ids::UserId::as_str)],
            )
            .await
            .map(drop),
        Mutation::MarkExpiryAlerted { user, at } => {
            let n = db.execute("UPDATE users SET expiry_alerted_at = $2 WHERE id = $1 AND expiry_alerted_at IS NULL", &[&user.as_str(), &at.0]).await?;
            require(n, codec::already_alerted)
        }
        Mutation::PutScimProfile { user, profile, at } => db
            .execute(
                "INSERT INTO scim_profiles (user_id, external_id, email, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO UPDATE SET external_id = excluded.external_id, email = excluded.email, updated_at = excluded.updated_at",
                &[&user.as_str(), &profile.external_id, &profile.email, &at.0],
            )
            .await
            .map(drop),
        Mutation::InsertScimGroup(g) => {
            let n = db
                .execute(
                    &format!("INSERT INTO scim_groups ({}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", codec::SCIM_GROUP_COLS),
                    &[&g.id.as_str(), &g.display_name, &g.external_id, &codec::members_json(&g.members)?, &g.created_at.0],
                )
                .await?;
            require(n, || codec::group_exists(&g.display_name))
        }
        Mutation::UpdateScimGroup(g) => {
            let n = db
                .execute(
                    "UPDATE scim_groups SET display_name = $2, external_id = $3, members = $4 WHERE id = $1",
                    &[&g.id.as_str(), &g.display_name, &g.external_id, &codec::members_json(&g.members)?],
                )
                .await?;
            require(n, || codec::unknown_group(&g.id))
        }
        Mutation::DeleteScimGroup(id) => {
            let n = db.execute("DELETE FROM scim_groups WHERE id = $1", &[&id.as_str()]).await?;
            require(n, || codec::unknown_group(&id))
        }
        Mutation::InsertInventorySnapshot(i) => {
            let s = &i.snapshot;
            let n = db
                .execute(
                    &format!("INSERT INTO inventory_snapshots ({}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING", codec::INVENTORY_COLS),
                    &[&s.source.as_str(), &s.account, &s.generated_at.0, &i.imported_at.0, &i.imported_by, &codec::inventory_users(s)?],
                )
                .await?;
            require(n, || codec::inventory_exists(s))
        }
        Mutation::RequireHolderLeaseRoom { holder, at, max } => {
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&format!("stint.leases.{holder}")]).await?;
            let row = db
                .query_one("SELECT COUNT(*) FROM leases WHERE subject = $1 AND revoked_at IS NULL AND ended_at IS NULL AND expires_at > $2", &[&holder, &at.0])
                .await?;
            codec::room(row.get(0), max, codec::too_many_holder_leases)
        }
        Mutation::RequireApprovedGrant { id } => {
            let rows = db.query("SELECT 1 FROM role_requests WHERE id = $1 AND status = 'approved' FOR SHARE", &[&id]).await?;
            require(rows.len() as u64, codec::grant_revoked)
        }
        Mutation::DeferLease { id, until } => db.execute("UPDATE leases SET retry_at = $2 WHERE id = $1", &[&id.as_str(), &until.0]).await.map(drop),
        Mutation::RevokeLeases { scope, at, reason, recorded_by } => {
            let (col, value) = codec::lease_scope(&scope);
            // Under READ COMMITTED a row a concurrent revocation updated first is re-checked
            // after it commits and no longer matches, so each lease is recorded once.
            let sql = format!(
                "UPDATE leases SET revoked_at = $2, revoke_reason = $3, retry_at = NULL WHERE {col} = $1 AND revoked_at IS NULL AND ended_at IS NULL \
                 RETURNING {}",
                codec::LEASE_COLS
            );
            for row in db.query(&sql, &[&value, &at.0, &reason]).await? {
                let lease = codec::lease(&row)?;
                if let Some(actor) = &recorded_by {
                    audit.push(lease.revoked_record(actor, &reason, at));
                }
            }
            Ok(())
        }
        Mutation::VoidRequestsOf { user, by, actor, at, reason } => {
            // FOR UPDATE: an approval committing meanwhile is seen (the row is re-read), not lost.
            let rows =
                db.query("SELECT body FROM role_requests WHERE requester_id = $1 AND status IN ('pending', 'approved') FOR UPDATE", &[&user.as_str()]).await?;
            for row in rows {
                let q = codec::role_request(&row)?;
                if let Some((next, record)) = q.voided(&by, &actor, &reason, at) {
                    let body = codec::role_request_json(&next)?;
                    db.execute("UPDATE role_requests SET status = $2, body = $3 WHERE id = $1", &[&next.id, &next.status.as_str(), &body]).await?;
                    audit.push(record);
                }
            }
            Ok(())
        }
        Mutation::ExpireUserCodes { user, at } => {
            db.execute("UPDATE codes SET expires_at = $2 WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2", &[&user.as_str(), &at.0]).await.map(drop)
        }
        Mutation::DenySsoAttemptsOf { user, reason } => {
            let rows = db.query("SELECT body FROM sso_attempts WHERE status IN ('step_up', 'approved') FOR UPDATE", &[]).await?;
            for row in rows {
                if let Some(a) = codec::sso_attempt(&row)?.denied_for(&user, &reason) {
                    let body = codec::sso_attempt_json(&a)?;
                    db.execute("UPDATE sso_attempts SET status = $2, body = $3 WHERE id = $1", &[&a.id, &a.status.as_str(), &body]).await?;
                }
            }
            Ok(())
        }
        Mutation::EndLease { id, at } => {
            let n = db.execute("UPDATE leases SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL", &[&id.as_str(), &at.0]).await?;
            require(n, codec::lease_ended)
        }
        Mutation::ClaimLock { name, holder, until, now } => {
            let n = db
                .execute(
                    "INSERT INTO locks (name, holder, held_until) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE \
                     SET holder = excluded.holder, held_until = excluded.held_until WHERE locks.holder = excluded.holder OR locks.held_until <= $4",
                    &[&name, &holder, &until.0, &now.0],
                )
                .await?;
            require(n, codec::lock_held)
        }
        Mutation::InsertSshCa(k) => db
            .execute(
                "INSERT INTO ssh_ca (id, kid, public, sealed_private, created_at) VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                &[&k.kid, &k.public, &k.sealed_private, &k.created_at.0],
            )
            .await
            .map(drop),
    }
}

/// `ON CONFLICT (name) DO NOTHING` turns a taken name into "0 rows" instead of an aborted
/// transaction and a constraint name to match; an id collision still fails loudly.
async fn insert_user(db: &mut Db<'_>, u: &User) -> Result<()> {
    let groups = codec::groups_json(&u.groups)?;
    let n = db
        .execute(
            "INSERT INTO users (id, name, group_names, disabled, password_hash, totp_sealed, totp_last_step, created_at, expires_at, sponsor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (name) DO NOTHING",
            &[
                &u.id.as_str(),
                &u.name.as_str(),
                &groups,
                &u.disabled,
                &u.password_hash,
                &u.totp_sealed,
                &u.totp_last_step,
                &u.created_at.0,
                &u.expires_at.map(|t| t.0),
                &u.sponsor.as_ref().map(stint_core::ids::UserId::as_str),
            ],
        )
        .await?;
    require(n, || codec::user_exists(&u.name))
}

/// Appends after the head row, locked `FOR UPDATE` so that concurrent transactions (on any
/// replica) chain one after another. It is locked last, after the mutations, so the
/// serialized part of the transaction is as short as it can be.
async fn append(db: &mut Db<'_>, drafts: Vec<Draft>) -> Result<u64> {
    if drafts.is_empty() {
        let row = db.query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[]).await?;
        return Ok(codec::head(&row)?.0);
    }
    let row = db.query_one("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", &[]).await?;
    let (mut seq, mut hash) = codec::head(&row)?;
    for d in drafts {
        let r = chain(seq + 1, &hash, d);
        let details = codec::details_json(&r.details)?;
        db.execute(
            "INSERT INTO audit (seq, at, event, outcome, actor, subject, reason, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[&codec::to_db_int(r.seq)?, &r.at.0, &r.event, &r.outcome.as_str(), &r.actor, &r.subject, &r.reason, &details, &r.prev_hash, &r.hash],
        )
        .await?;
        (seq, hash) = (r.seq, r.hash);
    }
    db.execute("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", &[&codec::to_db_int(seq)?, &hash]).await?;
    Ok(seq)
}
