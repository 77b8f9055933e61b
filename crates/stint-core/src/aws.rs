//! AWS's own names, checked once where they enter stint.
//!
//! The configuration, the AWS backend and the STS calls all check through here, so a name
//! the configuration accepts is one STS accepts, and a backend never learns at issuance that
//! its configuration was wrong.

use std::fmt;

use crate::error::{Error, Result};
use crate::ids::truncate;

/// The longest ARN STS takes as `RoleArn`.
const MAX_ARN_LEN: usize = 2048;

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path/>name`, with a role
/// name IAM allows (1–64 characters of letters, digits and `_+=,.@-`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleArn(String);

impl RoleArn {
    pub fn parse(arn: &str) -> Result<RoleArn> {
        let refused = || Error::invalid("invalid_role_arn", format!("{:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/name", truncate(arn)));
        if arn.len() > MAX_ARN_LEN {
            return Err(refused());
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
            return Err(refused());
        };
        let partition_ok = !partition.is_empty() && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        // The path between `role/` and the name is IAM's `/…/`, printable ASCII.
        let path_ok = resource.bytes().all(|b| (0x21..=0x7e).contains(&b));
        let name = resource.strip_prefix("role/").and_then(|p| p.rsplit('/').next()).unwrap_or("");
        let name_ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        if partition_ok && account_ok && path_ok && name_ok {
            Ok(RoleArn(arn.to_owned()))
        } else {
            Err(refused())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The role's name: the ARN's last path segment (what IAM's role APIs take).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// The 12-digit account that owns the role.
    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS region name like `eu-west-1`: it becomes part of a host name, so lowercase letters,
/// digits and `-`, at most 32 characters.
pub fn check_region(region: &str) -> Result<()> {
    let ok = !region.is_empty() && region.len() <= 32 && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("invalid_region", format!("AWS region {:?} is not a region name like eu-west-1", truncate(region))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_iam_accepts_parse_with_their_name_and_account() {
        for (arn, name) in [
            ("arn:aws:iam::123456789012:role/deploy", "deploy"),
            ("arn:aws:iam::123456789012:role/service-role/ci/deploy.prod@x", "deploy.prod@x"),
            ("arn:aws-cn:iam::000000000000:role/r_1+=,", "r_1+=,"),
            ("arn:aws-us-gov:iam::123456789012:role/a", "a"),
        ] {
            let parsed = RoleArn::parse(arn).unwrap_or_else(|e| panic!("{arn}: {e}"));
            assert_eq!(parsed.name(), name);
            assert_eq!(parsed.as_str(), arn);
            assert_eq!(parsed.to_string(), arn);
        }
        assert_eq!(RoleArn::parse("arn:aws-cn:iam::000000000000:role/x").unwrap().account(), "000000000000");
    }

    #[test]
    fn anything_else_is_refused_with_a_stable_code() {
        let long_name = format!("arn:aws:iam::123456789012:role/{}", "a".repeat(65));
        let long_arn = format!("arn:aws:iam::123456789012:role/{}/a", "p".repeat(2048));
        for arn in [
            "",
            "deploy",
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:sts::123456789012:role/deploy",
            "arn:aws:iam:us-east-1:123456789012:role/deploy",
            "arn:aws:iam::12345678901:role/deploy",
            "arn:aws:iam::12345678901x:role/deploy",
            "arn::iam::123456789012:role/deploy",
            "arn:AWS:iam::123456789012:role/deploy",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path/",
            "arn:aws:iam::123456789012:role/de ploy",
            "arn:aws:iam::123456789012:role/dé",
            "arn:aws:iam::123456789012:role/a/b c/d",
            "arn:aws:iam::123456789012:role/a:b",
            long_name.as_str(),
            long_arn.as_str(),
        ] {
            let e = RoleArn::parse(arn).expect_err(arn);
            assert_eq!(e.code(), "invalid_role_arn", "{arn}");
            assert!(e.to_string().len() < 200, "the message quotes at most a prefix: {e}");
        }
    }

    #[test]
    fn regions_are_dns_labels() {
        for r in ["us-east-1", "eu-west-2", "cn-north-1", "us-gov-west-1", "local"] {
            check_region(r).unwrap_or_else(|e| panic!("{r}: {e}"));
        }
        for r in ["", "US-EAST-1", "us_east_1", "us-east-1.", "evil.example/", &"a".repeat(33)] {
            assert_eq!(check_region(r).expect_err(r).code(), "invalid_region", "{r:?}");
        }
    }
}
