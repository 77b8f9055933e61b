//! `stint report`: before and after, on one page (`docs/report.md`). The server builds the
//! report (`GET /v1/report`); this prints it as text, JSON, or the self-contained HTML page.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use stint_api::report::{date, date_time, duration, review_as_run, source_label, ReportQuery};
use stint_core::inventory::Totals;
use stint_core::report::{Eligible, Held, Report};
use stint_core::{Timestamp, Ttl};

use crate::client::Client;
use crate::output::{plural, table, Output};
use crate::ClientOpts;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    stint report                                  the last 30 days, as text\n  \
    stint report --since 90d --format html > report.html\n  \
    stint report --since 2026-07-01T00:00:00Z --as-of 2026-09-30 --format json\n\n\
    The HTML page is one file (inline charts, no script) that prints on A4 or Letter.\n\
    Which SOC 2 criteria each part supports: docs/soc2.md.")]
pub struct ReportArgs {
    /// The period's start: an RFC 3339 time, or an age like 30d or 90d before its end
    #[arg(long, default_value = "30d")]
    since: String,
    /// The period's end: an RFC 3339 time or a date (the end of that day, UTC); default now
    #[arg(long)]
    as_of: Option<String>,
    /// text, json or html (default: text, or json with --output json)
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[command(flatten)]
    opts: ClientOpts,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Html,
}

