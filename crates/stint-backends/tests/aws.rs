//! The AWS backend against the real AWS emulator, moto (`moto[server]`, pinned in
//! tests/requirements.txt), and the real AWS CLI. Each test starts its own
//! `python -m moto.server` on a free loopback port and kills it when done.
//!
//! moto does not evaluate `aws:SourceIdentity`, `aws:TokenIssueTime` or `aws:CurrentTime`
//! conditions, nor session policies: these tests prove what stint sends and writes, and that
//! the issued keys sign requests AWS tools accept, not IAM's evaluation of those documents.
//!
//! These tests fail, never skip, when Python, moto or the AWS CLI is missing: run scripts/test.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use stint_aws::revoke::{self, POLICY_NAME};
use stint_aws::{Aws, Endpoint, Iam, Identity, Keys, Settings};
use stint_backends::aws::{session_duration, session_policy, source_identity, DEFAULT_MAX_SESSION_SECS};
use stint_backends::{AwsBackend, AwsConfig};
use stint_core::backend::{AuthorizedLease, Backend, Credential};
use stint_core::error::Error;
use stint_core::ids::{LeaseId, RoleName, SessionId, UserId};
use stint_core::model::{BackendKind, Lease};
use stint_core::{Clock, ManualClock, Timestamp};
use time::OffsetDateTime;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
const TRUST_ANYONE: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}]}"#;
const PIPELINE: &str = "ci:github:repo:org/x:ref:refs/heads/main";

/// A running moto server, killed on drop.
struct Moto {
    /// The emulator (stint-testkit starts it, sets it up with boto3, and kills it on drop).
    server: stint_testkit::aws::Moto,
    url: String,
    http: reqwest::Client,
}

impl Moto {
    async fn start() -> Moto {
        let server = stint_testkit::aws::Moto::start();
        Moto { url: server.url.clone(), server, http: reqwest::Client::new() }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::insecure_http_loopback(&self.url).expect("loopback endpoint")
    }

    /// STS and IAM on moto, signing as `keys`.
    async fn clients(&self, keys: Keys) -> Aws {
        let settings = Settings::new(REGION, Some(self.endpoint()), Some(self.endpoint())).expect("settings");
        Aws::load(&settings, &Identity::Keys(keys)).await
    }

    async fn iam(&self) -> Iam {
        self.clients(fake_keys()).await.iam
    }

    /// The backend's configuration for `roles`, with moto as STS and IAM.
    fn config(&self, roles: &[(&str, &str)]) -> AwsConfig {
        let roles = roles.iter().map(|(r, arn)| (RoleName::parse(r).expect("role name"), (*arn).to_owned())).collect();
        let mut cfg = AwsConfig::new("aws-test", REGION, roles);
        cfg.sts_endpoint = Some(self.url.clone());
        cfg.iam_endpoint = Some(self.url.clone());
        cfg.allow_http_loopback = true;
        cfg.max_session_secs = 43_200;
        cfg
    }

    fn create_role(&self, name: &str, trust: &str) -> String {
        self.server.create_role_trusting(name, trust)
    }

    /// An IAM user allowed everything, and its access key: stint's own identity.
    fn create_admin_user(&self) -> Keys {
        let (id, secret) = self.server.create_admin_user();
        Keys::new(id, secret, None)
    }

    /// From now on moto checks every request's signature, session token and IAM permissions.
    fn enforce_auth(&self) {
        self.server.enforce_auth();
    }

    /// The session policy moto recorded for the session named `session_name`.
    async fn session_policy_of(&self, session_name: &str) -> Option<String> {
        let data: Value = self.http.get(format!("{}/moto-api/data.json", self.url)).send().await.expect("moto answers").json().await.expect("JSON");
        let sessions = data["sts"]["AssumedRole"].as_array().expect("moto's assumed roles");
        let session = sessions.iter().find(|s| s["session_name"] == session_name).expect("the session was recorded");
        session["policy"].as_str().map(str::to_owned)
    }
}

/// moto accepts any key until [`Moto::enforce_auth`].
fn fake_keys() -> Keys {
    Keys::new("AKIDSTINTTESTBACKEND", "stint-backends-test-secret", None)
}

fn now() -> Timestamp {
    Timestamp(OffsetDateTime::now_utc().unix_timestamp())
}

