//! The `flood` scenario (issue 13): one address floods `POST /v1/token` with garbage CI
//! tokens as fast as its connections allow, while legitimate clients from another address
//! issue with `assume`. Three phases of `--duration` each, in one run and on one server:
//!
//! 1. the legitimate load alone (the baseline the ratio is taken against);
//! 2. the flood alone, so the store's growth is the flood's and nothing else's;
//! 3. the flood and the legitimate load together.
//!
//! The flood comes from 127.0.0.1 and the legitimate clients from 127.0.2.1: the whole of
//! 127/8 is loopback on Linux, and the per-address limit must tell them apart as it would
//! tell an attacker from a team.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use stint_core::store::Store;

use super::{report, MakeRequest, Report};

/// Where the flood comes from.
pub const FLOOD_ADDR: [u8; 4] = [127, 0, 0, 1];
/// Where the legitimate clients come from.
pub const LEGIT_ADDR: [u8; 4] = [127, 0, 2, 1];

/// The targets of issue 13.
pub const MAX_GROWTH_BYTES: i64 = 1_000_000;
pub const MIN_RATE_RATIO: f64 = 0.90;
pub const MAX_P99_MS: f64 = 10.0;

/// What the flood's requests got back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FloodCounts {
    pub requests: u64,
    /// `429 rate_limited`: stopped by the limiter before any work.
    pub rate_limited: u64,
    /// Another 4xx: the token was looked at, refused and audited (or counted in a fold).
    pub refused: u64,
    /// A 2xx: a garbage token was accepted (must stay 0).
    pub accepted: u64,
    /// A 5xx or no answer.
    pub failed: u64,
    pub rate: f64,
}

impl FloodCounts {
    /// Counts one answer (`None`: the request got none).
    pub fn count(&mut self, status: Option<u16>) {
        self.requests += 1;
        match status {
            Some(429) => self.rate_limited += 1,
            Some(400..=499) => self.refused += 1,
            Some(200..=299) => self.accepted += 1,
            _ => self.failed += 1,
        }
    }

    fn add(&mut self, o: &FloodCounts) {
        self.requests += o.requests;
        self.rate_limited += o.rate_limited;
        self.refused += o.refused;
        self.accepted += o.accepted;
        self.failed += o.failed;
    }
}

/// The store's size around the flood alone.
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    /// What was measured: the SQLite files, or the PostgreSQL audit table.
    pub measured: String,
    pub before_bytes: u64,
    pub after_bytes: u64,
    /// `after - before` (negative if the store shrank).
    pub grown_bytes: i64,
    /// Audit records appended during the flood, by event.
    pub records: BTreeMap<String, u64>,
}

impl Growth {
    pub fn new(measured: String, before: u64, after: u64, records: BTreeMap<String, u64>) -> Growth {
        Growth { measured, before_bytes: before, after_bytes: after, grown_bytes: grown(before, after), records }
    }
}

/// `after - before` as a signed number of bytes.
pub fn grown(before: u64, after: u64) -> i64 {
    i64::try_from(after).unwrap_or(i64::MAX).saturating_sub(i64::try_from(before).unwrap_or(i64::MAX))
}

/// Whether each target of issue 13 is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub growth_within_1_mb: bool,
    pub rate_at_least_90_percent: bool,
    pub p99_under_10_ms: bool,
}

impl Verdict {
    pub fn of(grown_bytes: i64, rate_ratio: f64, p99_ms: f64) -> Verdict {
        Verdict {
            growth_within_1_mb: grown_bytes <= MAX_GROWTH_BYTES,
            rate_at_least_90_percent: rate_ratio >= MIN_RATE_RATIO,
            p99_under_10_ms: p99_ms < MAX_P99_MS,
        }
    }
}

/// The issuance rate under flood over the rate alone (0 when there was none alone).
pub fn ratio(under_flood: f64, alone: f64) -> f64 {
    if alone > 0.0 {
        under_flood / alone
    } else {
        0.0
    }
}

#[derive(Serialize)]
pub struct FloodReport {
    pub connections: usize,
    pub seconds: u64,
    pub flood_alone: FloodCounts,
    pub flood_with_load: FloodCounts,
    pub growth: Growth,
    pub assume_alone: Report,
    pub assume_under_flood: Report,
    pub rate_ratio: f64,
    pub verdict: Verdict,
}

/// The run's parameters.
pub struct Setup<'a> {
    pub url: &'a str,
    pub store: &'a str,
    pub data: &'a Path,
    pub connections: usize,
    pub concurrency: usize,
    pub rate: Option<u64>,
    pub duration: Duration,
}

