//! Building the SDK's clients for one backend: identity, region, endpoints, HTTP.
//!
//! **Identity.** [`Identity::Ambient`] is the SDK's default credential chain, exactly as the
//! AWS CLI and every SDK resolve it: environment variables, the shared config and credentials
//! files (`AWS_PROFILE`; profiles that assume a role from a `source_profile`, IAM Identity
//! Center, `credential_process`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` +
//! `AWS_ROLE_ARN`), the container provider (ECS, EKS Pod Identity) and the EC2 instance
//! metadata service (IMDSv2, falling back to v1 only where the SDK does). stint keeps no
//! long-lived key of its own: it runs as whatever the machine provides. The providers' own
//! calls (to STS for a role profile, to IMDS) go through the same HTTP client and honour the
//! SDK's standard settings (`AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, …).
//! Credentials are cached by the SDK and refreshed before they expire.
//!
//! **Endpoints.** A backend's `sts_endpoint`/`iam_endpoint` replace AWS's for stint's own calls
//! (VPC, FIPS or other-partition endpoints; an emulator in tests). They must be
//! `https://host[:port]` with nothing after the host, so a signed request only ever goes where
//! it was meant to; `http://` is accepted only to a loopback address and only when the
//! configuration says `danger_allow_http_loopback` ([`Endpoint::insecure_http_loopback`]).
//!
//! **HTTP.** hyper with rustls on ring (the workspace's one TLS stack), the platform's root
//! certificates, no redirects, a 5 s connect timeout, 10 s per attempt and 30 s per call, the
//! SDK's standard retries (3 attempts, for throttling and transient errors only). Every answer
//! is capped at [`MAX_ANSWER`] bytes *while it is read* ([`Capped`]): an endless answer, from
//! AWS, an endpoint override or a credential provider, fails at the cap instead of filling the
//! memory. The credential report has a client of its own, capped at [`MAX_REPORT_ANSWER`].

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use stint_core::secret::SecretString;

use crate::error::{Error, Result};
use crate::iam::Iam;
use crate::sts::Sts;

/// The most bytes of one answer read from AWS or a credential provider. STS and IAM answers
/// are a few KiB; a role's inline policy at most 10,240 characters, percent-encoded.
pub const MAX_ANSWER: usize = 256 * 1024;
/// The most bytes of a `GetCredentialReport` answer: the report stint reads
/// (`stint_core::inventory::MAX_REPORT_BYTES`, 16 MiB) in base64, which adds a third, inside
/// IAM's XML. An account of a few hundred IAM users already passes [`MAX_ANSWER`].
pub const MAX_REPORT_ANSWER: usize = 24 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Whose credentials sign stint's calls to AWS.
#[derive(Clone, Debug)]
pub enum Identity {
    /// The SDK's default credential chain (see the module documentation): what the server uses.
    Ambient,
    /// A fixed key: tests, and signing with credentials stint itself issued.
    Keys(Keys),
}

/// An access key: long-term (`AKIA…`) or temporary (`ASIA…` with its session token).
#[derive(Clone, Debug)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl Keys {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>, session_token: Option<String>) -> Keys {
        Keys {
            access_key_id: access_key_id.into(),
            secret_access_key: SecretString::new(secret_access_key.into()),
            session_token: session_token.map(SecretString::new),
        }
    }

    fn credentials(&self) -> Credentials {
        let token = self.session_token.as_ref().map(|t| t.expose().to_owned());
        Credentials::new(&self.access_key_id, self.secret_access_key.expose(), token, None, "stint")
    }
}

/// What one backend's clients are built from.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where STS is called (its regional endpoint unless `sts_endpoint` is set), and the
    /// region the credential chain's own calls use.
    pub region: String,
    pub sts_endpoint: Option<Endpoint>,
    pub iam_endpoint: Option<Endpoint>,
}

impl Settings {
    /// Checks the region (a DNS label like `eu-west-1`: it becomes part of a host name).
    pub fn new(region: &str, sts_endpoint: Option<Endpoint>, iam_endpoint: Option<Endpoint>) -> Result<Settings> {
        stint_core::aws::check_region(region).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Settings { region: region.to_owned(), sts_endpoint, iam_endpoint })
    }
}

/// The clients of one backend, sharing one identity and one HTTP client.
#[derive(Clone)]
pub struct Aws {
    pub sts: Sts,
    pub iam: Iam,
}

impl Aws {
    /// Builds the clients. Resolving credentials is lazy: a missing or broken identity shows
    /// at the first call (the server makes one at start, `GetCallerIdentity`).
    pub async fn load(settings: &Settings, identity: &Identity) -> Aws {
        let sdk = sdk_config(&settings.region, identity).await;
        let mut sts = aws_sdk_sts::config::Builder::from(&sdk);
        if let Some(e) = &settings.sts_endpoint {
            sts = sts.endpoint_url(e.url());
        }
        let mut iam = aws_sdk_iam::config::Builder::from(&sdk);
        if let Some(e) = &settings.iam_endpoint {
            iam = iam.endpoint_url(e.url());
        }
        // The credential report alone may be large: its own client, with its own cap.
        let reports = iam.clone().http_client(capped_http_client(MAX_REPORT_ANSWER));
        let iam = Iam::new(aws_sdk_iam::Client::from_conf(iam.build()), aws_sdk_iam::Client::from_conf(reports.build()));
        Aws { sts: Sts::new(aws_sdk_sts::Client::from_conf(sts.build())), iam }
    }
}

