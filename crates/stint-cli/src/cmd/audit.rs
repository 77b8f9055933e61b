//! `stint audit verify` and `stint audit tail`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use stint_api::AuditPage;
use stint_core::audit::{Record, Verifier};

use crate::client::Client;
use crate::ClientOpts;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Walk the hash chain; report the first edited, deleted, inserted or reordered record
    Verify(VerifyArgs),
    /// Show audit records as they happen
    Tail(TailArgs),
    /// Count failed logins by method, provider and reason
    Failures(FailuresArgs),
}

#[derive(Args)]
pub struct FailuresArgs {
    /// How far back, like 24h or 7d
    #[arg(long, default_value = "24h")]
    since: String,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Verify a data directory offline (SQLite), without a running server
    #[cfg(feature = "server")]
    #[arg(long = "data", conflicts_with = "store")]
    data_dir: Option<std::path::PathBuf>,
    /// Verify a store offline: `sqlite` (with --data) or a postgres:// URL
    #[cfg(feature = "server")]
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Args)]
pub struct TailArgs {
    /// Keep printing new records as they are appended
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print records as JSON lines
    #[arg(long)]
    json: bool,
    /// Start with the last N records
    #[arg(long, short = 'n', default_value_t = 20)]
    lines: u64,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run(cmd: AuditCmd) -> Result<ExitCode> {
    match cmd {
        AuditCmd::Verify(a) => verify(a).await,
        AuditCmd::Tail(a) => tail(a).await,
        AuditCmd::Failures(a) => failures(a).await,
    }
}

const PAGE: u32 = 1000;

/// Where records come from: the store itself, or a server's API.
enum Source {
    #[cfg(feature = "server")]
    Store(std::sync::Arc<dyn stint_core::store::Store>),
    Server(Client),
}

impl Source {
    /// The chain head `(seq, hash)`, kept apart from the records.
    async fn head(&self) -> Result<Option<(u64, String)>> {
        match self {
            #[cfg(feature = "server")]
            Source::Store(s) => Ok(s.audit_head().await?),
            Source::Server(_) => Ok(self.page(u64::MAX, 0).await?.1),
        }
    }

    async fn page(&self, after: u64, wait: u64) -> Result<(Vec<Record>, Option<(u64, String)>)> {
        match self {
            #[cfg(feature = "server")]
            Source::Store(s) => Ok((s.audit_after(after, PAGE).await?, s.audit_head().await?)),
            Source::Server(c) => {
                let p: AuditPage = c.get(&format!("/v1/audit?after={after}&limit={PAGE}&wait={wait}")).await?;
                Ok((p.records, p.head))
            }
        }
    }
}

impl VerifyArgs {
    /// The store named by --data or --store, opened here; else the server's API.
    async fn source(&self) -> Result<Source> {
        #[cfg(feature = "server")]
        if self.data_dir.is_some() || self.store.is_some() {
            return open_store(self.data_dir.clone(), self.store.clone()).await.map(Source::Store);
        }
        Ok(Source::Server(Client::authenticated(self.opts.server.as_deref())?))
    }
}

/// A store opened in-process: `spec` (default `sqlite`) in `data_dir` (default the server's).
#[cfg(feature = "server")]
async fn open_store(data_dir: Option<std::path::PathBuf>, spec: Option<String>) -> Result<std::sync::Arc<dyn stint_core::store::Store>> {
    use anyhow::Context;
    let spec = spec.unwrap_or_else(|| "sqlite".to_owned());
    let dir = data_dir.unwrap_or_else(|| stint_server::config::DEFAULT_DATA_DIR.into());
    if spec == "sqlite" && !dir.join("stint.db").exists() {
        anyhow::bail!("no stint database in {}", dir.display());
    }
    stint_store::open(&spec, &dir).await.map_err(super::operator_error).with_context(|| format!("cannot open {}", stint_store::describe(&spec)))
}

async fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let source = a.source().await?;
    let mut v = Verifier::default();
    let mut last = 0;
    // Walk to the end, then compare with the head read afterwards. A head beyond the last
    // record means either appends landed meanwhile (walk on to it) or records were removed
    // from the end (a walk that finds nothing new): only the second is tampering.
    for round in 0..5 {
        let before = last;
        loop {
            let (records, _) = source.page(last, 0).await?;
            for r in &records {
                if let Err(b) = v.push(r) {
                    return report(&a.opts, v.checked, Some(b));
                }
            }
            match records.last() {
                Some(r) => last = r.seq,
                None => break,
            }
        }
        let head = source.head().await?;
        let head_seq = head.as_ref().map_or(0, |h| h.0);
        if head_seq <= last || (round > 0 && last == before) {
            return report(&a.opts, v.checked, v.finish(head).err());
        }
    }
    anyhow::bail!("the audit log grows faster than it can be verified; retry when it is quieter")
}

fn report(opts: &ClientOpts, checked: u64, broken: Option<stint_core::audit::Break>) -> Result<ExitCode> {
    let value = serde_json::json!({ "ok": broken.is_none(), "checked": checked, "break": broken });
    opts.output.print(&value, |_| match &broken {
        None => println!("audit log intact: {checked} records, hash chain verified"),
        Some(b) => println!("AUDIT LOG TAMPERED: {b} ({checked} records verified before it)"),
    })?;
    Ok(if broken.is_none() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn print_record(r: &Record, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    let details: Vec<String> = r.details.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let reason = if r.reason.is_empty() { String::new() } else { format!(" reason={}", r.reason) };
    println!("{:>6} {} {:<22} {:<7} actor={} subject={}{} {}", r.seq, r.at, r.event, r.outcome.as_str(), r.actor, r.subject, reason, details.join(" "));
}

async fn tail(a: TailArgs) -> Result<ExitCode> {
    let source = Source::Server(Client::authenticated(a.opts.server.as_deref())?);
    let (_, head) = source.page(u64::MAX - 1, 0).await?;
    let mut after = head.map_or(0, |(seq, _)| seq.saturating_sub(a.lines));
    loop {
        let (records, _) = source.page(after, if a.follow { 25 } else { 0 }).await?;
        for r in &records {
            print_record(r, a.json);
        }
        match records.last() {
            Some(last) => after = last.seq,
            None if !a.follow => break,
            None => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn failures(a: FailuresArgs) -> Result<ExitCode> {
    let (records, since) = records_since(&a).await?;
    let report = stint_core::audit::failures_by_reason(&records, since);
    a.opts.output.print(&report, |rows| {
        println!("Failed logins since {since}:");
        println!("{:>6} {:>8}  {:<14} {:<10} REASON", "COUNT", "SOURCES", "METHOD", "PROVIDER");
        for r in rows {
            println!("{:>6} {:>8}  {:<14} {:<10} {}", r.count, r.sources, r.method, if r.provider.is_empty() { "-" } else { &r.provider }, r.reason);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Every record of the window, read through the server.
async fn records_since(a: &FailuresArgs) -> Result<(Vec<Record>, stint_core::Timestamp)> {
    let window: stint_core::Ttl = a.since.parse().map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let now = stint_os::now();
    let since = stint_core::Timestamp(now.0 - window.as_secs() as i64);
    let source = Source::Server(Client::authenticated(a.opts.server.as_deref())?);
    let mut records = Vec::new();
    let mut after = 0;
    loop {
        let (page, _) = source.page(after, 0).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        records.extend(page.into_iter().filter(|r| r.at >= since));
    }
    Ok((records, since))
}
