//! One module per command family.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod ci;
pub mod creds;
pub mod leases;
pub mod policy;
pub mod requests;
pub mod server;
pub mod sso;

/// The HTTP layer hides internal causes from peers; the operator at the console needs them.
pub fn operator_error(e: stint_core::Error) -> anyhow::Error {
    match e {
        stint_core::Error::Internal(cause) => anyhow::anyhow!(cause),
        stint_core::Error::Store(cause) => {
            // Database errors keep their detail (e.g. PostgreSQL's message) in the source chain.
            let mut text = format!("storage: {cause}");
            let mut next = std::error::Error::source(&*cause);
            while let Some(e) = next {
                text.push_str(&format!(": {e}"));
                next = e.source();
            }
            anyhow::anyhow!(text)
        }
        other => anyhow::anyhow!(other),
    }
}
