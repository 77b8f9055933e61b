//! stint's storage adapters: [`SqliteStore`] for a single node and [`PostgresStore`] for
//! replicas sharing one database. Both implement [`stint_core::store::Store`] and pass the
//! same conformance suite (`tests/conformance.rs`).

mod codec;
mod error;
mod postgres;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use stint_core::error::{Error, Result};
use stint_core::store::Store;

pub use error::StoreError;
pub use postgres::{session_config, session_target, PostgresStore};
pub use sqlite::SqliteStore;
pub use stint_core::spec::describe;
pub use stint_core::store::Timeouts;

/// Opens the store named by `spec`: `"sqlite"` (the file `data_dir/stint.db`) or a
/// `postgres://` / `postgresql://` URL.
pub async fn open(spec: &str, data_dir: &Path) -> Result<Arc<dyn Store>> {
    open_with(spec, data_dir, Timeouts::default()).await
}

/// Like [`open`], with these PostgreSQL timeouts (SQLite has one writer and needs none).
pub async fn open_with(spec: &str, data_dir: &Path, timeouts: Timeouts) -> Result<Arc<dyn Store>> {
    if spec == "sqlite" {
        std::fs::create_dir_all(data_dir).map_err(error::store)?;
        return Ok(Arc::new(SqliteStore::open(&data_dir.join("stint.db"))?));
    }
    if stint_core::spec::is_postgres(spec) {
        return Ok(Arc::new(PostgresStore::connect_with(spec, None, timeouts).await?));
    }
    Err(Error::invalid("invalid_store", format!("unknown store {:?}: use \"sqlite\" or a postgres:// URL", describe(spec))))
}
