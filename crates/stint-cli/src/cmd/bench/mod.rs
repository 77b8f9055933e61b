//! `stint bench`: drives a stint server over HTTP with concurrent clients and reports
//! count, rate, latency percentiles and errors per scenario. Without `--server` it starts
//! its own server (this binary, a fresh data directory) so a run is reproducible anywhere.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::output::Output;
use stint_os::now;

mod agent;
mod aws;
mod ci;
mod flood;
mod pg;
mod replicas;
mod scan;
mod workload;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// One signature, no storage, same HTTP stack: the ceiling issuance is compared to
    Floor,
    /// `POST /v1/assume`: authenticate, decide, audit durably, sign
    Assume,
    /// `POST /v1/introspect`: verify, read session and owner
    Introspect,
    /// `POST /v1/auth/login`: argon2id password + TOTP, new session
    Login,
    /// `POST /v1/bench/exchange-floor`: the exchange's form and RS256 verification only
    ExchangeFloor,
    /// `POST /v1/token`: verify a CI token (RS256), trust policy, replay check and audit
    /// durably, sign; each token used once
    Exchange,
    /// The PostgreSQL floor: the backend's `CREATE ROLE` sent straight to PostgreSQL over the
    /// same number of connections, without stint (needs --postgres)
    PostgresFloor,
    /// `POST /v1/creds` on a PostgreSQL backend: decide, record the lease durably, create the
    /// login role (needs --postgres)
    Postgres,
    /// `POST /v1/workload/creds` for the role token: verify an agent's assertion (Ed25519,
    /// signed per request), decide, replay check and audit durably, sign
    Workload,
    /// `AssumeRole` posted straight to the AWS API at --aws-endpoint (moto), without stint:
    /// the floor of the aws scenario
    AwsFloor,
    /// `POST /v1/creds` on an AWS backend at --aws-endpoint (moto): decide, record the lease
    /// durably, `AssumeRole` with the session policy and tags
    Aws,
    /// `stint agent`'s AWS container credentials endpoint serving its cached credential,
    /// loaded with wrk over --concurrency connections; and the agent's memory (needs wrk, and
    /// an AWS API at --aws-endpoint, e.g. moto)
    Agent,
    /// Garbage CI tokens flooded to `POST /v1/token` from 127.0.0.1 (--flood-connections),
    /// while the `assume` load runs from 127.0.2.1: three phases of --duration (assume alone,
    /// the flood alone, both); reports the store's growth, the flood's 429s and refusals, and
    /// issuance under flood against alone. Runs with the server's default rate limits, so on
    /// its own
    Flood,
    /// Two more replicas of the server on its PostgreSQL (needs --store postgres://…): a
    /// person disabled on A, their token introspected on B and C until refused
    /// (--revocations trials); keys rotated on A, B's and C's JWKS read until they publish
    /// the new key (--rotations trials). Once with notices between replicas, once with B and
    /// C ignoring them and re-reading every second
    Replicas,
    /// `stint scan` on a generated source tree of --scan-mb megabytes with credentials planted
    /// in it, against the same walk reading the same files and matching nothing; no server.
    /// Run on its own
    Scan,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Scenarios to run, in order
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scenario::Floor, Scenario::Assume, Scenario::Introspect, Scenario::Login, Scenario::ExchangeFloor, Scenario::Exchange])]
    scenarios: Vec<Scenario>,
    /// How long each closed-loop scenario runs (and each of the flood scenario's three phases)
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Concurrent clients (closed loop: each sends its next request when the last returns)
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop instead: this many requests per second, latency measured from the scheduled time
    #[arg(long)]
    rate: Option<u64>,
    /// Users that each log in once in the login scenario (a TOTP code is single use)
    #[arg(long, default_value_t = 200)]
    login_users: usize,
    /// CI tokens exchanged in the closed-loop exchange scenario (each is accepted once, and
    /// minting them, RSA signatures, happens before the clock starts)
    #[arg(long, default_value_t = 30_000)]
    exchanges: usize,
    /// Also seed this many live sessions, touch them all, and report the server's memory
    #[arg(long)]
    sessions: Option<usize>,
    /// Where the temporary server keeps its data (default: a new directory under /tmp)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Connections the flood scenario sends from, each as fast as answers come back
    #[arg(long, default_value_t = 8)]
    flood_connections: usize,
    /// Store for the temporary server: `sqlite` (durable, WAL) or a postgres:// URL
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// The PostgreSQL the postgres scenarios issue credentials on, as its administrator (a
    /// role with CREATEROLE); every role the run creates is dropped at the end
    #[arg(long)]
    postgres: Option<String>,
    /// Trials of the replicas scenario's revocation, per mode
    #[arg(long, default_value_t = 1000)]
    revocations: usize,
    /// Trials of the replicas scenario's key rotation, per mode (each leaves a key published
    /// for hours)
    #[arg(long, default_value_t = 100)]
    rotations: usize,
    /// An AWS API (the moto emulator) the agent scenario's credentials come from
    #[arg(long, value_name = "URL")]
    aws_endpoint: Option<String>,
    /// Size of the scan scenario's generated tree, in megabytes
    #[arg(long, default_value_t = 512)]
    scan_mb: u64,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Serialize)]
