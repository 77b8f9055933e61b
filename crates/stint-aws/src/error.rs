//! The one error type of this crate.
//!
//! Variants separate whose fault it is: AWS said no ([`Error::Aws`]), AWS could not be
//! reached ([`Error::Transport`]), the answer could not be understood or was too large
//! ([`Error::Malformed`]), the machine's credential setup is missing or broken
//! ([`Error::NoCredentials`]), or the caller passed a value AWS would reject anyway
//! ([`Error::Invalid`]). No variant carries a secret: the SDK's errors name providers, files,
//! profiles, codes and AWS's own messages, never keys or tokens.

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// AWS answered with an error document, e.g. `AccessDenied`.
    #[error("AWS {service} returned {code} (HTTP {status}): {message}")]
    Aws {
        service: &'static str,
        status: u16,
        /// AWS's error code, e.g. `AccessDenied`, `NoSuchEntity`, `ValidationError`.
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The endpoint could not be reached, or the call timed out.
    #[error("cannot reach AWS {service}: {detail}; check the network, the region and any endpoint override")]
    Transport { service: &'static str, detail: String },
    /// The answer could not be understood (not what the API returns, too large, a field missing).
    #[error("unexpected answer from AWS {service}: {detail}")]
    Malformed { service: &'static str, detail: String },
    /// The credential chain found no usable identity, or a configured source failed.
    #[error(
        "stint has no usable AWS identity: {detail}; give the server one the AWS SDK finds (an instance or task role, \
         web identity, AWS_PROFILE with a profile in ~/.aws/config, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    NoCredentials { detail: String },
    /// The caller passed a value AWS would reject; the message names the parameter and the rule.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// AWS's error code when AWS answered with one.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// An error of the SDK's, classified.
    pub(crate) fn from_sdk<E>(service: &'static str, e: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let detail = || causes(&e);
        if is_credentials_error(&e) {
            return Error::NoCredentials { detail: detail() };
        }
        match &e {
            SdkError::ServiceError(s) => {
                let meta = s.err().meta();
                let (code, message) = match meta.code() {
                    Some(code) => (code.to_owned(), meta.message().unwrap_or_default().to_owned()),
                    None => s.raw().body().bytes().and_then(wrapped_error).unwrap_or_else(|| ("Unknown".into(), String::new())),
                };
                Error::Aws { service, status: s.raw().status().as_u16(), code, message, request_id: meta.extra("aws_request_id").map(str::to_owned) }
            }
            SdkError::ResponseError(_) => Error::Malformed { service, detail: detail() },
            SdkError::ConstructionFailure(_) => Error::Invalid(format!("AWS {service}: {}", detail())),
            _ => Error::Transport { service, detail: detail() },
        }
    }
}

/// Code and message of an error document in the EC2 shape,
/// `<ErrorResponse><Errors><Error><Code/><Message/>`, which the SDK's Query-protocol reader
/// (`<ErrorResponse><Error>`) does not look into. Endpoints that front STS or IAM answer in
/// it, moto among them for authentication failures. Read with the SDK's own XML decoder.
fn wrapped_error(body: &[u8]) -> Option<(String, String)> {
    use aws_smithy_xml::decode::{try_data, Document};
    let mut doc = Document::try_from(body).ok()?;
    let mut root = doc.root_element().ok()?;
    if !root.start_el().matches("ErrorResponse") {
        return None;
    }
    while let Some(mut errors) = root.next_tag() {
        if errors.start_el().local() != "Errors" {
            continue;
        }
        while let Some(mut error) = errors.next_tag() {
            let (mut code, mut message) = (None, String::new());
            while let Some(mut field) = error.next_tag() {
                match field.start_el().local() {
                    "Code" => code = try_data(&mut field).ok().map(|c| c.into_owned()),
                    "Message" => message = try_data(&mut field).map(|m| m.into_owned()).unwrap_or_default(),
                    _ => {}
                }
            }
            if let Some(code) = code {
                return Some((code, message));
            }
        }
    }
    None
}

/// `e` and its causes, each by its `Display`, joined with `: `. Never their `Debug`: the SDK's
/// errors carry the raw HTTP answer, and a credential provider's answer can hold secrets.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// Whether `e` comes from the credential chain rather than from AWS or the network.
fn is_credentials_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Raw(&'static str, Option<Box<Raw>>);

    impl std::fmt::Display for Raw {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Raw {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|r| r as _)
        }
    }

    #[test]
    fn causes_are_their_display_only() {
        let e = Raw("dispatch failure", Some(Box::new(Raw("", Some(Box::new(Raw("token response did not contain a TTL header", None)))))));
        assert_eq!(causes(&e), "dispatch failure: token response did not contain a TTL header");
        assert!(!causes(&e).contains("Raw"), "no Debug");
    }

    #[test]
    fn error_documents_in_the_ec2_shape_are_read() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        assert_eq!(wrapped_error(body), Some(("SignatureDoesNotMatch".into(), "The request signature we calculated does not match".into())));
        assert_eq!(wrapped_error(b"<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>"), None, "the Query shape is the SDK's to read");
        for junk in [&b""[..], b"not xml", b"<Other><Errors><Error><Code>X</Code></Error></Errors></Other>", b"<ErrorResponse><Errors><Error>"] {
            assert_eq!(wrapped_error(junk), None);
        }
    }
}
