//! The use cases: everything stint does, written against the ports.
//!
//! Each operation parses its input into domain types, decides, and commits its changes
//! together with their audit records in one [`Change`]. Failures that a peer caused are
//! audited too, and change nothing else.

mod admin;
mod auth;
mod exchange;
mod inventory;
mod issue;
mod leases;
mod report;
mod requests;
mod revalidate;
mod scim;
mod sso;
mod tokens;
mod workloads;

use std::sync::{Arc, Mutex, RwLock};

use crate::audit::{Draft, Event, Outcome};
use crate::crypto::{MasterKey, PublicKey, SigningKey, StoredKey};
use crate::error::{Error, Result};
use crate::fold::{Admit, FoldConfig, FoldKey, Folder};
use crate::ids::GroupName;
use crate::password::NewPassword;
use crate::policy::Roles;
use crate::secret::SecretString;
use crate::store::{Change, Mutation, Store};
use crate::throttle::{Throttle, ThrottleConfig};
use crate::time::{Clock, Timestamp, Ttl};

pub use admin::{Disabled, ExpiredAccounts, KeyInfo, Terms, UserInfo};
pub use auth::{Caller, Enrolled, LoginRequest, NewCode, NewSession};
pub use exchange::{CiConfig, CiIssuer, CiIssuerConfig, CiLeased, ExchangeRequest, Exchanged, RoleTrust, CI_TTL_MAX_SECS, CI_TTL_MIN_SECS};
pub use inventory::Fetched;
pub use leases::{BackendChoice, LeaseAsk, Leased, ReapFailure, Reaped, SshBackendConfig};
pub use requests::{ApprovalConfig, RequestView};
pub use scim::{NewScimToken, ScimCaller, ScimPerson, ScimTokenInfo};

pub use crate::policy::CI_SUBJECT_PREFIX;
pub use revalidate::{RevalidateFailure, Revalidated};
pub use sso::{
    ClaimedPerson, DeviceCodes, DeviceRequest, IdentityProvider, Redeemed, Refreshed, SsoBegin, SsoCallback, SsoFlow, SsoOutcome, SsoProvider, SsoStarted,
};
pub use tokens::{Introspection, Issued, RoleChoice, WhoAmI};
pub use workloads::{
    AttestRequest, Enrolled as WorkloadEnrolled, JoinRequest, NewJoinToken, WorkloadAsk, WorkloadCaller, WorkloadCreds, WorkloadInfo, WorkloadStatus,
};

/// Settings the broker needs, already validated.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `iss` of every token; the public base URL of this server.
    pub issuer: String,
    /// `aud` of every token; introspection accepts any of them.
    pub audience: Vec<String>,
    pub session_ttl: Ttl,
    pub roles: Roles,
    /// Members may manage users, sessions and keys, and read the audit log.
    pub admin_group: GroupName,
    pub enrollment_ttl: Ttl,
    pub bootstrap_ttl: Ttl,
    pub throttle: ThrottleConfig,
    /// OpenID Providers people may log in through, in configuration order.
    pub sso: Vec<SsoProvider>,
    /// How often SSO sessions whose login got a refresh token are revalidated with their
    /// provider ([`Broker::revalidate_sessions`]).
    pub revalidate: Ttl,
    /// CI issuers and the roles' trust policies.
    pub ci: CiConfig,
    /// On-call schedules; calendar ones get their shifts from the host ([`Broker::set_shifts`]).
    pub oncall: Vec<crate::oncall::Schedule>,
    /// Roles through approval, when configured.
    pub approvals: Option<ApprovalConfig>,
    /// Break-glass, when configured.
    pub break_glass: Option<BreakGlassConfig>,
    /// SSH certificate backends (stint's own CA signs).
    pub ssh: Vec<SshBackendConfig>,
    /// User names the configuration gives to people outside the policies and on-call
    /// rotations (calendar `people_map`s): a first SSO login never takes one.
    pub named_people: Vec<crate::ids::Username>,
    /// The least visible characters of a reason people write ([`crate::reason::Reason`]).
    pub reason_min_chars: usize,
    /// What one person may hold at once.
    pub caps: Caps,
    /// How identical refusals are folded in the audit log.
    pub folding: FoldConfig,
    /// How SCIM provisioning maps to sign-in and groups.
    pub scim: crate::scim::ScimSettings,
    /// How long before an account's end its sponsor is alerted.
    pub expiry_alert: Ttl,
    /// Accounts whose end and sponsor the configuration sets (`[[users.account]]`).
    pub accounts: Vec<ConfiguredAccount>,
}

