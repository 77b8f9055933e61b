//! PostgreSQL: one login role per lease.
//!
//! Issuing creates `CREATE ROLE … LOGIN PASSWORD … VALID UNTIL <lease end> CONNECTION LIMIT n
//! IN ROLE <group>` in one statement, so the credential has exactly its group's privileges
//! and PostgreSQL itself refuses the password after the lease ends. The password is random
//! and sent as a SCRAM-SHA-256 verifier computed here: the plaintext never reaches the
//! server, its logs (`log_statement = ddl`) or `pg_stat_statements`.
//!
//! Ending: `NOLOGIN` first (no new sessions), then every open session of the role is
//! terminated, what it owns is handed to its group role (`REASSIGN OWNED`; objects in other
//! databases are out of reach and make `DROP ROLE` fail, which the reaper reports and
//! retries), and the role is dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use stint_core::backend::{AuthorizedLease, Backend, Credential};
use stint_core::error::{Error, Result};
use stint_core::ids::RoleName;
use stint_core::model::{BackendKind, Lease};
use stint_core::secret::SecretString;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use zeroize::{Zeroize, Zeroizing};

/// A PostgreSQL backend as configured.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub name: String,
    /// How stint connects as its administrator (a role with `CREATEROLE`), password included,
    /// and with what TLS (the URL's `sslmode` and `sslrootcert`).
    pub admin: stint_pgtls::Target,
    /// Host, port and database the issued credentials are for (what `psql` is given).
    pub host: String,
    pub port: u16,
    pub database: String,
    /// stint role → the group role its credentials are members of.
    pub roles: BTreeMap<RoleName, String>,
    /// Prefix of every role stint creates, so they are easy to recognise (and to audit).
    pub role_prefix: String,
    /// Concurrent sessions each issued role may open.
    pub connection_limit: u32,
    /// Administrator connections kept open.
    pub pool_size: usize,
    /// PBKDF2 iterations of the SCRAM verifier ([`DEFAULT_SCRAM_ITERATIONS`]).
    pub scram_iterations: u32,
}

pub struct PostgresBackend {
    cfg: PostgresConfig,
    /// Connections shared by concurrent requests (the driver pipelines their queries).
    conns: Vec<Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
}

/// Bytes of randomness in an issued password (256 bits).
const PASSWORD_BYTES: usize = 32;

/// PBKDF2 iterations of issued passwords' SCRAM verifiers. Iterations slow down guessing a
/// password from a stolen verifier; a 256-bit random password cannot be guessed at any
/// count, so stint does not pay for them (RFC 7677's 4,096 are meant for passwords people
/// choose). The cost is real: PostgreSQL runs the verifier's PBKDF2 once in `CREATE ROLE`
/// (to refuse an empty password) and client and server run it at every login; at 4,096 a
/// `CREATE ROLE` takes about 6 ms of PostgreSQL's CPU, at 16 under 0.3 ms (see BENCHMARKS.md).
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 16;

impl PostgresBackend {
    pub fn new(cfg: PostgresConfig) -> PostgresBackend {
        let conns = (0..cfg.pool_size.max(1)).map(|_| Mutex::new(None)).collect();
        PostgresBackend { cfg, conns, next: AtomicUsize::new(0) }
    }

    /// Checks that the administrator can connect, at start-up, so a wrong URL or password is
    /// reported then rather than at the first request.
    pub async fn check(&self) -> Result<()> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map(drop).map_err(|e| self.failed(&e))
    }

    /// A pooled administrator connection, (re)connected when needed.
    async fn client(&self) -> Result<Arc<Client>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut slot = self.conns[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, conn) = self.cfg.admin.connect().await.map_err(|e| self.failed(&e))?;
        let name = self.cfg.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(backend = %name, error = %describe(&e), "PostgreSQL backend connection closed");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    fn failed(&self, e: &tokio_postgres::Error) -> Error {
        Error::upstream("backend_unavailable", format!("PostgreSQL backend {:?} failed: {}", self.cfg.name, describe(e)))
    }

    fn group_of(&self, lease: &Lease) -> Option<&str> {
        self.cfg.roles.get(&lease.role).map(String::as_str)
    }
}

#[async_trait::async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn roles(&self) -> Vec<RoleName> {
        self.cfg.roles.keys().cloned().collect()
    }

    fn external_id(&self, lease: &Lease) -> String {
        role_name(&self.cfg.role_prefix, lease)
    }

    async fn issue(&self, lease: &AuthorizedLease) -> Result<Credential> {
        self.timed(self.create(lease)).await
    }

    async fn end(&self, lease: &Lease, _revoked: bool) -> Result<()> {
        self.timed(self.drop_role(lease)).await
    }
}

