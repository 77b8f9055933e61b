//! The inventory of long-lived keys: snapshots an administrator imports (`stint inventory
//! import`) or the server fetches through an AWS backend (`stint inventory fetch`), and what
//! `stint inventory` shows of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::audit::{Draft, Event, Outcome};
use crate::error::{Error, Result};
use crate::inventory::{Imported, Inventory, InventorySource, Snapshot, Summary};
use crate::store::{Change, Mutation};
use crate::time::Timestamp;

use super::admin::Admin;
use super::Broker;

/// What a fetch brought back.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Fetched {
    pub summary: Summary,
    /// False when the report is one stint already keeps: IAM makes a new one at most every
    /// 4 hours, and answers with the newest until then.
    pub kept: bool,
}

impl Broker {
    /// Wires the backends snapshots can be fetched through, by name.
    pub fn with_inventory_sources(mut self, sources: BTreeMap<String, Arc<dyn InventorySource>>) -> Broker {
        self.inventory_sources = sources;
        self
    }

    /// Fetches the newest snapshot through `backend` and keeps it, unless it is kept already.
    pub async fn fetch_inventory(&self, admin: &Admin<'_>, backend: &str) -> Result<Fetched> {
        let source = self.inventory_sources.get(backend).ok_or_else(|| {
            let names: Vec<&str> = self.inventory_sources.keys().map(String::as_str).collect();
            let known = if names.is_empty() { "none is configured".to_owned() } else { format!("configured: {}", names.join(", ")) };
            Error::not_found("unknown_backend", format!("no AWS backend named {:?} to fetch from ({known})", crate::ids::truncate(backend)))
        })?;
        let snapshot = source.fetch().await?;
        let summary = snapshot.summary();
        match self.keep_inventory(admin, snapshot, "fetch").await {
            Ok(summary) => Ok(Fetched { summary, kept: true }),
            Err(e) if e.code() == "inventory_exists" => Ok(Fetched { summary, kept: false }),
            Err(e) => Err(e),
        }
    }

    /// Keeps `snapshot`; `inventory_exists` if that account's report of that time is kept.
    /// `how` says whether the administrator gave the file (`import`) or had the server fetch
    /// it (`fetch`).
    pub async fn keep_inventory(&self, admin: &Admin<'_>, snapshot: Snapshot, how: &'static str) -> Result<Summary> {
        let now = self.now();
        let summary = snapshot.summary();
        let d = Draft::new(now, Event::InventoryImported, Outcome::Success)
            .actor(admin.id())
            .subject(format!("aws:{}", snapshot.account))
            .detail("how", how)
            .detail("source", snapshot.source.as_str())
            .detail("generated_at", snapshot.generated_at.to_rfc3339())
            .detail("users", summary.users)
            .detail("active_keys", summary.figures.active_keys);
        let kept = Imported { snapshot, imported_at: now, imported_by: format!("user:{}", admin.name()) };
        self.commit(Change::default().with(Mutation::InsertInventorySnapshot(kept)).record(d)).await?;
        Ok(summary)
    }

    /// The inventory from the snapshots generated at or after `since`.
    pub async fn inventory(&self, _admin: &Admin<'_>, since: Timestamp) -> Result<Inventory> {
        Ok(Inventory::of(&self.store.inventory_snapshots(since).await?))
    }
}