/// An account's end and sponsor, as `[[users.account]]` sets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfiguredAccount {
    pub name: crate::ids::Username,
    pub expires_at: Timestamp,
    pub sponsor: crate::ids::Username,
}

/// What one person or workload may hold at once, so a stolen session or agent key cannot
/// mint without bound. Enforced in the transaction that adds the session, key or lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub sessions_per_person: u32,
    pub leases_per_person: u32,
    /// Enrolled agent keys: one per running agent (a replica, a host).
    pub keys_per_workload: u32,
    pub leases_per_workload: u32,
}

impl Default for Caps {
    /// Generous: a person with a laptop, a desktop and a few shells holds a handful of
    /// sessions, and credentials expire within hours; a service runs some replicas, each
    /// with an agent that holds a credential or two and renews it before it expires.
    fn default() -> Self {
        Caps { sessions_per_person: 20, leases_per_person: 200, keys_per_workload: 100, leases_per_workload: 500 }
    }
}

/// Who may break the glass, for which role and how long.
#[derive(Clone, Debug)]
pub struct BreakGlassConfig {
    pub group: GroupName,
    pub role: crate::ids::RoleName,
    /// The longest break-glass grant (at most 1 h).
    pub max_duration: Ttl,
    /// The session must have logged in (with MFA) at most this long ago.
    pub fresh_login: Ttl,
}

/// A random name for this process, so replicas sharing a store can tell each other apart.
fn replica_id(rng: &mut dyn rand_core::CryptoRngCore) -> String {
    let mut b = [0u8; 8];
    rng.fill_bytes(&mut b);
    format!("replica-{}", data_encoding::HEXLOWER.encode(&b))
}

/// Argon2 is deliberately slow; the host runs it off the async workers.
#[async_trait::async_trait]
pub trait PasswordWork: Send + Sync {
    async fn hash(&self, password: NewPassword) -> Result<String>;
    /// Must spend the same work when `phc` is `None` (see [`crate::password::verify`]).
    async fn verify(&self, password: SecretString, phc: Option<String>) -> bool;
}

/// Runs password work on the calling thread; for tests and tools.
pub struct InlinePasswordWork {
    dummy: String,
}

impl InlinePasswordWork {
    pub fn new(rng: &mut dyn rand_core::CryptoRngCore) -> Result<Self> {
        Ok(InlinePasswordWork { dummy: dummy_hash(rng)? })
    }
}

/// A hash of a random password, verified against when the user does not exist.
pub fn dummy_hash(rng: &mut dyn rand_core::CryptoRngCore) -> Result<String> {
    let mut b = [0u8; 24];
    rng.fill_bytes(&mut b);
    let p = NewPassword::parse(SecretString::new(data_encoding::BASE32_NOPAD.encode(&b)))?;
    crate::password::hash(&p, rng)
}

#[async_trait::async_trait]
impl PasswordWork for InlinePasswordWork {
    async fn hash(&self, password: NewPassword) -> Result<String> {
        crate::password::hash(&password, &mut rand_core::OsRng)
    }
    async fn verify(&self, password: SecretString, phc: Option<String>) -> bool {
        crate::password::verify(&password, phc.as_deref(), &self.dummy)
    }
}