async fn backend(cfg: AwsConfig, clock: &ManualClock) -> AwsBackend {
    AwsBackend::new(cfg, Identity::Keys(fake_keys()), Arc::new(clock.clone())).await.expect("backend")
}

/// A lease as the broker records it before calling the backend.
fn lease(subject: &str, role: &str, issued_at: Timestamp, ttl_secs: i64) -> Lease {
    let mut rng = rand_core::OsRng;
    let ci = subject.starts_with("ci:");
    Lease {
        id: LeaseId::random(&mut rng),
        backend: "aws-test".into(),
        kind: BackendKind::Aws,
        user_id: (!ci).then(|| UserId::random(&mut rng)),
        subject: subject.into(),
        role: RoleName::parse(role).expect("role name"),
        session_id: (!ci).then(|| SessionId::random(&mut rng)),
        grant_id: None,
        external_id: String::new(),
        issued_at,
        expires_at: Timestamp(issued_at.0 + ttl_secs),
        revoked_at: None,
        revoke_reason: None,
        ended_at: None,
        retry_at: None,
    }
}

/// The lease as the broker hands it to the backend once the decision authorised it; here
/// the test stands in for the decision.
fn authorized(lease: &Lease) -> AuthorizedLease {
    AuthorizedLease::danger_unchecked(lease.clone())
}

fn revoked(mut lease: Lease, at: Timestamp) -> Lease {
    lease.revoked_at = Some(at);
    lease.revoke_reason = Some("revoked by request".into());
    lease
}

/// `name` of the credential: a field or a secret, as the environment mapping names it.
fn value<'a>(c: &'a Credential, key: &str) -> &'a str {
    c.fields.get(key).map(String::as_str).or_else(|| c.secrets.get(key).map(|s| s.expose())).unwrap_or_else(|| panic!("no {key} in the credential"))
}

fn aws_keys(c: &Credential) -> Keys {
    Keys::new(value(c, "access_key_id"), value(c, "secret_access_key"), Some(value(c, "session_token").to_owned()))
}

/// The deny statements of the role's revocation policy: (source identity, cut-off).
async fn deny_statements(iam: &Iam, role: &str) -> Option<Vec<(String, String)>> {
    let doc = iam.get_role_policy(role, POLICY_NAME).await.expect("GetRolePolicy")?;
    let v: Value = serde_json::from_str(&doc).expect("JSON");
    let statements = v["Statement"].as_array().expect("statements").iter();
    Some(
        statements
            .map(|s| {
                assert_eq!((&s["Effect"], &s["Action"], &s["Resource"]), (&Value::from("Deny"), &Value::from("*"), &Value::from("*")), "{s}");
                let id = s["Condition"]["StringEquals"]["aws:SourceIdentity"].as_str().expect("source identity");
                let at = s["Condition"]["DateLessThan"]["aws:TokenIssueTime"].as_str().expect("cut-off");
                (id.to_owned(), at.to_owned())
            })
            .collect(),
    )
}

