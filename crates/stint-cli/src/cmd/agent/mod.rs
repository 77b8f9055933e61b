//! `stint agent`: holds a workload's identity and keeps its credentials fresh, so a service
//! holds no key and its code does not change.
//!
//! The agent enrolls once (a join token, or a platform token such as a Kubernetes
//! service-account token) with an Ed25519 key it keeps in its state directory, then asks for
//! credentials with short assertions signed by that key. It serves AWS credentials on the
//! container credentials endpoint the SDKs already read (PROTOCOLS.md §1), writes the role
//! token and `PG*`-style env files for programs that read files, refreshes at about two
//! thirds of each lifetime, and drops everything when the server says the workload was
//! disabled or its lease revoked.
//!
//! The state directory (`$XDG_STATE_HOME/stint/agent/NAME`, 0700) holds `key`,
//! `identity.json`, `auth-token` (the endpoint's `Authorization` value, new at every start),
//! `agent.json` (where it listens, for `stint agent env`) and `status.json`.

mod api;
mod cred;
mod endpoint;
mod enroll;
mod inspect;
mod runner;
mod schedule;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand_core::OsRng;
use stint_core::ids::WorkloadName;
use stint_core::time::Ttl;

use self::runner::{Agent, Config, Proof};
use self::state::{CredentialStatus, Status};

/// The loopback address the agent listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9911";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    cmd: Option<AgentCmd>,
    #[command(flatten)]
    run: RunArgs,
}

impl AgentArgs {
    /// Whether this runs the agent itself (not `env` or `status`).
    pub fn runs_the_agent(&self) -> bool {
        self.cmd.is_none()
    }
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Print the two variables that point the AWS SDKs at a running agent, as `export` lines
    Env(inspect::EnvArgs),
    /// Show a running (or stopped) agent's identity, credentials, and last error
    Status(inspect::StatusArgs),
}

/// `stint agent` itself: runs in the foreground until stopped.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("proof").required(true).args(["join_token_file", "platform_token_file"])))]
struct RunArgs {
    /// The stint server URL
    #[arg(long, env = "STINT_SERVER", required = true)]
    server: Option<String>,
    /// The workload this agent stands for (`stint workload list`)
    #[arg(long, required = true)]
    workload: Option<String>,
    /// File holding a one-time join token (`stint workload join-token NAME`), used to enroll the first time
    #[arg(long, value_name = "FILE")]
    join_token_file: Option<PathBuf>,
    /// File holding a platform token (e.g. a Kubernetes projected service-account token), read at each enrollment
    #[arg(long, value_name = "FILE")]
    platform_token_file: Option<PathBuf>,
    /// The role to ask for (default: the workload's only role)
    #[arg(long, short = 'r')]
    role: Option<String>,
    /// The backend to ask for (default: the role's only backend); the container endpoint serves an AWS one
    #[arg(long, short = 'b')]
    backend: Option<String>,
    /// Lifetime to ask for, like 1h (default: what the role allows)
    #[arg(long)]
    ttl: Option<Ttl>,
    /// Address of the AWS container credentials endpoint; keep it on loopback (the SDKs refuse
    /// plain HTTP elsewhere)
    #[arg(long, default_value = DEFAULT_LISTEN, env = "STINT_AGENT_LISTEN")]
    listen: SocketAddr,
    /// The agent's state directory (default: $XDG_STATE_HOME/stint/agent/WORKLOAD or ~/.local/state/stint/agent/WORKLOAD)
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep the role token in this file (0600), rewritten before it expires
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Keep the credential's variables (PGPASSWORD, AWS_ACCESS_KEY_ID…) in this env file (0600), rewritten before it expires
    #[arg(long, value_name = "PATH")]
    env_file: Option<PathBuf>,
    /// Keep an SSH certificate for this public key (an OpenSSH .pub file the service's own key
    /// pair), written beside it as ssh looks for it: KEY-cert.pub
    #[arg(long, value_name = "PATH", requires = "ssh_backend")]
    ssh_public_key: Option<PathBuf>,
    /// The role's SSH backend that signs the certificate
    #[arg(long, value_name = "NAME", requires = "ssh_public_key")]
    ssh_backend: Option<String>,
    /// Run this with `sh -c` after the files change, e.g. 'systemctl reload app'
    #[arg(long, value_name = "CMD")]
    on_change: Option<String>,
    /// How often to ask the server whether the credentials may still be held (a revocation
    /// takes effect within this)
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    check_interval: Ttl,
}

pub async fn run(a: AgentArgs) -> Result<ExitCode> {
    match a.cmd {
        Some(AgentCmd::Env(e)) => inspect::env(e).await,
        Some(AgentCmd::Status(s)) => inspect::status(s).await,
        None => serve(a.run).await,
    }
}

