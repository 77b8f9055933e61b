//! The container credentials provider (ECS task roles, EKS Pod Identity), per PROTOCOLS.md §1
//! and the AWS SDKs & Tools Reference Guide.
//!
//! - `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` wins: `GET http://169.254.170.2<relative>`.
//! - Otherwise `AWS_CONTAINER_CREDENTIALS_FULL_URI`: any `https://` URL, or `http://` only to
//!   a loopback address, `localhost`, the ECS agent `169.254.170.2` or EKS Pod Identity
//!   `169.254.170.23` / `[fd00:ec2::23]`. Host names other than `localhost` are refused for
//!   plain http rather than resolved (the SDKs resolve and check every address; refusing is
//!   the stricter reading and avoids a DNS race).
//! - `Authorization`: the contents of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (trailing
//!   newline trimmed), else `AWS_CONTAINER_AUTHORIZATION_TOKEN`, sent verbatim.
//! - 200 answer: `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`; an error
//!   answer: `{"code", "message"}`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::{read_small_file, AmbientEnv};
use crate::error::{Error, Result};
use crate::query::{error_chain, parse_time, read_bounded, ReadError};
use crate::secret::{Credentials, SecretString};

/// The ECS agent's link-local address for relative URIs.
const ECS_HOST: &str = "169.254.170.2";
/// A credentials answer is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// The agent is local: if it does not answer quickly it is not there.
const TIMEOUT: Duration = Duration::from_secs(5);
const FROM: &str = "the container credentials provider";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    access_key_id: String,
    secret_access_key: SecretString,
    token: SecretString,
    expiration: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    code: Option<String>,
    message: Option<String>,
}

/// Credentials from the provider the environment names; `None` if it names none.
pub(crate) async fn fetch(env: &AmbientEnv, http: &reqwest::Client) -> Result<Option<Credentials>> {
    let Some(url) = uri(env)? else { return Ok(None) };
    let mut req = http.get(url.clone()).header("accept", "application/json").timeout(TIMEOUT);
    if let Some(token) = authorization(env)? {
        req = req.header("authorization", token.expose());
    }
    let transport = |e: reqwest::Error| Error::Transport { endpoint: url.to_string(), detail: error_chain(e) };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    let body = read_bounded(resp, MAX_ANSWER).await.map_err(|e| match e {
        ReadError::TooLarge => Error::malformed(FROM, format!("the answer is larger than {MAX_ANSWER} bytes")),
        ReadError::Http(e) => transport(e),
    })?;
    if !status.is_success() {
        let e: Option<ErrorAnswer> = serde_json::from_str(&body).ok();
        let (code, message) = e.map(|e| (e.code, e.message)).unwrap_or_default();
        return Err(Error::Aws {
            service: "container-credentials",
            status: status.as_u16(),
            code: code.unwrap_or_else(|| "Unknown".into()),
            message: message.unwrap_or_else(|| format!("{url} answered HTTP {status}; is the task role / pod identity association set up?")),
            request_id: None,
        });
    }
    // serde's message names the missing field, never a value of a string field.
    let a: Answer = serde_json::from_str(&body).map_err(|e| Error::malformed(FROM, format!("not the credentials JSON expected ({e})")))?;
    let expiration = a.expiration.as_deref().map(|s| parse_time(s, FROM)).transpose()?;
    Ok(Some(Credentials::temporary(a.access_key_id, a.secret_access_key, a.token, expiration)))
}

