//! The few pages a browser sees during SSO: the device-code form, the TOTP step-up form,
//! and "signed in" / "refused". No scripts, no external resources; every value is escaped.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML (and XML) element content and quoted attribute values. Code points
/// outside XML 1.0's `Char` production (§2.2: most C0 controls, U+FFFE, U+FFFF), which make
/// an XML parser refuse the whole document, become U+FFFD, and so do the other control
/// characters (DEL, C1, CR), which HTML treats as errors; tab and newline stay.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_text_char(c) => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
    out
}

/// XML 1.0 `Char` (`#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`;
/// a `char` is never a surrogate) without the control characters but tab and newline.
fn is_text_char(c: char) -> bool {
    match c {
        '\t' | '\n' => true,
        c if c.is_control() => false,
        c => matches!(c, '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}'),
    }
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn what_xml_forbids_becomes_the_replacement_character() {
        use super::escape;
        assert_eq!(escape("a\u{fffe}b\u{ffff}c\u{0}d\u{1b}e\u{7f}f\u{85}g\rh"), "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}e\u{fffd}f\u{fffd}g\u{fffd}h");
        // Allowed by XML, though noncharacters in Unicode: kept as they are.
        assert_eq!(escape("\t\n\u{fdd0}\u{fffd}\u{e000}\u{1fffe}\u{10ffff}\u{d7ff} "), "\t\n\u{fdd0}\u{fffd}\u{e000}\u{1fffe}\u{10ffff}\u{d7ff} ");
        // Every code point: the output holds only XML Chars and no raw markup character.
        let xml_char = |c: char| matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let out = escape(&c.to_string());
            assert!(out.chars().all(xml_char), "{:x} gave {out:?}", c as u32);
            assert!(!out.contains(['<', '>', '"', '\'']), "{out:?}");
            if xml_char(c) && !c.is_control() && !"<>&\"'".contains(c) {
                assert_eq!(out, c.to_string(), "{:x} is text", c as u32);
            }
        }
    }
}
