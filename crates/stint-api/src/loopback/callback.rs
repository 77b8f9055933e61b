//! The browser's request to `stint login`'s loopback redirect URI (RFC 8252 §7.3): read from
//! its bytes, with no I/O. The listener in `stint-cli` reads at most 16 KiB for at most ten
//! seconds and hands them here.

use std::collections::BTreeMap;

/// The path of the redirect URI `stint login` registers, `http://127.0.0.1:PORT/callback`.
pub const PATH: &str = "/callback";

/// The query of a `GET /callback?…` request, decoded as forms are
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte, text that is not
/// UTF-8 becomes U+FFFD; a key given twice keeps its last value). `None` for anything else.
///
/// The request target is taken as browsers send it (origin form, RFC 9112 §3.2.1): visible
/// ASCII, the path exactly `/callback`, a fragment ignored. Spellings that only a URL parser
/// would bring back to `/callback` (`/./callback`, `\callback`, `@host/callback`, raw
/// control characters) are not the browser's and are refused.
pub fn callback_query(request: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = String::from_utf8_lossy(request);
    let target = text.lines().next()?.strip_prefix("GET ")?.split(' ').next()?;
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (path == PATH).then(|| form_pairs(query).into_iter().collect())
}

/// The pairs of a form-encoded query, in order, read by the `form_urlencoded` parser (through
/// `serde_urlencoded`): the WHATWG URL standard's `application/x-www-form-urlencoded` parser
/// (§5.1), as `url`'s `query_pairs` reads them. Empty pieces are skipped, and a piece without
/// `=` is a key with an empty value.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    // Pairs of strings: the parser never fails on them (bad escapes stay, bad UTF-8 becomes
    // U+FFFD), so an error cannot happen; none would be a query without pairs.
    serde_urlencoded::from_str(query).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(request: &str) -> Option<Vec<(String, String)>> {
        callback_query(request.as_bytes()).map(|q| q.into_iter().collect())
    }
    fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn the_browsers_callback_gives_its_query() {
        let req = "GET /callback?code=abc%2Fdef&state=x+y HTTP/1.1\r\nHost: 127.0.0.1:4000\r\nAccept: text/html\r\n\r\n";
        assert_eq!(query(req), pairs(&[("code", "abc/def"), ("state", "x y")]));
        let refused = "GET /callback?error=access_denied&error_description=The+user+said+%22no%22 HTTP/1.1\r\n\r\n";
        assert_eq!(query(refused), pairs(&[("error", "access_denied"), ("error_description", "The user said \"no\"")]));
        assert_eq!(query("GET /callback HTTP/1.1\r\n\r\n"), pairs(&[]));
        // Only the request line counts; a request cut short by the size cap still has one.
        assert_eq!(query("GET /callback?code=1"), pairs(&[("code", "1")]));
    }

    #[test]
    fn decoding_is_the_forms_one() {
        assert_eq!(query("GET /callback?a=%C3%BC%2B+%2x%&&b&=v&a2=%e2%82%ac HTTP/1.1"), pairs(&[("", "v"), ("a", "ü+ %2x%"), ("a2", "€"), ("b", "")]));
        assert_eq!(query("GET /callback?k=1&k=2 HTTP/1.1"), pairs(&[("k", "2")]), "a key given twice keeps its last value");
        assert_eq!(query("GET /callback?k=%FF HTTP/1.1"), pairs(&[("k", "\u{fffd}")]));
        assert_eq!(query("GET /callback?k=a=b HTTP/1.1"), pairs(&[("k", "a=b")]));
        assert_eq!(query("GET /callback?code=1#state=2 HTTP/1.1"), pairs(&[("code", "1")]), "the fragment is not the query");
        assert_eq!(query("GET /callback#x?code=1 HTTP/1.1"), pairs(&[]));
    }

    #[test]
    fn anything_but_get_callback_is_refused() {
        for req in [
            "",
            "\r\n\r\n",
            "POST /callback?code=1 HTTP/1.1",
            "get /callback?code=1 HTTP/1.1",
            "GET  /callback?code=1 HTTP/1.1",
            "GET / HTTP/1.1",
            "GET /favicon.ico HTTP/1.1",
            "GET /callback/ HTTP/1.1",
            "GET /Callback HTTP/1.1",
            "GET /callbackx?code=1 HTTP/1.1",
            "GET /%63allback?code=1 HTTP/1.1",
            "GET http://127.0.0.1/callback?code=1 HTTP/1.1",
            "GET /./callback?code=1 HTTP/1.1",
            "GET /x/../callback?code=1 HTTP/1.1",
            "GET \\callback?code=1 HTTP/1.1",
            "GET @evil.example/callback?code=1 HTTP/1.1",
            "GET /callback?code=1\u{1} HTTP/1.1",
            "GET /callback?code=\u{fc} HTTP/1.1",
            "Host: x\r\nGET /callback?code=1 HTTP/1.1",
        ] {
            assert_eq!(query(req), None, "{req:?}");
        }
        assert_eq!(callback_query(b"GET /callback?code=\xff HTTP/1.1"), None);
    }
}
