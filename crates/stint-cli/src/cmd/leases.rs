//! `stint leases` (list and revoke the credentials backends issued) and `stint ssh-cert`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use stint_api::{CredsRequest, CredsResponse, LeaseView, LeasesQuery};

use crate::client::Client;
use crate::ClientOpts;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LeasesArgs {
    #[command(subcommand)]
    cmd: Option<LeasesCmd>,
    /// One user's leases (administrators)
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Everyone's leases (administrators)
    #[arg(long, conflicts_with = "user")]
    everyone: bool,
    /// Include leases that ended
    #[arg(long, short = 'a')]
    all: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Subcommand)]
pub enum LeasesCmd {
    /// Revoke a lease now: its credential stops working on its backend
    Revoke {
        /// The lease id (see `stint leases`)
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

pub async fn leases(a: LeasesArgs) -> Result<ExitCode> {
    if let Some(LeasesCmd::Revoke { id, opts }) = a.cmd {
        // Checked here: the id goes into the URL path.
        stint_core::ids::LeaseId::parse(&id).map_err(|e| anyhow::anyhow!("{e}; lease ids look like l_… (see `stint leases`)"))?;
        let c = Client::authenticated(opts.server.as_deref())?;
        let l: LeaseView = c.post_empty(&format!("/v1/leases/{id}/revoke")).await?;
        opts.output.print(&l, |l| println!("Lease {} ({} on {}) is {}.", l.id, l.external_id, l.backend, l.status))?;
        return Ok(ExitCode::SUCCESS);
    }
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let query = serde_urlencoded::to_string(LeasesQuery { user: a.user.clone(), everyone: a.everyone, all: a.all })?;
    let path = if query.is_empty() { "/v1/leases".to_owned() } else { format!("/v1/leases?{query}") };
    let leases: Vec<LeaseView> = c.get(&path).await?;
    a.opts.output.print(&leases, |ls| {
        if ls.is_empty() {
            println!("No leases{}.", if a.all { "" } else { " in force (--all shows ended ones)" });
            return;
        }
        println!("{:<28}  {:<9}  {:<12}  {:<12}  {:<10}  {:<20}  EXTERNAL ID", "LEASE", "STATUS", "HOLDER", "ROLE", "BACKEND", "EXPIRES");
        for l in ls {
            println!("{:<28}  {:<9}  {:<12}  {:<12}  {:<10}  {:<20}  {}", l.id, l.status, l.subject, l.role, l.backend, l.expires_at, l.external_id);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct SshCertArgs {
    #[command(flatten)]
    role: super::RoleArg,
    /// Your public key (default: ~/.ssh/id_ed25519.pub, else id_ecdsa.pub, else id_rsa.pub)
    #[arg(long, short = 'k')]
    key: Option<PathBuf>,
    /// Lifetime, like 1h (default: the longest the role and your session allow)
    #[arg(long)]
    ttl: Option<String>,
    /// The SSH backend, when the role has several
    #[arg(long, short = 'b')]
    backend: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

fn default_key() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("cannot find your home directory; name the key with --key")?;
    let ssh = Path::new(&home).join(".ssh");
    ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
        .iter()
        .map(|n| ssh.join(n))
        .find(|p| p.exists())
        .with_context(|| format!("no public key in {}; create one with `ssh-keygen -t ed25519` or name it with --key", ssh.display()))
}

/// `key.pub` → `key-cert.pub`, where `ssh` looks for the certificate of `key`.
fn cert_path(key: &Path) -> Result<PathBuf> {
    let name = key.file_name().and_then(|n| n.to_str()).context("the key path has no file name")?;
    let Some(stem) = name.strip_suffix(".pub") else {
        bail!("{} is not a public key file (*.pub)", key.display());
    };
    Ok(key.with_file_name(format!("{stem}-cert.pub")))
}

/// Signs your public key and writes the certificate beside it, where `ssh` finds it.
pub async fn ssh_cert(a: SshCertArgs) -> Result<ExitCode> {
    let key = match a.key {
        Some(k) => k,
        None => default_key()?,
    };
    let public = std::fs::read_to_string(&key).with_context(|| format!("cannot read {}", key.display()))?;
    let out = cert_path(&key)?;
    let role = a.role.name()?;
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let backend = match a.backend {
        Some(b) => b,
        None => {
            let who: serde_json::Value = c.get("/v1/whoami").await?;
            let choice = who["roles"].as_array().into_iter().flatten().find(|r| r["role"] == role);
            let Some(choice) = choice else { bail!("you may not assume role {role} now (see `stint whoami`)") };
            let names: Vec<String> = choice["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["kind"] == "ssh")
                .filter_map(|b| b["name"].as_str().map(String::from))
                .collect();
            match names.as_slice() {
                [one] => one.clone(),
                [] => bail!("role {role} has no SSH backend on this server"),
                _ => bail!("role {role} has several SSH backends ({}); choose one with --backend", names.join(", ")),
            }
        }
    };
    let req = CredsRequest { role: role.to_owned(), ttl: a.ttl, backend: Some(backend), public_key: Some(public.trim().to_owned()) };
    let r: CredsResponse = c.post("/v1/creds", &req).await?;
    let cert = r.values.get("certificate").and_then(|v| v.as_str()).context("the server sent no certificate")?;
    std::fs::write(&out, format!("{cert}\n")).with_context(|| format!("cannot write {}", out.display()))?;
    let shown = serde_json::json!({
        "certificate_file": out.display().to_string(),
        "lease_id": r.lease_id,
        "principals": r.values.get("principals"),
        "serial": r.values.get("serial"),
        "expires_at": r.expires_at,
    });
    a.opts.output.print(&shown, |_| {
        println!(
            "Wrote {} (principals {}, valid until {}, lease {}).",
            out.display(),
            r.values.get("principals").and_then(|v| v.as_str()).unwrap_or(""),
            r.expires_at,
            r.lease_id.as_deref().unwrap_or("")
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_written_where_ssh_looks_for_them() {
        assert_eq!(cert_path(Path::new("/home/a/.ssh/id_ed25519.pub")).unwrap(), Path::new("/home/a/.ssh/id_ed25519-cert.pub"));
        assert!(cert_path(Path::new("/home/a/.ssh/id_ed25519")).is_err());
    }
}
