//! The bodies of stint's HTTP API, shared by the server (`stint-server`) and its clients
//! (`stint-cli`), so both sides (de)serialise the same types. Requests refuse unknown fields.
//!
//! Only data and its shape live here: no I/O, nothing from the HTTP stack, so the client-only
//! build of `stint` needs neither the server nor the store (docs/architecture.md).

pub mod html;
pub mod inventory;
pub mod loopback;
pub mod report;
pub mod scim;
pub mod workloads;

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

/// `POST /v1/creds`: a credential for a role, on one of its backends.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CredsRequest {
    pub role: String,
    /// Like `15m`; omitted means the longest the role and the session allow.
    pub ttl: Option<String>,
    /// A backend by name (`token` for the role token); by default the role's one backend.
    pub backend: Option<String>,
    /// The OpenSSH public key to certify (SSH backends).
    pub public_key: Option<String>,
}

/// A credential. Its values (user names, keys, passwords, tokens) are top-level fields
/// beside these, so `jq .password` works; `env` names the variables tools read them from.
#[derive(Serialize, Deserialize, Clone)]
pub struct CredsResponse {
    /// The backend's name; `token` for the role token.
    pub backend: String,
    /// `token`, `aws`, `postgres` or `ssh`.
    pub kind: String,
    pub role: String,
    /// The lease to revoke it by (backends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    pub issued_at: String,
    pub expires_at: String,
    pub expires_in: u64,
    /// Environment variable → the value's name.
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(flatten)]
    pub values: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A lease, as `stint leases` shows it. Never the credential itself.
#[derive(Serialize, Deserialize)]
pub struct LeaseView {
    pub id: String,
    pub backend: String,
    pub kind: String,
    pub status: String,
    pub subject: String,
    pub role: String,
    pub external_id: String,
    pub issued_at: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl LeaseView {
    pub fn new(l: &stint_core::model::Lease, now: stint_core::Timestamp) -> LeaseView {
        LeaseView {
            id: l.id.to_string(),
            backend: l.backend.clone(),
            kind: l.kind.as_str().into(),
            status: l.status(now).into(),
            subject: l.subject.clone(),
            role: l.role.to_string(),
            external_id: l.external_id.clone(),
            issued_at: l.issued_at.to_rfc3339(),
            expires_at: l.expires_at.to_rfc3339(),
            session_id: l.session_id.as_ref().map(ToString::to_string),
            grant_id: l.grant_id.clone(),
            revoked_at: l.revoked_at.map(|t| t.to_rfc3339()),
            revoke_reason: l.revoke_reason.clone(),
            ended_at: l.ended_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// `GET /v1/leases?…`; what is not asked for is left out of the query.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LeasesQuery {
    /// One user's leases (administrators); default: your own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every user's (administrators).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub everyone: bool,
    /// Include ended leases.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUserRequest {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// An account that ends by itself: when (`2026-12-31` or RFC 3339), with `sponsor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The user name of the person who vouches for it; set with `expires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
}

/// `POST /v1/users/{name}/expiry`: when the account ends and its sponsor, or neither (it no
/// longer ends).
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExpiryRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
}

impl ExpiryRequest {
    /// The terms both fields make, or none; one without the other is refused.
    pub fn terms(&self) -> Result<Option<stint_core::broker::Terms<'_>>, stint_core::Error> {
        match (self.expires.as_deref(), self.sponsor.as_deref()) {
            (Some(expires), Some(sponsor)) => Ok(Some(stint_core::broker::Terms { expires, sponsor })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(stint_core::Error::invalid("sponsor_required", "an account that ends has a sponsor: set sponsor too")),
            (None, Some(_)) => Err(stint_core::Error::invalid("expiry_required", "a sponsor vouches for an account that ends: set expires too")),
        }
    }
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

/// `POST /v1/sso/begin`: a browser login from the CLI's loopback listener.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoBeginRequest {
    #[serde(default)]
    pub provider: Option<String>,
    pub redirect_uri: String,
    pub code_challenge: String,
    /// Only `S256` (RFC 7636 §4.3); `plain` is refused.
    #[serde(default)]
    pub code_challenge_method: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct SsoBeginResponse {
    pub provider: String,
    pub authorization_url: String,
    pub expires_at: String,
}

/// `POST /v1/sso/device/authorize` (RFC 8628 §3.1), form-encoded.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceAuthorizationRequest {
    #[serde(default)]
    pub provider: Option<String>,
    /// Accepted for RFC 8628 clients; stint has one public client.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// RFC 8628 §3.2.
#[derive(Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
    pub provider: String,
}

/// What the provider appends to stint's callback. Providers add parameters of their own
/// (Google: `authuser`, `hd`, `prompt`, `scope`), so unknown ones are ignored.
#[derive(Deserialize)]
pub struct SsoCallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    /// RFC 9207: the issuer of the response, checked when present.
    pub iss: Option<String>,
}

#[derive(Deserialize)]
pub struct DeviceVerifyQuery {
    pub user_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceVerifyForm {
    pub user_code: String,
    /// Set by the confirmation page's button: only then does the person go to the provider.
    pub confirm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpForm {
    pub state: String,
    pub totp: String,
}

/// `POST /v1/sso/token`, form-encoded: a device-code poll (RFC 8628 §3.4) or the browser
/// flow's login code with the CLI's PKCE verifier.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoTokenRequest {
    pub grant_type: String,
    #[serde(default)]
    pub device_code: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub code_verifier: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct SsoProvidersResponse {
    pub providers: Vec<String>,
}

/// `PUT /v1/users/{name}/groups`: the complete new list.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetGroupsRequest {
    pub groups: Vec<String>,
}

/// `POST /v1/users/{name}/identities`: the configured provider's name and the person's `sub` there.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkIdentityRequest {
    pub provider: String,
    pub subject: String,
}

/// `POST /v1/token` (RFC 8693 §2.1), form-encoded. `role` (or `scope`) names the role; `ttl`
/// asks for less than the role's CI lifetime.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeRequest {
    pub grant_type: String,
    pub subject_token: String,
    #[serde(default)]
    pub subject_token_type: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub requested_token_type: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
}

