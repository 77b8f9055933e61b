//! Handlers, all of one shape: extract, authenticate, authorize, call the broker, map to wire.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use stint_api::*;
use stint_core::broker::{SsoBegin, SsoCallback, SsoFlow, SsoOutcome};
use stint_core::secret::SecretString;
use stint_core::Ttl;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, Form, Json, Query, Session};
use crate::html;
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
        .route("/v1/creds", post(creds))
        .route("/v1/leases", get(list_leases))
        .route("/v1/leases/{id}", get(lease_status))
        .route("/v1/leases/{id}/revoke", post(revoke_lease))
        .route("/v1/ssh/ca.pub", get(ssh_ca))
        .route("/v1/ssh/krl", get(ssh_krl))
        .route("/v1/users", get(list_users).post(add_user))
        .route("/v1/users/{name}/disable", post(disable_user))
        .route("/v1/users/{name}/enable", post(enable_user))
        .route("/v1/users/{name}/enrollment", post(reissue_enrollment))
        .route("/v1/users/{name}/groups", axum::routing::put(set_groups))
        .route("/v1/users/{name}/identities", post(link_identity))
        .route("/v1/users/{name}/expiry", post(set_expiry))
        .route("/v1/sessions/{id}/revoke", post(revoke_session))
        .route("/v1/keys", get(list_keys))
        .route("/v1/keys/rotate", post(rotate_keys))
        .route("/v1/audit", get(audit))
        .route("/v1/bench/floor", post(bench_floor))
        .route("/v1/bench/exchange-floor", post(bench_exchange_floor))
        .route("/v1/sso/providers", get(sso_providers))
        .route("/v1/sso/begin", post(sso_begin))
        .route("/v1/sso/device/authorize", post(sso_device_authorize))
        .route("/v1/sso/callback", get(sso_callback))
        .route("/v1/sso/device", get(sso_device_page).post(sso_device_verify))
        .route("/v1/sso/step-up", post(sso_step_up))
        .route("/v1/sso/token", post(sso_token))
        .route("/v1/token", post(token_exchange))
        .route("/v1/sts", post(crate::sts::assume_role_with_web_identity))
        .route("/v1/sts/", post(crate::sts::assume_role_with_web_identity))
        .route("/v1/requests", get(list_requests).post(create_request))
        .route("/v1/requests/{id}/approve", post(approve_request))
        .route("/v1/requests/{id}/deny", post(deny_request))
        .route("/v1/grants/{id}/revoke", post(revoke_grant))
        .route("/v1/break-glass", post(break_glass))
        .merge(crate::workloads::routes())
        .merge(crate::inventory::routes())
        .merge(crate::report::routes())
        .merge(crate::scim::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
        })
        .with_state(state)
}

pub(crate) type JsonOut = axum::Json<serde_json::Value>;

pub(crate) fn to_json(v: impl serde::Serialize) -> JsonOut {
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
    let gauges = s.metrics.gauges(s.broker.store().as_ref(), s.broker.now()).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render(active, &gauges)))
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
    Ok(session_response(&sess))
}

