//! `stint workload`: services as principals. An administrator adds a workload with its
//! roles, then enrolls its agents with a join token or through its platform's identity.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use stint_api::workloads::{AddWorkloadRequest, JoinTokenRequest, JoinTokenResponse};
use stint_core::workload::PlatformBinding;

use super::admin::urlencode;
use crate::client::Client;
use crate::ClientOpts;

#[derive(Subcommand)]
pub enum WorkloadCmd {
    /// Add a workload (a service) with the roles it may assume
    #[command(after_help = "Examples:\n  stint workload add api --role api-service\n  \
        stint workload add api --role api-service --platform k8s --platform-subject system:serviceaccount:prod:api")]
    Add {
        /// Its name: 1-64 of a-z, 0-9, '-', '_', '.'
        name: String,
        /// A role it may assume (repeatable); the policies decide with these
        #[arg(long = "role", short = 'r', required = true)]
        roles: Vec<String>,
        /// A [[ci.issuer]] (a Kubernetes cluster, a cloud's OIDC issuer) whose tokens may enroll its agents
        #[arg(long, requires = "platform_subject")]
        platform: Option<String>,
        /// The exact `sub` of those tokens (Kubernetes: system:serviceaccount:NAMESPACE:NAME)
        #[arg(long, requires = "platform")]
        platform_subject: Option<String>,
        /// The audience those tokens must carry
        #[arg(long, default_value = "stint", requires = "platform")]
        platform_audience: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List workloads, their roles and how many agents hold a key
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Disable a workload and revoke its agent keys, join tokens and leases, at once
    Disable {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Enable a disabled workload (its agents enroll again: their old keys stay revoked)
    Enable {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Print a one-time token that enrolls one agent (`stint agent --join-token-file`)
    JoinToken {
        name: String,
        /// How long it may wait to be used, e.g. 1h (at most 7d)
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn print_workload(w: &Value) {
    let roles = w["roles"].as_array().map(|g| g.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let state = if w["disabled"].as_bool() == Some(true) { "disabled" } else { "active" };
    let platform = match (w["platform"]["issuer"].as_str(), w["platform"]["subject"].as_str()) {
        (Some(i), Some(s)) => format!("{i}:{s}"),
        _ => "-".into(),
    };
    println!("{:<20} {:<9} {:<24} {:>4}  {}", w["name"].as_str().unwrap_or(""), state, roles, w["live_keys"].as_u64().unwrap_or(0), platform);
}

pub async fn run(cmd: WorkloadCmd) -> Result<ExitCode> {
    match cmd {
        WorkloadCmd::Add { name, roles, platform, platform_subject, platform_audience, opts } => {
            let platform = match (platform, platform_subject) {
                (Some(issuer), Some(subject)) => Some(PlatformBinding { issuer, subject, audience: platform_audience }),
                _ => None,
            };
            let c = Client::authenticated(opts.server.as_deref())?;
            let w: Value = c.post("/v1/workloads", &AddWorkloadRequest { name, roles, platform }).await?;
            opts.output.print(&w, |w| {
                println!("Added workload {}.", w["name"].as_str().unwrap_or(""));
                println!("Enroll its agent with a join token: stint workload join-token {}", w["name"].as_str().unwrap_or(""));
            })?;
        }
        WorkloadCmd::List { opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let all: Value = c.get("/v1/workloads").await?;
            let list = all["workloads"].as_array().cloned().unwrap_or_default();
            opts.output.print(&list, |ws| {
                println!("{:<20} {:<9} {:<24} {:>4}  PLATFORM", "NAME", "STATE", "ROLES", "KEYS");
                ws.iter().for_each(print_workload);
            })?;
        }
        WorkloadCmd::Disable { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let w: Value = c.post_empty(&format!("/v1/workloads/{}/disable", urlencode(&name))).await?;
            opts.output.print(&w, |w| {
                let n = w["leases_revoked"].as_u64().unwrap_or(0);
                println!(
                    "Disabled {}; revoked its agent keys, unused join tokens and role tokens, and {n} lease{} on the backends.",
                    w["name"].as_str().unwrap_or(""),
                    if n == 1 { "" } else { "s" }
                );
            })?;
        }
        WorkloadCmd::Enable { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let w: Value = c.post_empty(&format!("/v1/workloads/{}/enable", urlencode(&name))).await?;
            opts.output.print(&w, |w| {
                println!("Enabled {}. Its agents enroll again (their old keys stay revoked).", w["name"].as_str().unwrap_or(""));
            })?;
        }
        WorkloadCmd::JoinToken { name, ttl, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let t: JoinTokenResponse = c.post(&format!("/v1/workloads/{}/join-tokens", urlencode(&name)), &JoinTokenRequest { ttl: Some(ttl) }).await?;
            opts.output.print(&t, |t| {
                println!("{}", t.join_token);
                eprintln!("One agent of workload {} may enroll with it until {}; it works once.", t.workload, t.expires_at);
                eprintln!("Save it to a file only the agent's user reads, then: stint agent --workload {} --join-token-file FILE", t.workload);
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
