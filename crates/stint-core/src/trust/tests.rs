use serde_json::json;

use super::*;

const GH: &str = "https://token.actions.githubusercontent.com";

fn issuers() -> Vec<String> {
    vec![issuer_id(GH), issuer_id("https://gitlab.example.com")]
}

fn policy(conditions: Value) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com" },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": conditions,
        }]
    })
    .to_string()
}

fn parse(doc: &str) -> TrustPolicy {
    TrustPolicy::parse(doc, &issuers()).unwrap().0
}

/// The claims of a GitHub Actions token for a push to main of acme/infra.
fn github() -> BTreeMap<String, Value> {
    let c = json!({
        "iss": GH, "aud": "stint", "sub": "repo:acme/infra:ref:refs/heads/main",
        "repository": "acme/infra", "repository_id": "42", "repository_owner": "acme",
        "ref": "refs/heads/main", "event_name": "push", "runner_environment": "github-hosted",
        "job_workflow_ref": "acme/infra/.github/workflows/deploy.yml@refs/heads/main",
    });
    serde_json::from_value(c).unwrap()
}

fn with(mut c: BTreeMap<String, Value>, k: &str, v: Value) -> BTreeMap<String, Value> {
    c.insert(k.into(), v);
    c
}

fn main_only() -> String {
    policy(json!({ "StringEquals": {
        "token.actions.githubusercontent.com:aud": "stint",
        "token.actions.githubusercontent.com:sub": "repo:acme/infra:ref:refs/heads/main" } }))
}

#[test]
fn the_aws_shaped_policy_admits_exactly_its_branch() {
    let p = parse(&main_only());
    assert!(p.evaluate(GH, &github()).allowed());
    let e = p.evaluate(GH, &with(github(), "sub", json!("repo:acme/infra:ref:refs/heads/dev")));
    assert!(!e.allowed());
    assert_eq!(e.refusal(), "statement 1: StringEquals on sub: got repo:acme/infra:ref:refs/heads/dev");
    assert!(!p.evaluate(GH, &with(github(), "aud", json!("sts.amazonaws.com"))).allowed());
    assert!(!p.evaluate("https://gitlab.example.com", &github()).allowed(), "another issuer's token");
}

#[test]
fn the_github_pitfalls_are_explained() {
    let p = parse(&main_only());
    let refusal = |sub: &str| p.evaluate(GH, &with(github(), "sub", json!(sub))).refusal();
    assert!(refusal("repo:acme/infra:environment:prod").contains("got repo:acme/infra:environment:prod (the job runs in an environment"));
    assert!(refusal("repo:Acme/Infra:ref:refs/heads/main").contains("case-sensitive"));
    assert!(refusal("repo:acme@1001/infra@42:ref:refs/heads/main").contains("immutable subjects"));
    assert!(refusal("repo:acme/infra:environment:a%3Ab").contains("environment"));
    let p = parse(&policy(json!({ "StringEquals": { "aud": "stint", "sub": "repo:acme/infra:environment:a:b" } })));
    assert!(p.evaluate(GH, &with(github(), "sub", json!("repo:acme/infra:environment:a%3Ab"))).refusal().contains("%3A"));
}

#[test]
fn operators_follow_iam() {
    let case = |cond: Value, claims: BTreeMap<String, Value>| -> bool {
        let mut c = cond.as_object().unwrap().clone();
        c.entry("StringLike").or_insert(json!({})).as_object_mut().unwrap().insert("aud".into(), json!("stint"));
        c.entry("StringEquals").or_insert(json!({})).as_object_mut().unwrap().entry("repository").or_insert(json!(["acme/infra", "acme/web"]));
        parse(&policy(Value::Object(c))).evaluate(GH, &claims).allowed()
    };
    let g = github;
    // Values within one key are alternatives; keys and operators must all hold.
    assert!(case(json!({ "StringEquals": { "repository": ["acme/web", "acme/infra"] } }), g()));
    assert!(!case(json!({ "StringEquals": { "ref": "refs/heads/dev" } }), g()));
    // StringLike: * and ?; StringEquals compares exactly.
    assert!(case(json!({ "StringLike": { "sub": "repo:acme/*:ref:refs/heads/main" } }), g()));
    assert!(case(json!({ "StringLike": { "sub": "repo:acme/infr?:ref:refs/heads/*" } }), g()));
    assert!(!case(json!({ "StringLike": { "sub": "repo:acme/web:*" } }), g()));
    assert!(!case(json!({ "StringEquals": { "sub": "repo:acme/*" } }), g()));
    // Negations.
    assert!(case(json!({ "StringNotEquals": { "event_name": "pull_request" } }), g()));
    assert!(!case(json!({ "StringNotEquals": { "event_name": ["pull_request", "push"] } }), g()));
    assert!(!case(json!({ "StringNotLike": { "ref": "refs/heads/*" } }), g()));
    assert!(case(json!({ "StringNotEquals": { "environment": "prod" } }), g()), "a negated operator holds when the claim is absent");
    // Case-sensitive.
    assert!(!case(json!({ "StringEquals": { "repository_owner": "ACME" } }), g()));
    // Null.
    assert!(case(json!({ "Null": { "environment": "true" } }), g()));
    assert!(!case(json!({ "Null": { "environment": "false" } }), g()));
    assert!(case(json!({ "Null": { "environment": false } }), with(g(), "environment", json!("prod"))));
    // Numbers and booleans compare as their JSON text.
    assert!(case(json!({ "StringEquals": { "run_attempt": "1" } }), with(g(), "run_attempt", json!(1))));
    // Set operators on a list claim.
    let groups = || with(g(), "groups", json!(["ops", "dev"]));
    assert!(case(json!({ "ForAnyValue:StringEquals": { "groups": "ops" } }), groups()));
    assert!(!case(json!({ "ForAnyValue:StringEquals": { "groups": "ops" } }), g()), "ForAnyValue with no values is false");
    assert!(case(json!({ "ForAllValues:StringLike": { "groups": ["ops", "de?"] } }), groups()));
    assert!(!case(json!({ "ForAllValues:StringEquals": { "groups": "ops" } }), groups()));
    assert!(case(json!({ "ForAllValues:StringEquals": { "groups": "ops" } }), g()), "ForAllValues with no values is true (IAM)");
    assert!(case(json!({ "ForAllValues:StringNotEquals": { "groups": "admins" } }), groups()));
    assert!(case(json!({ "ForAnyValue:StringNotEquals": { "groups": "ops" } }), groups()));
    // Without a qualifier a list matches if any value does.
    assert!(case(json!({ "StringEquals": { "aud": ["other", "stint"] } }), with(g(), "aud", json!(["stint", "x"]))));
}

