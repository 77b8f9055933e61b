//! stint's HTTP layer: configuration, routes, extractors, and the one error mapping.
//! The use cases live in `stint_core::broker`; this crate only adapts them to HTTP.

pub mod config;
pub mod error;
pub mod extract;
pub mod html;
pub mod inventory;
pub mod limits;
pub mod metrics;
pub mod password;
pub mod report;
pub mod routes;
pub mod scim;
pub mod sts;
pub mod tls;
pub mod webhooks;
pub mod workloads;

use std::net::SocketAddr;
use std::sync::Arc;

use stint_core::broker::{self, Broker, PasswordWork, Startup};
use stint_core::crypto::MasterKey;
use stint_core::store::Store;
use stint_core::Clock;

use crate::config::Config;
use crate::metrics::Metrics;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub metrics: Arc<Metrics>,
    /// Present when `[bench] floor = true`: the throwaway key of the floor endpoint.
    pub bench_floor: Option<Arc<stint_core::crypto::SigningKey>>,
    /// The rate limit of the routes without credential, and where client addresses come from.
    pub limits: Arc<limits::Limiter>,
}

/// How often the reaper looks for leases to end (it also runs right after a revocation). An
/// expired lease is usually ended on its backend within this; a backend that fails delays it
/// (PostgreSQL refuses new logins at `VALID UNTIL` regardless, and AWS keys expire on their own).
pub const REAP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the server looks for SSO sessions due for revalidation with their provider
/// (each is due `[identity] revalidate` after it was last asked).
pub const REVALIDATE_TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads the master key, or creates a 0600 one in the data directory when none is configured.
/// Returns the key and whether it was generated here.
pub fn master_key(cfg: &Config) -> std::io::Result<(MasterKey, bool)> {
    let invalid = |e: stint_core::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
    if let Some(path) = &cfg.master_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| std::io::Error::new(e.kind(), format!("master key file {}: {e}", path.display())))?;
        return MasterKey::from_file_contents(&text).map(|k| (k, false)).map_err(invalid);
    }
    let path = cfg.data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_file_contents(&text).map(|k| (k, true)).map_err(invalid),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, text) = MasterKey::generate(&mut rand_core::OsRng);
            stint_os::write_private(&path, text.as_bytes())?;
            Ok((key, true))
        }
        Err(e) => Err(e),
    }
}

/// Everything a running server needs, wired but not yet listening.
pub struct App {
    pub state: AppState,
    pub startup: Startup,
    /// On-call calendars to re-read while serving.
    feeds: Vec<config::oncall::CalendarFeed>,
    /// Notices of what other replicas changed, from a shared store (`docs/replicas.md`).
    invalidations: Option<Box<dyn stint_core::store::Invalidations>>,
    /// How often what the broker holds is read again, whatever was heard.
    reread: std::time::Duration,
}

/// How often expired token uses and finished SSO attempts are purged, and folded refusals
/// summarised.
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The fallback for notices lost between replicas: what the broker holds is compared with
/// the store every `every` and read again where it differs. It also drops retired keys from
/// the key set once their last token expired.
async fn reread(broker: Arc<Broker>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = broker.refresh_keys().await {
            tracing::warn!(code = e.code(), error = %e, "key re-read failed; retrying on the next");
        }
    }
}

/// Hands each notice of another replica's change to the broker. A notice that cannot be acted
/// on now (the store unreachable) is left to the periodic re-read.
async fn follow_changes(broker: Arc<Broker>, mut notices: Box<dyn stint_core::store::Invalidations>) {
    loop {
        let what = notices.next().await;
        match broker.invalidate(what).await {
            Ok(()) => tracing::debug!(what = what.as_str(), "read again after a notice"),
            Err(e) => tracing::warn!(what = what.as_str(), code = e.code(), error = %e, "could not act on a notice; the periodic re-read will"),
        }
    }
}

/// Why an on-call calendar was not taken: a stable code, and a message without the feed
/// URL's secret.
struct FeedError {
    code: &'static str,
    message: String,
}

