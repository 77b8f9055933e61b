//! The agent at work: enrolls once, then keeps each credential fresh, checks with the server
//! that it still may hold them, and hands them to the endpoint and the files.
//!
//! Each credential has its own loop ([`Agent::keep`]). A refusal that ends everything (the
//! workload disabled, its key revoked with no platform token to enroll again) is broadcast to
//! every loop, which drops what it holds; the endpoint then answers 403 with the code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use rand_core::{OsRng, RngCore};
use stint_api::workloads::WorkloadCredsBody;
use stint_core::crypto::SigningKey;
use stint_core::ids::WorkloadName;
use stint_core::secret::SecretString;
use stint_core::Timestamp;
use tokio::sync::watch;

use super::api::{Api, ApiError, StatusReply};
use super::cred::{Held, Served};
use super::endpoint::Endpoint;
use super::schedule::{jitter_from, refresh_after, retry_after};
use super::state::{self, CredentialStatus, Identity, Problem, Status};

/// How the agent proves who it is the first time.
#[derive(Clone, Debug)]
pub enum Proof {
    /// A one-time join token (`stint workload join-token`), read from this file.
    JoinToken(PathBuf),
    /// A token the platform issues (a Kubernetes service-account token), read from this file
    /// at each enrollment, since platforms rotate it.
    PlatformToken(PathBuf),
}

/// Everything the agent was asked to do, checked.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: String,
    pub workload: WorkloadName,
    pub proof: Proof,
    pub role: Option<String>,
    pub backend: Option<String>,
    pub ttl: Option<String>,
    pub state_dir: PathBuf,
    pub token_file: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    /// An SSH certificate to keep for a public key: `--ssh-public-key`, `--ssh-backend`.
    pub ssh: Option<SshOut>,
    pub on_change: Option<String>,
    pub check_interval: Duration,
}

/// An OpenSSH certificate the agent keeps fresh for a key the service holds.
#[derive(Clone, Debug)]
pub struct SshOut {
    /// The role's SSH backend that signs it.
    pub backend: String,
    /// The public key, as its `.pub` file says it.
    pub public_key: String,
    /// Where the certificate goes: beside the key, as `ssh` looks for it (`KEY-cert.pub`).
    pub cert_file: PathBuf,
}

/// One credential the agent keeps, and where it goes.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its place in `status.json`.
    pub index: usize,
    pub backend: Option<String>,
    /// Served on the container endpoint (AWS credentials).
    pub endpoint: bool,
    pub token_file: Option<PathBuf>,
    pub env_file: Option<PathBuf>,
    /// The public key sent to be certified, and where its certificate goes.
    pub ssh: Option<(String, PathBuf)>,
}

impl Job {
    /// What it is for, as `status.json` says.
    pub fn purposes(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.endpoint {
            p.push("aws-endpoint".to_owned());
        }
        if self.env_file.is_some() {
            p.push("env-file".to_owned());
        }
        if self.token_file.is_some() {
            p.push("token-file".to_owned());
        }
        if self.ssh.is_some() {
            p.push("ssh-cert".to_owned());
        }
        p
    }
}

/// The credentials to keep: the role's (or `--backend`'s) for the endpoint and the env file,
/// and the role token for `--token-file` (one credential when `--backend token`).
pub fn jobs(cfg: &Config) -> Vec<Job> {
    let primary_is_token = cfg.backend.as_deref() == Some("token");
    let mut jobs = vec![Job {
        index: 0,
        backend: cfg.backend.clone(),
        endpoint: !primary_is_token,
        token_file: if primary_is_token { cfg.token_file.clone() } else { None },
        env_file: cfg.env_file.clone(),
        ssh: None,
    }];
    if let (Some(file), false) = (&cfg.token_file, primary_is_token) {
        jobs.push(Job { index: jobs.len(), backend: Some("token".into()), endpoint: false, token_file: Some(file.clone()), env_file: None, ssh: None });
    }
    if let Some(ssh) = &cfg.ssh {
        let out = Some((ssh.public_key.clone(), ssh.cert_file.clone()));
        jobs.push(Job { index: jobs.len(), backend: Some(ssh.backend.clone()), endpoint: false, token_file: None, env_file: None, ssh: out });
    }
    jobs
}

/// Why a credential is no longer kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub code: String,
    pub message: String,
}

