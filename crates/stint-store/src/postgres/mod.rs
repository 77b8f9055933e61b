//! The PostgreSQL adapter, for several stint replicas sharing one database.

mod apply;
mod notify;
mod pool;

use stint_core::audit::Record;
use stint_core::crypto::StoredKey;
use stint_core::error::{Error, Result};
use stint_core::ids::{LeaseId, SessionId, UserId, Username, WorkloadId, WorkloadName};
use stint_core::inventory::Imported;
use stint_core::model::{BackendKind, Identity, Lease, LeaseScope, OneTimeCode, RoleRequest, Session, SsoAttempt, SsoRefresh, User};
use stint_core::scim::{ScimGroup, ScimProfile, ScimToken};
use stint_core::store::{Change, Store, Timeouts};
use stint_core::workload::{JoinToken, Workload, WorkloadKey};
use stint_core::Timestamp;
use stint_pgtls::Target;
use tokio_postgres::Config;

use crate::codec::{
    self, Cells, AUDIT_COLS, CODE_COLS, IDENTITY_COLS, INVENTORY_COLS, JOIN_TOKEN_COLS, KEY_COLS, LEASE_COLS, SCIM_GROUP_COLS, SCIM_PROFILE_COLS,
    SCIM_TOKEN_COLS, SESSION_COLS, SSO_REFRESH_COLS, USER_COLS, WORKLOAD_COLS, WORKLOAD_KEY_COLS,
};
use crate::error::store;
use pool::{Db, Params, Pool};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_sso.sql")),
    (3, include_str!("../../migrations/postgres/0003_token_uses.sql")),
    (4, include_str!("../../migrations/postgres/0004_session_mfa.sql")),
    (5, include_str!("../../migrations/postgres/0005_requests.sql")),
    (6, include_str!("../../migrations/postgres/0006_leases.sql")),
    (7, include_str!("../../migrations/postgres/0007_workloads.sql")),
    (8, include_str!("../../migrations/postgres/0008_scim.sql")),
    (9, include_str!("../../migrations/postgres/0009_scim_directory.sql")),
    (10, include_str!("../../migrations/postgres/0010_sso_refresh.sql")),
    (11, include_str!("../../migrations/postgres/0011_account_expiry.sql")),
    (12, include_str!("../../migrations/postgres/0012_inventory.sql")),
    (13, include_str!("../../migrations/postgres/0013_report.sql")),
    (14, include_str!("../../migrations/postgres/0014_join_token_maker.sql")),
];

/// Connections per replica: apply transactions are short, and the database is shared with
/// the other replicas, so a few suffice.
const POOL_SIZE: usize = 4;

/// Serializes migrations across replicas starting at once (any constant would do; this
/// one spells "stintmig").
const MIGRATION_LOCK: i64 = 0x7374_696e_746d_6967;

pub struct PostgresStore {
    pool: Pool,
    /// Where the tables are (`""`: the connection's default), naming this deployment's
    /// notices among others sharing the database.
    schema: String,
}

impl PostgresStore {
    /// Connects with a libpq-style URL (`postgres://user:pass@host:port/db?options=...`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_schema(url, None).await
    }

    /// Like [`connect`](Self::connect), but keeps every table in `schema` (created if
    /// missing), which must be a plain lowercase identifier.
    pub async fn connect_with_schema(url: &str, schema: Option<&str>) -> Result<Self> {
        Self::connect_with(url, schema, Timeouts::default()).await
    }

    /// Like [`connect_with_schema`](Self::connect_with_schema), with these timeouts.
    pub async fn connect_with(url: &str, schema: Option<&str>, timeouts: Timeouts) -> Result<Self> {
        let target = session_target(url, schema, timeouts)?;
        let pool = Pool::connect(target, POOL_SIZE).await?;
        migrate(&pool, schema).await?;
        Ok(PostgresStore { pool, schema: schema.unwrap_or_default().to_owned() })
    }

    async fn all<T>(&self, sql: &str, params: Params<'_>, decode: impl Fn(&tokio_postgres::Row) -> Result<T>) -> Result<Vec<T>> {
        let mut slot = self.pool.get().await?;
        let pool::Slot { client, stmts } = &mut *slot;
        let rows = Db { client, stmts }.query(sql, params).await?;
        rows.iter().map(decode).collect()
    }

    async fn one<T>(&self, sql: &str, params: Params<'_>, decode: impl Fn(&tokio_postgres::Row) -> Result<T>) -> Result<Option<T>> {
        Ok(self.all(sql, params, decode).await?.into_iter().next())
    }

    async fn count(&self, sql: &str, params: Params<'_>) -> Result<i64> {
        Ok(self.one(sql, params, |r| r.int(0)).await?.unwrap_or(0))
    }
}

