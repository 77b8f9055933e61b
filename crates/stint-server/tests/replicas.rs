//! Several replicas, one truth: three servers on one PostgreSQL schema answer any request
//! alike. A disable on one is refused on the others at once (nothing about people or sessions
//! is held in memory); a key rotated on one signs and verifies on the others through
//! PostgreSQL notices, or through the periodic re-read when notices are ignored; and a
//! PostgreSQL restart under issuance load fails requests closed, the replicas recover by
//! themselves, and the audit chain holds a record for every credential handed out.
//! See docs/replicas.md.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{spawn_app_with, Backend, Person, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long to wait between two looks at a replica while polling for a state.
const POLL: Duration = Duration::from_millis(10);

/// Polls `check` until it holds, failing with `what` after `within`; the time it took.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Replica A on a fresh schema with `extra_toml`, its first administrator (enrolled before
/// the others start: a replica starting while nobody has enrolled offers a fresh bootstrap
/// token, ending the earlier ones), and two more replicas of it.
async fn three(extra_toml: &str) -> (TestApp, TestApp, TestApp, Person) {
    let a = spawn_app_with(Backend::Postgres, extra_toml).await;
    let root = a.admin().await;
    let (b, c) = (a.replica().await, a.replica().await);
    (a, b, c, root)
}

