//! Commands of a person: bootstrap, enroll, login, logout, whoami, assume.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use stint_api::{AssumeRequest, AssumeResponse, BootstrapRequest, EnrollRequest, EnrollResponse, EnrollmentCode, LoginRequest};

use crate::client::{self, Client, SavedSession, DEFAULT_SERVER};
use crate::output::Output;
use crate::ClientOpts;
use stint_os::now;

fn server_url(opts: &ClientOpts) -> Result<String> {
    if let Some(s) = &opts.server {
        return Ok(s.clone());
    }
    Ok(client::load_session()?.map_or_else(|| DEFAULT_SERVER.to_owned(), |s| s.server))
}

fn read_stdin_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn prompt(label: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("{label} needed: pass it as a flag, since standard input is not a terminal");
    }
    eprint!("{label}: ");
    std::io::stderr().flush()?;
    read_stdin_line()
}

fn read_password(from_stdin: bool, label: &str) -> Result<String> {
    if from_stdin {
        return read_stdin_line();
    }
    if !std::io::stdin().is_terminal() {
        bail!("{label} needed: use --password-stdin when standard input is not a terminal");
    }
    Ok(rpassword::prompt_password(format!("{label}: "))?)
}

#[derive(Args)]
pub struct BootstrapArgs {
    /// The bootstrap token the server printed at first start
    #[arg(long, env = "STINT_BOOTSTRAP_TOKEN")]
    token: String,
    /// Name of the first administrator
    #[arg(long)]
    username: String,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn bootstrap(a: BootstrapArgs) -> Result<ExitCode> {
    let c = Client::new(&server_url(&a.opts)?)?;
    let code: EnrollmentCode = c.post("/v1/bootstrap", &BootstrapRequest { token: a.token, username: a.username }).await?;
    print_code(a.opts.output, &code, &c.server, "Created administrator")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints an enrollment code; `what` says what happened ("Created user", "New code for").
pub fn print_code(output: Output, code: &EnrollmentCode, server: &str, what: &str) -> Result<()> {
    output.print(code, |c| {
        println!("{what} {}. Enrollment code (single use, until {}):\n", c.username, c.expires_at);
        println!("    {}\n", c.enrollment_code);
        println!("They enroll with:  stint enroll --server {server} --code <code>");
    })
}

#[derive(Args)]
pub struct EnrollArgs {
    /// The enrollment code an administrator gave you
    #[arg(long, env = "STINT_ENROLLMENT_CODE")]
    code: Option<String>,
    /// Read the new password from the first line of standard input (for scripts)
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn enroll(a: EnrollArgs) -> Result<ExitCode> {
    let code = match a.code {
        Some(c) => c,
        None => prompt("Enrollment code")?,
    };
    let password = read_password(a.password_stdin, "New password (12+ characters)")?;
    if !a.password_stdin && read_password(false, "Repeat password")? != password {
        bail!("the passwords do not match");
    }
    let c = Client::new(&server_url(&a.opts)?)?;
    let e: EnrollResponse = c.post("/v1/enroll", &EnrollRequest { code, password }).await?;
    if a.opts.output == Output::Json {
        a.opts.output.print(&e, |_| {})?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Enrolled {}. Add this account to your authenticator app (scan, or enter the secret):\n", e.username);
    if let Ok(qr) = qrcode::QrCode::new(e.otpauth_uri.as_bytes()) {
        println!("{}", qr.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
    }
    println!("    {}\n    secret: {}\n", e.otpauth_uri, e.totp_secret);
    if !a.password_stdin && std::io::stdin().is_terminal() {
        confirm_authenticator(&e.totp_secret)?;
    }
    println!("Log in with:  stint login --server {} --user {}", c.server, e.username);
    Ok(ExitCode::SUCCESS)
}

/// Checks locally that the person's authenticator shows the codes stint will expect.
fn confirm_authenticator(secret_b32: &str) -> Result<()> {
    let secret = data_encoding::BASE32_NOPAD.decode(secret_b32.as_bytes()).context("server sent a malformed TOTP secret")?;
    for _ in 0..3 {
        let code = prompt("Code shown by your authenticator")?;
        if stint_core::totp::verify(&secret, code.trim(), now()).is_some() {
            println!("Authenticator confirmed.");
            return Ok(());
        }
        eprintln!("That code does not match; check the clock on your phone and try again.");
    }
    bail!("authenticator not confirmed; you are enrolled, but check the app before logging in")
}

#[derive(Args)]
pub struct LoginArgs {
    /// Log in with user name, password and one-time code (the default when the server has no SSO)
    #[arg(long, conflicts_with_all = ["sso", "device"])]
    password: bool,
    /// Log in through your identity provider in a browser (the default when the server has one)
    #[arg(long, conflicts_with = "device")]
    sso: bool,
    /// Log in from a machine without a browser (SSH, servers): enter a code on another device
    #[arg(long)]
    device: bool,
    /// Which identity provider to use (default: the server's first)
    #[arg(long)]
    provider: Option<String>,
    /// Print the sign-in URL instead of opening a browser
    #[arg(long)]
    no_browser: bool,
    /// Your user name, for password login (default: the last one used)
    #[arg(long, short = 'u', env = "STINT_USER")]
    user: Option<String>,
    /// Read the password from the first line of standard input (for scripts)
    #[arg(long)]
    password_stdin: bool,
    /// The current one-time code from your authenticator, for password login
    #[arg(long)]
    totp: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn login(a: LoginArgs) -> Result<ExitCode> {
    let saved = client::load_session()?;
    let server = a.opts.server.clone().or_else(|| saved.as_ref().map(|s| s.server.clone())).unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let c = Client::new(&server)?;
    let password_flags = a.password || a.password_stdin || a.totp.is_some() || a.user.is_some();
    let use_sso = a.sso || a.device || (!password_flags && !super::sso::providers(&c).await?.is_empty());
    let r = match (use_sso, a.device) {
        (true, true) => super::sso::device(&c, a.provider).await?,
        (true, false) => super::sso::browser(&c, a.provider, a.no_browser).await?,
        (false, _) => {
            let username = match a.user.or_else(|| saved.map(|s| s.username)) {
                Some(u) => u,
                None => prompt("User")?,
            };
            let password = read_password(a.password_stdin, "Password")?;
            let totp = match a.totp {
                Some(t) => t,
                None => prompt("One-time code")?,
            };
            c.post("/v1/auth/login", &LoginRequest { username, password, totp }).await?
        }
    };
    let saved = SavedSession {
        server: c.server.clone(),
        session_token: r.session_token,
        session_id: r.session_id,
        username: r.username,
        expires_at: r.expires_at,
        ca_file: crate::client::ca_file(),
    };
    // Credentials cached under an earlier session stay: each use asks the server whether they
    // are still live, and dropping live ones would only leave their leases behind unused.
    let path = client::save_session(&saved)?;
    let shown = json!({ "username": saved.username, "session_id": saved.session_id, "expires_at": saved.expires_at, "server": saved.server, "saved_to": path.display().to_string() });
    a.opts
        .output
        .print(&shown, |_| println!("Logged in to {} as {} until {} (session {}).", saved.server, saved.username, saved.expires_at, saved.session_id))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct LogoutArgs {
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let (c, saved) = Client::with_session(a.opts.server.as_deref())?;
    let result: Result<serde_json::Value> = c.post_empty("/v1/auth/logout").await;
    client::forget_session()?;
    // The logout revoked the session's leases; credentials of earlier sessions the server
    // still vouches for would be kept, but a logout means "forget me here".
    super::cache::clear(&saved, &c.server);
    match result {
        Ok(_) => println!("Logged out; the session is revoked on the server."),
        Err(e) => match e.downcast_ref::<client::ServerError>() {
            // Already ended server-side: forgetting it locally is all that is left.
            Some(se) if se.status == 401 || se.status == 403 => println!("Session had already ended ({}); forgotten locally.", se.code),
            _ => return Err(e.context("could not revoke the session on the server; it was forgotten locally and will expire on its own")),
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn whoami(a: WhoamiArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let w: serde_json::Value = c.get("/v1/whoami").await?;
    a.opts.output.print(&w, |w| {
        println!("user:     {} ({})", w["username"].as_str().unwrap_or(""), w["user_id"].as_str().unwrap_or(""));
        println!("groups:   {}", w["groups"].as_array().map(|g| g.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default());
        println!("session:  {} until {}", w["session_id"].as_str().unwrap_or(""), stint_core::Timestamp(w["session_expires_at"].as_i64().unwrap_or(0)));
        println!("roles:");
        for r in w["roles"].as_array().into_iter().flatten() {
            println!("  {:<12} up to {:<6}{}", r["role"].as_str().unwrap_or(""), r["max_ttl"].as_str().unwrap_or(""), backends_text(r));
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A role's backends as `whoami` prints them: `  backends: appdb (postgres), aws (aws)`.
fn backends_text(role: &serde_json::Value) -> String {
    let names: Vec<String> = role["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| format!("{} ({})", b["name"].as_str().unwrap_or(""), b["kind"].as_str().unwrap_or("")))
        .collect();
    if names.is_empty() {
        return String::new();
    }
    format!("  backends: {}", names.join(", "))
}

#[derive(Args)]
pub struct AssumeArgs {
    #[command(flatten)]
    role: super::RoleArg,
    /// Lifetime, like 15m or 1h (default: the longest the role and your session allow)
    #[arg(long)]
    ttl: Option<String>,
    /// Print only the token (for `$(stint assume readonly --token-only)`)
    #[arg(long)]
    token_only: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn assume(a: AssumeArgs) -> Result<ExitCode> {
    let c = Client::authenticated(a.opts.server.as_deref())?;
    let r: AssumeResponse = c.post("/v1/assume", &AssumeRequest { role: a.role.name()?.to_owned(), ttl: a.ttl }).await?;
    if a.token_only {
        println!("{}", r.token);
        return Ok(ExitCode::SUCCESS);
    }
    a.opts.output.print(&r, |r| {
        eprintln!("Role {} until {} ({}s).", r.role, r.expires_at, r.expires_in);
        println!("{}", r.token);
    })?;
    Ok(ExitCode::SUCCESS)
}
