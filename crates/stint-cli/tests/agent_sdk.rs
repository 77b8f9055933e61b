//! A service's view, end to end: the real `stint server` (AWS backend on the moto emulator), a
//! workload added and a join token made with the CLI, the real `stint agent`, and programs that
//! know nothing of stint: a Python process using `boto3` and the `aws` CLI, each with only the
//! two variables `stint agent env` prints. They get the workload's credentials, see them
//! rotate without a restart, keep working while the server is down, and get nothing with a
//! wrong Authorization value.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use stint_testkit::aws::{aws_cli, Moto};
use stint_testkit::Process;

struct Setup {
    root: PathBuf,
    moto: Moto,
    server: Option<Server>,
    url: String,
    admin: PathBuf,
}

impl Setup {
    fn start(name: &str) -> Setup {
        let root = std::env::temp_dir().join(format!("stint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let moto = Moto::start();
        let arn = moto.create_role("api-service");
        let config = root.join("stint.toml");
        std::fs::write(
            &config,
            format!(
                "[roles.api-service]\nmax_ttl = \"4h\"\nservice_ttl = \"1h\"\n\
                 [[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{m}\"\niam_endpoint = \"{m}\"\ndanger_allow_http_loopback = true\n\
                 [backends.aws.roles]\napi-service = \"{arn}\"\n\
                 [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\napi-service = [\"deploy\"]\n",
                m = moto.url
            ),
        )
        .unwrap();
        let env = [("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01"), ("AWS_SECRET_ACCESS_KEY", "stint-test-secret")];
        let (server, bootstrap) = start_server_with_env(&root.join("data"), &["--config", config.to_str().unwrap()], &env);
        let url = server.url.clone();
        let admin = root.join("root");
        let b = ok_json(&admin, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
        enroll_and_login(&url, &admin, "root", b["enrollment_code"].as_str().unwrap());
        Setup { root, moto, server: Some(server), url, admin }
    }

    /// `stint workload add api` and a join token for it, in a file only its owner reads.
    fn workload_with_join_token(&self) -> PathBuf {
        let w = ok_json(&self.admin, &["workload", "add", "api", "--role", "api-service", "-o", "json"], None);
        assert_eq!(w["roles"], serde_json::json!(["api-service"]), "{w}");
        let t = ok_json(&self.admin, &["workload", "join-token", "api", "--ttl", "10m", "-o", "json"], None);
        let file = self.root.join("join-token");
        std::fs::write(&file, t["join_token"].as_str().unwrap()).unwrap();
        file
    }
}

/// The agent, and where its state is.
struct RunningAgent {
    _process: Process,
    state: PathBuf,
    log: PathBuf,
    port: u16,
}

fn start_agent(s: &Setup, join: &Path, extra: &[&str]) -> RunningAgent {
    let a = spawn_agent(&s.root.join("agent"), &s.url, "--join-token-file", join, extra);
    RunningAgent { _process: a.process, state: a.state, log: a.log, port: a.port }
}

impl RunningAgent {
    /// The variables `stint agent env` prints, as `(name, value)`.
    fn env(&self) -> Vec<(String, String)> {
        let vars = Self::env_of(&self.state);
        assert!(vars[0].1.starts_with(&format!("http://127.0.0.1:{}/", self.port)), "{vars:?}");
        vars
    }

    /// As [`Self::env`], for the agent whose state is in `state`.
    fn env_of(state: &Path) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = stint().args(["agent", "env", "--state-dir", state.to_str().unwrap()]).output().unwrap();
            if out.status.success() {
                let text = String::from_utf8(out.stdout).unwrap();
                let vars: Vec<(String, String)> = text
                    .lines()
                    .map(|l| {
                        let (k, v) = l.strip_prefix("export ").unwrap().split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('\'').to_owned())
                    })
                    .collect();
                assert_eq!(
                    vars.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                    ["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
                );
                assert!(vars[0].1.starts_with("http://127.0.0.1:"), "{vars:?}");
                return vars;
            }
            assert!(Instant::now() < deadline, "stint agent env: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the endpoint serves once the agent holds its first credential (polled: the agent
    /// listens before the server has answered it).
    fn first_credential(&self, vars: &[(String, String)]) -> Value {
        let token = std::fs::read_to_string(&vars[1].1).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, served) = get(&vars[0].1, Some(token.trim()));
            if status == 200 {
                return served;
            }
            assert!(Instant::now() < deadline, "no credential within 20 s: {status} {served}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `program` with a clean environment: only `vars`, a region, and no other source of
/// AWS credentials (no config files, no instance metadata).
fn clean(program: &Path, root: &Path, vars: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("HOME", root)
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .envs(vars.iter().map(|(k, v)| (k, v)));
    cmd
}

/// What `boto3.client('sts').get_caller_identity()` and an S3 call say, as JSON
/// `{"arn", "key", "buckets"}`; the client is made with no credentials given.
fn boto3(s: &Setup, vars: &[(String, String)]) -> Output {
    let script = format!(
        "import boto3, json\n\
         sts = boto3.client('sts', endpoint_url={m:?})\n\
         who = sts.get_caller_identity()\n\
         s3 = boto3.client('s3', endpoint_url={m:?})\n\
         s3.create_bucket(Bucket='api-uploads')\n\
         names = [b['Name'] for b in s3.list_buckets()['Buckets']]\n\
         key = boto3.session.Session().get_credentials().get_frozen_credentials().access_key\n\
         print(json.dumps({{'arn': who['Arn'], 'key': key, 'buckets': names}}))",
        m = s.moto.url
    );
    clean(&python(), &s.root, vars).args(["-c", &script]).output().unwrap()
}

/// `GET url` with `Authorization: auth` if given: the status and the JSON body.
fn get(url: &str, auth: Option<&str>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    })
}

fn ok(out: &Output, agent: &RunningAgent) -> Value {
    assert!(out.status.success(), "{}\nagent log:\n{}", String::from_utf8_lossy(&out.stderr), agent.log());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn boto3_and_the_aws_cli_get_the_workloads_credentials_through_the_agent_alone() {
    let mut s = Setup::start("agent-sdk");
    let join = s.workload_with_join_token();
    // A short lifetime makes the agent rotate every few seconds (at two thirds of it).
    let agent = start_agent(&s, &join, &["--ttl", "6s"]);
    let vars = agent.env();
    agent.first_credential(&vars);

    let first = ok(&boto3(&s, &vars), &agent);
    assert!(first["arn"].as_str().unwrap().contains(":assumed-role/api-service/"), "{first}");
    assert_eq!(first["buckets"], serde_json::json!(["api-uploads"]), "{first}");

    // The aws CLI, with the same two variables and nothing else.
    let cli = clean(&aws_cli(), &s.root, &vars).args(["sts", "get-caller-identity", "--endpoint-url", &s.moto.url, "--output", "json"]).output().unwrap();
    let who = ok(&cli, &agent);
    assert!(who["Arn"].as_str().unwrap().contains(":assumed-role/api-service/"), "{who}");

    // Rotation without a restart: a later process sees another key.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rotated = loop {
        let now = ok(&boto3(&s, &vars), &agent);
        if now["key"] != first["key"] {
            break now;
        }
        assert!(Instant::now() < deadline, "no rotation within 30 s; agent log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(rotated["arn"].as_str().unwrap().contains(":assumed-role/api-service/"), "{rotated}");

    // A wrong Authorization value, or none: the SDK gets the agent's 401 and no credentials.
    let wrong = s.root.join("wrong-token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let with_wrong = [vars[0].clone(), ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".to_owned(), wrong.to_string_lossy().into_owned())];
    let out = boto3(&s, &with_wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("Received non 200 response 401 from container metadata"), "{stderr}");
    for auth in [None, Some("not-the-token")] {
        let (status, body) = get(&vars[0].1, auth);
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert!(body["code"].is_string() && body["message"].is_string(), "{body}");
    }

    // The server stops: the cached credential keeps working until it expires.
    drop(s.server.take());
    let cached = ok(&boto3(&s, &vars), &agent);
    assert!(cached["arn"].as_str().unwrap().contains(":assumed-role/api-service/"), "{cached}");
}

/// Disabling the workload reaches the agent at its next check: the endpoint stops serving
/// the credential and answers 403 with the code, and the SDK gets nothing.
#[test]
fn disabling_the_workload_stops_the_agent_serving_within_its_check_interval() {
    let s = Setup::start("agent-sdk-disable");
    let join = s.workload_with_join_token();
    let agent = start_agent(&s, &join, &[]);
    let vars = agent.env();
    agent.first_credential(&vars);
    ok(&boto3(&s, &vars), &agent);

    let d = ok_json(&s.admin, &["workload", "disable", "api", "-o", "json"], None);
    assert_eq!((d["disabled"].as_bool(), d["leases_revoked"].as_u64()), (Some(true), Some(1)), "{d}");
    let token = std::fs::read_to_string(&vars[1].1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&vars[0].1, Some(token.trim()));
        if status == 403 {
            assert_eq!(body["code"].as_str(), Some("workload_disabled"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still serving after the disable; agent log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = boto3(&s, &vars);
    assert!(!out.status.success(), "the SDK gets no credentials once the workload is disabled");
    let status = stint().args(["agent", "status", "--state-dir", agent.state.to_str().unwrap(), "-o", "json"]).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(String::from_utf8_lossy(&status.stdout).contains("workload_disabled"), "{}", String::from_utf8_lossy(&status.stdout));
}

/// The agent also keeps files for programs that read files: here an OpenSSH certificate for
/// the service's own key pair (made with the real `ssh-keygen`), written beside the key as ssh
/// looks for it, and read back by `ssh-keygen -L`: the principal of the role, the workload as
/// its holder, valid now. A disable removes it.
#[test]
fn the_agent_keeps_an_ssh_certificate_for_the_services_key() {
    let s = Setup::start("agent-sdk-ssh");
    let join = s.workload_with_join_token();
    let key = s.root.join("id_ed25519");
    let made = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "api@svc", "-f"]).arg(&key).output().unwrap();
    assert!(made.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&made.stderr));
    let pubkey = s.root.join("id_ed25519.pub");
    let agent = start_agent(&s, &join, &["--ssh-public-key", pubkey.to_str().unwrap(), "--ssh-backend", "servers"]);
    let cert = s.root.join("id_ed25519-cert.pub");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cert.exists() {
        assert!(Instant::now() < deadline, "no certificate; agent log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = Command::new("ssh-keygen").arg("-L").arg("-f").arg(&cert).output().unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert!(text.contains("ssh-ed25519-cert-v01@openssh.com user certificate"), "{text}");
    assert!(text.contains("workload:api"), "the key id names the workload: {text}");
    let principals: Vec<&str> =
        text.lines().skip_while(|l| !l.contains("Principals:")).skip(1).take_while(|l| l.starts_with("                ")).map(str::trim).collect();
    assert_eq!(principals, ["deploy"], "{text}");
    // The certificate is for this key: its public half is in the certificate.
    let fingerprint = |p: &Path| String::from_utf8(Command::new("ssh-keygen").arg("-l").arg("-f").arg(p).output().unwrap().stdout).unwrap();
    assert_eq!(fingerprint(&cert).split_whitespace().nth(1), fingerprint(&pubkey).split_whitespace().nth(1));

    ok_json(&s.admin, &["workload", "disable", "api", "-o", "json"], None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cert.exists() {
        assert!(Instant::now() < deadline, "the certificate is still there after the disable; agent log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The AWS SDK for Rust: a program that leaves everything to `aws-config`'s default chain
/// (`examples/aws_default_chain.rs`, built with the tests), run with only the two variables
/// `stint agent env` prints, gets the workload's credential: the one the endpoint serves.
#[test]
fn the_rust_sdk_default_chain_gets_the_workloads_credentials_through_the_agent() {
    // tests run from target/…/deps; examples are built beside them, in target/…/examples.
    let exe = std::env::current_exe().unwrap();
    let example = exe.parent().and_then(Path::parent).unwrap().join("examples/aws_default_chain");
    assert!(example.exists(), "{} is missing: cargo builds the examples with the tests (cargo nextest run / cargo test)", example.display());
    let s = Setup::start("agent-sdk-rust");
    let join = s.workload_with_join_token();
    let agent = start_agent(&s, &join, &[]);
    let vars = agent.env();
    let served = agent.first_credential(&vars);

    let out = clean(&example, &s.root, &vars).output().unwrap();
    let found = ok(&out, &agent);
    assert_eq!(found["access_key_id"], served["AccessKeyId"], "{found}");
    assert_eq!(found["secret_access_key"], served["SecretAccessKey"]);
    assert_eq!(found["session_token"], served["Token"]);
    let expires_at = stint_core::Timestamp::parse_rfc3339(served["Expiration"].as_str().unwrap()).unwrap();
    assert_eq!(found["expires_at"].as_i64(), Some(expires_at.0), "the chain knows when to refresh");
}
