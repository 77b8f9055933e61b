//! `stint`: the server and the command-line client in one binary. Built without the default
//! `server` feature it is the client alone: the commands that run the server or open its store
//! in-process (`server`, `config`, `policy`, `bench`, `audit verify --data`) are left out.

mod client;
mod cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::output::Output;

/// mimalloc: fewer cycles per request than the system allocator and, unlike glibc with many
/// threads, returns freed memory instead of growing per-thread arenas (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "stint", version, about = "Short-lived, identity-bound credentials for small teams", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Trust only these CA certificates (PEM) for the server's TLS certificate, instead of the
    /// system's; remembered with the session at login
    #[arg(long, env = "STINT_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
}

/// Where the client finds the server, and how it prints.
#[derive(Args, Clone)]
pub struct ClientOpts {
    /// stint server URL (default: the one you logged in to, else http://127.0.0.1:7807)
    #[arg(long, env = "STINT_SERVER", global = true)]
    pub server: Option<String>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
}

/// Server settings; each flag also reads a `STINT_*` variable and wins over the config file.
#[cfg(feature = "server")]
#[derive(Args, Clone)]
pub struct ServerOpts {
    /// TOML configuration file
    #[arg(long, env = "STINT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, generated master key)
    #[arg(long = "data", env = "STINT_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on
    #[arg(long, env = "STINT_LISTEN")]
    pub listen: Option<String>,
    /// `sqlite` or a postgres:// URL
    #[arg(long, env = "STINT_STORE")]
    pub store: Option<String>,
    /// File holding the 32-byte base64 key-encryption key
    #[arg(long, env = "STINT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Public base URL, the `iss` of every token (default: http://<listen>)
    #[arg(long, env = "STINT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format
    #[arg(long, env = "STINT_LOG_FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); reloaded when it changes or on SIGHUP
    #[arg(long, env = "STINT_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file
    #[arg(long, env = "STINT_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

// Parsed once per process, so the size of its largest variant (the agent's flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the stint server
    #[cfg(feature = "server")]
    Server(ServerOpts),
    /// Inspect the server configuration
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Config(cmd::server::ConfigCmd),
    /// Create the first administrator with the bootstrap token printed at first start
    Bootstrap(cmd::auth::BootstrapArgs),
    /// Set your password and one-time-code authenticator with an enrollment code
    Enroll(cmd::auth::EnrollArgs),
    /// Log in through your identity provider (or with password and one-time code); saves a session
    Login(cmd::auth::LoginArgs),
    /// End your session on the server and forget it here
    Logout(cmd::auth::LogoutArgs),
    /// Show who you are, the roles you may assume and when your session ends
    Whoami(cmd::auth::WhoamiArgs),
    /// Get a short-lived credential for a role
    Assume(cmd::auth::AssumeArgs),
    /// Print a role's credential for tools (cached until shortly before it expires, checked with the server at each use)
    Creds(cmd::creds::CredsArgs),
    /// Run a command with a role's credential in its environment
    Exec(cmd::creds::ExecArgs),
    /// List the credentials backends issued to you (AWS, PostgreSQL, SSH), or revoke one
    Leases(cmd::leases::LeasesArgs),
    /// Sign your SSH public key for a role; writes the certificate beside it (KEY-cert.pub)
    SshCert(cmd::leases::SshCertArgs),
    /// Request a role (admin, say) that approvers grant for a while
    Request(cmd::requests::RequestArgs),
    /// List requests for roles (approvers see everyone's)
    Requests(cmd::requests::ListArgs),
    /// Approve a request (approvers; never your own)
    Approve(cmd::requests::ApproveArgs),
    /// Deny a request, with a reason (approvers)
    Deny(cmd::requests::DenyArgs),
    /// Take the break-glass role now (members of the break-glass group; alerts everyone)
    BreakGlass(cmd::requests::BreakGlassArgs),
    /// Manage approved grants
    #[command(subcommand)]
    Grant(cmd::requests::GrantCmd),
    /// Manage users (administrators)
    #[command(subcommand)]
    User(cmd::admin::UserCmd),
    /// Manage workloads: services that get credentials through `stint agent` (administrators)
    #[command(subcommand)]
    Workload(cmd::workload::WorkloadCmd),
    /// Find long-lived credentials in code and configuration: AWS keys, .env files, workflows, private keys
    Scan(cmd::scan::ScanArgs),
    /// The long-lived AWS keys still out there, from IAM's credential report (administrators)
    Inventory(cmd::inventory::InventoryArgs),
    /// Before and after: long-lived keys left, what stint issued instead, and the access review (administrators)
    Report(cmd::report::ReportArgs),
    /// Provisioning from the identity provider: SCIM tokens (administrators)
    #[command(subcommand)]
    Scim(cmd::scim::ScimCmd),
    /// Manage sessions
    #[command(subcommand)]
    Session(cmd::admin::SessionCmd),
    /// Manage signing keys (administrators)
    #[command(subcommand)]
    Keys(cmd::admin::KeysCmd),
    /// Read and verify the tamper-evident audit log
    #[command(subcommand)]
    Audit(cmd::audit::AuditCmd),
    /// Pipelines: exchange the CI platform's OIDC token for a role credential
    #[command(subcommand)]
    Ci(cmd::ci::CiCmd),
    /// Ask the policies: trust policies for CI tokens, Cedar policies for people
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCmd),
    /// Run the workload agent: serves AWS container credentials on loopback and keeps
    /// credential files fresh for a service (`stint agent env`, `stint agent status`)
    Agent(cmd::agent::AgentArgs),
    /// Measure a stint server under load (starts its own server on a fresh data directory)
    #[cfg(feature = "server")]
    Bench(cmd::bench::BenchArgs),
}

