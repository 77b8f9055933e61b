//! The request `stint login`'s loopback listener reads (RFC 8252 §7.3): any process on the
//! machine, or any web page the person has open, can connect to that port while a sign-in
//! waits and send it anything. The first byte picks how the rest is read: as the raw request,
//! or as query pairs the harness form-encodes (each byte raw, `%XX` in either case, a space
//! as `+`) into the browser's `GET /callback?…`.
//! Invariants: nothing panics; only `GET /callback` gives a query; every query read is the
//! one the URL parser `stint login` used before (`url::Url`, `query_pairs`) reads, and a
//! target a browser could send (visible ASCII, the path `/callback`) is read as it did;
//! encoded pairs come back decoded, exactly, the last of a repeated key winning.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use stint_api::loopback::callback::callback_query;

type Query = BTreeMap<String, String>;

/// How `read_callback` read the request before: through the URL parser.
fn by_url(request: &[u8]) -> Option<Query> {
    let text = String::from_utf8_lossy(request);
    let target = text.lines().next()?.strip_prefix("GET ")?.split(' ').next()?;
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    (url.path() == "/callback").then(|| url.query_pairs().into_owned().collect())
}

fn raw(request: &[u8]) {
    let got = callback_query(request);
    let before = by_url(request);
    if let Some(q) = &got {
        assert!(request.starts_with(b"GET /callback"), "a query from a request that is not GET /callback");
        assert_eq!(before.as_ref(), Some(q), "the URL parser reads another query");
    }
    let text = String::from_utf8_lossy(request);
    let target = text.lines().next().and_then(|l| l.strip_prefix("GET ")).and_then(|l| l.split(' ').next());
    let browser_like = target.is_some_and(|t| {
        t.bytes().all(|b| b.is_ascii_graphic()) && t.strip_prefix("/callback").is_some_and(|rest| rest.is_empty() || rest.starts_with(['?', '#']))
    });
    if browser_like {
        assert_eq!(got, before, "a request a browser sends is read as before");
    }
}

/// One byte as a browser might have encoded it.
fn encode(u: &mut Unstructured<'_>, b: u8, out: &mut String) -> Result<()> {
    let plain = b.is_ascii_graphic() && !b"&=+%#".contains(&b);
    match u.int_in_range(0..=3)? {
        0 if b == b' ' => out.push('+'),
        0 | 1 if plain => out.push(b as char),
        2 => out.push_str(&format!("%{b:02x}")),
        _ => out.push_str(&format!("%{b:02X}")),
    }
    Ok(())
}

fn structured(u: &mut Unstructured<'_>) -> Result<()> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut query = String::new();
    for _ in 0..u.int_in_range(0..=6)? {
        let (k, v) = (String::arbitrary(u)?, String::arbitrary(u)?);
        if !query.is_empty() || u.ratio(1, 8)? {
            query.push('&');
        }
        for b in k.bytes() {
            encode(u, b, &mut query)?;
        }
        query.push('=');
        for b in v.bytes() {
            encode(u, b, &mut query)?;
        }
        pairs.push((k, v));
    }
    if u.ratio(1, 8)? {
        query.push_str("&&");
    }
    let fragment = if u.ratio(1, 8)? { "#state=forged" } else { "" };
    let request = format!("GET /callback?{query}{fragment} HTTP/1.1\r\nHost: 127.0.0.1:53682\r\nAccept: text/html\r\n\r\n");
    let want: Query = pairs.into_iter().collect();
    assert_eq!(callback_query(request.as_bytes()), Some(want), "{request:?}");
    raw(request.as_bytes());
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((selector, rest)) if selector % 2 == 0 => raw(rest),
        Some((_, rest)) => {
            let _ = structured(&mut Unstructured::new(rest));
        }
        None => assert_eq!(callback_query(data), None),
    }
});