impl FeedError {
    fn unreachable(message: String) -> FeedError {
        FeedError { code: "calendar_unreachable", message }
    }
    fn too_large(limit: usize, what: &str) -> FeedError {
        FeedError { code: "calendar_too_large", message: format!("{what} is larger than {limit} bytes") }
    }
}

/// The text of a calendar feed, at most `feed.max_bytes` of it: a larger one is refused
/// while reading, before it is all in memory.
async fn read_feed(feed: &config::oncall::CalendarFeed, http: &reqwest::Client) -> Result<Option<String>, FeedError> {
    let max = feed.max_bytes;
    let bytes = match (&feed.file, &feed.url) {
        (Some(f), _) => {
            let mut text = Vec::new();
            let file = std::fs::File::open(f).map_err(|e| FeedError::unreachable(format!("cannot read {}: {e}", f.display())))?;
            std::io::Read::read_to_end(&mut std::io::Read::take(file, max as u64 + 1), &mut text)
                .map_err(|e| FeedError::unreachable(format!("cannot read {}: {e}", f.display())))?;
            if text.len() > max {
                return Err(FeedError::too_large(max, &f.display().to_string()));
            }
            text
        }
        (None, Some(url)) => {
            // Calendar feed URLs carry a secret token: only the host is ever shown.
            let shown = webhooks::redact(url);
            let mut resp = http.get(url).send().await.map_err(|e| FeedError::unreachable(format!("cannot fetch {shown}: {}", e.without_url())))?;
            if !resp.status().is_success() {
                return Err(FeedError::unreachable(format!("{shown} answered {}", resp.status())));
            }
            if resp.content_length().is_some_and(|n| n > max as u64) {
                return Err(FeedError::too_large(max, &shown));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| FeedError::unreachable(format!("cannot read {shown}: {}", e.without_url())))? {
                if body.len() + chunk.len() > max {
                    return Err(FeedError::too_large(max, &shown));
                }
                body.extend_from_slice(&chunk);
            }
            body
        }
        (None, None) => return Ok(None),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| FeedError { code: "invalid_calendar", message: "the feed is not UTF-8 text".into() })
}

/// Re-reads one on-call calendar (file or URL) and hands its shifts to the broker. A feed
/// that cannot be read or parsed whole leaves the last good shifts in force.
async fn refresh_feed(broker: &Broker, feed: &config::oncall::CalendarFeed, http: &reqwest::Client) -> Result<usize, FeedError> {
    let Some(text) = read_feed(feed, http).await? else { return Ok(0) };
    let (parser, now) = (feed.clone(), broker.now());
    // Parsing and expanding a large feed is bounded but not instant: off the async workers.
    let calendar = tokio::task::spawn_blocking(move || parser.parse(&text, now))
        .await
        .map_err(|e| FeedError { code: "internal", message: format!("the calendar parser stopped: {e}") })?
        .map_err(|e| FeedError { code: e.code(), message: e.to_string() })?;
    let n = calendar.shifts().count();
    broker.set_shifts(&feed.schedule, calendar);
    Ok(n)
}

/// Asks the providers about SSO sessions not asked for `[identity] revalidate`, looking every
/// [`REVALIDATE_TICK`], so a session is asked at most a tick late.
async fn revalidate_periodically(broker: Arc<Broker>) {
    let every = REVALIDATE_TICK.min(std::time::Duration::from_secs(broker.config().revalidate.as_secs()));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match broker.revalidate_sessions().await {
            Ok(r) => {
                if r.ended > 0 {
                    tracing::info!(ended = r.ended, "sessions ended: their identity provider no longer vouches for the person");
                }
                for f in &r.failures {
                    tracing::warn!(provider = %f.provider, sessions = f.sessions, code = f.code, error = %f.message, "could not revalidate SSO sessions with their provider; they stay, and are asked again next interval");
                }
            }
            Err(e) => tracing::warn!(code = e.code(), error = %e, "SSO session revalidation failed; it retries on its next run"),
        }
    }
}