/// The key ids a replica publishes.
async fn published(app: &TestApp) -> BTreeSet<String> {
    let (s, v) = app.get("/v1/jwks", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// The key id a token names in its header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&data_encoding::BASE64URL_NOPAD.decode(header.as_bytes()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn rotate(app: &TestApp, admin: &Person) -> String {
    let (s, v) = app.post("/v1/keys/rotate", Some(&admin.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["kid"].as_str().unwrap().to_owned()
}

/// After a rotation on another replica: `app` publishes `kid` within `within` (read from its
/// JWKS, which nothing but a reload of its keys changes), then signs with it, and a token
/// signed with it on `signer` is active on `app`.
async fn follows_rotation(app: &TestApp, kid: &str, within: Duration, p: &Person, signer: &TestApp) -> Duration {
    let took = until(within, "the rotated key is published", move || async move { published(app).await.contains(kid) }).await;
    assert_eq!(kid_of(&app.token(p, "readonly").await), kid, "the replica signs with the new key");
    let token = signer.token(p, "readonly").await;
    assert_eq!(app.introspect(&token).await["active"], true);
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_disabled_on_one_replica_is_refused_on_the_others() {
    let (a, b, c, root) = three("").await;
    let ivy = a.person(&root, "ivy", &[]).await;
    let token = a.token(&ivy, "readonly").await;
    for r in [&b, &c] {
        assert_eq!(r.introspect(&token).await["active"], true, "any replica answers");
        assert_eq!(r.get("/v1/whoami", Some(&ivy.session)).await.0, StatusCode::OK);
    }
    let (s, v) = a.post("/v1/users/ivy/disable", Some(&root.session), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = token.as_str();
    for r in [&b, &c] {
        // Sessions and people are read on every request: refused from the next one on.
        let took = until(Duration::from_secs(5), "refused on another replica", move || async move { r.introspect(token).await["active"] == false }).await;
        eprintln!("refused {took:?} after the disable committed");
        let (s, v) = r.get("/v1/whoami", Some(&ivy.session)).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_revoked")), "{v}");
        let (s, _) = r.assume(&ivy, "readonly", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotated_on_one_replica_reaches_the_others_through_notices() {
    // The re-read is minutes away: only a notice can tell B and C in time.
    let (a, b, c, root) = three("[postgres]\nreread_interval = \"5m\"\n").await;
    let ivy = a.person(&root, "ivy", &[]).await;
    let old = published(&a).await;
    assert_eq!(published(&b).await, old);
    let kid = rotate(&a, &root).await;
    assert!(!old.contains(&kid));
    for r in [&b, &c] {
        let took = follows_rotation(r, &kid, Duration::from_secs(5), &ivy, &a).await;
        eprintln!("rotation seen {took:?} after it committed");
        // The retired key stays published until its last token expired.
        assert!(published(r).await.is_superset(&old));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotated_on_one_replica_reaches_the_others_through_the_reread_without_notices() {
    let (a, b, c, root) = three("[postgres]\nreread_interval = \"1s\"\ndanger_ignore_notifications = true\n").await;
    let ivy = a.person(&root, "ivy", &[]).await;
    let kid = rotate(&a, &root).await;
    for r in [&b, &c] {
        // Within the re-read interval, and the time its tick and one request take.
        let took = follows_rotation(r, &kid, Duration::from_secs(3), &ivy, &a).await;
        eprintln!("rotation seen {took:?} after it committed, by the re-read");
    }
}

/// A PostgreSQL cluster of the test's own, in a temporary directory on a free port: the
/// shared server others test against is never stopped.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// Runs a PostgreSQL program as the current user, or as `postgres` when that is root (the
/// server refuses to run as root).
fn pg_command(bin: &Path, program: &str) -> Command {
    let id = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&id.stdout).trim() == "0" {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

fn run(mut c: Command) {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

impl Cluster {
    fn start() -> Cluster {
        let mut versions: Vec<PathBuf> =
            std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL's programs in /usr/lib/postgresql").map(|e| e.unwrap().path()).collect();
        versions.sort_by_key(|p| p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()));
        let bin = versions.last().expect("a PostgreSQL version in /usr/lib/postgresql").join("bin");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("stint-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Writable by the user the server runs as (`postgres`, when the test runs as root).
        let mut mode = std::fs::metadata(&dir).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o777);
        std::fs::set_permissions(&dir, mode).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Cluster { dir, bin, port };
        let mut init = pg_command(&cluster.bin, "initdb");
        init.args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "-D"]).arg(cluster.data());
        run(init);
        cluster.up();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        c.arg("-D").arg(self.data()).args(["-w", "-t", "60", "-o", &opts, "-l"]).arg(self.dir.join("log")).arg("start");
        run(c);
    }

    /// Stops the server, ending every connection (`-m fast`).
    fn down(&self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D").arg(self.data()).args(["-w", "-t", "60", "-m", "fast", "stop"]);
        run(c);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = pg_command(&self.bin, "pg_ctl");
        c.arg("-D").arg(self.data()).args(["-w", "-m", "immediate", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one replica's load saw: the token ids handed out, and each refusal's status and code.
#[derive(Default)]
struct Seen {
    issued: Vec<String>,
    refused: Vec<(StatusCode, String)>,
}

/// The longest any request may take, whatever PostgreSQL does.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Asks `app` for role tokens as `p` until `stop`, recording what it saw in `seen`.
async fn load(app: Arc<TestApp>, p: Person, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    while !stop.load(Ordering::SeqCst) {
        let ask = app.assume(&p, "readonly", None);
        let (s, v) = tokio::time::timeout(REQUEST_DEADLINE, ask).await.expect("a request hung past its deadline while PostgreSQL was away");
        let mut seen = seen.lock().unwrap();
        if s == StatusCode::OK {
            seen.issued.push(v["jti"].as_str().unwrap().to_owned());
        } else {
            seen.refused.push((s, v["error"].as_str().unwrap_or_default().to_owned()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_fails_closed_and_the_replicas_recover() {
    let cluster = Cluster::start();
    // The re-read is minutes away: after the restart, only a reconnected listener hears of a rotation.
    let a = Arc::new(common::spawn_app_on_postgres(&cluster.url(), "[postgres]\nreread_interval = \"5m\"\n").await);
    let root = a.admin().await;
    let (b, c) = (Arc::new(a.replica().await), Arc::new(a.replica().await));
    let ivy = a.person(&root, "ivy", &[]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = [&a, &b, &c].into_iter().zip(&seen).map(|(r, s)| tokio::spawn(load(r.clone(), ivy.clone(), stop.clone(), s.clone()))).collect();
    let count = |f: fn(&Seen) -> usize| seen.iter().map(|s| f(&s.lock().unwrap())).min().unwrap();

    until(Duration::from_secs(30), "every replica issues", move || async move { count(|s| s.issued.len()) >= 5 }).await;
    cluster.down();
    let before = count(|s| s.issued.len());
    until(Duration::from_secs(30), "every replica refuses while PostgreSQL is down", move || async move { count(|s| s.refused.len()) >= 5 }).await;
    cluster.up();
    until(Duration::from_secs(30), "every replica issues again by itself", move || async move { count(|s| s.issued.len()) >= before + 5 }).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    // Refused closed, with a code saying why; never a 500.
    for s in &seen {
        for (status, code) in &s.lock().unwrap().refused {
            assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert!(["store_unavailable", "store_busy"].contains(&code.as_str()), "{code}");
        }
    }
    // The chain verifies, and every credential handed out has its record.
    let head = a.store.audit_head().await.unwrap();
    let mut records = Vec::new();
    loop {
        let page = a.store.audit_after(records.last().map_or(0, |r: &stint_core::audit::Record| r.seq), 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        records.extend(page);
    }
    stint_core::audit::verify_chain(&records, head).expect("the audit chain verifies after the restart");
    let recorded: BTreeSet<&str> = records.iter().filter(|r| r.event == "credential.issued").map(|r| r.subject.as_str()).collect();
    let issued: Vec<String> = seen.iter().flat_map(|s| s.lock().unwrap().issued.clone()).collect();
    eprintln!("{} tokens issued, {} refusals", issued.len(), seen.iter().map(|s| s.lock().unwrap().refused.len()).sum::<usize>());
    for jti in &issued {
        assert!(recorded.contains(jti.as_str()), "token {jti} was handed out without its record");
    }

    // The listeners reconnected by themselves: a rotation reaches the others by notice.
    let kid = rotate(&a, &root).await;
    for r in [&b, &c] {
        follows_rotation(r, &kid, Duration::from_secs(10), &ivy, &a).await;
    }
}