async fn logout(State(s): State<AppState>, Session(c): Session) -> ApiResult<StatusCode> {
    s.broker.logout(&c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn whoami(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    Ok(to_json(s.broker.whoami(&c).await?))
}

async fn create_request(State(s): State<AppState>, Session(c): Session, Json(req): Json<RoleRequestBody>) -> ApiResult<JsonOut> {
    let duration = req.duration.as_deref().map(str::parse::<Ttl>).transpose()?;
    Ok(to_json(s.broker.request_role(&c, &req.role, &req.reason, duration).await?))
}

async fn break_glass(State(s): State<AppState>, Session(c): Session, Json(req): Json<BreakGlassBody>) -> ApiResult<JsonOut> {
    let duration = req.duration.as_deref().map(str::parse::<Ttl>).transpose()?;
    Ok(to_json(s.broker.break_glass(&c, &req.reason, duration).await?))
}

async fn list_requests(State(s): State<AppState>, Session(c): Session) -> ApiResult<JsonOut> {
    Ok(to_json(s.broker.list_requests(&c).await?))
}

async fn approve_request(State(s): State<AppState>, Session(c): Session, Path(id): Path<String>) -> ApiResult<JsonOut> {
    Ok(to_json(s.broker.approve(&c, &id).await?))
}

async fn deny_request(State(s): State<AppState>, Session(c): Session, Path(id): Path<String>, Json(req): Json<DecisionBody>) -> ApiResult<JsonOut> {
    Ok(to_json(s.broker.deny(&c, &id, &req.reason).await?))
}

async fn revoke_grant(State(s): State<AppState>, Session(c): Session, Path(id): Path<String>, Json(req): Json<DecisionBody>) -> ApiResult<JsonOut> {
    Ok(to_json(s.broker.revoke_grant(&c, &id, &req.reason).await?))
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

async fn creds(State(s): State<AppState>, Session(c): Session, Json(req): Json<CredsRequest>) -> ApiResult<JsonOut> {
    let started = Instant::now();
    let ttl = req.ttl.as_deref().map(str::parse::<Ttl>).transpose()?;
    if req.backend.as_deref() != Some("token") {
        let ask = stint_core::broker::LeaseAsk { role: req.role.clone(), ttl, backend: req.backend.clone(), public_key: req.public_key.clone() };
        if let Some(l) = s.broker.lease(&c, ask).await? {
            s.metrics.observe_issue_latency(started.elapsed());
            return Ok(to_json(leased_creds(&l)));
        }
    }
    if req.public_key.is_some() {
        return Err(stint_core::Error::invalid("unexpected_public_key", format!("role {} has no SSH backend", req.role)).into());
    }
    let issued = s.broker.assume(&c, &req.role, ttl).await?;
    s.metrics.observe_issue_latency(started.elapsed());
    Ok(to_json(token_creds(&issued)))
}

/// A role token as a credential on the wire.
pub(crate) fn token_creds(issued: &stint_core::broker::Issued) -> CredsResponse {
    let cl = &issued.claims;
    let values = [("token", issued.token.expose()), ("token_type", "Bearer"), ("jti", cl.jti.as_str())];
    CredsResponse {
        backend: "token".into(),
        kind: "token".into(),
        role: cl.role.clone(),
        lease_id: None,
        issued_at: cl.iat.to_rfc3339(),
        expires_at: cl.exp.to_rfc3339(),
        expires_in: cl.iat.until(cl.exp),
        env: [("STINT_TOKEN", "token"), ("STINT_TOKEN_EXPIRES_AT", "expires_at")].iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        values: values.iter().map(|(k, v)| ((*k).into(), serde_json::Value::String((*v).into()))).collect(),
    }
}

/// A backend credential on the wire; its secrets leave the server only here.
pub(crate) fn leased_creds(l: &stint_core::broker::Leased) -> CredsResponse {
    let c = &l.credential;
    let mut values: std::collections::BTreeMap<String, serde_json::Value> = c.fields.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    values.extend(c.secrets.iter().map(|(k, v)| (k.clone(), v.expose().into())));
    CredsResponse {
        backend: l.lease.backend.clone(),
        kind: l.lease.kind.as_str().into(),
        role: l.lease.role.to_string(),
        lease_id: Some(l.lease.id.to_string()),
        issued_at: l.lease.issued_at.to_rfc3339(),
        expires_at: c.expires_at.to_rfc3339(),
        expires_in: l.lease.issued_at.until(c.expires_at),
        env: c.env.clone(),
        values,
    }
}

async fn list_leases(State(s): State<AppState>, Session(c): Session, Query(q): Query<LeasesQuery>) -> ApiResult<JsonOut> {
    let leases = s.broker.leases_for(&c, q.user.as_deref(), q.everyone, q.all).await?;
    let now = s.broker.now();
    Ok(to_json(leases.iter().map(|l| LeaseView::new(l, now)).collect::<Vec<_>>()))
}

async fn lease_status(State(s): State<AppState>, Session(c): Session, Path(id): Path<String>) -> ApiResult<JsonOut> {
    let l = s.broker.lease_status(&c, &id).await?;
    Ok(to_json(LeaseView::new(&l, s.broker.now())))
}

async fn revoke_lease(State(s): State<AppState>, Session(c): Session, Path(id): Path<String>) -> ApiResult<JsonOut> {
    let l = s.broker.revoke_lease(&c, &id).await?;
    Ok(to_json(LeaseView::new(&l, s.broker.now())))
}

/// The SSH CA's public key, one line, for sshd's `TrustedUserCAKeys`.
async fn ssh_ca(State(s): State<AppState>) -> ApiResult<Response> {
    let line = s.broker.ssh_ca_public()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{line}\n")).into_response())
}

/// The OpenSSH KRL of revoked, unexpired certificates, for sshd's `RevokedKeys`.
async fn ssh_krl(State(s): State<AppState>) -> ApiResult<Response> {
    let krl = s.broker.ssh_krl().await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, "no-store")], krl).into_response())
}