#[test]
fn an_explicit_deny_wins() {
    let doc = json!({ "Statement": [
        { "Sid": "AllowAcme", "Effect": "Allow", "Principal": { "Federated": GH }, "Action": ["sts:AssumeRoleWithWebIdentity"],
          "Condition": { "StringEquals": { "aud": "stint" }, "StringLike": { "sub": "repo:acme/*" } } },
        { "Sid": "NoForks", "Effect": "Deny", "Principal": { "Federated": GH }, "Action": "sts:AssumeRoleWithWebIdentity",
          "Condition": { "StringEquals": { "event_name": "pull_request" } } },
    ]});
    let p = parse(&doc.to_string());
    assert_eq!(p.evaluate(GH, &github()).decision, Decision::Allowed { statement: 0 });
    let e = p.evaluate(GH, &with(github(), "event_name", json!("pull_request")));
    assert_eq!(e.decision, Decision::Denied { statement: 1 });
    assert_eq!(e.refusal(), "statement 2 (\"NoForks\") (Deny) matched");
}

#[test]
fn unsafe_or_malformed_policies_are_refused_at_start() {
    let refused = |doc: String, needle: &str| {
        let e = TrustPolicy::parse(&doc, &issuers()).unwrap_err();
        assert_eq!(e.code(), "invalid_trust_policy");
        assert!(e.to_string().contains(needle), "{needle:?} not in {e}");
    };
    refused(policy(json!({ "StringEquals": { "sub": "repo:acme/infra:ref:refs/heads/main" } })), "binds no audience");
    refused(policy(json!({ "StringEquals": { "aud": "stint" } })), "binds neither sub nor repository");
    refused(policy(json!({ "StringEquals": { "aud": "stint" }, "StringLike": { "sub": "*" } })), "binds neither sub");
    refused(policy(json!({ "StringEquals": { "aud": "stint", "sub": "x" }, "DateGreaterThan": { "iat": "1" } })), "unsupported condition operator");
    refused(policy(json!({ "StringEquals": { "aud": "stint", "gitlab.example.com:sub": "x" } })), "not this statement's Principal.Federated");
    refused(policy(json!({ "StringEquals": { "aud": "stint", "sub": [] } })), "empty list");
    refused(policy(json!({ "Null": { "aud": "maybe" }, "StringEquals": { "aud": "stint", "sub": "x" } })), "Null takes");
    refused(main_only().replace("token.actions.githubusercontent.com\"", "evil.example.com\""), "not a configured CI issuer");
    refused(main_only().replace("sts:AssumeRoleWithWebIdentity", "sts:AssumeRole"), "Action must include");
    refused(main_only().replace("\"Allow\"", "\"Permit\""), "Effect");
    refused(main_only().replace("\"Action\"", "\"NotAction\""), "NotAction is not supported");
    refused(main_only().replace("2012-10-17", "2020-01-01"), "Version");
    refused("[]".into(), "expected a JSON object");
    refused("{".into(), "not JSON");
    refused(json!({ "Statement": [] }).to_string(), "needs a Statement");
}

#[test]
fn string_equals_with_a_wildcard_is_a_warning() {
    let (_, warnings) = TrustPolicy::parse(&policy(json!({ "StringEquals": { "aud": "stint", "sub": "repo:acme/*" } })), &issuers()).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("never match as wildcards; use StringLike"), "{warnings:?}");
    let (_, warnings) = TrustPolicy::parse(&main_only(), &issuers()).unwrap();
    assert!(warnings.is_empty());
}

#[test]
fn globs() {
    for (p, t, want) in [
        ("*", "", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbb", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*main", "refs/heads/main", true),
        ("refs/*/main", "refs/heads/x/main", true),
        ("**", "x", true),
        ("a*b*c", "aXbYbZc", true),
        ("abc", "ABC", false),
    ] {
        assert_eq!(glob(p.as_bytes(), t.as_bytes()), want, "{p} ~ {t}");
    }
}
