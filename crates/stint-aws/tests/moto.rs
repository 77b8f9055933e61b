//! stint-aws through the AWS SDK against the real AWS emulator, moto (`moto[server]`, pinned in
//! tests/requirements.txt). Each test starts its own `python -m moto.server` on a free
//! loopback port and kills it when done.
//!
//! By default moto accepts any signature. [`Moto::enforce_auth`] switches on its IAM
//! authentication, after which moto recomputes every request's SigV4 signature with botocore
//! and checks the session token of temporary credentials and the caller's permissions.
//!
//! The default credential chain (profiles, web identity, IMDSv2) is tested through the real
//! `stint server`, whose environment a test can set: crates/stint-cli/tests/aws_identity.rs.
//!
//! These tests fail, never skip, when Python or moto is missing: run scripts/test.

use serde_json::Value;
use stint_aws::revoke::{self, Revocation};
use stint_aws::{Aws, Endpoint, Error, Identity, Keys, Settings};
use stint_testkit::aws::{ACCOUNT, REGION, TRUST_ANYONE};
use time::OffsetDateTime;

/// A running moto server, killed on drop.
struct Moto(stint_testkit::aws::Moto);

impl Moto {
    fn start() -> Moto {
        Moto(stint_testkit::aws::Moto::start())
    }

    /// STS and IAM on moto, signing as `keys`.
    async fn clients(&self, keys: Keys) -> Aws {
        let endpoint = Endpoint::insecure_http_loopback(&self.0.url).expect("loopback endpoint");
        let settings = Settings::new(REGION, Some(endpoint.clone()), Some(endpoint)).expect("settings");
        Aws::load(&settings, &Identity::Keys(keys)).await
    }
}

/// moto accepts any key until [`stint_testkit::aws::Moto::enforce_auth`].
fn admin_keys() -> Keys {
    Keys::new("AKIDSTINTTESTADMIN00", "stint-test-admin-secret-wJalrXUtnFEMI", None)
}

fn tags() -> Vec<(String, String)> {
    vec![("team".into(), "infra".into()), ("ticket".into(), "OPS-1".into())]
}

