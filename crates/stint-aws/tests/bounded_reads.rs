//! AWS (or something posing as its endpoint, or as the container credentials agent) answering
//! without end: stint-aws stops reading at its cap and refuses with [`Error::Malformed`],
//! instead of holding the stream in memory until the request times out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use stint_aws::{AmbientEnv, Credentials, CredentialsProvider, Endpoint, Error, SecretString, Sts, SystemClock};
use stint_testkit::hostile::{Answer, Hostile, PROMPT};

fn malformed(e: &Error) -> &str {
    match e {
        Error::Malformed { what, .. } => what,
        other => panic!("not Malformed: {other}"),
    }
}

#[tokio::test]
async fn an_endless_sts_answer_is_refused_while_reading() {
    for status in [200, 403] {
        let aws = Hostile::start(|_| vec![("/", Answer::Endless(status, "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>"))]).await;
        let own = CredentialsProvider::fixed(Credentials::new("AKIDSTINTTESTBOUNDED", SecretString::new("secret")));
        let sts = Sts::new("us-east-1", Endpoint::insecure_http_loopback(&aws.url).unwrap(), own).unwrap();
        let started = Instant::now();
        let e = sts.get_caller_identity().await.expect_err("refused");
        assert!(started.elapsed() < PROMPT, "refused after {:?}: {e}", started.elapsed());
        assert_eq!(malformed(&e), "the answer is larger than 1048576 bytes", "HTTP {status}");
        aws.reader_hung_up().await;
    }
}

#[tokio::test]
async fn an_endless_container_credentials_answer_is_refused_while_reading() {
    let agent = Hostile::start(|_| vec![("/v1/credentials", Answer::Endless(200, r#"{"AccessKeyId": ""#))]).await;
    let vars: HashMap<String, String> =
        [("HOME", "/nonexistent-stint-test-home".to_owned()), ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{}/v1/credentials", agent.url))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    let own = CredentialsProvider::chain(AmbientEnv::from_lookup(|k| vars.get(k).cloned()), None, Arc::new(SystemClock)).unwrap();
    let started = Instant::now();
    let e = own.credentials().await.expect_err("refused");
    assert!(started.elapsed() < PROMPT, "refused after {:?}: {e}", started.elapsed());
    assert_eq!(malformed(&e), "the answer is larger than 65536 bytes", "{e}");
    agent.reader_hung_up().await;
}