async fn add_user(State(s): State<AppState>, Session(c): Session, Json(req): Json<AddUserRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.add").await?;
    let terms = ExpiryRequest { expires: req.expires.clone(), sponsor: req.sponsor.clone() };
    let code = s.broker.add_user(&admin, &req.name, &req.groups, terms.terms()?).await?;
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

async fn set_groups(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>, Json(req): Json<SetGroupsRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.groups").await?;
    Ok(to_json(s.broker.set_groups(&admin, &name, &req.groups).await?))
}

async fn link_identity(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>, Json(req): Json<LinkIdentityRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.link_identity").await?;
    Ok(to_json(s.broker.link_identity(&admin, &name, &req.provider, &req.subject).await?))
}

async fn set_expiry(State(s): State<AppState>, Session(c): Session, Path(name): Path<String>, Json(req): Json<ExpiryRequest>) -> ApiResult<JsonOut> {
    let admin = s.broker.admin(&c, "user.expiry").await?;
    Ok(to_json(s.broker.set_expiry(&admin, &name, req.terms()?).await?))
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
        sub: stint_core::ids::UserId::random(&mut rng).to_string(),
        aud: vec!["stint-bench-floor".into()],
        role: req.role,
        sid: Some(stint_core::ids::SessionId::random(&mut rng)),
        jti: stint_core::ids::TokenId::random(&mut rng),
        iat: now,
        exp: now.plus(Ttl::from_secs(60)?),
        preferred_username: "bench".into(),
        grant: None,
        agent_key: None,
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

/// The wire form of a new session, shown once to the person who logged in.
fn session_response(sess: &stint_core::broker::NewSession) -> JsonOut {
    to_json(LoginResponse {
        session_token: sess.token.expose().to_owned(),
        session_id: sess.session_id.to_string(),
        username: sess.user.to_string(),
        expires_at: sess.expires_at.to_rfc3339(),
    })
}

async fn sso_providers(State(s): State<AppState>) -> JsonOut {
    to_json(SsoProvidersResponse { providers: s.broker.sso_providers() })
}

async fn sso_begin(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Json(req): Json<SsoBeginRequest>) -> ApiResult<JsonOut> {
    if req.code_challenge_method.as_deref().is_some_and(|m| m != "S256") {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_code_challenge", "only the S256 code challenge method is accepted"));
    }
    let flow = SsoFlow::Browser { redirect_uri: req.redirect_uri, code_challenge: req.code_challenge };
    let started = s.broker.sso_begin(SsoBegin { provider: req.provider, flow, addr }).await?;
    Ok(to_json(SsoBeginResponse {
        provider: started.provider,
        authorization_url: started.authorization_url.unwrap_or_default(),
        expires_at: started.expires_at.to_rfc3339(),
    }))
}

async fn sso_device_authorize(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Form(req): Form<DeviceAuthorizationRequest>) -> ApiResult<JsonOut> {
    let now = s.broker.now();
    let started = s.broker.sso_begin(SsoBegin { provider: req.provider, flow: SsoFlow::Device, addr }).await?;
    let d = started.device.ok_or_else(|| stint_core::Error::Internal("device flow without device codes".into()))?;
    Ok(to_json(DeviceAuthorizationResponse {
        device_code: d.device_code.expose().to_owned(),
        user_code: d.user_code,
        verification_uri: d.verification_uri,
        verification_uri_complete: d.verification_uri_complete,
        expires_in: now.until(started.expires_at) as i64,
        interval: d.interval_secs,
        provider: started.provider,
    }))
}

/// Where the browser lands after the provider, or after the TOTP step-up.
fn outcome_page(s: &AppState, o: SsoOutcome) -> Response {
    match o {
        SsoOutcome::Redirect(url) => html::redirect(&url),
        SsoOutcome::Done { username } => html::page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "<p>You are signed in to stint as <b>{}</b>.</p><p>Return to your terminal; you can close this window.</p>",
                html::escape(username.as_str())
            ),
        ),
        SsoOutcome::StepUp { state, username } => step_up_page(s, &state, username.as_str(), None),
    }
}

