//! AWS STS over the Query protocol (API version `2011-06-15`): `AssumeRole`,
//! `GetCallerIdentity`, and the unsigned `AssumeRoleWithWebIdentity` the credential chain uses.
//!
//! Parameters are checked against STS's documented limits before anything is sent, so a
//! wrong value fails with a message naming the rule instead of a round trip to AWS:
//! `RoleSessionName` and `SourceIdentity` are 2–64 characters of `[\w+=,.@-]`,
//! `DurationSeconds` is 900–43200, a session policy is at most 2,048 characters, and there
//! are at most 50 session tags (keys 1–128, values 0–256 characters).

use std::sync::Arc;

use time::OffsetDateTime;

use crate::chain::CredentialsProvider;
use crate::error::{Error, Result};
use crate::query::{self, Clock, Endpoint, QueryClient, SystemClock};
use crate::secret::{Credentials, SecretString};
use crate::xml::Node;

const VERSION: &str = "2011-06-15";

/// The shortest and longest `DurationSeconds` STS accepts (15 min, 12 h). A role's own
/// `MaxSessionDuration` may lower the maximum.
pub const MIN_DURATION_SECS: u32 = 900;
pub const MAX_DURATION_SECS: u32 = 43_200;
/// The longest plaintext session policy STS accepts.
pub const MAX_SESSION_POLICY_LEN: usize = 2_048;
/// The most session tags one `AssumeRole` may pass.
pub const MAX_SESSION_TAGS: usize = 50;

/// What `AssumeRole` returns.
#[derive(Clone, Debug)]
pub struct AssumedRole {
    /// Temporary credentials: `ASIA…` key id, secret, session token, expiration.
    pub credentials: Credentials,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// `AROA…:<session>`, which is what `aws:userid` holds in the session's requests.
    pub assumed_role_id: String,
    /// Echoed by STS when one was set (absent from some emulators).
    pub source_identity: Option<String>,
    /// How full the packed session policy and tags are, in percent of the allowed size.
    pub packed_policy_size: Option<u32>,
}

/// What `GetCallerIdentity` returns: who the signing credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// An STS client for one region.
#[derive(Clone)]
pub struct Sts {
    q: QueryClient,
    credentials: CredentialsProvider,
}

impl Sts {
    /// A client that sends to `endpoint` and signs for `region` with `credentials`.
    pub fn new(region: &str, endpoint: Endpoint, credentials: CredentialsProvider) -> Result<Sts> {
        Ok(Sts { q: client(region, endpoint)?, credentials })
    }

    /// A client for STS's regional endpoint `https://sts.{region}.amazonaws.com`.
    pub fn regional(region: &str, credentials: CredentialsProvider) -> Result<Sts> {
        Sts::new(region, Endpoint::sts(region)?, credentials)
    }

    /// Replaces the clock that dates signatures (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Sts {
        self.q.clock = clock;
        self
    }

    /// `AssumeRole`: temporary credentials for `role_arn`, with `source_identity` set (it is
    /// sticky across role chaining and visible to policies as `aws:SourceIdentity`, which is
    /// what [`crate::revoke`] denies on), session `tags`, and an optional session `policy`.
    #[tracing::instrument(skip_all, fields(%role_arn, %role_session_name, %source_identity, duration_secs = duration_secs))]
    pub async fn assume_role(
        &self,
        role_arn: &str,
        role_session_name: &str,
        source_identity: &str,
        tags: &[(String, String)],
        duration_secs: u32,
        policy: Option<&str>,
    ) -> Result<AssumedRole> {
        check_role_arn(role_arn)?;
        check_name("RoleSessionName", role_session_name)?;
        check_name("SourceIdentity", source_identity)?;
        check_duration(duration_secs)?;
        check_tags(tags)?;
        if let Some(p) = policy {
            check_policy(p)?;
        }
        let duration = duration_secs.to_string();
        let tag_params = tag_params(tags);
        let mut params =
            vec![("RoleArn", role_arn), ("RoleSessionName", role_session_name), ("SourceIdentity", source_identity), ("DurationSeconds", duration.as_str())];
        params.extend(tag_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(p) = policy {
            params.push(("Policy", p));
        }
        let creds = self.credentials.credentials().await?;
        let text = self.q.call("AssumeRole", &params, Some(&creds)).await?;
        parse_assumed_role(&text, "AssumeRoleResponse", "AssumeRoleResult")
    }

    /// `GetCallerIdentity`: the account and ARN of the credentials this client signs with.
    #[tracing::instrument(skip_all)]
    pub async fn get_caller_identity(&self) -> Result<CallerIdentity> {
        let creds = self.credentials.credentials().await?;
        let text = self.q.call("GetCallerIdentity", &[], Some(&creds)).await?;
        let doc = query::document(&text, "sts")?;
        let field = |name: &str| query::required(doc, "sts", &["GetCallerIdentityResponse", "GetCallerIdentityResult", name]);
        Ok(CallerIdentity { account: field("Account")?, arn: field("Arn")?, user_id: field("UserId")? })
    }
}

