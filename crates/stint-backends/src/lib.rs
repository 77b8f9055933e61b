//! stint's credential backends: the systems it issues short-lived credentials for.
//!
//! Each implements [`stint_core::backend::Backend`]; the broker decides, records the lease,
//! and calls them. They hold the connections and clients, and nothing of the policy.
//!
//! The AWS backend, and with it the AWS SDK, is the default feature `aws`. Without it
//! (the fuzz targets' build) an AWS backend can still be configured and checked
//! ([`AwsConfig`]), but not started.

#[cfg(feature = "aws")]
pub mod aws;
mod aws_config;
pub mod postgres;

#[cfg(feature = "aws")]
pub use aws::AwsBackend;
pub use aws_config::AwsConfig;
pub use postgres::{PostgresBackend, PostgresConfig};
/// Whose AWS credentials an [`AwsBackend`] calls AWS with.
#[cfg(feature = "aws")]
pub use stint_aws::Identity as AwsIdentity;
