//! AWS through the official Rust SDK (`aws-config`, `aws-sdk-sts`, `aws-sdk-iam`), set up the
//! way stint needs it.
//!
//! - [`client`]: one [`Aws`] per backend: the SDK's default credential chain (environment,
//!   `~/.aws/config` profiles with `role_arn`/`source_profile`, IAM Identity Center,
//!   `credential_process`, web identity, the container provider, EC2 instance metadata with
//!   IMDSv2) or a fixed key, the region, endpoint overrides that must be HTTPS (plain HTTP only
//!   to a loopback emulator, when asked), timeouts, and an HTTP client on rustls with ring whose
//!   answers are capped while they are read.
//! - [`Sts`]: `AssumeRole` (with `SourceIdentity`, session tags, a session policy) and
//!   `GetCallerIdentity`, with STS's limits checked before anything is sent.
//! - [`Iam`]: a role's inline policies (`PutRolePolicy`, `GetRolePolicy`, `DeleteRolePolicy`).
//! - [`revoke`]: the "deny sessions issued before T" policy documents that neutralise
//!   credentials STS already issued (pure).
//!
//! Secrets (secret access keys, session tokens) leave this crate only as
//! [`stint_core::secret::SecretString`]: zeroized on drop, redacted in `Debug`. No [`Error`]
//! carries one: messages are built from names, codes and AWS's own error text.

pub mod client;
pub mod error;
pub mod iam;
pub mod inventory;
pub mod revoke;
pub mod sts;

pub use client::{Aws, Endpoint, Identity, Keys, Settings};
pub use error::{Error, Result};
pub use iam::Iam;
pub use sts::{AssumedRole, CallerIdentity, Sts};
