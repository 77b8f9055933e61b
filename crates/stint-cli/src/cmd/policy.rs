//! `stint policy`: ask the policies questions without changing anything. `explain` evaluates
//! a CI token against a role's trust policy; `test` asks the Cedar policies whether a person
//! may assume a role, at a time, in a context, one question or a suite of them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use stint_core::authz::{AuthzContext, Principal};
use stint_core::ids::{GroupName, RoleName, UserId, Username};
use stint_core::model::User;
use stint_core::Timestamp;

use crate::output::Output;

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Show which trust-policy statement a CI token matches, or which condition fails
    Explain(ExplainArgs),
    /// Ask the policies a question: may this person assume this role, now or then, in this context?
    Test(TestArgs),
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The role whose trust policy to evaluate
    #[arg(long, short = 'r')]
    role: String,
    /// A file holding the token (its signature is not checked: only its claims are read)
    #[arg(long, conflicts_with = "claims", required_unless_present = "claims")]
    token: Option<PathBuf>,
    /// The claims as JSON (or @FILE)
    #[arg(long)]
    claims: Option<String>,
    /// The server configuration holding the roles and issuers
    #[arg(long, env = "STINT_CONFIG")]
    config: Option<PathBuf>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
}

pub fn policy(cmd: PolicyCmd) -> Result<ExitCode> {
    match cmd {
        PolicyCmd::Explain(a) => explain(a),
        PolicyCmd::Test(a) => test(a),
    }
}