fn step_up_page(s: &AppState, state: &str, username: &str, error: Option<&str>) -> Response {
    let error = error.map(|e| format!("<p><b>{}</b></p>", html::escape(e))).unwrap_or_default();
    let body = format!(
        "<p>Your identity provider did not report a second factor, so stint asks for the one-time code from your authenticator app ({user}).</p>{error}\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"state\" value=\"{state}\">\
         <input name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" autofocus required> <button>Continue</button></form>",
        user = html::escape(username),
        action = html::escape(&format!("{}/v1/sso/step-up", s.broker.config().issuer)),
        state = html::escape(state),
    );
    html::page(if error.is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED }, "One more step", &body)
}

async fn sso_callback(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Query(q): Query<SsoCallbackQuery>) -> Response {
    let cb = SsoCallback { state: q.state.unwrap_or_default(), code: q.code, error: q.error, iss: q.iss, addr };
    match s.broker.sso_callback(cb).await {
        Ok(o) => outcome_page(&s, o),
        Err(e) => html::error_page(e),
    }
}

/// The verification page: a form for the code, or, with the code in the link
/// (`verification_uri_complete`), the login it names to confirm (RFC 8628 §5.4).
async fn sso_device_page(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Query(q): Query<DeviceVerifyQuery>) -> Response {
    if let Some(code) = q.user_code.filter(|c| !c.is_empty()) {
        return device_confirm_page(&s, &code, &addr).await;
    }
    let body = format!(
        "<p>Enter the code your terminal shows after <code>stint login --device</code>.</p>\
         <form method=\"post\" action=\"{action}\"><input name=\"user_code\" placeholder=\"XXXX-XXXX\" maxlength=\"9\" \
         autocomplete=\"off\" autofocus required> <button>Continue</button></form>",
        action = html::escape(&device_page_url(&s)),
    );
    html::page(StatusCode::OK, "Sign in to stint", &body)
}

fn device_page_url(s: &AppState) -> String {
    format!("{}/v1/sso/device", s.broker.config().issuer)
}

/// What the person is about to approve, with a button that goes on to the provider.
async fn device_confirm_page(s: &AppState, user_code: &str, addr: &str) -> Response {
    let r = match s.broker.sso_device_request(user_code, addr).await {
        Ok(r) => r,
        Err(e) => return html::error_page(e),
    };
    let age = r.created_at.until(s.broker.now());
    let ago = match age {
        0..=119 => format!("{age} seconds ago"),
        _ => format!("{} minutes ago", age / 60),
    };
    let body = format!(
        "<p>A sign-in to stint is waiting for you to approve it:</p>\
         <ul><li>code <b>{code}</b></li><li>from <b>{client}</b> at <b>{from}</b></li><li>started <b>{ago}</b></li>\
         <li>through <b>{provider}</b></li></ul>\
         <p>Go on only if you started this with <code>stint login --device</code> and your terminal shows this code. \
         If someone sent you this link, close this page: going on would sign them in as you.</p>\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
         <button name=\"confirm\" value=\"yes\">Yes, it was me: sign in</button></form>",
        code = html::escape(&r.user_code),
        client = html::escape(r.client),
        from = html::escape(&r.addr),
        ago = html::escape(&ago),
        provider = html::escape(&r.provider),
        action = html::escape(&device_page_url(s)),
    );
    html::page(StatusCode::OK, "Approve this sign-in?", &body)
}

/// Whether a form post came from stint's own page: a browser names the origin of a
/// cross-site post (`Origin`, `Sec-Fetch-Site`); a client sending neither is no browser
/// being led by another site.
fn from_own_page(h: &axum::http::HeaderMap, issuer: &str) -> bool {
    let text = |name: &str| h.get(name).map(|v| v.to_str().unwrap_or("?"));
    let own = issuer.split_once("://").map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)));
    let origin_ok = text("origin").is_none_or(|o| own.as_deref() == Some(o));
    origin_ok && text("sec-fetch-site") != Some("cross-site")
}

/// The code entered or confirmed: the confirming button of stint's own page goes on to the
/// provider; anything else shows what would be approved first.
async fn sso_device_verify(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: axum::http::HeaderMap,
    Form(f): Form<DeviceVerifyForm>,
) -> Response {
    let confirmed = f.confirm.as_deref() == Some("yes") && from_own_page(&headers, &s.broker.config().issuer);
    if !confirmed {
        return device_confirm_page(&s, &f.user_code, &addr).await;
    }
    match s.broker.sso_device_authorize(&f.user_code, &addr).await {
        Ok(url) => html::redirect(&url),
        Err(e) => html::error_page(e),
    }
}