struct Report {
    scenario: String,
    requests: u64,
    errors: u64,
    seconds: f64,
    rate: f64,
    mean_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn report(scenario: &str, mut lat: Vec<Duration>, errors: u64, elapsed: Duration) -> Report {
    lat.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(0.0, |d| ms(*d));
    let n = lat.len() as u64;
    Report {
        scenario: scenario.to_owned(),
        requests: n + errors,
        errors,
        seconds: elapsed.as_secs_f64(),
        rate: n as f64 / elapsed.as_secs_f64(),
        mean_ms: if n == 0 { 0.0 } else { lat.iter().map(|d| ms(*d)).sum::<f64>() / n as f64 },
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        max_ms: lat.last().map_or(0.0, |d| ms(*d)),
    }
}

/// One kind of request, built fresh for each call so every request is complete.
type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

async fn closed_loop(http: &reqwest::Client, make: MakeRequest, concurrency: usize, duration: Duration) -> (Vec<Duration>, u64, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (http, make) = (http.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), 0u64, worker);
            while Instant::now() < deadline {
                let t = Instant::now();
                match make(&http, i).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
                i += concurrency;
            }
            (lat, errors)
        }));
    }
    collect(tasks, start).await
}

/// Sends at a fixed rate; each latency counts from when the request was due, so a stalled
/// server cannot hide its queueing (no coordinated omission). A plain thread paces the
/// requests: tokio's timer has millisecond granularity, which would add up to a millisecond
/// of the client's own lateness to every figure.
async fn open_loop(http: &reqwest::Client, make: MakeRequest, rate: u64, duration: Duration) -> (Vec<Duration>, u64, Duration) {
    let start = Instant::now();
    let total = (rate as f64 * duration.as_secs_f64()) as usize;
    let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    std::thread::spawn(move || {
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if due_tx.send((i, due)).is_err() {
                return;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(1024));
    let mut tasks = Vec::with_capacity(total);
    while let Some((i, due)) = due_rx.recv().await {
        let (http, make, permit) = (http.clone(), make.clone(), in_flight.clone().acquire_owned().await);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            match make(&http, i).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    (vec![due.elapsed()], 0)
                }
                _ => (vec![], 1),
            }
        }));
    }
    collect(tasks, start).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, u64)>>, start: Instant) -> (Vec<Duration>, u64, Duration) {
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    (lat, errors, start.elapsed())
}

const PASSWORD: &str = "bench password, long enough";

/// The server this run started: killed when dropped.
struct Spawned {
    child: Child,
    url: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The benchmark drives the server at full speed from a few loopback addresses, as one
/// person: the rate limits and caps for the Internet would measure themselves instead.
const BENCH_LIMITS: &str = "[limits]\nper_address_rate = 1000000\nper_address_burst = 1000000\nglobal_rate = 1000000\nglobal_burst = 1000000\nsessions_per_person = 1000000\nleases_per_person = 1000000\n";

/// The flood scenario measures the rate limits as shipped (the defaults); only the caps on
/// what one person holds are lifted, since the benchmark's few users issue without end.
const FLOOD_LIMITS: &str = "[limits]\nsessions_per_person = 1000000\nleases_per_person = 1000000\n";

fn spawn_server(data: &Path, store: &str, extra_config: &str, limits: &str) -> Result<(Spawned, String)> {
    use std::io::BufRead;
    std::fs::create_dir_all(data)?;
    let config = data.join("bench.toml");
    std::fs::write(&config, format!("[bench]\nfloor = true\n{extra_config}\n{limits}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("server")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--store", store])
        .env("STINT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the server")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let spawned = Spawned { child, url: format!("http://127.0.0.1:{port}") };
    let token = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("--token ").nth(1).map(|t| t.trim().to_owned()))
        .context("the server printed no bootstrap token (is the data directory new?)")?;
    Ok((spawned, token))
}

