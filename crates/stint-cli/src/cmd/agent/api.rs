//! The server's workload API, as the agent calls it: enrollment (join or attest), credentials
//! and the cheap status check. Errors keep the server's stable code and never carry a secret.

use serde::Deserialize;
use stint_api::workloads::{AttestBody, JoinBody, WorkloadCredsBody, WorkloadStatusBody};
use stint_api::CredsResponse;
use stint_core::secret::SecretString;

/// How the server answered, when it did not answer with what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A 4xx with its stable code: the server refused.
    Refused { status: u16, code: String, message: String },
    /// The server could not be reached, failed (5xx) or sent what this agent does not
    /// understand: worth retrying.
    Unavailable { code: &'static str, message: String },
}

impl ApiError {
    /// The stable code (`key_revoked`, `server_unreachable`, …).
    pub fn code(&self) -> &str {
        match self {
            ApiError::Refused { code, .. } => code,
            ApiError::Unavailable { code, .. } => code,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            ApiError::Refused { message, .. } | ApiError::Unavailable { message, .. } => message,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for ApiError {}

/// What enrolling answers.
#[derive(Debug, Deserialize)]
pub struct Enrolled {
    pub workload: String,
    pub key_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `POST /v1/workload/status`.
#[derive(Debug, Deserialize)]
pub struct StatusReply {
    pub live: bool,
    pub lease: Option<LeaseStatus>,
}

#[derive(Debug, Deserialize)]
pub struct LeaseStatus {
    pub status: String,
    pub live: bool,
}

/// The error body: `{"code", "message"}`, or `{"error", "message"}` as the rest of the API
/// spells it.
#[derive(Deserialize)]
struct ErrorReply {
    #[serde(alias = "error")]
    code: String,
    #[serde(default)]
    message: String,
}

/// A client for one stint server's workload API.
pub struct Api {
    http: reqwest::Client,
    pub server: String,
}

impl Api {
    /// Verifies the server with the system's roots, or only the `--ca-file`.
    pub fn new(server: &str) -> anyhow::Result<Api> {
        let http = crate::client::http_client(std::time::Duration::from_secs(10))?;
        Ok(Api { http, server: server.trim_end_matches('/').to_owned() })
    }

    /// The server's issuer URL, the audience of assertions.
    pub async fn issuer(&self) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
        }
        let d: Discovery = self.call(self.http.get(self.url("/.well-known/openid-configuration"))).await?;
        Ok(d.issuer)
    }

    /// Enrolls `public_key` with a one-time join token.
    pub async fn join(&self, join_token: &SecretString, public_key: &str) -> Result<Enrolled, ApiError> {
        let body = JoinBody { join_token: join_token.expose().to_owned(), public_key: public_key.to_owned() };
        self.call(self.http.post(self.url("/v1/workload/join")).json(&body)).await
    }

    /// Enrolls `public_key` with a token the platform issued to `workload`.
    pub async fn attest(&self, workload: &str, token: &SecretString, public_key: &str) -> Result<Enrolled, ApiError> {
        let body = AttestBody { workload: workload.to_owned(), token: token.expose().to_owned(), public_key: public_key.to_owned() };
        self.call(self.http.post(self.url("/v1/workload/attest")).json(&body)).await
    }

    pub async fn creds(&self, ask: &WorkloadCredsBody) -> Result<CredsResponse, ApiError> {
        self.call(self.http.post(self.url("/v1/workload/creds")).json(ask)).await
    }

    pub async fn status(&self, assertion: &str, lease_id: Option<&str>) -> Result<StatusReply, ApiError> {
        let body = WorkloadStatusBody { assertion: assertion.to_owned(), lease_id: lease_id.map(str::to_owned) };
        self.call(self.http.post(self.url("/v1/workload/status")).json(&body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    async fn call<T: for<'de> Deserialize<'de>>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = req.send().await.map_err(|e| unreachable(&self.server, &e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return resp.json().await.map_err(|_| ApiError::Unavailable {
                code: "bad_response",
                message: format!(
                    "the stint server at {} sent an answer this agent does not understand; are the agent and server versions compatible?",
                    self.server
                ),
            });
        }
        let body: Option<ErrorReply> = resp.json().await.ok();
        Err(classify(status, body.map(|b| (b.code, b.message))))
    }
}

/// A failed answer: refusals (4xx) keep the server's code; the rest are worth retrying.
fn classify(status: u16, body: Option<(String, String)>) -> ApiError {
    match (status, body) {
        (400..=499, Some((code, message))) => ApiError::Refused { status, code, message },
        (400..=499, None) => ApiError::Refused { status, code: "http_error".into(), message: format!("HTTP {status}") },
        (_, body) => ApiError::Unavailable {
            code: "server_error",
            message: body.map_or_else(
                || format!("the stint server failed (HTTP {status})"),
                |(code, message)| format!("the stint server failed (HTTP {status}): {message} ({code})"),
            ),
        },
    }
}

fn unreachable(server: &str, e: &reqwest::Error) -> ApiError {
    let what = if e.is_timeout() { "did not answer in time" } else { "cannot be reached" };
    // The cause (connection refused, certificate unknown…) is reqwest's, which never holds the body.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    ApiError::Unavailable { code: "server_unreachable", message: format!("the stint server at {server} {what}: {cause}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_code_and_server_failures_are_retried() {
        let refused = classify(403, Some(("workload_disabled".into(), "disabled".into())));
        assert_eq!(refused, ApiError::Refused { status: 403, code: "workload_disabled".into(), message: "disabled".into() });
        assert_eq!(classify(404, None).code(), "http_error");
        let failed = classify(502, Some(("bad_gateway".into(), "upstream".into())));
        assert!(matches!(failed, ApiError::Unavailable { code: "server_error", .. }));
        assert!(failed.to_string().contains("upstream"));
        assert_eq!(classify(500, None).code(), "server_error");
    }

    #[test]
    fn error_bodies_are_read_with_either_spelling() {
        for body in [r#"{"code":"key_revoked","message":"m"}"#, r#"{"error":"key_revoked","message":"m"}"#] {
            let e: ErrorReply = serde_json::from_str(body).unwrap();
            assert_eq!((e.code.as_str(), e.message.as_str()), ("key_revoked", "m"));
        }
    }
}
