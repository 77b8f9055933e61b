//! Roles through approval: `stint request`, `stint requests`, `stint approve`, `stint deny`,
//! `stint grant revoke`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::Value;
use stint_api::{BreakGlassBody, DecisionBody, RoleRequestBody};

use crate::client::Client;
use crate::ClientOpts;

#[derive(Args)]
pub struct RequestArgs {
    #[command(flatten)]
    role: super::RoleArg,
    /// Why: approvers see it, and it is kept in the audit log
    #[arg(long)]
    reason: String,
    /// How long the grant should last, e.g. 1h (default and maximum: [approvals] max_duration)
    #[arg(long = "for")]
    duration: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct BreakGlassArgs {
    /// Why: every alert channel gets it at once, and the audit log keeps it flagged
    #[arg(long)]
    reason: String,
    /// How long, e.g. 30m (default and maximum: [break_glass] max_duration, at most 1h)
    #[arg(long = "for")]
    duration: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn break_glass(a: BreakGlassArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let r: Value = c.post("/v1/break-glass", &BreakGlassBody { reason: a.reason, duration: a.duration }).await?;
    a.opts.output.print(&r, |r| {
        println!(
            "Break-glass: you may assume {} until {} (grant {}). Everyone has been alerted.",
            r["role"].as_str().unwrap_or(""),
            stint_core::Timestamp(r["granted_until"].as_i64().unwrap_or(0)),
            r["id"].as_str().unwrap_or("")
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct ApproveArgs {
    /// The request id (see `stint requests`)
    id: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct DenyArgs {
    /// The request id
    id: String,
    /// Why, for the requester and the audit log
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Subcommand)]
pub enum GrantCmd {
    /// End an approved grant now: every token issued under it is refused from now on
    Revoke {
        /// The request id of the grant
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn print_request(r: &Value) {
    let approvals = r["approvals"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default();
    println!(
        "{:<24} {:<10} {:<8} {:<9} {}/{} [{}] {}",
        r["id"].as_str().unwrap_or(""),
        r["requester"].as_str().unwrap_or(""),
        r["role"].as_str().unwrap_or(""),
        r["status"].as_str().unwrap_or(""),
        r["approvals"].as_array().map_or(0, Vec::len),
        r["approvals_required"],
        approvals,
        r["reason"].as_str().unwrap_or("")
    );
}

pub async fn request(a: RequestArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let r: Value = c.post("/v1/requests", &RoleRequestBody { role: a.role.name()?.to_owned(), reason: a.reason, duration: a.duration }).await?;
    a.opts.output.print(&r, |r| {
        println!("Requested {} ({}); approvers see it with `stint requests`.", r["role"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn list(a: ListArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let rs: Vec<Value> = c.get("/v1/requests").await?;
    a.opts.output.print(&rs, |rs| {
        println!("{:<24} {:<10} {:<8} {:<9} APPROVALS REASON", "ID", "REQUESTER", "ROLE", "STATUS");
        rs.iter().for_each(print_request);
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn approve(a: ApproveArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let r: Value = c.post(&format!("/v1/requests/{}/approve", a.id), &serde_json::json!({})).await?;
    a.opts.output.print(&r, print_request)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn deny(a: DenyArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let r: Value = c.post(&format!("/v1/requests/{}/deny", a.id), &DecisionBody { reason: a.reason }).await?;
    a.opts.output.print(&r, print_request)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn grant(cmd: GrantCmd) -> Result<ExitCode> {
    let GrantCmd::Revoke { id, reason, opts } = cmd;
    let c = Client::authenticated(opts.server.as_deref())?;
    let r: Value = c.post(&format!("/v1/grants/{id}/revoke"), &DecisionBody { reason }).await?;
    opts.output.print(&r, |_| println!("Revoked grant {id}: tokens issued under it are refused from now on."))?;
    Ok(ExitCode::SUCCESS)
}
