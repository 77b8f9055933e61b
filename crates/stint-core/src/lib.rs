//! stint's domain core.
//!
//! Everything here is pure: time arrives as a [`Timestamp`] argument or through the
//! [`Clock`] port, randomness through a `CryptoRngCore`, and storage through the
//! [`store::Store`] port. The HTTP layer, the CLI and the store adapters depend on
//! this crate; it depends on none of them.

pub mod alerts;
pub mod audit;
pub mod authz;
pub mod aws;
pub mod backend;
pub mod bearer;
pub mod broker;
pub mod crypto;
pub mod error;
pub mod fold;
pub mod ids;
pub mod inventory;
pub mod jwt;
pub mod model;
pub mod oidc;
pub mod oncall;
/// Time zones and civil times in on-call schedules are `jiff` types.
pub use jiff;
pub mod password;
pub mod policy;
pub mod ratelimit;
pub mod reason;
pub mod report;
pub mod scan;
pub mod scim;
pub mod secret;
pub mod spec;
pub mod sshcert;
pub mod store;
pub mod throttle;
pub mod time;
pub mod totp;
pub mod trust;
pub mod workload;

pub use error::{Error, Fault};
pub use time::{Clock, ManualClock, Timestamp, Ttl};