/// Re-reads `feed` every `feed.refresh`. The first failure after a good read (or at the
/// start) is audited and alerted; further ones are logged until a read succeeds again.
async fn follow_feed(broker: Arc<Broker>, feed: config::oncall::CalendarFeed) {
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap_or_default();
    let mut tick = tokio::time::interval(feed.refresh);
    let mut failing = false;
    loop {
        tick.tick().await;
        match refresh_feed(&broker, &feed, &http).await {
            Ok(n) => {
                if failing {
                    tracing::info!(schedule = %feed.schedule, shifts = n, "on-call calendar read again");
                }
                failing = false;
                tracing::debug!(schedule = %feed.schedule, shifts = n, "on-call calendar read");
            }
            Err(e) => {
                tracing::warn!(schedule = %feed.schedule, code = e.code, error = %e.message, "on-call calendar not refreshed; the last shifts read stay in force");
                if !failing {
                    if let Err(a) = broker.calendar_failed(&feed.schedule, e.code, &e.message).await {
                        tracing::warn!(schedule = %feed.schedule, error = %a, "could not audit the calendar failure");
                    }
                }
                failing = true;
            }
        }
    }
}

impl App {
    /// Wires the broker to `store`, prepares keys and the bootstrap token.
    pub async fn new(cfg: &Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>, kek: MasterKey) -> stint_core::error::Result<App> {
        Self::with_password_work(cfg, store, clock, kek, Arc::new(password::PasswordPool::start()?)).await
    }