/// Where the broker reports what `/metrics` shows. Counters only; no secrets pass here.
pub trait Observer: Send + Sync {
    fn auth_failed(&self, reason: &str);
    fn issued(&self, role: &str);
    fn audit_appended(&self, n: usize);
    /// Break-glass was used (a flagged grant).
    fn break_glass(&self) {}
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {
    fn auth_failed(&self, _: &str) {}
    fn issued(&self, _: &str) {}
    fn audit_appended(&self, _: usize) {}
}

/// A source of cryptographic randomness.
pub type Entropy = Arc<dyn Fn() -> Box<dyn rand_core::CryptoRngCore + Send> + Send + Sync>;

/// The operating system's randomness.
pub fn os_entropy() -> Entropy {
    Arc::new(|| Box::new(rand_core::OsRng))
}

/// The signing key in use and the keys tokens may be verified with.
struct Keyring {
    signer: Arc<SigningKey>,
    public: Vec<PublicKey>,
    loaded_at: Timestamp,
}

pub struct Broker {
    cfg: BrokerConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    entropy: Entropy,
    kek: MasterKey,
    work: Arc<dyn PasswordWork>,
    observer: Arc<dyn Observer>,
    keyring: RwLock<Option<Arc<Keyring>>>,
    /// Per user (from one address) and per second factor.
    throttle: Mutex<Throttle>,
    /// Per address, across user names.
    addr_throttle: Mutex<Throttle>,
    /// Identical refusals counted in a window instead of written one by one.
    folds: Mutex<Folder>,
    /// SHA-256 of a token → its verified claims (see `Broker::verified`).
    verified_cache: RwLock<std::collections::HashMap<[u8; 32], Arc<crate::jwt::Claims>>>,
    /// The providers of `cfg.sso`, by name.
    idps: std::collections::BTreeMap<String, Arc<dyn IdentityProvider>>,
    /// The issuers of `cfg.ci`, by URL.
    ci_issuers: std::collections::BTreeMap<String, Arc<dyn CiIssuer>>,
    /// The on-call schedules, with the calendar shifts last read.
    oncall: RwLock<Vec<crate::oncall::Schedule>>,
    alerter: Arc<dyn crate::alerts::Alerter>,
    /// The credential backends other than SSH, by name.
    backends: std::collections::BTreeMap<String, Arc<dyn crate::backend::Backend>>,
    /// The backends `stint inventory fetch` may fetch snapshots through, by name.
    inventory_sources: std::collections::BTreeMap<String, Arc<dyn crate::inventory::InventorySource>>,
    /// The SSH CA, when an SSH backend is configured (loaded by `start`).
    ssh_ca: RwLock<Option<Arc<SigningKey>>>,
    /// This process among the replicas (holder of the reaper lock).
    replica: String,
    /// A reaper run is in progress in this process; another was asked for meanwhile.
    reaping: std::sync::atomic::AtomicBool,
    reap_again: std::sync::atomic::AtomicBool,
    /// A revalidation run is in progress in this process.
    revalidating: std::sync::atomic::AtomicBool,
}

/// What the first start produced for the operator.
pub struct Startup {
    /// Printed once; creates the first administrator.
    pub bootstrap_token: Option<SecretString>,
    pub bootstrap_expires_at: Option<Timestamp>,
    pub created_signing_key: bool,
}

impl Broker {
    pub fn new(
        cfg: BrokerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        entropy: Entropy,
        kek: MasterKey,
        work: Arc<dyn PasswordWork>,
        observer: Arc<dyn Observer>,
    ) -> Broker {
        let throttle = Mutex::new(Throttle::new(cfg.throttle));
        let addr_throttle = Mutex::new(Throttle::new(ThrottleConfig { free: cfg.throttle.free_per_address, ..cfg.throttle }));
        let oncall = RwLock::new(cfg.oncall.clone());
        let folds = Mutex::new(Folder::new(cfg.folding));
        let replica = replica_id(&mut *entropy());
        Broker {
            oncall,
            cfg,
            store,
            clock,
            entropy,
            kek,
            work,
            observer,
            keyring: RwLock::new(None),
            throttle,
            addr_throttle,
            folds,
            verified_cache: RwLock::default(),
            idps: Default::default(),
            ci_issuers: Default::default(),
            alerter: Arc::new(crate::alerts::NoAlerts),
            backends: Default::default(),
            inventory_sources: Default::default(),
            ssh_ca: RwLock::new(None),
            replica,
            reaping: Default::default(),
            reap_again: Default::default(),
            revalidating: Default::default(),
        }
    }

    /// Wires the configured providers (`cfg.sso`) to their implementations, by name.
    pub fn with_identity_providers(mut self, idps: std::collections::BTreeMap<String, Arc<dyn IdentityProvider>>) -> Broker {
        self.idps = idps;
        self
    }

