//! stint-aws against the real AWS emulator, moto (`moto[server]`, pinned in
//! tests/requirements.txt). Each test starts its own `python -m moto.server` on a free
//! loopback port and kills it when done.
//!
//! By default moto accepts any signature. [`Moto::enforce_auth`] switches on its IAM
//! authentication, after which moto recomputes every request's SigV4 signature with botocore
//! and checks the session token of temporary credentials — so those tests prove the
//! hand-written signer agrees with the AWS SDK.
//!
//! These tests fail, never skip, when Python or moto is missing: run scripts/test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use stint_aws::revoke::{self, Revocation};
use stint_aws::{AmbientEnv, Clock, Credentials, CredentialsProvider, Endpoint, Error, Iam, SecretString, Sts, SystemClock};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const TRUST_ANYONE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

/// A running moto server, killed on drop.
struct Moto {
    /// The emulator (stint-testkit starts it, sets it up with boto3, and kills it on drop).
    server: stint_testkit::aws::Moto,
    url: String,
}

impl Moto {
    async fn start() -> Moto {
        let server = stint_testkit::aws::Moto::start();
        Moto { url: server.url.clone(), server }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::insecure_http_loopback(&self.url).expect("loopback endpoint")
    }

    fn sts(&self, credentials: CredentialsProvider) -> Sts {
        Sts::new(REGION, self.endpoint(), credentials).expect("STS client")
    }

    fn iam(&self, credentials: CredentialsProvider) -> Iam {
        Iam::new(self.endpoint(), credentials).expect("IAM client")
    }

    fn create_role(&self, name: &str, trust: &str) -> String {
        self.server.create_role_trusting(name, trust)
    }

    /// An IAM user allowed everything, and its access key: stint's "own" identity.
    fn create_admin_user(&self) -> Credentials {
        let (id, secret) = self.server.create_admin_user();
        Credentials::new(id, SecretString::new(secret))
    }

    /// From now on moto checks every request's signature and the caller's IAM permissions.
    fn enforce_auth(&self) {
        self.server.enforce_auth();
    }
}

/// moto accepts any key until [`Moto::enforce_auth`].
fn admin_credentials() -> Credentials {
    Credentials::new("AKIDSTINTTESTADMIN00", SecretString::new("stint-test-admin-secret"))
}

fn env(vars: &[(&str, &str)]) -> AmbientEnv {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    AmbientEnv::from_lookup(|k| map.get(k).cloned())
}

/// The ambient chain over an injected environment (never the process's own).
fn chain(vars: &[(&str, &str)], sts_endpoint: Option<Endpoint>, clock: Arc<dyn Clock>) -> CredentialsProvider {
    let mut all = vec![("HOME", "/nonexistent-stint-test-home")];
    all.extend_from_slice(vars);
    CredentialsProvider::chain(env(&all), sts_endpoint, clock).expect("chain")
}

