//! `stint inventory` as the real binary against the real server: IAM's credential report
//! imported as the AWS CLI prints it and as the console downloads it, the figures shown, and
//! every bad file refused with its line and column while nothing is kept.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use base64::Engine;
use common::{enroll_and_login, ok_json, run, start_server, start_server_with_env};
use stint_testkit::aws::Moto;

const REPORT: &str = include_str!("../../stint-core/tests/fixtures/credential-report/aws.csv");

fn fails_with(home: &Path, args: &[&str], says: &[&str]) {
    let out = run(home, args, None);
    assert!(!out.status.success(), "stint {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    for s in says {
        assert!(err.contains(s), "stint {args:?}: expected {s:?} in {err}");
    }
}

#[test]
fn an_administrator_imports_credential_reports_and_reads_the_inventory() {
    let root = std::env::temp_dir().join(format!("stint-inventory-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (server, bootstrap) = start_server(&root.join("data"));
    let url = server.url.clone();
    let (admin, dev) = (root.join("admin"), root.join("dev"));
    let b = ok_json(&admin, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    enroll_and_login(&url, &admin, "root", b["enrollment_code"].as_str().unwrap());
    let code = ok_json(&admin, &["user", "add", "dev", "--group", "developers", "-o", "json"], None)["enrollment_code"].as_str().unwrap().to_owned();
    enroll_and_login(&url, &dev, "dev", &code);

    let empty = ok_json(&admin, &["inventory", "-o", "json"], None);
    assert_eq!((empty["totals"]["accounts"].as_u64(), empty["totals"]["as_of"].is_null()), (Some(0), true));
    let shown = run(&admin, &["inventory"], None);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("stint inventory import aws-credential-report"), "an empty inventory says how to fill it");

    // What `aws iam get-credential-report` prints: the CSV in base64, with its generation time.
    let cli_json = root.join("report.json");
    let content = base64::engine::general_purpose::STANDARD.encode(REPORT);
    std::fs::write(
        &cli_json,
        format!("{{\n    \"Content\": \"{content}\",\n    \"ReportFormat\": \"text/csv\",\n    \"GeneratedTime\": \"2026-11-30T12:00:00+00:00\"\n}}\n"),
    )
    .unwrap();
    let kept = ok_json(&admin, &["inventory", "import", "aws-credential-report", cli_json.to_str().unwrap(), "-o", "json"], None);
    assert_eq!(kept["summary"]["generated_at"].as_i64(), stint_core::Timestamp::parse_rfc3339("2026-11-30T12:00:00Z").map(|t| t.0));
    assert_eq!(kept["summary"]["active_keys"], 4);

    // A CSV file as the console downloads it, of an earlier day, with the date given.
    let csv = root.join("report.csv");
    std::fs::write(&csv, REPORT.replace("alice,", "alice2,")).unwrap();
    let older = ["inventory", "import", "aws-credential-report", csv.to_str().unwrap(), "--generated-at", "2026-10-31T12:00:00Z", "-o", "json"];
    assert_eq!(ok_json(&admin, &older, None)["summary"]["keys_older_than_90_days"], 2);

    let inv = ok_json(&admin, &["inventory", "-o", "json"], None);
    assert_eq!(inv["totals"]["accounts"], 1);
    assert_eq!(inv["totals"]["active_keys"], 4, "the newest report of the account");
    assert_eq!(inv["accounts"][0]["imported_by"], "user:root");
    assert_eq!(inv["accounts"][0]["users_without_mfa"], serde_json::json!(["<root_account>", "bob"]));
    assert_eq!(inv["history"].as_array().unwrap().len(), 2, "both reports make the trend");
    let recent = ok_json(&admin, &["inventory", "--since", "2026-11-01T00:00:00Z", "-o", "json"], None);
    assert_eq!(recent["history"].as_array().unwrap().len(), 1);

    let text = String::from_utf8(run(&admin, &["inventory"], None).stdout).unwrap();
    for says in ["1 account, as of 2026-11-30T12:00:00Z", "4 active access keys", "root (!)", "without MFA: root, bob", "Trend", "stint agent"] {
        assert!(text.contains(says), "expected {says:?} in:\n{text}");
    }

    // Refusals: each names what is wrong, and none keeps anything.
    let bad = root.join("bad.csv");
    std::fs::write(&bad, REPORT.replace("2025-06-01T00:00:00+00:00,N/A", "last summer,N/A")).unwrap();
    let bad = bad.to_str().unwrap();
    let at = ["--generated-at", "2026-12-01T00:00:00Z"];
    fails_with(
        &admin,
        &[&["inventory", "import", "aws-credential-report", bad][..], &at[..]].concat(),
        &["malformed_report", "line 4, column 10 (access_key_1_last_rotated)"],
    );
    fails_with(&admin, &["inventory", "import", "aws-credential-report", cli_json.to_str().unwrap()], &["inventory_exists", "imported already"]);
    fails_with(
        &admin,
        &["inventory", "import", "aws-credential-report", csv.to_str().unwrap(), "--generated-at", "yesterday"],
        &["invalid_time", "generated_at"],
    );
    fails_with(&admin, &["inventory", "import", "aws-credential-report", "-"], &["--generated-at"]);
    fails_with(&admin, &["inventory", "import", "sarif", csv.to_str().unwrap()], &["invalid value 'sarif'"]);
    fails_with(&dev, &["inventory"], &["admin_required"]);
    fails_with(&dev, &["inventory", "import", "aws-credential-report", csv.to_str().unwrap(), "--generated-at", "2026-12-01T00:00:00Z"], &["admin_required"]);
    assert_eq!(ok_json(&admin, &["inventory", "-o", "json"], None)["history"].as_array().unwrap().len(), 2, "nothing refused was kept");

    // An oversized report is refused while it is read.
    let huge = root.join("huge.csv");
    std::fs::write(&huge, vec![b'a'; (16 << 20) + 1]).unwrap();
    fails_with(&admin, &["inventory", "import", "aws-credential-report", huge.to_str().unwrap()], &["report_too_large", "16 MiB"]);
    assert_eq!(ok_json(&admin, &["inventory", "-o", "json"], None)["history"].as_array().unwrap().len(), 2, "nothing refused was kept");
}

#[test]
fn the_server_fetches_the_report_through_an_aws_backends_identity() {
    let root = std::env::temp_dir().join(format!("stint-inventory-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let moto = Moto::start();
    let arn = moto.create_role("developer");
    // alice signs in to the console and has a key; ci has two keys, its first deactivated.
    let ids = moto.python(
        "iam = boto3.client('iam', endpoint_url=moto_url)\n\
         iam.create_user(UserName='alice')\n\
         iam.create_login_profile(UserName='alice', Password='a-Passw0rd!')\n\
         a = iam.create_access_key(UserName='alice')['AccessKey']['AccessKeyId']\n\
         iam.create_user(UserName='ci')\n\
         c1 = iam.create_access_key(UserName='ci')['AccessKey']['AccessKeyId']\n\
         c2 = iam.create_access_key(UserName='ci')['AccessKey']['AccessKeyId']\n\
         iam.update_access_key(UserName='ci', AccessKeyId=c1, Status='Inactive')\n\
         print(a, c2)",
    );
    let (alice_key, ci_key) = ids.trim().split_once(' ').unwrap();
    let config = root.join("stint.toml");
    std::fs::write(
        &config,
        format!(
            "[[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{m}\"\niam_endpoint = \"{m}\"\ndanger_allow_http_loopback = true\n\
             [backends.aws.roles]\ndeveloper = \"{arn}\"\n",
            m = moto.url
        ),
    )
    .unwrap();
    let env = [("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01"), ("AWS_SECRET_ACCESS_KEY", "stint-test-secret")];
    let (server, bootstrap) = start_server_with_env(&root.join("data"), &["--config", config.to_str().unwrap()], &env);
    let admin = root.join("admin");
    let b = ok_json(&admin, &["bootstrap", "--server", &server.url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    enroll_and_login(&server.url, &admin, "root", b["enrollment_code"].as_str().unwrap());

    let fetched = ok_json(&admin, &["inventory", "fetch", "--backend", "aws", "-o", "json"], None);
    assert_eq!(fetched["kept"], true, "{fetched}");
    assert_eq!(fetched["summary"]["account"], "123456789012");
    assert_eq!(fetched["summary"]["active_keys"], 2, "alice's and ci's second: {fetched}");

    let inv = ok_json(&admin, &["inventory", "-o", "json"], None);
    let account = &inv["accounts"][0];
    assert_eq!(account["imported_by"], "user:root");
    let mut keys: Vec<(String, String)> =
        account["keys"].as_array().unwrap().iter().map(|k| (k["owner"].as_str().unwrap().to_owned(), k["id"].as_str().unwrap_or("-").to_owned())).collect();
    keys.sort();
    assert_eq!(keys, [("alice".to_owned(), alice_key.to_owned()), ("ci".to_owned(), ci_key.to_owned())], "ListAccessKeys names the report's keys");

    // IAM answers with the same report for 4 hours (moto, always): nothing new is kept.
    let again = ok_json(&admin, &["inventory", "fetch", "--backend", "aws", "-o", "json"], None);
    assert_eq!((again["kept"].as_bool(), again["summary"]["generated_at"].as_i64()), (Some(false), fetched["summary"]["generated_at"].as_i64()));
    assert_eq!(ok_json(&admin, &["inventory", "-o", "json"], None)["history"].as_array().unwrap().len(), 1);

    fails_with(&admin, &["inventory", "fetch", "--backend", "gcp"], &["unknown_backend", "configured: aws"]);
}