/// A Query client for STS at `endpoint`, signing for `region`.
pub(crate) fn client(region: &str, endpoint: Endpoint) -> Result<QueryClient> {
    query::check_region(region)?;
    Ok(QueryClient { http: query::http_client()?, endpoint, service: "sts", region: region.to_owned(), version: VERSION, clock: Arc::new(SystemClock) })
}

/// `AssumeRoleWithWebIdentity` (PROTOCOLS.md §3): unsigned, authenticated by the token.
pub(crate) async fn assume_role_with_web_identity(q: &QueryClient, role_arn: &str, role_session_name: &str, token: &SecretString) -> Result<AssumedRole> {
    let params = [("RoleArn", role_arn), ("RoleSessionName", role_session_name), ("WebIdentityToken", token.expose())];
    let text = q.call("AssumeRoleWithWebIdentity", &params, None).await?;
    parse_assumed_role(&text, "AssumeRoleWithWebIdentityResponse", "AssumeRoleWithWebIdentityResult")
}

fn parse_assumed_role(text: &str, response: &str, result: &str) -> Result<AssumedRole> {
    let doc = query::document(text, "sts")?;
    let result = doc.path(&[response, result]).ok_or_else(|| Error::malformed("sts", format!("the answer has no {response}/{result}")))?;
    let field = |path: &[&str]| query::required(result, "sts", path);
    let expiration = query::parse_time(&field(&["Credentials", "Expiration"])?, "sts")?;
    let credentials = Credentials::temporary(
        field(&["Credentials", "AccessKeyId"])?,
        SecretString::new(field(&["Credentials", "SecretAccessKey"])?),
        SecretString::new(field(&["Credentials", "SessionToken"])?),
        Some(expiration),
    );
    let optional = |name: &str| result.child(name).and_then(Node::text);
    Ok(AssumedRole {
        credentials,
        arn: field(&["AssumedRoleUser", "Arn"])?,
        assumed_role_id: field(&["AssumedRoleUser", "AssumedRoleId"])?,
        source_identity: optional("SourceIdentity"),
        packed_policy_size: optional("PackedPolicySize").and_then(|s| s.parse().ok()),
    })
}

fn tag_params(tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(tags.len() * 2);
    for (i, (k, v)) in tags.iter().enumerate() {
        out.push((format!("Tags.member.{}.Key", i + 1), k.clone()));
        out.push((format!("Tags.member.{}.Value", i + 1), v.clone()));
    }
    out
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
fn check_role_arn(arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if !partition.is_empty()
            && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|r| !r.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("RoleArn {arn:?} is not a role ARN like arn:aws:iam::123456789012:role/name")))
    }
}

/// `RoleSessionName` / `SourceIdentity`: 2–64 characters of `[\w+=,.@-]`.
fn check_name(what: &str, value: &str) -> Result<()> {
    let ok = (2..=64).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{what} {value:?} must be 2-64 characters of letters, digits and _+=,.@-")))
    }
}

fn check_duration(secs: u32) -> Result<()> {
    if (MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("DurationSeconds {secs} must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS}")))
    }
}

fn check_tags(tags: &[(String, String)]) -> Result<()> {
    if tags.len() > MAX_SESSION_TAGS {
        return Err(Error::Invalid(format!("{} session tags given; STS accepts at most {MAX_SESSION_TAGS}", tags.len())));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if !(1..=128).contains(&k.chars().count()) || v.chars().count() > 256 {
            return Err(Error::Invalid(format!("session tag {k:?}: keys must be 1-128 and values 0-256 characters")));
        }
        // STS treats tag keys case-insensitively and refuses duplicates.
        if tags[..i].iter().any(|(other, _)| other.eq_ignore_ascii_case(k)) {
            return Err(Error::Invalid(format!("session tag key {k:?} is given twice (keys are case-insensitive)")));
        }
    }
    Ok(())
}

