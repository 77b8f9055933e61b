//! The test harness: `spawn_app` starts the real server on port 0 with a fresh store
//! (a temporary SQLite directory, or a fresh PostgreSQL schema) and a clock the test moves.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_core::audit::Record;
use stint_core::broker::{InlinePasswordWork, PasswordWork};
use stint_core::crypto::MasterKey;
use stint_core::crypto::StoredKey;
use stint_core::error::Result;
use stint_core::ids::{LeaseId, RoleName, SessionId, UserId, Username};
use stint_core::model::{BackendKind, Identity, Lease, LeaseScope, OneTimeCode, RoleRequest, Session, SsoAttempt, SsoRefresh, User};
use stint_core::password::NewPassword;
use stint_core::secret::SecretString;
use stint_core::store::{Change, Store};
use stint_core::{ManualClock, Timestamp};
use stint_server::config::{Config, Overrides};
use stint_server::{App, AppState};

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Counts argon2 verifications, to show unknown users cost the same work as known ones.
pub struct CountingWork {
    inner: InlinePasswordWork,
    pub verifies: AtomicUsize,
}

#[async_trait::async_trait]
impl PasswordWork for CountingWork {
    async fn hash(&self, p: NewPassword) -> stint_core::error::Result<String> {
        self.inner.hash(p).await
    }
    async fn verify(&self, p: SecretString, phc: Option<String>) -> bool {
        self.verifies.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(p, phc).await
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub bootstrap_token: String,
    pub state: AppState,
    pub store: Arc<dyn Store>,
    pub work: Arc<CountingWork>,
    pub data_dir: PathBuf,
    pg_schema: Option<String>,
    /// The PostgreSQL server the schema is on.
    pg_url: String,
    /// The master key file's text and the configuration, for replicas ([`TestApp::replica`]).
    kek_file: String,
    cfg_path: PathBuf,
}

/// A person with a live session.
#[derive(Clone)]
pub struct Person {
    pub name: String,
    pub password: String,
    pub secret: Vec<u8>,
    pub session: String,
    pub session_id: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), nanos)
}