#[tokio::test]
async fn a_five_minute_lease_gets_a_fifteen_minute_session_fenced_at_the_lease_end() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let clock = ManualClock::new(now());
    let aws = backend(moto.config(&[("deployer", &role_arn)]), &clock).await;
    let l = lease("alice", "deployer", clock.now(), 300);
    assert_eq!(aws.external_id(&l), l.id.as_str());
    let logs = stint_testkit::logs::LogBuffer::default();
    let capture = logs.capture();

    let c = aws.issue(&authorized(&l)).await.expect("AssumeRole");
    drop(capture);

    let key = value(&c, "access_key_id");
    assert!(key.starts_with("ASIA"), "a temporary key: {key}");
    assert_eq!(c.expires_at, l.expires_at, "the lease end, not AWS's 15 minutes");
    let aws_end = Timestamp::parse_rfc3339(value(&c, "aws_expiration")).expect("RFC 3339");
    assert!((900..=905).contains(&(aws_end.0 - clock.now().0)), "DurationSeconds is STS's minimum, 900: AWS expiry {aws_end}, now {}", clock.now());
    assert_eq!(value(&c, "session_name"), l.id.as_str());
    assert_eq!(value(&c, "role_arn"), role_arn);
    assert_eq!(value(&c, "assumed_role_arn"), format!("arn:aws:sts::{ACCOUNT}:assumed-role/deploy/{}", l.id));
    assert_eq!(value(&c, "region"), REGION);
    assert_eq!(value(&c, "source_identity"), "alice");
    assert!(value(&c, "assumed_role_id").ends_with(&format!(":{}", l.id)), "AROA…:<session>");
    let fields: Vec<&str> = c.fields.keys().map(String::as_str).collect();
    assert_eq!(fields, ["access_key_id", "assumed_role_arn", "assumed_role_id", "aws_expiration", "region", "role_arn", "session_name", "source_identity"]);
    let secrets: Vec<&str> = c.secrets.keys().map(String::as_str).collect();
    assert_eq!(secrets, ["secret_access_key", "session_token"]);
    assert!(c.secrets.values().all(|s| s.expose().len() >= 16), "real secrets were returned");
    let env: BTreeMap<&str, &str> = c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("AWS_ACCESS_KEY_ID", "access_key_id"),
            ("AWS_DEFAULT_REGION", "region"),
            ("AWS_REGION", "region"),
            ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
            ("AWS_SESSION_TOKEN", "session_token"),
        ])
    );

    // STS received the session policy that ends the session at the lease end.
    let policy = moto.session_policy_of(l.id.as_str()).await.expect("a session policy");
    assert_eq!(policy, session_policy(l.expires_at));
    let v: Value = serde_json::from_str(&policy).expect("JSON");
    assert_eq!(v["Statement"][0]["Effect"], "Allow");
    assert_eq!(v["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"], l.expires_at.to_rfc3339());
    assert_eq!(v["Statement"][1]["Effect"], "Deny");
    assert_eq!(v["Statement"][1]["Condition"]["DateGreaterThanEquals"]["aws:CurrentTime"], l.expires_at.to_rfc3339());

    // The temporary credentials sign requests as the session named after the lease.
    let me = moto.clients(aws_keys(&c)).await.sts.get_caller_identity().await.expect("GetCallerIdentity");
    assert_eq!(me.arn, value(&c, "assumed_role_arn"));
    assert!(me.arn.contains(l.id.as_str()) && me.user_id.ends_with(&format!(":{}", l.id)), "{me:?}");

    // Neither the logs of the issuance nor the credential's Debug show a secret.
    let shown = format!("{c:?}");
    let logs = logs.text();
    assert!(logs.contains("AssumeRole"), "the issuance was logged:\n{logs}");
    for secret in c.secrets.values() {
        assert!(!shown.contains(secret.expose()), "Debug shows a secret: {shown}");
        assert!(!logs.contains(secret.expose()), "a secret is in the logs:\n{logs}");
    }

    // A natural expiry writes nothing (the key's session policy and expiry end it).
    clock.advance(301);
    aws.end(&l, false).await.expect("ended");
    assert_eq!(moto.iam().await.get_role_policy("deploy", POLICY_NAME).await.expect("GetRolePolicy"), None);
}

#[tokio::test]
async fn session_length_follows_the_lease_up_to_the_configured_maximum() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let clock = ManualClock::new(now());
    let aws = backend(moto.config(&[("deployer", &role_arn)]), &clock).await;

    // Two hours: AWS's expiry is the lease end (STS starts counting when it receives the call).
    let l = lease("alice", "deployer", clock.now(), 7_200);
    let c = aws.issue(&authorized(&l)).await.expect("AssumeRole");
    let aws_end = Timestamp::parse_rfc3339(value(&c, "aws_expiration")).expect("RFC 3339");
    assert!((0..=5).contains(&(aws_end.0 - l.expires_at.0)), "DurationSeconds 7200: AWS expiry {aws_end}, lease end {}", l.expires_at);
    assert_eq!(c.expires_at, l.expires_at);

    // With the roles' default MaxSessionDuration (1 h), the credential ends after an hour.
    let mut cfg = moto.config(&[("deployer", &role_arn)]);
    cfg.max_session_secs = DEFAULT_MAX_SESSION_SECS;
    let capped = backend(cfg, &clock).await;
    let l = lease("alice", "deployer", clock.now(), 7_200);
    assert_eq!(capped.session_request(&l, clock.now()).expect("request").duration_secs, 3_600);
    let c = capped.issue(&authorized(&l)).await.expect("AssumeRole");
    let aws_end = Timestamp::parse_rfc3339(value(&c, "aws_expiration")).expect("RFC 3339");
    assert!((3_600..=3_605).contains(&(aws_end.0 - clock.now().0)), "capped at 3600: AWS expiry {aws_end}");
    assert_eq!(c.expires_at, aws_end, "the earlier of the two");
    assert!(c.expires_at < l.expires_at);

    // A pipeline's subject becomes a valid SourceIdentity that STS accepts.
    let ci = lease(PIPELINE, "deployer", clock.now(), 600);
    let c = aws.issue(&authorized(&ci)).await.expect("AssumeRole for a pipeline");
    assert_eq!(value(&c, "source_identity"), "ci-github-repo-org-x-ref-refs-heads-main");
    assert_eq!(c.expires_at, ci.expires_at);
}

