//! AWS STS through `aws-sdk-sts`: `AssumeRole` and `GetCallerIdentity`.
//!
//! Parameters are checked against STS's documented limits before anything is sent, so a
//! wrong value fails with a message naming the rule instead of a round trip to AWS:
//! `RoleSessionName` and `SourceIdentity` are 2–64 characters of `[\w+=,.@-]`,
//! `DurationSeconds` is 900–43200, a session policy is at most 2,048 characters, and there
//! are at most 50 session tags (keys 1–128, values 0–256 characters).

use aws_sdk_sts::types::Tag;
use time::OffsetDateTime;

use crate::client::Keys;
use crate::error::{Error, Result};

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
    /// Temporary credentials: `ASIA…` key id, secret and session token.
    pub keys: Keys,
    pub expiration: OffsetDateTime,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// `AROA…:<session>`, which is what `aws:userid` holds in the session's requests.
    pub assumed_role_id: String,
    /// Echoed by STS when one was set (absent from some emulators).
    pub source_identity: Option<String>,
}

/// What `GetCallerIdentity` returns: who the signing credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

/// An STS client (see [`crate::Aws::load`]).
#[derive(Clone, Debug)]
pub struct Sts {
    client: aws_sdk_sts::Client,
}

impl Sts {
    pub(crate) fn new(client: aws_sdk_sts::Client) -> Sts {
        Sts { client }
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
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(|e| Error::Invalid(format!("session tag {k:?}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .client
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(role_session_name)
            .source_identity(source_identity)
            .duration_seconds(i32::try_from(duration_secs).unwrap_or(i32::MAX))
            .set_tags(Some(tags))
            .set_policy(policy.map(str::to_owned))
            .send()
            .await
            .map_err(|e| Error::from_sdk("sts", e))?;
        let missing = |what: &str| Error::Malformed { service: "sts", detail: format!("the AssumeRole answer has no {what}") };
        let c = out.credentials.ok_or_else(|| missing("Credentials"))?;
        let user = out.assumed_role_user.ok_or_else(|| missing("AssumedRoleUser"))?;
        let expiration = OffsetDateTime::from_unix_timestamp(c.expiration.secs())
            .map_err(|_| Error::Malformed { service: "sts", detail: "the credentials' expiration is out of range".into() })?;
        Ok(AssumedRole {
            keys: Keys::new(c.access_key_id, c.secret_access_key, Some(c.session_token)),
            expiration,
            arn: user.arn,
            assumed_role_id: user.assumed_role_id,
            source_identity: out.source_identity,
        })
    }

    /// `GetCallerIdentity`: the account and ARN of the credentials this client signs with.
    #[tracing::instrument(skip_all)]
    pub async fn get_caller_identity(&self) -> Result<CallerIdentity> {
        let out = self.client.get_caller_identity().send().await.map_err(|e| Error::from_sdk("sts", e))?;
        let field =
            |v: Option<String>, name: &str| v.ok_or_else(|| Error::Malformed { service: "sts", detail: format!("the GetCallerIdentity answer has no {name}") });
        Ok(CallerIdentity { account: field(out.account, "Account")?, arn: field(out.arn, "Arn")?, user_id: field(out.user_id, "UserId")? })
    }
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
fn check_role_arn(arn: &str) -> Result<()> {
    stint_core::aws::RoleArn::parse(arn).map(drop).map_err(|e| Error::Invalid(format!("RoleArn: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
