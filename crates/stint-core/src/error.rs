//! The one error type of the core.
//!
//! Every variant is either the peer's fault (a 4xx with a stable code), or an
//! internal failure whose cause goes to the log and never to the peer.

/// Who is to blame for an error; decides the HTTP status class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong: malformed, unknown, expired, forbidden.
    Peer,
    /// stint itself failed: store unavailable, bug.
    Internal,
}

/// An error with a stable machine-readable code and a message safe to show.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input failed to parse or validate. `code` is stable, `message` names the field.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The caller is not authenticated (missing, bad, expired or revoked credential).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// The caller is authenticated but may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The thing named does not exist.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request conflicts with current state (already used, already exists).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A system stint depends on (an identity provider) failed or could not be reached.
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    /// stint could not finish in time (a store transaction waited too long on another
    /// replica's locks); nothing changed, and the same request may be sent again.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// Too many failures; try again after `retry_after_secs`.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// The store failed. The cause is logged, never shown.
    #[error("storage unavailable")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A broken invariant inside stint. The cause is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Error::Unauthenticated { code, message: message.into() }
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden { code, message: message.into() }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Error::NotFound { code, message: message.into() }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict { code, message: message.into() }
    }
    pub fn upstream(code: &'static str, message: impl Into<String>) -> Self {
        Error::Upstream { code, message: message.into() }
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Error::Unavailable { code, message: message.into() }
    }
    pub fn store(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Store(Box::new(e))
    }

    /// The stable code clients and scripts match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. }
            | Error::Unauthenticated { code, .. }
            | Error::Forbidden { code, .. }
            | Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::Upstream { code, .. }
            | Error::Unavailable { code, .. } => code,
            Error::Throttled { .. } => "too_many_attempts",
            Error::Store(_) => "store_unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            Error::Store(_) | Error::Internal(_) | Error::Upstream { .. } | Error::Unavailable { .. } => Fault::Internal,
            _ => Fault::Peer,
        }
    }
}

/// Shorthand used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