#[tokio::test]
async fn revocations_deny_each_identitys_older_sessions_and_merge_on_the_role() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let start = now();
    let clock = ManualClock::new(start);
    let aws = backend(moto.config(&[("deployer", &role_arn)]), &clock).await;
    let iam = moto.iam().await;

    let alice = lease("alice", "deployer", clock.now(), 3_600);
    let pipeline = lease(PIPELINE, "deployer", clock.now(), 3_600);
    aws.issue(&authorized(&alice)).await.expect("AssumeRole");
    aws.issue(&authorized(&pipeline)).await.expect("AssumeRole");

    // Not revoked: nothing is written.
    aws.end(&alice, false).await.expect("ended");
    assert_eq!(deny_statements(&iam, "deploy").await, None);

    clock.advance(60);
    let alice = revoked(alice, clock.now());
    aws.end(&alice, true).await.expect("revoked");
    let alice_cut = Timestamp(alice.revoked_at.expect("revoked").0 + 1).to_rfc3339();
    assert_eq!(deny_statements(&iam, "deploy").await, Some(vec![("alice".to_owned(), alice_cut.clone())]));
    // The reaper may run it again: same policy.
    aws.end(&alice, true).await.expect("idempotent");
    assert_eq!(deny_statements(&iam, "deploy").await, Some(vec![("alice".to_owned(), alice_cut.clone())]));

    // A second identity is merged with the first, under the SourceIdentity its sessions carry.
    clock.advance(60);
    let pipeline = revoked(pipeline, clock.now());
    aws.end(&pipeline, true).await.expect("revoked");
    let sanitised = aws.session_request(&pipeline, clock.now()).expect("request").source_identity;
    let pipeline_cut = Timestamp(pipeline.revoked_at.expect("revoked").0 + 1).to_rfc3339();
    let both = Some(vec![("alice".to_owned(), alice_cut.clone()), (sanitised.clone(), pipeline_cut.clone())]);
    assert_eq!(deny_statements(&iam, "deploy").await, both);

    // A natural end changes nothing.
    let bob = lease("bob", "deployer", clock.now(), 300);
    aws.end(&bob, false).await.expect("ended");
    assert_eq!(deny_statements(&iam, "deploy").await, both);

    // 13 hours on, no session can predate the old cut-offs: only carol's is kept.
    clock.set(Timestamp(start.0 + 13 * 3_600));
    let carol = revoked(lease("carol", "deployer", clock.now(), 600), clock.now());
    aws.end(&carol, true).await.expect("revoked");
    assert_eq!(deny_statements(&iam, "deploy").await, Some(vec![("carol".to_owned(), Timestamp(carol.revoked_at.expect("revoked").0 + 1).to_rfc3339())]));

    // And once nothing is left to deny, the policy is removed.
    clock.set(Timestamp(start.0 + 26 * 3_600));
    let dave = revoked(lease("dave", "deployer", Timestamp(start.0), 600), Timestamp(start.0 + 600));
    aws.end(&dave, true).await.expect("revoked long ago");
    assert_eq!(deny_statements(&iam, "deploy").await, None);

    // A statement stint did not write is neither dropped nor overwritten.
    let foreign = revoke::deny_all_older_sessions(OffsetDateTime::now_utc());
    iam.put_role_policy("deploy", POLICY_NAME, &foreign).await.expect("PutRolePolicy");
    let e = aws.end(&carol, true).await.expect_err("refuses to merge");
    assert_eq!(e.code(), "backend_unavailable", "{e}");
    assert!(e.to_string().contains("did not write"), "{e}");
    assert_eq!(iam.get_role_policy("deploy", POLICY_NAME).await.expect("GetRolePolicy").as_deref(), Some(foreign.as_str()));
}

