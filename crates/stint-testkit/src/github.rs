//! A stand-in for GitHub Actions' OIDC token service and issuer: it serves discovery and the
//! JWKS like `https://token.actions.githubusercontent.com`, signs RS256 tokens with GitHub's
//! claim set, and answers a job's token request (`ACTIONS_ID_TOKEN_REQUEST_URL` with the
//! bearer `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, `&audience=…`) with `{"value": "<jwt>"}`.
//!
//! A stand-in because GitHub's real service only issues tokens inside a GitHub-hosted job.
//! It signs with the test RSA keys in `keys/`; the header (`typ`, `alg: RS256`, `kid`, `x5t`)
//! and claims follow GitHub's documentation of its OIDC tokens (docs/ci.md).

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use serde_json::{json, Value};

/// The key GitHub's tokens are signed with here, and another one (an attacker's).
pub const SIGNING_KEY: &str = include_str!("../keys/rsa-1.pkcs1.b64");
pub const OTHER_KEY: &str = include_str!("../keys/rsa-2.pkcs1.b64");
/// The `kid` the stand-in publishes.
pub const KID: &str = "gh-test-1";
/// The bearer a job presents to the token request URL.
pub const REQUEST_TOKEN: &str = "ghs_stand_in_request_token";

pub fn rsa(pkcs1_b64: &str) -> RsaKeyPair {
    let der = STANDARD.decode(pkcs1_b64.trim()).expect("test key is base64");
    RsaKeyPair::from_der(&der).expect("test key is PKCS#1")
}

/// `header.claims` base64url-encoded, the signing input of a JWS.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

/// Signs `input` with RS256 under `key`.
pub fn rs256(key: &RsaKeyPair, input: &str) -> String {
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(&signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).expect("RSA signing works");
    format!("{input}.{}", B64.encode(sig))
}

/// The public half of `key` as a JWK with `kid`.
pub fn jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(&c.n), "e": B64.encode(&c.e) })
}

/// What a workflow run looks like to the token service.
#[derive(Clone, Debug)]
pub struct Run {
    pub repository: String,
    pub git_ref: String,
    pub environment: Option<String>,
    pub event_name: String,
}

impl Default for Run {
    fn default() -> Run {
        Run { repository: "acme/infra".into(), git_ref: "refs/heads/main".into(), environment: None, event_name: "push".into() }
    }
}

struct Shared {
    /// Set by `stop`: every request then fails, even on connections already open.
    stopped: std::sync::atomic::AtomicBool,
    url: String,
    /// Replaced by [`GithubIssuer::replace_key_keeping_kid`].
    key: std::sync::RwLock<Arc<RsaKeyPair>>,
    run: Mutex<Run>,
    now: Mutex<Option<i64>>,
}

impl Shared {
    fn key(&self) -> Arc<RsaKeyPair> {
        self.key.read().expect("not poisoned").clone()
    }
}

