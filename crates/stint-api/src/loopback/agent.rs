//! What `stint agent`'s AWS container credentials endpoint (PROTOCOLS.md §1) answers one
//! request: the method, the `Authorization` value and what the agent holds decide it. The
//! SDKs GET `AWS_CONTAINER_CREDENTIALS_FULL_URI` with the value read from
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`; any path answers. The router and the listener
//! stay in `stint-cli`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use stint_core::secret::SecretString;

/// What the endpoint holds for the AWS SDKs.
#[derive(Debug)]
pub enum Served {
    /// Nothing yet (`not_ready`), the last credential ended and no new one came
    /// (`credential_expired`), or it is not an AWS one (`not_aws`): 503 with the code.
    Pending { code: &'static str, reason: String },
    /// A credential, served until `deadline`.
    Cached { body: SecretString, deadline: Instant },
    /// Refused for good by the server (workload disabled, key or lease revoked): 403.
    Refused { code: String, message: String },
}

/// One response of the endpoint: always JSON.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    Answer { status, body: serde_json::json!({ "code": code, "message": message }).to_string() }
}

/// What the endpoint answers a request at `now`: 401 without the right `Authorization`, the
/// credential while it lives (never after), else why not.
pub fn answer(served: &Served, authorized: bool, now: Instant) -> Answer {
    if !authorized {
        return error(
            401,
            "unauthorized",
            "send the Authorization header with the contents of the agent's auth-token file (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; see `stint agent env`)",
        );
    }
    match served {
        Served::Cached { body, deadline } if now < *deadline => Answer { status: 200, body: body.expose().to_owned() },
        Served::Cached { .. } => {
            error(503, "credential_expired", "the agent's credential expired and it could not get a new one yet; see `stint agent status`")
        }
        Served::Pending { code, reason } => error(503, code, reason),
        Served::Refused { code, message } => error(403, code, message),
    }
}

/// What the endpoint serves, shared with the agent's refresher.
pub struct Endpoint {
    auth: SecretString,
    served: RwLock<Served>,
}

impl Endpoint {
    pub fn new(auth: SecretString) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            auth,
            served: RwLock::new(Served::Pending { code: "not_ready", reason: "the agent has not received a credential yet; see `stint agent status`".into() }),
        })
    }

    /// Replaces what is served.
    pub fn set(&self, s: Served) {
        // A poisoned lock only means a panic elsewhere mid-write of a plain value; take it.
        *self.served.write().unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    /// Whether `header` is the agent's `Authorization` value (constant-time).
    fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| std::str::from_utf8(h).ok()) else { return false };
        SecretString::new(given.to_owned()) == self.auth
    }

    /// The answer to a request with `method` (as HTTP spells it, case-sensitive) and the
    /// first `Authorization` header's value, at `now`.
    pub fn respond(&self, method: &str, authorization: Option<&[u8]>, now: Instant) -> Answer {
        if method != "GET" && method != "HEAD" {
            return error(405, "method_not_allowed", "the credentials endpoint answers GET");
        }
        let authorized = self.authorized(authorization);
        let served = self.served.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        answer(&served, authorized, now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_endpoint_serves_a_live_credential_only_to_the_authorized_and_never_after_its_end() {
        let now = Instant::now();
        let cached = Served::Cached { body: SecretString::new("{\"AccessKeyId\":\"A\"}".into()), deadline: now + Duration::from_secs(10) };
        assert_eq!(answer(&cached, true, now), Answer { status: 200, body: "{\"AccessKeyId\":\"A\"}".into() });
        let code = |a: Answer| -> (u16, String) {
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
            (a.status, v["code"].as_str().unwrap().to_owned())
        };
        assert_eq!(code(answer(&cached, false, now)), (401, "unauthorized".into()));
        assert_eq!(code(answer(&cached, true, now + Duration::from_secs(10))), (503, "credential_expired".into()));
        assert_eq!(code(answer(&Served::Pending { code: "not_ready", reason: "enrolling".into() }, true, now)), (503, "not_ready".into()));
        let refused = Served::Refused { code: "workload_disabled".into(), message: "disabled".into() };
        assert_eq!(code(answer(&refused, true, now)), (403, "workload_disabled".into()));
        assert_eq!(code(answer(&refused, false, now)), (401, "unauthorized".into()), "no hint to the unauthorized");
    }

    #[test]
    fn only_the_exact_authorization_value_is_accepted() {
        let ep = Endpoint::new(SecretString::new("sekrit-value".into()));
        let now = Instant::now();
        assert_eq!(ep.respond("GET", Some(b"sekrit-value"), now).status, 503, "not ready yet");
        ep.set(Served::Cached { body: SecretString::new("{}".into()), deadline: now + Duration::from_secs(60) });
        assert_eq!(ep.respond("GET", Some(b"sekrit-value"), now).status, 200);
        assert_eq!(ep.respond("HEAD", Some(b"sekrit-value"), now).status, 200);
        let wrong: [Option<&[u8]>; 7] =
            [None, Some(b""), Some(b"sekrit"), Some(b"sekrit-value "), Some(b"Bearer sekrit-value"), Some(b"SEKRIT-VALUE"), Some(b"sekrit-valu\xc3")];
        for w in wrong {
            assert_eq!(ep.respond("GET", w, now).status, 401, "{w:?}");
        }
        for m in ["POST", "PUT", "get", "OPTIONS"] {
            assert_eq!(ep.respond(m, Some(b"sekrit-value"), now).status, 405, "{m}");
        }
    }
}