    /// As [`App::new`], with the password hashing supplied (tests count its calls).
    pub async fn with_password_work(
        cfg: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        kek: MasterKey,
        work: Arc<dyn PasswordWork>,
    ) -> stint_core::error::Result<App> {
        let metrics = Arc::new(Metrics::default());
        let idps = cfg.oidc.iter().map(|c| (c.name.clone(), Arc::new(stint_oidc::Client::new(c.clone())) as Arc<dyn broker::IdentityProvider>)).collect();
        let ci = cfg
            .ci_issuers
            .iter()
            .map(|c| (c.url.clone(), Arc::new(stint_oidc::Issuer::new(&c.url, c.allow_http_loopback, c.jwks_min_refetch)) as Arc<dyn broker::CiIssuer>))
            .collect();
        let alerter = Arc::new(webhooks::WebhookAlerter::start(cfg.webhooks.clone(), metrics.alerts.clone()));
        let mut backends: std::collections::BTreeMap<String, Arc<dyn stint_core::backend::Backend>> = Default::default();
        #[allow(unused_mut)] // Only an AWS backend is a source, and only with the `aws` feature.
        let mut inventory_sources: std::collections::BTreeMap<String, Arc<dyn stint_core::inventory::InventorySource>> = Default::default();
        for pg in &cfg.backends.postgres {
            let b = stint_backends::PostgresBackend::new(pg.clone());
            // Reported now rather than at the first request; the server starts anyway.
            if let Err(e) = b.check().await {
                tracing::warn!(backend = %pg.name, error = %e, "PostgreSQL backend unreachable at start; requests for it fail until it answers");
            }
            backends.insert(pg.name.clone(), Arc::new(b));
        }
        #[cfg(not(feature = "aws"))]
        if let Some(aws) = cfg.backends.aws.first() {
            return Err(stint_core::error::Error::invalid(
                "backend_unavailable",
                format!("backend {:?}: this stint was built without the AWS backend (feature `aws`)", aws.name),
            ));
        }
        #[cfg(feature = "aws")]
        for aws in &cfg.backends.aws {
            let b = stint_backends::AwsBackend::new(aws.clone(), stint_backends::AwsIdentity::Ambient, clock.clone()).await?;
            match b.check().await {
                Ok(me) => tracing::info!(backend = %aws.name, caller = %me, "AWS backend ready"),
                Err(e) => tracing::warn!(backend = %aws.name, error = %e, "AWS backend cannot call STS at start; requests for it fail until it can"),
            }
            let b = Arc::new(b);
            inventory_sources.insert(aws.name.clone(), b.clone());
            backends.insert(aws.name.clone(), b);
        }
        // Listening starts before the keys are first read, so no rotation falls between.
        let invalidations = if cfg.replicas.listen { store.invalidations() } else { None };
        let broker = Broker::new(cfg.broker.clone(), store, clock, broker::os_entropy(), kek, work, metrics.clone())
            .with_identity_providers(idps)
            .with_ci_issuers(ci)
            .with_alerter(alerter)
            .with_backends(backends)
            .with_inventory_sources(inventory_sources);
        let broker = Arc::new(broker);
        let limits = Arc::new(limits::Limiter::new(cfg.limits.rate, cfg.limits.addressing.clone(), broker.now()).with_delay(cfg.limits.rate_limited_delay));
        let startup = broker.start(&cfg.digest()).await?;
        // A throwaway key, never stored or published: floor tokens verify nowhere.
        let bench_floor = cfg.bench_floor.then(|| Arc::new(stint_core::crypto::SigningKey::generate(&mut rand_core::OsRng)));
        Ok(App {
            state: AppState { broker, metrics, bench_floor, limits },
            startup,
            feeds: cfg.oncall_feeds.clone(),
            invalidations,
            reread: cfg.replicas.reread,
        })
    }

    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
            .layer(axum::extract::DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), limits::limit))
    }

    /// Serves plain HTTP until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        self.serve_with(listener, None, shutdown).await
    }

    /// As [`App::serve`]; with `tls`, HTTPS with that certificate, followed as its files change.
    pub async fn serve_with(
        mut self,
        listener: tokio::net::TcpListener,
        tls: Option<Arc<tls::Certificate>>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let keys = tokio::spawn(reread(self.state.broker.clone(), self.reread));
        let notices = self.invalidations.take().map(|n| tokio::spawn(follow_changes(self.state.broker.clone(), n)));
        let broker = self.state.broker.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
            loop {
                tick.tick().await;
                if let Err(e) = broker.housekeeping().await {
                    tracing::warn!(error = %e, "housekeeping failed");
                }
            }
        });
        let broker = self.state.broker.clone();
        let reaper = tokio::spawn(async move {
            // Ends expired and revoked leases on their backends; one replica at a time.
            // The first run waits one interval: the start-up has just settled the store.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REAP_INTERVAL, REAP_INTERVAL);
            loop {
                tick.tick().await;
                match broker.reap().await {
                    Ok(r) => {
                        if r.ended > 0 {
                            tracing::info!(ended = r.ended, "lease reaper ended leases");
                        }
                        for f in &r.failures {
                            tracing::warn!(lease = %f.lease, backend = %f.backend, code = f.code, error = %f.message, "could not end a lease; retrying on the next run");
                        }
                    }
                    Err(e) => tracing::warn!(code = e.code(), error = %e, "the lease reaper failed; it retries on its next run"),
                }
            }
        });
        let revalidate = tokio::spawn(revalidate_periodically(self.state.broker.clone()));
        let mut feeds = Vec::new();
        for feed in self.feeds.clone() {
            feeds.push(tokio::spawn(follow_feed(self.state.broker.clone(), feed)));
        }
        let app = self.router().into_make_service_with_connect_info::<SocketAddr>();
        let result = match tls {
            None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
            Some(cert) => {
                let config = cert.server_config().map_err(std::io::Error::other)?;
                let follow = tokio::spawn(cert.follow());
                // `tap_io` gives the listener's connections their client address (ConnectInfo).
                let listener = axum::serve::ListenerExt::tap_io(tls::TlsListener::new(listener, config)?, |_| {});
                let r = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
                follow.abort();
                r
            }
        };
        keys.abort();
        housekeeping.abort();
        notices.iter().for_each(|n| n.abort());
        reaper.abort();
        revalidate.abort();
        // Refusals counted but not yet summarised are written before the process ends.
        if let Err(e) = self.state.broker.flush_refusals(true).await {
            tracing::warn!(error = %e, "could not write the folded refusals' summaries");
        }
        feeds.iter().for_each(|f| f.abort());
        result
    }
}
