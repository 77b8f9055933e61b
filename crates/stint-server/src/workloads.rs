//! The workload routes: administrators manage workloads under `/v1/workloads`; agents enroll
//! and ask for credentials under `/v1/workload/` (no session: a join or platform token to
//! enroll, then assertions signed by the enrolled key).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use stint_core::broker::{AttestRequest, JoinRequest, WorkloadAsk, WorkloadCreds};
use stint_core::secret::SecretString;
use stint_core::workload::PlatformBinding;
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

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddWorkloadRequest {
    pub name: String,
    pub roles: Vec<String>,
    /// The platform identity whose tokens may enroll the workload's agents.
    #[serde(default)]
    pub platform: Option<PlatformBinding>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// Like `1h`; one hour when omitted, at most 7 days.
    pub ttl: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct JoinTokenResponse {
    pub workload: String,
    /// Shown once: `stint agent --join-token-file` reads it.
    pub join_token: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub join_token: String,
    /// The agent's Ed25519 public key: 32 bytes, base64url without padding.
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestBody {
    pub workload: String,
    /// The platform's token (a Kubernetes projected service-account token, say).
    pub token: String,
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadCredsBody {
    /// Signed by the agent's enrolled key (`stint_core::workload::sign_assertion`).
    pub assertion: String,
    pub role: String,
    /// A backend by name, `token` for the role token; by default the role's one backend.
    #[serde(default)]
    pub backend: Option<String>,
    /// Like `1h`; by default an hour, or the role's maximum if shorter.
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    /// The lease being renewed: refused with `lease_revoked` when an administrator revoked it.
    #[serde(default)]
    pub previous_lease: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadStatusBody {
    pub assertion: String,
    #[serde(default)]
    pub lease_id: Option<String>,
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
