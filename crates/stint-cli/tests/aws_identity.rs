//! stint's own AWS identity, as the AWS SDK's default credential chain finds it in the real
//! `stint server`: nothing in stint's configuration, only what the machine provides.
//!
//! - A profile in `~/.aws/config` that assumes a role (`role_arn`) from a `source_profile`
//!   whose key is in the shared credentials file: what a team sets up on a workstation or a
//!   plain VM.
//! - An EC2 instance role through the instance metadata service, IMDSv2: a `PUT` for a session
//!   token, then `GET`s that carry it. The real service exists only on EC2, so a small stand-in
//!   on loopback speaks its documented protocol, and refuses every `GET` without the token as
//!   an instance that requires IMDSv2 does. The credentials it hands out are real ones, from
//!   moto.
//!
//! moto checks every signature, session token and permission here (`enforce_auth`), so the
//! server can only start "ready" and issue if the chain really produced the identity. The
//! server logs who it is at start (`GetCallerIdentity`), which is what these tests read.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use stint_testkit::aws::Moto;

/// A role anyone may assume, allowed everything (so it may assume stint's target roles).
fn create_allowed_role(moto: &Moto, name: &str) -> String {
    let arn = moto.create_role(name);
    moto.python(&format!(
        "boto3.client('iam', endpoint_url=moto_url).put_role_policy(RoleName={name:?}, PolicyName='all', \
         PolicyDocument=json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}}]}}))"
    ));
    arn
}

/// Temporary credentials for `role_arn`, from moto: (key id, secret, session token, expiration).
fn assume(moto: &Moto, role_arn: &str, session: &str) -> (String, String, String, String) {
    let out = moto.python(&format!(
        "c = boto3.client('sts', endpoint_url=moto_url).assume_role(RoleArn={role_arn:?}, RoleSessionName={session:?})['Credentials']\n\
         print(c['AccessKeyId'], c['SecretAccessKey'], c['SessionToken'], c['Expiration'].strftime('%Y-%m-%dT%H:%M:%SZ'))"
    ));
    let parts: Vec<&str> = out.split_whitespace().collect();
    (parts[0].into(), parts[1].into(), parts[2].into(), parts[3].into())
}