/// The agent runs beside every service, so its memory counts many times over. The allocator
/// (mimalloc) reads its options when the process starts, before `main`: without eager arena
/// commits an idle agent is resident in about 14 MiB instead of 21 (BENCHMARKS.md), so the
/// agent starts itself again once with that option set. Only `exec` failing returns here,
/// and then the agent runs with the defaults.
#[cfg(unix)]
fn with_lean_allocator() {
    const OPTION: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(OPTION).is_some() {
        return;
    }
    if let Ok(exe) = std::env::current_exe() {
        use std::os::unix::process::CommandExt;
        let _ = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env(OPTION, "0").exec();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(unix)]
    if matches!(&cli.command, Command::Agent(a) if a.runs_the_agent()) {
        with_lean_allocator();
    }
    if let Some(ca) = cli.ca_file {
        client::trust_ca_file(ca);
    }
    // The agent runs beside every service: one thread answers its loopback endpoint from a
    // cache, and keeps its resident memory small.
    let mut builder = match cli.command {
        Command::Agent(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        #[cfg(feature = "server")]
        Command::Server(o) => cmd::server::serve(o).await,
        #[cfg(feature = "server")]
        Command::Config(c) => cmd::server::config(c),
        Command::Bootstrap(a) => cmd::auth::bootstrap(a).await,
        Command::Leases(a) => cmd::leases::leases(a).await,
        Command::SshCert(a) => cmd::leases::ssh_cert(a).await,
        Command::Enroll(a) => cmd::auth::enroll(a).await,
        Command::Login(a) => cmd::auth::login(a).await,
        Command::Logout(a) => cmd::auth::logout(a).await,
        Command::Whoami(a) => cmd::auth::whoami(a).await,
        Command::Assume(a) => cmd::auth::assume(a).await,
        Command::Creds(a) => cmd::creds::creds(a).await,
        Command::Exec(a) => cmd::creds::exec(a).await,
        Command::Request(a) => cmd::requests::request(a).await,
        Command::Requests(a) => cmd::requests::list(a).await,
        Command::Approve(a) => cmd::requests::approve(a).await,
        Command::Deny(a) => cmd::requests::deny(a).await,
        Command::Grant(c) => cmd::requests::grant(c).await,
        Command::BreakGlass(a) => cmd::requests::break_glass(a).await,
        Command::User(c) => cmd::admin::user(c).await,
        Command::Workload(c) => cmd::workload::run(c).await,
        Command::Inventory(c) => cmd::inventory::run(c).await,
        Command::Report(c) => cmd::report::run(c).await,
        Command::Scan(a) => Ok(tokio::task::spawn_blocking(move || cmd::scan::run(a)).await?),
        Command::Scim(c) => cmd::scim::run(c).await,
        Command::Session(c) => cmd::admin::session(c).await,
        Command::Keys(c) => cmd::admin::keys(c).await,
        Command::Audit(c) => cmd::audit::run(c).await,
        Command::Ci(c) => cmd::ci::run(c).await,
        #[cfg(feature = "server")]
        Command::Policy(c) => cmd::policy::policy(c),
        #[cfg(feature = "server")]
        Command::Bench(a) => cmd::bench::run(a).await,
        Command::Agent(a) => cmd::agent::run(a).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_agent_takes_one_proof_and_its_subcommands_stand_alone() {
        let ok = |args: &[&str]| Cli::try_parse_from(args).is_ok();
        assert!(ok(&["stint", "agent", "--server", "http://s", "--workload", "api", "--join-token-file", "/f"]));
        assert!(ok(&["stint", "agent", "--server", "http://s", "--workload", "api", "--platform-token-file", "/f", "--check-interval", "10s"]));
        assert!(ok(&["stint", "agent", "env", "--workload", "api"]));
        assert!(ok(&["stint", "agent", "status", "--state-dir", "/d", "-o", "json"]));
        assert!(!ok(&["stint", "agent", "--server", "http://s", "--workload", "api"]), "a proof is required");
        assert!(!ok(&["stint", "agent", "--server", "http://s", "--workload", "api", "--join-token-file", "/f", "--platform-token-file", "/g"]));
        assert!(!ok(&["stint", "agent", "--server", "http://s", "--workload", "api", "--join-token-file", "/f", "--check-interval", "soon"]));
        assert!(!ok(&["stint", "agent", "--workload", "api", "env"]), "run flags do not mix with a subcommand");
        assert!(!ok(&["stint", "agent", "env", "--workload", "api", "--state-dir", "/d"]), "one way to name the agent");
    }

    #[test]
    fn roles_parse_as_an_argument_or_a_flag() {
        for args in [
            &["stint", "exec", "developer", "--", "psql"][..],
            &["stint", "exec", "--role", "developer", "--", "psql"],
            &["stint", "creds", "developer", "--backend", "aws"],
            &["stint", "creds", "-r", "developer"],
            &["stint", "assume", "--role", "developer"],
            &["stint", "assume", "developer"],
            &["stint", "ssh-cert", "developer"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
        assert!(Cli::try_parse_from(["stint", "creds", "--no-cache", "--offline", "developer"]).is_err(), "--offline serves from the cache --no-cache skips");
    }
}