/// The driver settings of [`session_target`], for a connection made without its TLS.
pub fn session_config(url: &str, schema: Option<&str>, t: Timeouts) -> Result<Config> {
    session_target(url, schema, t).map(|t| t.config)
}

/// Where and how every session the store opens connects: TLS as the URL's `sslmode` and
/// `sslrootcert` say ([`stint_pgtls`]), and its name, schema and timeouts, set at connection
/// startup so they hold on every pooled and reconnected session.
pub fn session_target(url: &str, schema: Option<&str>, t: Timeouts) -> Result<Target> {
    let mut target = Target::parse(url).map_err(|e| Error::invalid("invalid_store_url", format!("store: {e}")))?;
    let config = &mut target.config;
    if config.get_application_name().is_none() {
        config.application_name("stint");
    }
    let mut options = config.get_options().unwrap_or_default().to_owned();
    if let Some(s) = schema {
        check_schema_name(s)?;
        options.push_str(&format!(" -c search_path={s}"));
    }
    for (name, secs) in
        [("idle_in_transaction_session_timeout", t.idle_in_transaction_secs), ("lock_timeout", t.lock_secs), ("statement_timeout", t.statement_secs)]
    {
        options.push_str(&format!(" -c {name}={}", secs.saturating_mul(1000)));
    }
    config.options(options.trim_start());
    Ok(target)
}

/// The name goes into SQL and a startup option unquoted, so only plain identifiers pass.
fn check_schema_name(s: &str) -> Result<()> {
    let ok_first = s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    let ok_rest = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok_first || !ok_rest || s.len() > 63 {
        return Err(Error::invalid("invalid_schema", "schema must be 1-63 characters of a-z, 0-9 and '_', not starting with a digit"));
    }
    Ok(())
}

