//! The AWS container credentials endpoint (PROTOCOLS.md §1) on loopback: the SDKs GET
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (documented as `/v1/credentials`; any path answers)
//! with the `Authorization` value read from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use stint_core::secret::SecretString;

use super::cred::{answer, Answer, Served};

/// The path `stint agent env` points the SDKs at.
pub const PATH: &str = "/v1/credentials";

/// What the endpoint serves, shared with the refresher.
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

    fn respond(&self, method: &Method, headers: &HeaderMap, now: Instant) -> Answer {
        if method != Method::GET && method != Method::HEAD {
            return Answer {
                status: 405,
                body: serde_json::json!({ "code": "method_not_allowed", "message": "the credentials endpoint answers GET" }).to_string(),
            };
        }
        let authorized = self.authorized(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()));
        let served = self.served.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        answer(&served, authorized, now)
    }
}

/// The router: every path and method lands in one handler.
pub fn router(ep: Arc<Endpoint>) -> Router {
    Router::new().fallback(move |method: Method, headers: HeaderMap| {
        let ep = ep.clone();
        async move { reply(ep.respond(&method, &headers, Instant::now())) }
    })
}

fn reply(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], a.body).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;

    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn only_the_exact_authorization_value_is_accepted() {
        let ep = Endpoint::new(SecretString::new("sekrit-value".into()));
        let now = Instant::now();
        ep.set(Served::Cached { body: SecretString::new("{}".into()), deadline: now + Duration::from_secs(60) });
        assert_eq!(ep.respond(&Method::GET, &headers(Some("sekrit-value")), now).status, 200);
        for wrong in [None, Some(""), Some("sekrit"), Some("sekrit-value "), Some("Bearer sekrit-value"), Some("SEKRIT-VALUE")] {
            assert_eq!(ep.respond(&Method::GET, &headers(wrong), now).status, 401, "{wrong:?}");
        }
        assert_eq!(ep.respond(&Method::POST, &headers(Some("sekrit-value")), now).status, 405);
    }
}
