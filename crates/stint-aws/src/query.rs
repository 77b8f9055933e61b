//! The AWS Query protocol over HTTP: a signed (or, for `AssumeRoleWithWebIdentity`,
//! unsigned) form `POST /`, a bounded read of the XML answer, and AWS's `ErrorResponse`
//! turned into [`Error::Aws`].
//!
//! Also where endpoints are parsed: HTTPS only, unless the caller explicitly allows plain
//! HTTP to a loopback address for a local emulator ([`Endpoint::insecure_http_loopback`]).
//! Redirects are never followed, so a signed request only ever goes where it was signed for.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use time::OffsetDateTime;

use crate::encode::form_body;
use crate::error::{Error, Result};
use crate::secret::Credentials;
use crate::sigv4::{self, Scope};
use crate::xml::{self, Node};

/// How long one request to AWS may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The source of the current time, injected so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Where a client sends its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
    /// The `Host` header value as the HTTP client will send it (port only when not default).
    host: String,
}

impl Endpoint {
    /// An `https://` endpoint (e.g. a VPC endpoint or a FIPS endpoint).
    pub fn https(url: &str) -> Result<Endpoint> {
        Endpoint::parse(url, false)
    }

    /// Like [`Endpoint::https`] but also accepts `http://` to `127.0.0.1`, `localhost` or
    /// `[::1]`: for a local emulator in tests. Never use it for real AWS.
    pub fn insecure_http_loopback(url: &str) -> Result<Endpoint> {
        Endpoint::parse(url, true)
    }

    /// STS's regional endpoint, `https://sts.{region}.amazonaws.com`.
    pub fn sts(region: &str) -> Result<Endpoint> {
        check_region(region)?;
        Endpoint::https(&format!("https://sts.{region}.amazonaws.com"))
    }

    /// IAM's endpoint, `https://iam.amazonaws.com` (IAM is global; it signs as `us-east-1`).
    pub fn iam() -> Endpoint {
        let url = Url::parse("https://iam.amazonaws.com/").expect("a constant, valid URL");
        Endpoint { url, host: "iam.amazonaws.com".into() }
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    fn parse(url: &str, allow_http_loopback: bool) -> Result<Endpoint> {
        let bad = |why: &str| Error::Invalid(format!("endpoint URL {url:?} {why}"));
        let parsed = Url::parse(url).map_err(|e| bad(&format!("does not parse ({e})")))?;
        let host = parsed.host_str().ok_or_else(|| bad("has no host"))?.to_owned();
        match parsed.scheme() {
            "https" => {}
            "http" if allow_http_loopback && is_loopback(&host) => {}
            "http" => return Err(bad("is plain http; use https (plain http is allowed only to a loopback emulator in tests)")),
            _ => return Err(bad("must start with https://")),
        }
        if parsed.path() != "/" || parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("must be just scheme://host[:port]/ (no path, query or user info)"));
        }
        let host = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        Ok(Endpoint { url: parsed, host })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Regions are DNS labels (`eu-west-1`); anything else would change the endpoint host.
pub(crate) fn check_region(region: &str) -> Result<()> {
    let ok = !region.is_empty() && region.len() <= 32 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("AWS region {region:?} is not a region name like eu-west-1")))
    }
}

/// An HTTP client configured for AWS: timeouts, no redirects, rustls.
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the HTTPS client: {e}")))
}

/// One AWS Query-protocol service at one endpoint.
#[derive(Clone)]
pub(crate) struct QueryClient {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: Endpoint,
    pub(crate) service: &'static str,
    pub(crate) region: String,
    pub(crate) version: &'static str,
    pub(crate) clock: Arc<dyn Clock>,
}

