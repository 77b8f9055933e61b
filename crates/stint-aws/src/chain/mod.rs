//! stint's own ambient AWS credentials: where the process finds the identity it calls STS
//! and IAM with. stint keeps no long-lived AWS key in its configuration; like the AWS SDKs,
//! it takes whatever the machine provides, in this order:
//!
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`),
//!    profile `AWS_PROFILE`, else `default` — see [`profile`];
//! 3. the container credentials provider (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `…_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`) — see [`container`];
//! 4. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: STS `AssumeRoleWithWebIdentity`.
//!
//! The EC2 instance metadata service (IMDS) is deliberately left out: stint runs in
//! containers, CI and on workstations; on EC2, give it a container provider or web identity.
//! The shared *config* file (`~/.aws/config`: SSO, `credential_process`, `role_arn` chains)
//! is not read either.
//!
//! A source that is configured but broken (half-set variables, an unreadable file named
//! explicitly, a refused container URI) is an error, not a reason to fall through to the
//! next source: using a different identity than the operator set up would be worse.
//!
//! Temporary credentials are cached and refreshed [`REFRESH_BEFORE`] (5 min) before they
//! expire; one refresh runs at a time. If a refresh fails while the cached credentials are
//! still valid, those keep serving (with a warning) until they expire. Long-term credentials
//! are read once. The environment is an [`AmbientEnv`] value, so tests inject it.

pub mod container;
pub mod profile;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::query::{self, Clock, Endpoint, QueryClient, SystemClock};
use crate::secret::{Credentials, SecretString};
use crate::sts;

/// How long before expiry temporary credentials are refreshed.
pub const REFRESH_BEFORE: Duration = Duration::minutes(5);
/// How long temporary credentials without an expiration are reused.
const DEFAULT_LIFETIME: Duration = Duration::minutes(15);
/// Credentials are reused at least this long, so nearly-expired ones do not cause a storm.
const MIN_REUSE: Duration = Duration::seconds(10);

/// The variables the chain reads, captured once. Empty values count as unset, as in the SDKs.
#[derive(Clone, Debug, Default)]
pub struct AmbientEnv {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    pub shared_credentials_file: Option<PathBuf>,
    pub profile: Option<String>,
    /// `HOME`, for `~/.aws/credentials`.
    pub home: Option<PathBuf>,
    pub container_credentials_relative_uri: Option<String>,
    pub container_credentials_full_uri: Option<String>,
    pub container_authorization_token: Option<SecretString>,
    pub container_authorization_token_file: Option<PathBuf>,
    pub web_identity_token_file: Option<PathBuf>,
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`: where `AssumeRoleWithWebIdentity` goes.
    pub region: Option<String>,
}

impl AmbientEnv {
    /// The process environment.
    pub fn from_process() -> AmbientEnv {
        AmbientEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// The environment as `get` reports it (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> AmbientEnv {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        AmbientEnv {
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").map(SecretString::from),
            session_token: var("AWS_SESSION_TOKEN").map(SecretString::from),
            shared_credentials_file: var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from),
            profile: var("AWS_PROFILE"),
            home: var("HOME").map(PathBuf::from),
            container_credentials_relative_uri: var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            container_credentials_full_uri: var("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            container_authorization_token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(SecretString::from),
            container_authorization_token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from),
            web_identity_token_file: var("AWS_WEB_IDENTITY_TOKEN_FILE").map(PathBuf::from),
            role_arn: var("AWS_ROLE_ARN"),
            role_session_name: var("AWS_ROLE_SESSION_NAME"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        }
    }
}

/// Where a client's credentials come from: fixed values, or the ambient chain.
#[derive(Clone)]
pub struct CredentialsProvider(Arc<Source>);

enum Source {
    Fixed(Credentials),
    Chain(Box<Chain>),
}

struct Chain {
    env: AmbientEnv,
    http: reqwest::Client,
    web_identity_sts: QueryClient,
    clock: Arc<dyn Clock>,
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    credentials: Credentials,
    /// `None`: long-term credentials, never refreshed.
    refresh_at: Option<OffsetDateTime>,
}

impl CredentialsProvider {
    /// Always these credentials (tests, or a caller that resolved them itself).
    pub fn fixed(credentials: Credentials) -> CredentialsProvider {
        CredentialsProvider(Arc::new(Source::Fixed(credentials)))
    }

    /// The chain over the process environment, with STS's real endpoint.
    pub fn from_process_env() -> Result<CredentialsProvider> {
        CredentialsProvider::chain(AmbientEnv::from_process(), None, Arc::new(SystemClock))
    }

