//! `GET /v1/report`: the before-and-after report (`docs/report.md`), as JSON or as one HTML
//! page. Administrators only.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use stint_api::report::ReportQuery;
use stint_core::report::{Period, DEFAULT_PERIOD_SECS};
use stint_core::{Error, Timestamp};

use crate::error::ApiResult;
use crate::extract::{time_param, Query, Session};
use crate::routes::to_json;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/report", get(report))
}

async fn report(State(s): State<AppState>, Session(c): Session, Query(q): Query<ReportQuery>) -> ApiResult<Response> {
    let admin = s.broker.admin(&c, "report.read").await?;
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(Error::invalid("unknown_format", format!("unknown report format {:?}; use json or html", stint_core::ids::truncate(other))).into())
        }
    };
    let as_of = q.as_of.as_deref().map(|t| time_param("as_of", t)).transpose()?.unwrap_or_else(|| s.broker.now());
    let since = q.since.as_deref().map(|t| time_param("since", t)).transpose()?.unwrap_or(Timestamp(as_of.0.saturating_sub(DEFAULT_PERIOD_SECS)));
    let report = s.broker.report(&admin, Period::new(since, as_of)?).await?;
    Ok(if html { crate::html::document(stint_api::report::html(&report)) } else { to_json(report).into_response() })
}
