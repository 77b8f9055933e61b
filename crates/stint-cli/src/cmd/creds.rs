//! `stint creds` and `stint exec`: role credentials for tools, fetched without prompting while
//! the session lasts and cached until shortly before they expire.
//!
//! The cache is one file per (server, session, role, lifetime), mode 0600 in the user's
//! cache directory, like the AWS CLI's own caches. A new login clears it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use sha2::{Digest, Sha256};
use stint_core::Timestamp;
use stint_server::wire::{CredsRequest, CredsResponse};

use crate::client::{self, Client, SavedSession};
use crate::ClientOpts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The AWS `credential_process` JSON (for a role with an AWS backend)
    CredentialProcess,
    /// `export NAME='value'` lines, for `eval "$(stint creds …)"`
    Env,
    /// The credential as JSON
    Json,
}

#[derive(Args)]
pub struct CredsArgs {
    /// The role (see `stint whoami`)
    #[arg(long, short = 'r')]
    role: String,
    /// Lifetime, like 15m or 1h (default: the longest the role and your session allow)
    #[arg(long)]
    ttl: Option<String>,
    /// The backend, when the role has several (`token` for the role token)
    #[arg(long, short = 'b')]
    backend: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Always fetch a new credential
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct ExecArgs {
    /// The role (see `stint whoami`)
    #[arg(long, short = 'r')]
    role: String,
    /// Lifetime, like 15m or 1h (default: the longest the role and your session allow)
    #[arg(long)]
    ttl: Option<String>,
    /// The backend, when the role has several (`token` for the role token)
    #[arg(long, short = 'b')]
    backend: Option<String>,
    /// Always fetch a new credential
    #[arg(long)]
    no_cache: bool,
    /// The command and its arguments
    #[arg(required = true, last = true)]
    command: Vec<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

/// `$STINT_CACHE_DIR`, else `$XDG_CACHE_HOME/stint`, else `~/.cache/stint`.
fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("STINT_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("stint"));
    }
    let home = std::env::var_os("HOME").context("cannot find your home directory; set STINT_CACHE_DIR")?;
    Ok(PathBuf::from(home).join(".cache").join("stint"))
}

/// Forgets every cached credential (after a login or logout).
pub fn clear_cache() {
    let Ok(dir) = cache_dir() else { return };
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("creds-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn cache_path(saved: &SavedSession, server: &str, role: &str, ttl: Option<&str>, backend: Option<&str>) -> Result<PathBuf> {
    let key = format!("{server}\n{}\n{role}\n{}\n{}", saved.session_id, ttl.unwrap_or(""), backend.unwrap_or(""));
    let name = data_encoding::HEXLOWER.encode(&Sha256::digest(key.as_bytes())[..12]);
    Ok(cache_dir()?.join(format!("creds-{name}.json")))
}

/// Whether a credential still has enough life to hand out: a quarter of its lifetime, at
/// most five minutes, must remain (callers then refresh before it expires under them).
fn fresh(c: &CredsResponse, now: Timestamp) -> bool {
    let Some(exp) = Timestamp::parse_rfc3339(&c.expires_at) else { return false };
    let margin = (c.expires_in as i64 / 4).min(300);
    exp.0 - now.0 > margin
}

fn now() -> Timestamp {
    use stint_core::Clock;
    stint_server::SystemClock.now()
}

/// A credential for `role`: from the cache while fresh, else from the server.
async fn credential(opts: &ClientOpts, role: &str, ttl: Option<&str>, backend: Option<&str>, no_cache: bool) -> Result<CredsResponse> {
    let (c, saved) = Client::with_session(opts.server.as_deref())?;
    let now = now();
    if Timestamp::parse_rfc3339(&saved.expires_at).is_some_and(|end| end <= now) {
        bail!("your session ended at {}; run `stint login`", saved.expires_at);
    }
    let path = cache_path(&saved, &c.server, role, ttl, backend)?;
    if !no_cache {
        if let Some(cached) = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<CredsResponse>(&t).ok()) {
            if fresh(&cached, now) {
                return Ok(cached);
            }
        }
    }
    let req = CredsRequest { role: role.to_owned(), ttl: ttl.map(String::from), backend: backend.map(String::from), public_key: None };
    let r: CredsResponse = c.post("/v1/creds", &req).await.map_err(|e| match e.downcast_ref::<client::ServerError>() {
        Some(se) if se.status == 401 => anyhow::anyhow!("{} ({}); run `stint login`", se.message, se.code),
        _ => e,
    })?;
    write_cache(&path, &r);
    Ok(r)
}

/// Best effort: a cache that cannot be written only costs a new credential next time.
fn write_cache(path: &std::path::Path, r: &CredsResponse) {
    let Some(dir) = path.parent() else { return };
    if stint_server::ensure_data_dir(dir).is_err() {
        return;
    }
    let Ok(text) = serde_json::to_string(r) else { return };
    let tmp = dir.join(format!(".{}.{}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if stint_server::write_private(&tmp, text.as_bytes()).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A value of the credential by name: its own values, then the common fields.
fn value(c: &CredsResponse, key: &str) -> Option<String> {
    match c.values.get(key) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None => match key {
            "expires_at" => Some(c.expires_at.clone()),
            "role" => Some(c.role.clone()),
            "lease_id" => c.lease_id.clone(),
            _ => None,
        },
    }
}

/// The variables a credential is delivered in: `STINT_ROLE`, `STINT_EXPIRES_AT`, and the
/// backend's own (`STINT_TOKEN`, `AWS_ACCESS_KEY_ID`, `PGPASSWORD`…).
fn env_vars(c: &CredsResponse) -> Vec<(String, String)> {
    let mut vars = vec![("STINT_ROLE".to_owned(), c.role.clone()), ("STINT_EXPIRES_AT".to_owned(), c.expires_at.clone())];
    vars.extend(c.env.iter().filter_map(|(var, key)| value(c, key).map(|v| (var.clone(), v))));
    vars
}

/// The AWS `credential_process` output (PROTOCOLS.md §2): `SessionToken`, not `Token`.
fn credential_process(c: &CredsResponse) -> Result<serde_json::Value> {
    if c.kind != "aws" {
        bail!(
            "the credential-process format carries AWS keys (AccessKeyId, SecretAccessKey, SessionToken), and role {} issues a {} credential here; \
             use --format env or json, or `stint exec`",
            c.role,
            c.kind
        );
    }
    let get = |k: &str| value(c, k).with_context(|| format!("the server's AWS credential has no {k}"));
    Ok(serde_json::json!({
        "Version": 1,
        "AccessKeyId": get("access_key_id")?,
        "SecretAccessKey": get("secret_access_key")?,
        "SessionToken": get("session_token")?,
        "Expiration": c.expires_at,
    }))
}

/// Single-quotes a value for POSIX shells.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

pub async fn creds(a: CredsArgs) -> Result<ExitCode> {
    let c = credential(&a.opts, &a.role, a.ttl.as_deref(), a.backend.as_deref(), a.no_cache).await?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&c)?),
        Format::Env => {
            for (k, v) in env_vars(&c) {
                println!("export {k}={}", shell_quote(&v));
            }
        }
        Format::CredentialProcess => println!("{}", serde_json::to_string(&credential_process(&c)?)?),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn exec(a: ExecArgs) -> Result<ExitCode> {
    let c = credential(&a.opts, &a.role, a.ttl.as_deref(), a.backend.as_deref(), a.no_cache).await?;
    let (program, args) = a.command.split_first().context("name the command to run after --")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).envs(env_vars(&c));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Replaces this process: signals and the exit status are the command's own.
        let e = cmd.exec();
        bail!("cannot run {program}: {e}");
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().with_context(|| format!("cannot run {program}"))?;
        Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(expires_in: u64, expires_at: i64) -> CredsResponse {
        CredsResponse {
            backend: "token".into(),
            kind: "token".into(),
            role: "developer".into(),
            lease_id: None,
            issued_at: Timestamp(expires_at - expires_in as i64).to_rfc3339(),
            expires_at: Timestamp(expires_at).to_rfc3339(),
            expires_in,
            env: [("STINT_TOKEN".to_owned(), "token".to_owned())].into(),
            values: [("token".to_owned(), serde_json::Value::String("t".into()))].into(),
        }
    }

    #[test]
    fn aws_credentials_print_in_the_credential_process_format() {
        let mut c = cred(900, 2_000_000_000);
        assert!(credential_process(&c).unwrap_err().to_string().contains("--format env or json"));
        c.kind = "aws".into();
        c.values = [("access_key_id", "ASIAX"), ("secret_access_key", "s"), ("session_token", "tok")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).into())))
            .collect();
        let v = credential_process(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "Version": 1, "AccessKeyId": "ASIAX", "SecretAccessKey": "s", "SessionToken": "tok", "Expiration": "2033-05-18T03:33:20Z" })
        );
    }

    #[test]
    fn cached_credentials_are_refreshed_before_they_expire() {
        let now = Timestamp(1_000_000);
        assert!(fresh(&cred(3600, now.0 + 3000), now));
        assert!(!fresh(&cred(3600, now.0 + 300), now), "five minutes before the end of an hour-long credential");
        assert!(fresh(&cred(900, now.0 + 300), now));
        assert!(!fresh(&cred(900, now.0 + 225), now), "a quarter of a 15-minute credential");
        assert!(!fresh(&cred(900, now.0 - 1), now));
    }

    #[test]
    fn env_values_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a'b c"), "'a'\\''b c'");
    }
}
