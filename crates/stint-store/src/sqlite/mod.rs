//! The SQLite adapter: one file, WAL, a group-committing writer thread and a few readers.

mod write;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, Params, Row, TransactionBehavior};
use stint_core::audit::Record;
use stint_core::crypto::StoredKey;
use stint_core::error::Result;
use stint_core::ids::{LeaseId, SessionId, UserId, Username, WorkloadId, WorkloadName};
use stint_core::inventory::Imported;
use stint_core::model::{BackendKind, Identity, Lease, LeaseScope, OneTimeCode, RoleRequest, Session, SsoAttempt, SsoRefresh, User};
use stint_core::scim::{ScimGroup, ScimProfile, ScimToken};
use stint_core::store::{Change, Store};
use stint_core::workload::{JoinToken, Workload, WorkloadKey};
use stint_core::Timestamp;

use crate::codec::{
    self, Cells, AUDIT_COLS, CODE_COLS, IDENTITY_COLS, INVENTORY_COLS, JOIN_TOKEN_COLS, KEY_COLS, LEASE_COLS, SCIM_GROUP_COLS, SCIM_PROFILE_COLS,
    SCIM_TOKEN_COLS, SESSION_COLS, SSO_REFRESH_COLS, USER_COLS, WORKLOAD_COLS, WORKLOAD_KEY_COLS,
};
use crate::error::{store, StoreError};
use writer::Writer;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_sso.sql")),
    (3, include_str!("../../migrations/sqlite/0003_token_uses.sql")),
    (4, include_str!("../../migrations/sqlite/0004_session_mfa.sql")),
    (5, include_str!("../../migrations/sqlite/0005_requests.sql")),
    (6, include_str!("../../migrations/sqlite/0006_leases.sql")),
    (7, include_str!("../../migrations/sqlite/0007_workloads.sql")),
    (8, include_str!("../../migrations/sqlite/0008_scim.sql")),
    (9, include_str!("../../migrations/sqlite/0009_scim_directory.sql")),
    (10, include_str!("../../migrations/sqlite/0010_sso_refresh.sql")),
    (11, include_str!("../../migrations/sqlite/0011_account_expiry.sql")),
    (12, include_str!("../../migrations/sqlite/0012_inventory.sql")),
    (13, include_str!("../../migrations/sqlite/0013_report.sql")),
    (14, include_str!("../../migrations/sqlite/0014_join_token_maker.sql")),
];

/// Enough readers for the HTTP workers of a small node; each is a cheap file handle.
const READERS: usize = 4;

/// How long a connection waits for a lock held by another process (the CLI, a backup).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    _checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Creates or opens the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let mut conn = Connection::open(path).map_err(store)?;
        configure_writer(&conn)?;
        migrate(&mut conn)?;
        let readers = Readers::open(path)?;
        let checkpointer = Checkpointer::start(path)?;
        Ok(SqliteStore { writer: Writer::start(conn)?, readers, _checkpointer: checkpointer })
    }

    fn all<T>(&self, sql: &str, p: impl Params, decode: impl Fn(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        let conn = self.readers.get();
        let mut stmt = conn.prepare_cached(sql).map_err(store)?;
        let mut rows = stmt.query(p).map_err(store)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(store)? {
            out.push(decode(r)?);
        }
        Ok(out)
    }

    fn one<T>(&self, sql: &str, p: impl Params, decode: impl Fn(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        Ok(self.all(sql, p, decode)?.into_iter().next())
    }

    fn count(&self, sql: &str, p: impl Params) -> Result<i64> {
        Ok(self.one(sql, p, |r| codec::Cells::int(r, 0))?.unwrap_or(0))
    }
}

/// The database holds password hashes and sealed secrets: on Unix, create it owner-only
/// (SQLite gives its -wal and -shm files the same mode).
fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(store(e)),
    }
}

fn configure_writer(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(store)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(store(StoreError::NotWal(mode)));
    }
    // FULL: with WAL, NORMAL may lose the last commits on power loss, and the audit log
    // must not lose records the server already acknowledged.
    conn.pragma_update(None, "synchronous", "FULL").map_err(store)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(store)?;
    // Checkpoints run on their own thread (see `Checkpointer`), not inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(store)?;
    // The writer runs ~20 distinct statements; keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // IMMEDIATE: two processes opening a fresh file at once serialize here.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)").map_err(store)?;
    let current: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0)).map_err(store)?;
    crate::codec::check_schema_version(current, MIGRATIONS)?;
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql).map_err(store)?;
        tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())", params![version]).map_err(store)?;
        tracing::info!(version, "applied sqlite migration");
    }
    tx.commit().map_err(store)
}

