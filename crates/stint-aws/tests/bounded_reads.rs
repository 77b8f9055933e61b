//! AWS (or something posing as its endpoint, or as a credential provider) answering without
//! end: the HTTP client stint-aws gives the SDK stops reading at its cap and the call fails,
//! instead of holding the stream in memory until the call times out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use aws_config::imds;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::ProvideCredentials;
use stint_aws::{Aws, Endpoint, Error, Identity, Keys, Settings};
use stint_testkit::hostile::{Answer, Hostile, PROMPT};

#[tokio::test]
async fn an_endless_sts_answer_is_refused_while_reading() {
    for status in [200, 403] {
        let aws = Hostile::start(|_| vec![("/", Answer::Endless(status, "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>"))]).await;
        let endpoint = Endpoint::insecure_http_loopback(&aws.url).unwrap();
        let settings = Settings::new("us-east-1", Some(endpoint.clone()), Some(endpoint)).unwrap();
        let sts = Aws::load(&settings, &Identity::Keys(Keys::new("AKIDSTINTTESTBOUNDED", "secret", None))).await.sts;
        let started = Instant::now();
        let e = sts.get_caller_identity().await.expect_err("refused");
        assert!(started.elapsed() < PROMPT, "refused after {:?}: {e}", started.elapsed());
        assert!(matches!(e, Error::Malformed { .. } | Error::Transport { .. }), "HTTP {status}: {e}");
        assert!(e.to_string().contains("length limit exceeded"), "HTTP {status}: {e}");
        aws.reader_hung_up().await;
    }
}

#[tokio::test]
async fn an_endless_instance_metadata_answer_is_refused_while_reading() {
    // The SDK's own IMDSv2 credential provider, on stint's HTTP client: the token is answered,
    // the credentials never end.
    let imds_server = Hostile::start(|_| {
        vec![
            ("/latest/api/token", Answer::WithHeaders(vec![("x-aws-ec2-metadata-token-ttl-seconds", "21600")], "imds-session-token".into())),
            ("/latest/meta-data/iam/security-credentials/", Answer::Json("stint-instance".into())),
            ("/latest/meta-data/iam/security-credentials/stint-instance", Answer::Endless(200, r#"{"Code":"Success","AccessKeyId":""#)),
        ]
    })
    .await;
    let config = ProviderConfig::empty().with_http_client(stint_aws::client::http_client());
    let client = imds::Client::builder().configure(&config).endpoint(imds_server.url.as_str()).unwrap().build();
    let provider = imds::credentials::ImdsCredentialsProvider::builder().configure(&config).imds_client(client).build();
    let started = Instant::now();
    let e = provider.provide_credentials().await.expect_err("refused");
    assert!(started.elapsed() < PROMPT, "refused after {:?}: {e}", started.elapsed());
    let shown = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
    assert!(shown.contains("length limit exceeded"), "{shown}");
    imds_server.reader_hung_up().await;
}