/// Runs the three phases; `legit` is the `assume` request.
pub async fn run(s: &Setup<'_>, legit: MakeRequest) -> Result<FloodReport> {
    let db = stint_store::open(s.store, s.data).await.map_err(crate::cmd::operator_error)?;
    let legit_http = client(LEGIT_ADDR, s.concurrency)?;

    eprintln!("bench: flood 1/3: assume alone…");
    let assume_alone = legit_load(&legit_http, legit.clone(), s).await;

    eprintln!("bench: flood 2/3: the flood alone ({} connections from 127.0.0.1)…", s.connections);
    let (before, head) = (size(s.store, s.data).await?, audit_head(&*db).await?);
    let flood_alone = flood_apart(s.url.to_owned(), s.connections, s.duration).await?;
    let after = size(s.store, s.data).await?;
    let growth = Growth::new(after.0, before.1, after.1, appended(&*db, head).await?);

    eprintln!("bench: flood 3/3: the flood and assume together…");
    let flooding = tokio::spawn(flood_apart(s.url.to_owned(), s.connections, s.duration));
    let assume_under_flood = legit_load(&legit_http, legit, s).await;
    let flood_with_load = flooding.await.context("the flood task failed")??;

    let rate_ratio = ratio(assume_under_flood.rate, assume_alone.rate);
    let verdict = Verdict::of(growth.grown_bytes, rate_ratio, assume_under_flood.p99_ms);
    Ok(FloodReport {
        connections: s.connections,
        seconds: s.duration.as_secs(),
        flood_alone,
        flood_with_load,
        growth,
        assume_alone,
        assume_under_flood,
        rate_ratio,
        verdict,
    })
}

/// A client whose connections all leave from `addr`.
fn client(addr: [u8; 4], connections: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().local_address(IpAddr::from(addr)).pool_max_idle_per_host(connections.max(1)).build()?)
}

async fn legit_load(http: &reqwest::Client, make: MakeRequest, s: &Setup<'_>) -> Report {
    let (lat, errors, elapsed) = match s.rate {
        Some(rate) => super::open_loop(http, make, rate, s.duration).await,
        None => super::closed_loop(http, make, s.concurrency, s.duration).await,
    };
    report("assume", lat, errors, elapsed)
}

/// A garbage CI token, different for every `i` (an attacker varies them so that no cache or
/// byte-for-byte comparison catches them): JWT-shaped, three base64url segments of noise.
pub fn garbage_token(i: u64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    // splitmix64: cheap, so the flood's own cost stays small.
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut noise = |n: usize| {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(n);
        B64.encode(out)
    };
    let (header, claims, signature) = (noise(24), noise(96), noise(64));
    format!("{header}.{claims}.{signature}")
}

/// The flood, on a thread and runtime of its own, as another machine would send it: its tasks
/// do not queue in front of the legitimate clients' in the bench's runtime (they still share
/// the machine's cores with the server and the legitimate clients).
async fn flood_apart(url: String, connections: usize, duration: Duration) -> Result<FloodCounts> {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let http = client(FLOOD_ADDR, connections)?;
            Ok(flood(&http, &url, connections, duration).await)
        })
    })
    .await?
}

/// `connections` senders, each sending its next garbage token as soon as the last answer
/// arrives, for `duration`.
async fn flood(http: &reqwest::Client, url: &str, connections: usize, duration: Duration) -> FloodCounts {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for worker in 0..connections.max(1) {
        let (http, url) = (http.clone(), format!("{url}/v1/token"));
        tasks.push(tokio::spawn(async move {
            let (mut counts, mut i) = (FloodCounts::default(), worker as u64);
            while Instant::now() < deadline {
                let form = super::ci::exchange_form(&garbage_token(i));
                let status = match http.post(&url).form(&form).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        Some(status)
                    }
                    Err(_) => None,
                };
                counts.count(status);
                i += connections as u64;
            }
            counts
        }));
    }
    let mut total = FloodCounts::default();
    for t in tasks {
        if let Ok(c) = t.await {
            total.add(&c);
        }
    }
    total.rate = total.requests as f64 / start.elapsed().as_secs_f64();
    total
}

/// What the store takes on disk now, and how it was measured.
async fn size(store: &str, data: &Path) -> Result<(String, u64)> {
    if store == "sqlite" {
        let path = data.join("stint.db");
        return tokio::task::spawn_blocking(move || sqlite_size(&path)).await?;
    }
    let c = super::pg::connect(store).await?;
    let row = c.query_one("SELECT pg_total_relation_size('audit')::bigint", &[]).await.context("measuring the audit table")?;
    let bytes: i64 = row.get(0);
    Ok(("PostgreSQL: pg_total_relation_size('audit') (table, indexes, TOAST)".to_owned(), bytes.max(0) as u64))
}