pub fn pg_url() -> String {
    std::env::var("STINT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Asserts that a configuration file with `toml` is refused with an error containing `needle`.
pub fn config_refused(toml: &str, needle: &str) {
    let dir = std::env::temp_dir().join(unique("stint-cfg"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("stint.toml");
    std::fs::write(&f, toml).unwrap();
    let e = Config::load(Some(&f), Overrides::default()).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(e.contains(needle), "{needle:?} not in {e}");
}

/// The store with a pause after its next identity read ([`Store::identity`], armed once by
/// [`PausingStore::arm`]): a test acts between that read and the write that follows it, as a
/// concurrent request would.
pub struct PausingStore {
    inner: Arc<dyn Store>,
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Semaphore,
    resume: tokio::sync::Semaphore,
}

impl PausingStore {
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
    /// Waits (at most 10 s) until a request is held after its read.
    pub async fn held(&self) {
        let held = tokio::time::timeout(std::time::Duration::from_secs(10), self.reached.acquire()).await;
        held.expect("no request read an identity").unwrap().forget();
    }
    pub fn resume(&self) {
        self.resume.add_permits(1);
    }
}

use stint_core::ids::{WorkloadId, WorkloadName};
use stint_core::workload::{JoinToken, Workload, WorkloadKey};

#[async_trait::async_trait]
impl Store for PausingStore {
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<(Identity, User)>> {
        let found = self.inner.identity(issuer, subject).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.add_permits(1);
            self.resume.acquire().await.unwrap().forget();
        }
        found
    }
    async fn apply(&self, change: Change) -> Result<u64> {
        self.inner.apply(change).await
    }
    async fn user_by_name(&self, name: &Username) -> Result<Option<User>> {
        self.inner.user_by_name(name).await
    }
    async fn user_by_id(&self, id: &UserId) -> Result<Option<User>> {
        self.inner.user_by_id(id).await
    }
    async fn users(&self) -> Result<Vec<User>> {
        self.inner.users().await
    }
    async fn any_enrolled_user(&self) -> Result<bool> {
        self.inner.any_enrolled_user().await
    }
    async fn session_by_lookup(&self, lookup: &str) -> Result<Option<(Session, User)>> {
        self.inner.session_by_lookup(lookup).await
    }
    async fn session(&self, id: &SessionId) -> Result<Option<(Session, User)>> {
        self.inner.session(id).await
    }
    async fn active_sessions(&self, now: Timestamp) -> Result<u64> {
        self.inner.active_sessions(now).await
    }
    async fn code(&self, lookup: &str) -> Result<Option<OneTimeCode>> {
        self.inner.code(lookup).await
    }
    async fn sso_attempt_by_state(&self, lookup: &str) -> Result<Option<SsoAttempt>> {
        self.inner.sso_attempt_by_state(lookup).await
    }
    async fn sso_attempt_by_code(&self, lookup: &str) -> Result<Option<SsoAttempt>> {
        self.inner.sso_attempt_by_code(lookup).await
    }
    async fn request(&self, id: &str) -> Result<Option<RoleRequest>> {
        self.inner.request(id).await
    }
    async fn requests(&self, since: Timestamp, limit: u32) -> Result<Vec<RoleRequest>> {
        self.inner.requests(since, limit).await
    }
    async fn grants(&self, user: &UserId, role: &RoleName) -> Result<Vec<RoleRequest>> {
        self.inner.grants(user, role).await
    }
    async fn sso_attempt_by_user_code(&self, hash: &str, now: Timestamp) -> Result<Option<SsoAttempt>> {
        self.inner.sso_attempt_by_user_code(hash, now).await
    }
    async fn sso_refresh_due(&self, checked_before: Timestamp, now: Timestamp, limit: u32) -> Result<Vec<SsoRefresh>> {
        self.inner.sso_refresh_due(checked_before, now, limit).await
    }
    async fn sso_refresh(&self, session: &SessionId) -> Result<Option<SsoRefresh>> {
        self.inner.sso_refresh(session).await
    }
    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        self.inner.signing_keys().await
    }
    async fn ssh_ca(&self) -> Result<Option<StoredKey>> {
        self.inner.ssh_ca().await
    }
    async fn lease(&self, id: &LeaseId) -> Result<Option<Lease>> {
        self.inner.lease(id).await
    }
    async fn leases(&self, user: Option<&UserId>, include_ended: bool, limit: u32) -> Result<Vec<Lease>> {
        self.inner.leases(user, include_ended, limit).await
    }
    async fn leases_during(&self, from: Timestamp, to: Timestamp, limit: u32) -> Result<Vec<Lease>> {
        self.inner.leases_during(from, to, limit).await
    }
    async fn live_leases(&self, scope: &LeaseScope) -> Result<Vec<Lease>> {
        self.inner.live_leases(scope).await
    }
    async fn leases_to_end(&self, now: Timestamp, limit: u32) -> Result<Vec<Lease>> {
        self.inner.leases_to_end(now, limit).await
    }
    async fn revoked_unexpired(&self, kind: BackendKind, now: Timestamp) -> Result<Vec<String>> {
        self.inner.revoked_unexpired(kind, now).await
    }
    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<Record>> {
        self.inner.audit_after(after, limit).await
    }
    async fn audit_during(&self, from: Timestamp, to: Timestamp, after: u64, limit: u32) -> Result<Vec<Record>> {
        self.inner.audit_during(from, to, after, limit).await
    }
    async fn inventory_snapshots(&self, since: Timestamp) -> Result<Vec<stint_core::inventory::Imported>> {
        self.inner.inventory_snapshots(since).await
    }
    async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        self.inner.audit_head().await
    }
    async fn workload(&self, name: &WorkloadName) -> Result<Option<Workload>> {
        self.inner.workload(name).await
    }
    async fn workload_by_id(&self, id: &WorkloadId) -> Result<Option<Workload>> {
        self.inner.workload_by_id(id).await
    }
    async fn workloads(&self) -> Result<Vec<Workload>> {
        self.inner.workloads().await
    }
    async fn workload_key(&self, kid: &str) -> Result<Option<(WorkloadKey, Workload)>> {
        self.inner.workload_key(kid).await
    }
    async fn workload_keys(&self, workload: &WorkloadId) -> Result<Vec<WorkloadKey>> {
        self.inner.workload_keys(workload).await
    }
    async fn join_token(&self, lookup: &str) -> Result<Option<JoinToken>> {
        self.inner.join_token(lookup).await
    }
    async fn scim_token(&self, lookup: &str) -> Result<Option<stint_core::scim::ScimToken>> {
        self.inner.scim_token(lookup).await
    }
    async fn scim_tokens(&self) -> Result<Vec<stint_core::scim::ScimToken>> {
        self.inner.scim_tokens().await
    }
    async fn expiring_unalerted(&self, before: stint_core::Timestamp) -> Result<Vec<User>> {
        self.inner.expiring_unalerted(before).await
    }
    async fn scim_profiles(&self) -> Result<Vec<(stint_core::ids::UserId, stint_core::scim::ScimProfile)>> {
        self.inner.scim_profiles().await
    }
    async fn scim_groups(&self) -> Result<Vec<stint_core::scim::ScimGroup>> {
        self.inner.scim_groups().await
    }
}

/// As [`spawn_app_at`], on a [`PausingStore`].
pub async fn spawn_app_pausing(backend: Backend, extra_toml: &str, start: Timestamp) -> (TestApp, Arc<PausingStore>) {
    let pausing = std::sync::Mutex::new(None);
    let app = spawn_app_wrapped(backend, extra_toml, start, &|inner| {
        let store = Arc::new(PausingStore { inner, armed: false.into(), reached: tokio::sync::Semaphore::new(0), resume: tokio::sync::Semaphore::new(0) });
        *pausing.lock().unwrap() = Some(store.clone());
        store
    })
    .await;
    let store = pausing.lock().unwrap().take().unwrap();
    (app, store)
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, "").await
}