impl QueryClient {
    /// Calls `action` with `params`, signed with `credentials` (or unsigned when `None`),
    /// and returns the XML answer.
    pub(crate) async fn call(&self, action: &str, params: &[(&str, &str)], credentials: Option<&Credentials>) -> Result<String> {
        let mut all = vec![("Action", action), ("Version", self.version)];
        all.extend_from_slice(params);
        let body = form_body(&all);
        let mut req = self.http.post(self.endpoint.url.clone()).header("content-type", sigv4::FORM_CONTENT_TYPE);
        if let Some(c) = credentials {
            let scope = Scope { service: self.service, region: &self.region };
            let signature = sigv4::sign_form_post(&self.endpoint.host, &body, scope, c, self.clock.now());
            for (name, value) in signature.headers() {
                req = req.header(name, value);
            }
        }
        tracing::debug!(service = self.service, action, endpoint = %self.endpoint.url, "AWS request");
        let resp = req.body(body).send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let text = read_bounded(resp, xml::MAX_LEN).await.map_err(|e| match e {
            ReadError::TooLarge => Error::malformed(self.service, format!("the answer is larger than {} bytes", xml::MAX_LEN)),
            ReadError::Http(e) => self.transport(e),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(self.aws_error(status.as_u16(), &text))
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        Error::Transport { endpoint: self.endpoint.url.to_string(), detail: error_chain(e) }
    }

    /// `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.
    fn aws_error(&self, status: u16, text: &str) -> Error {
        let doc = Node::document(text);
        let field = |path: &[&str]| doc.and_then(|d| d.path(path)).and_then(Node::text);
        match field(&["ErrorResponse", "Error", "Code"]) {
            Some(code) => Error::Aws {
                service: self.service,
                status,
                code,
                message: field(&["ErrorResponse", "Error", "Message"]).unwrap_or_default(),
                request_id: field(&["ErrorResponse", "RequestId"]),
            },
            None => Error::malformed(self.service, format!("HTTP {status} without an AWS error document")),
        }
    }
}

/// A reqwest error with its causes ("error sending request: connection refused"). reqwest's
/// errors name the URL and the cause, never headers or the body, so no secret can leak here.
pub(crate) fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(crate) enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads at most `max` bytes of the body as UTF-8 (lossy), refusing anything longer.
pub(crate) async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<String, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The text at `path` in the answer to `action`, or a [`Error::Malformed`] naming it.
pub(crate) fn required(doc: Node<'_>, service: &str, path: &[&str]) -> Result<String> {
    doc.path(path).and_then(Node::text).ok_or_else(|| Error::malformed(service, format!("the answer has no {}", path.join("/"))))
}

/// The parsed answer document, or a [`Error::Malformed`].
pub(crate) fn document<'a>(text: &'a str, service: &str) -> Result<Node<'a>> {
    Node::document(text).ok_or_else(|| Error::malformed(service, "the answer is not the XML this client reads"))
}

/// Parses an ISO 8601 / RFC 3339 timestamp as AWS writes them (`2026-01-01T12:00:00Z`,
/// with or without fractional seconds).
pub(crate) fn parse_time(s: &str, from: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::malformed(from, format!("the expiration {s:?} is not an RFC 3339 time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_unless_loopback_is_allowed() {
        assert_eq!(Endpoint::sts("eu-west-1").expect("valid").url(), "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(Endpoint::iam().url(), "https://iam.amazonaws.com/");
        assert!(Endpoint::sts("eu-west-1.evil.com/x").is_err());
        assert!(Endpoint::https("http://127.0.0.1:5000").is_err());
        let e = Endpoint::insecure_http_loopback("http://127.0.0.1:5000").expect("loopback");
        assert_eq!(e.host, "127.0.0.1:5000");
        assert_eq!(Endpoint::https("https://sts.example.com:443/").expect("valid").host, "sts.example.com");
        assert!(Endpoint::insecure_http_loopback("http://10.0.0.1:5000").is_err());
        assert!(Endpoint::insecure_http_loopback("http://localhost.evil.com").is_err());
        assert!(Endpoint::https("https://sts.example.com/path").is_err());
        assert!(Endpoint::https("https://user:pw@sts.example.com/").is_err());
    }

    #[test]
    fn times_parse_with_and_without_fractions() {
        assert_eq!(parse_time("2026-11-26T08:16:00.680298Z", "sts").expect("valid").unix_timestamp(), 1_795_680_960);
        assert_eq!(parse_time("2026-11-26T08:16:00Z", "sts").expect("valid").unix_timestamp(), 1_795_680_960);
        assert!(parse_time("yesterday", "sts").is_err());
    }
}