async fn call(http: &reqwest::Client, url: String, bearer: Option<&str>, body: Value) -> Result<Value> {
    let mut req = http.post(url).json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        bail!("setup request failed: {status} {v}");
    }
    Ok(v)
}

/// Enrolls with `code`; returns the TOTP secret.
async fn enroll(http: &reqwest::Client, url: &str, code: &str) -> Result<Vec<u8>> {
    let e = call(http, format!("{url}/v1/enroll"), None, json!({ "code": code, "password": PASSWORD })).await?;
    Ok(data_encoding::BASE32_NOPAD.decode(e["totp_secret"].as_str().unwrap_or("").as_bytes())?)
}

async fn login(http: &reqwest::Client, url: &str, name: &str, secret: &[u8]) -> Result<String> {
    let code = stint_core::totp::code_at(secret, now());
    let l = call(http, format!("{url}/v1/auth/login"), None, json!({ "username": name, "password": PASSWORD, "totp": code })).await?;
    Ok(l["session_token"].as_str().unwrap_or("").to_owned())
}

/// Creates `n` enrolled users named `{prefix}{i}`, a few at a time (enrollment hashes a password).
async fn users(http: &reqwest::Client, url: &str, admin: &str, prefix: &str, n: usize) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for i in chunk {
            let (http, url, admin, name) = (http.clone(), url.to_owned(), admin.to_owned(), format!("{prefix}{i}"));
            tasks.push(tokio::spawn(async move {
                let add = call(&http, format!("{url}/v1/users"), Some(&admin), json!({ "name": name })).await?;
                let secret = enroll(&http, &url, add["enrollment_code"].as_str().unwrap_or("")).await?;
                Ok::<_, anyhow::Error>((name, secret))
            }));
        }
        for t in tasks {
            out.push(t.await??);
        }
    }
    Ok(out)
}

