//! `stint creds` and `stint exec`: role credentials for tools, fetched without prompting while
//! the session lasts, and cached (see [`super::cache`]) until shortly before they expire.
//!
//! A cached credential is served only after the server confirms it is still good: its lease is
//! live (`GET /v1/leases/{id}`), or its role token is active (introspection). A revocation is
//! answered with its code; a server out of reach is an error unless `--offline` accepts the
//! cached credential unchecked.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use stint_api::{CredsRequest, CredsResponse, LeaseView};
use stint_core::Timestamp;

use super::cache::Entry;
use super::RoleArg;
use crate::client::{self, Client};
use crate::ClientOpts;
use stint_os::now;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The AWS `credential_process` JSON (for a role with an AWS backend)
    CredentialProcess,
    /// `export NAME='value'` lines, for `eval "$(stint creds …)"`
    Env,
    /// The credential as JSON
    Json,
}

/// What `creds` and `exec` share: which credential, and how the cache is used.
#[derive(Args)]
pub struct Want {
    #[command(flatten)]
    role: RoleArg,
    /// Lifetime, like 15m or 1h (default: the longest the role and your session allow)
    #[arg(long)]
    ttl: Option<String>,
    /// The backend, when the role has several (`token` for the role token)
    #[arg(long, short = 'b')]
    backend: Option<String>,
    /// Always fetch a new credential, and do not keep it in the cache
    #[arg(long, conflicts_with = "offline")]
    no_cache: bool,
    /// When the server cannot be reached, serve the cached credential unchecked until it
    /// expires (it may have been revoked meanwhile); a warning says so
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct CredsArgs {
    #[command(flatten)]
    want: Want,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    want: Want,
    /// The command and its arguments
    #[arg(required = true, last = true)]
    command: Vec<String>,
}

/// Whether a credential still has enough life to hand out: a quarter of its lifetime, at
/// most five minutes, must remain (callers then refresh before it expires under them).
fn fresh(c: &CredsResponse, now: Timestamp) -> bool {
    let Some(exp) = Timestamp::parse_rfc3339(&c.expires_at) else { return false };
    let margin = (c.expires_in as i64 / 4).min(300);
    exp.0 - now.0 > margin
}

/// Whether a credential has not reached its own end.
fn unexpired(c: &CredsResponse, now: Timestamp) -> bool {
    Timestamp::parse_rfc3339(&c.expires_at).is_some_and(|exp| now < exp)
}

/// What the server says of a cached credential.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// Good to serve.
    Live,
    /// Ended without anyone revoking it (or its token is no longer accepted): ask for a new one,
    /// and the server says why if it refuses.
    Ended,
    /// Revoked: never served again.
    Revoked { lease: String, reason: String },
}

/// A lease's status as `GET /v1/leases/{id}` reports it (`Lease::status`).
fn lease_standing(l: &LeaseView) -> Standing {
    match l.status.as_str() {
        "active" => Standing::Live,
        "revoking" | "revoked" => Standing::Revoked { lease: l.id.clone(), reason: l.revoke_reason.clone().unwrap_or_default() },
        _ => Standing::Ended,
    }
}

#[derive(Deserialize)]
struct Introspection {
    active: bool,
}

/// One call: the lease's status, or for a role token its introspection (which also sees a
/// revoked session, a disabled user and a revoked grant).
async fn standing(c: &Client, cached: &CredsResponse) -> Result<Standing> {
    if let Some(id) = &cached.lease_id {
        // Checked here: the id goes into the URL path, and the cache file is only ours by its mode.
        stint_core::ids::LeaseId::parse(id).map_err(|e| anyhow::anyhow!("the cached credential is corrupt: {e}"))?;
        let lease: LeaseView = c.get(&format!("/v1/leases/{id}")).await?;
        return Ok(lease_standing(&lease));
    }
    let token = cached.values.get("token").and_then(|t| t.as_str()).context("the cached credential has neither a lease nor a token")?;
    let i: Introspection = c.post_form("/v1/introspect", &[("token", token)]).await?;
    Ok(if i.active { Standing::Live } else { Standing::Ended })
}

/// The server's refusals, with the hint a person needs for the ones only a login cures.
fn refusal(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<client::ServerError>() {
        Some(se) if se.status == 401 => anyhow::anyhow!("{} ({}); run `stint login`", se.message, se.code),
        _ => e,
    }
}

/// Whether the server refused outright (a 4xx): the cached credential is not to be used again.
fn refused(e: &anyhow::Error) -> bool {
    e.downcast_ref::<client::ServerError>().is_some_and(|se| (400..500).contains(&se.status))
}

