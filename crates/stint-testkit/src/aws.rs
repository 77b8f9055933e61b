//! The AWS emulator (PyPI `moto[server]`) and the real AWS SDK and CLI (`boto3`, `awscli`),
//! all from the pinned `.venv` that scripts/test installs. Tests fail, never skip, without it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, workspace_root, Process};

/// A trust policy letting anyone assume the role, tag the session and set its source identity.
pub const TRUST_ANYONE: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}"#;

/// The moto account and region.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// The venv's Python (`$STINT_TEST_PYTHON` overrides).
pub fn python() -> PathBuf {
    let p = std::env::var_os("STINT_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(p.exists(), "{} does not exist: run scripts/test, which installs tests/requirements.txt (moto, boto3, awscli) into .venv", p.display());
    p
}

/// The venv's `aws` (AWS CLI v1, from PyPI).
pub fn aws_cli() -> PathBuf {
    let p = python().with_file_name("aws");
    assert!(p.exists(), "{} does not exist: run scripts/test", p.display());
    p
}

/// A running `moto.server` on a loopback port, killed when dropped.
pub struct Moto {
    process: Process,
    log: PathBuf,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.process.0.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Moto {
    /// Starts moto and waits (at most 60 s) until it listens; fails with its output if it
    /// exits first (moto not installed: run scripts/test). A port taken between choosing and
    /// binding it (another test's server) makes moto exit: it is started again on another.
    pub fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(m) => return m,
                Err(out) => last = out,
            }
        }
        panic!("moto.server exited before listening: is moto installed? run scripts/test. Its output:\n{last}");
    }

    fn try_start() -> Result<Moto, String> {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("stint-moto-{}-{port}.log", std::process::id()));
        let child = Command::new(python())
            .args(["-m", "moto.server", "-p", &port.to_string(), "-H", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("moto's log file"))
            .spawn()
            .expect("moto.server starts (run scripts/test to create .venv)");
        let mut moto = Moto { process: Process(child), log, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.process.0.try_wait().expect("moto's status") {
                return Err(format!("({status}) {}", std::fs::read_to_string(&moto.log).unwrap_or_default()));
            }
            assert!(Instant::now() < deadline, "moto.server did not listen on port {port} within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(moto)
    }

    /// Runs a Python snippet with `moto_url` defined and boto3 imported; returns its stdout.
    pub fn python(&self, code: &str) -> String {
        let script = format!("import boto3, json\nmoto_url = {:?}\n{code}\n", self.url);
        let out = Command::new(python())
            .arg("-c")
            .arg(script)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", REGION)
            .output()
            .expect("python runs");
        assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates an IAM role anyone may assume (with session tags and a source identity);
    /// returns its ARN.
    pub fn create_role(&self, name: &str) -> String {
        self.create_role_trusting(name, TRUST_ANYONE)
    }

    /// Creates an IAM role with trust policy `trust` (JSON) and a 12 h session limit; returns its ARN.
    pub fn create_role_trusting(&self, name: &str, trust: &str) -> String {
        let code = format!(
            "iam = boto3.client('iam', endpoint_url=moto_url)\n\
             print(iam.create_role(RoleName={name:?}, AssumeRolePolicyDocument={trust:?}, MaxSessionDuration=43200)['Role']['Arn'])"
        );
        self.python(&code).trim().to_owned()
    }

    /// An IAM user `stint` allowed everything; returns its access key id and secret.
    pub fn create_admin_user(&self) -> (String, String) {
        let code = "iam = boto3.client('iam', endpoint_url=moto_url)\n\
             iam.create_user(UserName='stint')\n\
             iam.put_user_policy(UserName='stint', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
             k = iam.create_access_key(UserName='stint')['AccessKey']\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])";
        let out = self.python(code);
        let (id, secret) = out.trim().split_once(' ').expect("an access key id and a secret");
        (id.to_owned(), secret.to_owned())
    }

    /// From now on moto checks every request's signature, session token and IAM permissions
    /// (so set up roles and users first).
    pub fn enforce_auth(&self) {
        self.python("import requests\nrequests.post(moto_url + '/moto-api/reset-auth', data=b'0').raise_for_status()");
    }

    /// The names of the role's inline policies.
    pub fn role_policy_names(&self, role: &str) -> Vec<String> {
        let code = format!("print(json.dumps(boto3.client('iam', endpoint_url=moto_url).list_role_policies(RoleName={role:?})['PolicyNames']))");
        serde_json::from_str(self.python(&code).trim()).expect("a JSON list")
    }

    /// The inline policy `policy` of role `role`, as JSON text, or `None`.
    pub fn role_policy(&self, role: &str, policy: &str) -> Option<String> {
        let code = format!(
            "iam = boto3.client('iam', endpoint_url=moto_url)\n\
             try:\n    print(json.dumps(iam.get_role_policy(RoleName={role:?}, PolicyName={policy:?})['PolicyDocument']))\n\
             except iam.exceptions.NoSuchEntityException:\n    print('')"
        );
        Some(self.python(&code).trim().to_owned()).filter(|s| !s.is_empty())
    }
}