/// Starts a server with `extra_toml` appended to an otherwise default configuration.
pub async fn spawn_app_with(backend: Backend, extra_toml: &str) -> TestApp {
    spawn_app_at(backend, extra_toml, Timestamp(1_800_000_000)).await
}

/// The clock's reading when the real time matters (tokens from a real identity provider).
pub fn real_now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
}

/// As [`spawn_app_with`], with the test's clock starting at `start`.
pub async fn spawn_app_at(backend: Backend, extra_toml: &str, start: Timestamp) -> TestApp {
    spawn_app_wrapped(backend, extra_toml, start, &|store| store).await
}

/// The store a server uses, made from the real one.
type Wrap<'a> = &'a (dyn Fn(Arc<dyn Store>) -> Arc<dyn Store> + Sync);

async fn spawn_app_wrapped(backend: Backend, extra_toml: &str, start: Timestamp, wrap: Wrap<'_>) -> TestApp {
    spawn_app_on(&pg_url(), backend, extra_toml, start, wrap).await
}

/// As [`spawn_app_with`], on PostgreSQL at `url` (a private cluster a test starts and stops).
pub async fn spawn_app_on_postgres(url: &str, extra_toml: &str) -> TestApp {
    spawn_app_on(url, Backend::Postgres, extra_toml, Timestamp(1_800_000_000), &|store| store).await
}