pub async fn run(a: BenchArgs) -> Result<ExitCode> {
    if a.scenarios.contains(&Scenario::Scan) {
        if a.scenarios.len() > 1 {
            bail!("run the scan scenario on its own (--scenarios scan): it needs no server, and the others would share its cores");
        }
        let (data, mb) = (a.data.clone(), a.scan_mb);
        let report = tokio::task::spawn_blocking(move || scan::run(data, mb)).await??;
        a.output.print(&report, |r| {
            println!(
                "scan: {:.0} MB/s (floor, the same walk reading without matching: {:.0} MB/s; {:.2} of it) over {:.0} MB; {} planted, {} found, {} missed, {} false positives",
                r["scan_mb_per_s"].as_f64().unwrap_or(0.0),
                r["floor_mb_per_s"].as_f64().unwrap_or(0.0),
                r["scan_over_floor"].as_f64().unwrap_or(0.0),
                r["bytes"].as_f64().unwrap_or(0.0) / 1e6,
                r["planted"],
                r["found"],
                r["missed"].as_array().map_or(0, Vec::len),
                r["false_positives"].as_array().map_or(0, Vec::len),
            );
        })?;
        let exact = report["missed"].as_array().is_some_and(Vec::is_empty) && report["false_positives"].as_array().is_some_and(Vec::is_empty);
        return Ok(if exact { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let duration: stint_core::Ttl = a.duration.parse()?;
    let duration = Duration::from_secs(duration.as_secs());
    let data = a.data.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("stint-bench-{}", std::process::id())));
    if data.join("stint.db").exists() {
        bail!("{} already holds a stint database; give --data a new directory", data.display());
    }
    let issuer = ci::BenchIssuer::start().await?;
    let mut extra = issuer.config();
    let wants_pg = a.scenarios.iter().any(|s| matches!(s, Scenario::Postgres | Scenario::PostgresFloor));
    if wants_pg {
        let pg = a.postgres.as_deref().context("the postgres scenarios need --postgres postgres://ADMIN@HOST:PORT/DB")?;
        pg::prepare(pg).await?;
        extra.push_str(&pg::config(pg));
    }
    if a.scenarios.iter().any(|s| matches!(s, Scenario::Agent | Scenario::Aws | Scenario::AwsFloor)) {
        let endpoint =
            a.aws_endpoint.as_deref().context("the agent and aws scenarios need --aws-endpoint http://127.0.0.1:PORT (moto: .venv/bin/moto_server -p PORT)")?;
        extra.push_str(&aws::config(endpoint));
    }
    let flooding = a.scenarios.contains(&Scenario::Flood);
    if flooding && a.scenarios.len() > 1 {
        bail!("run the flood scenario on its own (--scenarios flood): it keeps the default rate limits, which would limit the others");
    }
    let (server, bootstrap) = spawn_server(&data, &a.store, &extra, if flooding { FLOOD_LIMITS } else { BENCH_LIMITS })?;
    let url = server.url.clone();
    let http = reqwest::Client::builder().pool_max_idle_per_host(a.concurrency.max(64)).build()?;
    eprintln!("bench: server {url}, store {}, data {}", stint_store::describe(&a.store), data.display());

    // Setup: an administrator, the users whose sessions issue, and the users who log in.
    let b = call(&http, format!("{url}/v1/bootstrap"), None, json!({ "token": bootstrap, "username": "bench-admin" })).await?;
    let secret = enroll(&http, &url, b["enrollment_code"].as_str().unwrap_or("")).await?;
    let admin = login(&http, &url, "bench-admin", &secret).await?;
    let holders = users(&http, &url, &admin, "holder", a.concurrency).await?;
    let mut sessions = Vec::new();
    for (name, secret) in &holders {
        sessions.push(login(&http, &url, name, secret).await?);
    }
    let sessions = Arc::new(sessions);
    let mut tokens = Vec::new();
    for s in sessions.iter() {
        tokens.push(
            call(&http, format!("{url}/v1/assume"), Some(s), json!({ "role": "readonly", "ttl": "1h" })).await?["token"].as_str().unwrap_or("").to_owned(),
        );
    }
    let tokens = Arc::new(tokens);

    let mut reports = Vec::new();
    let mut flooded = None;
    let mut agent_report = None;
    let mut replicas_report = None;
    for scenario in &a.scenarios {
        eprintln!("bench: {scenario:?}…");
        let (lat, errors, elapsed) = match scenario {
            Scenario::Flood => {
                let setup = flood::Setup {
                    url: &url,
                    store: &a.store,
                    data: &data,
                    connections: a.flood_connections,
                    concurrency: a.concurrency,
                    rate: a.rate,
                    duration,
                };
                flooded = Some(flood::run(&setup, request_for(Scenario::Assume, &url, sessions.clone(), tokens.clone())).await?);
                continue;
            }
            Scenario::Login => {
                let people = users(&http, &url, &admin, "login", a.login_users).await?;
                let people = Arc::new(people);
                let url = url.clone();
                // People log in from their own machines: one loopback source address per
                // client (127.0.1.x), so the per-address throttle sees what it would in life.
                let machines = Arc::new(source_addresses(a.concurrency)?);
                let make: MakeRequest = Arc::new(move |_, i| {
                    let (name, secret) = &people[i % people.len()];
                    let code = stint_core::totp::code_at(secret, now());
                    let h = &machines[i % machines.len()];
                    h.post(format!("{url}/v1/auth/login")).json(&json!({ "username": name, "password": PASSWORD, "totp": code }))
                });
                once_each(&http, make, a.login_users, a.concurrency).await
            }
            Scenario::Exchange => {
                let n = a.rate.map_or(a.exchanges, |r| (r * duration.as_secs()) as usize);
                eprintln!("bench: minting {n} CI tokens (RS256)…");
                let ci_tokens = Arc::new(issuer.mint(n)?);
                let url = url.clone();
                let make: MakeRequest = Arc::new(move |h, i| h.post(format!("{url}/v1/token")).form(&ci::exchange_form(&ci_tokens[i % ci_tokens.len()])));
                match a.rate {
                    Some(rate) => open_loop(&http, make, rate, duration).await,
                    None => once_each(&http, make, n, a.concurrency).await,
                }
            }
            Scenario::ExchangeFloor => {
                let one = Arc::new(issuer.mint(1)?.remove(0));
                let url = url.clone();
                let make: MakeRequest = Arc::new(move |h, _| h.post(format!("{url}/v1/bench/exchange-floor")).form(&ci::exchange_form(&one)));
                match a.rate {
                    Some(rate) => open_loop(&http, make, rate, duration).await,
                    None => closed_loop(&http, make, a.concurrency, duration).await,
                }
            }
            Scenario::Agent => {
                agent_report = Some(agent::run(&http, &url, &admin, &data, duration, a.concurrency).await?);
                continue;
            }
            Scenario::Replicas => {
                let setup = replicas::Setup { url: &url, store: &a.store, data: &data, admin: &admin, revocations: a.revocations, rotations: a.rotations };
                replicas_report = Some(replicas::run(&http, &setup).await?);
                continue;
            }
            Scenario::Workload => {
                let keys = Arc::new(workload::agents(&http, &url, &admin, a.concurrency).await?);
                let make = workload::request(&url, keys);
                match a.rate {
                    Some(rate) => open_loop(&http, make, rate, duration).await,
                    None => closed_loop(&http, make, a.concurrency, duration).await,
                }
            }
            Scenario::Aws | Scenario::AwsFloor => {
                let make = match scenario {
                    Scenario::Aws => aws::issue(&url, sessions.clone()),
                    _ => aws::floor(a.aws_endpoint.as_deref().unwrap_or_default()),
                };
                match a.rate {
                    Some(rate) => open_loop(&http, make, rate, duration).await,
                    None => closed_loop(&http, make, a.concurrency, duration).await,
                }
            }
            Scenario::PostgresFloor => {
                let clients = Arc::new(pg::floor_clients(a.postgres.as_deref().unwrap_or_default()).await?);
                let run = rand_core::RngCore::next_u32(&mut rand_core::OsRng);
                postgres_floor(clients, run, a.concurrency, duration).await
            }
            _ => {
                let make = request_for(*scenario, &url, sessions.clone(), tokens.clone());
                match a.rate {
                    Some(rate) => open_loop(&http, make, rate, duration).await,
                    None => closed_loop(&http, make, a.concurrency, duration).await,
                }
            }
        };
        let name = match a.rate {
            Some(r) if *scenario != Scenario::Login => format!("{scenario:?} @{r}/s").to_lowercase(),
            _ => format!("{scenario:?}").to_lowercase(),
        };
        reports.push(report(&name, lat, errors, elapsed));
    }
    let memory = match a.sessions {
        Some(n) => Some(memory(&http, &url, &a.store, &data, server.child.id(), n, a.concurrency).await?),
        None => None,
    };
    print(&a, &reports, memory.as_ref(), flooded.as_ref(), agent_report.as_ref(), replicas_report.as_deref())?;
    drop(server);
    if let (true, Some(pg)) = (wants_pg, a.postgres.as_deref()) {
        let n = pg::clean_up(pg).await?;
        eprintln!("bench: dropped the {n} PostgreSQL roles the run created");
    }
    if a.data.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(ExitCode::SUCCESS)
}

fn request_for(scenario: Scenario, url: &str, sessions: Arc<Vec<String>>, tokens: Arc<Vec<String>>) -> MakeRequest {
    let url = url.to_owned();
    match scenario {
        Scenario::Floor => Arc::new(move |h, _| h.post(format!("{url}/v1/bench/floor")).json(&json!({ "role": "readonly" }))),
        Scenario::Assume => Arc::new(move |h, i| {
            h.post(format!("{url}/v1/assume")).bearer_auth(&sessions[i % sessions.len()]).json(&json!({ "role": "readonly", "ttl": "5m" }))
        }),
        Scenario::Postgres => Arc::new(move |h, i| {
            h.post(format!("{url}/v1/creds")).bearer_auth(&sessions[i % sessions.len()]).json(&json!({ "role": "readonly", "ttl": "5m", "backend": "benchdb" }))
        }),
        Scenario::Introspect
        | Scenario::Login
        | Scenario::Exchange
        | Scenario::ExchangeFloor
        | Scenario::PostgresFloor
        | Scenario::Flood
        | Scenario::Workload
        | Scenario::Agent
        | Scenario::Aws
        | Scenario::AwsFloor
        | Scenario::Replicas
        | Scenario::Scan => Arc::new(move |h, i| h.post(format!("{url}/v1/introspect")).form(&[("token", tokens[i % tokens.len()].as_str())])),
    }
}

/// The PostgreSQL floor, closed loop: `concurrency` clients share the pool's connections.
async fn postgres_floor(clients: Arc<Vec<tokio_postgres::Client>>, run: u32, concurrency: usize, duration: Duration) -> (Vec<Duration>, u64, Duration) {
    let verifier: Arc<str> = pg::floor_verifier().into();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (clients, verifier) = (clients.clone(), verifier.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut i) = (Vec::new(), 0u64, worker);
            while Instant::now() < deadline {
                let t = Instant::now();
                match clients[i % clients.len()].batch_execute(&pg::floor_statement(i, run, &verifier)).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
                i += concurrency;
            }
            (lat, errors)
        }));
    }
    collect(tasks, start).await
}

