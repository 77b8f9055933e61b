//! The AWS backend against the AWS emulator (moto, started by the test on a loopback port)
//! with the real AWS SDK and CLI: people get STS keys through `POST /v1/creds`, and pipelines
//! through stint's STS-compatible `AssumeRoleWithWebIdentity` endpoint, called by `boto3` and
//! `aws sts assume-role-with-web-identity` unchanged. Revocation writes the deny policy.
//!
//! moto does not evaluate IAM policies the way AWS does: these tests check the keys STS
//! issued, and the deny policy stint writes, not that AWS would refuse a revoked key.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};
use stint_testkit::aws::{aws_cli, Moto};
use stint_testkit::github::{GithubIssuer, Run};

fn trust_policy(issuer: &str) -> String {
    trust_policy_for(issuer, "StringEquals", "repo:acme/infra:ref:refs/heads/main")
}

/// One statement admitting tokens for `sts.amazonaws.com` whose `sub` passes `op` with `sub`.
fn trust_policy_for(issuer: &str, op: &str, sub: &str) -> String {
    let host = issuer.trim_start_matches("http://");
    let mut condition = json!({ "StringEquals": { format!("{host}:aud"): "sts.amazonaws.com" } });
    condition[op][format!("{host}:sub")] = json!(sub);
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": issuer },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition
        }]
    })
    .to_string()
}

struct Setup {
    app: TestApp,
    moto: Moto,
    gh: GithubIssuer,
    deploy_arn: String,
    dev_arn: String,
}

async fn setup() -> Setup {
    setup_on(Backend::Sqlite, trust_policy).await
}

/// On `backend`; `policy` makes the deploy role's trust policy from the issuer's URL.
async fn setup_on(backend: Backend, policy: impl Fn(&str) -> String) -> Setup {
    // stint's own identity at AWS comes from the standard chain: here, the environment.
    // (Each test is its own process under nextest.)
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "stint-test-secret");
    let moto = Moto::start();
    let deploy_arn = moto.create_role("deployer");
    let dev_arn = moto.create_role("developer");
    let gh = GithubIssuer::start().await;
    let toml = format!(
        "[[ci.issuer]]\nname = \"github\"\nurl = \"{gh}\"\ndanger_allow_http_loopback = true\n\
         [roles.deploy]\nmax_ttl = \"1h\"\nci_ttl = \"15m\"\ntrust_policy = '''{policy}'''\n\
         [[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{moto}\"\niam_endpoint = \"{moto}\"\ndanger_allow_http_loopback = true\n\
         [backends.aws.roles]\ndeploy = \"{deploy_arn}\"\ndeveloper = \"{dev_arn}\"\n",
        gh = gh.url,
        policy = policy(&gh.url),
        moto = moto.url,
    );
    let app = spawn_app_at(backend, &toml, real_now()).await;
    Setup { app, moto, gh, deploy_arn, dev_arn }
}

fn token(gh: &GithubIssuer, run: &Run) -> String {
    gh.sign(&gh.claims(run, "sts.amazonaws.com", real_now().0))
}