/// Applies pending migrations in one transaction holding an advisory lock, so replicas
/// starting together take turns and the later ones find nothing left to do.
async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<()> {
    let mut slot = pool.get().await?;
    let tx = slot.client.transaction().await.map_err(store)?;
    // Replicas starting together wait for each other's migrations, however long they take.
    tx.batch_execute("SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0").await.map_err(store)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(store)?;
    if let Some(s) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}")).await.map_err(store)?;
    }
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)").await.map_err(store)?;
    let current: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[]).await.map_err(store)?.int(0)?;
    codec::check_schema_version(current, MIGRATIONS)?;
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(store)?;
        tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)", &[&version]).await.map_err(store)?;
        tracing::info!(version, "applied postgres migration");
    }
    tx.commit().await.map_err(store)
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn apply(&self, change: Change) -> Result<u64> {
        let mut slot = self.pool.get().await?;
        apply::apply(&mut slot, change, &self.schema).await
    }

    async fn user_by_name(&self, name: &Username) -> Result<Option<User>> {
        self.one(&format!("SELECT {USER_COLS} FROM users u WHERE u.name = $1"), &[&name.as_str()], |r| codec::user(r, 0)).await
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>> {
        self.one(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = $1"), &[&id.as_str()], |r| codec::user(r, 0)).await
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.all(&format!("SELECT {USER_COLS} FROM users u ORDER BY u.name"), &[], |r| codec::user(r, 0)).await
    }

    async fn expiring_unalerted(&self, before: Timestamp) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.expires_at <= $1 AND u.expiry_alerted_at IS NULL AND NOT u.disabled ORDER BY u.expires_at");
        self.all(&sql, &[&before.0], |r| codec::user(r, 0)).await
    }

    async fn any_enrolled_user(&self) -> Result<bool> {
        Ok(self.count("SELECT COUNT(*) FROM (SELECT 1 FROM users WHERE password_hash IS NOT NULL LIMIT 1) AS one", &[]).await? != 0)
    }

    async fn session_by_lookup(&self, lookup: &str) -> Result<Option<(Session, User)>> {
        let sql = format!("SELECT {SESSION_COLS}, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.lookup = $1");
        self.one(&sql, &[&lookup], codec::session_with_user).await
    }

    async fn session(&self, id: &SessionId) -> Result<Option<(Session, User)>> {
        let sql = format!("SELECT {SESSION_COLS}, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1");
        self.one(&sql, &[&id.as_str()], codec::session_with_user).await
    }

    async fn active_sessions(&self, now: Timestamp) -> Result<u64> {
        let n = self.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1", &[&now.0]).await?;
        Ok(n.max(0) as u64)
    }

    async fn code(&self, lookup: &str) -> Result<Option<OneTimeCode>> {
        self.one(&format!("SELECT {CODE_COLS} FROM codes WHERE lookup = $1"), &[&lookup], codec::code).await
    }

    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<(Identity, User)>> {
        let sql = format!("SELECT {IDENTITY_COLS}, {USER_COLS} FROM identities i JOIN users u ON u.id = i.user_id WHERE i.issuer = $1 AND i.subject = $2");
        self.one(&sql, &[&issuer, &subject], codec::identity_with_user).await
    }

    async fn request(&self, id: &str) -> Result<Option<RoleRequest>> {
        self.one("SELECT body FROM role_requests WHERE id = $1", &[&id], codec::role_request).await
    }

    async fn requests(&self, since: Timestamp, limit: u32) -> Result<Vec<RoleRequest>> {
        let sql = "SELECT body FROM role_requests WHERE created_at >= $1 ORDER BY created_at DESC, id LIMIT $2";
        self.all(sql, &[&since.0, &i64::from(limit)], codec::role_request).await
    }

    async fn grants(&self, user: &UserId, role: &stint_core::ids::RoleName) -> Result<Vec<RoleRequest>> {
        let sql = "SELECT body FROM role_requests WHERE requester_id = $1 AND role = $2 AND status = 'approved'";
        self.all(sql, &[&user.as_str(), &role.as_str()], codec::role_request).await
    }

    async fn sso_attempt_by_state(&self, lookup: &str) -> Result<Option<SsoAttempt>> {
        self.one("SELECT body FROM sso_attempts WHERE state_lookup = $1", &[&lookup], codec::sso_attempt).await
    }

    async fn sso_attempt_by_code(&self, lookup: &str) -> Result<Option<SsoAttempt>> {
        self.one("SELECT body FROM sso_attempts WHERE code_lookup = $1", &[&lookup], codec::sso_attempt).await
    }

    async fn sso_attempt_by_user_code(&self, hash: &str, now: Timestamp) -> Result<Option<SsoAttempt>> {
        let sql = "SELECT body FROM sso_attempts WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2 ORDER BY expires_at DESC LIMIT 1";
        self.one(sql, &[&hash, &now.0], codec::sso_attempt).await
    }

    async fn sso_refresh_due(&self, checked_before: Timestamp, now: Timestamp, limit: u32) -> Result<Vec<SsoRefresh>> {
        let sql = format!(
            "SELECT {SSO_REFRESH_COLS} FROM sso_refresh r WHERE r.checked_at <= $1 AND EXISTS \
             (SELECT 1 FROM sessions s WHERE s.id = r.session_id AND s.revoked_at IS NULL AND s.expires_at > $2) ORDER BY r.checked_at, r.session_id LIMIT $3"
        );
        self.all(&sql, &[&checked_before.0, &now.0, &i64::from(limit)], codec::sso_refresh).await
    }

    async fn sso_refresh(&self, session: &SessionId) -> Result<Option<SsoRefresh>> {
        self.one(&format!("SELECT {SSO_REFRESH_COLS} FROM sso_refresh WHERE session_id = $1"), &[&session.as_str()], codec::sso_refresh).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        self.all(&format!("SELECT {KEY_COLS} FROM signing_keys ORDER BY created_at, kid"), &[], codec::key).await
    }

    async fn ssh_ca(&self) -> Result<Option<StoredKey>> {
        self.one("SELECT kid, public, sealed_private, created_at, NULL::BIGINT, NULL::BIGINT FROM ssh_ca WHERE id = 1", &[], codec::key).await
    }

    async fn lease(&self, id: &LeaseId) -> Result<Option<Lease>> {
        self.one(&format!("SELECT {LEASE_COLS} FROM leases WHERE id = $1"), &[&id.as_str()], codec::lease).await
    }

    async fn leases(&self, user: Option<&UserId>, include_ended: bool, limit: u32) -> Result<Vec<Lease>> {
        let sql = format!(
            "SELECT {LEASE_COLS} FROM leases WHERE ($1::TEXT IS NULL OR user_id = $1) AND ($2 OR ended_at IS NULL) ORDER BY issued_at DESC, id LIMIT $3"
        );
        self.all(&sql, &[&user.map(|u| u.as_str()), &include_ended, &i64::from(limit)], codec::lease).await
    }

    async fn leases_during(&self, from: Timestamp, to: Timestamp, limit: u32) -> Result<Vec<Lease>> {
        let sql = format!(
            "SELECT {LEASE_COLS} FROM leases WHERE issued_at <= $2 AND expires_at >= $1 AND (ended_at IS NULL OR ended_at >= $1) ORDER BY issued_at, id LIMIT $3"
        );
        self.all(&sql, &[&from.0, &to.0, &i64::from(limit)], codec::lease).await
    }

    async fn live_leases(&self, scope: &LeaseScope) -> Result<Vec<Lease>> {
        let (col, value) = codec::lease_scope(scope);
        let sql = format!("SELECT {LEASE_COLS} FROM leases WHERE {col} = $1 AND revoked_at IS NULL AND ended_at IS NULL ORDER BY issued_at, id");
        self.all(&sql, &[&value], codec::lease).await
    }

    async fn leases_to_end(&self, now: Timestamp, limit: u32) -> Result<Vec<Lease>> {
        let sql = format!(
            "SELECT {LEASE_COLS} FROM leases WHERE ended_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= $1) AND (retry_at IS NULL OR retry_at <= $1) \
             ORDER BY (revoked_at IS NULL), expires_at, id LIMIT $2"
        );
        self.all(&sql, &[&now.0, &i64::from(limit)], codec::lease).await
    }

    async fn revoked_unexpired(&self, kind: BackendKind, now: Timestamp) -> Result<Vec<String>> {
        let sql = "SELECT external_id FROM leases WHERE kind = $1 AND revoked_at IS NOT NULL AND expires_at > $2 ORDER BY external_id";
        self.all(sql, &[&kind.as_str(), &now.0], |r| r.text(0)).await
    }

    async fn workload(&self, name: &WorkloadName) -> Result<Option<Workload>> {
        self.one(&format!("SELECT {WORKLOAD_COLS} FROM workloads w WHERE w.name = $1"), &[&name.as_str()], |r| codec::workload(r, 0)).await
    }

    async fn workload_by_id(&self, id: &WorkloadId) -> Result<Option<Workload>> {
        self.one(&format!("SELECT {WORKLOAD_COLS} FROM workloads w WHERE w.id = $1"), &[&id.as_str()], |r| codec::workload(r, 0)).await
    }

    async fn workloads(&self) -> Result<Vec<Workload>> {
        self.all(&format!("SELECT {WORKLOAD_COLS} FROM workloads w ORDER BY w.name"), &[], |r| codec::workload(r, 0)).await
    }

    async fn workload_key(&self, kid: &str) -> Result<Option<(WorkloadKey, Workload)>> {
        let sql = format!("SELECT {WORKLOAD_KEY_COLS}, {WORKLOAD_COLS} FROM workload_keys k JOIN workloads w ON w.id = k.workload_id WHERE k.kid = $1");
        self.one(&sql, &[&kid], codec::workload_key_with_workload).await
    }

    async fn workload_keys(&self, workload: &WorkloadId) -> Result<Vec<WorkloadKey>> {
        let sql = format!("SELECT {WORKLOAD_KEY_COLS} FROM workload_keys k WHERE k.workload_id = $1 ORDER BY k.created_at, k.kid");
        self.all(&sql, &[&workload.as_str()], codec::workload_key).await
    }

    async fn join_token(&self, lookup: &str) -> Result<Option<JoinToken>> {
        self.one(&format!("SELECT {JOIN_TOKEN_COLS} FROM join_tokens WHERE lookup = $1"), &[&lookup], codec::join_token).await
    }

    async fn scim_token(&self, lookup: &str) -> Result<Option<ScimToken>> {
        self.one(&format!("SELECT {SCIM_TOKEN_COLS} FROM scim_tokens WHERE lookup = $1"), &[&lookup], codec::scim_token).await
    }

    async fn scim_tokens(&self) -> Result<Vec<ScimToken>> {
        self.all(&format!("SELECT {SCIM_TOKEN_COLS} FROM scim_tokens ORDER BY created_at, name"), &[], codec::scim_token).await
    }

    async fn scim_profiles(&self) -> Result<Vec<(UserId, ScimProfile)>> {
        self.all(&format!("SELECT {SCIM_PROFILE_COLS} FROM scim_profiles ORDER BY user_id"), &[], codec::scim_profile).await
    }

    async fn scim_groups(&self) -> Result<Vec<ScimGroup>> {
        self.all(&format!("SELECT {SCIM_GROUP_COLS} FROM scim_groups ORDER BY display_name"), &[], codec::scim_group).await
    }

    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<Record>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.all(&sql, &[&codec::to_db_int(after)?, &i64::from(limit)], codec::record).await
    }

    async fn audit_during(&self, from: Timestamp, to: Timestamp, after: u64, limit: u32) -> Result<Vec<Record>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > $1 AND at >= $2 AND at <= $3 ORDER BY seq LIMIT $4");
        self.all(&sql, &[&codec::to_db_int(after)?, &from.0, &to.0, &i64::from(limit)], codec::record).await
    }

    async fn inventory_snapshots(&self, since: Timestamp) -> Result<Vec<Imported>> {
        self.all(
            &format!("SELECT {INVENTORY_COLS} FROM inventory_snapshots WHERE generated_at >= $1 ORDER BY generated_at, account"),
            &[&since.0],
            codec::inventory,
        )
        .await
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        let head = self.one("SELECT seq, hash FROM audit_head WHERE id = 1", &[], codec::head).await?;
        Ok(codec::public_head(head.ok_or_else(|| crate::error::corrupt("audit_head"))?))
    }

    /// A listener on a connection of its own ([`notify`]); `None` outside a Tokio runtime.
    fn invalidations(&self) -> Option<Box<dyn stint_core::store::Invalidations>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(Box::new(notify::Listener::start(&runtime, self.pool.target().clone(), self.schema.clone())))
    }
}
