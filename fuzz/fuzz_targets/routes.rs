//! The routes anyone can call without a credential (workload agents' among them), through the
//! real router (extractors, rate limiter, handlers) on a real SQLite store in memory-backed
//! storage: the method, path, query, headers and body are the fuzzer's.
//!
//! Invariants: nothing panics; no answer is a 5xx (every bad input is the client's fault and
//! gets a 4xx, the store being local and healthy); a JSON route's refusal carries a stable
//! `error` code.
//!
//! The input is read in a fixed layout, so a seed can be written by hand
//! (`fuzz/seeds/routes.py` writes the committed ones) and a mutation of one part leaves the
//! others in place:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | the route: an index into `ROUTES` (modulo its length) |
//! | 1 | flags: bit 0 the body is built from fields (below), bit 1 a query follows, bit 2 a method byte follows, bits 3–5 the `Content-Type` (an index into `CONTENT_TYPES`), bit 6 with bit 0 that one rather than the route's own |
//! | 1 | how many extra headers follow, modulo 4 |
//! | 4 | the client's IPv4 address |
//! | 1 | the method, an index into `OTHER_METHODS`, when bit 2 is set |
//! | field | the path's `{id}` or `{name}`, when the route has one |
//! | field | the query, when bit 1 is set |
//! | 1 + field | each extra header: its name (an index into `HEADERS`) and value |
//! | rest | the body: as it is, or with bit 0 one field for each of the route's `fields`, encoded as its body is (a JSON object of strings or a form) |
//!
//! A field is a big-endian `u16` length and that many bytes (fewer if the input ends); a body
//! field of length `0xFFFF` is left out.
#![no_main]

mod scratch;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use stint_core::broker::InlinePasswordWork;
use stint_core::crypto::MasterKey;
use stint_server::App;
use tower::ServiceExt;
use url::form_urlencoded;

/// How a route reads its body.
#[derive(Clone, Copy, Debug)]
enum Shape {
    None,
    Json,
    Form,
}

#[derive(Debug)]
struct Route {
    method: &'static str,
    path: &'static str,
    shape: Shape,
    /// The fields of the body the route reads, in the order the input gives their values.
    fields: &'static [&'static str],
    /// What its refusals are.
    refusal: Refusal,
}

/// How a route refuses, each with a stable code.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Refusal {
    /// JSON with an `error` code: stint's API.
    Json,
    /// A browser's HTML page showing the code, or STS's XML carrying it.
    Page,
    /// SCIM's error (RFC 7644 §3.12): its schema and the status.
    Scim,
}

const fn route(method: &'static str, path: &'static str, shape: Shape, fields: &'static [&'static str]) -> Route {
    Route { method, path, shape, fields, refusal: Refusal::Json }
}

/// A route a browser or an AWS SDK calls, whose refusals are HTML or XML.
const fn scim(method: &'static str, path: &'static str, shape: Shape, fields: &'static [&'static str]) -> Route {
    Route { method, path, shape, fields, refusal: Refusal::Scim }
}

const fn page(method: &'static str, path: &'static str, shape: Shape, fields: &'static [&'static str]) -> Route {
    Route { method, path, shape, fields, refusal: Refusal::Page }
}