fn check_policy(policy: &str) -> Result<()> {
    let len = policy.chars().count();
    if len > MAX_SESSION_POLICY_LEN {
        return Err(Error::Invalid(format!("the session policy has {len} characters; STS accepts at most {MAX_SESSION_POLICY_LEN}")));
    }
    Ok(())
}

/// A session name for `AssumeRoleWithWebIdentity` when `AWS_ROLE_SESSION_NAME` is unset.
pub(crate) fn default_session_name(now: OffsetDateTime) -> String {
    format!("stint-{}", now.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assume_role_answers() {
        let xml = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
            <SourceIdentity>alice@example.com</SourceIdentity>
            <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s1</Arn><AssumedRoleId>AROA3XFRBF535PLBIFPI4:s1</AssumedRoleId></AssumedRoleUser>
            <Credentials><AccessKeyId>ASIAJEXAMPLEXEG2JICEA</AccessKeyId><SecretAccessKey>9drTJvcXLB89EXAMPLELB8923FB892xMFI</SecretAccessKey>
            <SessionToken>AQoXdzELDDY//////////wEaoAK1wvxJY12r2IrDFT2IvAzTCn3zHoZ7YNtpiQLF0MqZye/qwjzP2iEXAMPLEbw/m3hsj8VBTkPORGvr9jM5sgP+w9IZWZnU=</SessionToken>
            <Expiration>2019-11-09T13:34:41Z</Expiration></Credentials>
            <PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>
            <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></AssumeRoleResponse>"#;
        let r = parse_assumed_role(xml, "AssumeRoleResponse", "AssumeRoleResult").expect("parses");
        assert_eq!(r.credentials.access_key_id(), "ASIAJEXAMPLEXEG2JICEA");
        assert_eq!(r.credentials.secret_access_key().expose(), "9drTJvcXLB89EXAMPLELB8923FB892xMFI");
        assert!(r.credentials.session_token().is_some_and(|t| t.expose().starts_with("AQoXdzELDDY")));
        assert_eq!(r.credentials.expiration().map(|t| t.unix_timestamp()), Some(1_573_306_481));
        assert_eq!(r.arn, "arn:aws:sts::123456789012:assumed-role/demo/s1");
        assert_eq!(r.assumed_role_id, "AROA3XFRBF535PLBIFPI4:s1");
        assert_eq!(r.source_identity.as_deref(), Some("alice@example.com"));
        assert_eq!(r.packed_policy_size, Some(6));
        let shown = format!("{r:?}");
        assert!(!shown.contains("9drTJvcXLB89") && !shown.contains("AQoXdzELDDY"), "{shown}");
    }

    #[test]
    fn a_missing_field_is_malformed() {
        let xml = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let e = parse_assumed_role(xml, "AssumeRoleResponse", "AssumeRoleResult").expect_err("incomplete");
        assert!(matches!(e, Error::Malformed { .. }), "{e}");
    }

    #[test]
    fn checks_parameters_before_sending() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/path/demo").is_ok());
        assert!(check_role_arn("arn:aws-cn:iam::123456789012:role/demo").is_ok());
        for bad in ["demo", "arn:aws:iam::12345:role/demo", "arn:aws:iam::123456789012:user/demo", "arn:aws:s3:::bucket", "arn:aws:iam::123456789012:role/"] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
        assert!(check_name("RoleSessionName", "alice@example.com").is_ok());
        assert!(check_name("RoleSessionName", "a").is_err());
        assert!(check_name("RoleSessionName", &"a".repeat(65)).is_err());
        assert!(check_name("SourceIdentity", "alice smith").is_err());
        assert!(check_duration(899).is_err() && check_duration(900).is_ok() && check_duration(43_200).is_ok() && check_duration(43_201).is_err());
        assert!(check_policy(&"x".repeat(2_048)).is_ok() && check_policy(&"x".repeat(2_049)).is_err());
        let tag = |k: &str| (k.to_owned(), "v".to_owned());
        assert!(check_tags(&[tag("team"), tag("Team")]).is_err());
        assert!(check_tags(&[tag("")]).is_err());
        assert!(check_tags(&(0..51).map(|i| tag(&format!("k{i}"))).collect::<Vec<_>>()).is_err());
        assert!(check_tags(&[tag("team"), tag("ticket")]).is_ok());
    }

    #[test]
    fn tags_are_numbered_members() {
        let p = tag_params(&[("team".into(), "infra".into()), ("ticket".into(), "OPS-1".into())]);
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Tags.member.1.Key", "Tags.member.1.Value", "Tags.member.2.Key", "Tags.member.2.Value"]);
    }
}