impl PostgresBackend {
    /// Bounds a call: a hung administrator connection fails the request (or the reaper's
    /// attempt, retried later) instead of holding it forever.
    async fn timed<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::upstream("backend_unavailable", format!("PostgreSQL backend {:?} did not answer within {}s", self.cfg.name, CALL_TIMEOUT.as_secs())))
            }
        }
    }

    async fn create(&self, lease: &Lease) -> Result<Credential> {
        let group = self.group_of(lease).ok_or_else(|| Error::Internal(format!("backend {:?} has no group for role {}", self.cfg.name, lease.role)))?;
        let mut raw = [0u8; PASSWORD_BYTES];
        let mut salt = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
        let password = SecretString::new(URL_SAFE_NO_PAD.encode(raw));
        raw.zeroize();
        let verifier = Zeroizing::new(scram_verifier(password.expose(), &salt, self.cfg.scram_iterations));
        let until = time::OffsetDateTime::from_unix_timestamp(lease.expires_at.0)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .ok_or_else(|| Error::Internal("lease end out of range".into()))?;
        let user = role_name(&self.cfg.role_prefix, lease);
        // DDL takes no bind parameters: every value here is ours (names we made or the
        // configuration's, quoted) or a verifier and timestamp of a fixed alphabet.
        let sql = Zeroizing::new(format!(
            "CREATE ROLE {} WITH LOGIN INHERIT PASSWORD '{}' VALID UNTIL '{until}' CONNECTION LIMIT {} IN ROLE {}",
            ident(&user),
            verifier.as_str(),
            self.cfg.connection_limit,
            ident(group)
        ));
        let c = self.client().await?;
        c.batch_execute(sql.as_str()).await.map_err(|e| self.failed(&e))?;
        let url = format!("postgres://{user}@{}:{}/{}", self.cfg.host, self.cfg.port, self.cfg.database);
        Ok(Credential::new(lease.expires_at)
            .field("username", &user)
            .field("host", &self.cfg.host)
            .field("port", self.cfg.port.to_string())
            .field("database", &self.cfg.database)
            .field("group", group)
            .field("url", url)
            .secret("password", password)
            .env("PGHOST", "host")
            .env("PGPORT", "port")
            .env("PGDATABASE", "database")
            .env("PGUSER", "username")
            .env("PGPASSWORD", "password"))
    }

    async fn drop_role(&self, lease: &Lease) -> Result<()> {
        // The name recorded at issuance, even if role_prefix changed since.
        let user = if lease.external_id.is_empty() { role_name(&self.cfg.role_prefix, lease) } else { lease.external_id.clone() };
        let c = self.client().await?;
        let exists = c.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user]).await.map_err(|e| self.failed(&e))?;
        if exists.is_none() {
            return Ok(());
        }
        // Objects it created go to its group (the role's data outlives the credential), or to
        // stint's administrator when the role no longer maps to a group.
        let heir = self.group_of(lease).map_or_else(|| "CURRENT_USER".to_owned(), ident);
        let u = ident(&user);
        // A role dropped meanwhile (by another reaper, or by hand) is as good as done.
        let done = |e: tokio_postgres::Error| if e.code() == Some(&SqlState::UNDEFINED_OBJECT) { Ok(()) } else { Err(self.failed(&e)) };
        c.batch_execute(&format!("ALTER ROLE {u} NOLOGIN")).await.or_else(done)?;
        // A non-superuser administrator (CREATEROLE) needs the role's privileges to end its
        // sessions and hand over what it owns: it takes membership for the few statements
        // left, and dropping the role ends it. (A superuser has them already, and membership
        // would make pg_hba.conf's `+group` lines match it.)
        let superuser: bool = c.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[]).await.map_err(|e| self.failed(&e))?.get(0);
        if !superuser {
            c.batch_execute(&format!("GRANT {u} TO CURRENT_USER")).await.or_else(done)?;
        }
        c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", &[&user])
            .await
            .map_err(|e| self.failed(&e))?;
        c.batch_execute(&format!("BEGIN; REASSIGN OWNED BY {u} TO {heir}; DROP OWNED BY {u}; DROP ROLE {u}; COMMIT")).await.or_else(done)
    }
}

/// The longest stint waits for PostgreSQL in one issuance or one end.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A driver error as text an operator can act on (the server's message when there is one).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // The driver's message leaves out the cause ("error performing TLS handshake").
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// `"name"` with embedded quotes doubled.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL role name for a lease: prefix, who it is for, and the lease id, at most 63 bytes.
pub fn role_name(prefix: &str, lease: &Lease) -> String {
    let id = lease.id.as_str().trim_start_matches("l_");
    let who: String = lease.subject.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(20).collect();
    let mut name = format!("{prefix}{who}_{id}");
    name.truncate(63);
    name
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677), with
/// `iterations` rounds of PBKDF2.
pub fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = Zeroizing::new([0u8; 32]);
    let rounds = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password.as_bytes(), &mut salted[..]);
    let hmac = |key: &[u8], msg: &[u8]| -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(msg);
        m.finalize().into_bytes().into()
    };
    let client_key = Zeroizing::new(hmac(&salted[..], b"Client Key"));
    let stored_key = Sha256::digest(&client_key[..]);
    let server_key = hmac(&salted[..], b"Server Key");
    format!("SCRAM-SHA-256${iterations}:{}${}:{}", STANDARD.encode(salt), STANDARD.encode(stored_key), STANDARD.encode(server_key))
}