/// The URI to ask, if the environment names one.
fn uri(env: &AmbientEnv) -> Result<Option<Url>> {
    if let Some(rel) = &env.container_credentials_relative_uri {
        let bad = || Error::Config(format!("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI {rel:?} must be a path starting with /"));
        if !rel.starts_with('/') {
            return Err(bad());
        }
        return Url::parse(&format!("http://{ECS_HOST}{rel}")).map(Some).map_err(|_| bad());
    }
    let Some(full) = &env.container_credentials_full_uri else { return Ok(None) };
    let url = Url::parse(full).map_err(|e| Error::Config(format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} is not a URL ({e})")))?;
    match url.scheme() {
        "https" => Ok(Some(url)),
        "http" if url.host_str().is_some_and(allowed_http_host) => Ok(Some(url)),
        _ => Err(Error::Config(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} must be https, or http to a loopback address, \
             {ECS_HOST} (ECS) or 169.254.170.23 / fd00:ec2::23 (EKS Pod Identity)"
        ))),
    }
}

fn allowed_http_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let eks_v6 = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23);
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.octets() == [169, 254, 170, 2] || ip.octets() == [169, 254, 170, 23],
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip == eks_v6,
        Err(_) => false,
    }
}

/// The `Authorization` value: the token file's contents, else the token variable.
fn authorization(env: &AmbientEnv) -> Result<Option<SecretString>> {
    let token = match &env.container_authorization_token_file {
        Some(path) => {
            let text = read_small_file(path, 16 * 1024, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")?
                .ok_or_else(|| Error::Config(format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names {}, which does not exist", path.display())))?;
            SecretString::new(text.expose().trim_end_matches(['\r', '\n']))
        }
        None => match &env.container_authorization_token {
            Some(t) => t.clone(),
            None => return Ok(None),
        },
    };
    // A line break would let the value inject headers; the SDKs refuse it too.
    if token.expose().contains(['\r', '\n']) {
        return Err(Error::Config("the container authorization token contains a line break".into()));
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(uri: &str) -> AmbientEnv {
        AmbientEnv { container_credentials_full_uri: Some(uri.into()), ..AmbientEnv::default() }
    }

    #[test]
    fn relative_uri_wins_and_goes_to_the_ecs_agent() {
        let env = AmbientEnv { container_credentials_relative_uri: Some("/v2/credentials/abc".into()), ..full("https://example.com/creds") };
        assert_eq!(uri(&env).expect("ok").map(String::from).as_deref(), Some("http://169.254.170.2/v2/credentials/abc"));
        let env = AmbientEnv { container_credentials_relative_uri: Some("@evil.com/".into()), ..AmbientEnv::default() };
        assert!(uri(&env).is_err());
    }

    #[test]
    fn full_uri_must_be_https_or_a_local_agent() {
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:9911/creds",
            "http://127.1.2.3/creds",
            "http://localhost:8080/",
            "http://169.254.170.2/v2",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[::1]:80/",
        ] {
            assert!(uri(&full(ok)).expect(ok).is_some(), "{ok}");
        }
        for bad in ["http://10.0.0.1/creds", "http://example.com/creds", "http://localhost.example.com/", "ftp://127.0.0.1/", "not a url"] {
            assert!(uri(&full(bad)).is_err(), "{bad}");
        }
        assert!(uri(&AmbientEnv::default()).expect("ok").is_none());
    }

    #[test]
    fn token_file_wins_over_the_variable_and_line_breaks_are_refused() {
        let path = std::env::temp_dir().join(format!("stint-aws-container-token-{}", std::process::id()));
        std::fs::write(&path, "Basic from-file\n").expect("write");
        let env = AmbientEnv {
            container_authorization_token_file: Some(path.clone()),
            container_authorization_token: Some(SecretString::new("Basic from-env")),
            ..AmbientEnv::default()
        };
        assert_eq!(authorization(&env).expect("ok").as_ref().map(SecretString::expose), Some("Basic from-file"));
        let env = AmbientEnv { container_authorization_token_file: None, ..env };
        assert_eq!(authorization(&env).expect("ok").as_ref().map(SecretString::expose), Some("Basic from-env"));
        let env = AmbientEnv { container_authorization_token: Some(SecretString::new("a\r\nX-Evil: 1")), ..env };
        assert!(authorization(&env).is_err());
        std::fs::remove_file(&path).expect("cleanup");
    }
}
