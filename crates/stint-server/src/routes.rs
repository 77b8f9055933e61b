//! Handlers, all of one shape: extract, authenticate, authorize, call the broker, map to wire.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use stint_core::secret::SecretString;
use stint_core::Ttl;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, Form, Json, Query, Session};
use crate::wire::*;
use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/v1/jwks", get(jwks))
        .route("/v1/introspect", post(introspect))
        .route("/v1/bootstrap", post(bootstrap))
        .route("/v1/enroll", post(enroll))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/whoami", get(whoami))
        .route("/v1/assume", post(assume))
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/{name}/disable", post(disable_user))
        .route("/v1/users/{name}/enable", post(enable_user))
        .route("/v1/users/{name}/enrollment", post(reissue_enrollment))
        .route("/v1/sessions/{id}/revoke", post(revoke_session))
        .route("/v1/keys", get(list_keys))
        .route("/v1/keys/rotate", post(rotate_keys))
        .route("/v1/audit", get(audit))
        .route("/v1/bench/floor", post(bench_floor))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
        })
        .with_state(state)
}

type JsonOut = axum::Json<serde_json::Value>;

fn to_json(v: impl serde::Serialize) -> JsonOut {
    axum::Json(serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
}

/// The wire form of a one-time enrollment code, shown once to whoever asked for it.
fn enrollment_code(code: &stint_core::broker::NewCode) -> EnrollmentCode {
    EnrollmentCode { username: code.username.to_string(), enrollment_code: code.code.expose().to_owned(), expires_at: code.expires_at.to_rfc3339() }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    match s.broker.store().audit_head().await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

async fn metrics(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    let active = s.broker.store().active_sessions(s.broker.now()).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render(active)))
}

async fn discovery(State(s): State<AppState>) -> JsonOut {
    axum::Json(s.broker.discovery())
}

async fn jwks(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], axum::Json(s.broker.jwks()?)))
}

async fn introspect(State(s): State<AppState>, Form(req): Form<IntrospectRequest>) -> ApiResult<JsonOut> {
    Ok(to_json(s.broker.introspect(&req.token).await?))
}

async fn bootstrap(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<BootstrapRequest>) -> ApiResult<JsonOut> {
    let code = s.broker.bootstrap(&req.token, &req.username, &addr).await?;
    Ok(to_json(enrollment_code(&code)))
}

async fn enroll(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<EnrollRequest>) -> ApiResult<JsonOut> {
    let e = s.broker.enroll(&req.code, SecretString::new(req.password), &addr).await?;
    Ok(to_json(EnrollResponse {
        username: e.username.to_string(),
        otpauth_uri: e.otpauth_uri.expose().to_owned(),
        totp_secret: e.totp_secret_base32.expose().to_owned(),
    }))
}

async fn login(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<LoginRequest>) -> ApiResult<JsonOut> {
    let req = stint_core::broker::LoginRequest { username: req.username, password: SecretString::new(req.password), totp: SecretString::new(req.totp), addr };
    let sess = s.broker.login(req).await?;
    Ok(to_json(LoginResponse {
        session_token: sess.token.expose().to_owned(),
        session_id: sess.session_id.to_string(),
        username: sess.user.to_string(),
        expires_at: sess.expires_at.to_rfc3339(),
    }))
}

async fn logout(State(s): State<AppState>, Session(c): Session) -> ApiResult<StatusCode> {
    s.broker.logout(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn whoami(State(s): State<AppState>, Session(c): Session) -> JsonOut {
    to_json(s.broker.whoami(&c))
}

async fn assume(State(s): State<AppState>, Session(c): Session, Json(req): Json<AssumeRequest>) -> ApiResult<JsonOut> {
    let started = Instant::now();
    let ttl = req.ttl.as_deref().map(str::parse::<Ttl>).transpose()?;
    let issued = s.broker.assume(&c, &req.role, ttl).await?;
    s.metrics.observe_issue_latency(started.elapsed());
    let cl = &issued.claims;
    Ok(to_json(AssumeResponse {
        token: issued.token.expose().to_owned(),
        token_type: "Bearer".into(),
        role: cl.role.clone(),
        jti: cl.jti.to_string(),
        issued_at: cl.iat.to_rfc3339(),
        expires_at: cl.exp.to_rfc3339(),
        expires_in: cl.iat.until(cl.exp),
    }))
}

async fn add_user(State(s): State<AppState>, Session(c): Session, Json(req): Json<AddUserRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.add").await?;
    let code = s.broker.add_user(&admin, &req.name, &req.groups).await?;
    Ok(to_json(enrollment_code(&code)))
}

async fn reissue_enrollment(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.enrollment").await?;
    let code = s.broker.reissue_enrollment(&admin, &name).await?;
    Ok(to_json(enrollment_code(&code)))
}

async fn list_users(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.list").await?;
    Ok(to_json(s.broker.list_users(&admin).await?))
}

async fn disable_user(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.disable").await?;
    Ok(to_json(s.broker.disable_user(&admin, &name).await?))
}

async fn enable_user(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.enable").await?;
    Ok(to_json(s.broker.enable_user(&admin, &name).await?))
}

async fn revoke_session(State(s): State<AppState>, Session(c): Session, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.broker.revoke_session(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "keys.list").await?;
    Ok(to_json(s.broker.list_keys(&admin).await?))
}

async fn rotate_keys(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "keys.rotate").await?;
    Ok(to_json(s.broker.rotate_keys(&admin).await?))
}

/// The longest a follower waits for new records in one request.
const MAX_WAIT: Duration = Duration::from_secs(30);

async fn audit(State(s): State<AppState>, Session(c): Session, Query(q): Query<AuditQuery>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "audit.read").await?;
    let limit = q.limit.unwrap_or(500);
    let wait = Duration::from_secs(q.wait.unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Register interest before reading, so an append between the read and the wait is not missed.
        let notified = s.metrics.audit_notify.notified();
        let (records, head) = s.broker.audit_page(&admin, q.after, limit).await?;
        if !records.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(to_json(AuditPage { records, head }));
        }
        // Other replicas append without notifying us; the deadline bounds that wait.
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// The benchmark floor: the same stack as `/v1/assume` (routing, JSON in and out, one
/// Ed25519 signature) without authentication, decision or storage.
async fn bench_floor(State(s): State<AppState>, Json(req): Json<AssumeRequest>) -> ApiResult<JsonOut> {
    let Some(key) = &s.bench_floor else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; enable it with [bench] floor = true"));
    };
    let now = s.broker.now();
    let mut rng = rand_core::OsRng;
    let claims = stint_core::jwt::Claims {
        iss: "stint-bench-floor".into(),
        sub: stint_core::ids::UserId::random(&mut rng),
        aud: vec!["stint-bench-floor".into()],
        role: req.role,
        sid: stint_core::ids::SessionId::random(&mut rng),
        jti: stint_core::ids::TokenId::random(&mut rng),
        iat: now,
        exp: now.plus(Ttl::from_secs(60)?),
        preferred_username: "bench".into(),
    };
    let token = stint_core::jwt::sign(&claims, key);
    Ok(to_json(AssumeResponse {
        token,
        token_type: "Bearer".into(),
        role: claims.role,
        jti: claims.jti.to_string(),
        issued_at: claims.iat.to_rfc3339(),
        expires_at: claims.exp.to_rfc3339(),
        expires_in: 60,
    }))
}