#[tokio::test]
async fn without_revoke_sessions_a_revocation_writes_nothing() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let clock = ManualClock::new(now());
    let mut cfg = moto.config(&[("deployer", &role_arn)]);
    cfg.revoke_sessions = false;
    let aws = backend(cfg, &clock).await;
    let l = lease("alice", "deployer", clock.now(), 600);
    aws.issue(&authorized(&l)).await.expect("AssumeRole");
    let l = revoked(l, clock.now());
    aws.end(&l, true).await.expect("nothing to do");
    assert_eq!(moto.iam().await.get_role_policy("deploy", POLICY_NAME).await.expect("GetRolePolicy"), None);
    let list = moto.server.role_policy_names("deploy");
    assert!(list.is_empty(), "the role has no inline policy: {list:?}");
}

#[tokio::test]
async fn a_failed_issuance_neutralises_nobody() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let clock = ManualClock::new(now());
    let aws = backend(moto.config(&[("deployer", &role_arn)]), &clock).await;
    // The broker revokes a lease whose issuance failed; no key reached anyone, so no deny.
    let mut l = revoked(lease("alice", "deployer", clock.now(), 600), clock.now());
    l.revoke_reason = Some(stint_core::model::ISSUANCE_FAILED.to_owned());
    aws.end(&l, true).await.expect("nothing to do");
    assert_eq!(moto.iam().await.get_role_policy("deploy", POLICY_NAME).await.expect("GetRolePolicy"), None);
    // The same lease revoked for any other reason is neutralised.
    l.revoke_reason = Some("user disabled".to_owned());
    aws.end(&l, true).await.expect("deny written");
    assert!(moto.iam().await.get_role_policy("deploy", POLICY_NAME).await.expect("GetRolePolicy").is_some());
}

#[tokio::test]
async fn the_aws_cli_signs_with_the_issued_environment_and_refusals_are_reported() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let locked = moto.create_role("locked", &TRUST_ANYONE.replace(r#""AWS":"*""#, r#""AWS":"arn:aws:iam::123456789012:user/nobody""#));
    let stint = moto.create_admin_user();
    moto.enforce_auth();
    let clock = ManualClock::new(now());
    let aws =
        AwsBackend::new(moto.config(&[("deployer", &role_arn), ("locked", &locked)]), Identity::Keys(stint), Arc::new(clock.clone())).await.expect("backend");
    assert_eq!(aws.check().await.expect("GetCallerIdentity"), format!("arn:aws:iam::{ACCOUNT}:user/stint"));

    let l = lease("alice", "deployer", clock.now(), 600);
    let c = aws.issue(&authorized(&l)).await.expect("AssumeRole, signature checked");

    // The real AWS CLI with nothing but the issued variables: moto now checks the signature
    // and the session token, so a wrong secret or token would fail.
    let dir = std::env::temp_dir().join(format!("stint-backends-aws-cli-{}", l.id));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (config, credentials) = (dir.join("config"), dir.join("credentials"));
    std::fs::write(&config, "").expect("empty config");
    std::fs::write(&credentials, "").expect("empty credentials");
    let cli = |env: &BTreeMap<String, String>| {
        let aws_cli = stint_testkit::aws::aws_cli();
        assert!(aws_cli.exists(), "{} does not exist: run scripts/test (awscli is in tests/requirements.txt)", aws_cli.display());
        Command::new(&aws_cli)
            .args(["sts", "get-caller-identity", "--output", "json", "--endpoint-url", &moto.url])
            .env_clear()
            .env("HOME", &dir)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env)
            .output()
            .expect("the AWS CLI runs")
    };
    let mut env: BTreeMap<String, String> = c.env.iter().map(|(var, key)| (var.clone(), value(&c, key).to_owned())).collect();
    let out = cli(&env);
    assert!(out.status.success(), "aws sts get-caller-identity failed: {}", String::from_utf8_lossy(&out.stderr));
    let me: Value = serde_json::from_slice(&out.stdout).expect("JSON from the CLI");
    assert_eq!(me["Arn"], value(&c, "assumed_role_arn"));
    assert!(me["Arn"].as_str().is_some_and(|a| a.ends_with(&format!("/{}", l.id))), "{me}");
    assert_eq!(me["Account"], ACCOUNT);

    env.insert("AWS_SESSION_TOKEN".into(), "forged-token".into());
    let out = cli(&env);
    assert!(!out.status.success(), "moto checks the session token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidClientTokenId"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).expect("cleanup");

    // A role whose trust policy does not name stint: AWS refuses, and the caller is told so.
    let e = aws.issue(&authorized(&lease("alice", "locked", clock.now(), 600))).await.expect_err("trust policy refuses");
    assert!(matches!(e, Error::Forbidden { code: "backend_refused", .. }), "{e:?}");
    assert!(e.to_string().contains("AccessDenied") && e.to_string().contains("aws-test"), "{e}");
    assert!(!e.to_string().contains(value(&c, "secret_access_key")));
}