pub async fn run(args: ReportArgs) -> Result<ExitCode> {
    let format = args.format.unwrap_or(if args.opts.output == Output::Json { Format::Json } else { Format::Text });
    let as_of = match args.as_of.as_deref() {
        None => stint_os::now(),
        Some(t) => Timestamp::parse_end(t).ok_or_else(|| anyhow::anyhow!("--as-of {t:?}: give an RFC 3339 time or a date like 2026-09-30"))?,
    };
    let since = match Timestamp::parse_rfc3339(&args.since) {
        Some(t) => t,
        None => {
            let age: Ttl = args.since.parse().map_err(|_| anyhow::anyhow!("--since {:?}: give an RFC 3339 time or an age like 30d", args.since))?;
            Timestamp(as_of.0.saturating_sub(age.as_secs() as i64))
        }
    };
    if since >= as_of {
        bail!("--since must come before --as-of ({} is not before {})", since.to_rfc3339(), as_of.to_rfc3339());
    }
    let c = Client::authenticated(args.opts.server.as_deref())?;
    let query = ReportQuery { since: Some(since.to_rfc3339()), as_of: Some(as_of.to_rfc3339()), format: None };
    let report: Report = c.get(&format!("/v1/report?{}", serde_urlencoded::to_string(&query)?)).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Html => print!("{}", stint_api::report::html(&report)),
        Format::Text => print_report(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report) {
    println!("Credentials, before and after stint: {} – {}", date_time(r.period.since), date_time(r.period.as_of));
    if r.partial {
        println!("(partial: the period holds more rows than one report reads; the figures are lower bounds)");
    }
    print_before(r);
    print_after(r);
    print_review(r);
}

fn print_before(r: &Report) {
    let b = &r.before;
    println!("\nBefore: long-lived AWS access keys");
    let Some(base) = &b.baseline else {
        println!("  no inventory snapshot yet: run `stint inventory import aws-credential-report FILE` or `stint inventory fetch --backend NAME`");
        return;
    };
    let row = |label: &str, t: &Totals| {
        let f = &t.figures;
        vec![
            label.to_owned(),
            t.as_of.map_or_else(String::new, date),
            t.accounts.to_string(),
            f.active_keys.to_string(),
            format!("{:.0} d", f.average_key_age_days),
            f.keys_older_than_90_days.to_string(),
            f.keys_unused_90_days.to_string(),
            f.root_keys_active.to_string(),
            f.users_without_mfa.to_string(),
        ]
    };
    table(
        &["", "AS OF", "ACCOUNTS", "ACTIVE KEYS", "AVG AGE", ">90 D", "UNUSED 90 D", "ROOT KEYS", "NO MFA"],
        vec![row("first snapshot", base), row("now", &b.current)],
    );
    let trend: Vec<String> = b.trend.iter().map(|t| t.figures.active_keys.to_string()).collect();
    println!("  active keys after each snapshot: {}", trend.join(" → "));
}

fn print_after(r: &Report) {
    let a = &r.after;
    println!("\nAfter: short-lived credentials from stint");
    let sources: Vec<String> = a.active.by_source.iter().map(|(s, n)| format!("{} {n}", source_label(*s))).collect();
    println!("  live now: {} ({})", a.active.total, sources.join(", "));
    if !a.active.by_backend.is_empty() {
        let backends: Vec<String> = a.active.by_backend.iter().map(|(b, n)| format!("{b} {n}")).collect();
        println!("  live now by backend: {}", backends.join(", "));
    }
    let s = &a.sessions;
    if s.started > 0 {
        println!(
            "  sign-in sessions: {} started, average {} (median {}), {} ended early by a logout or a revocation",
            s.started,
            duration(s.average_secs),
            duration(s.median_secs as f64),
            s.ended_early
        );
    }
    let l = &a.lifetimes;
    if l.count == 0 {
        println!("  issued in the period: none");
    } else {
        println!(
            "  issued in the period: {} credential{}, average lifetime {} (median {}, 90th percentile {}, longest {})",
            l.count,
            plural(l.count),
            duration(l.average_secs),
            duration(l.median_secs as f64),
            duration(l.p90_secs as f64),
            duration(l.longest_secs as f64)
        );
        let buckets: Vec<String> = l.buckets.iter().map(|b| format!("{} {}", b.label, b.count)).collect();
        println!("  lifetimes: {}", buckets.join(" · "));
        table(&["ROLE", "SOURCE", "ISSUED"], a.issued.iter().map(|i| vec![i.role.clone(), source_label(i.source).to_owned(), i.count.to_string()]).collect());
    }
    println!("\n  Failed authentications: {}", a.failed_total);
    table(
        &["METHOD", "PROVIDER", "REASON", "COUNT", "SOURCES", "LAST"],
        a.failed_authentications
            .iter()
            .map(|f| vec![f.method.clone(), f.provider.clone(), f.reason.clone(), f.count.to_string(), f.sources.to_string(), date_time(f.last_at)])
            .collect(),
    );
    println!("\n  Break-glass: {}", if a.break_glass.is_empty() { "not used" } else { "" });
    table(
        &["WHEN", "PERSON", "ROLE", "REASON", "CREDENTIALS"],
        a.break_glass.iter().map(|b| vec![date_time(b.at), b.person.clone(), b.role.clone(), b.reason.clone(), b.credentials.to_string()]).collect(),
    );
    println!("\n  Approved requests: {}", a.approvals.len());
    table(
        &["GRANTED", "REQUESTER", "ROLE", "APPROVED BY", "REASON", "CREDENTIALS"],
        a.approvals
            .iter()
            .map(|x| vec![date_time(x.granted_at), x.requester.clone(), x.role.clone(), x.approvers.join(", "), x.reason.clone(), x.credentials.to_string()])
            .collect(),
    );
    println!("\n  Offboarding: {} person{} disabled", a.offboarding.len(), if a.offboarding.len() == 1 { "" } else { "s" });
    table(
        &["PERSON", "DISABLED", "BY", "LIVE", "TIME TO REVOKE"],
        a.offboarding
            .iter()
            .map(|x| {
                vec![
                    x.person.clone(),
                    date_time(x.disabled_at),
                    x.by.clone(),
                    x.credentials_live.to_string(),
                    x.seconds_to_revoke.map_or_else(|| "pending".to_owned(), |s| duration(s as f64)),
                ]
            })
            .collect(),
    );
}

fn could(e: &Eligible) -> String {
    let mut parts: Vec<String> = e.standing.iter().map(ToString::to_string).collect();
    parts.extend(e.on_call.iter().map(|r| format!("{r} (on call)")));
    parts.extend(e.on_request.iter().map(|r| format!("{r} (on approval)")));
    parts.extend(e.break_glass.iter().map(|r| format!("{r} (break-glass)")));
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

fn held(h: &[Held]) -> String {
    if h.is_empty() {
        return "-".to_owned();
    }
    h.iter().map(|x| format!("{}×{}", x.role, x.credentials)).collect::<Vec<_>>().join(", ")
}

fn print_review(r: &Report) {
    let v = &r.review;
    println!("\nAccess review (could assume; held in the period)");
    println!("{}", review_as_run(r));
    table(
        &["PERSON", "STATUS", "GROUPS", "ENDS", "COULD ASSUME", "HELD"],
        v.people
            .iter()
            .map(|p| {
                let ends = match (&p.expires_at, &p.sponsor) {
                    (Some(t), Some(s)) => format!("{} ({s})", date(*t)),
                    (Some(t), None) => date(*t),
                    _ => String::new(),
                };
                vec![p.name.clone(), p.status.clone(), p.groups.join(","), ends, could(&p.could), held(&p.held)]
            })
            .collect(),
    );
    if !v.workloads.is_empty() {
        println!();
        table(
            &["WORKLOAD", "STATUS", "COULD ASSUME", "HELD"],
            v.workloads
                .iter()
                .map(|w| {
                    let roles: Vec<String> = w.could.iter().map(ToString::to_string).collect();
                    vec![w.name.clone(), if w.disabled { "disabled" } else { "active" }.to_owned(), roles.join(", "), held(&w.held)]
                })
                .collect(),
        );
    }
    for p in &v.pipelines {
        println!("\n  CI role {}:", p.role);
        for s in &p.trust {
            println!("    {s}");
        }
        if p.held_by.is_empty() {
            println!("    held by no pipeline in the period");
        }
        for h in &p.held_by {
            println!("    held by {} ×{}", h.subject, h.credentials);
        }
    }
}
