//! Running the real `stint` binary: the server with its log captured, and the CLI as a person
//! whose state lives in a directory of its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use stint_testkit::{free_port, wait_for_port, workspace_root, Process};

pub fn stint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stint"))
}

/// The Python with PyJWT that scripts/test installs; the test fails without it.
pub fn python() -> PathBuf {
    std::env::var_os("STINT_TEST_PYTHON").map_or_else(|| workspace_root().join(".venv/bin/python"), PathBuf::from)
}

pub struct Server {
    pub process: Process,
    pub url: String,
    pub log: PathBuf,
}

pub fn start_server(data: &Path) -> (Server, String) {
    start_server_with(data, &[], "debug")
}

pub fn start_server_with(data: &Path, extra: &[&str], log_filter: &str) -> (Server, String) {
    start_server_on(free_port(), data, extra, log_filter)
}

/// Starts `stint server` on `port`; returns it and the bootstrap token it printed.
pub fn start_server_on(port: u16, data: &Path, extra: &[&str], log_filter: &str) -> (Server, String) {
    spawn_server(port, data, extra, log_filter, &[])
}

/// As [`start_server_with`] at `info`, with variables in the server's environment only (its AWS
/// identity, say), never in the test process's, which tests running at once share.
pub fn start_server_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    spawn_server(free_port(), data, extra, "info", env)
}

fn spawn_server(port: u16, data: &Path, extra: &[&str], log_filter: &str, env: &[(&str, &str)]) -> (Server, String) {
    let log = data.with_extension("log");
    let mut server = stint();
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        server.env_remove(var);
    }
    let mut child = server
        .args(["server", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("STINT_LOG", log_filter)
        .envs(no_aws_identity())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut token = None;
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("--token ").nth(1) {
            token = Some(rest.trim().to_owned());
            break;
        }
    }
    let server = Server { process: Process(child), url: format!("http://127.0.0.1:{port}"), log };
    wait_for_port(port, "stint server");
    (server, token.expect("first start prints a bootstrap token"))
}

/// A server under test never calls AWS as the machine's own identity: the AWS variables of the
/// test's environment are removed (above), the shared files are empty and the instance
/// metadata service is off, unless the test's `env` says otherwise (it is applied after).
fn no_aws_identity() -> [(&'static str, &'static str); 3] {
    [("AWS_CONFIG_FILE", "/dev/null"), ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"), ("AWS_EC2_METADATA_DISABLED", "true")]
}

/// Runs `stint args…` as the person whose CLI state lives in `home`.
pub fn run(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    // The credential cache too lives with the person: tests running at once must not share
    // (or clear) one another's, nor the machine user's.
    run_with_cache(home, &home.join("cache"), args, stdin)
}

/// As [`run`], with the credential cache in `cache` (which people may share, as on one OS account).
pub fn run_with_cache(home: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = stint();
    cmd.args(args)
        .env("STINT_CONFIG_DIR", home)
        .env("STINT_CACHE_DIR", cache)
        .env_remove("STINT_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn ok_json(home: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    ok_json_with_cache(home, &home.join("cache"), args, stdin)
}

pub fn ok_json_with_cache(home: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    let out = run_with_cache(home, cache, args, stdin);
    assert!(out.status.success(), "stint {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("stint {args:?} printed no JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

pub const PASSWORD: &str = "a long enough passphrase";

pub fn totp_now(secret_b32: &str) -> String {
    let secret = data_encoding::BASE32_NOPAD.decode(secret_b32.as_bytes()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    stint_core::totp::code_at(&secret, stint_core::Timestamp(now))
}

/// Enrolls with `code` and logs in; returns what the person was shown.
pub fn enroll_and_login(server: &str, home: &Path, name: &str, code: &str) -> (String, Value) {
    enroll_and_login_with_cache(server, home, &home.join("cache"), name, code)
}

/// As [`enroll_and_login`], with the credential cache in `cache`.
pub fn enroll_and_login_with_cache(server: &str, home: &Path, cache: &Path, name: &str, code: &str) -> (String, Value) {
    let e = ok_json_with_cache(home, cache, &["enroll", "--server", server, "--code", code, "--password-stdin", "-o", "json"], Some(PASSWORD));
    let secret = e["totp_secret"].as_str().unwrap().to_owned();
    assert!(e["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    let login = ["login", "--server", server, "--user", name, "--password-stdin", "--totp", &totp_now(&secret), "-o", "json"];
    let l = ok_json_with_cache(home, cache, &login, Some(PASSWORD));
    let saved = home.join("session.json");
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600, "session file is private");
    (secret, l)
}

/// A running `stint agent` for workload `api`: its endpoint's port, state directory and log.
pub struct SpawnedAgent {
    pub process: Process,
    pub port: u16,
    pub state: PathBuf,
    pub log: PathBuf,
}

/// Starts `stint agent` for workload `api` on a free loopback port, enrolling with `proof`
/// (`--join-token-file` or `--platform-token-file`) `file`, its state in `root/state` and its
/// debug log in `root`, checking every second; waits for its endpoint to listen.
pub fn spawn_agent(root: &Path, server: &str, proof: &str, file: &Path, extra: &[&str]) -> SpawnedAgent {
    std::fs::create_dir_all(root).unwrap();
    let port = free_port();
    let state = root.join("state");
    let log = root.join(format!("agent-{port}.log"));
    let child = stint()
        .args(["agent", "--server", server, "--workload", "api", "--check-interval", "1s", "--listen", &format!("127.0.0.1:{port}")])
        .arg(proof)
        .arg(file)
        .arg("--state-dir")
        .arg(&state)
        .args(extra)
        .env("STINT_LOG", "debug")
        .env_remove("STINT_SERVER")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port, "stint agent");
    SpawnedAgent { process: Process(child), port, state, log }
}
