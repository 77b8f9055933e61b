//! `stint scim`: the bearer tokens identity providers provision through (SCIM 2.0 at
//! `/scim/v2/`). Administrators only.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use stint_api::scim::{CreateScimTokenRequest, ScimTokenResponse};

use super::admin::urlencode;
use crate::client::Client;
use crate::ClientOpts;

#[derive(Subcommand)]
pub enum ScimCmd {
    /// Manage the identity providers' SCIM tokens
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Make a token for an identity provider's SCIM connection; printed once
    Create {
        /// Which provider it is for, e.g. okta (audit records name it scim:NAME)
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List the tokens, live and revoked (never their secrets)
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Revoke a token: the provider's next SCIM request is refused
    Revoke {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

pub async fn run(cmd: ScimCmd) -> Result<ExitCode> {
    let ScimCmd::Token(cmd) = cmd;
    match cmd {
        TokenCmd::Create { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let t: ScimTokenResponse = c.post("/v1/scim/tokens", &CreateScimTokenRequest { name }).await?;
            opts.output.print(&t, |t| {
                println!("{}", t.token);
                eprintln!("This is shown once. In the identity provider's SCIM connection, set the base URL to {}/scim/v2", c.server.trim_end_matches('/'));
                eprintln!("and this as its bearer token. Revoke it with `stint scim token revoke {}`.", t.name);
            })?;
        }
        TokenCmd::List { opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let all: Value = c.get("/v1/scim/tokens").await?;
            let list = all["tokens"].as_array().cloned().unwrap_or_default();
            opts.output.print(&list, |ts| {
                println!("{:<20} {:<10} {:<22} CREATED BY", "NAME", "STATE", "CREATED");
                for t in ts {
                    let state = if t["revoked_at"].is_null() { "live" } else { "revoked" };
                    println!("{:<20} {:<10} {:<22} {}", t["name"].as_str().unwrap_or(""), state, t["created_at"], t["created_by"].as_str().unwrap_or(""));
                }
            })?;
        }
        TokenCmd::Revoke { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let _: Value = c.post_empty(&format!("/v1/scim/tokens/{}/revoke", urlencode(&name))).await?;
            opts.output.print(&serde_json::json!({ "revoked": name }), |_| println!("Revoked SCIM token {name}."))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
