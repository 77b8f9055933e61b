//! The AWS scenarios, on an AWS API at `--aws-endpoint` (the moto emulator:
//! `.venv/bin/moto_server -p 5000`, which accepts any signature):
//!
//! - `aws`: `POST /v1/creds` for role `readonly` on the bench server's AWS backend: decide,
//!   record the lease durably, `AssumeRole` with the session policy and tags, answer.
//! - `aws-floor`: the same `AssumeRole` form posted straight to the emulator, without stint and
//!   unsigned (a fixed `Authorization` header of the right shape): what the emulator itself
//!   costs, so `aws / aws-floor` is stint's share, comparable across builds.

use serde_json::json;

use super::MakeRequest;

/// The IAM role the bench backend maps `readonly` to (moto does not check that it exists).
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/stint-bench";

/// The bench server's AWS backend on `endpoint` for role `readonly`.
pub fn config(endpoint: &str) -> String {
    format!(
        "[[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{endpoint}\"\niam_endpoint = \"{endpoint}\"\ndanger_allow_http_loopback = true\n\
         [backends.aws.roles]\nreadonly = \"{ROLE_ARN}\"\n"
    )
}

/// `POST /v1/creds` on the AWS backend with each client's session.
pub fn issue(url: &str, sessions: std::sync::Arc<Vec<String>>) -> MakeRequest {
    let url = url.to_owned();
    std::sync::Arc::new(move |h, i| {
        h.post(format!("{url}/v1/creds")).bearer_auth(&sessions[i % sessions.len()]).json(&json!({ "role": "readonly", "ttl": "5m", "backend": "aws" }))
    })
}

/// The floor: `AssumeRole` with the parameters the backend sends (session policy, tags,
/// source identity), posted to the emulator directly.
pub fn floor(endpoint: &str) -> MakeRequest {
    let endpoint = endpoint.to_owned();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "UntilStintLeaseEnds", "Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}},
        {"Sid": "StintLeaseEnded", "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"DateGreaterThanEquals": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}}]})
    .to_string();
    std::sync::Arc::new(move |h, i| {
        let session = format!("l_floor{i}");
        let form = [
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", ROLE_ARN),
            ("RoleSessionName", session.as_str()),
            ("SourceIdentity", "bench-floor"),
            ("DurationSeconds", "900"),
            ("Tags.member.1.Key", "stint-lease"),
            ("Tags.member.1.Value", session.as_str()),
            ("Tags.member.2.Key", "stint-role"),
            ("Tags.member.2.Value", "readonly"),
            ("Policy", policy.as_str()),
        ];
        h.post(&endpoint)
            .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIASTINTBENCHFLOOR0/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00")
            .form(&form)
    })
}
