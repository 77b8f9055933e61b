//! AWS IAM role inline policies over the Query protocol (API version `2010-05-08`):
//! `PutRolePolicy`, `GetRolePolicy`, `DeleteRolePolicy`.
//!
//! IAM is a global service: one endpoint, `https://iam.amazonaws.com`, signed for
//! `us-east-1`. `GetRolePolicy` returns the document percent-encoded (RFC 3986); this client
//! decodes it. IAM limits the inline policies of one role to 10,240 characters in total
//! (whitespace not counted), which [`Iam::put_role_policy`] checks for the one document it
//! is given. IAM answers a missing role and a missing policy alike with `NoSuchEntity`.

use std::sync::Arc;

use crate::chain::CredentialsProvider;
use crate::encode::percent_decode;
use crate::error::{Error, Result};
use crate::query::{self, Clock, Endpoint, QueryClient, SystemClock};

const VERSION: &str = "2010-05-08";

/// IAM signs as this region whatever the caller's region is.
pub const IAM_REGION: &str = "us-east-1";

/// The most characters (whitespace not counted) all inline policies of one role may have.
pub const ROLE_INLINE_POLICY_LIMIT: usize = 10_240;

/// An IAM client.
#[derive(Clone)]
pub struct Iam {
    q: QueryClient,
    credentials: CredentialsProvider,
}

impl Iam {
    /// A client that sends to `endpoint` (signing for `us-east-1`) with `credentials`.
    pub fn new(endpoint: Endpoint, credentials: CredentialsProvider) -> Result<Iam> {
        let q = QueryClient {
            http: query::http_client()?,
            endpoint,
            service: "iam",
            region: IAM_REGION.to_owned(),
            version: VERSION,
            clock: Arc::new(SystemClock),
        };
        Ok(Iam { q, credentials })
    }

    /// A client for `https://iam.amazonaws.com`.
    pub fn global(credentials: CredentialsProvider) -> Result<Iam> {
        Iam::new(Endpoint::iam(), credentials)
    }

    /// Replaces the clock that dates signatures (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Iam {
        self.q.clock = clock;
        self
    }

    /// `PutRolePolicy`: creates or replaces the inline policy `policy_name` of `role_name`.
    #[tracing::instrument(skip_all, fields(%role_name, %policy_name))]
    pub async fn put_role_policy(&self, role_name: &str, policy_name: &str, document: &str) -> Result<()> {
        check_names(role_name, policy_name)?;
        let size = document.chars().filter(|c| !c.is_whitespace()).count();
        if size > ROLE_INLINE_POLICY_LIMIT {
            return Err(Error::Invalid(format!(
                "policy {policy_name:?} has {size} characters; a role's inline policies may have {ROLE_INLINE_POLICY_LIMIT} in total"
            )));
        }
        let params = [("RoleName", role_name), ("PolicyName", policy_name), ("PolicyDocument", document)];
        self.call("PutRolePolicy", &params).await.map(drop)
    }

    /// `GetRolePolicy`: the decoded policy document, or `None` if IAM answers `NoSuchEntity`
    /// (no such policy — or no such role).
    #[tracing::instrument(skip_all, fields(%role_name, %policy_name))]
    pub async fn get_role_policy(&self, role_name: &str, policy_name: &str) -> Result<Option<String>> {
        check_names(role_name, policy_name)?;
        let text = match self.call("GetRolePolicy", &[("RoleName", role_name), ("PolicyName", policy_name)]).await {
            Ok(text) => text,
            Err(e) if e.aws_code() == Some("NoSuchEntity") => return Ok(None),
            Err(e) => return Err(e),
        };
        let doc = query::document(&text, "iam")?;
        let encoded = query::required(doc, "iam", &["GetRolePolicyResponse", "GetRolePolicyResult", "PolicyDocument"])?;
        percent_decode(&encoded).map(Some).ok_or_else(|| Error::malformed("iam", "the policy document is not percent-encoded UTF-8"))
    }

    /// `DeleteRolePolicy`. Returns whether there was a policy to delete: `NoSuchEntity` (no
    /// such policy, or no such role) is `Ok(false)`, so deleting twice is harmless.
    #[tracing::instrument(skip_all, fields(%role_name, %policy_name))]
    pub async fn delete_role_policy(&self, role_name: &str, policy_name: &str) -> Result<bool> {
        check_names(role_name, policy_name)?;
        match self.call("DeleteRolePolicy", &[("RoleName", role_name), ("PolicyName", policy_name)]).await {
            Ok(_) => Ok(true),
            Err(e) if e.aws_code() == Some("NoSuchEntity") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        let creds = self.credentials.credentials().await?;
        self.q.call(action, params, Some(&creds)).await
    }
}

/// Role names are 1–64 and policy names 1–128 characters of `[\w+=,.@-]`.
fn check_names(role_name: &str, policy_name: &str) -> Result<()> {
    let valid = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !valid(role_name, 64) {
        return Err(Error::Invalid(format!("role name {role_name:?} must be 1-64 characters of letters, digits and _+=,.@- (the name, not the ARN)")));
    }
    if !valid(policy_name, 128) {
        return Err(Error::Invalid(format!("policy name {policy_name:?} must be 1-128 characters of letters, digits and _+=,.@-")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_names("deploy-role", "stint-revocations").is_ok());
        assert!(check_names("arn:aws:iam::123456789012:role/deploy", "p").is_err());
        assert!(check_names("", "p").is_err());
        assert!(check_names("r", &"p".repeat(129)).is_err());
    }
}
