//! Percent-encoding as SigV4 and the AWS Query protocol want it.
//!
//! SigV4 ("Create a canonical request") encodes every byte except the RFC 3986 §2.3
//! unreserved characters `A–Z a–z 0–9 - _ . ~`, with upper-case hex, and spaces as `%20`
//! (never `+`). Using the same encoding for the form body keeps what is signed and what is
//! sent byte-identical. IAM returns policy documents percent-encoded (RFC 3986), which
//! [`percent_decode`] undoes.

use std::fmt::Write;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Encodes `s` byte by byte, keeping only unreserved characters (and `/` if `keep_slash`).
pub(crate) fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `k1=v1&k2=v2…` with both sides percent-encoded, in the order given.
pub(crate) fn form_body(params: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", percent_encode(k, false), percent_encode(v, false))).collect();
    pairs.join("&")
}

/// Undoes RFC 3986 percent-encoding (`+` stays `+`, as IAM encodes spaces as `%20`).
/// `None` if an escape is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(percent_encode("a-Z_0.~ /*+=é", false), "a-Z_0.~%20%2F%2A%2B%3D%C3%A9");
        assert_eq!(percent_encode("/a b/", true), "/a%20b/");
    }

    #[test]
    fn form_body_keeps_order() {
        assert_eq!(form_body(&[("Action", "AssumeRole"), ("Tags.member.1.Key", "team name")]), "Action=AssumeRole&Tags.member.1.Key=team%20name");
    }

    #[test]
    fn decode_round_trips_and_refuses_garbage() {
        let s = r#"{"a": "b*c+d/é"}"#;
        assert_eq!(percent_decode(&percent_encode(s, false)).as_deref(), Some(s));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
