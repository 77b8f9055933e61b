//! The agent scenario: `stint agent` serving a cached AWS credential on its container
//! credentials endpoint, loaded with `wrk` (a C load generator, so the client's cost does not
//! hide the agent's), and the agent's resident memory afterwards.
//!
//! The AWS credential comes from an AWS API at `--aws-endpoint` (the moto emulator:
//! `.venv/bin/moto_server -p 5000`); the bench server gets a backend there for role `readonly`
//! ([`super::aws::config`]).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use super::call;

#[derive(Serialize)]
pub struct AgentReport {
    pub connections: usize,
    pub requests: u64,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub non_2xx: u64,
    /// Before the load, with the credential cached.
    pub idle_rss_mib: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Adds workload `bench-agent`, starts `stint agent` for it, waits for its first credential,
/// then runs `wrk` against the endpoint for `duration` over `connections`.
pub async fn run(http: &reqwest::Client, url: &str, admin: &str, data: &Path, duration: Duration, connections: usize) -> Result<AgentReport> {
    if Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        bail!("the agent scenario needs wrk (apt-get install wrk)");
    }
    call(http, format!("{url}/v1/workloads"), Some(admin), json!({ "name": "bench-agent", "roles": ["readonly"] })).await?;
    let t = call(http, format!("{url}/v1/workloads/bench-agent/join-tokens"), Some(admin), json!({})).await?;
    let dir = data.join("agent");
    std::fs::create_dir_all(&dir)?;
    let join = dir.join("join-token");
    std::fs::write(&join, t["join_token"].as_str().unwrap_or_default())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let state = dir.join("state");
    let agent = Killed(
        Command::new(std::env::current_exe()?)
            .args(["agent", "--server", url, "--workload", "bench-agent", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--join-token-file")
            .arg(&join)
            .arg("--state-dir")
            .arg(&state)
            .env("STINT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start stint agent")?,
    );
    let endpoint = format!("http://127.0.0.1:{port}/v1/credentials");
    let deadline = Instant::now() + Duration::from_secs(30);
    let auth = loop {
        if let Ok(a) = std::fs::read_to_string(state.join("auth-token")) {
            if http.get(&endpoint).header("Authorization", a.trim()).send().await.is_ok_and(|r| r.status().is_success()) {
                break a.trim().to_owned();
            }
        }
        if Instant::now() > deadline {
            bail!("the agent served no credential within 30 s (is moto running at --aws-endpoint?)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let idle_rss_mib = rss(agent.0.id())?.0;
    let out = Command::new("wrk")
        .args(["--latency", "-t", "1", "-c", &connections.to_string(), "-d", &format!("{}s", duration.as_secs().max(1))])
        .args(["-H", &format!("Authorization: {auth}"), &endpoint])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (rss_mib, peak_rss_mib) = rss(agent.0.id())?;
    let report = parse_wrk(&text, connections, rss_mib, peak_rss_mib).with_context(|| format!("reading wrk's report:\n{text}"))?;
    Ok(AgentReport { idle_rss_mib, ..report })
}

/// The resident and peak resident memory of process `pid`, MiB.
fn rss(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("the agent's memory needs Linux /proc")?;
    let kib =
        |key: &str| status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0))
}

/// Milliseconds from one of wrk's durations (`812.00us`, `1.20ms`, `2.01s`).
fn ms(v: &str) -> Option<f64> {
    let (num, unit) = v.find(|c: char| c.is_ascii_alphabetic()).map(|i| v.split_at(i))?;
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(text: &str, connections: usize, rss_mib: f64, peak_rss_mib: f64) -> Option<AgentReport> {
    let field =
        |prefix: &str, nth: usize| text.lines().map(str::trim).find(|l| l.starts_with(prefix)).and_then(|l| l.split_whitespace().nth(nth).map(str::to_owned));
    let requests = text.lines().find(|l| l.contains("requests in")).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok())?;
    Some(AgentReport {
        connections,
        requests,
        rate: field("Requests/sec:", 1)?.parse().ok()?,
        p50_ms: ms(&field("50%", 1)?)?,
        p99_ms: ms(&field("99%", 1)?)?,
        max_ms: ms(&field("Latency", 3)?)?,
        non_2xx: field("Non-2xx", 4).and_then(|n| n.parse().ok()).unwrap_or(0),
        idle_rss_mib: 0.0,
        rss_mib,
        peak_rss_mib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk 4.1's report, as it prints it.
    const WRK: &str = "Running 10s test @ http://127.0.0.1:9911/v1/credentials\n  1 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   412.33us  120.10us   5.21ms   90.00%\n    Req/Sec    38.10k     1.20k   40.00k    70.00%\n  Latency Distribution\n     50%  398.00us\n     75%  450.00us\n     90%  520.00us\n     99%  810.00us\n  381000 requests in 10.00s, 120.00MB read\nRequests/sec:  38100.00\nTransfer/sec:     12.00MB\n";

    #[test]
    fn wrks_report_is_read() {
        let r = parse_wrk(WRK, 16, 7.5, 8.0).unwrap();
        assert_eq!((r.requests, r.rate, r.non_2xx), (381_000, 38_100.0, 0));
        assert!((r.p50_ms - 0.398).abs() < 1e-9 && (r.p99_ms - 0.81).abs() < 1e-9 && (r.max_ms - 5.21).abs() < 1e-9);
        let with_errors = WRK.replace("Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec");
        assert_eq!(parse_wrk(&with_errors, 16, 0.0, 0.0).unwrap().non_2xx, 12);
        assert!(parse_wrk("garbage", 1, 0.0, 0.0).is_none());
    }
}