/// Serves a cached credential the server could not vouch for, saying so.
fn offline(cached: CredsResponse, e: &anyhow::Error) -> CredsResponse {
    let what = cached.lease_id.as_deref().map_or_else(|| "role token".to_owned(), |l| format!("lease {l}"));
    eprintln!(
        "warning: {e}; --offline: serving the cached credential for role {} ({what}) unchecked: it may have been revoked. It expires at {}.",
        cached.role, cached.expires_at
    );
    cached
}

/// A credential for the role: the cached one while fresh and live, else a new one.
async fn credential(w: &Want) -> Result<CredsResponse> {
    let role = w.role.name()?;
    let (c, saved) = Client::with_session(w.opts.server.as_deref())?;
    let now = now();
    if Timestamp::parse_rfc3339(&saved.expires_at).is_some_and(|end| end <= now) {
        bail!("your session ended at {}; run `stint login`", saved.expires_at);
    }
    let (ttl, backend) = (w.ttl.as_deref(), w.backend.as_deref());
    let entry = if w.no_cache { None } else { Some(Entry::new(&saved, &c.server, role, ttl, backend)?) };
    let cached = entry.as_ref().and_then(Entry::read).filter(|r| unexpired(r, now));
    if let (Some(entry), Some(cached)) = (&entry, &cached) {
        if let Some(served) = vouched(&c, entry, cached, now, w.offline).await? {
            return Ok(served);
        }
    }
    let req = CredsRequest { role: role.to_owned(), ttl: w.ttl.clone(), backend: w.backend.clone(), public_key: None };
    match c.post::<CredsResponse>("/v1/creds", &req).await {
        Ok(r) => {
            if let Some(entry) = &entry {
                entry.write(&r);
            }
            Ok(r)
        }
        Err(e) => match cached {
            Some(cached) if client::is_unreachable(&e) && w.offline => Ok(offline(cached, &e)),
            _ => Err(refusal(e)),
        },
    }
}

/// The cached credential if the server vouches for it; `None` when a new one is due. A
/// revocation or refusal forgets it and is the answer.
async fn vouched(c: &Client, entry: &Entry, cached: &CredsResponse, now: Timestamp, offline_ok: bool) -> Result<Option<CredsResponse>> {
    // Near its end, a credential is replaced rather than checked.
    let standing = if fresh(cached, now) { standing(c, cached).await } else { Ok(Standing::Ended) };
    match standing {
        Ok(Standing::Live) => Ok(Some(cached.clone())),
        Ok(Standing::Ended) => {
            entry.remove();
            Ok(None)
        }
        Ok(Standing::Revoked { lease, reason }) => {
            entry.remove();
            bail!("lease {lease} was revoked ({reason}), so its credential is not served again; ask again for a new one (lease_revoked)")
        }
        Err(e) if client::is_unreachable(&e) && offline_ok => Ok(Some(offline(cached.clone(), &e))),
        Err(e) => {
            if refused(&e) {
                entry.remove();
            }
            Err(refusal(e))
        }
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
    let c = credential(&a.want).await?;
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
    let c = credential(&a.want).await?;
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
    fn offline_credentials_are_served_only_until_their_own_end() {
        let now = Timestamp(1_000_000);
        assert!(unexpired(&cred(900, now.0 + 1), now), "past the refresh margin, before the end");
        assert!(!unexpired(&cred(900, now.0), now));
        let mut corrupt = cred(900, now.0 + 600);
        corrupt.expires_at = "soon".into();
        assert!(!unexpired(&corrupt, now) && !fresh(&corrupt, now));
    }

    #[test]
    fn only_an_active_lease_is_served_and_a_revoked_one_never_again() {
        let view = |status: &str, reason: Option<&str>| LeaseView {
            id: "l_x".into(),
            backend: "aws".into(),
            kind: "aws".into(),
            status: status.into(),
            subject: "dana".into(),
            role: "developer".into(),
            external_id: "e".into(),
            issued_at: String::new(),
            expires_at: String::new(),
            session_id: None,
            grant_id: None,
            revoked_at: None,
            revoke_reason: reason.map(String::from),
            ended_at: None,
        };
        assert_eq!(lease_standing(&view("active", None)), Standing::Live);
        for status in ["revoking", "revoked"] {
            let revoked = Standing::Revoked { lease: "l_x".into(), reason: "user disabled".into() };
            assert_eq!(lease_standing(&view(status, Some("user disabled"))), revoked);
        }
        for status in ["expiring", "ended", "a status this client does not know"] {
            assert_eq!(lease_standing(&view(status, None)), Standing::Ended, "{status}");
        }
    }

    #[test]
    fn env_values_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("a'b c"), "'a'\\''b c'");
    }
}