fn tags() -> Vec<(String, String)> {
    vec![("team".into(), "infra".into()), ("ticket".into(), "OPS-1".into())]
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("stint-aws-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("temp file");
    path
}

#[tokio::test]
async fn assume_role_and_call_sts_with_the_session() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let logs = stint_testkit::logs::LogBuffer::default();
    let _capture = logs.capture();
    const ENV_SECRET: &str = "env-secret-wJalrXUtnFEMIK7MDENG";
    let own = chain(&[("AWS_ACCESS_KEY_ID", "AKIDSTINTTESTENV0000"), ("AWS_SECRET_ACCESS_KEY", ENV_SECRET)], None, Arc::new(SystemClock));
    let sts = moto.sts(own);

    let before = OffsetDateTime::now_utc();
    let session_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let r = sts.assume_role(&role_arn, "alice-1700000000", "alice@example.com", &tags(), 900, Some(session_policy)).await.expect("AssumeRole");

    let c = &r.credentials;
    assert!(c.access_key_id().starts_with("ASIA"), "temporary key id: {}", c.access_key_id());
    assert!(c.session_token().is_some_and(|t| !t.expose().is_empty()));
    let expires = c.expiration().expect("an expiration");
    let lifetime = (expires - before).whole_seconds();
    assert!((880..=960).contains(&lifetime), "expires {lifetime} s from now, asked for 900");
    assert_eq!(r.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/deploy/alice-1700000000"));
    assert!(r.assumed_role_id.starts_with("AROA") && r.assumed_role_id.ends_with(":alice-1700000000"), "{}", r.assumed_role_id);
    let shown = format!("{r:?}");
    assert!(!shown.contains(c.secret_access_key().expose()), "Debug leaks the secret: {shown}");

    // The session's own credentials, session token included, sign the next call.
    let as_session = moto.sts(CredentialsProvider::fixed(r.credentials.clone()));
    let me = as_session.get_caller_identity().await.expect("GetCallerIdentity");
    assert_eq!(me.arn, r.arn);
    assert_eq!(me.account, ACCOUNT);

    // Limits are checked before sending, with a message naming the rule.
    let e = sts.assume_role(&role_arn, "alice", "alice", &[], 60, None).await.expect_err("too short");
    assert!(matches!(&e, Error::Invalid(m) if m.contains("DurationSeconds")), "{e}");

    // The whole issuance was logged (at trace level, every crate), and no secret was.
    let logs = logs.text();
    assert!(logs.contains("AWS request") && logs.contains("resolved stint's AWS credentials"), "logs were captured:\n{logs}");
    let token = c.session_token().expect("token").expose();
    for secret in [ENV_SECRET, c.secret_access_key().expose(), token] {
        assert!(!logs.contains(secret), "a secret is in the logs:\n{logs}");
    }
}

#[tokio::test]
async fn deny_policies_round_trip_through_iam_and_aws_errors_keep_their_code() {
    let moto = Moto::start().await;
    moto.create_role("deploy", TRUST_ANYONE);
    let iam = moto.iam(CredentialsProvider::fixed(admin_credentials()));
    let now = OffsetDateTime::now_utc();

    let revocations = [
        Revocation { source_identity: "alice@example.com".into(), revoked_at: now },
        Revocation { source_identity: "bob@example.com".into(), revoked_at: now - time::Duration::hours(1) },
        Revocation { source_identity: "carol@example.com".into(), revoked_at: now - time::Duration::hours(13) },
    ];
    let doc = revoke::deny_older_sessions(&revocations, now, stint_aws::iam::ROLE_INLINE_POLICY_LIMIT).expect("fits").expect("two live");
    iam.put_role_policy("deploy", revoke::POLICY_NAME, &doc).await.expect("PutRolePolicy");
    let back = iam.get_role_policy("deploy", revoke::POLICY_NAME).await.expect("GetRolePolicy").expect("present");
    assert_eq!(back, doc, "IAM returns the document percent-encoded; decoded it is what was put");
    let v: Value = serde_json::from_str(&back).expect("JSON");
    let statements = v["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 2, "carol's revocation is older than any live session");
    assert_eq!(statements[0]["Effect"], "Deny");
    assert_eq!(statements[0]["Condition"]["StringEquals"]["aws:SourceIdentity"], "alice@example.com");
    assert!(statements[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"].as_str().is_some_and(|t| t.ends_with('Z')));

    let whole = revoke::deny_all_older_sessions(now);
    iam.put_role_policy("deploy", "AWSRevokeOlderSessions", &whole).await.expect("PutRolePolicy");
    assert_eq!(iam.get_role_policy("deploy", "AWSRevokeOlderSessions").await.expect("get").as_deref(), Some(whole.as_str()));

    assert!(iam.delete_role_policy("deploy", revoke::POLICY_NAME).await.expect("DeleteRolePolicy"));
    assert_eq!(iam.get_role_policy("deploy", revoke::POLICY_NAME).await.expect("get"), None);
    assert!(!iam.delete_role_policy("deploy", revoke::POLICY_NAME).await.expect("deleting twice is fine"));
    assert_eq!(iam.get_role_policy("no-such-role", "p").await.expect("get"), None);

    let e = iam.put_role_policy("deploy", "broken", "this is not JSON").await.expect_err("malformed");
    assert_eq!(e.aws_code(), Some("MalformedPolicyDocument"), "{e}");
    assert!(matches!(e, Error::Aws { status: 400, .. }), "{e}");
    let e = iam.put_role_policy("no-such-role", "p", &whole).await.expect_err("no role");
    assert_eq!(e.aws_code(), Some("NoSuchEntity"), "{e}");
    assert!(e.to_string().contains("NoSuchEntity"), "{e}");
}

#[tokio::test]
async fn moto_verifies_our_signatures_and_session_tokens() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let locked = moto.create_role("locked", &TRUST_ANYONE.replace(r#""AWS":"*""#, r#""AWS":"arn:aws:iam::123456789012:user/nobody""#));
    let user = moto.create_admin_user();
    moto.enforce_auth();

    // stint's own identity comes from a shared credentials file, profile "ci".
    let file = temp_file(
        "credentials",
        &format!(
            "[default]\naws_access_key_id = AKIDWRONGPROFILE0000\naws_secret_access_key = x\n\n[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            user.access_key_id(),
            user.secret_access_key().expose()
        ),
    );
    let own = chain(&[("AWS_SHARED_CREDENTIALS_FILE", file.to_str().expect("utf-8 path")), ("AWS_PROFILE", "ci")], None, Arc::new(SystemClock));
    let sts = moto.sts(own.clone());
    let me = sts.get_caller_identity().await.expect("GetCallerIdentity signed with the profile's key");
    assert_eq!(me.arn, format!("arn:aws:iam::{ACCOUNT}:user/stint"));

    let r = sts.assume_role(&role_arn, "bob-1", "bob@example.com", &tags(), 900, None).await.expect("AssumeRole, signature checked");
    let session = moto.sts(CredentialsProvider::fixed(r.credentials.clone()));
    assert_eq!(session.get_caller_identity().await.expect("signed with the session token").arn, r.arn);

    // IAM, signed for us-east-1 by the global client, passes too.
    let iam = moto.iam(own);
    iam.put_role_policy("deploy", revoke::POLICY_NAME, &revoke::deny_all_older_sessions(OffsetDateTime::now_utc())).await.expect("PutRolePolicy");

    // What moto refuses surfaces with AWS's code.
    let wrong_secret = Credentials::new(user.access_key_id(), SecretString::new("not-the-secret"));
    let e = moto.sts(CredentialsProvider::fixed(wrong_secret)).get_caller_identity().await.expect_err("bad signature");
    assert_eq!(e.aws_code(), Some("SignatureDoesNotMatch"), "{e}");
    assert!(!e.to_string().contains("not-the-secret"));
    let wrong_token = Credentials::temporary(r.credentials.access_key_id(), r.credentials.secret_access_key().clone(), SecretString::new("forged-token"), None);
    let e = moto.sts(CredentialsProvider::fixed(wrong_token)).get_caller_identity().await.expect_err("bad token");
    assert_eq!(e.aws_code(), Some("InvalidClientTokenId"), "{e}");
    let e = sts.assume_role(&locked, "bob-2", "bob@example.com", &[], 900, None).await.expect_err("trust policy refuses");
    assert_eq!(e.aws_code(), Some("AccessDenied"), "{e}");
    std::fs::remove_file(file).expect("cleanup");
}

/// A stand-in for the ECS agent / EKS Pod Identity agent: serves the container credentials
/// provider's JSON on loopback, checking the `Authorization` header, and counts requests.
struct ContainerAgent {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl ContainerAgent {
    async fn start(token: &'static str, answer: String) -> ContainerAgent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
        let url = format!("http://127.0.0.1:{}/v1/credentials", listener.local_addr().expect("bound").port());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                let authorized = request.contains(&format!("\r\nauthorization: {}\r\n", token.to_ascii_lowercase()));
                let (status, body) =
                    if authorized { ("200 OK", answer.clone()) } else { ("401 Unauthorized", r#"{"code":"AccessDenied","message":"bad token"}"#.to_owned()) };
                let reply = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        ContainerAgent { url, requests }
    }
}

struct ManualClock(Mutex<OffsetDateTime>);

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("not poisoned")
    }
}

#[tokio::test]
async fn container_provider_credentials_are_cached_refreshed_and_signed_with() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("task", TRUST_ANYONE);
    let user = moto.create_admin_user();
    moto.enforce_auth();
    let task = moto.sts(CredentialsProvider::fixed(user)).assume_role(&role_arn, "task-1", "ecs-task", &[], 3600, None).await.expect("AssumeRole");
    let c = &task.credentials;
    let expiration = c.expiration().expect("expiration");
    let rfc3339 = expiration.format(&time::format_description::well_known::Rfc3339).expect("formats");
    let answer = serde_json::json!({
        "AccessKeyId": c.access_key_id(),
        "SecretAccessKey": c.secret_access_key().expose(),
        "Token": c.session_token().expect("token").expose(),
        "Expiration": rfc3339,
        "RoleArn": role_arn,
    })
    .to_string();
    let agent = ContainerAgent::start("Basic c3RpbnQ6dGVzdA==", answer).await;
    let token_file = temp_file("container-token", "Basic c3RpbnQ6dGVzdA==\n");

    let clock = Arc::new(ManualClock(Mutex::new(OffsetDateTime::now_utc())));
    let own = chain(
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent.url), ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.to_str().expect("utf-8 path"))],
        None,
        clock.clone(),
    );
    let me = moto.sts(own.clone()).get_caller_identity().await.expect("GetCallerIdentity with the container's credentials");
    assert_eq!(me.arn, task.arn);
    own.credentials().await.expect("cached");
    assert_eq!(agent.requests.load(Ordering::SeqCst), 1, "cached until 5 min before expiry");

    *clock.0.lock().expect("not poisoned") = expiration - time::Duration::minutes(4);
    own.credentials().await.expect("refreshed");
    assert_eq!(agent.requests.load(Ordering::SeqCst), 2, "refreshed inside the 5-minute window");

    // A wrong token: the agent's error, with its code, and no fall-through to another source.
    let other = chain(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &agent.url), ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Basic wrong")], None, Arc::new(SystemClock));
    let e = other.credentials().await.expect_err("refused");
    assert_eq!(e.aws_code(), Some("AccessDenied"), "{e}");
    assert!(!e.to_string().contains("Basic wrong"), "{e}");
    std::fs::remove_file(token_file).expect("cleanup");
}

#[tokio::test]
async fn web_identity_token_file_is_exchanged_unsigned() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("gha", TRUST_ANYONE);
    let token_file = temp_file("web-identity-token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvaW5mcmEifQ.c2ln\n");
    let own = chain(
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().expect("utf-8 path")),
            ("AWS_ROLE_ARN", &role_arn),
            ("AWS_ROLE_SESSION_NAME", "stint-gha"),
            ("AWS_REGION", REGION),
        ],
        Some(moto.endpoint()),
        Arc::new(SystemClock),
    );
    let c = own.credentials().await.expect("AssumeRoleWithWebIdentity");
    assert!(c.access_key_id().starts_with("ASIA"), "{}", c.access_key_id());
    assert!(c.expiration().is_some());
    let me = moto.sts(own).get_caller_identity().await.expect("GetCallerIdentity");
    assert_eq!(me.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/gha/stint-gha"));
    std::fs::remove_file(token_file).expect("cleanup");
}