async fn sso_step_up(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Form(f): Form<StepUpForm>) -> Response {
    match s.broker.sso_step_up(&f.state, SecretString::new(f.totp), &addr).await {
        Ok(o) => outcome_page(&s, o),
        // The sign-in stays open for another try (throttled like every second factor).
        Err(e) if matches!(e.code(), "invalid_totp" | "totp_replayed") => step_up_page(&s, &f.state, "", Some(&e.to_string())),
        Err(e) => html::error_page(e),
    }
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn sso_token(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Form(req): Form<SsoTokenRequest>) -> ApiResult<JsonOut> {
    let missing = |field: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("{field} is required for this grant_type"));
    let sess = match req.grant_type.as_str() {
        DEVICE_GRANT => s.broker.sso_poll(req.device_code.as_deref().ok_or_else(|| missing("device_code"))?, &addr).await?,
        "authorization_code" => {
            let code = req.code.as_deref().ok_or_else(|| missing("code"))?;
            let verifier = req.code_verifier.as_deref().ok_or_else(|| missing("code_verifier"))?;
            s.broker.sso_redeem(code, verifier, &addr).await?
        }
        _ => return Err(ApiError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", format!("grant_type must be {DEVICE_GRANT} or authorization_code"))),
    };
    Ok(session_response(&sess))
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// RFC 8693 token exchange: a CI platform's OIDC token for a role credential.
async fn token_exchange(State(s): State<AppState>, ClientAddr(addr): ClientAddr, Form(req): Form<TokenExchangeRequest>) -> ApiResult<JsonOut> {
    let started = Instant::now();
    if req.grant_type != TOKEN_EXCHANGE {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", format!("grant_type must be {TOKEN_EXCHANGE}")));
    }
    if let Some(t) = req.subject_token_type.as_deref().filter(|t| *t != JWT_TOKEN_TYPE && *t != "urn:ietf:params:oauth:token-type:id_token") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("subject_token_type {:?} is not a JWT type", t.chars().take(80).collect::<String>()),
        ));
    }
    if let Some(t) = req.requested_token_type.as_deref().filter(|t| *t != JWT_TOKEN_TYPE && *t != "urn:ietf:params:oauth:token-type:access_token") {
        let t = t.chars().take(80).collect::<String>();
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("requested_token_type {t:?}: stint issues JWT access tokens")));
    }
    if let Some(aud) = req.audience.as_deref().filter(|a| !s.broker.config().audience.iter().any(|x| x == a)) {
        let aud = aud.chars().take(80).collect::<String>();
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_target", format!("audience {aud:?} is not one this server issues for")));
    }
    // RFC 8693's scope is a list; stint's is one role name.
    let role = req.role.or(req.scope).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "name the role: role=NAME"))?;
    let ttl = req.ttl.as_deref().map(str::parse::<Ttl>).transpose()?;
    let request = stint_core::broker::ExchangeRequest { token: SecretString::new(req.subject_token), role, ttl, addr };
    let issued = s.broker.exchange(request).await?;
    s.metrics.observe_issue_latency(started.elapsed());
    let cl = &issued.claims;
    Ok(to_json(TokenExchangeResponse {
        access_token: issued.token.expose().to_owned(),
        issued_token_type: JWT_TOKEN_TYPE.into(),
        token_type: "Bearer".into(),
        expires_in: cl.iat.until(cl.exp),
        role: cl.role.clone(),
        jti: cl.jti.to_string(),
        expires_at: cl.exp.to_rfc3339(),
    }))
}

/// The exchange's floor: the same form and issuer lookup as `/v1/token` and the RS256
/// verification, without trust policy, replay check, audit or signing.
async fn bench_exchange_floor(State(s): State<AppState>, Form(req): Form<TokenExchangeRequest>) -> ApiResult<JsonOut> {
    if s.bench_floor.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint; enable it with [bench] floor = true"));
    }
    let t = s.broker.verify_ci_token(&SecretString::new(req.subject_token)).await?;
    Ok(to_json(serde_json::json!({ "sub": t.subject, "exp": t.expires_at, "role": req.role })))
}
