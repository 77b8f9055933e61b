//! `/v1/inventory`: the long-lived credentials of the AWS accounts stint replaces keys in
//! (`docs/inventory.md`). Administrators only.
//!
//! The import's body is read only once the caller is known to be an administrator: up to
//! [`MAX_REPORT_BYTES`], far more than other bodies, so nobody else can make stint read it.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use stint_api::inventory::{FetchRequest, ImportQuery, InventoryQuery, Kept};
use stint_core::inventory::{Snapshot, Source, MAX_REPORT_BYTES};
use stint_core::Timestamp;

use crate::error::{ApiError, ApiResult};
use crate::extract::{body_within, time_param, Json, Query, Session};
use crate::routes::{to_json, JsonOut};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/inventory", get(show)).route("/v1/inventory/snapshots", post(import)).route("/v1/inventory/fetch", post(fetch))
}

async fn show(State(s): State<AppState>, Session(c): Session, Query(q): Query<InventoryQuery>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "inventory.read").await?;
    let since = q.since.as_deref().map(|t| time_param("since", t)).transpose()?.unwrap_or(Timestamp(i64::MIN));
    Ok(to_json(s.broker.inventory(&admin, since).await?))
}

async fn import(State(s): State<AppState>, Session(c): Session, Query(q): Query<ImportQuery>, req: Request) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "inventory.import").await?;
    let source = Source::parse(&q.format)?;
    let generated_at = time_param("generated_at", &q.generated_at)?;
    let too_large = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "report_too_large", format!("a report is at most {} MiB", MAX_REPORT_BYTES >> 20));
    let body = body_within(req, &s, &["text/csv"], MAX_REPORT_BYTES, too_large).await?;
    let snapshot = match source {
        Source::AwsCredentialReport => Snapshot::from_credential_report(&body, generated_at)?,
    };
    let summary = s.broker.keep_inventory(&admin, snapshot, "import").await?;
    s.metrics.inventory_changed().await;
    Ok(to_json(Kept { summary }))
}

async fn fetch(State(s): State<AppState>, Session(c): Session, Json(req): Json<FetchRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "inventory.fetch").await?;
    let fetched = s.broker.fetch_inventory(&admin, &req.backend).await?;
    s.metrics.inventory_changed().await;
    Ok(to_json(fetched))
}
