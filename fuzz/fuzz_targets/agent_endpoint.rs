//! `stint agent`'s AWS container credentials endpoint (PROTOCOLS.md §1) on loopback: any
//! process on the machine can call it, so the method, the path, the headers (`Authorization`
//! among them, repeated or not) are the fuzzer's, and so is what the agent holds (nothing
//! yet, a live or an ended credential, a refusal) and its `Authorization` value.
//! [`stint_api::loopback::agent::Endpoint`] decides the answer; the router around it is a
//! copy of `stint-cli`'s `endpoint::router` and `reply` (a binary crate, and one that
//! pulls in the AWS SDK, which the fuzz build leaves out).
//! Invariants: nothing panics; only GET and HEAD with exactly the agent's value as the
//! first `Authorization` header get the credential, only while it lives, and byte for byte;
//! every other answer is JSON with a `code` and a `message`, at a status the endpoint defines
//! (401 before anything about the agent's state, 403, 405, 503), never another 5xx.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use stint_api::loopback::agent::{answer, Answer, Endpoint, Served};
use stint_core::secret::SecretString;
use tower::ServiceExt;

// The copy of crates/stint-cli/src/cmd/agent/endpoint.rs's router.
fn router(ep: Arc<Endpoint>) -> Router {
    Router::new().fallback(move |method: Method, headers: HeaderMap| {
        let ep = ep.clone();
        async move { reply(ep.respond(method.as_str(), headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()), Instant::now())) }
    })
}

fn reply(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], a.body).into_response()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"))
}

/// What the agent holds, as the test sees it.
#[derive(Debug, Clone)]
enum Held {
    Pending(&'static str, String),
    Live(String),
    Ended(String),
    Refused(String, String),
}

/// A value near the agent's: itself, a prefix, with a scheme, another case, padded, or any bytes.
fn near(u: &mut Unstructured<'_>, auth: &str) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=6)? {
        0 | 1 => auth.as_bytes().to_vec(),
        2 => auth.as_bytes()[..u.int_in_range(0..=auth.len())?].to_vec(),
        3 => format!("Bearer {auth}").into_bytes(),
        4 => auth.to_uppercase().into_bytes(),
        5 => format!("{auth} ").into_bytes(),
        _ => Vec::<u8>::arbitrary(u)?,
    })
}

#[derive(Debug)]
struct Call {
    auth: String,
    held: Held,
    method: Method,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
}

fn call(u: &mut Unstructured<'_>) -> Result<Call> {
    let auth = if u.ratio(3, 4)? { "c3RpbnQtYWdlbnQtYXV0aC10b2tlbi0wMDAx".to_owned() } else { String::arbitrary(u)? };
    let held = match u.int_in_range(0..=3)? {
        0 => Held::Pending(u.choose(&["not_ready", "credential_expired", "not_aws"])?, String::arbitrary(u)?),
        1 => Held::Live(String::arbitrary(u)?),
        2 => Held::Ended(String::arbitrary(u)?),
        _ => Held::Refused(String::arbitrary(u)?, String::arbitrary(u)?),
    };
    let method = match u.int_in_range(0..=7)? {
        0..=3 => Method::GET,
        4 => Method::HEAD,
        5 => u.choose(&[Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS, Method::PATCH, Method::TRACE])?.clone(),
        _ => Method::from_bytes(&Vec::<u8>::arbitrary(u)?).unwrap_or(Method::CONNECT),
    };
    let uri = if u.ratio(3, 4)? { "/v1/credentials".to_owned() } else { String::arbitrary(u)? };
    let mut headers = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let name =
            *u.choose(&["authorization", "Authorization", "AUTHORIZATION", "host", "x-forwarded-for", "user-agent", "content-type", "content-length"])?;
        let value = if name.eq_ignore_ascii_case("authorization") { near(u, &auth)? } else { Vec::<u8>::arbitrary(u)? };
        headers.push((name.to_owned(), value));
    }
    Ok(Call { auth, held, method, uri, headers })
}

fn check(c: Call) {
    let mut req = Request::builder().method(c.method.clone()).uri(&c.uri);
    for (name, value) in &c.headers {
        req = req.header(name.as_str(), value.as_slice());
    }
    // What HTTP would refuse (a bad URI, a header value with a newline) never reaches it.
    let Ok(req) = req.body(Body::empty()) else { return };
    let first_auth = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());

    let ep = Endpoint::new(SecretString::new(c.auth.clone()));
    ep.set(match &c.held {
        Held::Pending(code, reason) => Served::Pending { code, reason: reason.clone() },
        Held::Live(body) => Served::Cached { body: SecretString::new(body.clone()), deadline: Instant::now() + Duration::from_secs(3600) },
        // Its deadline is now: by the time the request is answered, it has passed.
        Held::Ended(body) => Served::Cached { body: SecretString::new(body.clone()), deadline: Instant::now() },
        Held::Refused(code, message) => Served::Refused { code: code.clone(), message: message.clone() },
    });
    let (status, headers, body) = runtime().block_on(async {
        let resp = router(ep).oneshot(req).await.expect("the router is infallible");
        let (parts, body) = resp.into_parts();
        (parts.status, parts.headers, axum::body::to_bytes(body, usize::MAX).await.expect("a body"))
    });
    assert_eq!(headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()), Some(&b"application/json"[..]));
    assert_eq!(headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()), Some(&b"no-store"[..]));

    let get = c.method == Method::GET || c.method == Method::HEAD;
    let authorized = first_auth.as_deref() == Some(c.auth.as_bytes());
    let want = match (&c.held, get, authorized) {
        (_, false, _) => (405, Some("method_not_allowed")),
        (_, true, false) => (401, Some("unauthorized")),
        (Held::Live(_), true, true) => (200, None),
        (Held::Ended(_), true, true) => (503, Some("credential_expired")),
        (Held::Pending(code, _), true, true) => (503, Some(*code)),
        (Held::Refused(code, _), true, true) => (403, Some(code.as_str())),
    };
    assert_eq!(status.as_u16(), want.0, "{c:?}");
    if c.method == Method::HEAD {
        return;
    }
    match (want.1, &c.held) {
        (None, Held::Live(cred)) => assert_eq!(&body[..], cred.as_bytes(), "the credential, byte for byte"),
        (None, _) => unreachable!("200 only for a live credential"),
        (Some(code), held) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{status}: not JSON ({e})"));
            assert_eq!(v["code"].as_str(), Some(code), "{v}");
            assert!(v["message"].is_string(), "{v}");
            if let (403, Held::Refused(_, message)) = (status.as_u16(), held) {
                assert_eq!(v["message"].as_str(), Some(message.as_str()));
            }
            if status == StatusCode::UNAUTHORIZED {
                let same = answer(&Served::Pending { code: "not_ready", reason: String::new() }, false, Instant::now());
                assert_eq!(&body[..], same.body.as_bytes(), "the refusal tells nothing of what the agent holds");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = call(&mut Unstructured::new(data)) {
        check(c);
    }
});
