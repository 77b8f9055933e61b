//! A fixed set of PostgreSQL connections with per-connection prepared statements.
//!
//! A `tokio_postgres::Client` can pipeline, but a transaction needs the connection to
//! itself, so each connection sits behind an async mutex and a caller holds it for one
//! read or one whole transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use stint_pgtls::Target;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use stint_core::error::Result;

use crate::error::store;

pub(super) struct Slot {
    pub(super) client: Client,
    /// Statements prepared on this connection, by SQL text, to save a round trip per query.
    pub(super) stmts: HashMap<String, Statement>,
}

pub(super) struct Pool {
    target: Target,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
}

impl Pool {
    /// Opens all `size` connections now, so a bad URL or a down server fails at startup.
    pub(super) async fn connect(target: Target, size: usize) -> Result<Pool> {
        let mut slots = Vec::with_capacity(size);
        for _ in 0..size {
            slots.push(Mutex::new(open(&target).await?));
        }
        Ok(Pool { target, slots, next: AtomicUsize::new(0) })
    }

    /// Where the connections go, for one held apart from the pool (the change listener).
    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    /// A free connection if there is one, else the next in turn once it is released. A
    /// connection the server closed (restart, failover) is replaced before use.
    pub(super) async fn get(&self) -> Result<MutexGuard<'_, Slot>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut slot = match free {
            Some(s) => s,
            None => self.slots[start % n].lock().await,
        };
        if slot.client.is_closed() {
            tracing::warn!("postgres connection lost; reconnecting");
            *slot = open(&self.target).await?;
        }
        Ok(slot)
    }
}

async fn open(target: &Target) -> Result<Slot> {
    let (client, connection) = target.connect().await.map_err(store)?;
    // The connection future performs the I/O; it ends when the client is dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended with an error");
        }
    });
    Ok(Slot { client, stmts: HashMap::new() })
}

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Queries on one connection (inside a transaction or not) through its statement cache.
pub(super) struct Db<'a> {
    pub(super) client: &'a Client,
    pub(super) stmts: &'a mut HashMap<String, Statement>,
}

impl Db<'_> {
    async fn prepare(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(store)?;
        self.stmts.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// A cached plan can go stale if another replica migrates the schema; after any
    /// failure the cache is dropped so the next use re-prepares.
    fn forget_on_error<T>(&mut self, r: Result<T, tokio_postgres::Error>) -> Result<T> {
        r.map_err(|e| {
            self.stmts.clear();
            store(e)
        })
    }

    pub(super) async fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let stmt = self.prepare(sql).await?;
        let r = self.client.execute(&stmt, params).await;
        self.forget_on_error(r)
    }

    pub(super) async fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let stmt = self.prepare(sql).await?;
        let r = self.client.query(&stmt, params).await;
        self.forget_on_error(r)
    }

    pub(super) async fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        let stmt = self.prepare(sql).await?;
        let r = self.client.query_one(&stmt, params).await;
        self.forget_on_error(r)
    }
}