/// Ten AssumeRoleWithWebIdentity calls with one token at once: one set of keys; every other
/// answer is the one a later replay gets (but for its random RequestId), and each is on the
/// record as that replay is.
async fn a_token_replayed_at_sts_in_a_race_is_answered_as_a_reuse(backend: Backend) {
    // moto must outlive the calls: the binding keeps it running.
    let Setup { app, moto: _moto, gh, deploy_arn, .. } = setup_on(backend, trust_policy).await;
    let tok = token(&gh, &Run::default());
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", deploy_arn.as_str()),
        ("RoleSessionName", "gh-run-1"),
        ("WebIdentityToken", tok.as_str()),
    ];
    let without_request_id = |(s, v): (reqwest::StatusCode, Value)| {
        let xml = v.as_str().unwrap().to_owned();
        let (head, rest) = xml.split_once("<RequestId>").unwrap();
        (s, Value::String(format!("{head}{}", rest.split_once("</RequestId>").unwrap().1)))
    };
    let answers = common::at_once(10, |_| app.http.post(app.url("/v1/sts")).form(&form)).await;
    let reuse = without_request_id(body(app.http.post(app.url("/v1/sts")).form(&form).send().await.unwrap()).await);
    assert!(reuse.0.is_client_error() && reuse.1.as_str().unwrap().contains("<ErrorResponse"), "{reuse:?}");
    common::one_winner(answers.into_iter().map(without_request_id).collect(), &reuse);
    let records = app.store.audit_after(0, 1000).await.unwrap();
    assert_eq!(records.iter().filter(|r| r.event == "credential.issued").count(), 1);
    let on_record = app.refusals_on_record("ci.exchange.denied").await;
    assert_eq!(on_record, [("token_replayed".to_owned(), 10)].into(), "nine losers and the later replay, written or counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_replayed_at_sts_in_a_race_is_answered_as_a_reuse_on_sqlite() {
    a_token_replayed_at_sts_in_a_race_is_answered_as_a_reuse(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_replayed_at_sts_in_a_race_is_answered_as_a_reuse_on_postgres() {
    a_token_replayed_at_sts_in_a_race_is_answered_as_a_reuse(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_the_aws_cli_assume_a_role_with_a_ci_token_through_stint() {
    let Setup { app, moto, gh, deploy_arn, .. } = setup().await;
    let sts = app.url("/v1/sts");

    // boto3, unchanged: AssumeRoleWithWebIdentity at stint, then the keys at "AWS".
    let code = format!(
        "from botocore.exceptions import ClientError\n\
         sts = boto3.client('sts', endpoint_url={sts:?}, region_name='us-east-1')\n\
         r = sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken={tok:?})\n\
         c = r['Credentials']\n\
         me = boto3.client('sts', endpoint_url=moto_url, region_name='us-east-1', aws_access_key_id=c['AccessKeyId'], aws_secret_access_key=c['SecretAccessKey'], aws_session_token=c['SessionToken']).get_caller_identity()\n\
         out = {{'arn': me['Arn'], 'key': c['AccessKeyId'], 'exp': c['Expiration'].timestamp(), 'sub': r['SubjectFromWebIdentityToken'], 'aud': r['Audience'], 'provider': r['Provider'], 'assumed': r['AssumedRoleUser']['Arn']}}\n\
         try:\n    sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken={tok:?})\n\
         except ClientError as e:\n    out['replay'] = e.response['Error']['Code']\n\
         try:\n    sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken={other:?})\n\
         except ClientError as e:\n    out['other_repo'] = e.response['Error']['Code']\n\
         try:\n    sts.assume_role_with_web_identity(RoleArn='arn:aws:iam::123456789012:role/nope', RoleSessionName='gh-run-1', WebIdentityToken={third:?})\n\
         except ClientError as e:\n    out['unknown_role'] = e.response['Error']['Code']\n\
         try:\n    sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken='not.a.jwt')\n\
         except ClientError as e:\n    out['garbage'] = e.response['Error']['Code']\n    out['garbage_message'] = e.response['Error']['Message']\n\
         try:\n    sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken={wrong_aud:?})\n\
         except ClientError as e:\n    out['wrong_aud'] = e.response['Error']['Code']\n\
         print(json.dumps(out))",
        tok = token(&gh, &Run::default()),
        other = token(&gh, &Run { repository: "acme/other".into(), ..Run::default() }),
        third = token(&gh, &Run::default()),
        wrong_aud = gh.sign(&gh.claims(&Run::default(), "https://github.com/acme", real_now().0)),
    );
    let out: Value = serde_json::from_str(&moto.python(&code)).unwrap();
    let leases = app.store.leases(None, true, 100).await.unwrap();
    assert_eq!(leases.len(), 1, "one credential: the refusals issued nothing");
    let lease = &leases[0];
    assert_eq!(lease.subject, "ci:github:repo:acme/infra:ref:refs/heads/main");
    assert!(out["arn"].as_str().unwrap().ends_with(&format!(":assumed-role/deployer/{}", lease.id)), "{out}");
    assert_eq!(out["assumed"], out["arn"]);
    assert!(out["key"].as_str().unwrap().starts_with("ASIA"), "{out}");
    assert_eq!(out["exp"].as_f64().unwrap() as i64, lease.expires_at.0, "expires with the lease (the role's ci_ttl)");
    assert_eq!(lease.expires_at.0 - lease.issued_at.0, 900);
    assert_eq!((out["sub"].as_str(), out["aud"].as_str()), (Some("repo:acme/infra:ref:refs/heads/main"), Some("sts.amazonaws.com")));
    assert_eq!(out["provider"], gh.url.as_str());
    assert_eq!(out["replay"], "InvalidIdentityToken", "each CI token is accepted once");
    assert_eq!(out["other_repo"], "AccessDenied", "the trust policy admits one repository");
    assert_eq!(out["unknown_role"], "AccessDenied");
    assert_eq!(out["garbage"], "InvalidIdentityToken");
    assert!(!out["garbage_message"].as_str().unwrap().contains("subject_token"), "STS callers send a WebIdentityToken: {out}");
    assert_eq!(out["wrong_aud"], "InvalidIdentityToken", "a token for another audience, as STS answers it");

    // The AWS CLI, unchanged.
    let cli = Command::new(aws_cli())
        .args(["sts", "assume-role-with-web-identity", "--endpoint-url", &sts, "--region", "us-east-1", "--output", "json"])
        .args(["--role-arn", &deploy_arn, "--role-session-name", "gh-run-2", "--web-identity-token", &token(&gh, &Run::default())])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let v: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert!(v["Credentials"]["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{v}");
    assert!(v["AssumedRoleUser"]["Arn"].as_str().unwrap().contains(":assumed-role/deployer/l_"), "{v}");
    assert_eq!(v["SubjectFromWebIdentityToken"], "repo:acme/infra:ref:refs/heads/main");

    // The SDK's own web identity provider, pointed at stint by AWS_ENDPOINT_URL_STS: no code.
    let token_file = app.data_dir.join("web-identity-token");
    std::fs::write(&token_file, token(&gh, &Run::default())).unwrap();
    let code = format!(
        "import os\n\
         os.environ.update(AWS_WEB_IDENTITY_TOKEN_FILE={file:?}, AWS_ROLE_ARN={deploy_arn:?}, AWS_ENDPOINT_URL_STS={sts:?}, AWS_DEFAULT_REGION='us-east-1')\n\
         for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'):\n    os.environ.pop(k, None)\n\
         os.environ['AWS_CONFIG_FILE'] = os.environ['AWS_SHARED_CREDENTIALS_FILE'] = '/dev/null'\n\
         c = boto3.Session().get_credentials().get_frozen_credentials()\n\
         me = boto3.client('sts', endpoint_url=moto_url, region_name='us-east-1', aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key, aws_session_token=c.token).get_caller_identity()\n\
         print(me['Arn'])",
        file = token_file.to_str().unwrap(),
    );
    let arn = moto.python(&code);
    assert!(arn.trim().contains(":assumed-role/deployer/l_"), "the SDK's provider got stint's keys: {arn}");

    // Malformed requests get STS's XML errors, never a 500.
    for (form, code) in [
        (vec![("Action", "AssumeRole")], "InvalidAction"),
        (vec![("Action", "AssumeRoleWithWebIdentity")], "MissingParameter"),
        (vec![("Action", "AssumeRoleWithWebIdentity"), ("RoleArn", &deploy_arn), ("RoleSessionName", "a b"), ("WebIdentityToken", "x")], "ValidationError"),
        (
            vec![
                ("Action", "AssumeRoleWithWebIdentity"),
                ("RoleArn", &deploy_arn),
                ("RoleSessionName", "ok-name"),
                ("WebIdentityToken", "x"),
                ("DurationSeconds", "60"),
            ],
            "ValidationError",
        ),
    ] {
        let resp = app.http.post(&sts).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let text = resp.text().await.unwrap();
        assert!(text.contains(&format!("<Code>{code}</Code>")) && text.starts_with("<ErrorResponse"), "{text}");
    }
    // Every refusal was audited; no credential secret reached the audit log.
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    assert!(records.iter().filter(|r| r.event == "ci.exchange.denied").count() >= 4);
    let dump = format!("{records:?}");
    assert!(!dump.contains("SecretAccessKey") && !dump.contains("stint-test-secret"));
}

/// Anyone can mint a CI token whose `sub` holds code points XML 1.0 forbids (U+FFFF, U+FFFE,
/// NUL, ESC) or discourages (C1 controls): the STS answer embeds the subject, and in a
/// refusal the claim values, yet botocore's XML parser (expat) reads both answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_answers_stay_well_formed_xml_whatever_the_token_claims() {
    let Setup { app, moto, gh, deploy_arn, .. } = setup_on(Backend::Sqlite, |url| trust_policy_for(url, "StringLike", "repo:acme/*")).await;
    let with_sub = |sub: &str| {
        let mut c = gh.claims(&Run::default(), "sts.amazonaws.com", real_now().0);
        c["sub"] = json!(sub);
        gh.sign(&c)
    };
    let code = format!(
        "from botocore.exceptions import ClientError\n\
         sts = boto3.client('sts', endpoint_url={sts:?}, region_name='us-east-1')\n\
         r = sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken={admitted:?})\n\
         out = {{'sub': r['SubjectFromWebIdentityToken'], 'key': r['Credentials']['AccessKeyId']}}\n\
         try:\n    sts.assume_role_with_web_identity(RoleArn={deploy_arn:?}, RoleSessionName='gh-run-1', WebIdentityToken={refused:?})\n\
         except ClientError as e:\n    out['refused'] = e.response['Error']['Code']\n    out['message'] = e.response['Error']['Message']\n\
         print(json.dumps(out))",
        sts = app.url("/v1/sts"),
        admitted = with_sub("repo:acme/x\u{ffff}\u{fffe}\u{0}\u{1b}\u{85}\u{1fffe}y:ref:refs/heads/main"),
        refused = with_sub("repo:evil/\u{ffff}\u{fffe}:ref:refs/heads/main"),
    );
    let out: Value = serde_json::from_str(&moto.python(&code)).unwrap();
    assert_eq!(out["sub"], "repo:acme/x\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{1fffe}y:ref:refs/heads/main", "{out}");
    assert!(out["key"].as_str().unwrap().starts_with("ASIA"), "{out}");
    assert_eq!(out["refused"], "AccessDenied", "{out}");
    assert!(out["message"].as_str().unwrap().contains("got repo:evil/\u{fffd}\u{fffd}:ref:refs/heads/main"), "the claim is shown, made fit for XML: {out}");
    assert_eq!(app.store.leases(None, true, 100).await.unwrap().len(), 1, "the refused token got nothing");
}

/// With the default TTL a lease would outlive the role's `MaxSessionDuration` (1 h here, the
/// role's own maximum is 8 h): the lease, the credential's expiry, the session policy's
/// `aws:CurrentTime` fence and what `creds` and `leases` print are one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ends_when_its_aws_credential_does() {
    let Setup { app, moto, .. } = setup().await;
    let admin = app.admin().await;
    let dana = app.person(&admin, "dana", &["developers"]).await;
    // Logging in moved stint's clock ahead; moto's Expiration follows the real one.
    app.clock.set(real_now());
    let (s, c) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer" })).await;
    assert_eq!(s, 200, "{c}");
    let lease_id = c["lease_id"].as_str().unwrap();
    let end = c["expires_at"].as_str().unwrap();
    let issued = stint_core::Timestamp::parse_rfc3339(c["issued_at"].as_str().unwrap()).unwrap();
    assert_eq!(stint_core::Timestamp::parse_rfc3339(end).unwrap().0 - issued.0, 3600, "the backend's longest session: {c}");
    assert_eq!(app.lease_shown(&dana, lease_id).await["expires_at"], end, "stint leases shows the same end");
    let aws_end = stint_core::Timestamp::parse_rfc3339(c["aws_expiration"].as_str().unwrap()).unwrap();
    let end_ts = stint_core::Timestamp::parse_rfc3339(end).unwrap();
    assert!((0..=5).contains(&(aws_end.0 - end_ts.0)), "AWS's Expiration is the lease end, give or take its clock: {c}");
    // The session policy moto recorded for the session fences it at that same instant.
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", moto.url)).await.unwrap().json().await.unwrap();
    let session = data["sts"]["AssumedRole"].as_array().unwrap().iter().find(|r| r["session_name"] == lease_id).cloned().expect("the session");
    let policy: Value = serde_json::from_str(session["policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"], end, "{policy}");

    // Asking for longer than the backend can issue is refused, not silently shortened.
    let (s, v) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "ttl": "2h" })).await;
    assert_eq!((s, v["error"].as_str()), (reqwest::StatusCode::BAD_REQUEST, Some("ttl_too_long")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("at most 1h"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_get_sts_keys_and_revocation_writes_the_deny_policy() {
    let Setup { app, moto, dev_arn, .. } = setup().await;
    let admin = app.admin().await;
    let dana = app.person(&admin, "dana", &["developers"]).await;
    let (s, c) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "ttl": "30m" })).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!((c["backend"].as_str(), c["kind"].as_str()), (Some("aws"), Some("aws")));
    let lease = c["lease_id"].as_str().unwrap();
    assert!(c["access_key_id"].as_str().unwrap().starts_with("ASIA"));
    assert_eq!(c["env"]["AWS_SECRET_ACCESS_KEY"], "secret_access_key");
    assert_eq!(c["env"]["AWS_SESSION_TOKEN"], "session_token");
    assert!(c["assumed_role_arn"].as_str().unwrap().ends_with(&format!("assumed-role/developer/{lease}")), "{c}");
    // The keys work against "AWS" as the assumed role session.
    let code = format!(
        "print(boto3.client('sts', endpoint_url=moto_url, region_name='us-east-1', aws_access_key_id={:?}, aws_secret_access_key={:?}, aws_session_token={:?}).get_caller_identity()['Arn'])",
        c["access_key_id"].as_str().unwrap(),
        c["secret_access_key"].as_str().unwrap(),
        c["session_token"].as_str().unwrap()
    );
    assert!(moto.python(&code).trim().ends_with(&format!("assumed-role/developer/{lease}")));
    assert_eq!(moto.role_policy("developer", "StintRevokeOlderSessions"), None);

    // Revoked: stint writes the deny-older-sessions policy for dana on the role.
    let (s, v) = app.post(&format!("/v1/leases/{lease}/revoke"), Some(&dana.session), json!({})).await;
    assert_eq!((s.as_u16(), v["revoke_reason"].as_str()), (200, Some("revoked by request")), "{v}");
    app.settle().await;
    let policy: Value = serde_json::from_str(&moto.role_policy("developer", "StintRevokeOlderSessions").expect("a deny policy on the role")).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    assert_eq!(statements[0]["Effect"], "Deny");
    assert_eq!(statements[0]["Condition"]["StringEquals"]["aws:SourceIdentity"], "dana", "{policy}");
    assert!(statements[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"].is_string(), "{policy}");
    let _ = dev_arn;
}