async fn spawn_app_on(url: &str, backend: Backend, extra_toml: &str, start: Timestamp, wrap: Wrap<'_>) -> TestApp {
    let data_dir = std::env::temp_dir().join(unique("stint-test"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let cfg_path = data_dir.join("stint.toml");
    std::fs::write(&cfg_path, extra_toml).unwrap();
    let schema = matches!(backend, Backend::Postgres).then(|| unique("stint_t"));
    let (_, kek_file) = MasterKey::generate(&mut rand_core::OsRng);
    let pg = schema.as_deref().map(|s| (url, s));
    let mut app = start_server(data_dir, cfg_path, pg, kek_file, ManualClock::new(start), None, wrap).await;
    assert!(!app.bootstrap_token.is_empty(), "a fresh store offers a bootstrap token");
    app.pg_schema = schema;
    app
}

/// Starts a server on `data_dir` with the configuration at `cfg_path`, on SQLite there or on
/// PostgreSQL at `pg`'s URL in its schema. The returned app does not own the schema (it is not
/// dropped with it).
/// `public_url` defaults to the listening address.
async fn start_server(
    data_dir: PathBuf,
    cfg_path: PathBuf,
    pg: Option<(&str, &str)>,
    kek_file: String,
    clock: ManualClock,
    public_url: Option<String>,
    wrap: Wrap<'_>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let over = Overrides { listen: Some(addr.to_string()), data_dir: Some(data_dir.clone()), public_url, ..Default::default() };
    let cfg = Config::load(Some(&cfg_path), over).unwrap();
    let store: Arc<dyn Store> = match pg {
        None => stint_store::open("sqlite", &data_dir).await.unwrap(),
        Some((url, schema)) => {
            Arc::new(stint_store::PostgresStore::connect_with_schema(url, Some(schema)).await.expect("PostgreSQL must be reachable at STINT_TEST_POSTGRES_URL"))
        }
    };
    let store = wrap(store);
    let kek = MasterKey::from_file_contents(&kek_file).unwrap();
    let work = Arc::new(CountingWork { inner: InlinePasswordWork::new(&mut rand_core::OsRng).unwrap(), verifies: AtomicUsize::new(0) });
    let app = App::with_password_work(&cfg, store.clone(), Arc::new(clock.clone()), kek, work.clone()).await.unwrap();
    let bootstrap_token = app.startup.bootstrap_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
    let state = app.state.clone();
    tokio::spawn(app.serve(listener, std::future::pending()));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        clock,
        bootstrap_token,
        state,
        store,
        work,
        data_dir,
        pg_schema: None,
        pg_url: pg.map_or_else(pg_url, |(u, _)| u.to_owned()),
        kek_file,
        cfg_path,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(schema) = self.pg_schema.take() {
            // Drop the schema on a separate thread: Drop cannot await.
            let url = self.pg_url.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                        tokio::spawn(conn);
                        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
                    }
                });
            })
            .join();
        }
    }
}

