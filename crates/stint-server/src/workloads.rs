//! The workload routes: administrators manage workloads under `/v1/workloads`; agents enroll
//! and ask for credentials under `/v1/workload/` (no session: a join or platform token to
//! enroll, then assertions signed by the enrolled key).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use stint_api::workloads::{AddWorkloadRequest, AttestBody, JoinBody, JoinTokenRequest, JoinTokenResponse, WorkloadCredsBody, WorkloadStatusBody};
use stint_core::broker::{AttestRequest, JoinRequest, WorkloadAsk, WorkloadCreds};
use stint_core::secret::SecretString;
use stint_core::Ttl;

use crate::error::ApiResult;
use crate::extract::{ClientAddr, Json, Session};
use crate::routes::{leased_creds, to_json, token_creds, JsonOut};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workloads", get(list).post(add))
        .route("/v1/workloads/{name}/disable", post(disable))
        .route("/v1/workloads/{name}/enable", post(enable))
        .route("/v1/workloads/{name}/join-tokens", post(join_token))
        .route("/v1/workload/join", post(join))
        .route("/v1/workload/attest", post(attest))
        .route("/v1/workload/creds", post(creds))
        .route("/v1/workload/status", post(status))
}

async fn list(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "workload.list").await?;
    Ok(to_json(serde_json::json!({ "workloads": s.broker.list_workloads(&admin).await? })))
}

async fn add(State(s): State<AppState>, Session(c): Session, Json(req): Json<AddWorkloadRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "workload.add").await?;
    Ok(to_json(s.broker.add_workload(&admin, &req.name, &req.roles, req.platform).await?))
}

async fn disable(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "workload.disable").await?;
    Ok(to_json(s.broker.disable_workload(&admin, &name).await?))
}

async fn enable(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "workload.enable").await?;
    Ok(to_json(s.broker.enable_workload(&admin, &name).await?))
}

async fn join_token(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>, Json(req): Json<JoinTokenRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "workload.join_token").await?;
    let ttl = req.ttl.as_deref().map(str::parse::<Ttl>).transpose()?.map_or_else(|| Ttl::from_secs(3600), Ok)?;
    let t = s.broker.join_token(&admin, &name, ttl).await?;
    Ok(to_json(JoinTokenResponse { workload: t.workload.to_string(), join_token: t.token.expose().to_owned(), expires_at: t.expires_at.to_rfc3339() }))
}

async fn join(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<JoinBody>) -> ApiResult<JsonOut> {
    let req = JoinRequest { token: SecretString::new(req.join_token), public_key: req.public_key, addr };
    Ok(to_json(s.broker.join(req).await?))
}

async fn attest(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<AttestBody>) -> ApiResult<JsonOut> {
    let req = AttestRequest { workload: req.workload, token: SecretString::new(req.token), public_key: req.public_key, addr };
    Ok(to_json(s.broker.attest(req).await?))
}

async fn creds(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<WorkloadCredsBody>) -> ApiResult<JsonOut> {
    let started = std::time::Instant::now();
    let ttl = req.ttl.as_deref().map(str::parse::<Ttl>).transpose()?;
    let caller = s.broker.workload_caller(&SecretString::new(req.assertion), &addr).await?;
    let ask = WorkloadAsk { role: req.role, ttl, backend: req.backend, public_key: req.public_key, previous_lease: req.previous_lease };
    let out = match s.broker.workload_creds(&caller, ask).await? {
        WorkloadCreds::Token(t) => token_creds(&t),
        WorkloadCreds::Lease(l) => leased_creds(&l),
    };
    s.metrics.observe_issue_latency(started.elapsed());
    Ok(to_json(out))
}

async fn status(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<WorkloadStatusBody>) -> ApiResult<JsonOut> {
    let caller = s.broker.workload_caller(&SecretString::new(req.assertion), &addr).await?;
    Ok(to_json(s.broker.workload_status(&caller, req.lease_id.as_deref()).await?))
}