#[tokio::test]
async fn an_unreachable_aws_is_unavailable_and_bad_configurations_are_refused() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/deploy");
    let roles = BTreeMap::from([(RoleName::parse("deployer").expect("role"), arn.clone())]);
    let mut cfg = AwsConfig::new("aws-test", REGION, roles.clone());
    cfg.sts_endpoint = Some(format!("http://127.0.0.1:{closed}"));
    cfg.iam_endpoint = cfg.sts_endpoint.clone();
    cfg.allow_http_loopback = true;
    let clock = ManualClock::new(now());
    let aws = backend(cfg.clone(), &clock).await;
    let l = lease("alice", "deployer", clock.now(), 600);
    let e = aws.issue(&authorized(&l)).await.expect_err("nothing listens");
    assert!(matches!(e, Error::Upstream { code: "backend_unavailable", .. }), "{e:?}");
    let e = aws.end(&revoked(l, clock.now()), true).await.expect_err("nothing listens");
    assert!(matches!(e, Error::Upstream { code: "backend_unavailable", .. }), "{e:?}");

    let mut plain_http = cfg.clone();
    plain_http.allow_http_loopback = false;
    assert!(refused(plain_http, &clock).await.is_some_and(|e| e.contains("https")));
    for bad in ["deploy", "arn:aws:iam::123:role/deploy", "arn:aws:iam::123456789012:user/deploy", "arn:aws:iam::123456789012:role/"] {
        let cfg = AwsConfig::new("aws-test", REGION, BTreeMap::from([(RoleName::parse("deployer").expect("role"), bad.to_owned())]));
        assert!(refused(cfg, &clock).await.is_some_and(|e| e.contains("not an IAM role ARN")), "{bad}");
    }
    let mut too_long = AwsConfig::new("aws-test", REGION, roles.clone());
    too_long.max_session_secs = 43_201;
    assert!(refused(too_long, &clock).await.is_some_and(|e| e.contains("max_session_secs")));
    assert!(refused(AwsConfig::new("aws-test", "eu-west-1.evil.com", roles.clone()), &clock).await.is_some());
    let path = AwsConfig::new(
        "aws-test",
        REGION,
        BTreeMap::from([(RoleName::parse("deployer").expect("role"), format!("arn:aws:iam::{ACCOUNT}:role/team/a/deploy"))]),
    );
    assert!(refused(path, &clock).await.is_none(), "role paths are fine");
}

