//! `stint agent`, the real binary, against an in-process **fake** stint server that speaks the
//! workload API as issue 14 specifies it (`/v1/workload/{join,creds,status}` and discovery),
//! verifying the agent's assertions with the real `stint_core::workload::verify_assertion`.
//! The fake stands in until the server side lands; the end-to-end tests against the real
//! server and boto3 come after that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand_core::OsRng;
use serde_json::{json, Value};
use stint_core::ids::{WorkloadId, WorkloadName};
use stint_core::workload::{parse_public_key, verify_assertion, WorkloadKey};
use stint_core::Timestamp;
use stint_testkit::{free_port, Process};

use common::{spawn_agent, stint};

const JOIN_TOKEN: &str = "jt_fake-join-token-for-tests";
const SECRET_KEY: &str = "fake/SECRET+access+key";

/// What the fake server knows and can be told to do.
#[derive(Default)]
struct Fake {
    issuer: String,
    join_used: bool,
    joins: u32,
    key: Option<WorkloadKey>,
    disabled: bool,
    down: bool,
    revoked: BTreeSet<String>,
    lifetime: u64,
    issued: u32,
}

type Shared = Arc<Mutex<Fake>>;

fn refuse(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "code": code, "message": format!("refused: {code}") }))).into_response()
}

fn now() -> Timestamp {
    Timestamp(now_ms() / 1000)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn api() -> WorkloadName {
    WorkloadName::parse("api").unwrap()
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    Json(json!({ "issuer": s.lock().unwrap().issuer }))
}

async fn join(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut f = s.lock().unwrap();
    if body["join_token"] != JOIN_TOKEN {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_join_token");
    }
    if f.join_used {
        return refuse(StatusCode::UNAUTHORIZED, "join_token_used");
    }
    let Ok(public) = parse_public_key(body["public_key"].as_str().unwrap_or("")) else { return refuse(StatusCode::BAD_REQUEST, "invalid_public_key") };
    f.join_used = true;
    f.joins += 1;
    f.key = Some(WorkloadKey {
        kid: public.kid().to_owned(),
        workload_id: WorkloadId::random(&mut OsRng),
        public: public.bytes(),
        enrolled_by: "join_token".into(),
        created_at: now(),
        revoked_at: None,
    });
    Json(json!({ "workload": "api", "key_id": public.kid(), "roles": ["api-service"] })).into_response()
}

const PLATFORM_TOKEN: &str = "eyJ.platform-token.sig";

async fn attest(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut f = s.lock().unwrap();
    if body["workload"] != "api" || body["token"] != PLATFORM_TOKEN {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_platform_token");
    }
    let Ok(public) = parse_public_key(body["public_key"].as_str().unwrap_or("")) else { return refuse(StatusCode::BAD_REQUEST, "invalid_public_key") };
    f.joins += 1;
    f.key = Some(WorkloadKey {
        kid: public.kid().to_owned(),
        workload_id: WorkloadId::random(&mut OsRng),
        public: public.bytes(),
        enrolled_by: "platform:k8s".into(),
        created_at: now(),
        revoked_at: None,
    });
    Json(json!({ "workload": "api", "key_id": public.kid(), "roles": ["api-service"] })).into_response()
}

/// Checks the assertion as the server does; `Err` is the refusal's status and code.
fn authenticate(f: &Fake, body: &Value) -> Result<(), (StatusCode, String)> {
    if f.down {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "unavailable".into()));
    }
    let key = f.key.as_ref().ok_or((StatusCode::UNAUTHORIZED, "invalid_assertion".into()))?;
    verify_assertion(body["assertion"].as_str().unwrap_or(""), key, &api(), &f.issuer, now()).map_err(|e| (StatusCode::UNAUTHORIZED, e.code().to_string()))?;
    if !key.live() {
        return Err((StatusCode::UNAUTHORIZED, "key_revoked".into()));
    }
    if f.disabled {
        return Err((StatusCode::FORBIDDEN, "workload_disabled".into()));
    }
    Ok(())
}

