//! An STS-compatible `AssumeRoleWithWebIdentity` endpoint (`POST /v1/sts`): the AWS query API
//! and its XML, so `boto3.client("sts", endpoint_url=…)` and `aws sts
//! assume-role-with-web-identity --endpoint-url …` work unchanged with a CI token.
//!
//! The token is checked exactly as by `POST /v1/token` (issuer, signature, the role's trust
//! policy, Cedar, single use); the role is the stint role whose AWS backend maps `RoleArn`, and
//! the keys are those stint obtained from AWS with `AssumeRole`. Every refusal is STS's XML
//! error shape with an STS error code.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use stint_core::broker::{CiLeased, ExchangeRequest};
use stint_core::secret::SecretString;
use stint_core::Ttl;

use crate::extract::ClientAddr;
// The HTML escaping covers XML's five characters and replaces the code points XML 1.0 forbids.
use crate::html::escape as esc;
use crate::AppState;

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

fn request_id() -> String {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let h = data_encoding::HEXLOWER.encode(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// STS's `ErrorResponse`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            esc(code),
            esc(message),
            request_id()
        ),
    )
}

/// stint's refusal as the STS error a client expects for it.
fn sts_error(e: &stint_core::Error) -> Response {
    let message = e.to_string();
    let (status, code) = match e.code() {
        "token_expired" => (StatusCode::BAD_REQUEST, "ExpiredTokenException"),
        "invalid_token" | "untrusted_issuer" | "token_replayed" | "token_wrong_audience" => (StatusCode::BAD_REQUEST, "InvalidIdentityToken"),
        c if c == "ci_issuer_misconfigured" || c.starts_with("idp_") => (StatusCode::BAD_REQUEST, "IDPCommunicationError"),
        "lease_revoked" | "session_revoked" | "grant_revoked" => (StatusCode::FORBIDDEN, "AccessDenied"),
        "no_trust_policy" | "no_matching_trust_policy" | "role_not_granted" | "unknown_role_arn" | "backend_refused" => (StatusCode::FORBIDDEN, "AccessDenied"),
        "ttl_too_long" | "ttl_too_short" => (StatusCode::BAD_REQUEST, "ValidationError"),
        "backend_unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        _ => match e {
            stint_core::Error::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            _ if e.fault() == stint_core::Fault::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
            stint_core::Error::Throttled { .. } => (StatusCode::BAD_REQUEST, "Throttling"),
            _ => (StatusCode::BAD_REQUEST, "InvalidParameterValue"),
        },
    };
    // Internal causes stay in the server's log, as for every other route.
    let message = if status == StatusCode::INTERNAL_SERVER_ERROR { "stint could not complete the request; see its log".to_owned() } else { message };
    error(status, code, &message)
}

/// A role session name as STS accepts it: 2–64 of `[\w+=,.@-]`.
fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

pub async fn assume_role_with_web_identity(State(s): State<AppState>, ClientAddr(addr): ClientAddr, body: Bytes) -> Response {
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error(StatusCode::BAD_REQUEST, "MalformedQueryString", "the body is not application/x-www-form-urlencoded");
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("Action") {
        Some("AssumeRoleWithWebIdentity") => {}
        Some(other) => {
            let other: String = other.chars().take(64).collect();
            return error(StatusCode::BAD_REQUEST, "InvalidAction", &format!("stint answers only AssumeRoleWithWebIdentity, not {other:?}"));
        }
        None => return error(StatusCode::BAD_REQUEST, "MissingAction", "the request names no Action"),
    }
    if get("Version").is_some_and(|v| v != "2011-06-15") {
        return error(StatusCode::BAD_REQUEST, "InvalidParameterValue", "Version must be 2011-06-15");
    }
    let (Some(role_arn), Some(session_name), Some(token)) = (get("RoleArn"), get("RoleSessionName"), get("WebIdentityToken")) else {
        return error(StatusCode::BAD_REQUEST, "MissingParameter", "RoleArn, RoleSessionName and WebIdentityToken are required");
    };
    if !valid_session_name(session_name) {
        return error(StatusCode::BAD_REQUEST, "ValidationError", "RoleSessionName must be 2-64 characters of [\\w+=,.@-]");
    }
    if get("Policy").is_some() || params.iter().any(|(k, _)| k.starts_with("PolicyArns.")) || get("ProviderId").is_some() {
        return error(StatusCode::BAD_REQUEST, "ValidationError", "stint does not take Policy, PolicyArns or ProviderId: the role's trust policy decides");
    }
    let ttl = match get("DurationSeconds").map(str::parse::<u64>) {
        None => None,
        Some(Ok(secs)) if (900..=43_200).contains(&secs) => Ttl::from_secs(secs).ok(),
        Some(_) => return error(StatusCode::BAD_REQUEST, "ValidationError", "DurationSeconds must be a number between 900 and 43200"),
    };
    let req = ExchangeRequest { token: SecretString::new(token.to_owned()), role: String::new(), ttl, addr };
    match s.broker.exchange_for_backend(req, role_arn).await {
        Ok(ok) => success(&ok),
        Err(e) => sts_error(&e),
    }
}

fn success(ok: &CiLeased) -> Response {
    let c = &ok.leased.credential;
    let field = |k: &str| c.fields.get(k).map(String::as_str).unwrap_or_default();
    let secret = |k: &str| c.secrets.get(k).map(|v| v.expose()).unwrap_or_default();
    let source_identity = match field("source_identity") {
        "" => String::new(),
        si => format!("    <SourceIdentity>{}</SourceIdentity>\n", esc(si)),
    };
    xml(
        StatusCode::OK,
        format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"{XMLNS}\">\n  <AssumeRoleWithWebIdentityResult>\n    \
             <SubjectFromWebIdentityToken>{sub}</SubjectFromWebIdentityToken>\n    <Audience>{aud}</Audience>\n    \
             <AssumedRoleUser>\n      <Arn>{arn}</Arn>\n      <AssumedRoleId>{id}</AssumedRoleId>\n    </AssumedRoleUser>\n    \
             <Credentials>\n      <AccessKeyId>{akid}</AccessKeyId>\n      <SecretAccessKey>{sak}</SecretAccessKey>\n      \
             <SessionToken>{tok}</SessionToken>\n      <Expiration>{exp}</Expiration>\n    </Credentials>\n    \
             <Provider>{provider}</Provider>\n{source_identity}  </AssumeRoleWithWebIdentityResult>\n  \
             <ResponseMetadata>\n    <RequestId>{rid}</RequestId>\n  </ResponseMetadata>\n</AssumeRoleWithWebIdentityResponse>\n",
            sub = esc(&ok.token_subject),
            aud = esc(&ok.audience),
            arn = esc(field("assumed_role_arn")),
            id = esc(field("assumed_role_id")),
            akid = esc(field("access_key_id")),
            sak = esc(secret("secret_access_key")),
            tok = esc(secret("session_token")),
            exp = c.expires_at.to_rfc3339(),
            provider = esc(&ok.provider),
            rid = request_id(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped_and_session_names_checked() {
        assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&#39;\u{fffd}");
        assert!(valid_session_name("gh-run_42@org.example"));
        for bad in ["a", "has space", "slash/", &"x".repeat(65)] {
            assert!(!valid_session_name(bad), "{bad:?}");
        }
        assert_eq!(request_id().len(), 36);
    }
}