#[tokio::test(flavor = "current_thread")]
async fn assume_role_and_call_sts_with_the_session() {
    let moto = Moto::start();
    let role_arn = moto.0.create_role_trusting("deploy", TRUST_ANYONE);
    let logs = stint_testkit::logs::LogBuffer::default();
    let _capture = logs.capture();
    let sts = moto.clients(admin_keys()).await.sts;

    let before = OffsetDateTime::now_utc();
    let session_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
    let r = sts.assume_role(&role_arn, "alice-1700000000", "alice@example.com", &tags(), 900, Some(session_policy)).await.expect("AssumeRole");

    assert!(r.keys.access_key_id.starts_with("ASIA"), "temporary key id: {}", r.keys.access_key_id);
    assert!(r.keys.session_token.as_ref().is_some_and(|t| !t.expose().is_empty()));
    let lifetime = (r.expiration - before).whole_seconds();
    assert!((880..=960).contains(&lifetime), "expires {lifetime} s from now, asked for 900");
    assert_eq!(r.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/deploy/alice-1700000000"));
    assert!(r.assumed_role_id.starts_with("AROA") && r.assumed_role_id.ends_with(":alice-1700000000"), "{}", r.assumed_role_id);
    let shown = format!("{r:?}");
    assert!(!shown.contains(r.keys.secret_access_key.expose()), "Debug leaks the secret: {shown}");

    // The session's own credentials, session token included, sign the next call.
    let as_session = moto.clients(r.keys.clone()).await.sts;
    let me = as_session.get_caller_identity().await.expect("GetCallerIdentity");
    assert_eq!(me.arn, r.arn);
    assert_eq!(me.account, ACCOUNT);

    // Limits are checked before sending, with a message naming the rule.
    let e = sts.assume_role(&role_arn, "alice", "alice", &[], 60, None).await.expect_err("too short");
    assert!(matches!(&e, Error::Invalid(m) if m.contains("DurationSeconds")), "{e}");

    // The SDK logged the calls (trace level, every crate), and no secret.
    let logs = logs.text();
    assert!(logs.contains("AssumeRole") && logs.contains("GetCallerIdentity"), "logs were captured:\n{logs}");
    let token = r.keys.session_token.as_ref().expect("token").expose();
    for secret in [admin_keys().secret_access_key.expose(), r.keys.secret_access_key.expose(), token] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
}

#[tokio::test]
async fn deny_policies_round_trip_through_iam_and_aws_errors_keep_their_code() {
    let moto = Moto::start();
    moto.0.create_role_trusting("deploy", TRUST_ANYONE);
    let iam = moto.clients(admin_keys()).await.iam;
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
async fn moto_verifies_the_sdks_signatures_and_session_tokens() {
    let moto = Moto::start();
    let role_arn = moto.0.create_role_trusting("deploy", TRUST_ANYONE);
    let locked = moto.0.create_role_trusting("locked", &TRUST_ANYONE.replace(r#""AWS":"*""#, r#""AWS":"arn:aws:iam::123456789012:user/nobody""#));
    let (id, secret) = moto.0.create_admin_user();
    moto.0.enforce_auth();

    let own = moto.clients(Keys::new(&id, &secret, None)).await;
    let me = own.sts.get_caller_identity().await.expect("GetCallerIdentity signed with the user's key");
    assert_eq!(me.arn, format!("arn:aws:iam::{ACCOUNT}:user/stint"));

    let r = own.sts.assume_role(&role_arn, "bob-1", "bob@example.com", &tags(), 900, None).await.expect("AssumeRole, signature checked");
    let session = moto.clients(r.keys.clone()).await.sts;
    assert_eq!(session.get_caller_identity().await.expect("signed with the session token").arn, r.arn);

    // IAM, a global service, passes too.
    own.iam.put_role_policy("deploy", revoke::POLICY_NAME, &revoke::deny_all_older_sessions(OffsetDateTime::now_utc())).await.expect("PutRolePolicy");

    // What moto refuses surfaces with AWS's code, and no secret.
    let e = moto.clients(Keys::new(&id, "not-the-secret", None)).await.sts.get_caller_identity().await.expect_err("bad signature");
    assert_eq!(e.aws_code(), Some("SignatureDoesNotMatch"), "{e}");
    assert!(!e.to_string().contains("not-the-secret"));
    let forged = Keys::new(&r.keys.access_key_id, r.keys.secret_access_key.expose(), Some("forged-token".into()));
    let e = moto.clients(forged).await.sts.get_caller_identity().await.expect_err("bad token");
    assert_eq!(e.aws_code(), Some("InvalidClientTokenId"), "{e}");
    assert!(!e.to_string().contains("forged-token"));
    let e = own.sts.assume_role(&locked, "bob-2", "bob@example.com", &[], 900, None).await.expect_err("trust policy refuses");
    assert_eq!(e.aws_code(), Some("AccessDenied"), "{e}");
}

/// An account of 1,200 IAM users: its credential report answer is larger than any other IAM
/// answer may be ([`stint_aws::client::MAX_ANSWER`]), and is read whole.
#[tokio::test(flavor = "current_thread")]
async fn a_credential_report_larger_than_other_answers_is_read() {
    let moto = Moto::start();
    let users = 1_200;
    moto.0.python(&format!(
        "iam = boto3.client('iam', endpoint_url=moto_url)\nfor i in range({users}):\n    iam.create_user(UserName='engineer-with-a-longish-name-%04d' % i)"
    ));
    let aws = moto.clients(admin_keys()).await;
    let report = aws.iam.credential_report(std::time::Duration::from_secs(30)).await.expect("the report");
    let answer = report.csv.len() * 4 / 3;
    assert!(answer > stint_aws::client::MAX_ANSWER, "the base64 report alone ({answer} bytes) is over the general cap");
    let rows = String::from_utf8(report.csv).unwrap().lines().filter(|l| l.starts_with("engineer-with-a-longish-name-")).count();
    assert_eq!(rows, users, "every user's row");
}