async fn creds(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut f = s.lock().unwrap();
    if let Err((status, code)) = authenticate(&f, &body) {
        return refuse(status, &code);
    }
    if body["previous_lease"].as_str().is_some_and(|l| f.revoked.contains(l)) {
        return refuse(StatusCode::FORBIDDEN, "lease_revoked");
    }
    assert_eq!(body["role"], "api-service");
    f.issued += 1;
    let n = f.issued;
    let issued_at = now();
    let expires_at = Timestamp(issued_at.0 + f.lifetime as i64);
    let common = json!({
        "role": "api-service",
        "issued_at": issued_at.to_rfc3339(),
        "expires_at": expires_at.to_rfc3339(),
        "expires_in": f.lifetime,
    });
    let mut v = if body["backend"] == "token" {
        json!({ "backend": "token", "kind": "token", "token": format!("eyJ.role-token-{n}.sig"), "env": { "STINT_TOKEN": "token" } })
    } else {
        json!({
            "backend": "aws", "kind": "aws", "lease_id": format!("l_{n}"),
            "access_key_id": format!("ASIAFAKE{n:08}"), "secret_access_key": SECRET_KEY, "session_token": format!("session-token-{n}"),
            "role_arn": "arn:aws:iam::123456789012:role/api", "region": "eu-west-1",
            "env": { "AWS_ACCESS_KEY_ID": "access_key_id", "AWS_SECRET_ACCESS_KEY": "secret_access_key", "AWS_SESSION_TOKEN": "session_token" },
        })
    };
    v.as_object_mut().unwrap().extend(common.as_object().unwrap().clone());
    Json(v).into_response()
}

