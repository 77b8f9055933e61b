//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), without I/O and without a clock.
//!
//! Implements the steps of AWS's "Create a signed AWS API request" (IAM User Guide; formerly
//! the General Reference's "Signature Version 4 signing process"):
//! 1. the canonical request — method, URI, canonical query, canonical headers, signed
//!    headers, hex SHA-256 of the payload;
//! 2. the string to sign — algorithm, `X-Amz-Date`, credential scope
//!    (`yyyymmdd/region/service/aws4_request`), hex SHA-256 of the canonical request;
//! 3. the signing key — HMAC-SHA256 chained over `"AWS4" + secret`, date, region, service,
//!    `aws4_request`;
//! 4. the `Authorization` header.
//!
//! The time is an argument, so the signature of a request is a pure function of its inputs
//! and is checked against AWS's published test-suite vectors below. With temporary
//! credentials the session token is sent as `X-Amz-Security-Token` and is *signed* (the
//! suite's "post-sts-header-before" case), which STS and IAM accept.
//!
//! Only what stint sends is supported: the path is encoded once (no `.`/`..` normalisation,
//! as S3 would not want it anyway) and there is no chunked or unsigned payload.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};
use zeroize::Zeroizing;

use crate::encode::percent_encode;
use crate::secret::{Credentials, SecretString};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The content type of AWS Query-protocol requests (STS, IAM), as the SDKs send it.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The service and region a signature is bound to, e.g. `sts`/`eu-west-1`, `iam`/`us-east-1`.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub service: &'a str,
    pub region: &'a str,
}

/// A request to sign. `headers` must include `host` and must not include `x-amz-date`,
/// `x-amz-security-token` or `authorization`: [`sign`] adds those.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The absolute path, e.g. `/`.
    pub path: &'a str,
    /// Query parameters, unencoded; the canonical form sorts them.
    pub query: &'a [(&'a str, &'a str)],
    /// Header names in any case; values are trimmed and inner runs of spaces collapsed.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers a signature adds to its request.
pub struct Signature {
    /// `X-Amz-Date`, e.g. `20150830T123600Z`.
    pub x_amz_date: String,
    /// `X-Amz-Security-Token`, present with temporary credentials.
    pub x_amz_security_token: Option<SecretString>,
    /// `Authorization`.
    pub authorization: String,
}

impl Signature {
    /// The headers to add, as (name, value). The token's value is exposed here because it
    /// must go on the wire; the caller passes these straight to its HTTP client.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut h = vec![("x-amz-date", self.x_amz_date.as_str()), ("authorization", self.authorization.as_str())];
        if let Some(t) = &self.x_amz_security_token {
            h.push(("x-amz-security-token", t.expose()));
        }
        h
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signature").field("x_amz_date", &self.x_amz_date).field("x_amz_security_token", &self.x_amz_security_token).finish()
    }
}

/// Signs `request` for `scope` with `credentials` as of `at`.
pub fn sign(request: &Request<'_>, scope: Scope<'_>, credentials: &Credentials, at: OffsetDateTime) -> Signature {
    let (date, x_amz_date) = amz_date(at);
    let token = credentials.session_token();
    let mut headers: Vec<(&str, &str)> = request.headers.to_vec();
    headers.push(("x-amz-date", &x_amz_date));
    if let Some(t) = token {
        headers.push(("x-amz-security-token", t.expose()));
    }
    let (creq, signed_headers) = canonical_request(&Request { headers: &headers, ..*request });
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let sts = string_to_sign(&x_amz_date, &credential_scope, &creq);
    let key = signing_key(credentials.secret_access_key(), &date, scope);
    let signature = hex(&hmac(&key[..], sts.as_bytes())[..]);
    let authorization =
        format!("{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}", credentials.access_key_id());
    Signature { x_amz_date, x_amz_security_token: token.cloned(), authorization }
}

/// Signs an AWS Query-protocol call: `POST /` to `host` with the form `body`, signing
/// `content-type` and `host` (plus the date and token [`sign`] adds).
pub fn sign_form_post(host: &str, body: &str, scope: Scope<'_>, credentials: &Credentials, at: OffsetDateTime) -> Signature {
    let headers = [("content-type", FORM_CONTENT_TYPE), ("host", host)];
    sign(&Request { method: "POST", path: "/", query: &[], headers: &headers, body: body.as_bytes() }, scope, credentials, at)
}

