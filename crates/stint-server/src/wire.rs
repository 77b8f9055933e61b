//! The JSON bodies of the HTTP API, shared with the CLI. Requests refuse unknown fields.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapRequest {
    pub token: String,
    pub username: String,
}

/// An enrollment code for a user, shown once.
#[derive(Serialize, Deserialize, Debug)]
pub struct EnrollmentCode {
    pub username: String,
    pub enrollment_code: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub code: String,
    pub password: String,
}

#[derive(Serialize, Deserialize)]
pub struct EnrollResponse {
    pub username: String,
    pub otpauth_uri: String,
    pub totp_secret: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    pub totp: String,
}

#[derive(Serialize, Deserialize)]
pub struct LoginResponse {
    pub session_token: String,
    pub session_id: String,
    pub username: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRequest {
    pub role: String,
    /// Like `15m`; omitted means the longest the role and the session allow.
    pub ttl: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct AssumeResponse {
    pub token: String,
    pub token_type: String,
    pub role: String,
    pub jti: String,
    pub issued_at: String,
    pub expires_at: String,
    pub expires_in: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUserRequest {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    pub token: String,
    pub token_type_hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct AuditPage {
    pub records: Vec<stint_core::audit::Record>,
    /// `(seq, hash)` of the chain head, kept apart from the records.
    pub head: Option<(u64, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    pub after: u64,
    pub limit: Option<u32>,
    /// Seconds to wait for new records when there are none (long poll, at most 30).
    pub wait: Option<u64>,
}

/// The error body of every failed request.
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}
