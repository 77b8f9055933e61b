//! The replicas scenario: the benchmark's server (replica A) and two more replicas of it (B
//! and C) on the same PostgreSQL, master key and public URL. It measures how long a change
//! committed on A takes to be in force on B and C:
//!
//! - a revocation: a person is disabled on A, then their token is introspected on B and C, both
//!   at once and back to back, until both answer `active: false`;
//! - a key rotation: keys are rotated on A, then B's and C's `/v1/jwks` are read until both
//!   publish the new key.
//!
//! Each is measured twice: with the replicas listening for notices, and with B and C
//! restarted with `danger_ignore_notifications` and a 1 s `reread_interval`, so only the
//! fallback carries the rotation (docs/replicas.md).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::{call, report, Report, Spawned, BENCH_LIMITS};

/// The fallback interval of the run without notices.
const REREAD_SECS: u64 = 1;

/// Give up on a trial after this: a replica that never sees a change is a failed run.
const TRIAL_DEADLINE: Duration = Duration::from_secs(30);

/// Between two reads of a key set (a rotation without notices takes up to the re-read
/// interval; reading flat out would only load the machine).
const JWKS_POLL: Duration = Duration::from_millis(2);

/// One mode's figures: a report per kind of change, latency from sending the change on A to
/// both B and C having it in force.
#[derive(Serialize)]
pub struct ReplicasRun {
    pub mode: &'static str,
    pub revocation: Report,
    pub rotation: Report,
}

pub struct Setup<'a> {
    pub url: &'a str,
    pub store: &'a str,
    pub data: &'a Path,
    pub admin: &'a str,
    pub revocations: usize,
    pub rotations: usize,
}

pub async fn run(http: &reqwest::Client, s: &Setup<'_>) -> Result<Vec<ReplicasRun>> {
    if !stint_core::spec::is_postgres(s.store) {
        bail!("the replicas scenario needs --store postgres://…: replicas share a PostgreSQL database");
    }
    let mut runs = Vec::new();
    for (mode, extra) in [
        ("notices", String::new()),
        ("reread 1s, notices ignored", format!("[postgres]\nreread_interval = \"{REREAD_SECS}s\"\ndanger_ignore_notifications = true\n")),
    ] {
        eprintln!("bench: replicas ({mode})…");
        let b = spawn_replica(http, s, "replica-b", &extra).await?;
        let c = spawn_replica(http, s, "replica-c", &extra).await?;
        let others = [b.url.clone(), c.url.clone()];
        let revocation = revocations(http, s, &others, mode).await?;
        let rotation = rotations(http, s, &others).await?;
        runs.push(ReplicasRun { mode, revocation, rotation });
    }
    Ok(runs)
}