/// Clients bound to distinct loopback addresses (127.0.1.1, 127.0.1.2, …).
fn source_addresses(n: usize) -> Result<Vec<reqwest::Client>> {
    (1..=n.clamp(1, 250)).map(|k| Ok(reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 1, k as u8])).build()?)).collect()
}

/// Sends exactly `n` requests, `concurrency` at a time.
async fn once_each(http: &reqwest::Client, make: MakeRequest, n: usize, concurrency: usize) -> (Vec<Duration>, u64, Duration) {
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = permits.clone().acquire_owned().await;
        let (http, make) = (http.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            match make(&http, i).send().await {
                Ok(r) if r.status().is_success() => (vec![t.elapsed()], 0),
                _ => (vec![], 1),
            }
        }));
    }
    collect(tasks, start).await
}

#[derive(Serialize)]
struct Memory {
    sessions: usize,
    touched: u64,
    errors: u64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// Seeds `n` live sessions straight into the store, touches each once over HTTP, then reads
/// the server's resident memory from /proc.
async fn memory(http: &reqwest::Client, url: &str, store: &str, data: &Path, pid: u32, n: usize, concurrency: usize) -> Result<Memory> {
    use stint_core::store::{Change, Mutation};
    eprintln!("bench: seeding {n} sessions…");
    let db = stint_store::open(store, data).await.map_err(super::operator_error)?;
    let mut bearers = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(1000) {
        let user = seeded_user(&format!("seeded{batch}"))?;
        let mut change = Change::default();
        for _ in 0..1000.min(n - batch * 1000) {
            let (s, bearer) = seeded_session(&user);
            bearers.push(bearer);
            change.mutations.push(Mutation::InsertSession(s));
        }
        change.mutations.insert(0, Mutation::InsertUser(user));
        db.apply(change).await?;
    }
    let bearers = Arc::new(bearers);
    let url = url.to_owned();
    let make: MakeRequest = Arc::new(move |h, i| h.get(format!("{url}/v1/whoami")).bearer_auth(&bearers[i]));
    let (lat, errors, _) = once_each(http, make, n, concurrency).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the server's memory needs Linux /proc")?;
    let kib =
        |key: &str| status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(Memory { sessions: n, touched: lat.len() as u64, errors, rss_mib: kib("VmRSS:") / 1024.0, peak_rss_mib: kib("VmHWM:") / 1024.0 })
}

/// A person written straight into the store, with no password: only seeded sessions reach them.
fn seeded_user(name: &str) -> Result<stint_core::model::User> {
    Ok(stint_core::model::User {
        id: stint_core::ids::UserId::random(&mut rand_core::OsRng),
        name: stint_core::ids::Username::parse(name)?,
        groups: vec![],
        disabled: false,
        password_hash: None,
        totp_sealed: None,
        totp_last_step: 0,
        expires_at: None,
        sponsor: None,
        created_at: now(),
    })
}

/// A live session of `user` for the store, and its bearer value.
fn seeded_session(user: &stint_core::model::User) -> (stint_core::model::Session, String) {
    use stint_core::bearer::{mint, BearerKind};
    let t = now();
    let b = mint(BearerKind::Session, &mut rand_core::OsRng);
    let s = stint_core::model::Session {
        id: stint_core::ids::SessionId::random(&mut rand_core::OsRng),
        lookup: b.lookup,
        secret_hash: b.hash.to_vec(),
        user_id: user.id.clone(),
        created_at: t,
        expires_at: stint_core::Timestamp(t.0 + 8 * 3600),
        revoked_at: None,
        mfa: "password+totp".into(),
    };
    (s, b.value.expose().to_owned())
}

fn print(
    a: &BenchArgs,
    reports: &[Report],
    memory: Option<&Memory>,
    flooded: Option<&flood::FloodReport>,
    agent: Option<&agent::AgentReport>,
    replicated: Option<&[replicas::ReplicasRun]>,
) -> Result<()> {
    let floor = reports.iter().find(|r| r.scenario.starts_with("floor")).map(|r| r.rate);
    let assume = reports.iter().find(|r| r.scenario.starts_with("assume")).map(|r| r.rate);
    let ratio = floor.zip(assume).map(|(f, i)| i / f);
    let xfloor = reports.iter().find(|r| r.scenario.starts_with("exchangefloor")).map(|r| r.rate);
    let exchange = reports.iter().find(|r| r.scenario.starts_with("exchange") && !r.scenario.starts_with("exchangefloor")).map(|r| r.rate);
    let xratio = xfloor.zip(exchange).map(|(f, x)| x / f);
    let pgfloor = reports.iter().find(|r| r.scenario.starts_with("postgresfloor")).map(|r| r.rate);
    let pgrate = reports.iter().find(|r| r.scenario.starts_with("postgres") && !r.scenario.starts_with("postgresfloor")).map(|r| r.rate);
    let pgratio = pgfloor.zip(pgrate).map(|(f, x)| x / f);
    let workload = reports.iter().find(|r| r.scenario.starts_with("workload")).map(|r| r.rate);
    let wratio = assume.zip(workload).map(|(a, w)| w / a);
    let value = json!({
        "concurrency": a.concurrency,
        "rate": a.rate,
        "store": stint_store::describe(&a.store),
        "scenarios": reports,
        "issuance_over_floor": ratio,
        "exchange_over_floor": xratio,
        "postgres_over_floor": pgratio,
        "workload_over_assume": wratio,
        "memory": memory,
        "flood": flooded,
        "agent": agent,
        "replicas": replicated,
    });
    a.output.print(&value, |_| {
        if !reports.is_empty() {
            println!(
                "{:<18} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "scenario", "requests", "errors", "rate/s", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms"
            );
        }
        for r in reports {
            println!(
                "{:<18} {:>9} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                r.scenario, r.requests, r.errors, r.rate, r.mean_ms, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms
            );
        }
        if let Some(r) = ratio {
            println!("issuance / floor: {:.0} %", r * 100.0);
        }
        if let Some(r) = xratio {
            println!("exchange / exchange floor (RS256 verify): {:.0} %", r * 100.0);
        }
        if let Some(r) = pgratio {
            println!("postgres credentials / postgres floor (CREATE ROLE alone): {:.0} %", r * 100.0);
        }
        if let Some(r) = wratio {
            println!("workload role tokens / assume: {:.0} %", r * 100.0);
        }
        if let Some(m) = memory {
            println!(
                "memory: {} live sessions ({} touched, {} errors): RSS {:.1} MiB, peak {:.1} MiB",
                m.sessions, m.touched, m.errors, m.rss_mib, m.peak_rss_mib
            );
        }
        if let Some(f) = flooded {
            flood::print(f);
        }
        if let Some(r) = replicated {
            replicas::print(r);
        }
        if let Some(g) = agent {
            println!(
                "agent endpoint: {} requests over {} connections, {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms, {} non-2xx; agent RSS {:.1} MiB idle, {:.1} MiB after (peak {:.1})",
                g.requests, g.connections, g.rate, g.p50_ms, g.p99_ms, g.max_ms, g.non_2xx, g.idle_rss_mib, g.rss_mib, g.peak_rss_mib
            );
        }
    })
}
