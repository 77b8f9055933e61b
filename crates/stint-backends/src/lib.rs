//! stint's credential backends: the systems it issues short-lived credentials for.
//!
//! Each implements [`stint_core::backend::Backend`]; the broker decides, records the lease,
//! and calls them. They hold the connections and clients, and nothing of the policy.

pub mod aws;
pub mod postgres;

pub use aws::{AwsBackend, AwsConfig};
pub use postgres::{PostgresBackend, PostgresConfig};
/// Whose AWS credentials an [`AwsBackend`] calls AWS with.
pub use stint_aws::Identity as AwsIdentity;