async fn sdk_config(region: &str, identity: &Identity) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .http_client(http_client())
        .timeout_config(
            TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(ATTEMPT_TIMEOUT).operation_timeout(CALL_TIMEOUT).build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    match identity {
        Identity::Ambient => loader.load().await,
        Identity::Keys(k) => loader.credentials_provider(k.credentials()).load().await,
    }
}

/// The HTTP client stint gives the SDK: hyper + rustls (ring) with the platform's roots, each
/// answer capped at [`MAX_ANSWER`].
pub fn http_client() -> SharedHttpClient {
    capped_http_client(MAX_ANSWER)
}

/// As [`http_client`], with answers capped at `max` bytes.
fn capped_http_client(max: usize) -> SharedHttpClient {
    let inner = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    SharedHttpClient::new(Capped { inner, max })
}

/// An HTTP client whose answers fail once more than `max` bytes of body have arrived.
#[derive(Debug, Clone)]
struct Capped {
    inner: SharedHttpClient,
    max: usize,
}

impl HttpClient for Capped {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(CappedConnector { inner: self.inner.http_connector(settings, components), max: self.max })
    }
}

#[derive(Debug)]
struct CappedConnector {
    inner: SharedHttpConnector,
    max: usize,
}

impl HttpConnector for CappedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (answer, max) = (self.inner.call(request), self.max);
        HttpConnectorFuture::new(async move {
            let response = answer.await?;
            Ok(response.map(|body| SdkBody::from_body_1_x(http_body_util::Limited::new(body, max))))
        })
    }
}

/// Where a client sends its requests: an endpoint override, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    /// An `https://host[:port]` endpoint (a VPC or FIPS endpoint).
    pub fn https(url: &str) -> Result<Endpoint> {
        Endpoint::parse(url, false)
    }

    /// Like [`Endpoint::https`] but also accepts `http://` to `127.0.0.1`, `localhost` or
    /// `[::1]`: for a local emulator in tests. Never for real AWS.
    pub fn insecure_http_loopback(url: &str) -> Result<Endpoint> {
        Endpoint::parse(url, true)
    }

    /// `https` unless `allow_http_loopback`, as the backend's configuration says.
    pub fn parse(url: &str, allow_http_loopback: bool) -> Result<Endpoint> {
        let bad = |why: &str| Error::Invalid(format!("endpoint URL {url:?} {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("must start with https://"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) || authority.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must be just scheme://host[:port] (no path, query or user info)"));
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default(),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_owned(),
        };
        match scheme {
            "https" => {}
            "http" if allow_http_loopback && is_loopback(&host) => {}
            "http" => return Err(bad("is plain http; use https (plain http is allowed only to a loopback emulator in tests)")),
            _ => return Err(bad("must start with https://")),
        }
        Ok(Endpoint(format!("{scheme}://{authority}")))
    }

    pub fn url(&self) -> &str {
        &self.0
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_unless_loopback_is_allowed() {
        assert_eq!(Endpoint::https("https://sts.example.com:8443/").expect("valid").url(), "https://sts.example.com:8443");
        assert!(Endpoint::https("http://127.0.0.1:5000").is_err());
        assert_eq!(Endpoint::insecure_http_loopback("http://127.0.0.1:5000").expect("loopback").url(), "http://127.0.0.1:5000");
        assert!(Endpoint::insecure_http_loopback("http://[::1]:5000").is_ok());
        assert!(Endpoint::insecure_http_loopback("http://localhost:5000/").is_ok());
        for bad in ["http://10.0.0.1:5000", "http://localhost.evil.com", "http://127.0.0.1.evil.com", "ftp://127.0.0.1"] {
            assert!(Endpoint::insecure_http_loopback(bad).is_err(), "{bad}");
        }
        for bad in
            ["https://sts.example.com/path", "https://user:pw@sts.example.com/", "https://sts.example.com?x=1", "https://", "sts.example.com", "https://a b"]
        {
            assert!(Endpoint::https(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_are_dns_labels() {
        assert!(Settings::new("eu-west-1", None, None).is_ok());
        assert!(Settings::new("eu-west-1.evil.com/x", None, None).is_err());
        assert!(Settings::new("", None, None).is_err());
    }

    #[test]
    fn keys_never_show_their_secrets() {
        let k = Keys::new("ASIAEXAMPLE", "s3cr3t-key", Some("t0ken".into()));
        let shown = format!("{k:?} {:?}", Identity::Keys(k.clone()));
        assert!(shown.contains("ASIAEXAMPLE"));
        assert!(!shown.contains("s3cr3t-key") && !shown.contains("t0ken"), "{shown}");
    }
}
