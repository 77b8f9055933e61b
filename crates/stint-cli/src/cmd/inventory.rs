//! `stint inventory`: the long-lived keys still out there, from IAM's credential report
//! (`docs/inventory.md`). Administrators import a report, or have the server fetch one; the
//! command shows the newest of each account and the trend.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use stint_api::inventory::{FetchRequest, ImportQuery, InventoryQuery, Kept};
use stint_core::broker::Fetched;
use stint_core::inventory::{Figures, Inventory, LastUsed, Summary, ROOT_USER};
use stint_core::{Timestamp, Ttl};

use crate::client::Client;
use crate::output::plural;
use crate::ClientOpts;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    aws iam generate-credential-report && aws iam get-credential-report > report.json\n  \
    stint inventory import aws-credential-report report.json\n  \
    stint inventory\n  \
    stint inventory --since 90d --output json")]
pub struct InventoryArgs {
    #[command(subcommand)]
    cmd: Option<InventoryCmd>,
    /// Only snapshots generated since then, for the trend: an RFC 3339 time or an age like 90d
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Subcommand)]
enum InventoryCmd {
    /// Keep a snapshot of an AWS account's long-lived credentials, from a file
    #[command(after_help = "FILE is what `aws iam get-credential-report` prints (JSON, with the report's generation time), \
        or the CSV inside it, base64-decoded, as the IAM console downloads it.\n\
        A CSV file does not say when AWS generated it: give --generated-at, or the file's modification time is used.")]
    Import {
        /// What the file holds
        format: Format,
        /// The file; - reads standard input (then give --generated-at)
        file: PathBuf,
        /// When AWS generated the report (RFC 3339); key ages are computed at this time
        #[arg(long)]
        generated_at: Option<String>,
    },
    /// Have the server fetch the newest credential report through an AWS backend's own identity
    #[command(after_help = "IAM generates a new report at most every 4 hours and answers with the newest until then: \
        fetching more often keeps nothing new. The backend's identity needs iam:GenerateCredentialReport, \
        iam:GetCredentialReport, iam:ListUsers, iam:ListAccessKeys and iam:GetAccessKeyLastUsed.")]
    Fetch {
        /// The [[backends.aws]] to fetch through, by name
        #[arg(long)]
        backend: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// IAM's credential report (22 columns)
    AwsCredentialReport,
}

pub async fn run(args: InventoryArgs) -> Result<ExitCode> {
    match args.cmd {
        None => show(args.since.as_deref(), &args.opts).await,
        Some(InventoryCmd::Import { format: Format::AwsCredentialReport, file, generated_at }) => import(&file, generated_at, &args.opts).await,
        Some(InventoryCmd::Fetch { backend }) => fetch(&backend, &args.opts).await,
    }
}

async fn show(since: Option<&str>, opts: &ClientOpts) -> Result<ExitCode> {
    let c = Client::authenticated(opts.server.as_deref())?;
    let query = InventoryQuery { since: since.map(since_time).transpose()? };
    let inv: Inventory = c.get(&format!("/v1/inventory?{}", serde_urlencoded::to_string(&query)?)).await?;
    opts.output.print(&inv, print_inventory)?;
    Ok(ExitCode::SUCCESS)
}

async fn import(file: &Path, generated_at: Option<String>, opts: &ClientOpts) -> Result<ExitCode> {
    let (bytes, modified) = if file == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("cannot read standard input")?;
        (b, None)
    } else {
        let b = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let modified = std::fs::metadata(file).and_then(|m| m.modified()).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        (b, modified.map(|d| Timestamp(d.as_secs() as i64)))
    };
    let (csv, said) = unwrap_cli_output(bytes)?;
    let generated_at = match (generated_at, said, modified) {
        (Some(t), _, _) => t,
        (None, Some(t), _) => t,
        (None, None, Some(t)) => {
            eprintln!("Taking the file's modification time, {}, as the report's generation time (--generated-at overrides).", t.to_rfc3339());
            t.to_rfc3339()
        }
        (None, None, None) => bail!("a report read from standard input does not say when AWS generated it: give --generated-at"),
    };
    let query = ImportQuery { format: "aws-credential-report".into(), generated_at };
    let c = Client::authenticated(opts.server.as_deref())?;
    let kept: Kept = c.post_bytes(&format!("/v1/inventory/snapshots?{}", serde_urlencoded::to_string(&query)?), "text/csv", csv).await?;
    opts.output.print(&kept, |k| {
        let s = &k.summary;
        println!("Kept account {}'s report of {}.", s.account, s.generated_at.to_rfc3339());
        print_summary(s);
        println!("`stint inventory` shows every account's newest report and the trend.");
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn fetch(backend: &str, opts: &ClientOpts) -> Result<ExitCode> {
    let c = Client::authenticated(opts.server.as_deref())?;
    if opts.output == crate::output::Output::Text {
        eprintln!("Asking AWS, through backend {backend}, for its credential report (up to a minute while IAM generates it)...");
    }
    let f: Fetched = c.post("/v1/inventory/fetch", &FetchRequest { backend: backend.to_owned() }).await?;
    opts.output.print(&f, |f| {
        let s = &f.summary;
        if f.kept {
            println!("Kept account {}'s report of {}.", s.account, s.generated_at.to_rfc3339());
        } else {
            println!(
                "AWS's newest report for account {} ({}) is kept already; IAM makes a new one at most every 4 hours.",
                s.account,
                s.generated_at.to_rfc3339()
            );
        }
        print_summary(s);
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The CSV, and the generation time when the file says it: `aws iam get-credential-report`
/// prints `{"Content": base64, "ReportFormat": "text/csv", "GeneratedTime": …}`.
fn unwrap_cli_output(bytes: Vec<u8>) -> Result<(Vec<u8>, Option<String>)> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok((bytes, None));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        content: String,
        report_format: Option<String>,
        generated_time: Option<String>,
    }
    let a: Answer = serde_json::from_slice(&bytes).context("the file is JSON but not what `aws iam get-credential-report` prints")?;
    if a.report_format.as_deref().is_some_and(|f| f != "text/csv") {
        bail!("the report's format is {:?}; stint reads text/csv", a.report_format.unwrap_or_default());
    }
    let csv = base64::engine::general_purpose::STANDARD.decode(a.content.trim()).context("the report's Content is not base64")?;
    Ok((csv, a.generated_time))
}

/// `--since`: an RFC 3339 time, or an age (`90d`) back from now.
fn since_time(s: &str) -> Result<String> {
    if Timestamp::parse_rfc3339(s).is_some() {
        return Ok(s.to_owned());
    }
    let age: Ttl = s.parse().map_err(|_| anyhow::anyhow!("--since {s:?}: give an RFC 3339 time or an age like 90d"))?;
    Ok(Timestamp(stint_os::now().0 - age.as_secs() as i64).to_rfc3339())
}

fn print_summary(s: &Summary) {
    print_figures(&s.figures);
}

fn print_figures(f: &Figures) {
    println!(
        "  {} active access key{} (average age {:.0} days, oldest {} days), {} older than 90 days, {} unused for 90 days",
        f.active_keys,
        plural(f.active_keys),
        f.average_key_age_days,
        f.oldest_key_age_days,
        f.keys_older_than_90_days,
        f.keys_unused_90_days
    );
    println!(
        "  {} root key{}, {} user{} signing in without MFA",
        f.root_keys_active,
        plural(f.root_keys_active),
        f.users_without_mfa,
        plural(f.users_without_mfa)
    );
}

fn print_inventory(inv: &Inventory) {
    let t = &inv.totals;
    let Some(as_of) = t.as_of else {
        println!("No inventory yet. Import IAM's credential report:");
        println!("  aws iam generate-credential-report && aws iam get-credential-report > report.json");
        println!("  stint inventory import aws-credential-report report.json");
        return;
    };
    println!("Long-lived AWS credentials in {} account{}, as of {}:", t.accounts, plural(t.accounts), as_of.to_rfc3339());
    print_figures(&t.figures);
    for a in &inv.accounts {
        let s = &a.summary;
        println!("\nAccount {} (report of {}, kept by {})", s.account, s.generated_at.to_rfc3339(), a.imported_by);
        if a.keys.is_empty() {
            println!("  no active access keys");
        } else {
            println!("  {:<24} {:>3} {:>8}  {:<28} SERVICE", "OWNER", "KEY", "AGE", "LAST USED");
            for k in &a.keys {
                let owner = if k.root { "root (!)" } else { k.owner.as_str() };
                let age = k.age_days.map_or("-".to_owned(), |d| format!("{d}d"));
                let used = match k.last_used {
                    LastUsed::At(t) => format!("{} ({}d before)", &t.to_rfc3339()[..10], (s.generated_at.0 - t.0).max(0) / 86_400),
                    LastUsed::Never => "never".to_owned(),
                    LastUsed::NoInformation => "before tracking".to_owned(),
                };
                println!("  {owner:<24} {:>3} {age:>8}  {used:<28} {}", k.slot, k.last_used_service.as_deref().unwrap_or("-"));
            }
        }
        if !a.users_without_mfa.is_empty() {
            let names: Vec<&str> = a.users_without_mfa.iter().map(|n| if n == ROOT_USER { "root" } else { n.as_str() }).collect();
            println!("  without MFA: {}", names.join(", "));
        }
    }
    if inv.history.len() > 1 {
        println!("\nTrend (active keys per report):");
        for h in &inv.history {
            println!("  {}  {}  {:>4}", &h.generated_at.to_rfc3339()[..10], h.account, h.figures.active_keys);
        }
    }
    if t.figures.active_keys > 0 {
        println!("\nEach of these keys can be replaced: people by `stint login`, pipelines by `stint ci login`, services by `stint agent`.");
    }
}