/// The database file and its WAL, after a TRUNCATE checkpoint has moved every committed page
/// into the database file (so a WAL that only cycles is not counted as growth). The server
/// keeps running: if the checkpoint cannot finish, the WAL's size is counted as it is.
fn sqlite_size(path: &Path) -> Result<(String, u64)> {
    let conn = rusqlite::Connection::open(path).context("opening the SQLite store to measure it")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_file_name("stint.db-wal");
    let how = if busy == 0 { "after a TRUNCATE checkpoint" } else { "the checkpoint was busy: WAL counted as is" };
    Ok((format!("SQLite: stint.db + stint.db-wal, {how}"), len(path) + len(&wal)))
}

async fn audit_head(db: &dyn Store) -> Result<u64> {
    Ok(db.audit_head().await.map_err(crate::cmd::operator_error)?.map_or(0, |(seq, _)| seq))
}

/// Records appended after `seq`, by event.
async fn appended(db: &dyn Store, mut seq: u64) -> Result<BTreeMap<String, u64>> {
    let mut by_event = BTreeMap::new();
    loop {
        let page = db.audit_after(seq, 1000).await.map_err(crate::cmd::operator_error)?;
        let Some(last) = page.last() else { return Ok(by_event) };
        seq = last.seq;
        for r in &page {
            *by_event.entry(r.event.clone()).or_insert(0) += 1;
        }
    }
}

/// The text report.
pub fn print(f: &FloodReport) {
    let counts = |c: &FloodCounts| {
        format!(
            "{} requests ({:.0}/s): {} rate limited (429), {} refused (other 4xx), {} accepted, {} failed",
            c.requests, c.rate, c.rate_limited, c.refused, c.accepted, c.failed
        )
    };
    let met = |ok: bool| if ok { "met" } else { "NOT MET" };
    let g = &f.growth;
    println!("flood: {} connections from 127.0.0.1 to /v1/token, {} s per phase; legitimate clients from 127.0.2.1", f.connections, f.seconds);
    println!("  flood alone:          {}", counts(&f.flood_alone));
    println!("  flood with assume:    {}", counts(&f.flood_with_load));
    println!("  store growth (flood alone): {} bytes ({} -> {}; {})", g.grown_bytes, g.before_bytes, g.after_bytes, g.measured);
    println!("  audit records the flood appended: {}", json!(g.records));
    let (a, u) = (&f.assume_alone, &f.assume_under_flood);
    println!("  assume alone:         {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors", a.rate, a.p50_ms, a.p99_ms, a.errors);
    println!("  assume under flood:   {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} errors", u.rate, u.p50_ms, u.p99_ms, u.errors);
    println!("  issuance under flood / alone: {:.1} %", f.rate_ratio * 100.0);
    let v = &f.verdict;
    println!(
        "  targets: growth <= 1 MB {}; issuance >= 90 % {}; p99 < 10 ms {}",
        met(v.growth_within_1_mb),
        met(v.rate_at_least_90_percent),
        met(v.p99_under_10_ms)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_kind() {
        let mut c = FloodCounts::default();
        for s in [Some(429), Some(401), Some(400), Some(200), Some(503), None, Some(429)] {
            c.count(s);
        }
        assert_eq!((c.requests, c.rate_limited, c.refused, c.accepted, c.failed), (7, 2, 2, 1, 2));
        let mut total = FloodCounts::default();
        total.add(&c);
        total.add(&c);
        assert_eq!((total.requests, total.rate_limited, total.failed), (14, 4, 4));
    }

    #[test]
    fn growth_is_signed_and_saturates() {
        assert_eq!(grown(1000, 5096), 4096);
        assert_eq!(grown(5096, 1000), -4096, "a store that shrank grew by a negative amount");
        assert_eq!(grown(0, u64::MAX), i64::MAX);
        let g = Growth::new("x".into(), 10, 25, BTreeMap::new());
        assert_eq!((g.before_bytes, g.after_bytes, g.grown_bytes), (10, 25, 15));
    }

    #[test]
    fn targets_are_the_issues() {
        assert_eq!(Verdict::of(1_000_000, 0.90, 9.99), Verdict { growth_within_1_mb: true, rate_at_least_90_percent: true, p99_under_10_ms: true });
        assert_eq!(Verdict::of(1_000_001, 0.899, 10.0), Verdict { growth_within_1_mb: false, rate_at_least_90_percent: false, p99_under_10_ms: false });
        assert_eq!(ratio(900.0, 1000.0), 0.9);
        assert_eq!(ratio(5.0, 0.0), 0.0, "no baseline: no ratio");
    }

    #[test]
    fn garbage_tokens_are_jwt_shaped_and_all_different() {
        let tokens: std::collections::HashSet<String> = (0..10_000).map(garbage_token).collect();
        assert_eq!(tokens.len(), 10_000);
        let t = garbage_token(7);
        assert_eq!(t.split('.').count(), 3);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{t}");
        assert_eq!(t, garbage_token(7), "reproducible");
    }
}
