//! `stint scan` as the real binary on a tree with planted credentials: what it reports in each
//! format, what it leaves alone (ignored, binary, `.git`), its exit status, and SARIF that
//! validates against the SARIF 2.1.0 schema (from npm `@microsoft/jest-sarif`, installed by
//! scripts/test).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{python, stint};
use serde_json::Value;
use stint_testkit::workspace_root;

const ID: &str = "AKIAZ7Q3K5N2XW4R6T8Y";
const SECRET: &str = "kR9v2Lw8Qz4Tn6Yp1Xc3Bm5Hd7Fj0Gs2Ae4Ui6Oq";

fn tree(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("stint-scan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let files: &[(&str, String)] = &[
        ("app/settings.py", format!("AWS = dict(\n    key=\"{ID}\",\n    secret=\"{SECRET}\",\n)\n")),
        (".env", format!("DATABASE_URL=postgres://db\nAWS_SECRET_ACCESS_KEY={SECRET}\n")),
        (
            ".github/workflows/deploy.yml",
            "jobs:\n  d:\n    steps:\n      - run: deploy\n        env:\n          AWS_KEY: ${{ secrets.AWS_ACCESS_KEY_ID }}\n".into(),
        ),
        ("infra/iam.tf", "resource \"aws_iam_access_key\" \"ci\" {\n  user = \"ci\"\n}\n".into()),
        ("k8s/api.yaml", "env:\n  - name: AWS_ACCESS_KEY_ID\n    valueFrom:\n      secretKeyRef: {name: aws, key: id}\n".into()),
        ("keys/deploy_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n".into()),
        ("docs/aws.md", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\nSet AWS_ACCESS_KEY_ID in your shell.\n".into()),
        (".gitignore", "build/\n".into()),
        ("build/leaked.py", format!("k = \"{ID}\"\n")),
        (".git/config", format!("[remote]\n  token = {ID}\n")),
        ("dir with space/notes.txt", format!("old key {ID}\n")),
    ];
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let mut blob = format!("{ID}\n{SECRET}\n").into_bytes();
    blob.insert(0, 0);
    std::fs::write(root.join("app/blob.bin"), blob).unwrap();
    root
}

fn scan_in(dir: &Path, args: &[&str]) -> Output {
    let out = stint().arg("scan").args(args).current_dir(dir).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "a secret was shown: {stdout}{stderr}");
    out
}

#[test]
fn a_tree_with_planted_credentials_is_reported_in_every_format() {
    let root = tree("formats");
    let out = scan_in(&root, &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "findings: exit 1 ({})", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut got: Vec<(String, String, u64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["rule"].as_str().unwrap().to_owned(), f["line"].as_u64().unwrap()))
        .collect();
    got.sort();
    let want = [
        (".env", "dotenv-aws-keys", 2),
        (".github/workflows/deploy.yml", "workflow-aws-secrets", 6),
        ("app/settings.py", "aws-access-key-with-secret", 2),
        ("dir with space/notes.txt", "aws-access-key", 1),
        ("infra/iam.tf", "terraform-access-key", 1),
        ("k8s/api.yaml", "container-env-aws-keys", 2),
        ("keys/deploy_ed25519", "private-key", 1),
    ];
    assert_eq!(got, want.map(|(p, r, l)| (p.to_owned(), r.to_owned(), l)), "nothing from build/ (.gitignore), .git, the binary or the docs' example");
    assert!(report["scanned"]["files"].as_u64().unwrap() >= 9);
    assert!(report["findings"][0]["hint"].as_str().unwrap().contains("stint"));

    let text = String::from_utf8(scan_in(&root, &[]).stdout).unwrap();
    assert!(
        text.contains(
            "app/settings.py:2:10: error: An IAM user's long-lived access key with its secret (aws-access-key-with-secret): AKIA…6T8Y (its secret on line 3)"
        ),
        "{text}"
    );
    assert!(text.contains("    fix: use `stint ci login`"), "{text}");
    assert!(text.contains("    fix: move this service to `stint agent`"), "{text}");

    let all = scan_in(&root, &["--no-ignore", "-o", "json", "-q"]);
    let report: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert!(report["findings"].as_array().unwrap().iter().any(|f| f["path"] == "build/leaked.py"), "--no-ignore reads build/");
    assert!(!report["findings"].as_array().unwrap().iter().any(|f| f["path"].as_str().unwrap().starts_with(".git/")), ".git is never read");
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let root = tree("sarif");
    let out = scan_in(&root, &["--output", "sarif"]);
    assert_eq!(out.status.code(), Some(1));
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    let spaced = results.iter().find(|r| r["ruleId"] == "aws-access-key").unwrap();
    assert_eq!(spaced["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "dir%20with%20space/notes.txt");
    let file = root.join("out.sarif");
    std::fs::write(&file, &out.stdout).unwrap();
    let schema = workspace_root().join("tests/sarif/node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json");
    assert!(schema.exists(), "the SARIF schema is missing: run scripts/test (npm ci --prefix tests/sarif)");
    let check = "import json, sys, jsonschema\n\
         schema = json.load(open(sys.argv[1]))\n\
         log = json.load(open(sys.argv[2]))\n\
         jsonschema.Draft4Validator.check_schema(schema)\n\
         errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(log)]\n\
         print(len(errors)); print('\\n'.join(errors[:5]))";
    let v = std::process::Command::new(python()).args(["-c", check]).arg(&schema).arg(&file).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert_eq!(String::from_utf8_lossy(&v.stdout).lines().next(), Some("0"), "schema errors: {}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn a_clean_tree_exits_0_and_a_missing_path_2() {
    let root = std::env::temp_dir().join(format!("stint-scan-clean-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() { println!(\"AKIA is a prefix\"); }\n").unwrap();
    let out = scan_in(&root, &["."]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 findings in 0 files; scanned 1 files"));
    let missing = scan_in(&root, &["nowhere"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nowhere does not exist"));
}
