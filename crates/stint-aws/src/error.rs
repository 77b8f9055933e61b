//! The one error type of this crate.
//!
//! Variants separate whose fault it is: AWS said no ([`Error::Aws`]), AWS could not be
//! reached ([`Error::Transport`]), AWS (or whatever answered) said something this client does
//! not understand ([`Error::Malformed`]), the machine's credential setup is missing or broken
//! ([`Error::NoCredentials`], [`Error::Config`]), or the caller passed a value AWS would
//! reject anyway ([`Error::Invalid`]). No variant ever carries a secret: messages are built
//! from names, paths, codes and AWS's own error text, never from keys, tokens or bodies.

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// AWS answered with an error document (`ErrorResponse`), e.g. `AccessDenied`.
    #[error("AWS {service} returned {code} (HTTP {status}): {message}")]
    Aws {
        service: &'static str,
        status: u16,
        /// AWS's error code, e.g. `AccessDenied`, `NoSuchEntity`, `ValidationError`.
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// The endpoint could not be reached, or the connection failed mid-request.
    #[error("cannot reach {endpoint}: {detail}; check the network, the region and any endpoint override")]
    Transport { endpoint: String, detail: String },
    /// The answer could not be understood (not the XML/JSON expected, too large, a field missing).
    #[error("unexpected answer from {from}: {what}")]
    Malformed { from: String, what: String },
    /// No source in the credential chain had credentials.
    #[error(
        "no AWS credentials found (tried: {tried}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         a profile in the shared credentials file, the container credentials variables, or \
         AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN"
    )]
    NoCredentials { tried: String },
    /// A credential source is configured but unusable (unreadable file, refused URI, half-set variables).
    #[error("{0}")]
    Config(String),
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

    pub(crate) fn malformed(from: impl Into<String>, what: impl Into<String>) -> Self {
        Error::Malformed { from: from.into(), what: what.into() }
    }
}