    /// The chain over `env`. `sts_endpoint` replaces the endpoint of the web identity
    /// exchange (default: `https://sts.{AWS_REGION}.amazonaws.com`, or the global
    /// `https://sts.amazonaws.com` without a region).
    pub fn chain(env: AmbientEnv, sts_endpoint: Option<Endpoint>, clock: Arc<dyn Clock>) -> Result<CredentialsProvider> {
        let region = env.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = match (sts_endpoint, &env.region) {
            (Some(e), _) => e,
            (None, Some(r)) => Endpoint::sts(r)?,
            (None, None) => Endpoint::https("https://sts.amazonaws.com")?,
        };
        let mut web_identity_sts = sts::client(&region, endpoint)?;
        web_identity_sts.clock = clock.clone();
        let chain = Chain { env, http: query::http_client()?, web_identity_sts, clock, cache: Mutex::new(None) };
        Ok(CredentialsProvider(Arc::new(Source::Chain(Box::new(chain)))))
    }

    /// Credentials to sign with now: cached, or freshly resolved.
    pub async fn credentials(&self) -> Result<Credentials> {
        match &*self.0 {
            Source::Fixed(c) => Ok(c.clone()),
            Source::Chain(chain) => chain.credentials().await,
        }
    }
}

impl Chain {
    async fn credentials(&self) -> Result<Credentials> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        if let Some(c) = cache.as_ref().filter(|c| !matches!(c.refresh_at, Some(r) if now >= r)) {
            return Ok(c.credentials.clone());
        }
        match self.resolve(now).await {
            Ok((credentials, source)) => {
                tracing::debug!(source, expiration = ?credentials.expiration(), "resolved stint's AWS credentials");
                let refresh_at = refresh_time(&credentials, now);
                *cache = Some(Cached { credentials: credentials.clone(), refresh_at });
                Ok(credentials)
            }
            Err(e) => match cache.as_ref().filter(|c| c.credentials.expiration().is_some_and(|x| now < x)) {
                Some(c) => {
                    tracing::warn!(error = %e, "refreshing stint's AWS credentials failed; using the cached ones until they expire");
                    Ok(c.credentials.clone())
                }
                None => Err(e),
            },
        }
    }

    /// The first source that has credentials, and its name.
    async fn resolve(&self, now: OffsetDateTime) -> Result<(Credentials, &'static str)> {
        if let Some(c) = from_env_vars(&self.env)? {
            return Ok((c, "environment"));
        }
        if let Some(c) = profile::load(&self.env)? {
            return Ok((c, "shared credentials file"));
        }
        if let Some(c) = container::fetch(&self.env, &self.http).await? {
            return Ok((c, "container credentials provider"));
        }
        if let Some(c) = self.web_identity(now).await? {
            return Ok((c, "web identity"));
        }
        Err(Error::NoCredentials { tried: "environment variables, shared credentials file, container credentials provider, web identity token file".into() })
    }

    async fn web_identity(&self, now: OffsetDateTime) -> Result<Option<Credentials>> {
        let (token_file, role_arn) = match (&self.env.web_identity_token_file, &self.env.role_arn) {
            (None, None) => return Ok(None),
            (Some(f), Some(r)) => (f, r),
            _ => return Err(Error::Config("set both AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or neither".into())),
        };
        let token = read_small_file(token_file, 64 * 1024, "AWS_WEB_IDENTITY_TOKEN_FILE")?
            .ok_or_else(|| Error::Config(format!("AWS_WEB_IDENTITY_TOKEN_FILE names {}, which does not exist", token_file.display())))?;
        let token = SecretString::new(token.expose().trim());
        let session = self.env.role_session_name.clone().unwrap_or_else(|| sts::default_session_name(now));
        let assumed = sts::assume_role_with_web_identity(&self.web_identity_sts, role_arn, &session, &token).await?;
        Ok(Some(assumed.credentials))
    }
}

/// When to resolve again: never for long-term keys; 5 min before expiry for temporary ones.
fn refresh_time(c: &Credentials, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if c.session_token().is_none() && c.expiration().is_none() {
        return None;
    }
    let expires = c.expiration().unwrap_or(now + DEFAULT_LIFETIME);
    Some((expires - REFRESH_BEFORE).max(now + MIN_REUSE).min(expires))
}

fn from_env_vars(env: &AmbientEnv) -> Result<Option<Credentials>> {
    match (&env.access_key_id, &env.secret_access_key) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some(match &env.session_token {
            Some(token) => Credentials::temporary(id.clone(), secret.clone(), token.clone(), None),
            None => Credentials::new(id.clone(), secret.clone()),
        })),
        _ => Err(Error::Config("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither".into())),
    }
}

