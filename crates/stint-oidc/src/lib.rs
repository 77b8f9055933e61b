//! Talking to an OpenID Provider: discovery (OpenID Connect Discovery 1.0 §4), its key set,
//! and the token endpoint (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.5; refresh, §6).
//!
//! Keys are cached. A token naming an unknown key triggers one refetch, at most once per
//! [`REFETCH_INTERVAL`] (so a stream of bogus `kid`s cannot make stint hammer the provider),
//! and cached keys keep serving while the provider is briefly unreachable. Verification
//! itself is [`stint_core::oidc`], which does no I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use stint_core::broker::{Redeemed, Refreshed};
use stint_core::error::{Error, Result};
use stint_core::oidc::{self, Expected, ExpectedJwt, IdToken, Jwk};
use stint_core::secret::SecretString;

/// The least time between two key-set fetches triggered by unknown keys.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How long any request to the provider may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest discovery document or token-endpoint answer stint reads (real ones are a few
/// KiB; an ID token is at most [`oidc::MAX_ID_TOKEN_BYTES`]). The key set has its own cap,
/// [`oidc::MAX_JWKS_BYTES`].
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The parts of the discovery document stint uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    /// Absent for issuers that only sign tokens (GitHub Actions); SSO providers have both.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: String,
    pub device_authorization_endpoint: Option<String>,
    /// RFC 9207 §3: the provider puts `iss` in every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// Why a discovery document was not taken.
pub enum DiscoveryError {
    /// Not the JSON of a discovery document.
    NotJson(serde_json::Error),
    /// A document for another issuer, or with an endpoint that breaks the URL rule.
    Refused(Error),
}

impl Discovery {
    /// Reads the discovery document of `issuer`: its `issuer` must be exactly that
    /// (Discovery §4.3), and every endpoint must pass the URL rule ([`check_url`]).
    pub fn parse(body: &[u8], issuer: &str, insecure_http_loopback: bool) -> std::result::Result<Discovery, DiscoveryError> {
        let d: Discovery = serde_json::from_slice(body).map_err(DiscoveryError::NotJson)?;
        if d.issuer != issuer {
            return Err(DiscoveryError::Refused(Error::invalid(
                "issuer_mismatch",
                format!("the provider at {issuer} calls itself {:?}; configure the issuer exactly", d.issuer),
            )));
        }
        for u in [d.authorization_endpoint.as_ref(), d.token_endpoint.as_ref(), Some(&d.jwks_uri)].into_iter().flatten() {
            check_url(u, insecure_http_loopback).map_err(DiscoveryError::Refused)?;
        }
        Ok(d)
    }
}

struct Keys {
    keys: Vec<Jwk>,
    fetched_at: Instant,
}

/// One configured provider: its discovery document and cached keys.
pub struct Provider {
    http: reqwest::Client,
    pub discovery: Discovery,
    keys: RwLock<Keys>,
    refetch_interval: Duration,
}

fn unreachable(what: &str, url: &str, e: impl std::fmt::Display) -> Error {
    tracing::warn!(url, error = %e, "identity provider request failed");
    Error::upstream("idp_unreachable", format!("cannot reach the identity provider ({what}); try again shortly"))
}