#[tokio::test]
async fn session_requests_name_the_lease_and_the_person() {
    let clock = ManualClock::new(Timestamp(1_795_680_960)); // 2026-11-26T08:16:00Z
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/team/deploy");
    let cfg = AwsConfig::new("aws-test", REGION, BTreeMap::from([(RoleName::parse("deployer").expect("role"), arn.clone())]));
    let aws = backend(cfg, &clock).await;

    let mut l = lease("alice", "deployer", clock.now(), 300);
    l.grant_id = Some("g_7x2k".into());
    let r = aws.session_request(&l, clock.now()).expect("request");
    assert_eq!((r.role_arn.as_str(), r.session_name.as_str(), r.source_identity.as_str()), (arn.as_str(), l.id.as_str(), "alice"));
    let session = l.session_id.as_ref().expect("session").as_str();
    let tags: Vec<(&str, &str)> = r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(tags, [("stint-lease", l.id.as_str()), ("stint-role", "deployer"), ("stint-session", session), ("stint-grant", "g_7x2k")]);
    assert_eq!(r.duration_secs, 900);
    assert_eq!(r.policy, session_policy(l.expires_at));
    assert!(r.policy.contains(r#""aws:CurrentTime":"2026-11-26T08:21:00Z""#), "{}", r.policy);

    let ci = lease(PIPELINE, "deployer", clock.now(), 8 * 3_600);
    let r = aws.session_request(&ci, clock.now()).expect("request");
    assert_eq!(r.source_identity, "ci-github-repo-org-x-ref-refs-heads-main");
    assert!(r.tags.contains(&("stint-session".into(), "none".into())) && !r.tags.iter().any(|(k, _)| k == "stint-grant"), "{:?}", r.tags);
    assert_eq!(r.duration_secs, DEFAULT_MAX_SESSION_SECS, "capped by the role's MaxSessionDuration");

    let other = lease("bob", "readonly", clock.now(), 300);
    assert!(aws.session_request(&other, clock.now()).is_err(), "a role this backend does not serve");
}

#[test]
fn source_identities_fit_sts_and_durations_are_clamped() {
    let valid = |s: &str| (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    for subject in ["alice", "a", "", "ci:gitlab:project_path:grp/sub/proj:ref_type:branch:ref:main", "zoë müller", &"x".repeat(200)] {
        let id = source_identity(subject);
        assert!(valid(&id), "{subject:?} → {id:?}");
    }
    assert_eq!(source_identity("alice.smith@example.com"), "alice.smith@example.com");
    assert_eq!(source_identity("a"), "a-");
    let long_a = format!("ci:github:repo:org/{}:environment:prod", "r".repeat(60));
    let long_b = format!("ci:github:repo:org/{}:environment:staging", "r".repeat(60));
    let (a, b) = (source_identity(&long_a), source_identity(&long_b));
    assert_eq!((a.len(), b.len()), (64, 64));
    assert_eq!(a[..55], b[..55], "the readable prefix is kept");
    assert_ne!(a, b, "a hash of the whole subject keeps long subjects apart");
    assert_eq!(source_identity(&long_a), a, "deterministic: revocation finds the identity issuance used");

    let t = Timestamp(1_000_000);
    assert_eq!(session_duration(t, Timestamp(t.0 + 1), 3_600), 900);
    assert_eq!(session_duration(t, Timestamp(t.0 - 5), 3_600), 900);
    assert_eq!(session_duration(t, Timestamp(t.0 + 901), 3_600), 901);
    assert_eq!(session_duration(t, Timestamp(t.0 + 50_000), 43_200), 43_200);
    assert_eq!(session_duration(t, Timestamp(t.0 + 50_000), 3_600), 3_600);
}

#[tokio::test]
async fn a_full_deny_policy_fails_closed_for_the_whole_role() {
    let moto = Moto::start().await;
    let role_arn = moto.create_role("deploy", TRUST_ANYONE);
    let clock = ManualClock::new(now());
    let aws = backend(moto.config(&[("deployer", &role_arn)]), &clock).await;
    let iam = moto.iam().await;
    let mut written = 0;
    loop {
        assert!(written < 200, "a role's inline policies are limited to 10,240 characters");
        let l = revoked(lease(&format!("user-{written:03}@example.com"), "deployer", clock.now(), 600), clock.now());
        aws.end(&l, true).await.expect("a revocation never fails for lack of room");
        if iam.get_role_policy("deploy", stint_backends::aws::ALL_SESSIONS_POLICY).await.expect("GetRolePolicy").is_some() {
            break;
        }
        written += 1;
    }
    assert!(written >= 30, "only {written} revocations fit");
    // The one that did not fit denies every older session of the role instead.
    let all: serde_json::Value =
        serde_json::from_str(&iam.get_role_policy("deploy", stint_backends::aws::ALL_SESSIONS_POLICY).await.unwrap().unwrap()).unwrap();
    let st = &all["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert!(st["Condition"]["DateLessThan"]["aws:TokenIssueTime"].is_string() && st["Condition"].get("StringEquals").is_none(), "{all}");
    let kept = deny_statements(&iam, "deploy").await.expect("the policy");
    assert_eq!(kept.len(), written, "every revocation that fitted is still there");
}

/// The configuration error `AwsBackend::new` reports for `cfg`, if any.
async fn refused(cfg: AwsConfig, clock: &ManualClock) -> Option<String> {
    AwsBackend::new(cfg, Identity::Keys(fake_keys()), Arc::new(clock.clone())).await.err().map(|e| e.to_string())
}