pub async fn body(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

impl TestApp {
    /// The server's master key, to open what it sealed.
    pub fn master_key(&self) -> MasterKey {
        MasterKey::from_file_contents(&self.kek_file).unwrap()
    }

    /// Another replica of this PostgreSQL-backed server: its own process state and clock
    /// reading, the same schema, configuration and master key.
    pub async fn replica(&self) -> TestApp {
        let schema = self.pg_schema.as_deref().expect("replicas share a PostgreSQL store");
        let data_dir = std::env::temp_dir().join(unique("stint-replica"));
        std::fs::create_dir_all(&data_dir).unwrap();
        // Behind one load balancer, replicas share the public URL: the issuer of every token.
        let pg = Some((self.pg_url.as_str(), schema));
        start_server(data_dir, self.cfg_path.clone(), pg, self.kek_file.clone(), self.clock.clone(), Some(self.base.clone()), &|s| s).await
    }

    /// The PostgreSQL schema holding this server's tables.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg_schema.as_deref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, payload: Value) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(path)).json(&payload);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        body(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        body(req.send().await.unwrap()).await
    }

    pub async fn enroll(&self, code: &str) -> Vec<u8> {
        let (s, v) = self.post("/v1/enroll", None, json!({ "code": code, "password": PASSWORD })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        data_encoding::BASE32_NOPAD.decode(v["totp_secret"].as_str().unwrap().as_bytes()).unwrap()
    }

    pub fn totp(&self, secret: &[u8]) -> String {
        stint_core::totp::code_at(secret, stint_core::Clock::now(&self.clock))
    }

    pub async fn login_raw(&self, name: &str, password: &str, totp: &str) -> (StatusCode, Value) {
        self.post("/v1/auth/login", None, json!({ "username": name, "password": password, "totp": totp })).await
    }

    /// Logs in at a fresh TOTP step (moves the clock 30 s so no code is reused).
    pub async fn login(&self, name: &str, secret: &[u8]) -> Person {
        self.clock.advance(30);
        let (s, v) = self.login_raw(name, PASSWORD, &self.totp(secret)).await;
        assert_eq!(s, StatusCode::OK, "login {name}: {v}");
        Person {
            name: name.to_owned(),
            password: PASSWORD.to_owned(),
            secret: secret.to_vec(),
            session: v["session_token"].as_str().unwrap().to_owned(),
            session_id: v["session_id"].as_str().unwrap().to_owned(),
        }
    }

    /// Bootstrap → enroll → login of the first administrator.
    pub async fn admin(&self) -> Person {
        let (s, v) = self.post("/v1/bootstrap", None, json!({ "token": self.bootstrap_token, "username": "root" })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let secret = self.enroll(v["enrollment_code"].as_str().unwrap()).await;
        self.login("root", &secret).await
    }

    /// An administrator adds `name` in `groups`; they enroll and log in.
    pub async fn person(&self, admin: &Person, name: &str, groups: &[&str]) -> Person {
        let (s, v) = self.post("/v1/users", Some(&admin.session), json!({ "name": name, "groups": groups })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let secret = self.enroll(v["enrollment_code"].as_str().unwrap()).await;
        self.login(name, &secret).await
    }

    pub async fn assume(&self, p: &Person, role: &str, ttl: Option<&str>) -> (StatusCode, Value) {
        let mut b = json!({ "role": role });
        if let Some(t) = ttl {
            b["ttl"] = json!(t);
        }
        self.post("/v1/assume", Some(&p.session), b).await
    }

    pub async fn token(&self, p: &Person, role: &str) -> String {
        let (s, v) = self.assume(p, role, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let resp = self.http.post(self.url("/v1/introspect")).form(&[("token", token)]).send().await.unwrap();
        let (s, v) = body(resp).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// The lease `id` as `stint leases` shows it to its holder `p`.
    pub async fn lease_shown(&self, p: &Person, id: &str) -> Value {
        let (s, v) = self.get("/v1/leases?all=true", Some(&p.session)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v.as_array().unwrap().iter().find(|l| l["id"] == id).cloned().unwrap_or_else(|| panic!("lease {id} is listed: {v}"))
    }

    /// How many refusals recorded as `event` are on the record, per reason: those written as
    /// their own record and those counted in a `refusals.folded` summary (the open folding
    /// windows are closed first).
    pub async fn refusals_on_record(&self, event: &str) -> std::collections::BTreeMap<String, u64> {
        self.state.broker.flush_refusals(true).await.unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for r in self.store.audit_after(0, 100_000).await.unwrap() {
            let n = match r.event.as_str() {
                e if e == event => 1,
                "refusals.folded" if r.details.get("event").map(String::as_str) == Some(event) => r.details["count"].parse::<u64>().unwrap(),
                _ => continue,
            };
            *counts.entry(r.reason).or_insert(0) += n;
        }
        counts
    }

    pub async fn audit_head(&self) -> u64 {
        self.store.audit_head().await.unwrap().map_or(0, |h| h.0)
    }

    pub async fn audit_events_after(&self, seq: u64) -> Vec<(String, String, String)> {
        self.store.audit_after(seq, 1000).await.unwrap().into_iter().map(|r| (r.event, r.outcome.as_str().to_owned(), r.reason)).collect()
    }
}

/// Sends `n` requests at once (request `i` is `request(i)`), each from its own task; their
/// answers, in the order sent.
pub async fn at_once(n: usize, request: impl Fn(usize) -> reqwest::RequestBuilder) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let req = request(i);
            tokio::spawn(async move { body(req.send().await.unwrap()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// Asserts that exactly one of `answers` succeeded and that every other one is `reuse`, the
/// answer to a later, sequential reuse of the same one-time thing; returns the success.
pub fn one_winner(answers: Vec<(StatusCode, Value)>, reuse: &(StatusCode, Value)) -> Value {
    let (won, lost): (Vec<_>, Vec<_>) = answers.into_iter().partition(|(s, _)| s.is_success());
    assert_eq!(won.len(), 1, "exactly one wins: {won:?} {lost:?}");
    assert!(!reuse.0.is_success(), "{reuse:?}");
    for answer in &lost {
        assert_eq!(answer, reuse, "a lost race is answered as a later reuse");
    }
    won.into_iter().next().unwrap().1
}

/// Runs `$f(app)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::common::spawn_app(super::common::Backend::Sqlite).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::common::spawn_app(super::common::Backend::Postgres).await).await;
            })*
        }
    };
}

impl TestApp {
    /// Waits (at most 30 s) until the reaper has ended every revoked or expired lease: a
    /// revocation ends leases at once unless the periodic reaper was mid-run, which then
    /// finishes the job right after.
    pub async fn settle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = stint_core::Clock::now(&self.clock);
            if self.store.leases_to_end(now, 1).await.unwrap().is_empty() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "leases still waiting for the reaper");
            self.state.broker.reap().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