/// Reads at most `max` bytes of the body: a longer one is refused while it is read, so an
/// endless answer without `Content-Length` costs `max` bytes of memory, not all of it.
async fn read_bounded(mut resp: reqwest::Response, max: usize, what: &str, url: &str) -> Result<Vec<u8>> {
    let too_large = || {
        tracing::warn!(url, max, "identity provider answer too large");
        Error::upstream("idp_answer_too_large", format!("the identity provider's answer ({what}) is larger than {} KiB", max / 1024))
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(what, url, e))? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON answer of at most [`MAX_ANSWER_BYTES`].
async fn read_json<T: serde::de::DeserializeOwned>(resp: reqwest::Response, what: &str, url: &str) -> Result<T> {
    let body = read_bounded(resp, MAX_ANSWER_BYTES, what, url).await?;
    serde_json::from_slice(&body).map_err(|e| unreachable(what, url, e))
}

fn no_login_endpoints() -> Error {
    Error::upstream("idp_bad_discovery", "the identity provider's discovery document has no authorization or token endpoint")
}

/// Only HTTPS issuers, unless `insecure_http_loopback` allows `http://127.0.0.1…` for tests.
fn check_url(url: &str, insecure_http_loopback: bool) -> Result<()> {
    let loopback = ["http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://[::1]:"].iter().any(|p| url.starts_with(p));
    if url.starts_with("https://") || (insecure_http_loopback && loopback) {
        return Ok(());
    }
    Err(Error::invalid("insecure_issuer", format!("identity provider URLs must use https: {url}")))
}

impl Provider {
    /// Fetches discovery and the key set. The discovery `issuer` must equal `issuer` exactly
    /// (Discovery §4.3), and every endpoint must pass the same URL rule.
    pub async fn discover(issuer: &str, insecure_http_loopback: bool) -> Result<Provider> {
        check_url(issuer, insecure_http_loopback)?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let resp = http.get(&url).send().await.map_err(|e| unreachable("discovery", &url, e))?;
        if !resp.status().is_success() {
            return Err(unreachable("discovery", &url, resp.status()));
        }
        let body = read_bounded(resp, MAX_ANSWER_BYTES, "discovery", &url).await?;
        let discovery = Discovery::parse(&body, issuer, insecure_http_loopback).map_err(|e| match e {
            DiscoveryError::NotJson(e) => unreachable("discovery", &url, e),
            DiscoveryError::Refused(e) => e,
        })?;
        let keys = fetch_keys(&http, &discovery.jwks_uri).await?;
        Ok(Provider { http, discovery, keys: RwLock::new(Keys { keys, fetched_at: Instant::now() }), refetch_interval: REFETCH_INTERVAL })
    }

    /// Changes the least time between refetches (tests move it to zero instead of waiting).
    pub fn with_refetch_interval(mut self, interval: Duration) -> Provider {
        self.refetch_interval = interval;
        self
    }

    fn cached(&self) -> Vec<Jwk> {
        self.keys.read().map(|k| k.keys.clone()).unwrap_or_default()
    }

    /// Verifies an ID token, refetching the key set once if it names an unknown key.
    pub async fn verify_id_token(&self, token: &str, expect: &Expected<'_>) -> Result<IdToken> {
        self.with_keys(token, |keys| oidc::verify_id_token(token, keys, expect)).await
    }

    /// Verifies any JWT of this issuer (a CI token) but its audience, refetching as above.
    pub async fn verify_jwt(&self, token: &str, expect: &ExpectedJwt<'_>) -> Result<IdToken> {
        self.with_keys(token, |keys| oidc::verify_jwt(token, keys, expect)).await
    }

    /// Runs `verify` with the cached keys; on an unknown key, or a token that fails with a
    /// key we know (an issuer may replace a key under the same `kid`), refetches once
    /// (rate-limited) and runs it again. An unreachable issuer leaves the cached keys in use.
    async fn with_keys(&self, token: &str, verify: impl Fn(&[Jwk]) -> Result<IdToken>) -> Result<IdToken> {
        let cached = self.cached();
        match verify(&cached) {
            Err(e) if self.may_be_stale(&e, token, &cached) && self.refetch_due() => {
                self.refetch().await?;
                verify(&self.cached())
            }
            other => other,
        }
    }

    fn may_be_stale(&self, e: &Error, token: &str, cached: &[Jwk]) -> bool {
        match e.code() {
            "id_token_unknown_key" => true,
            "invalid_id_token" => oidc::peek_kid(token).is_some_and(|kid| cached.iter().any(|k| k.kid.as_deref() == Some(kid.as_str()))),
            _ => false,
        }
    }

    fn refetch_due(&self) -> bool {
        self.keys.read().map(|k| k.fetched_at.elapsed() >= self.refetch_interval).unwrap_or(false)
    }

    /// Replaces the cached keys; on failure the old keys stay.
    pub async fn refetch(&self) -> Result<()> {
        // Mark the attempt first, so concurrent callers do not all fetch.
        if let Ok(mut k) = self.keys.write() {
            k.fetched_at = Instant::now();
        }
        let keys = fetch_keys(&self.http, &self.discovery.jwks_uri).await?;
        if let Ok(mut k) = self.keys.write() {
            *k = Keys { keys, fetched_at: Instant::now() };
        }
        Ok(())
    }

    /// Posts `form` to the token endpoint as the confidential client (`client_secret_basic`).
    /// `Ok(Err((status, error)))` is the provider's refusal (a 4xx, RFC 6749 §5.2) with its
    /// `error` code, empty when it names none; `Err` is an answer that is neither a refusal nor
    /// a success (unreachable, a 5xx, a body stint cannot read).
    async fn token_request<T: serde::de::DeserializeOwned>(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        form: &[(&str, &str)],
    ) -> Result<std::result::Result<T, (reqwest::StatusCode, String)>> {
        let url = self.discovery.token_endpoint.as_ref().ok_or_else(no_login_endpoints)?;
        let resp = self
            .http
            .post(url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| unreachable("token endpoint", url, e))?;
        let status = resp.status();
        if status.is_client_error() {
            let body: serde_json::Value = read_json(resp, "token endpoint", url).await.unwrap_or_default();
            return Ok(Err((status, body["error"].as_str().unwrap_or("").chars().take(64).collect())));
        }
        if !status.is_success() {
            return Err(unreachable("token endpoint", url, status));
        }
        read_json(resp, "token endpoint", url).await.map(Ok)
    }

    /// Redeems an authorization code (confidential client, `client_secret_basic`, PKCE).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        code: &str,
        redirect_uri: &str,
        verifier: &SecretString,
    ) -> Result<TokenResponse> {
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri), ("code_verifier", verifier.expose())];
        // RFC 6749 §5.2: the provider refused the code (used, expired, wrong verifier).
        self.token_request(client_id, client_secret, &form).await?.map_err(|(_, code)| {
            let code = if code.is_empty() { "invalid_grant".to_owned() } else { code };
            Error::unauthenticated("sso_code_refused", format!("the identity provider refused the login ({code}); start again with `stint login`"))
        })
    }

    /// Uses a refresh token (RFC 6749 §6; confidential client, `client_secret_basic`).
    /// `Ok(Err(error))` is the provider's refusal of the grant (§5.2 `invalid_grant`), with
    /// its error code; `Err` is an answer that says nothing about the person: unreachable, a
    /// 5xx, another error (a refused client is stint's configuration, not the person), or an
    /// answer stint cannot read.
    pub async fn refresh(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        refresh_token: &SecretString,
    ) -> Result<std::result::Result<RefreshResponse, String>> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())];
        match self.token_request(client_id, client_secret, &form).await? {
            Ok(answer) => Ok(Ok(answer)),
            Err((_, code)) if code == "invalid_grant" => Ok(Err(code)),
            Err((status, code)) => {
                let url = self.discovery.token_endpoint.as_deref().unwrap_or_default();
                tracing::warn!(url, status = status.as_u16(), error = %code, "the identity provider refused stint's refresh request");
                Err(Error::upstream("idp_refresh_failed", format!("the identity provider refused stint's refresh request ({status}, {code:?})")))
            }
        }
    }
}