/// Read-only connections used directly from async code, without `spawn_blocking`: every
/// read is an indexed lookup on a local file that finishes well under a millisecond (WAL
/// readers never wait for the writer), cheaper than a hop to the blocking pool. The
/// mutexes are only contended when more than `READERS` reads run at the same instant.
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    fn open(path: &Path) -> Result<Readers> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conns = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(path, flags).map_err(store)?;
                c.busy_timeout(BUSY_TIMEOUT).map_err(store)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<_>>()?;
        Ok(Readers { conns, next: AtomicUsize::new(0) })
    }

    /// A free connection if there is one, else waits for the next in turn. A poisoned lock
    /// only means a reader panicked mid-query; the connection itself is still usable.
    fn get(&self) -> MutexGuard<'_, Connection> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.conns.len() {
            match self.conns[(start + i) % self.conns.len()].try_lock() {
                Ok(g) => return g,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.conns[start % self.conns.len()].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn apply(&self, change: Change) -> Result<u64> {
        self.writer.submit(change).await
    }

    async fn user_by_name(&self, name: &Username) -> Result<Option<User>> {
        self.one(&format!("SELECT {USER_COLS} FROM users u WHERE u.name = ?1"), [name.as_str()], |r| codec::user(r, 0))
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>> {
        self.one(&format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?1"), [id.as_str()], |r| codec::user(r, 0))
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.all(&format!("SELECT {USER_COLS} FROM users u ORDER BY u.name"), [], |r| codec::user(r, 0))
    }

    async fn expiring_unalerted(&self, before: Timestamp) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users u WHERE u.expires_at <= ?1 AND u.expiry_alerted_at IS NULL AND NOT u.disabled ORDER BY u.expires_at");
        self.all(&sql, [before.0], |r| codec::user(r, 0))
    }

    async fn any_enrolled_user(&self) -> Result<bool> {
        Ok(self.count("SELECT EXISTS (SELECT 1 FROM users WHERE password_hash IS NOT NULL)", [])? != 0)
    }

    async fn session_by_lookup(&self, lookup: &str) -> Result<Option<(Session, User)>> {
        let sql = format!("SELECT {SESSION_COLS}, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.lookup = ?1");
        self.one(&sql, [lookup], |r| codec::session_with_user(r))
    }

    async fn session(&self, id: &SessionId) -> Result<Option<(Session, User)>> {
        let sql = format!("SELECT {SESSION_COLS}, {USER_COLS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1");
        self.one(&sql, [id.as_str()], |r| codec::session_with_user(r))
    }

    async fn active_sessions(&self, now: Timestamp) -> Result<u64> {
        let n = self.count("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1", [now.0])?;
        Ok(n.max(0) as u64)
    }

    async fn code(&self, lookup: &str) -> Result<Option<OneTimeCode>> {
        self.one(&format!("SELECT {CODE_COLS} FROM codes WHERE lookup = ?1"), [lookup], |r| codec::code(r))
    }

    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<(Identity, User)>> {
        let sql = format!("SELECT {IDENTITY_COLS}, {USER_COLS} FROM identities i JOIN users u ON u.id = i.user_id WHERE i.issuer = ?1 AND i.subject = ?2");
        self.one(&sql, [issuer, subject], |r| codec::identity_with_user(r))
    }

    async fn request(&self, id: &str) -> Result<Option<RoleRequest>> {
        self.one("SELECT body FROM role_requests WHERE id = ?1", [id], |r| codec::role_request(r))
    }

    async fn requests(&self, since: Timestamp, limit: u32) -> Result<Vec<RoleRequest>> {
        self.all("SELECT body FROM role_requests WHERE created_at >= ?1 ORDER BY created_at DESC, id LIMIT ?2", params![since.0, limit], |r| {
            codec::role_request(r)
        })
    }

    async fn grants(&self, user: &UserId, role: &stint_core::ids::RoleName) -> Result<Vec<RoleRequest>> {
        let sql = "SELECT body FROM role_requests WHERE requester_id = ?1 AND role = ?2 AND status = 'approved'";
        self.all(sql, [user.as_str(), role.as_str()], |r| codec::role_request(r))
    }

    async fn sso_attempt_by_state(&self, lookup: &str) -> Result<Option<SsoAttempt>> {
        self.one("SELECT body FROM sso_attempts WHERE state_lookup = ?1", [lookup], |r| codec::sso_attempt(r))
    }

    async fn sso_attempt_by_code(&self, lookup: &str) -> Result<Option<SsoAttempt>> {
        self.one("SELECT body FROM sso_attempts WHERE code_lookup = ?1", [lookup], |r| codec::sso_attempt(r))
    }

    async fn sso_attempt_by_user_code(&self, hash: &str, now: Timestamp) -> Result<Option<SsoAttempt>> {
        let sql = "SELECT body FROM sso_attempts WHERE user_code_hash = ?1 AND status = 'pending' AND expires_at > ?2 ORDER BY expires_at DESC LIMIT 1";
        self.one(sql, params![hash, now.0], |r| codec::sso_attempt(r))
    }

    async fn sso_refresh_due(&self, checked_before: Timestamp, now: Timestamp, limit: u32) -> Result<Vec<SsoRefresh>> {
        let sql = format!(
            "SELECT {SSO_REFRESH_COLS} FROM sso_refresh r WHERE r.checked_at <= ?1 AND EXISTS \
             (SELECT 1 FROM sessions s WHERE s.id = r.session_id AND s.revoked_at IS NULL AND s.expires_at > ?2) ORDER BY r.checked_at, r.session_id LIMIT ?3"
        );
        self.all(&sql, params![checked_before.0, now.0, limit], |r| codec::sso_refresh(r))
    }

    async fn sso_refresh(&self, session: &SessionId) -> Result<Option<SsoRefresh>> {
        self.one(&format!("SELECT {SSO_REFRESH_COLS} FROM sso_refresh WHERE session_id = ?1"), [session.as_str()], |r| codec::sso_refresh(r))
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        self.all(&format!("SELECT {KEY_COLS} FROM signing_keys ORDER BY created_at, kid"), [], |r| codec::key(r))
    }

    async fn ssh_ca(&self) -> Result<Option<StoredKey>> {
        self.one("SELECT kid, public, sealed_private, created_at, NULL, NULL FROM ssh_ca WHERE id = 1", [], |r| codec::key(r))
    }

    async fn lease(&self, id: &LeaseId) -> Result<Option<Lease>> {
        self.one(&format!("SELECT {LEASE_COLS} FROM leases WHERE id = ?1"), [id.as_str()], |r| codec::lease(r))
    }

    async fn leases(&self, user: Option<&UserId>, include_ended: bool, limit: u32) -> Result<Vec<Lease>> {
        let sql =
            format!("SELECT {LEASE_COLS} FROM leases WHERE (?1 IS NULL OR user_id = ?1) AND (?2 OR ended_at IS NULL) ORDER BY issued_at DESC, id LIMIT ?3");
        self.all(&sql, params![user.map(|u| u.as_str()), include_ended, limit], |r| codec::lease(r))
    }

    async fn leases_during(&self, from: Timestamp, to: Timestamp, limit: u32) -> Result<Vec<Lease>> {
        let sql = format!(
            "SELECT {LEASE_COLS} FROM leases WHERE issued_at <= ?2 AND expires_at >= ?1 AND (ended_at IS NULL OR ended_at >= ?1) ORDER BY issued_at, id LIMIT ?3"
        );
        self.all(&sql, params![from.0, to.0, limit], |r| codec::lease(r))
    }

    async fn live_leases(&self, scope: &LeaseScope) -> Result<Vec<Lease>> {
        let (col, value) = codec::lease_scope(scope);
        let sql = format!("SELECT {LEASE_COLS} FROM leases WHERE {col} = ?1 AND revoked_at IS NULL AND ended_at IS NULL ORDER BY issued_at, id");
        self.all(&sql, [value], |r| codec::lease(r))
    }

    async fn leases_to_end(&self, now: Timestamp, limit: u32) -> Result<Vec<Lease>> {
        let sql = format!(
            "SELECT {LEASE_COLS} FROM leases WHERE ended_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= ?1) AND (retry_at IS NULL OR retry_at <= ?1) \
             ORDER BY (revoked_at IS NULL), expires_at, id LIMIT ?2"
        );
        self.all(&sql, params![now.0, limit], |r| codec::lease(r))
    }

    async fn revoked_unexpired(&self, kind: BackendKind, now: Timestamp) -> Result<Vec<String>> {
        let sql = "SELECT external_id FROM leases WHERE kind = ?1 AND revoked_at IS NOT NULL AND expires_at > ?2 ORDER BY external_id";
        self.all(sql, params![kind.as_str(), now.0], |r| r.text(0))
    }

    async fn workload(&self, name: &WorkloadName) -> Result<Option<Workload>> {
        self.one(&format!("SELECT {WORKLOAD_COLS} FROM workloads w WHERE w.name = ?1"), [name.as_str()], |r| codec::workload(r, 0))
    }

    async fn workload_by_id(&self, id: &WorkloadId) -> Result<Option<Workload>> {
        self.one(&format!("SELECT {WORKLOAD_COLS} FROM workloads w WHERE w.id = ?1"), [id.as_str()], |r| codec::workload(r, 0))
    }

    async fn workloads(&self) -> Result<Vec<Workload>> {
        self.all(&format!("SELECT {WORKLOAD_COLS} FROM workloads w ORDER BY w.name"), [], |r| codec::workload(r, 0))
    }

    async fn workload_key(&self, kid: &str) -> Result<Option<(WorkloadKey, Workload)>> {
        let sql = format!("SELECT {WORKLOAD_KEY_COLS}, {WORKLOAD_COLS} FROM workload_keys k JOIN workloads w ON w.id = k.workload_id WHERE k.kid = ?1");
        self.one(&sql, [kid], |r| codec::workload_key_with_workload(r))
    }

    async fn workload_keys(&self, workload: &WorkloadId) -> Result<Vec<WorkloadKey>> {
        let sql = format!("SELECT {WORKLOAD_KEY_COLS} FROM workload_keys k WHERE k.workload_id = ?1 ORDER BY k.created_at, k.kid");
        self.all(&sql, [workload.as_str()], |r| codec::workload_key(r))
    }

    async fn join_token(&self, lookup: &str) -> Result<Option<JoinToken>> {
        self.one(&format!("SELECT {JOIN_TOKEN_COLS} FROM join_tokens WHERE lookup = ?1"), [lookup], |r| codec::join_token(r))
    }

    async fn scim_token(&self, lookup: &str) -> Result<Option<ScimToken>> {
        self.one(&format!("SELECT {SCIM_TOKEN_COLS} FROM scim_tokens WHERE lookup = ?1"), [lookup], |r| codec::scim_token(r))
    }

    async fn scim_tokens(&self) -> Result<Vec<ScimToken>> {
        self.all(&format!("SELECT {SCIM_TOKEN_COLS} FROM scim_tokens ORDER BY created_at, name"), [], |r| codec::scim_token(r))
    }

    async fn scim_profiles(&self) -> Result<Vec<(UserId, ScimProfile)>> {
        self.all(&format!("SELECT {SCIM_PROFILE_COLS} FROM scim_profiles ORDER BY user_id"), [], |r| codec::scim_profile(r))
    }

    async fn scim_groups(&self) -> Result<Vec<ScimGroup>> {
        self.all(&format!("SELECT {SCIM_GROUP_COLS} FROM scim_groups ORDER BY display_name"), [], |r| codec::scim_group(r))
    }

    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<Record>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        self.all(&sql, params![codec::to_db_int(after)?, limit], |r| codec::record(r))
    }

    async fn audit_during(&self, from: Timestamp, to: Timestamp, after: u64, limit: u32) -> Result<Vec<Record>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > ?1 AND at >= ?2 AND at <= ?3 ORDER BY seq LIMIT ?4");
        self.all(&sql, params![codec::to_db_int(after)?, from.0, to.0, limit], |r| codec::record(r))
    }

    async fn inventory_snapshots(&self, since: Timestamp) -> Result<Vec<Imported>> {
        self.all(&format!("SELECT {INVENTORY_COLS} FROM inventory_snapshots WHERE generated_at >= ?1 ORDER BY generated_at, account"), [since.0], |r| {
            codec::inventory(r)
        })
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        Ok(codec::public_head(write::read_head(&self.readers.get())?))
    }
}

/// How often WAL frames are copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies the WAL back into the database on its own thread. SQLite's automatic checkpoint
/// would run inside whichever commit crossed the threshold, adding the database file's
/// fsync to that request's latency; a PASSIVE checkpoint here never blocks the writer.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path).map_err(store)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(store)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stint-sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "sqlite checkpoint failed; will retry");
                    }
                }
            })
            .map_err(store)?;
        Ok(Checkpointer { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