/// A running stand-in.
pub struct GithubIssuer {
    pub url: String,
    /// What `ACTIONS_ID_TOKEN_REQUEST_URL` is set to in a job (the client appends `&audience=`).
    pub request_url: String,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

impl GithubIssuer {
    /// Serves on a loopback port of the current tokio runtime.
    pub async fn start() -> GithubIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("bound").port());
        let shared = Arc::new(Shared {
            stopped: Default::default(),
            url: url.clone(),
            key: std::sync::RwLock::new(Arc::new(rsa(SIGNING_KEY))),
            run: Mutex::new(Run::default()),
            now: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks", get(jwks))
            .route("/_apis/pipelines/idtoken", get(request_token))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let request_url = format!("{url}/_apis/pipelines/idtoken?api-version=2.0");
        GithubIssuer { url, request_url, shared, _server: server }
    }

    /// Stops serving (discovery, keys, token requests): the issuer is unreachable from now on.
    pub fn stop(&self) {
        self.shared.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        self._server.abort();
    }

    /// Sets the run the next requested tokens describe.
    pub fn set_run(&self, run: Run) {
        *self.shared.run.lock().expect("not poisoned") = run;
    }

    /// Fixes the clock the tokens are stamped with (default: the real time).
    pub fn set_now(&self, now: i64) {
        *self.shared.now.lock().expect("not poisoned") = Some(now);
    }

    /// GitHub's claims for `run` with audience `aud`, stamped at `now`.
    pub fn claims(&self, run: &Run, aud: &str, now: i64) -> Value {
        claims(&self.url, run, aud, now)
    }

    /// A token as GitHub signs it.
    pub fn sign(&self, claims: &Value) -> String {
        rs256(&self.key(), &signing_input(&json!({ "typ": "JWT", "alg": "RS256", "kid": KID, "x5t": "stand-in" }), claims))
    }

    pub fn key(&self) -> Arc<RsaKeyPair> {
        self.shared.key()
    }

    /// Signs and publishes with another key under the same `kid` from now on, as an issuer
    /// that replaces a key in place does.
    pub fn replace_key_keeping_kid(&self) {
        *self.shared.key.write().expect("not poisoned") = Arc::new(rsa(OTHER_KEY));
    }
}

fn claims(iss: &str, run: &Run, aud: &str, now: i64) -> Value {
    let owner = run.repository.split('/').next().unwrap_or("");
    let sub = match (&run.environment, run.event_name.as_str()) {
        (Some(env), _) => format!("repo:{}:environment:{}", run.repository, env.replace(':', "%3A")),
        (None, "pull_request") => format!("repo:{}:pull_request", run.repository),
        (None, _) => format!("repo:{}:ref:{}", run.repository, run.git_ref),
    };
    let mut c = json!({
        "jti": format!("{:032x}", rand_id()),
        "sub": sub,
        "aud": aud,
        "ref": run.git_ref,
        "sha": "example-sha-0000000000000000000000000000",
        "repository": run.repository,
        "repository_owner": owner,
        "repository_owner_id": "65",
        "repository_visibility": "private",
        "repository_id": "35",
        "run_id": "9000",
        "run_number": "12",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "actor_id": "1",
        "workflow": "deploy",
        "head_ref": "",
        "base_ref": "",
        "event_name": run.event_name,
        "ref_type": "branch",
        "workflow_ref": format!("{}/.github/workflows/deploy.yml@{}", run.repository, run.git_ref),
        "workflow_sha": "example-sha-0000000000000000000000000000",
        "job_workflow_ref": format!("{}/.github/workflows/deploy.yml@{}", run.repository, run.git_ref),
        "job_workflow_sha": "example-sha-0000000000000000000000000000",
        "iss": iss,
        "nbf": now - 600,
        "exp": now + 300,
        "iat": now,
    });
    if let Some(env) = &run.environment {
        c["environment"] = json!(env);
    }
    c
}

fn rand_id() -> u128 {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).expect("randomness");
    u128::from_be_bytes(b)
}

fn down(s: &Shared) -> Option<axum::response::Response> {
    s.stopped.load(std::sync::atomic::Ordering::SeqCst).then(|| (StatusCode::SERVICE_UNAVAILABLE, "stopped").into_response())
}

async fn discovery(State(s): State<Arc<Shared>>) -> axum::response::Response {
    if let Some(r) = down(&s) {
        return r;
    }
    axum::Json(json!({
        "issuer": s.url,
        "jwks_uri": format!("{}/.well-known/jwks", s.url),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_id", "environment", "job_workflow_ref"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> axum::response::Response {
    if let Some(r) = down(&s) {
        return r;
    }
    axum::Json(json!({ "keys": [jwk(&s.key(), KID)] })).into_response()
}

async fn request_token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
) -> axum::response::Response {
    if let Some(r) = down(&s) {
        return r;
    }
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case(&format!("bearer {REQUEST_TOKEN}")));
    if !authorized {
        return (StatusCode::UNAUTHORIZED, "bad request token").into_response();
    }
    let aud = q.get("audience").cloned().unwrap_or_else(|| format!("https://github.com/{}", "acme"));
    let now = s
        .now
        .lock()
        .expect("not poisoned")
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64));
    let run = s.run.lock().expect("not poisoned").clone();
    let c = claims(&s.url, &run, &aud, now);
    let token = rs256(&s.key(), &signing_input(&json!({ "typ": "JWT", "alg": "RS256", "kid": KID, "x5t": "stand-in" }), &c));
    axum::Json(json!({ "count": 1, "value": token })).into_response()
}