/// How stint talks to one provider as its (confidential) client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: Vec<String>,
    /// Extra authorization request parameters, e.g. Google's `hd`.
    pub auth_params: BTreeMap<String, String>,
    /// stint's callback, registered at the provider.
    pub redirect_uri: String,
    /// Accept `http://127.0.0.1…` provider URLs (tests only).
    pub allow_http_loopback: bool,
    /// The least time between key-set refetches for unknown keys.
    pub jwks_min_refetch: Duration,
}

/// A provider client: discovery happens on first use and is retried until it succeeds, so
/// stint starts even while the provider is unreachable.
pub struct Client {
    cfg: ClientConfig,
    issuer: Issuer,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Client {
        let issuer = Issuer::new(&cfg.issuer, cfg.allow_http_loopback, cfg.jwks_min_refetch);
        Client { cfg, issuer }
    }

    async fn provider(&self) -> Result<Arc<Provider>> {
        self.issuer.provider().await
    }
}

#[async_trait::async_trait]
impl stint_core::broker::IdentityProvider for Client {
    async fn authorization_url(&self, state: &str, nonce: &str, code_challenge: &str) -> Result<String> {
        let p = self.provider().await?;
        let scope = self.cfg.scopes.join(" ");
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.cfg.client_id),
            ("redirect_uri", &self.cfg.redirect_uri),
            ("scope", &scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", code_challenge),
            ("code_challenge_method", "S256"),
        ];
        params.extend(self.cfg.auth_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let endpoint = p.discovery.authorization_endpoint.as_ref().ok_or_else(no_login_endpoints)?;
        let url = reqwest::Url::parse_with_params(endpoint, &params)
            .map_err(|_| Error::upstream("idp_bad_discovery", "the identity provider's authorization endpoint is not a URL"))?;
        Ok(url.into())
    }

