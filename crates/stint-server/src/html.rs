//! The few pages a browser sees during SSO: the device-code form, the TOTP step-up form,
//! and "signed in" / "refused". No scripts, no external resources; every value is escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use stint_api::html::escape;

/// A complete page; `body` must already be escaped.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} · stint</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         input{{font-size:1.2rem;padding:.3rem;letter-spacing:.1em}}button{{font-size:1rem;padding:.4rem 1rem}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut resp = (status, html).into_response();
    secure(&mut resp, "text/html; charset=utf-8");
    resp
}

/// A whole document rendered elsewhere (the report), with the same headers as the pages.
pub fn document(html: String) -> Response {
    let mut resp = (StatusCode::OK, html).into_response();
    secure(&mut resp, "text/html; charset=utf-8");
    resp
}

/// A 303 to `location` (the provider, or the CLI's loopback listener).
pub fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    secure(&mut resp, "text/plain");
    resp
}

/// Pages carry codes in their URLs: never cache them, never leak them as a referrer,
/// never frame them, and run nothing but their own forms.
fn secure(resp: &mut Response, content_type: &'static str) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'"),
    );
}

/// An error as a page, with the status and message the JSON API would give.
pub fn error_page(e: stint_core::Error) -> Response {
    let retry_after = match &e {
        stint_core::Error::Throttled { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let api = crate::error::ApiError::from(e);
    let body = format!("<p>{}</p><p><small>code: <code>{}</code></small></p>", escape(&api.message), escape(api.code));
    let mut resp = page(api.status, "Sign-in refused", &body);
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