/// What to do about a refusal or failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The workload may hold nothing: every credential is dropped.
    StopAll,
    /// The key is revoked: enroll again if a platform token allows it, else stop everything.
    KeyRevoked,
    /// This credential's lease was revoked: drop it and stop refreshing it.
    StopOne,
    /// Worth trying again later (server down, rate limited, misconfiguration an operator may fix).
    Retry,
}

/// How a failed call is treated.
pub fn verdict(e: &ApiError) -> Verdict {
    match e {
        ApiError::Refused { code, .. } => match code.as_str() {
            "workload_disabled" => Verdict::StopAll,
            "key_revoked" => Verdict::KeyRevoked,
            "lease_revoked" => Verdict::StopOne,
            _ => Verdict::Retry,
        },
        ApiError::Unavailable { .. } => Verdict::Retry,
    }
}

/// What the server's status check says of a credential.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing {
    Live,
    /// Ended on its own (expired, or the server let it go): get a new one now.
    Ended,
    /// A refusal, as the server would have answered it.
    Refused(&'static str),
}

pub fn standing(r: &StatusReply) -> Standing {
    if !r.live {
        return Standing::Refused("workload_disabled");
    }
    match &r.lease {
        Some(l) if matches!(l.status.as_str(), "revoked" | "revoking") => Standing::Refused("lease_revoked"),
        Some(l) if !l.live => Standing::Ended,
        _ => Standing::Live,
    }
}

/// The line an operator reads when the agent stops: what happened and what to do.
pub fn operator_hint(code: &str, cfg: &Config) -> String {
    let w = &cfg.workload;
    match (code, &cfg.proof) {
        ("workload_disabled", _) => format!(
            "workload {w} is disabled, so the agent dropped its credentials and answers 403 workload_disabled; \
             if that is a mistake, enable it (`stint workload enable {w}`) and restart the agent"
        ),
        ("key_revoked", Proof::JoinToken(f)) => format!(
            "the agent's key for workload {w} was revoked, so it dropped its credentials and answers 403 key_revoked; \
             to enroll again, write a new join token (`stint workload join-token {w}`) to {} and restart the agent",
            f.display()
        ),
        ("key_revoked", Proof::PlatformToken(f)) => format!(
            "the agent's key for workload {w} was revoked and enrolling again with the platform token in {} was refused; \
             check the workload's platform binding (`stint workload show {w}`) and restart the agent",
            f.display()
        ),
        ("lease_revoked", _) => format!(
            "an administrator revoked the lease of workload {w}'s credential, so the agent dropped it and answers 403 lease_revoked; \
             restart the agent to ask for a new one, or disable the workload (`stint workload disable {w}`) if it must hold none"
        ),
        (code, _) => format!("the server refused workload {w} ({code}); see `stint agent status`"),
    }
}

pub(super) use stint_os::now;

/// This machine's clock in milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The enrolled key and who it stands for.
pub struct Enrolled {
    pub key: SigningKey,
    pub identity: Identity,
}

/// The running agent, shared by the credential loops.
pub struct Agent {
    pub cfg: Config,
    pub(super) api: Api,
    endpoint: Arc<Endpoint>,
    pub(super) enrolled: RwLock<Option<Arc<Enrolled>>>,
    /// Serializes enrollment, so two loops seeing `key_revoked` enroll once.
    pub(super) enrolling: tokio::sync::Mutex<()>,
    pub(super) role: RwLock<String>,
    status: Mutex<Status>,
    stop: watch::Sender<Option<Stop>>,
}

impl Agent {
    pub fn new(cfg: Config, api: Api, endpoint: Arc<Endpoint>, status: Status) -> Arc<Agent> {
        let (stop, _) = watch::channel(None);
        Arc::new(Agent {
            cfg,
            api,
            endpoint,
            enrolled: RwLock::new(None),
            enrolling: tokio::sync::Mutex::new(()),
            role: RwLock::new(String::new()),
            status: Mutex::new(status),
            stop,
        })
    }