    /// Where alerts go (webhooks, in the server).
    pub fn with_alerter(mut self, alerter: Arc<dyn crate::alerts::Alerter>) -> Broker {
        self.alerter = alerter;
        self
    }

    /// Replaces the shifts of calendar schedule `name` (the host re-reads its feed).
    pub fn set_shifts(&self, name: &str, calendar: crate::oncall::Calendar) {
        if let Ok(mut all) = self.oncall.write() {
            for s in all.iter_mut().filter(|s| s.name == name) {
                s.source = crate::oncall::ScheduleSource::Calendar(calendar.clone());
            }
        }
    }

    /// The host could not read calendar schedule `name`'s feed (`reason` is a stable code,
    /// `message` says why without the feed's secret URL): the last shifts read stay in
    /// force, and people hear of it through the audit log and an alert.
    pub async fn calendar_failed(&self, name: &str, reason: &'static str, message: &str) -> Result<()> {
        let now = self.now();
        let d = Draft::new(now, Event::OnCallFeedFailed, Outcome::Failure)
            .actor("system")
            .subject(name)
            .reason(reason)
            .detail("error", crate::ids::truncate(message));
        self.commit(Change::audit_only(d)).await?;
        let alert = crate::alerts::Alert::new(
            crate::alerts::AlertKind::OnCallFeedFailed,
            now,
            format!("On-call calendar {name} could not be read; its last shifts stay in force: {message}"),
        );
        self.alerter.send(alert.detail("schedule", name).detail("reason", reason));
        Ok(())
    }

