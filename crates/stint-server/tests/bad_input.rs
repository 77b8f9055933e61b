//! A table of hostile and malformed requests: each gets a 4xx with a stable code, never a
//! 500, and changes nothing but (where the request reached stint) the failure's audit record.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    bearer: Option<String>,
    status: StatusCode,
    code: &'static str,
}

// One call per table row reads best; the arguments are the row's columns.
#[allow(clippy::too_many_arguments)]
fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    bearer: Option<&str>,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case { name, method, path: path.to_owned(), content_type, body: body.into(), bearer: bearer.map(str::to_owned), status, code }
}

/// What a request may not change: users, sessions, keys. Compared before and after.
async fn state_snapshot(app: &TestApp, admin: &str) -> Value {
    let (_, users) = app.get("/v1/users", Some(admin)).await;
    let (_, keys) = app.get("/v1/keys", Some(admin)).await;
    let active = app.store.active_sessions(stint_core::Clock::now(&app.clock)).await.unwrap();
    json!({ "users": users, "keys": keys, "active_sessions": active })
}

#[tokio::test]
async fn every_bad_request_is_a_stable_4xx_that_changes_nothing() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let user = app.person(&admin, "grace", &[]).await;
    let role_token = app.token(&user, "readonly").await;
    let json_ct = Some("application/json");
    let s = Some(user.session.as_str());
    let huge = format!(r#"{{"role":"{}"}}"#, "a".repeat(70 * 1024));
    let forged_none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), role_token.split('.').nth(1).unwrap());
    let mut cases = vec![
        case("malformed JSON", "POST", "/v1/auth/login", json_ct, "{not json", None, StatusCode::BAD_REQUEST, "malformed_json"),
        case("JSON of the wrong shape", "POST", "/v1/auth/login", json_ct, "[1,2,3]", None, StatusCode::BAD_REQUEST, "malformed_json"),
        case("missing field", "POST", "/v1/auth/login", json_ct, r#"{"username":"grace"}"#, None, StatusCode::BAD_REQUEST, "malformed_json"),
        case("unknown field", "POST", "/v1/assume", json_ct, r#"{"role":"readonly","admin":true}"#, s, StatusCode::BAD_REQUEST, "malformed_json"),
        case(
            "wrong content type",
            "POST",
            "/v1/auth/login",
            Some("text/plain"),
            r#"{"username":"a","password":"b","totp":"1"}"#,
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        case("no content type", "POST", "/v1/assume", None, r#"{"role":"readonly"}"#, s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        case("oversized body", "POST", "/v1/assume", json_ct, huge, s, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        case(
            "unknown user login",
            "POST",
            "/v1/auth/login",
            json_ct,
            r#"{"username":"nobody","password":"whatever password","totp":"123456"}"#,
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        case(
            "invalid username",
            "POST",
            "/v1/auth/login",
            json_ct,
            r#"{"username":"'; DROP TABLE users; --","password":"x","totp":"1"}"#,
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        case("unknown role", "POST", "/v1/assume", json_ct, r#"{"role":"superuser"}"#, s, StatusCode::NOT_FOUND, "unknown_role"),
        case("malformed role", "POST", "/v1/assume", json_ct, r#"{"role":"../admin"}"#, s, StatusCode::BAD_REQUEST, "invalid_role"),
        case("malformed ttl", "POST", "/v1/assume", json_ct, r#"{"role":"readonly","ttl":"forever"}"#, s, StatusCode::BAD_REQUEST, "invalid_duration"),
        case("zero ttl", "POST", "/v1/assume", json_ct, r#"{"role":"readonly","ttl":"0s"}"#, s, StatusCode::BAD_REQUEST, "invalid_duration"),
        case("no session", "POST", "/v1/assume", json_ct, r#"{"role":"readonly"}"#, None, StatusCode::UNAUTHORIZED, "missing_credentials"),
        case("garbage session", "GET", "/v1/whoami", None, "", Some("garbage"), StatusCode::UNAUTHORIZED, "invalid_session"),
        case(
            "forged session secret",
            "GET",
            "/v1/whoami",
            None,
            "",
            Some(&format!("{}AAAA", &user.session[..user.session.len() - 4])),
            StatusCode::UNAUTHORIZED,
            "invalid_session",
        ),
        case("role token as session", "GET", "/v1/whoami", None, "", Some(&role_token), StatusCode::UNAUTHORIZED, "invalid_session"),
        case("alg none token as session", "GET", "/v1/whoami", None, "", Some(&forged_none), StatusCode::UNAUTHORIZED, "invalid_session"),
        case(
            "bad enrollment code",
            "POST",
            "/v1/enroll",
            json_ct,
            r#"{"code":"stint_enr_x.y","password":"long enough password"}"#,
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_enrollment_code",
        ),
        case(
            "bad bootstrap token",
            "POST",
            "/v1/bootstrap",
            json_ct,
            r#"{"token":"nope","username":"eve"}"#,
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_bootstrap_token",
        ),
        case(
            "introspect without token",
            "POST",
            "/v1/introspect",
            Some("application/x-www-form-urlencoded"),
            "nothing=here",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case("introspect as JSON", "POST", "/v1/introspect", json_ct, r#"{"token":"x"}"#, None, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        case(
            "malformed session id",
            "POST",
            "/v1/sessions/..%2F..%2Fetc/revoke",
            json_ct,
            "{}",
            Some(&admin.session),
            StatusCode::BAD_REQUEST,
            "invalid_session_id",
        ),
        case(
            "unknown session id",
            "POST",
            "/v1/sessions/s_aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke",
            json_ct,
            "{}",
            Some(&admin.session),
            StatusCode::NOT_FOUND,
            "unknown_session",
        ),
        case("unknown user disable", "POST", "/v1/users/nobody/disable", json_ct, "{}", Some(&admin.session), StatusCode::NOT_FOUND, "unknown_user"),
        case(
            "invalid new user name",
            "POST",
            "/v1/users",
            json_ct,
            r#"{"name":"Bad Name"}"#,
            Some(&admin.session),
            StatusCode::BAD_REQUEST,
            "invalid_username",
        ),
        case("malformed audit query", "GET", "/v1/audit?after=-1", None, "", Some(&admin.session), StatusCode::BAD_REQUEST, "invalid_query"),
        case("unknown endpoint", "GET", "/v1/nope", None, "", None, StatusCode::NOT_FOUND, "not_found"),
        case("wrong method", "DELETE", "/v1/assume", None, "", s, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
    ];
    // Non-UTF-8 JSON.
    cases.push(case("invalid UTF-8", "POST", "/v1/auth/login", json_ct, vec![b'{', 0xff, 0xfe, b'}'], None, StatusCode::BAD_REQUEST, "malformed_json"));

    for c in cases {
        let before = state_snapshot(&app, &admin.session).await;
        let head_before = app.audit_head().await;
        let mut req = app.http.request(c.method.parse().unwrap(), app.url(&c.path)).body(c.body.clone());
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = &c.bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let (_, v) = common::body(resp).await;
        assert_eq!(status, c.status, "{}: {v}", c.name);
        assert_eq!(v["error"], c.code, "{}: {v}", c.name);
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: a message says what to do", c.name);
        let after = state_snapshot(&app, &admin.session).await;
        assert_eq!(before, after, "{}: nothing may change", c.name);
        let new: Vec<_> = app.audit_events_after(head_before).await;
        assert!(new.iter().all(|(_, outcome, _)| outcome == "failure"), "{}: only failure records may be written: {new:?}", c.name);
    }

    // Hostile tokens at introspection: RFC 7662 answers `active: false`, never an error.
    let parts: Vec<&str> = role_token.split('.').collect();
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let other_app = common::spawn_app(Backend::Sqlite).await;
    let other_admin = other_app.admin().await;
    let foreign = other_app.token(&other_admin, "readonly").await;
    for (name, token) in [
        ("tampered signature", format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig))),
        ("tampered claims", format!("{}.{}.{}", parts[0], B64.encode(br#"{"role":"admin"}"#), parts[2])),
        ("alg none", forged_none.clone()),
        ("foreign key", foreign),
        ("garbage", "x.y.z".to_owned()),
        ("empty", String::new()),
        ("huge", "a".repeat(10_000)),
    ] {
        let v = app.introspect(&token).await;
        assert_eq!(v, json!({ "active": false }), "{name}");
    }
    let (s, v) = app.get("/v1/audit?after=18446744073709551615", Some(&admin.session)).await;
    assert_eq!((s, v["records"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "nothing lies beyond the last record: {v}");

    app.clock.advance(9 * 3600);
    assert_eq!(app.introspect(&role_token).await, json!({ "active": false }), "expired");
}