    /// Updates `status.json`; a failure to write it is logged, not fatal.
    pub fn update_status(&self, f: impl FnOnce(&mut Status)) {
        let mut s = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut s);
        s.updated_at = now().to_rfc3339();
        if let Err(e) = state::write_status(&self.cfg.state_dir, &s) {
            tracing::warn!("cannot record the agent's status: {e:#}");
        }
    }

    fn update_job(&self, job: &Job, f: impl FnOnce(&mut CredentialStatus)) {
        self.update_status(|s| {
            if let Some(c) = s.credentials.get_mut(job.index) {
                f(c);
            }
        });
    }

    pub(super) fn current(&self) -> Option<Arc<Enrolled>> {
        self.enrolled.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A fresh assertion with the enrolled key, and the key's id.
    fn assertion(&self) -> Option<(SecretString, String)> {
        let e = self.current()?;
        let a = stint_core::workload::sign_assertion(&e.key, &self.cfg.workload, &e.identity.audience, now(), &mut OsRng);
        Some((a, e.key.kid().to_owned()))
    }

    /// Stops every credential: the workload may hold none.
    fn stop_all(&self, code: &str, message: &str) {
        tracing::error!(code, "{}", operator_hint(code, &self.cfg));
        self.update_status(|s| s.stopped = Some(problem(code, message)));
        self.stop.send_replace(Some(Stop { code: code.into(), message: message.into() }));
    }

    /// Keeps one credential fresh until the workload may hold it no longer.
    pub async fn keep(self: Arc<Self>, job: Job) {
        let mut stop = self.stop.subscribe();
        let start = Instant::now();
        let mut t = Turn { held: None, failures: 0, refresh_at: start, check_at: start + self.cfg.check_interval };
        loop {
            let stopped = stop.borrow_and_update().clone();
            if let Some(s) = stopped {
                self.drop_held(&job, &s);
                return;
            }
            let now = Instant::now();
            if t.held.as_ref().is_some_and(|h| now >= h.deadline) {
                t.held = None;
                self.expire(&job);
            }
            let next = if now >= t.refresh_at {
                self.refresh(&job, &mut t, now).await
            } else if t.held.is_some() && now >= t.check_at {
                self.check_held(&job, &mut t, now).await
            } else {
                tokio::select! {
                    () = tokio::time::sleep_until(t.wake().into()) => {}
                    _ = stop.changed() => {}
                }
                Next::Continue
            };
            match next {
                Next::Continue => {}
                Next::Stop => return,
                Next::RefreshNow => {
                    t.refresh_at = Instant::now();
                    // The lease belonged to what came before (an ended lease, a revoked key).
                    if let Some(h) = &mut t.held {
                        h.lease_id = None;
                    }
                }
            }
        }
    }

    /// Asks for a new credential; on failure, schedules the retry.
    async fn refresh(&self, job: &Job, t: &mut Turn, now: Instant) -> Next {
        let previous = t.held.as_ref().and_then(|h| h.lease_id.clone());
        match self.fetch(job, previous.as_deref()).await {
            Ok(h) => {
                let (holding, lifetime) = self.install(job, h);
                t.held = Some(holding);
                t.failures = 0;
                t.refresh_at = Instant::now() + refresh_after(lifetime, jitter_from(OsRng.next_u32()));
                t.check_at = Instant::now() + self.cfg.check_interval;
                self.update_job(job, |c| c.next_refresh_at = Some(at(t.refresh_at)));
                Next::Continue
            }
            Err(Failure { error, kid }) => {
                let next = self.failed(job, &error, kid.as_deref()).await;
                if matches!(next, Next::Continue) {
                    let remaining = t.held.as_ref().map_or(Duration::ZERO, |h| h.deadline.saturating_duration_since(now));
                    t.refresh_at = Instant::now() + retry_after(t.failures, remaining);
                    t.failures = t.failures.saturating_add(1);
                    self.update_job(job, |c| c.next_refresh_at = Some(at(t.refresh_at)));
                }
                next
            }
        }
    }

    /// Asks the server whether the held credential may still be held.
    async fn check_held(&self, job: &Job, t: &mut Turn, now: Instant) -> Next {
        t.check_at = now + self.cfg.check_interval;
        let Some(h) = &t.held else { return Next::Continue };
        match self.check(h).await {
            Ok(Standing::Live) => Next::Continue,
            Ok(Standing::Ended) => Next::RefreshNow,
            Ok(Standing::Refused(code)) => {
                let e = ApiError::Refused { status: 403, code: code.into(), message: format!("the server's status check says {code}") };
                self.failed(job, &e, None).await
            }
            Err(Failure { error, kid }) => self.failed(job, &error, kid.as_deref()).await,
        }
    }

    /// Handles a failed call: what the loop does next.
    async fn failed(&self, job: &Job, e: &ApiError, kid: Option<&str>) -> Next {
        match verdict(e) {
            Verdict::Retry => {
                tracing::warn!(code = e.code(), backend = job.backend.as_deref().unwrap_or("(role's)"), "cannot refresh a credential: {e}");
                self.update_job(job, |c| c.last_error = Some(problem(e.code(), e.message())));
                Next::Continue
            }
            Verdict::StopOne => {
                tracing::error!(code = e.code(), "{}", operator_hint(e.code(), &self.cfg));
                self.drop_held(job, &Stop { code: e.code().into(), message: e.message().into() });
                Next::Stop
            }
            Verdict::KeyRevoked => {
                if let Some(kid) = kid {
                    if self.reenroll(kid).await {
                        return Next::RefreshNow;
                    }
                }
                // The loop sees the stop on its next turn and drops what it holds.
                self.stop_all(e.code(), e.message());
                Next::Continue
            }
            Verdict::StopAll => {
                self.stop_all(e.code(), e.message());
                Next::Continue
            }
        }
    }

    async fn fetch(&self, job: &Job, previous: Option<&str>) -> Result<Held, Failure> {
        let (assertion, kid) = self.assertion().ok_or_else(|| Failure::new(not_enrolled(), None))?;
        let role = self.role.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let ask = WorkloadCredsBody {
            assertion: assertion.expose().to_owned(),
            role: role.to_string(),
            backend: job.backend.clone(),
            ttl: self.cfg.ttl.clone(),
            previous_lease: previous.map(str::to_owned),
            public_key: job.ssh.as_ref().map(|(key, _)| key.clone()),
        };
        let reply = self.api.creds(&ask).await.map_err(|e| Failure::new(e, Some(kid)))?;
        let held = Held::from_response(reply, now_ms()).map_err(|m| Failure::new(ApiError::Unavailable { code: "bad_response", message: m }, None))?;
        if held.lifetime.is_zero() {
            let message = format!("the server sent a credential that expired at {} already; is this machine's clock right?", held.expires_at);
            return Err(Failure::new(ApiError::Unavailable { code: "credential_expired", message }, None));
        }
        Ok(held)
    }

    async fn check(&self, h: &Holding) -> Result<Standing, Failure> {
        let (assertion, kid) = self.assertion().ok_or_else(|| Failure::new(not_enrolled(), None))?;
        let reply = self.api.status(assertion.expose(), h.lease_id.as_deref()).await.map_err(|e| Failure::new(e, Some(kid)))?;
        Ok(standing(&reply))
    }

    /// Hands a new credential to the endpoint and the files.
    fn install(&self, job: &Job, h: Held) -> (Holding, Duration) {
        let deadline = Instant::now() + h.lifetime;
        tracing::info!(
            workload = %self.cfg.workload, backend = %h.backend, kind = %h.kind, lease = h.lease_id.as_deref().unwrap_or("-"), expires_at = %h.expires_at,
            "new credential"
        );
        let mut problems = Vec::new();
        if job.endpoint {
            match h.container_body() {
                Ok(body) => self.endpoint.set(Served::Cached { body, deadline }),
                Err(reason) => {
                    let reason = format!("{reason}; the container endpoint serves AWS credentials only (pick an AWS backend with --backend)");
                    self.endpoint.set(Served::Pending { code: "not_aws", reason: reason.clone() });
                    problems.push(problem("not_aws", &reason));
                }
            }
        }
        let mut changed = false;
        if let Some(path) = &job.token_file {
            match h.token() {
                Ok(t) => changed |= self.write_file(path, t, &mut problems),
                Err(m) => problems.push(problem("no_token", &m)),
            }
        }
        if let Some(path) = &job.env_file {
            changed |= self.write_file(path, &h.env_file(), &mut problems);
        }
        if let Some((_, path)) = &job.ssh {
            match h.value("certificate") {
                Some(cert) => changed |= self.write_file(path, &SecretString::new(format!("{}\n", cert.expose())), &mut problems),
                None => problems
                    .push(problem("no_certificate", &format!("backend {} sent no SSH certificate; --ssh-backend names an SSH backend of the role", h.backend))),
            }
        }
        if changed {
            self.on_change();
        }
        for p in &problems {
            tracing::warn!(code = %p.code, "{}", p.message);
        }
        let stamp = now().to_rfc3339();
        self.update_job(job, |c| {
            c.kind = Some(h.kind.clone());
            c.lease_id = h.lease_id.clone();
            c.state = "live".into();
            c.expires_at = Some(h.expires_at.to_rfc3339());
            c.last_refresh_at = Some(stamp);
            c.last_error = problems.pop();
        });
        (Holding { lease_id: h.lease_id, deadline }, h.lifetime)
    }

    fn write_file(&self, path: &Path, contents: &SecretString, problems: &mut Vec<Problem>) -> bool {
        match state::write_atomic(path, contents.expose().as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                problems.push(problem("file_write_failed", &format!("cannot write {}: {e}", path.display())));
                false
            }
        }
    }

    /// The credential reached its end without a replacement: nothing is served from it.
    fn expire(&self, job: &Job) {
        tracing::warn!(
            backend = job.backend.as_deref().unwrap_or("(role's)"),
            "a credential expired before the agent could replace it; nothing is served from it until the server answers"
        );
        if job.endpoint {
            self.endpoint.set(Served::Pending {
                code: "credential_expired",
                reason: "the agent's credential expired and the server has not given a new one yet; see `stint agent status`".into(),
            });
        }
        self.remove_files(job);
        self.update_job(job, |c| c.state = "expired".into());
    }

    /// Drops the credential for good after a revocation: 403 with the code, files removed.
    fn drop_held(&self, job: &Job, s: &Stop) {
        if job.endpoint {
            self.endpoint.set(Served::Refused { code: s.code.clone(), message: operator_hint(&s.code, &self.cfg) });
        }
        self.remove_files(job);
        self.update_job(job, |c| {
            c.state = "revoked".into();
            c.next_refresh_at = None;
            c.last_error = Some(problem(&s.code, &s.message));
        });
    }

    fn remove_files(&self, job: &Job) {
        let mut removed = false;
        for path in job.token_file.iter().chain(job.env_file.iter()).chain(job.ssh.iter().map(|(_, cert)| cert)) {
            match state::remove(path) {
                Ok(()) => removed = true,
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
        if removed {
            self.on_change();
        }
    }

    /// Runs `--on-change` with `sh -c`, in the background; its failure is logged.
    fn on_change(&self) {
        let Some(cmd) = self.cfg.on_change.clone() else { return };
        tokio::task::spawn_blocking(move || match std::process::Command::new("sh").arg("-c").arg(&cmd).status() {
            Ok(s) if s.success() => tracing::debug!("--on-change command succeeded"),
            Ok(s) => tracing::warn!("the --on-change command failed ({s})"),
            Err(e) => tracing::warn!("cannot run the --on-change command: {e}"),
        });
    }
}

/// What a credential loop remembers of what it holds.
struct Holding {
    lease_id: Option<String>,
    deadline: Instant,
}

/// A credential loop's state between turns.
struct Turn {
    held: Option<Holding>,
    /// Consecutive failed refreshes, for the backoff.
    failures: u32,
    refresh_at: Instant,
    check_at: Instant,
}

impl Turn {
    /// When the loop next has something to do: refresh, check, or drop an expired credential.
    fn wake(&self) -> Instant {
        self.held.as_ref().map_or(self.refresh_at, |h| self.refresh_at.min(self.check_at).min(h.deadline))
    }
}

/// What a credential loop does after a turn.
enum Next {
    Continue,
    /// Ask for a new credential now.
    RefreshNow,
    /// This credential is done with.
    Stop,
}

/// A failed call, with the key it was signed with (to know which key a `key_revoked` is about).
struct Failure {
    error: ApiError,
    kid: Option<String>,
}

impl Failure {
    fn new(error: ApiError, kid: Option<String>) -> Failure {
        Failure { error, kid }
    }
}

fn not_enrolled() -> ApiError {
    ApiError::Unavailable { code: "not_enrolled", message: "the agent has not enrolled yet".into() }
}

pub(super) fn problem(code: &str, message: &str) -> Problem {
    Problem { code: code.into(), message: message.into(), at: now().to_rfc3339() }
}

/// A monotonic instant as wall-clock time, for people.
fn at(i: Instant) -> String {
    let ahead = i.saturating_duration_since(Instant::now()).as_secs() as i64;
    Timestamp(now().0 + ahead).to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::super::api::LeaseStatus;
    use super::*;

    fn cfg(backend: Option<&str>, token_file: bool, env_file: bool) -> Config {
        Config {
            server: "http://127.0.0.1:7807".into(),
            workload: WorkloadName::parse("api").unwrap(),
            proof: Proof::JoinToken("/run/join".into()),
            role: None,
            backend: backend.map(String::from),
            ttl: None,
            state_dir: "/tmp/x".into(),
            token_file: token_file.then(|| "/run/token".into()),
            env_file: env_file.then(|| "/run/env".into()),
            ssh: None,
            on_change: None,
            check_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_role_token_file_gets_its_own_credential_unless_the_backend_is_the_token() {
        let j = jobs(&cfg(None, false, false));
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].purposes(), ["aws-endpoint"]);
        let j = jobs(&cfg(Some("pg"), true, true));
        assert_eq!(
            j.iter().map(|j| (j.backend.as_deref(), j.purposes())).collect::<Vec<_>>(),
            [(Some("pg"), vec!["aws-endpoint".to_owned(), "env-file".to_owned()]), (Some("token"), vec!["token-file".to_owned()])]
        );
        let j = jobs(&cfg(Some("token"), true, false));
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].purposes(), ["token-file"]);
        // An SSH certificate is a credential of its own, on the SSH backend, for the key.
        let mut c = cfg(None, true, false);
        c.ssh = Some(SshOut { backend: "servers".into(), public_key: "ssh-ed25519 AAAA svc".into(), cert_file: "/run/id-cert.pub".into() });
        let j = jobs(&c);
        assert_eq!(
            j.iter().map(|j| (j.index, j.backend.as_deref(), j.purposes())).collect::<Vec<_>>(),
            [(0, None, vec!["aws-endpoint".to_owned()]), (1, Some("token"), vec!["token-file".to_owned()]), (2, Some("servers"), vec!["ssh-cert".to_owned()])]
        );
        assert_eq!(j[2].ssh.as_ref().map(|(k, f)| (k.as_str(), f.to_str().unwrap())), Some(("ssh-ed25519 AAAA svc", "/run/id-cert.pub")));
    }

    #[test]
    fn only_revocations_stop_refreshing() {
        let refused = |code: &str| ApiError::Refused { status: 403, code: code.into(), message: String::new() };
        assert_eq!(verdict(&refused("workload_disabled")), Verdict::StopAll);
        assert_eq!(verdict(&refused("key_revoked")), Verdict::KeyRevoked);
        assert_eq!(verdict(&refused("lease_revoked")), Verdict::StopOne);
        for code in ["role_not_granted", "too_many_leases", "invalid_assertion", "assertion_expired"] {
            assert_eq!(verdict(&refused(code)), Verdict::Retry, "{code}");
        }
        assert_eq!(verdict(&ApiError::Unavailable { code: "server_unreachable", message: String::new() }), Verdict::Retry);
    }

    #[test]
    fn the_status_check_reads_disable_revocation_and_end() {
        let reply = |live: bool, lease: Option<(&str, bool)>| StatusReply { live, lease: lease.map(|(s, l)| LeaseStatus { status: s.into(), live: l }) };
        assert_eq!(standing(&reply(true, None)), Standing::Live);
        assert_eq!(standing(&reply(true, Some(("active", true)))), Standing::Live);
        assert_eq!(standing(&reply(false, Some(("active", true)))), Standing::Refused("workload_disabled"));
        assert_eq!(standing(&reply(true, Some(("revoked", false)))), Standing::Refused("lease_revoked"));
        assert_eq!(standing(&reply(true, Some(("revoking", false)))), Standing::Refused("lease_revoked"));
        assert_eq!(standing(&reply(true, Some(("ended", false)))), Standing::Ended);
    }

    #[test]
    fn operators_are_told_what_to_do() {
        let c = cfg(None, false, false);
        assert!(operator_hint("workload_disabled", &c).contains("stint workload enable api"));
        assert!(operator_hint("key_revoked", &c).contains("stint workload join-token api") && operator_hint("key_revoked", &c).contains("/run/join"));
        assert!(operator_hint("lease_revoked", &c).contains("restart the agent"));
    }
}