/// RFC 8693 §2.2.1, with stint's `role`, `jti` and `expires_at`.
#[derive(Serialize, Deserialize)]
pub struct TokenExchangeResponse {
    pub access_token: String,
    pub issued_token_type: String,
    pub token_type: String,
    pub expires_in: u64,
    pub role: String,
    pub jti: String,
    pub expires_at: String,
}

/// `POST /v1/requests`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRequestBody {
    pub role: String,
    pub reason: String,
    /// Like `1h`; default and maximum: `[approvals] max_duration`.
    #[serde(default)]
    pub duration: Option<String>,
}

/// `POST /v1/requests/{id}/deny`, `POST /v1/grants/{id}/revoke`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/break-glass`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    pub reason: String,
    /// Like `30m`; default and maximum: `[break_glass] max_duration`.
    #[serde(default)]
    pub duration: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::LeasesQuery;

    #[test]
    fn a_leases_query_encodes_its_values_and_leaves_out_what_is_not_asked() {
        assert_eq!(serde_urlencoded::to_string(LeasesQuery::default()).unwrap(), "");
        let q = LeasesQuery { user: Some("a b&all=true+ü".into()), everyone: true, all: false };
        let text = serde_urlencoded::to_string(&q).unwrap();
        assert_eq!(text, "user=a+b%26all%3Dtrue%2B%C3%BC&everyone=true");
        let back: LeasesQuery = serde_urlencoded::from_str(&text).unwrap();
        assert_eq!((back.user.as_deref(), back.everyone, back.all), (Some("a b&all=true+ü"), true, false));
    }
}
