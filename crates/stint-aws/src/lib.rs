//! A small, hand-written AWS client: just what stint needs to issue and take back AWS
//! credentials, without the AWS SDK (whose build cost is out of proportion for four calls).
//!
//! - [`sigv4`]: Signature Version 4, pure (the time is an argument), tested against AWS's
//!   published vectors.
//! - [`chain`]: stint's own ambient credentials — environment, shared credentials file,
//!   container provider, web identity — cached and refreshed before they expire.
//! - [`Sts`]: `AssumeRole` (with `SourceIdentity`, session tags, a session policy) and
//!   `GetCallerIdentity`.
//! - [`Iam`]: a role's inline policies (`PutRolePolicy`, `GetRolePolicy`, `DeleteRolePolicy`).
//! - [`revoke`]: the "deny sessions issued before T" policy documents that neutralise
//!   credentials STS already issued.
//!
//! Both services speak the AWS Query protocol: a signed form `POST /`, answered with XML that
//! a bounded hand-written extractor reads. Secrets (secret access keys, session tokens, web
//! identity and container tokens) are [`SecretString`]s: zeroized on drop, redacted in
//! `Debug`, never in an [`Error`] or a log line.

pub mod chain;
mod encode;
pub mod error;
pub mod iam;
mod query;
pub mod revoke;
pub mod secret;
pub mod sigv4;
pub mod sts;
mod xml;

pub use chain::{AmbientEnv, CredentialsProvider};
pub use error::{Error, Result};
pub use iam::Iam;
pub use query::{Clock, Endpoint, SystemClock};
pub use secret::{Credentials, SecretString};
pub use sts::{AssumedRole, CallerIdentity, Sts};