    /// The on-call schedules `person` is on now (shift or grace).
    pub fn on_call(&self, person: &crate::ids::Username, now: Timestamp) -> Vec<String> {
        self.oncall.read().map(|s| crate::oncall::schedules_on_call(&s, person, now)).unwrap_or_default()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.cfg
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn rng(&self) -> Box<dyn rand_core::CryptoRngCore + Send> {
        (self.entropy)()
    }

    /// Commits a change and reports its audit appends.
    async fn commit(&self, change: Change) -> Result<u64> {
        let n = change.audit.len();
        let seq = self.store.apply(change).await?;
        self.observer.audit_appended(n);
        Ok(seq)
    }

    /// Records a refusal the HTTP layer made before any use case ran (bad JSON, oversized
    /// body…); repeats from one address are folded ([`Self::audit_refusal`]).
    pub async fn record_refusal(&self, route: &str, code: &str, addr: &str) -> Result<()> {
        let route = crate::ids::truncate(route);
        let d = Draft::new(self.now(), Event::RequestRefused, Outcome::Failure).actor(addr).reason(code).detail("route", &route);
        let key = FoldKey::of(&d, &route, addr);
        self.audit_refusal(key, d).await
    }

    /// Writes a refusal's record, unless an identical one (`key`: the same record but for its
    /// time) was written within the folding window: then it is only counted, and a
    /// `refusals.folded` record carries the count when the window closes
    /// ([`Self::flush_refusals`]).
    async fn audit_refusal(&self, key: FoldKey, d: Draft) -> Result<()> {
        let now = d.at;
        let (admit, closed) = self.folds.lock().map_err(|_| Error::Internal("fold lock poisoned".into()))?.admit(key, now);
        let mut change = Change::default();
        change.audit.extend(closed.iter().map(|s| s.draft(now)));
        if admit == Admit::Write {
            change.audit.push(d);
        }
        if change.audit.is_empty() {
            return Ok(());
        }
        self.commit(change).await.map(|_| ())
    }

    /// The error of a lease the store refused; a refusal for the person's cap
    /// (`too_many_leases`) is audited first, folded: a stolen session spinning on the cap
    /// grows the log by a bounded number of records.
    async fn lease_refused(&self, caller: &Caller, role: &crate::ids::RoleName, backend: &str, e: Error, now: Timestamp) -> Error {
        if e.code() != "too_many_leases" {
            return e;
        }
        let d = Draft::new(now, Event::AssumeDenied, Outcome::Failure)
            .actor(&caller.user.id)
            .subject(role)
            .reason(e.code())
            .detail("session", &caller.session.id)
            .detail("backend", backend)
            .detail("why", e.to_string());
        let key = FoldKey::of(&d, &format!("lease:{backend}"), caller.user.id.as_str());
        match self.audit_refusal(key, d).await {
            Ok(()) => e,
            Err(unaudited) => unaudited,
        }
    }

    /// Writes the summaries of folding windows that closed (all of them with `all`, at
    /// shutdown). The server calls it with its housekeeping.
    pub async fn flush_refusals(&self, all: bool) -> Result<()> {
        let now = self.now();
        let closed = {
            let mut folds = self.folds.lock().map_err(|_| Error::Internal("fold lock poisoned".into()))?;
            if all {
                folds.drain()
            } else {
                folds.due(now)
            }
        };
        if closed.is_empty() {
            return Ok(());
        }
        let change = Change { mutations: vec![], audit: closed.iter().map(|s| s.draft(now)).collect() };
        self.commit(change).await.map(|_| ())
    }

    /// Prepares a store for service: a signing key, a configuration record, and while no user
    /// exists, a fresh bootstrap token.
    pub async fn start(&self, config_digest: &str) -> Result<Startup> {
        let now = self.now();
        let mut created_signing_key = false;
        if !self.store.signing_keys().await?.iter().any(|k| k.retired_at.is_none()) {
            let key = SigningKey::generate(&mut *self.rng());
            let stored = StoredKey::seal(&key, &self.kek, now, &mut *self.rng());
            let d = Draft::new(now, Event::KeyCreated, Outcome::Success).actor("system").subject(key.kid()).detail("alg", "EdDSA");
            self.commit(Change::default().with(Mutation::InsertKey(stored)).record(d)).await?;
            created_signing_key = true;
        }
        self.reload_keys().await?;
        self.load_ssh_ca().await?;
        let d = Draft::new(now, Event::ConfigLoaded, Outcome::Success).actor("system").detail("digest", config_digest);
        self.commit(Change::audit_only(d)).await?;
        let mut startup = Startup { bootstrap_token: None, bootstrap_expires_at: None, created_signing_key };
        // Until someone has enrolled (an administrator whose code expired, say), a restart
        // offers a fresh bootstrap token.
        if !self.store.any_enrolled_user().await? {
            let (token, expires) = self.issue_bootstrap(now).await?;
            startup.bootstrap_token = Some(token);
            startup.bootstrap_expires_at = Some(expires);
        }
        Ok(startup)
    }

    /// Loads the signing key and the publishable keys from the store.
    pub async fn reload_keys(&self) -> Result<()> {
        let now = self.now();
        let keys = self.store.signing_keys().await?;
        let active = keys.iter().filter(|k| k.retired_at.is_none()).max_by_key(|k| (k.created_at, k.kid.clone()));
        let active = active.ok_or_else(|| Error::Internal("no active signing key; restart the server to create one".into()))?;
        let signer = Arc::new(active.open(&self.kek)?);
        let public = keys.iter().filter(|k| k.publishable(now)).map(|k| PublicKey::from_bytes(&k.public)).collect::<Result<Vec<_>>>()?;
        let ring = Arc::new(Keyring { signer, public, loaded_at: now });
        let old = self.keyring.write().map_err(|_| Error::Internal("keyring lock poisoned".into()))?.replace(ring.clone());
        // A token verified with a key no longer published must be verified again (and fail).
        let dropped = old.is_some_and(|o| o.public.iter().any(|k| !ring.public.iter().any(|n| n.kid() == k.kid())));
        if dropped {
            self.verified_cache.write().map_err(|_| Error::Internal("verified cache lock poisoned".into()))?.clear();
        }
        Ok(())
    }

    /// Drops what `what` made stale, reading it again from the store: another replica
    /// committed a change ([`crate::store::Invalidations`]), or word of it may have been lost.
    pub async fn invalidate(&self, what: crate::store::Stale) -> Result<()> {
        match what {
            crate::store::Stale::Keys | crate::store::Stale::Everything => self.reload_keys().await,
        }
    }

    fn keyring(&self) -> Result<Arc<Keyring>> {
        self.keyring
            .read()
            .map_err(|_| Error::Internal("keyring lock poisoned".into()))?
            .clone()
            .ok_or_else(|| Error::Internal("keys not loaded; Broker::start must run first".into()))
    }
}