    async fn iss_required(&self) -> Result<bool> {
        Ok(self.provider().await?.discovery.authorization_response_iss_parameter_supported)
    }

    async fn redeem(&self, code: &str, verifier: &SecretString, expect: &Expected<'_>) -> Result<Redeemed> {
        let p = self.provider().await?;
        let tokens = p.exchange_code(&self.cfg.client_id, &self.cfg.client_secret, code, &self.cfg.redirect_uri, verifier).await?;
        let id_token = p.verify_id_token(&tokens.id_token, expect).await?;
        Ok(Redeemed { id_token, refresh_token: tokens.refresh_token })
    }

    async fn refresh(&self, refresh_token: &SecretString, expect: &Expected<'_>) -> Result<Refreshed> {
        let p = self.provider().await?;
        let tokens = match p.refresh(&self.cfg.client_id, &self.cfg.client_secret, refresh_token).await? {
            Ok(tokens) => tokens,
            Err(error) => return Ok(Refreshed::Refused { error }),
        };
        let id_token = match &tokens.id_token {
            Some(t) => Some(p.verify_id_token(t, expect).await?),
            None => None,
        };
        Ok(Refreshed::Granted { refresh_token: tokens.refresh_token, id_token })
    }
}

/// A CI platform's token issuer (GitHub Actions, GitLab, a Kubernetes cluster…): discovery
/// on first use, cached keys refetched on an unknown `kid`.
pub struct Issuer {
    url: String,
    allow_http_loopback: bool,
    min_refetch: Duration,
    provider: RwLock<Option<Arc<Provider>>>,
}

impl Issuer {
    pub fn new(url: &str, allow_http_loopback: bool, min_refetch: Duration) -> Issuer {
        Issuer { url: url.to_owned(), allow_http_loopback, min_refetch, provider: RwLock::new(None) }
    }

    async fn provider(&self) -> Result<Arc<Provider>> {
        if let Some(p) = self.provider.read().ok().and_then(|p| p.clone()) {
            return Ok(p);
        }
        let p = Arc::new(Provider::discover(&self.url, self.allow_http_loopback).await?.with_refetch_interval(self.min_refetch));
        if let Ok(mut slot) = self.provider.write() {
            *slot = Some(p.clone());
        }
        Ok(p)
    }
}

#[async_trait::async_trait]
impl stint_core::broker::CiIssuer for Issuer {
    async fn verify(&self, token: &str, expect: &ExpectedJwt<'_>) -> Result<IdToken> {
        self.provider().await?.verify_jwt(token, expect).await
    }
}

/// The token response fields stint uses. Never logged.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub id_token: String,
    /// Issued when the provider lets the client refresh (some only with `offline_access`).
    pub refresh_token: Option<SecretString>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse(<redacted>)")
    }
}

/// The fields of a refresh's token response stint uses (RFC 6749 §5.1; OpenID Connect Core
/// §12.2). Never logged.
#[derive(Deserialize)]
pub struct RefreshResponse {
    /// A rotated refresh token; absent when the old one stays valid.
    pub refresh_token: Option<SecretString>,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for RefreshResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshResponse(<redacted>)")
    }
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<Vec<Jwk>> {
    let resp = http.get(url).send().await.map_err(|e| unreachable("key set", url, e))?;
    if !resp.status().is_success() {
        return Err(unreachable("key set", url, resp.status()));
    }
    let body = read_bounded(resp, oidc::MAX_JWKS_BYTES, "key set", url).await?;
    let keys = oidc::parse_jwks(&body)?;
    if keys.is_empty() {
        return Err(Error::upstream("idp_no_keys", "the identity provider publishes no signing key stint can use (RS256, ES256 or EdDSA)"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_unless_loopback_is_allowed() {
        assert!(check_url("https://accounts.google.com", false).is_ok());
        assert_eq!(check_url("http://idp.example.com", true).unwrap_err().code(), "insecure_issuer");
        assert_eq!(check_url("http://127.0.0.1:8080", false).unwrap_err().code(), "insecure_issuer");
        assert!(check_url("http://127.0.0.1:8080", true).is_ok());
        assert_eq!(check_url("http://127.0.0.1.evil.example", true).unwrap_err().code(), "insecure_issuer");
    }
}
