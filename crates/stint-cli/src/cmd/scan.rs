//! `stint scan PATH…`: the long-lived credentials in a source tree, and what to use instead
//! (`docs/scan.md`). The rules are `stint_core::scan`'s; this walks the tree (honouring
//! `.gitignore`, on every core), reads the files and reports.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::json;
use stint_core::scan::{scan, FileKind, Finding, Level, Rule};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    stint scan .\n  \
    stint scan --output sarif . > stint.sarif     # GitHub code scanning, other SARIF viewers\n\n\
    Exit status: 0 nothing found, 1 something found, 2 the scan could not run.\n\
    Files .gitignore and .ignore leave out are not read (--no-ignore reads them), nor binary files, nor .git.")]
pub struct ScanArgs {
    /// Files and directories to scan (default: the current directory)
    paths: Vec<PathBuf>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Also read what .gitignore, .ignore and git's excludes leave out
    #[arg(long)]
    no_ignore: bool,
    /// No progress on the terminal
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    /// SARIF 2.1.0
    Sarif,
}

/// A finding and the file it is in, as shown (relative to where the scan started).
#[derive(Serialize)]
pub struct Found {
    pub path: String,
    #[serde(flatten)]
    pub finding: Finding,
}

/// What a scan read.
#[derive(Default, Serialize)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
    /// Files not read: binary, or unreadable (named on standard error).
    pub skipped: u64,
}

pub fn run(args: ScanArgs) -> ExitCode {
    match scan_and_report(args) {
        Ok(true) => ExitCode::from(1),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn scan_and_report(args: ScanArgs) -> Result<bool> {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths };
    for p in &paths {
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
    }
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let (found, totals) = scan_tree(&paths, !args.no_ignore, show_progress)?;
    match args.output {
        Format::Text => print_text(&found, &totals),
        Format::Json => println!("{}", serde_json::to_string_pretty(&json!({ "findings": found.iter().map(json_of).collect::<Vec<_>>(), "scanned": totals }))?),
        Format::Sarif => println!("{}", serde_json::to_string_pretty(&sarif(&found))?),
    }
    Ok(!found.is_empty())
}

/// Walks `paths` on every core and scans each file; findings in path and line order.
pub fn scan_tree(paths: &[PathBuf], honour_ignores: bool, show_progress: bool) -> Result<(Vec<Found>, Totals)> {
    walk_with(paths, honour_ignores, show_progress, &|path, data| scan(FileKind::of(path), data))
}

/// Walks `paths` as [`scan_tree`] does, calling `matcher` on each file's path and bytes (the
/// benchmark's floor passes one that finds nothing).
pub fn walk_with(
    paths: &[PathBuf],
    honour_ignores: bool,
    show_progress: bool,
    matcher: &(dyn Fn(&str, &[u8]) -> Vec<Finding> + Sync),
) -> Result<(Vec<Found>, Totals)> {
    let mut walk = ignore::WalkBuilder::new(&paths[0]);
    for p in &paths[1..] {
        walk.add(p);
    }
    walk.hidden(false)
        .git_ignore(honour_ignores)
        .git_exclude(honour_ignores)
        .git_global(honour_ignores)
        .ignore(honour_ignores)
        .parents(honour_ignores)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .threads(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let found = Mutex::new(Vec::new());
    let (files, bytes, skipped) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    eprint!("\rscanning: {} files, {} MB", files.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed) >> 20);
                    std::thread::park_timeout(Duration::from_millis(200));
                }
                eprint!("\r\x1b[K");
            });
        }
        walk.build_parallel().run(|| {
            Box::new(|entry| {
                let Ok(entry) = entry else {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    return ignore::WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return ignore::WalkState::Continue;
                }
                let path = entry.path();
                match std::fs::read(path) {
                    Ok(data) => {
                        files.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        let shown = shown_path(path);
                        let here = matcher(&shown, &data);
                        if !here.is_empty() {
                            let mut all = found.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            all.extend(here.into_iter().map(|finding| Found { path: shown.clone(), finding }));
                        }
                    }
                    Err(e) => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        eprintln!("\rcannot read {}: {e}", path.display());
                    }
                }
                ignore::WalkState::Continue
            })
        });
        done.store(true, Ordering::Relaxed);
    });
    let mut found = found.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    found.sort_by(|a, b| (&a.path, a.finding.line, a.finding.column, a.finding.rule).cmp(&(&b.path, b.finding.line, b.finding.column, b.finding.rule)));
    Ok((found, Totals { files: files.into_inner(), bytes: bytes.into_inner(), skipped: skipped.into_inner() }))
}

/// The path as shown: as walked, without a leading `./`, with `/` between components.
fn shown_path(path: &Path) -> String {
    let p = path.strip_prefix(".").unwrap_or(path);
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn print_text(found: &[Found], totals: &Totals) {
    for f in found {
        let r = f.finding.rule;
        let level = match r.level() {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        println!("{}:{}:{}: {level}: {} ({}): {}", f.path, f.finding.line, f.finding.column, r.description(), r.id(), f.finding.shown);
        println!("    fix: {}", r.hint());
    }
    let files: std::collections::BTreeSet<&str> = found.iter().map(|f| f.path.as_str()).collect();
    eprintln!(
        "{} finding{} in {} file{}; scanned {} files, {:.1} MB{}.",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        totals.files,
        totals.bytes as f64 / 1e6,
        if totals.skipped > 0 { format!(", {} not read", totals.skipped) } else { String::new() }
    );
}

fn json_of(f: &Found) -> serde_json::Value {
    let r = f.finding.rule;
    json!({
        "path": f.path, "line": f.finding.line, "column": f.finding.column, "rule": r.id(), "level": r.level(),
        "description": r.description(), "shown": f.finding.shown, "hint": r.hint(),
    })
}

/// What a URI reference in SARIF may carry unescaped besides letters and digits.
const URI_PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Where a finding is, as SARIF locates it: relative to where the scan started (`%SRCROOT%`),
/// or a `file://` URI when the path given was absolute.
fn artifact(path: &str) -> serde_json::Value {
    let uri = utf8_percent_encode(path, URI_PATH).to_string();
    if path.starts_with('/') {
        json!({ "uri": format!("file://{uri}") })
    } else {
        json!({ "uri": uri, "uriBaseId": "%SRCROOT%" })
    }
}

/// A SARIF 2.1.0 log of one run (OASIS SARIF 2.1.0, §3.13 onward): the rules, then a result
/// per finding, located relative to where the scan started (`%SRCROOT%`).
fn sarif(found: &[Found]) -> serde_json::Value {
    let level = |l: Level| match l {
        Level::Error => "error",
        Level::Warning => "warning",
    };
    let rules: Vec<_> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "shortDescription": { "text": r.description() },
                "help": { "text": r.hint() },
                "defaultConfiguration": { "level": level(r.level()) },
            })
        })
        .collect();
    let results: Vec<_> = found
        .iter()
        .map(|f| {
            let r = f.finding.rule;
            json!({
                "ruleId": r.id(),
                "ruleIndex": Rule::ALL.iter().position(|x| *x == r).unwrap_or(0),
                "level": level(r.level()),
                "message": { "text": format!("{}: {}. Fix: {}", r.description(), f.finding.shown, r.hint()) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": artifact(&f.path),
                        "region": { "startLine": f.finding.line, "startColumn": f.finding.column },
                    }
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "stint", "version": env!("CARGO_PKG_VERSION"), "rules": rules } },
            "results": results,
        }],
    })
}