struct Setup {
    root: PathBuf,
    moto: Moto,
    target: String,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let root = std::env::temp_dir().join(format!("stint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let moto = Moto::start();
        let target = moto.create_role("developer");
        Setup { root, moto, target }
    }

    /// The server's configuration: role `developer` on AWS (moto), and no AWS key anywhere.
    fn config(&self) -> PathBuf {
        let config = self.root.join("stint.toml");
        std::fs::write(
            &config,
            format!(
                "[[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{m}\"\niam_endpoint = \"{m}\"\ndanger_allow_http_loopback = true\n\
                 [backends.aws.roles]\ndeveloper = \"{arn}\"\n",
                m = self.moto.url,
                arn = self.target
            ),
        )
        .unwrap();
        config
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.root.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Starts the server with `env` (on top of a home with no `.aws`), asks it for AWS
    /// credentials as a developer, and returns its log and the credential.
    fn serve_and_issue(&self, env: &[(&str, &str)]) -> (String, serde_json::Value) {
        let home = self.root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut all = vec![("HOME", home.to_str().unwrap())];
        all.extend_from_slice(env);
        let (server, bootstrap) = start_server_with_env(&self.root.join("data"), &["--config", self.config().to_str().unwrap()], &all);
        let admin = self.root.join("root");
        let b = ok_json(&admin, &["bootstrap", "--server", &server.url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
        enroll_and_login(&server.url, &admin, "root", b["enrollment_code"].as_str().unwrap());
        let dev = self.root.join("dev");
        let code = ok_json(&admin, &["user", "add", "dev", "--group", "developers", "-o", "json"], None)["enrollment_code"].as_str().unwrap().to_owned();
        enroll_and_login(&server.url, &dev, "dev", &code);
        let out = run(&dev, &["creds", "developer", "--backend", "aws", "-o", "json"], None);
        let log = std::fs::read_to_string(&server.log).unwrap();
        assert!(out.status.success(), "{}\nthe server's log:\n{log}", String::from_utf8_lossy(&out.stderr));
        (log, serde_json::from_slice(&out.stdout).unwrap())
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The ARN the server said it calls AWS as.
fn caller(log: &str) -> String {
    let line = log.lines().find(|l| l.contains("AWS backend ready")).unwrap_or_else(|| panic!("the server did not reach AWS:\n{log}"));
    let arn = line.split("caller=").nth(1).unwrap_or_else(|| panic!("no caller in {line}"));
    arn.split_whitespace().next().unwrap().trim_matches('"').to_owned()
}

fn assumed_role_arn(cred: &serde_json::Value) -> &str {
    cred["assumed_role_arn"].as_str().unwrap_or_else(|| panic!("no assumed_role_arn in {cred}"))
}

#[test]
fn a_profile_that_assumes_a_role_from_a_source_profile_is_stints_identity() {
    let s = Setup::new("aws-profile");
    create_allowed_role(&s.moto, "stint-broker");
    let (id, secret) = s.moto.create_admin_user();
    s.moto.enforce_auth();
    let config = s.write(
        "aws-config",
        "[profile stint]\nrole_arn = arn:aws:iam::123456789012:role/stint-broker\nsource_profile = base\nrole_session_name = stint-server\n\
         [profile base]\nregion = us-east-1\n",
    );
    let credentials = s.write("aws-credentials", &format!("[base]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"));
    let (log, cred) = s.serve_and_issue(&[
        ("AWS_CONFIG_FILE", &config),
        ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
        ("AWS_PROFILE", "stint"),
        // Where the chain's own AssumeRole goes: the SDK's standard variable.
        ("AWS_ENDPOINT_URL_STS", &s.moto.url),
    ]);
    assert_eq!(caller(&log), "arn:aws:sts::123456789012:assumed-role/stint-broker/stint-server", "{log}");
    assert!(assumed_role_arn(&cred).starts_with("arn:aws:sts::123456789012:assumed-role/developer/l_"), "{cred}");
    assert!(!log.contains(&secret), "the source profile's secret is in the server's log");
}

/// The token IMDS hands out: a secret of the instance's, which must not reach stint's log.
const IMDS_TOKEN: &str = "AQAEAImdsSessionToken-stint-test==";

/// The instance metadata service, IMDSv2 only: what it was asked, in order.
struct Imds {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    refused: Arc<AtomicUsize>,
}

impl Imds {
    fn start(role: &'static str, credentials: String) -> Imds {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (requests, refused) = (Arc::new(std::sync::Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)));
        let (log, no_token, tokens) = (requests.clone(), refused.clone(), AtomicUsize::new(0));
        const TOKEN: &str = IMDS_TOKEN;
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                let (mut token, mut ttl, mut length) = (None, None, 0usize);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                    match name.to_ascii_lowercase().as_str() {
                        "x-aws-ec2-metadata-token" => token = Some(value.trim().to_owned()),
                        "x-aws-ec2-metadata-token-ttl-seconds" => ttl = Some(value.trim().to_owned()),
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut parts = first.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
                log.lock().unwrap().push(format!("{method} {path}"));
                let (status, body) = match (method.as_str(), path.as_str()) {
                    ("PUT", "/latest/api/token") if ttl.is_some() => {
                        // The first answer lacks its TTL header (a hiccup the SDK reports with
                        // the raw answer, token included); the later ones are right.
                        let first = tokens.fetch_add(1, Ordering::SeqCst) == 0;
                        let header = if first { "" } else { "x-aws-ec2-metadata-token-ttl-seconds: 21600\r\n" };
                        let _ = write!(conn, "HTTP/1.1 200 OK\r\n{header}content-length: {}\r\nconnection: close\r\n\r\n{TOKEN}", TOKEN.len());
                        continue;
                    }
                    ("PUT", _) => ("400 Bad Request", String::new()),
                    _ if token.as_deref() != Some(TOKEN) => {
                        no_token.fetch_add(1, Ordering::SeqCst);
                        ("401 Unauthorized", String::new())
                    }
                    ("GET", "/latest/meta-data/iam/security-credentials/") => ("200 OK", role.to_owned()),
                    ("GET", p) if p == format!("/latest/meta-data/iam/security-credentials/{role}") => ("200 OK", credentials.clone()),
                    _ => ("404 Not Found", String::new()),
                };
                let _ = write!(conn, "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            }
        });
        Imds { url, requests, refused }
    }
}

#[test]
fn an_ec2_instance_role_through_imdsv2_is_stints_identity() {
    let s = Setup::new("aws-imds");
    let instance_role = create_allowed_role(&s.moto, "stint-instance");
    let (id, secret, token, expiration) = assume(&s.moto, &instance_role, "i-0123456789abcdef0");
    s.moto.enforce_auth();
    let answer = serde_json::json!({
        "Code": "Success", "LastUpdated": "2026-12-06T00:00:00Z", "Type": "AWS-HMAC",
        "AccessKeyId": id, "SecretAccessKey": secret, "Token": token, "Expiration": expiration,
    });
    let imds = Imds::start("stint-instance", answer.to_string());
    let empty = s.write("empty", "");
    let (log, cred) = s.serve_and_issue(&[
        ("AWS_CONFIG_FILE", &empty),
        ("AWS_SHARED_CREDENTIALS_FILE", &empty),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url),
        ("AWS_EC2_METADATA_DISABLED", "false"),
    ]);
    // At start the token came without its TTL: stint says why it cannot reach AWS yet, and
    // starts. The credential asked for next is assumed as the instance's role (moto checks it).
    assert!(log.contains("AWS backend cannot call STS at start") && log.contains("TTL header"), "{log}");
    assert!(assumed_role_arn(&cred).starts_with("arn:aws:sts::123456789012:assumed-role/developer/l_"), "{cred}");
    let asked = imds.requests.lock().unwrap().clone();
    assert_eq!(asked.first().map(String::as_str), Some("PUT /latest/api/token"), "IMDSv2 starts with a session token: {asked:?}");
    assert!(asked.iter().any(|r| r == "GET /latest/meta-data/iam/security-credentials/stint-instance"), "{asked:?}");
    assert_eq!(imds.refused.load(Ordering::SeqCst), 0, "every GET carried the session token: {asked:?}");
    for (what, secret) in [("secret access key", secret.as_str()), ("session token", token.as_str()), ("IMDS token", IMDS_TOKEN)] {
        assert!(!log.contains(secret), "the instance's {what} is in the server's log");
    }
}