/// Every route that takes no credential, and a few that do, called without one. Append only:
/// the committed seeds name routes by index.
const ROUTES: &[Route] = &[
    route("POST", "/v1/token", Shape::Form, &["grant_type", "subject_token", "subject_token_type", "requested_token_type", "role", "scope", "ttl", "audience"]),
    page("POST", "/v1/sts", Shape::Form, &["Action", "Version", "RoleArn", "RoleSessionName", "WebIdentityToken", "DurationSeconds", "Policy"]),
    page("POST", "/v1/sts/", Shape::Form, &["Action", "Version", "RoleArn", "RoleSessionName", "WebIdentityToken", "DurationSeconds"]),
    route("POST", "/v1/introspect", Shape::Form, &["token", "token_type_hint"]),
    route("POST", "/v1/auth/login", Shape::Json, &["username", "password", "totp"]),
    route("POST", "/v1/bootstrap", Shape::Json, &["token", "username"]),
    route("POST", "/v1/enroll", Shape::Json, &["code", "password"]),
    route("GET", "/v1/sso/providers", Shape::None, &[]),
    route("POST", "/v1/sso/begin", Shape::Json, &["provider", "redirect_uri", "code_challenge", "code_challenge_method"]),
    route("POST", "/v1/sso/device/authorize", Shape::Form, &["provider", "client_id"]),
    page("GET", "/v1/sso/callback", Shape::None, &[]),
    page("GET", "/v1/sso/device", Shape::None, &[]),
    page("POST", "/v1/sso/device", Shape::Form, &["user_code", "confirm"]),
    page("POST", "/v1/sso/step-up", Shape::Form, &["state", "totp"]),
    route("POST", "/v1/sso/token", Shape::Form, &["grant_type", "device_code", "code", "code_verifier", "client_id"]),
    route("GET", "/.well-known/openid-configuration", Shape::None, &[]),
    route("GET", "/v1/jwks", Shape::None, &[]),
    route("GET", "/v1/ssh/krl", Shape::None, &[]),
    route("POST", "/v1/assume", Shape::Json, &["role", "ttl", "backend"]),
    route("GET", "/v1/leases/{id}", Shape::None, &[]),
    route("POST", "/v1/users/{name}/disable", Shape::None, &[]),
    route("POST", "/v1/workload/join", Shape::Json, &["join_token", "public_key"]),
    route("POST", "/v1/workload/attest", Shape::Json, &["workload", "token", "public_key"]),
    route("POST", "/v1/workload/creds", Shape::Json, &["assertion", "role", "backend", "ttl", "public_key", "previous_lease"]),
    route("POST", "/v1/workload/status", Shape::Json, &["assertion", "lease_id"]),
    route("POST", "/v1/workloads/{name}/join-tokens", Shape::Json, &["ttl"]),
    scim("GET", "/scim/v2/Users", Shape::None, &[]),
    scim("PATCH", "/scim/v2/Users/{id}", Shape::Json, &["schemas", "Operations"]),
    scim("GET", "/scim/v2/ServiceProviderConfig", Shape::None, &[]),
    scim("POST", "/scim/v2/Users", Shape::Json, &["schemas", "userName", "active", "externalId"]),
    scim("PUT", "/scim/v2/Users/{id}", Shape::Json, &["schemas", "userName", "active", "externalId"]),
    scim("GET", "/scim/v2/Groups", Shape::None, &[]),
    scim("POST", "/scim/v2/Groups", Shape::Json, &["schemas", "displayName", "externalId"]),
    scim("PATCH", "/scim/v2/Groups/{id}", Shape::Json, &["schemas", "Operations"]),
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "application/x-amz-json-1.1",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded; charset=utf-8",
    "",
];

const OTHER_METHODS: &[Method] = &[Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS, Method::HEAD, Method::PATCH];

const HEADERS: &[&str] = &["authorization", "x-forwarded-for", "cookie", "accept", "content-type", "x-amz-target", "host", "origin", "sec-fetch-site"];