/// The file's text if it exists, refusing files over `max` bytes. `what` names the setting
/// that pointed at it, for the error message. The text is held as a secret: every file read
/// here holds keys or tokens.
pub(crate) fn read_small_file(path: &Path, max: u64, what: &str) -> Result<Option<SecretString>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Config(format!("cannot read {} ({what}): {e}", path.display()))),
    };
    let mut text = SecretString::new(String::new());
    file.take(max + 1).read_to_string(text.expose_mut()).map_err(|e| Error::Config(format!("cannot read {} ({what}): {e}", path.display())))?;
    if text.expose().len() as u64 > max {
        return Err(Error::Config(format!("{} ({what}) is larger than {max} bytes; is it the right file?", path.display())));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> AmbientEnv {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        AmbientEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn env_vars_come_first_and_must_be_complete() {
        let e = env(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"), ("AWS_SESSION_TOKEN", "")]);
        let c = from_env_vars(&e).expect("ok").expect("some");
        assert_eq!(c.access_key_id(), "AKIDEXAMPLE");
        assert!(c.session_token().is_none(), "an empty variable is unset");
        assert!(from_env_vars(&env(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")])).is_err());
        assert!(from_env_vars(&env(&[])).expect("ok").is_none());
        assert!(!format!("{e:?}").contains("wJalrXUtnFEMI"), "Debug of the env redacts");
    }

    #[test]
    fn region_falls_back_to_aws_default_region() {
        assert_eq!(env(&[("AWS_DEFAULT_REGION", "eu-west-1")]).region.as_deref(), Some("eu-west-1"));
        assert_eq!(env(&[("AWS_REGION", "eu-north-1"), ("AWS_DEFAULT_REGION", "eu-west-1")]).region.as_deref(), Some("eu-north-1"));
    }

    #[test]
    fn refresh_five_minutes_before_expiry() {
        let now = OffsetDateTime::from_unix_timestamp(1_795_680_960).expect("valid");
        let temp = |exp: Option<OffsetDateTime>| Credentials::temporary("ASIA", SecretString::new("s"), SecretString::new("t"), exp);
        assert_eq!(refresh_time(&temp(Some(now + Duration::hours(1))), now), Some(now + Duration::minutes(55)));
        assert_eq!(refresh_time(&temp(None), now), Some(now + Duration::minutes(10)));
        assert_eq!(refresh_time(&temp(Some(now + Duration::minutes(2))), now), Some(now + MIN_REUSE));
        assert_eq!(refresh_time(&temp(Some(now + Duration::seconds(3))), now), Some(now + Duration::seconds(3)));
        assert_eq!(refresh_time(&Credentials::new("AKIA", SecretString::new("s")), now), None);
    }

    /// A clock the tests move by hand.
    struct Manual(std::sync::Mutex<OffsetDateTime>);
    impl Clock for Manual {
        fn now(&self) -> OffsetDateTime {
            *self.0.lock().expect("not poisoned")
        }
    }

    #[tokio::test]
    async fn nothing_configured_says_what_to_set() {
        let p = CredentialsProvider::chain(env(&[("HOME", "/nonexistent-stint-test-home")]), None, Arc::new(SystemClock)).expect("builds");
        let e = p.credentials().await.expect_err("no credentials");
        assert!(matches!(e, Error::NoCredentials { .. }));
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    }

    #[tokio::test]
    async fn web_identity_needs_both_variables() {
        let e = env(&[("HOME", "/nonexistent-stint-test-home"), ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")]);
        let p = CredentialsProvider::chain(e, None, Arc::new(SystemClock)).expect("builds");
        assert!(matches!(p.credentials().await, Err(Error::Config(m)) if m.contains("AWS_WEB_IDENTITY_TOKEN_FILE")));
    }

    #[tokio::test]
    async fn long_term_env_credentials_are_cached_for_good() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_795_680_960).expect("valid");
        let clock = Arc::new(Manual(std::sync::Mutex::new(t0)));
        let e = env(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret")]);
        let p = CredentialsProvider::chain(e, None, clock.clone()).expect("builds");
        assert_eq!(p.credentials().await.expect("ok").access_key_id(), "AKIDEXAMPLE");
        *clock.0.lock().expect("not poisoned") = t0 + Duration::days(30);
        assert_eq!(p.credentials().await.expect("ok").access_key_id(), "AKIDEXAMPLE");
    }
}