/// Another replica of the benchmark's server, answering once it is ready.
async fn spawn_replica(http: &reqwest::Client, s: &Setup<'_>, name: &str, extra: &str) -> Result<Spawned> {
    let data = s.data.join(name);
    std::fs::create_dir_all(&data)?;
    let config = data.join("bench.toml");
    // The same master key (A generated it in its data directory) and the same issuer.
    let key = s.data.join("master.key");
    std::fs::write(&config, format!("master_key_file = {:?}\npublic_url = {:?}\n{extra}\n{BENCH_LIMITS}", key.display().to_string(), s.url))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = std::process::Command::new(std::env::current_exe()?)
        .arg("server")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--store", s.store])
        .env("STINT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("cannot start a replica")?;
    let spawned = Spawned { child, url: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    loop {
        if http.get(format!("{}/readyz", spawned.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(spawned);
        }
        if started.elapsed() > TRIAL_DEADLINE {
            bail!("replica {name} did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// People written straight into the store, one live session each (no password work).
async fn people(s: &Setup<'_>, prefix: &str, n: usize) -> Result<Vec<(String, String)>> {
    use stint_core::store::{Change, Mutation};
    let db = stint_store::open(s.store, s.data).await.map_err(crate::cmd::operator_error)?;
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut change = Change::default();
        for i in chunk {
            let name = format!("{prefix}{i}");
            let user = super::seeded_user(&name)?;
            let (session, bearer) = super::seeded_session(&user);
            change.mutations.push(Mutation::InsertUser(user));
            change.mutations.push(Mutation::InsertSession(session));
            out.push((name, bearer));
        }
        db.apply(change).await?;
    }
    Ok(out)
}

async fn active(http: &reqwest::Client, replica: &str, token: &str) -> Result<bool> {
    let v: Value = http.post(format!("{replica}/v1/introspect")).form(&[("token", token)]).send().await?.error_for_status()?.json().await?;
    Ok(v["active"] == true)
}

/// Introspects `token` on `replica` back to back until it is refused.
async fn until_refused(http: &reqwest::Client, replica: &str, token: &str) -> Result<()> {
    let started = Instant::now();
    while active(http, replica, token).await? {
        if started.elapsed() > TRIAL_DEADLINE {
            bail!("{replica} still accepts a revoked token");
        }
    }
    Ok(())
}

async fn revocations(http: &reqwest::Client, s: &Setup<'_>, others: &[String; 2], mode: &str) -> Result<Report> {
    let prefix = if mode == "notices" { "revoked" } else { "revokedx" };
    let people = people(s, prefix, s.revocations).await?;
    let mut lat = Vec::with_capacity(people.len());
    let started = Instant::now();
    for (name, session) in &people {
        let issued = call(http, format!("{}/v1/assume", s.url), Some(session), json!({ "role": "readonly", "ttl": "5m" })).await?;
        let token = issued["token"].as_str().context("no token")?;
        for r in others {
            if !active(http, r, token).await? {
                bail!("{r} refuses a live token");
            }
        }
        let t = Instant::now();
        call(http, format!("{}/v1/users/{name}/disable", s.url), Some(s.admin), json!({})).await?;
        let (b, c) = tokio::join!(until_refused(http, &others[0], token), until_refused(http, &others[1], token));
        b?;
        c?;
        lat.push(t.elapsed());
    }
    Ok(report("revocation", lat, 0, started.elapsed()))
}

async fn published(http: &reqwest::Client, replica: &str, kid: &str) -> Result<bool> {
    let v: Value = http.get(format!("{replica}/v1/jwks")).send().await?.error_for_status()?.json().await?;
    Ok(v["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k["kid"] == kid)))
}

async fn until_published(http: &reqwest::Client, replica: &str, kid: &str) -> Result<()> {
    let started = Instant::now();
    while !published(http, replica, kid).await? {
        if started.elapsed() > TRIAL_DEADLINE {
            bail!("{replica} never published the rotated key");
        }
        tokio::time::sleep(JWKS_POLL).await;
    }
    Ok(())
}

async fn rotations(http: &reqwest::Client, s: &Setup<'_>, others: &[String; 2]) -> Result<Report> {
    let mut lat = Vec::with_capacity(s.rotations);
    let started = Instant::now();
    for _ in 0..s.rotations {
        let t = Instant::now();
        let rotated = call(http, format!("{}/v1/keys/rotate", s.url), Some(s.admin), json!({})).await?;
        let kid: Arc<str> = rotated["kid"].as_str().context("no kid")?.into();
        let (b, c) = tokio::join!(until_published(http, &others[0], &kid), until_published(http, &others[1], &kid));
        b?;
        c?;
        lat.push(t.elapsed());
    }
    Ok(report("rotation", lat, 0, started.elapsed()))
}

pub fn print(runs: &[ReplicasRun]) {
    for r in runs {
        for (what, x) in [("revocation", &r.revocation), ("key rotation", &r.rotation)] {
            println!(
                "replicas ({}): {what} on A in force on B and C: {} trials, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r.mode, x.requests, x.p50_ms, x.p99_ms, x.max_ms
            );
        }
    }
}
