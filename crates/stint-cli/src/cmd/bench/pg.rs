//! The PostgreSQL backend scenarios: a database `stint bench` prepares (a group role to be a
//! member of), the backend's configuration, the floor (the same `CREATE ROLE` statements sent
//! straight to PostgreSQL, without stint), and the clean-up of every role the run created.

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// The group role bench credentials join.
pub const GROUP: &str = "stint_bench_reader";
/// Every role the run creates starts with this, so clean-up finds them all.
pub const PREFIX: &str = "stintbench_";
/// stint's administrator connections (the backend's default).
pub const POOL: usize = 4;

pub async fn connect(url: &str) -> Result<Client> {
    // TLS as the URL says (`sslmode`, `sslrootcert`), as the server's own connections do.
    let target = stint_pgtls::Target::parse(url).map_err(|e| anyhow::anyhow!("--postgres: {e}"))?;
    let (c, conn) = target.connect().await.with_context(|| format!("cannot connect to {}", stint_store::describe(url)))?;
    tokio::spawn(conn);
    Ok(c)
}

/// Creates the group role if missing.
pub async fn prepare(url: &str) -> Result<()> {
    let c = connect(url).await?;
    let sql = format!("DO $$BEGIN CREATE ROLE {GROUP} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$");
    c.batch_execute(&sql).await.context("creating the bench group role")?;
    Ok(())
}

/// The server's `[[backends.postgres]]` for `readonly`.
pub fn config(url: &str) -> String {
    format!(
        "\n[[backends.postgres]]\nname = \"benchdb\"\nurl = \"{url}\"\nrole_prefix = \"{PREFIX}\"\npool_size = {POOL}\n[backends.postgres.roles]\nreadonly = \"{GROUP}\"\n"
    )
}

/// Drops every role the run created (bench leases outlive the run otherwise); returns how many.
pub async fn clean_up(url: &str) -> Result<usize> {
    let c = connect(url).await?;
    let rows = c.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", &[&PREFIX]).await?;
    for r in &rows {
        let name: String = r.get(0);
        c.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", name.replace('"', "\"\""))).await?;
    }
    Ok(rows.len())
}

/// The floor's connections: as many as stint's pool, shared by all clients (pipelined).
pub async fn floor_clients(url: &str) -> Result<Vec<Client>> {
    let mut out = Vec::with_capacity(POOL);
    for _ in 0..POOL {
        out.push(connect(url).await?);
    }
    Ok(out)
}

/// A verifier with the backend's iteration count, computed once: the floor does not hash
/// (stint's share of the work includes it), but PostgreSQL's share depends on the count.
pub fn floor_verifier() -> String {
    stint_backends::postgres::scram_verifier("floor", &[0u8; 16], stint_backends::postgres::DEFAULT_SCRAM_ITERATIONS)
}

/// The statement the backend sends for one lease.
pub fn floor_statement(i: usize, run: u32, verifier: &str) -> String {
    format!("CREATE ROLE \"{PREFIX}floor_{run:x}_{i}\" WITH LOGIN INHERIT PASSWORD '{verifier}' VALID UNTIL '2099-01-01T00:00:00Z' CONNECTION LIMIT 5 IN ROLE {GROUP}")
}