fn explain(a: ExplainArgs) -> Result<ExitCode> {
    let cfg = stint_server::config::Config::load(a.config.as_deref(), Default::default())?;
    let role = stint_core::ids::RoleName::parse(&a.role)?;
    let Some(trust) = cfg.broker.ci.trust.get(&role) else {
        bail!("role {role} has no trust_policy in {}", a.config.as_ref().map_or("the configuration".into(), |p| p.display().to_string()));
    };
    let claims: serde_json::Map<String, serde_json::Value> = match (&a.token, &a.claims) {
        (Some(f), _) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            let payload = text.trim().split('.').nth(1).context("the token is not a JWT (header.payload.signature)")?;
            use base64::Engine;
            let bytes =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).context("the token's payload is not base64url")?;
            serde_json::from_slice(&bytes).context("the token's payload is not a JSON object")?
        }
        (None, Some(c)) => {
            let text = match c.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?,
                None => c.clone(),
            };
            serde_json::from_str(&text).context("--claims is not a JSON object")?
        }
        (None, None) => bail!("pass --token FILE or --claims JSON"),
    };
    let claims: std::collections::BTreeMap<String, serde_json::Value> = claims.into_iter().collect();
    let issuer = match claims.get("iss").and_then(|v| v.as_str()) {
        Some(i) => i.to_owned(),
        None if cfg.broker.ci.issuers.len() == 1 => cfg.broker.ci.issuers[0].url.clone(),
        None => bail!("the claims have no iss and several issuers are configured: add \"iss\""),
    };
    if !cfg.broker.ci.issuers.iter().any(|i| i.url == issuer) {
        eprintln!("note: {issuer} is not a configured [[ci.issuer]]; the exchange would refuse it (untrusted_issuer)");
    }
    let eval = trust.policy.evaluate(&issuer, &claims);
    a.output.print(&eval, |e| {
        for s in &e.statements {
            let effect = format!("{:?}", s.effect);
            match &s.failed {
                None => println!("{:<28} {:<5} matches", s.label, effect),
                Some(why) => println!("{:<28} {:<5} does not match: {why}", s.label, effect),
            }
        }
        match e.decision {
            stint_core::trust::Decision::Allowed { statement } => println!("\nallowed by {} (lifetime {})", e.statements[statement].label, trust.ttl),
            _ => println!("\nrefused: {}", e.refusal()),
        }
    })?;
    Ok(if eval.allowed() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

#[derive(Args)]
pub struct TestArgs {
    /// The person asking (a user name; with --groups nothing is looked up)
    #[arg(long, short = 'u', required_unless_present = "suite")]
    user: Option<String>,
    /// Their groups (repeatable); default: looked up in the store (--data / --store)
    #[arg(long = "group", short = 'g')]
    groups: Vec<String>,
    /// The role
    #[arg(long, short = 'r', required_unless_present = "suite")]
    role: Option<String>,
    /// When, RFC 3339 (default: now)
    #[arg(long)]
    at: Option<String>,
    /// How they showed a second factor (context.mfa)
    #[arg(long, default_value = "password+totp")]
    mfa: String,
    /// On call at that time (context.on_call)
    #[arg(long)]
    on_call: bool,
    /// An approved request covers the role (context.approved_request)
    #[arg(long)]
    approved_request: bool,
    /// Break-glass (context.break_glass)
    #[arg(long)]
    break_glass: bool,
    /// A suite of questions and expected answers (TOML, see policies/tests/defaults.toml)
    #[arg(long, conflicts_with_all = ["user", "role"])]
    suite: Option<PathBuf>,
    /// The server configuration holding the roles and policies
    #[arg(long, env = "STINT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory to look the user's groups up in (SQLite)
    #[arg(long = "data", env = "STINT_DATA")]
    data_dir: Option<PathBuf>,
    /// Store to look the user's groups up in: `sqlite` or a postgres:// URL
    #[arg(long, env = "STINT_STORE")]
    store: Option<String>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// One question of a suite.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    role: String,
    at: Option<String>,
    #[serde(default = "default_mfa")]
    mfa: String,
    #[serde(default)]
    on_call: bool,
    #[serde(default)]
    approved_request: bool,
    #[serde(default)]
    break_glass: bool,
    /// "allow" or "deny".
    expect: String,
    /// The policies that must have decided, when given.
    policies: Option<Vec<String>>,
}

fn default_mfa() -> String {
    "password+totp".into()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    case: Vec<Case>,
}

fn person(name: &str, groups: &[String]) -> Result<User> {
    Ok(User {
        id: UserId::from_trusted("u_policytest".to_owned()),
        name: Username::parse(name)?,
        groups: groups.iter().map(|g| GroupName::parse(g)).collect::<Result<_, _>>()?,
        disabled: false,
        password_hash: None,
        totp_sealed: None,
        totp_last_step: 0,
        expires_at: None,
        sponsor: None,
        created_at: Timestamp(0),
    })
}

fn when(at: Option<&str>) -> Result<Timestamp> {
    match at {
        Some(t) => Timestamp::parse_rfc3339(t).with_context(|| format!("{t:?} is not an RFC 3339 time like 2026-11-28T03:00:00Z")),
        None => Ok(stint_os::now()),
    }
}

fn test(a: TestArgs) -> Result<ExitCode> {
    let cfg = stint_server::config::Config::load(a.config.as_deref(), Default::default())?;
    let roles = &cfg.broker.roles;
    if let Some(path) = &a.suite {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let suite: Suite = toml::from_str(&text).with_context(|| format!("{} is not a policy test suite", path.display()))?;
        let mut results = Vec::new();
        for c in &suite.case {
            let mut ctx = AuthzContext::human(&c.mfa, when(c.at.as_deref())?);
            (ctx.on_call, ctx.approved_request, ctx.break_glass) = (c.on_call, c.approved_request, c.break_glass);
            let d = roles.engine().decide(&Principal::Person(&person(&c.user, &c.groups)?), &RoleName::parse(&c.role)?, &ctx)?;
            let want_allow = match c.expect.as_str() {
                "allow" => true,
                "deny" => false,
                other => bail!("case {:?}: expect must be \"allow\" or \"deny\", not {other:?}", c.name),
            };
            let policies_ok = c.policies.as_ref().is_none_or(|p| {
                let mut p = p.clone();
                p.sort();
                p == d.policies
            });
            results.push(serde_json::json!({ "name": c.name, "passed": d.allowed == want_allow && policies_ok, "decision": d }));
        }
        let failed = results.iter().filter(|r| r["passed"] != true).count();
        a.output.print(&results, |rs| {
            for r in rs {
                let mark = if r["passed"] == true { "ok  " } else { "FAIL" };
                let d = &r["decision"];
                println!("{mark} {}  ({}; {})", r["name"].as_str().unwrap_or(""), if d["allowed"] == true { "allow" } else { "deny" }, d["policies"]);
            }
            println!("\n{} cases, {failed} failed", rs.len());
        })?;
        return Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) });
    }
    let (Some(user), Some(role)) = (&a.user, &a.role) else { bail!("pass --user and --role, or --suite FILE") };
    let groups = if a.groups.is_empty() { stored_groups(&a, &cfg, user)? } else { a.groups.clone() };
    let mut ctx = AuthzContext::human(&a.mfa, when(a.at.as_deref())?);
    (ctx.on_call, ctx.approved_request, ctx.break_glass) = (a.on_call, a.approved_request, a.break_glass);
    let d = roles.engine().decide(&Principal::Person(&person(user, &groups)?), &RoleName::parse(role)?, &ctx)?;
    let shown = serde_json::json!({ "user": user, "groups": groups, "role": role, "at": ctx.now.to_rfc3339(), "context": ctx, "decision": d });
    a.output.print(&shown, |_| {
        let verdict = if d.allowed { "ALLOW" } else { "DENY" };
        println!("{verdict}: {user} (groups: {}) assuming {role} at {}", groups.join(", "), ctx.now);
        match (d.allowed, d.policies.is_empty()) {
            (true, _) => println!("permitted by: {}", d.policies.join(", ")),
            (false, true) => println!("no policy permits it"),
            (false, false) => println!("forbidden by: {}", d.policies.join(", ")),
        }
        for e in &d.errors {
            println!("policy error (skipped): {e}");
        }
    })?;
    Ok(if d.allowed { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// The user's groups as stored: the store is opened read-only in spirit (nothing is written
/// but what opening a store does: migrations of an older schema).
fn stored_groups(a: &TestArgs, cfg: &stint_server::config::Config, user: &str) -> Result<Vec<String>> {
    let spec = a.store.clone().unwrap_or_else(|| cfg.store.clone());
    let dir = a.data_dir.clone().unwrap_or_else(|| cfg.data_dir.clone());
    if spec == "sqlite" && !dir.join("stint.db").exists() {
        bail!("no stint database in {} to look {user} up in: pass their groups with --group", dir.display());
    }
    let rt = tokio::runtime::Handle::try_current().context("no async runtime")?;
    let found = tokio::task::block_in_place(|| {
        rt.block_on(async {
            let store = stint_store::open(&spec, &dir).await.map_err(super::operator_error)?;
            store.user_by_name(&Username::parse(user)?).await.map_err(super::operator_error)
        })
    })?;
    let u = found.with_context(|| format!("no user named {user}: pass their groups with --group to ask about someone hypothetical"))?;
    Ok(u.groups.iter().map(ToString::to_string).collect())
}
