//! Failures inside the adapters. They reach callers as `stint_core::Error::Store`, which is
//! logged and never shown, so messages may name tables but never carry values or secrets.

use stint_core::Error;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored value does not decode into the model (hand-edited or corrupted database).
    #[error("stored {0} could not be decoded")]
    Corrupt(&'static str),
    /// The SQLite writer thread is gone (it panicked or the store is shutting down).
    #[error("the sqlite writer thread stopped")]
    WriterStopped,
    /// The group-commit transaction failed after the job's own work had succeeded.
    #[error("sqlite commit failed: {0}")]
    CommitFailed(String),
    /// The file system (or a `:memory:`-like path) cannot hold a write-ahead log.
    #[error("sqlite refused WAL journal mode (got {0:?})")]
    NotWal(String),
    /// The database was migrated by a newer stint than this one.
    #[error("database schema version {0} is newer than this build knows")]
    SchemaTooNew(i64),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// With its cause (the driver's own message omits it): "error performing TLS handshake:
    /// invalid peer certificate: UnknownIssuer" tells the operator what to fix.
    #[error("postgres: {}{}", .0, cause(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The cause of a connection failure (TLS, I/O). A database error's detail can quote row
/// values, so it is left out.
fn cause(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (None, Some(c)) => format!(": {c}"),
        _ => String::new(),
    }
}

/// Lifts any adapter failure into the core's opaque store error. A transaction that ran out
/// of time (a lock held by a stalled replica, a statement too slow) is `store_busy`: the
/// request failed closed, changed nothing, and may be retried.
pub(crate) fn store(e: impl Into<StoreError>) -> Error {
    let e = e.into();
    if e.timed_out() {
        tracing::warn!(error = %e, "store transaction timed out");
        return Error::unavailable("store_busy", "the store is busy (a transaction waited too long); nothing changed, try again");
    }
    Error::store(e)
}

impl StoreError {
    /// PostgreSQL ended the statement or the session for taking too long: `lock_timeout`
    /// (55P03), `statement_timeout` (57014), `idle_in_transaction_session_timeout` (25P03).
    fn timed_out(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            StoreError::Postgres(e) => {
                e.code().is_some_and(|c| [SqlState::LOCK_NOT_AVAILABLE, SqlState::QUERY_CANCELED, SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT].contains(c))
            }
            _ => false,
        }
    }
}

pub(crate) fn corrupt(what: &'static str) -> Error {
    Error::store(StoreError::Corrupt(what))
}