/// The state directory: `--state-dir`, else the default for the workload.
fn state_dir(given: Option<PathBuf>, workload: Option<&str>) -> Result<PathBuf> {
    let dir = match (given, workload) {
        (Some(d), _) => d,
        (None, Some(w)) => state::default_dir(WorkloadName::parse(w).map_err(|e| anyhow::anyhow!("{e}"))?.as_str())?,
        (None, None) => bail!("name the agent: --workload NAME or --state-dir DIR"),
    };
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}

fn config(a: RunArgs) -> Result<(Config, SocketAddr)> {
    let (Some(server), Some(workload)) = (a.server, a.workload) else { bail!("--server and --workload are required") };
    let workload = WorkloadName::parse(&workload).map_err(|e| anyhow::anyhow!("--workload: {e}"))?;
    let proof = match (a.join_token_file, a.platform_token_file) {
        (Some(f), None) => Proof::JoinToken(f),
        (None, Some(f)) => Proof::PlatformToken(f),
        _ => bail!("give one of --join-token-file and --platform-token-file"),
    };
    if !a.listen.ip().is_loopback() {
        tracing::warn!(
            "listening on {}, not loopback: the AWS SDKs accept plain HTTP only from loopback, and others on the network can reach the endpoint",
            a.listen
        );
    }
    let ssh = match (a.ssh_public_key, a.ssh_backend) {
        (Some(path), Some(backend)) => Some(ssh_out(&path, backend)?),
        _ => None,
    };
    let cfg = Config {
        state_dir: state_dir(a.state_dir, Some(workload.as_str()))?,
        server: server.trim_end_matches('/').to_owned(),
        workload,
        proof,
        role: a.role,
        backend: a.backend,
        ttl: a.ttl.map(|t| t.to_string()),
        token_file: a.token_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
        env_file: a.env_file.map(|p| std::path::absolute(&p).unwrap_or(p)),
        ssh,
        on_change: a.on_change,
        check_interval: std::time::Duration::from_secs(a.check_interval.as_secs()),
    };
    Ok((cfg, a.listen))
}

/// The public key at `path` and where its certificate goes (`id_ed25519.pub` →
/// `id_ed25519-cert.pub`, as `ssh` and `ssh-keygen -s` name it).
fn ssh_out(path: &std::path::Path, backend: String) -> Result<runner::SshOut> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--ssh-public-key {}: {e}", path.display()))?;
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_owned();
    stint_core::sshcert::PublicKey::parse(&line).map_err(|e| anyhow::anyhow!("--ssh-public-key {}: {e}", path.display()))?;
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let stem = name.strip_suffix(".pub").unwrap_or(name);
    Ok(runner::SshOut { backend, public_key: line, cert_file: path.with_file_name(format!("{stem}-cert.pub")) })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STINT_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// Removes `agent.json` and `auth-token` when the agent ends, so `stint agent env` does not
/// point at an agent that is gone.
struct Running(PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = state::remove(&self.0.join(state::AGENT));
        let _ = state::remove(&self.0.join(state::AUTH_TOKEN));
    }
}

async fn serve(a: RunArgs) -> Result<ExitCode> {
    init_logging();
    let (cfg, listen) = config(a)?;
    let dir = cfg.state_dir.clone();
    state::ensure_private_dir(&dir)?;
    let (key, created) = state::load_or_create_key(&dir, &mut OsRng)?;
    if created {
        tracing::info!(key_id = key.kid(), "generated the agent's key in {}", dir.display());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; is another agent running there? choose another address with --listen"))?;
    let local = listener.local_addr()?;
    let auth = state::rotate_auth_token(&dir, &mut OsRng)?;
    let _running = Running(dir.clone());
    let started_at = stint_os::now().to_rfc3339();
    let info =
        state::AgentInfo { listen: local.to_string(), pid: std::process::id(), workload: cfg.workload.to_string(), server: cfg.server.clone(), started_at };
    state::write_agent(&dir, &info)?;

    let endpoint = endpoint::Endpoint::new(auth);
    let router = endpoint::router(endpoint.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the credentials endpoint stopped: {e}");
        }
    });
    tracing::info!(workload = %cfg.workload, server = %cfg.server, "serving AWS container credentials on http://{local}{}", endpoint::PATH);

    let jobs = runner::jobs(&cfg);
    let status = Status {
        workload: cfg.workload.to_string(),
        server: cfg.server.clone(),
        pid: std::process::id(),
        credentials: jobs
            .iter()
            .map(|j| CredentialStatus { purpose: j.purposes(), backend: j.backend.clone(), state: "pending".into(), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    let api = api::Api::new(&cfg.server)?;
    let agent = Agent::new(cfg, api, endpoint, status);
    agent.update_status(|_| {});
    tokio::select! {
        started = agent.start(key) => started?,
        () = shutdown() => return Ok(ExitCode::SUCCESS),
    }
    for job in jobs {
        tokio::spawn(Arc::clone(&agent).keep(job));
    }
    shutdown().await;
    tracing::info!("stopping");
    Ok(ExitCode::SUCCESS)
}

/// Resolves at Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
