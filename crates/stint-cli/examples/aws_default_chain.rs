//! A Rust service's whole part in getting AWS credentials from `stint agent`: nothing but
//! `aws-config`'s default chain. `tests/agent_sdk.rs` runs this with only the two variables
//! `stint agent env` prints in its environment; it prints what the chain found, as JSON.
//!
//! ```sh
//! eval "$(stint agent env --workload api)" && cargo run -p stint-cli --example aws_default_chain
//! ```

use std::process::ExitCode;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        // TLS through ring, as the rest of stint (the endpoint itself is plain HTTP on loopback).
        let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let config = aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await;
        let Some(chain) = config.credentials_provider() else {
            eprintln!("aws-config built no credentials provider");
            return ExitCode::FAILURE;
        };
        match chain.provide_credentials().await {
            Ok(c) => {
                let expiry = c.expiry().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs());
                let out = serde_json::json!({
                    "access_key_id": c.access_key_id(),
                    "secret_access_key": c.secret_access_key(),
                    "session_token": c.session_token(),
                    "expires_at": expiry,
                });
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("the default chain found no credentials: {e:?}");
                ExitCode::FAILURE
            }
        }
    })
}