/// (`yyyymmdd`, `yyyymmddThhmmssZ`) of `at` in UTC.
fn amz_date(at: OffsetDateTime) -> (String, String) {
    let t = at.to_offset(UtcOffset::UTC);
    let date = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
    let stamp = format!("{date}T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second());
    (date, stamp)
}

/// The canonical request and its signed-headers list.
fn canonical_request(r: &Request<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> = r.query.iter().map(|(k, v)| (percent_encode(k, false), percent_encode(v, false))).collect();
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    // Lower-cased names, sorted; repeated names merged in order, values joined with ','.
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in r.headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");

    let creq =
        format!("{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}", r.method, percent_encode(r.path, true), query.join("&"), hex(&Sha256::digest(r.body)));
    (creq, signed_headers)
}

fn string_to_sign(x_amz_date: &str, credential_scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{x_amz_date}\n{credential_scope}\n{}", hex(&Sha256::digest(canonical_request.as_bytes())))
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
fn signing_key(secret: &SecretString, date: &str, scope: Scope<'_>) -> Zeroizing<[u8; 32]> {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.expose().len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.expose().as_bytes());
    let k_date = hmac(&k_secret, date.as_bytes());
    let k_region = hmac(&k_date[..], scope.region.as_bytes());
    let k_service = hmac(&k_region[..], scope.service.as_bytes());
    hmac(&k_service[..], b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC (RFC 2104) takes keys of any length, so this constructor cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    //! Vectors from AWS's Signature Version 4 test suite (credentials `AKIDEXAMPLE` /
    //! `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 2015-08-30T12:36:00Z, `us-east-1`,
    //! service `service`), and the IAM `ListUsers` example of AWS's signing documentation.
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_SCOPE: Scope<'static> = Scope { service: "service", region: "us-east-1" };
    const HOST: &str = "example.amazonaws.com";
    /// The session token of the suite's post-sts-token cases.
    const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn at() -> OffsetDateTime {
        // 2015-08-30T12:36:00Z
        OffsetDateTime::from_unix_timestamp(1_440_938_160).expect("valid time")
    }

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", SecretString::new(SECRET))
    }

    fn post(headers: &[(&str, &str)], body: &str, creds: &Credentials) -> Signature {
        sign(&Request { method: "POST", path: "/", query: &[], headers, body: body.as_bytes() }, SUITE_SCOPE, creds, at())
    }

    fn expect_authz(signed_headers: &str, signature: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}")
    }

    #[test]
    fn post_x_www_form_urlencoded_canonical_request_and_string_to_sign() {
        let headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Host", HOST), ("X-Amz-Date", "20150830T123600Z")];
        let (creq, _) = canonical_request(&Request { method: "POST", path: "/", query: &[], headers: &headers, body: b"Param1=value1" });
        assert_eq!(
            creq,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        assert_eq!(
            string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &creq),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let s = post(&[("Content-Type", "application/x-www-form-urlencoded"), ("Host", HOST)], "Param1=value1", &creds());
        assert_eq!(s.x_amz_date, "20150830T123600Z");
        assert_eq!(s.authorization, expect_authz("content-type;host;x-amz-date", "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
    }

    #[test]
    fn post_x_www_form_urlencoded_parameters() {
        let s = post(&[("Content-Type", "application/x-www-form-urlencoded; charset=utf8"), ("Host", HOST)], "Param1=value1", &creds());
        assert_eq!(s.authorization, expect_authz("content-type;host;x-amz-date", "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"));
    }

    #[test]
    fn post_vanilla_and_header_key_sort() {
        let s = post(&[("Host", HOST)], "", &creds());
        assert_eq!(s.authorization, expect_authz("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
        let s = post(&[("My-Header1", "value1"), ("Host", HOST)], "", &creds());
        assert_eq!(s.authorization, expect_authz("host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"));
    }

    #[test]
    fn post_sts_header_before_signs_the_session_token() {
        let c = Credentials::temporary("AKIDEXAMPLE", SecretString::new(SECRET), SecretString::new(SUITE_TOKEN), None);
        let s = post(&[("Host", HOST)], "", &c);
        assert_eq!(s.authorization, expect_authz("host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"));
        assert_eq!(s.headers().iter().find(|(n, _)| *n == "x-amz-security-token").map(|(_, v)| *v), Some(SUITE_TOKEN));
        assert!(!format!("{s:?}").contains("AQoDYXdz"));
    }

    #[test]
    fn get_header_key_duplicate_merges_values_in_order() {
        // get-header-key-duplicate: My-Header1 sent as value2, value2, value1.
        let headers = [("Host", HOST), ("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")];
        let s = sign(&Request { method: "GET", path: "/", query: &[], headers: &headers, body: b"" }, SUITE_SCOPE, &creds(), at());
        assert_eq!(s.authorization, expect_authz("host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"));
    }

    #[test]
    fn iam_list_users_documentation_example() {
        let headers = [("content-type", FORM_CONTENT_TYPE), ("host", "iam.amazonaws.com")];
        let query = [("Version", "2010-05-08"), ("Action", "ListUsers")];
        let r = Request { method: "GET", path: "/", query: &query, headers: &headers, body: b"" };
        let s = sign(&r, Scope { service: "iam", region: "us-east-1" }, &creds(), at());
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert_eq!(
            hex(&signing_key(&SecretString::new(SECRET), "20150830", Scope { service: "iam", region: "us-east-1" })[..]),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn the_date_is_taken_in_utc() {
        let offset = at().to_offset(UtcOffset::from_hms(-7, 0, 0).expect("valid offset"));
        assert_eq!(amz_date(offset), ("20150830".to_owned(), "20150830T123600Z".to_owned()));
    }

    #[test]
    fn form_post_signs_content_type_and_host() {
        let s = sign_form_post(
            "sts.eu-west-1.amazonaws.com",
            "Action=GetCallerIdentity&Version=2011-06-15",
            Scope { service: "sts", region: "eu-west-1" },
            &creds(),
            at(),
        );
        assert!(s.authorization.contains("/20150830/eu-west-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="));
        assert!(s.x_amz_security_token.is_none());
    }
}
