//! AWS IAM role inline policies through `aws-sdk-iam`: `PutRolePolicy`, `GetRolePolicy`,
//! `DeleteRolePolicy`.
//!
//! IAM is a global service (the SDK signs for its partition's global region whatever the
//! client's region). `GetRolePolicy` returns the document percent-encoded (RFC 3986); this
//! client decodes it. IAM limits the inline policies of one role to 10,240 characters in total
//! (whitespace not counted), which [`Iam::put_role_policy`] checks for the one document it
//! is given. IAM answers a missing role and a missing policy alike with `NoSuchEntity`.

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// The most characters (whitespace not counted) all inline policies of one role may have.
pub const ROLE_INLINE_POLICY_LIMIT: usize = 10_240;

/// An IAM client (see [`crate::Aws::load`]).
#[derive(Clone, Debug)]
pub struct Iam {
    pub(crate) client: aws_sdk_iam::Client,
    /// The same client with a larger cap, for `GetCredentialReport` only.
    pub(crate) reports: aws_sdk_iam::Client,
}

impl Iam {
    pub(crate) fn new(client: aws_sdk_iam::Client, reports: aws_sdk_iam::Client) -> Iam {
        Iam { client, reports }
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
        self.client
            .put_role_policy()
            .role_name(role_name)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::from_sdk("iam", e))
    }

    /// `GetRolePolicy`: the decoded policy document, or `None` if IAM answers `NoSuchEntity`
    /// (no such policy — or no such role).
    #[tracing::instrument(skip_all, fields(%role_name, %policy_name))]
    pub async fn get_role_policy(&self, role_name: &str, policy_name: &str) -> Result<Option<String>> {
        check_names(role_name, policy_name)?;
        let out = match self.client.get_role_policy().role_name(role_name).policy_name(policy_name).send().await.map_err(|e| Error::from_sdk("iam", e)) {
            Ok(out) => out,
            Err(e) if e.aws_code() == Some("NoSuchEntity") => return Ok(None),
            Err(e) => return Err(e),
        };
        // IAM returns the document percent-encoded (RFC 3986); the SDK passes it on as is.
        percent_decode_str(&out.policy_document)
            .decode_utf8()
            .map(|d| Some(d.into_owned()))
            .map_err(|_| Error::Malformed { service: "iam", detail: "the policy document is not percent-encoded UTF-8".into() })
    }

    /// `DeleteRolePolicy`. Returns whether there was a policy to delete: `NoSuchEntity` (no
    /// such policy, or no such role) is `Ok(false)`, so deleting twice is harmless.
    #[tracing::instrument(skip_all, fields(%role_name, %policy_name))]
    pub async fn delete_role_policy(&self, role_name: &str, policy_name: &str) -> Result<bool> {
        check_names(role_name, policy_name)?;
        match self.client.delete_role_policy().role_name(role_name).policy_name(policy_name).send().await.map_err(|e| Error::from_sdk("iam", e)) {
            Ok(_) => Ok(true),
            Err(e) if e.aws_code() == Some("NoSuchEntity") => Ok(false),
            Err(e) => Err(e),
        }
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
