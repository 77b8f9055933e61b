//! `stint agent env` and `stint agent status`: read a running agent's state directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::endpoint::PATH;
use super::state::{self, AgentInfo, Status};
use crate::output::Output;

/// Which agent: by its state directory, or by workload (the default directory).
#[derive(Args)]
pub struct Which {
    /// The agent's state directory (as given to `stint agent --state-dir`)
    #[arg(long, value_name = "DIR", conflicts_with = "workload")]
    state_dir: Option<PathBuf>,
    /// The agent's workload, to find it in the default state directory
    #[arg(long)]
    workload: Option<String>,
}

#[derive(Args)]
pub struct EnvArgs {
    #[command(flatten)]
    which: Which,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    which: Which,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// The lines `stint agent env` prints for an agent listening on `listen` with state in `dir`.
pub fn export_lines(listen: &str, dir: &Path) -> String {
    let token_file = dir.join(state::AUTH_TOKEN);
    format!(
        "export AWS_CONTAINER_CREDENTIALS_FULL_URI={}\nexport AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}\n",
        shell_quote(&format!("http://{listen}{PATH}")),
        shell_quote(&token_file.to_string_lossy())
    )
}

/// Quotes for POSIX shells only when needed, so the usual line reads plainly.
fn shell_quote(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:@+,%=".contains(&b)) {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// Whether something accepts connections at the agent's address.
async fn answers(listen: &str) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(listen)).await, Ok(Ok(_)))
}

/// Whether process `pid` exists, where procfs says so; elsewhere the port check decides.
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// The running agent's `agent.json`, or why there is none.
async fn running(dir: &Path, which: &str) -> Result<AgentInfo> {
    let start = format!("start one with `stint agent --server URL --workload NAME --join-token-file FILE{which}`");
    let Some(info) = state::read_agent(dir)? else {
        bail!("no agent is running with state in {} (no {}); {start}", dir.display(), state::AGENT);
    };
    if !alive(info.pid) || !answers(&info.listen).await {
        bail!("the agent for workload {} (pid {}) is not running: nothing answers on {}; {start}", info.workload, info.pid, info.listen);
    }
    if !dir.join(state::AUTH_TOKEN).exists() {
        bail!("the agent's {} is missing from {}; restart the agent", state::AUTH_TOKEN, dir.display());
    }
    Ok(info)
}

fn dir_of(w: &Which) -> Result<(PathBuf, String)> {
    let dir = super::state_dir(w.state_dir.clone(), w.workload.as_deref())?;
    let hint = if w.state_dir.is_some() { format!(" --state-dir {}", dir.display()) } else { String::new() };
    Ok((dir, hint))
}

pub async fn env(a: EnvArgs) -> Result<ExitCode> {
    let (dir, hint) = dir_of(&a.which)?;
    let info = running(&dir, &hint).await?;
    print!("{}", export_lines(&info.listen, &dir));
    Ok(ExitCode::SUCCESS)
}

pub async fn status(a: StatusArgs) -> Result<ExitCode> {
    let (dir, hint) = dir_of(&a.which)?;
    let Some(status) = state::read_status(&dir)? else {
        bail!("no agent has run with state in {}; start one with `stint agent --server URL --workload NAME --join-token-file FILE{hint}`", dir.display());
    };
    let agent = match state::read_agent(&dir)? {
        Some(info) if alive(info.pid) && answers(&info.listen).await => Some(info),
        _ => None,
    };
    let shown = serde_json::json!({ "running": agent.is_some(), "listen": agent.as_ref().map(|a| &a.listen), "status": &status });
    a.output.print(&shown, |_| print_text(&status, agent.as_ref()))?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(s: &Status, agent: Option<&AgentInfo>) {
    println!("workload  {} at {}", s.workload, s.server);
    println!("key       {}", s.key_id.as_deref().unwrap_or("(not enrolled)"));
    match agent {
        Some(a) => println!("agent     running, pid {}, serving http://{}{PATH}", a.pid, a.listen),
        None => println!("agent     not running (last pid {}, status of {})", s.pid, s.updated_at),
    }
    println!("role      {}", s.role.as_deref().unwrap_or("-"));
    if let Some(p) = &s.enroll_error {
        println!("enrolling {} at {}: {}", p.code, p.at, p.message);
    }
    if let Some(p) = &s.stopped {
        println!("stopped   {} at {}: {}", p.code, p.at, p.message);
    }
    for c in &s.credentials {
        let backend = c.backend.as_deref().unwrap_or("the role's backend");
        println!("\n{} ({backend}{})", c.purpose.join(", "), c.kind.as_deref().map(|k| format!(", {k}")).unwrap_or_default());
        println!("  state         {}", c.state);
        println!("  expires       {}", c.expires_at.as_deref().unwrap_or("-"));
        println!("  lease         {}", c.lease_id.as_deref().unwrap_or("-"));
        println!("  last refresh  {}", c.last_refresh_at.as_deref().unwrap_or("never"));
        println!("  next refresh  {}", c.next_refresh_at.as_deref().unwrap_or("-"));
        match &c.last_error {
            Some(p) => println!("  last error    {} at {}: {}", p.code, p.at, p.message),
            None => println!("  last error    none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_prints_the_two_sdk_variables_as_export_lines() {
        let out = export_lines("127.0.0.1:9911", Path::new("/home/svc/.local/state/stint/agent/api"));
        assert_eq!(
            out,
            "export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/v1/credentials\n\
             export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/home/svc/.local/state/stint/agent/api/auth-token\n"
        );
        let odd = export_lines("127.0.0.1:1", Path::new("/tmp/it's here"));
        assert!(odd.ends_with("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE='/tmp/it'\\''s here/auth-token'\n"), "{odd}");
    }
}