async fn status(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let f = s.lock().unwrap();
    if f.down {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    if let Err(r) = authenticate(&Fake { disabled: false, down: false, issuer: f.issuer.clone(), key: f.key.clone(), ..Default::default() }, &body) {
        return refuse(r.0, &r.1);
    }
    let lease = body["lease_id"].as_str().map(|id| {
        let revoked = f.revoked.contains(id);
        json!({ "id": id, "status": if revoked { "revoked" } else { "active" }, "live": !revoked })
    });
    Json(json!({ "workload": "api", "live": !f.disabled, "lease": lease })).into_response()
}

/// Starts the fake server on a free port.
async fn fake_server(lifetime: u64) -> (Shared, String) {
    fake_server_on(0, lifetime).await
}

async fn fake_server_on(port: u16, lifetime: u64) -> (Shared, String) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shared = Arc::new(Mutex::new(Fake { issuer: url.clone(), lifetime, ..Default::default() }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/v1/workload/join", post(join))
        .route("/v1/workload/attest", post(attest))
        .route("/v1/workload/creds", post(creds))
        .route("/v1/workload/status", post(status))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, url)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stint-agent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Agent {
    _process: Process,
    url: String,
    state: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn auth(&self) -> String {
        std::fs::read_to_string(self.state.join("auth-token")).unwrap()
    }

    async fn get(&self, auth: Option<&str>) -> (u16, Value) {
        let mut req = reqwest::Client::new().get(&self.url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["content-type"], "application/json");
        (status, resp.json().await.unwrap())
    }

    /// Polls the endpoint until `done` holds, for at most `secs` seconds.
    async fn until(&self, secs: u64, what: &str, done: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let auth = self.auth_when_ready().await;
            let (s, v) = self.get(Some(&auth)).await;
            if done(s, &v) {
                return (s, v);
            }
            assert!(Instant::now() < deadline, "{what}: last answer {s} {v}; agent log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn auth_when_ready(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(a) = std::fs::read_to_string(self.state.join("auth-token")) {
                if !a.is_empty() && std::fs::metadata(self.state.join("agent.json")).is_ok() {
                    return a;
                }
            }
            assert!(Instant::now() < deadline, "the agent wrote no auth-token; log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// Starts `stint agent` with its state in `root/state`, the join token in `root/join`.
fn start_agent(root: &Path, server: &str, extra: &[&str]) -> Agent {
    let join = root.join("join");
    std::fs::write(&join, format!("{JOIN_TOKEN}\n")).unwrap();
    start_agent_with(root, server, "--join-token-file", &join, extra)
}

/// Starts `stint agent` enrolling with `proof` (`--join-token-file` or `--platform-token-file`) `file`.
fn start_agent_with(root: &Path, server: &str, proof: &str, file: &Path, extra: &[&str]) -> Agent {
    let a = spawn_agent(root, server, proof, file, extra);
    Agent { _process: a.process, url: format!("http://127.0.0.1:{}/v1/credentials", a.port), state: a.state, log: a.log }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn agent_cmd(args: &[&str]) -> std::process::Output {
    stint().args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_the_container_endpoint_refreshes_and_writes_private_files() {
    let root = tempdir("serve");
    let (fake, server) = fake_server(3).await;
    let token_file = root.join("out/role-token");
    let env_file = root.join("out/app.env");
    let marker = root.join("changed");
    std::fs::create_dir_all(root.join("out")).unwrap();
    let on_change = format!("echo x >> {}", marker.display());
    let args = ["--token-file", token_file.to_str().unwrap(), "--env-file", env_file.to_str().unwrap(), "--on-change", &on_change];
    let agent = start_agent(&root, &server, &args);

    let (_, first) = agent.until(20, "a first credential", |s, _| s == 200).await;
    let keys: BTreeSet<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["AccessKeyId", "AccountId", "Expiration", "RoleArn", "SecretAccessKey", "Token"].into_iter().collect());
    assert_eq!(first["SecretAccessKey"], SECRET_KEY);
    assert_eq!(first["RoleArn"], "arn:aws:iam::123456789012:role/api");
    assert_eq!(first["AccountId"], "123456789012");
    assert!(first["AccessKeyId"].as_str().unwrap().starts_with("ASIAFAKE"));
    let exp = first["Expiration"].as_str().unwrap();
    assert!(exp.ends_with('Z') && Timestamp::parse_rfc3339(exp).is_some(), "{exp}");

    // Wrong or missing Authorization: 401 with a code, and nothing of the credential.
    for wrong in [None, Some("wrong"), Some(&*format!("Bearer {}", agent.auth()))] {
        let (s, v) = agent.get(wrong).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{wrong:?}");
        assert!(v.get("AccessKeyId").is_none());
    }

    // Refreshed at about two thirds of 3 s: a new key, without restarting.
    let first_key = first["AccessKeyId"].clone();
    agent.until(10, "a refreshed credential", |s, v| s == 200 && v["AccessKeyId"] != first_key).await;

    // The files: 0600, whole, the role token and the credential's variables.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(token_file.exists() && env_file.exists() && marker.exists()) {
        assert!(Instant::now() < deadline, "files not written; log:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&env_file), 0o600);
    assert!(std::fs::read_to_string(&token_file).unwrap().starts_with("eyJ.role-token-"));
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        env.contains("STINT_ROLE=api-service\n")
            && env.contains("AWS_ACCESS_KEY_ID=ASIAFAKE")
            && env.contains(&format!("AWS_SECRET_ACCESS_KEY={SECRET_KEY}\n")),
        "{env}"
    );
    assert_eq!(mode(&agent.state), 0o700);
    for f in ["key", "auth-token", "identity.json", "agent.json", "status.json"] {
        assert_eq!(mode(&agent.state.join(f)), 0o600, "{f}");
    }

    // `stint agent env` points the SDKs at it.
    let out = agent_cmd(&["agent", "env", "--state-dir", agent.state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = format!(
        "export AWS_CONTAINER_CREDENTIALS_FULL_URI={}\nexport AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}\n",
        agent.url,
        agent.state.join("auth-token").display()
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);

    // `stint agent status` shows the identity and each credential.
    let out = agent_cmd(&["agent", "status", "--state-dir", agent.state.to_str().unwrap(), "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["running"], true);
    assert_eq!(st["status"]["workload"], "api");
    assert_eq!(st["status"]["role"], "api-service");
    assert!(st["status"]["key_id"].is_string());
    let creds = st["status"]["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0]["purpose"], json!(["aws-endpoint", "env-file"]));
    assert_eq!(creds[0]["state"], "live");
    assert_eq!(creds[1]["purpose"], json!(["token-file"]));
    assert!(creds.iter().all(|c| c["expires_at"].is_string() && c["last_refresh_at"].is_string()));
    let text = agent_cmd(&["agent", "status", "--state-dir", agent.state.to_str().unwrap()]);
    assert!(String::from_utf8(text.stdout).unwrap().contains("agent     running"));

    assert_eq!(fake.lock().unwrap().joins, 1);
    // No secret reaches the log, at debug level.
    let log = agent.log();
    for secret in [SECRET_KEY, JOIN_TOKEN, "session-token-", "role-token-", &agent.auth()] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
    let key_seed = std::fs::read_to_string(agent.state.join("key")).unwrap();
    assert!(!log.contains(key_seed.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_workload_drops_the_cache_and_the_endpoint_answers_403() {
    let root = tempdir("disable");
    let (fake, server) = fake_server(3600).await;
    let token_file = root.join("role-token");
    let agent = start_agent(&root, &server, &["--token-file", token_file.to_str().unwrap()]);
    agent.until(20, "a first credential", |s, _| s == 200).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !token_file.exists() {
        assert!(Instant::now() < deadline, "no token file; log:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fake.lock().unwrap().disabled = true;
    // The status check runs every second (--check-interval 1s).
    let (_, v) = agent.until(10, "403 after disable", |s, _| s == 403).await;
    assert_eq!(v["code"], "workload_disabled");
    assert!(v["message"].as_str().unwrap().contains("stint workload enable api"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while token_file.exists() {
        assert!(Instant::now() < deadline, "the token file outlived the disable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Enabling again does not bring a dropped cache back: an operator restarts the agent.
    // (A negative: time must pass for it to mean anything, here one and a half check intervals.)
    fake.lock().unwrap().disabled = false;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(agent.get(Some(&agent.auth())).await.0, 403);
    assert!(agent.log().contains("stint workload enable api"));
    let out = agent_cmd(&["agent", "status", "--state-dir", agent.state.to_str().unwrap(), "--output", "json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["status"]["stopped"]["code"], "workload_disabled");
    assert!(st["status"]["credentials"].as_array().unwrap().iter().all(|c| c["state"] == "revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_is_dropped_and_answered_with_its_code() {
    let root = tempdir("revoke");
    let (fake, server) = fake_server(3600).await;
    let agent = start_agent(&root, &server, &[]);
    agent.until(20, "a first credential", |s, _| s == 200).await;
    let lease = format!("l_{}", fake.lock().unwrap().issued);
    fake.lock().unwrap().revoked.insert(lease);
    let (_, v) = agent.until(10, "403 after revocation", |s, _| s == 403).await;
    assert_eq!(v["code"], "lease_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_down_the_cached_credential_is_served_until_it_expires_and_never_after() {
    let root = tempdir("down");
    let (fake, server) = fake_server(6).await;
    let agent = start_agent(&root, &server, &[]);
    let (_, first) = agent.until(20, "a first credential", |s, _| s == 200).await;
    fake.lock().unwrap().down = true;
    let (s, cached) = agent.get(Some(&agent.auth())).await;
    assert_eq!((s, &cached["AccessKeyId"]), (200, &first["AccessKeyId"]), "served from the cache while the server is down");
    let auth = agent.auth();
    let deadline = Instant::now() + Duration::from_secs(15);
    let v = loop {
        let asked_at = now_ms();
        let (s, v) = agent.get(Some(&auth)).await;
        if s != 200 {
            assert_eq!(s, 503, "{v}");
            break v;
        }
        // Whatever is served is live when it is asked for, to the millisecond.
        let exp = Timestamp::parse_rfc3339(v["Expiration"].as_str().unwrap()).unwrap();
        assert!(asked_at < exp.0 * 1000, "served {v} after its expiry");
        assert!(Instant::now() < deadline, "the cached credential outlived its lifetime");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(v["code"], "credential_expired");
    assert!(now_ms() >= Timestamp::parse_rfc3339(first["Expiration"].as_str().unwrap()).unwrap().0 * 1000 - 1000);
    // The server comes back: the agent, still retrying, serves again.
    fake.lock().unwrap().down = false;
    agent.until(70, "a credential once the server is back", |s, _| s == 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_server_yet_the_endpoint_answers_503_until_the_agent_enrolls() {
    let root = tempdir("early");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let agent = start_agent(&root, &server, &[]);
    let (s, v) = agent.get(Some(&agent.auth_when_ready().await)).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("not_ready")), "{v}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = agent_cmd(&["agent", "status", "--state-dir", agent.state.to_str().unwrap(), "--output", "json"]);
        let st: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if st["status"]["enroll_error"]["code"] == "server_unreachable" {
            break;
        }
        assert!(Instant::now() < deadline, "no enroll error in the status: {st}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (fake, _) = fake_server_on(port, 3600).await;
    agent.until(20, "a credential once the server is up", |s, _| s == 200).await;
    assert_eq!(fake.lock().unwrap().joins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_keeps_its_key_and_identity_and_rotates_its_authorization() {
    let root = tempdir("restart");
    let (fake, server) = fake_server(3600).await;
    let first = start_agent(&root, &server, &[]);
    first.until(20, "a first credential", |s, _| s == 200).await;
    let key = std::fs::read_to_string(first.state.join("key")).unwrap();
    let auth = first.auth();
    drop(first);
    // The join token is spent: the second start must not need it.
    let second = start_agent(&root, &server, &[]);
    let (_, v) = second.until(20, "a credential after restart", |s, _| s == 200).await;
    assert!(v["AccessKeyId"].is_string());
    assert_eq!(std::fs::read_to_string(second.state.join("key")).unwrap(), key);
    assert_ne!(second.auth(), auth, "the Authorization value is new at every start");
    assert_eq!(second.get(Some(&auth)).await.0, 401, "the old value no longer works");
    assert_eq!(fake.lock().unwrap().joins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_join_token_is_an_error_that_says_what_to_do() {
    let root = tempdir("spent");
    let (fake, server) = fake_server(3600).await;
    fake.lock().unwrap().join_used = true;
    let join = root.join("join");
    std::fs::write(&join, JOIN_TOKEN).unwrap();
    let out = stint()
        .args(["agent", "--server", &server, "--workload", "api", "--listen", "127.0.0.1:0", "--join-token-file"])
        .arg(&join)
        .arg("--state-dir")
        .arg(root.join("state"))
        .env_remove("STINT_SERVER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("join_token_used") && err.contains("stint workload join-token api"), "{err}");
    assert!(!err.contains(JOIN_TOKEN));
    assert!(!root.join("state/agent.json").exists(), "a stopped agent leaves no agent.json behind");
}

#[test]
fn agent_env_says_when_no_agent_is_running() {
    let root = tempdir("none");
    let out = agent_cmd(&["agent", "env", "--state-dir", root.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent is running"));
    // An agent.json left by an agent that died without cleaning up: its pid is gone, and
    // whether or not something else took its port, it is not running.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(root.join("auth-token"), "x").unwrap();
    for listen in [format!("127.0.0.1:{}", free_port()), squatter.local_addr().unwrap().to_string()] {
        let info = json!({ "listen": listen, "pid": u32::MAX, "workload": "api", "server": "http://x", "started_at": "" });
        std::fs::write(root.join("agent.json"), info.to_string()).unwrap();
        let out = agent_cmd(&["agent", "env", "--state-dir", root.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not running"), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_dropped_with_a_join_token_and_replaced_with_a_platform_token() {
    // Join token: nothing to enroll again with, so 403 key_revoked, and the identity is
    // forgotten so that a restart with a new join token enrolls.
    let root = tempdir("keyrev-join");
    let (fake, server) = fake_server(3600).await;
    let agent = start_agent(&root, &server, &[]);
    agent.until(20, "a first credential", |s, _| s == 200).await;
    let revoked_key = std::fs::read_to_string(agent.state.join("key")).unwrap();
    fake.lock().unwrap().key.as_mut().unwrap().revoked_at = Some(now());
    let (_, v) = agent.until(10, "403 after the key was revoked", |s, _| s == 403).await;
    assert_eq!(v["code"], "key_revoked");
    assert!(v["message"].as_str().unwrap().contains("stint workload join-token api"), "{v}");
    assert!(!agent.state.join("identity.json").exists());
    assert_ne!(std::fs::read_to_string(agent.state.join("key")).unwrap(), revoked_key, "the next enrollment uses a new key");
    assert_eq!(mode(&agent.state.join("key")), 0o600);

    // Platform token: a new key is enrolled and credentials flow again.
    let root = tempdir("keyrev-platform");
    let (fake, server) = fake_server(3600).await;
    let token = root.join("sa-token");
    std::fs::write(&token, PLATFORM_TOKEN).unwrap();
    let agent = start_agent_with(&root, &server, "--platform-token-file", &token, &[]);
    let (_, first) = agent.until(20, "a first credential", |s, _| s == 200).await;
    let old_key = std::fs::read_to_string(agent.state.join("key")).unwrap();
    let old_kid = fake.lock().unwrap().key.as_ref().unwrap().kid.clone();
    fake.lock().unwrap().key.as_mut().unwrap().revoked_at = Some(now());
    let deadline = Instant::now() + Duration::from_secs(15);
    while fake.lock().unwrap().key.as_ref().unwrap().kid == old_kid {
        assert!(Instant::now() < deadline, "no new key enrolled; log:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.lock().unwrap().joins, 2);
    let (s, v) = agent.until(15, "a credential with the new key", |s, v| s != 200 || v["AccessKeyId"] != first["AccessKeyId"]).await;
    assert_eq!(s, 200, "{v}");
    assert_ne!(std::fs::read_to_string(agent.state.join("key")).unwrap(), old_key);
    let id: Value = serde_json::from_str(&std::fs::read_to_string(agent.state.join("identity.json")).unwrap()).unwrap();
    assert_eq!(id["enrolled_by"], "platform_token");
    assert_ne!(id["key_id"], old_kid.as_str());
}

/// botocore's own container provider, with only the two variables `stint agent env` prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_reads_the_endpoint_with_only_the_agent_variables() {
    let root = tempdir("botocore");
    let (_fake, server) = fake_server(3600).await;
    let agent = start_agent(&root, &server, &[]);
    let (_, served) = agent.until(20, "a first credential", |s, _| s == 200).await;
    let env = agent_cmd(&["agent", "env", "--state-dir", agent.state.to_str().unwrap()]);
    assert!(env.status.success());
    let vars: Vec<(String, String)> = String::from_utf8(env.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.strip_prefix("export ").unwrap().split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let script = "import botocore.session\n\
                  c = botocore.session.get_session().get_credentials()\n\
                  f = c.get_frozen_credentials()\n\
                  print(c.method, f.access_key, f.secret_key == 'fake/SECRET+access+key', bool(f.token))";
    let run = |vars: &[(String, String)]| {
        let mut cmd = std::process::Command::new(common::python());
        cmd.args(["-c", script]).env_clear().env("HOME", &root).env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        cmd.env("AWS_EC2_METADATA_DISABLED", "true").envs(vars.iter().map(|(k, v)| (k, v)));
        cmd.output().unwrap()
    };
    let out = run(&vars);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("container-role {} True True", served["AccessKeyId"].as_str().unwrap()));
    // A wrong Authorization value: botocore gets the 401 and no credentials.
    let wrong = root.join("wrong-token");
    std::fs::write(&wrong, "nope").unwrap();
    let out = run(&[vars[0].clone(), ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(), wrong.to_string_lossy().into_owned())]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
