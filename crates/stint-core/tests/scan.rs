//! The secret scanner's rules on the shapes real files have (planted keys, manifests, workflows,
//! Terraform, `.env`, private keys), and on a corpus of look-alikes that must stay silent.
#![allow(clippy::unwrap_used)]

use stint_core::scan::{scan, FileKind, Rule};

/// A made-up key id and secret in AWS's format (not AWS's documentation example, which is
/// ignored on purpose).
const ID: &str = "AKIAZ7Q3K5N2XW4R6T8Y";
const TEMP_ID: &str = "ASIAQ2W3E4R5T6Y7U2I3";
const SECRET: &str = "kR9v2Lw8Qz4Tn6Yp1Xc3Bm5Hd7Fj0Gs2Ae4Ui6Oq";

fn found(path: &str, text: &str) -> Vec<(Rule, u32, String)> {
    scan(FileKind::of(path), text.as_bytes()).into_iter().map(|f| (f.rule, f.line, f.shown)).collect()
}

fn rules(path: &str, text: &str) -> Vec<(Rule, u32)> {
    found(path, text).into_iter().map(|(r, l, _)| (r, l)).collect()
}

#[test]
fn planted_credentials_are_found_where_they_are() {
    assert_eq!(SECRET.len(), 40);
    let py = format!("import boto3\n\nsession = boto3.Session(\n    aws_access_key_id=\"{ID}\",\n    aws_secret_access_key=\"{SECRET}\",\n)\n");
    assert_eq!(rules("app/settings.py", &py), [(Rule::AwsAccessKeyWithSecret, 4)]);
    let ini = format!("[default]\r\naws_access_key_id = {ID}\r\n\r\n\r\n\r\n\r\naws_secret_access_key = {SECRET}\r\n");
    assert_eq!(rules("deploy/credentials", &ini), [(Rule::AwsAccessKeyWithSecret, 2)], "CRLF, the secret 5 lines below");
    let far = format!("key = {ID}\n\n\n\n\n\nsecret = {SECRET}\n");
    assert_eq!(rules("notes.txt", &far), [(Rule::AwsAccessKey, 1)], "6 lines apart: not its secret");
    assert_eq!(rules("main.go", &format!("const k = \"{ID}\" // rotated?\n")), [(Rule::AwsAccessKey, 1)]);
    assert_eq!(rules("creds.json", &format!("{{\"AccessKeyId\": \"{TEMP_ID}\", \"SecretAccessKey\": \"{SECRET}\"}}")), [(Rule::AwsTemporaryKeyWithSecret, 1)]);

    let k8s = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          env:\n            - name: AWS_ACCESS_KEY_ID\n              valueFrom:\n                secretKeyRef: {name: aws, key: id}\n            - name: \"AWS_SECRET_ACCESS_KEY\"\n              value: from-ci\n";
    assert_eq!(rules("k8s/api.yaml", k8s), [(Rule::ContainerEnvAwsKeys, 9), (Rule::ContainerEnvAwsKeys, 12)]);
    let ecs = "{\n  \"family\": \"api\",\n  \"containerDefinitions\": [{\n    \"name\": \"api\",\n    \"environment\": [\n      {\"name\": \"AWS_ACCESS_KEY_ID\", \"value\": \"x\"},\n      { \"name\" : \"AWS_SECRET_ACCESS_KEY\", \"value\": \"y\" }\n    ]\n  }]\n}\n";
    assert_eq!(rules("ecs/task-definition.json", ecs), [(Rule::ContainerEnvAwsKeys, 6), (Rule::ContainerEnvAwsKeys, 7)]);

    let workflow = "on: push\njobs:\n  deploy:\n    steps:\n      - uses: aws-actions/configure-aws-credentials@v4\n        with:\n          aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}\n          aws-secret-access-key: ${{secrets.AWS_SECRET_ACCESS_KEY}}\n          aws-region: ${{ secrets.AWS_REGION }}\n";
    let w = found(".github/workflows/deploy.yml", workflow);
    assert_eq!(w.iter().map(|(r, l, _)| (*r, *l)).collect::<Vec<_>>(), [(Rule::WorkflowAwsSecrets, 7), (Rule::WorkflowAwsSecrets, 8)]);
    assert_eq!(w[0].2, "secrets.AWS_ACCESS_KEY_ID");

    let tf = "resource \"aws_iam_user\" \"ci\" {\n  name = \"ci\"\n}\n\nresource  \"aws_iam_access_key\" \"ci\" {\n  user = aws_iam_user.ci.name\n}\n";
    assert_eq!(found("infra/iam.tf", tf), [(Rule::TerraformAccessKey, 5, "resource \"aws_iam_access_key\" \"ci\"".to_owned())]);

    let env = format!("AWS_REGION=eu-west-1\nexport AWS_ACCESS_KEY_ID={ID}\nAWS_SECRET_ACCESS_KEY=\"{SECRET}\"\n");
    assert_eq!(rules(".env", &env), [(Rule::DotenvAwsKeys, 2), (Rule::AwsAccessKeyWithSecret, 2), (Rule::DotenvAwsKeys, 3)]);
    assert_eq!(rules("config/.env.production", "AWS_SECRET_ACCESS_KEY=abc\n"), [(Rule::DotenvAwsKeys, 1)]);

    for (label, text) in [
        ("OPENSSH PRIVATE KEY", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
        ("RSA PRIVATE KEY", "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"),
        ("PRIVATE KEY", "key: |\n  -----BEGIN PRIVATE KEY-----\n  MIIE\n"),
        ("ENCRYPTED PRIVATE KEY", "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
    ] {
        let f = found("id_key", text);
        assert_eq!(f.len(), 1, "{label}");
        assert_eq!((f[0].0, f[0].2.as_str()), (Rule::PrivateKey, format!("-----BEGIN {label}-----").as_str()));
    }
}

#[test]
fn findings_never_show_a_secret() {
    let text = format!("AWS_ACCESS_KEY_ID={ID}\nAWS_SECRET_ACCESS_KEY={SECRET}\n");
    let all = found(".env", &text);
    assert!(!all.is_empty());
    for (_, _, shown) in &all {
        assert!(!shown.contains(SECRET) && !shown.contains(ID), "{shown}");
    }
    assert!(all.iter().any(|(_, _, s)| s == "AKIA…6T8Y (its secret on line 2)"), "the first and last four characters: {all:?}");
}

/// A private key's BEGIN line is shown by its label, clipped: a line of any length stays short
/// (fuzz/regressions/scan/private-key-label-longer-than-shown).
#[test]
fn a_long_private_key_label_is_clipped() {
    let text = format!("-----BEGIN {}PRIVATE KEY-----\nMIIE\n", "T".repeat(300));
    let all = found("key.pem", &text);
    assert_eq!(all.len(), 1, "{all:?}");
    let (rule, line, shown) = &all[0];
    assert_eq!((*rule, *line), (Rule::PrivateKey, 1));
    assert_eq!(shown, &format!("-----BEGIN {}…PRIVATE KEY-----", "T".repeat(32)));
}

/// Things that look like credentials and are not: none may be reported.
#[test]
fn look_alikes_stay_silent() {
    let corpus: &[(&str, String)] = &[
        ("docs/aws.md", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".into()),
        ("a.txt", format!("X{ID}\n{ID}Z\n{}\n{}\n", &ID[..19], ID.to_lowercase())),
        ("b.txt", format!("AKIA_{}\nASIA is a continent, AKIA a prefix\n", &ID[4..])),
        ("c.txt", format!("{TEMP_ID}\n")),
        ("certs.pem", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----BEGIN CERTIFICATE-----\nMIIC\n-----BEGIN EC PARAMETERS-----\n".into()),
        ("prose.md", "Find the PRIVATE KEY----- marker; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in your shell.\n".into()),
        ("k8s/ok.yaml", "env:\n  - name: AWS_REGION\n    value: eu-west-1\n  - name: AWS_ACCESS_KEY_ID_FILE\n    value: /var/run/key\n  - name: AWS_ROLE_ARN\n    value: arn\n".into()),
        ("k8s/mention.yaml", "description: do not set AWS_ACCESS_KEY_ID here\n".into()),
        ("ecs/ok.json", "{\"environment\": [{\"name\": \"AWS_REGION\", \"value\": \"eu-west-1\"}], \"note\": \"AWS_ACCESS_KEY_ID\"}\n".into()),
        (".github/workflows/ok.yml", "with:\n  role-to-assume: ${{ secrets.AWS_ROLE_ARN }}\n  aws-region: ${{ secrets.AWS_REGION }}\n".into()),
        ("docs/example.yml", "aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}\n".into()),
        ("infra/ok.tf", "data \"aws_iam_access_keys\" \"all\" {\n  user = \"ci\"\n}\n# aws_iam_access_key resources are banned\nresource \"aws_iam_user\" \"x\" {}\n".into()),
        ("infra/odd.tf", "resource \"aws_iam_access_key\" \"not a name\" {}\n".into()),
        ("app.py", "os.environ[\"AWS_ACCESS_KEY_ID\"] = read_from_vault()\n".into()),
        (".env", "AWS_ACCESS_KEY_ID=\nAWS_SECRET_ACCESS_KEY=${VAULT_SECRET}\n# AWS_ACCESS_KEY_ID=old\nMY_AWS_ACCESS_KEY_ID=x\n".into()),
        ("near-hex.txt", "key AKIA\nsha da39a3ee5e6b4b0d3255bfef95601890afd80709\n".into()),
    ];
    for (path, text) in corpus {
        assert_eq!(found(path, text), [], "{path}: {text}");
    }
    // A key id next to a hex digest is a key id alone: a digest is not its secret.
    assert_eq!(rules("x.txt", &format!("{ID}\nda39a3ee5e6b4b0d3255bfef95601890afd80709\n")), [(Rule::AwsAccessKey, 1)]);
}

#[test]
fn binary_files_are_not_read() {
    let mut bin = format!("{ID}\n{SECRET}\n").into_bytes();
    bin.insert(0, 0);
    assert!(scan(FileKind::of("blob.bin"), &bin).is_empty());
    assert!(scan(FileKind::default(), b"").is_empty());
}