struct Server {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // Limits high enough that the fuzzer reaches the handlers, not only the limiter.
        let limits = "[limits]\nper_address_rate = 1000000\nper_address_burst = 1000000\nglobal_rate = 1000000\nglobal_burst = 1000000\n";
        let (cfg, data) = scratch::config("routes", limits);
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

/// Reads the input's layout (above) front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    /// A field; `None` for the length `0xFFFF`.
    fn field(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes([self.byte(), self.byte()]);
        if len == u16::MAX {
            return None;
        }
        let (f, rest) = self.0.split_at(usize::from(len).min(self.0.len()));
        self.0 = rest;
        Some(f)
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.field().unwrap_or_default()).into_owned()
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

#[derive(Debug)]
struct Call {
    route: &'static Route,
    method: Method,
    uri: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    peer: SocketAddr,
}

fn call(data: &[u8]) -> Call {
    let mut r = Reader(data);
    let route = &ROUTES[usize::from(r.byte()) % ROUTES.len()];
    let flags = r.byte();
    let (built, query, other_method) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let content_type = CONTENT_TYPES[usize::from(flags >> 3 & 7)];
    let extra_headers = r.byte() % 4;
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(r.byte(), r.byte(), r.byte(), r.byte())), 40000);
    let method = if other_method { OTHER_METHODS[usize::from(r.byte()) % OTHER_METHODS.len()].clone() } else { route.method.parse().expect("a method") };
    let mut uri = if route.path.contains('{') {
        // Percent-encoded as a client would: the router decodes the segment.
        let param: String = form_urlencoded::byte_serialize(r.field().unwrap_or_default()).collect();
        route.path.replace("{id}", &param).replace("{name}", &param)
    } else {
        route.path.to_owned()
    };
    if query {
        uri = format!("{uri}?{}", r.text());
    }
    let extra: Vec<(&'static str, Vec<u8>)> =
        (0..extra_headers).map(|_| (HEADERS[usize::from(r.byte()) % HEADERS.len()], r.field().unwrap_or_default().to_vec())).collect();
    let (content_type, body) = if built {
        let values: Vec<(&str, Option<&[u8]>)> = route.fields.iter().map(|name| (*name, r.field())).collect();
        let present = values.iter().filter_map(|(name, v)| Some((*name, (*v)?)));
        let body = match route.shape {
            Shape::Json => {
                let object: serde_json::Map<String, serde_json::Value> =
                    present.map(|(name, v)| (name.to_owned(), serde_json::Value::String(String::from_utf8_lossy(v).into_owned()))).collect();
                serde_json::to_vec(&object).expect("a map of strings serializes")
            }
            Shape::Form => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (name, v) in present {
                    form.append_pair(name, &String::from_utf8_lossy(v));
                }
                form.finish().into_bytes()
            }
            Shape::None => Vec::new(),
        };
        let own = match route.shape {
            Shape::Json => "application/json",
            Shape::Form => "application/x-www-form-urlencoded",
            Shape::None => "",
        };
        (if flags & 64 != 0 { content_type } else { own }, body)
    } else {
        (content_type, r.rest().to_vec())
    };
    let mut headers = Vec::with_capacity(extra.len() + 1);
    if !content_type.is_empty() {
        headers.push(("content-type", content_type.as_bytes().to_vec()));
    }
    headers.extend(extra);
    Call { route, method, uri, headers, body, peer }
}

fuzz_target!(|data: &[u8]| {
    let c = call(data);
    let mut req = Request::builder().method(c.method.clone());
    req = req.uri(&c.uri);
    for (name, value) in &c.headers {
        req = req.header(*name, value.as_slice());
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
    let refused = status.is_client_error() && c.method != Method::HEAD && status != StatusCode::METHOD_NOT_ALLOWED && status != StatusCode::NOT_FOUND;
    if !refused {
        return;
    }
    let text = String::from_utf8_lossy(&body);
    match c.route.refusal {
        Refusal::Json => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} for {} {} is not JSON: {text}", c.method, c.uri));
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{status} for {} {} has no error code: {v}", c.method, c.uri);
        }
        Refusal::Scim => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} for {} {} is not JSON: {text}", c.method, c.uri));
            let error = v["schemas"].as_array().is_some_and(|s| s.iter().any(|s| s == "urn:ietf:params:scim:api:messages:2.0:Error"));
            // An extractor's refusal before the SCIM handler is stint's JSON.
            assert!(
                error && v["status"] == status.as_str() || v["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{status} for {} {} is not a SCIM error: {v}",
                c.method,
                c.uri
            );
        }
        Refusal::Page => {
            // An extractor's refusal before the handler is JSON.
            let coded = ["<code>", "<Code>", "\"error\":\""]
                .iter()
                .any(|open| text.split_once(open).is_some_and(|(_, rest)| rest.starts_with(|ch: char| ch.is_ascii_alphabetic())));
            assert!(coded, "{status} for {} {} carries no stable code: {text}", c.method, c.uri);
        }
    }
});
