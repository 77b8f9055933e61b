//! `stint ci login`: a pipeline trades its platform's OIDC token for a role credential.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use stint_api::TokenExchangeResponse;

use crate::client::Client;

#[derive(Subcommand)]
pub enum CiCmd {
    /// Exchange this job's OIDC token for a role credential (GitHub Actions, GitLab, Kubernetes…)
    Login(CiLoginArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CiFormat {
    /// `export NAME='value'` lines
    Env,
    /// The credential as JSON
    Json,
}

#[derive(Args)]
pub struct CiLoginArgs {
    #[command(flatten)]
    role: super::RoleArg,
    /// The audience to request from GitHub; the trust policy binds it
    #[arg(long, default_value = "stint")]
    audience: String,
    /// Lifetime, like 5m (default: the role's CI lifetime, at most 15m)
    #[arg(long)]
    ttl: Option<String>,
    /// Read the OIDC token from this file instead of asking GitHub (Kubernetes projected
    /// service-account tokens, GitLab `id_tokens` written to a file, …)
    #[arg(long, conflicts_with = "token_env")]
    token_file: Option<PathBuf>,
    /// Read the OIDC token from this environment variable (GitLab: the `id_tokens` name)
    #[arg(long)]
    token_env: Option<String>,
    /// Print the credential instead of exporting it to $GITHUB_ENV
    #[arg(long, value_enum)]
    print: Option<CiFormat>,
    /// stint server URL
    #[arg(long, env = "STINT_SERVER")]
    server: String,
}

pub async fn run(cmd: CiCmd) -> Result<ExitCode> {
    let CiCmd::Login(a) = cmd;
    login(a).await
}

/// Asks GitHub Actions' token service for this job's OIDC token (needs `permissions: id-token: write`).
async fn github_token(audience: &str) -> Result<String> {
    let (Ok(url), Ok(bearer)) = (std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"), std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")) else {
        bail!(
            "no OIDC token available: in GitHub Actions give the job `permissions: id-token: write`; \
             elsewhere pass --token-file or --token-env"
        );
    };
    let mut url = reqwest::Url::parse(&url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
    url.query_pairs_mut().append_pair("audience", audience);
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let resp = http.get(url).bearer_auth(bearer).send().await.context("cannot reach GitHub's OIDC token service")?;
    if !resp.status().is_success() {
        bail!("GitHub's OIDC token service refused the request (HTTP {})", resp.status());
    }
    #[derive(serde::Deserialize)]
    struct Value {
        value: String,
    }
    let v: Value = resp.json().await.context("GitHub's OIDC token service sent no token")?;
    Ok(v.value)
}

async fn login(a: CiLoginArgs) -> Result<ExitCode> {
    let subject = match (&a.token_file, &a.token_env) {
        (Some(f), _) => std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?.trim().to_owned(),
        (None, Some(var)) => std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?.trim().to_owned(),
        (None, None) => github_token(&a.audience).await?,
    };
    let c = Client::new(&a.server)?;
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", subject.as_str()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ("role", a.role.name()?),
    ];
    if let Some(t) = &a.ttl {
        form.push(("ttl", t));
    }
    let r: TokenExchangeResponse = c.post_form("/v1/token", &form).await?;
    let vars = [("STINT_TOKEN", r.access_token.as_str()), ("STINT_ROLE", r.role.as_str()), ("STINT_TOKEN_EXPIRES_AT", r.expires_at.as_str())];
    match (a.print, std::env::var_os("GITHUB_ENV")) {
        (None, Some(path)) => {
            use std::io::Write;
            // Masked first, so the value never shows in the job's log.
            println!("::add-mask::{}", r.access_token);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open $GITHUB_ENV ({})", PathBuf::from(&path).display()))?;
            for (k, v) in vars {
                writeln!(f, "{k}={v}")?;
            }
            eprintln!("Role {} until {}: STINT_TOKEN is set for the next steps.", r.role, r.expires_at);
        }
        (Some(CiFormat::Json), _) => println!("{}", serde_json::to_string_pretty(&r)?),
        (Some(CiFormat::Env), _) | (None, None) => {
            for (k, v) in vars {
                println!("export {k}='{}'", v.replace('\'', "'\\''"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
