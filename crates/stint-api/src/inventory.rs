//! The inventory API (`docs/inventory.md`): administrators keep snapshots of an AWS account's
//! long-lived credentials and read what they add up to.
//!
//! - `GET /v1/inventory?since=T`: [`stint_core::inventory::Inventory`];
//! - `POST /v1/inventory/snapshots?format=aws-credential-report&generated_at=T`, the report's
//!   CSV as a `text/csv` body: [`Kept`];
//! - `POST /v1/inventory/fetch`, [`FetchRequest`]: [`stint_core::broker::Fetched`].

use serde::{Deserialize, Serialize};
use stint_core::inventory::Summary;

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {
    /// Only snapshots generated at or after this RFC 3339 time; all of them by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `aws-credential-report`.
    pub format: String,
    /// When AWS generated the report (RFC 3339): every age is computed at this time.
    pub generated_at: String,
}

/// `POST /v1/inventory/fetch`: the server fetches the newest report through an AWS backend's
/// own identity; the answer is [`stint_core::broker::Fetched`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    pub backend: String,
}

/// What keeping a snapshot answers: its figures.
#[derive(Serialize, Deserialize)]
pub struct Kept {
    pub summary: Summary,
}
