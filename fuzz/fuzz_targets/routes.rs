//! The routes anyone can call without a credential (workload agents' among them), through the real router (extractors,
//! rate limiter, handlers) on a real SQLite store in memory-backed storage: the method, path,
//! query, headers and body are the fuzzer's.
//! Invariants: nothing panics; no answer is a 5xx (every bad input is the client's fault and
//! gets a 4xx, the store being local and healthy); a JSON route's refusal carries a stable
//! `error` code.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use stint_core::broker::InlinePasswordWork;
use stint_core::crypto::MasterKey;
use stint_server::config::{Config, Overrides};
use stint_server::App;
use tower::ServiceExt;

/// Every route that takes no credential (and a few that do, called without one).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/token"),
    ("POST", "/v1/sts"),
    ("POST", "/v1/sts/"),
    ("POST", "/v1/introspect"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/bootstrap"),
    ("POST", "/v1/enroll"),
    ("GET", "/v1/sso/providers"),
    ("POST", "/v1/sso/begin"),
    ("POST", "/v1/sso/device/authorize"),
    ("GET", "/v1/sso/callback"),
    ("GET", "/v1/sso/device"),
    ("POST", "/v1/sso/device"),
    ("POST", "/v1/sso/step-up"),
    ("POST", "/v1/sso/token"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/v1/jwks"),
    ("GET", "/v1/ssh/krl"),
    ("POST", "/v1/assume"),
    ("GET", "/v1/leases/{id}"),
    ("POST", "/v1/users/{name}/disable"),
    // Appended, so the seeds above keep their routes.
    ("POST", "/v1/workload/join"),
    ("POST", "/v1/workload/attest"),
    ("POST", "/v1/workload/creds"),
    ("POST", "/v1/workload/status"),
    ("POST", "/v1/workloads/{name}/join-tokens"),
    ("GET", "/scim/v2/Users"),
    ("PATCH", "/scim/v2/Users/{id}"),
    ("GET", "/scim/v2/ServiceProviderConfig"),
    ("POST", "/scim/v2/Users"),
    ("PUT", "/scim/v2/Users/{id}"),
    ("GET", "/scim/v2/Groups"),
    ("POST", "/scim/v2/Groups"),
    ("PATCH", "/scim/v2/Groups/{id}"),
];

const CONTENT_TYPES: &[&str] =
    &["application/json", "application/x-www-form-urlencoded", "application/x-amz-json-1.1", "text/plain", "multipart/form-data; boundary=x", "application/json; charset=utf-16"];

struct Server {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // Storage in memory (tmpfs where there is one): the store is real, its fsyncs cheap.
        let base = if std::path::Path::new("/dev/shm").is_dir() { std::path::PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        // One directory per process; those of processes that ended are removed here.
        for old in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = old.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("stint-fuzz-routes-") {
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(old.path());
                }
            }
        }
        let data = base.join(format!("stint-fuzz-routes-{}", std::process::id()));
        std::fs::create_dir_all(&data).expect("data dir");
        let cfg_file = data.join("stint.toml");
        // Limits high enough that the fuzzer reaches the handlers, not only the limiter.
        std::fs::write(&cfg_file, "[limits]\nper_address_rate = 1000000\nper_address_burst = 1000000\nglobal_rate = 1000000\nglobal_burst = 1000000\n").expect("config");
        let over = Overrides { data_dir: Some(data.clone()), ..Default::default() };
        let cfg = Config::load(Some(&cfg_file), over).expect("config loads");
        let router = rt.block_on(async {
            let store = stint_store::open("sqlite", &data).await.expect("store");
            let (kek, _) = MasterKey::generate(&mut rand_core::OsRng);
            let work = Arc::new(InlinePasswordWork::new(&mut rand_core::OsRng).expect("password work"));
            let app = App::with_password_work(&cfg, store, Arc::new(stint_os::SystemClock), kek, work).await.expect("app");
            app.router()
        });
        Server { rt, router }
    })
}

#[derive(Debug)]
struct Call {
    method: Method,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    peer: SocketAddr,
}

fn call(mut u: Unstructured<'_>) -> libfuzzer_sys::arbitrary::Result<Call> {
    let u = &mut u;
    let (method, path) = *u.choose(ROUTES)?;
    let path = path.replace("{id}", &String::arbitrary(u)?).replace("{name}", &String::arbitrary(u)?);
    let query: String = if u.arbitrary()? { format!("?{}", String::arbitrary(u)?) } else { String::new() };
    let method = if u.ratio(1, 16)? { u.choose(&[Method::PUT, Method::DELETE, Method::OPTIONS, Method::HEAD])?.clone() } else { method.parse().expect("a method") };
    let mut headers = vec![("content-type".to_owned(), u.choose(CONTENT_TYPES)?.as_bytes().to_vec())];
    for _ in 0..u.int_in_range(0..=3)? {
        let name = *u.choose(&["authorization", "x-forwarded-for", "cookie", "accept", "content-type", "x-amz-target", "host"])?;
        headers.push((name.to_owned(), Vec::<u8>::arbitrary(u)?));
    }
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?)), 40000);
    Ok(Call { method, uri: format!("{path}{query}"), headers, body: u.bytes(u.len())?.to_vec(), peer })
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = call(Unstructured::new(data)) else { return };
    let mut req = Request::builder().method(c.method.clone());
    req = req.uri(&c.uri);
    for (name, value) in &c.headers {
        req = req.header(name.as_str(), value.as_slice());
    }
    // Not every string is a URI or header value: what the HTTP parser would refuse never
    // reaches stint.
    let Ok(mut req) = req.body(Body::from(c.body.clone())) else { return };
    req.extensions_mut().insert(ConnectInfo(c.peer));
    let s = server();
    let (status, body) = s.rt.block_on(async {
        let resp = s.router.clone().oneshot(req).await.expect("the router is infallible");
        let status = resp.status();
        (status, axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("a bounded body"))
    });
    assert!(!status.is_server_error(), "{status} for {} {}: {}", c.method, c.uri, String::from_utf8_lossy(&body));
    let json_route = c.uri.starts_with("/v1/") && !c.uri.starts_with("/v1/sts") && !c.uri.starts_with("/v1/sso/callback") && !c.uri.starts_with("/v1/sso/device?") && c.uri != "/v1/sso/device";
    if status.is_client_error() && json_route && c.method != Method::HEAD && status != axum::http::StatusCode::METHOD_NOT_ALLOWED && status != axum::http::StatusCode::NOT_FOUND {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{status} for {} {} is not JSON: {}", c.method, c.uri, String::from_utf8_lossy(&body)));
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{status} for {} {} has no error code: {v}", c.method, c.uri);
    }
});
