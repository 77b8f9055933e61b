//! Names and identifiers, parsed on construction so that a value of these types is valid.

use std::fmt;

use crate::error::{Error, Result};

fn check_name(kind: &'static str, code: &'static str, s: &str, max: usize) -> Result<()> {
    let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if s.is_empty() || s.len() > max || !ok_first || !ok_rest {
        return Err(Error::invalid(
            code,
            format!("invalid {kind} {:?}: use 1-{max} characters of a-z, 0-9, '-', '_', '.', starting with a letter or digit", truncate(s)),
        ));
    }
    Ok(())
}

/// Peer-supplied text made fit for messages and audit records: at most 64 characters, and
/// control characters (NUL, which PostgreSQL text refuses, newlines, escapes) replaced.
pub fn truncate(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $code:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self> {
                check_name($kind, $code, s, $max)?;
                Ok($name(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A login name, e.g. `alice`.
    Username, "username", "invalid_username", 64
);
name_type!(
    /// A role name, e.g. `readonly`.
    RoleName, "role name", "invalid_role", 64
);
name_type!(
    /// A group name, e.g. `developers`.
    GroupName, "group name", "invalid_group", 64
);
name_type!(
    /// The name of a SCIM token: the identity provider it is for, e.g. `okta`.
    ScimTokenName, "SCIM token name", "invalid_scim_token_name", 64
);
name_type!(
    /// A workload's name, e.g. `api`.
    WorkloadName, "workload name", "invalid_workload_name", 64
);

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $code:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id: prefix plus 128 random bits in lowercase base32.
            pub fn random(rng: &mut dyn rand_core::CryptoRngCore) -> Self {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                $name(format!("{}{}", $prefix, data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase()))
            }
            /// Accepts only ids of this kind's shape, so junk never reaches a query.
            pub fn parse(s: &str) -> Result<Self> {
                let body = s.strip_prefix($prefix).unwrap_or("");
                if body.len() != 26 || !body.bytes().all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)) {
                    return Err(Error::invalid($code, format!("malformed id {:?}", truncate(s))));
                }
                Ok($name(s.to_owned()))
            }
            /// For ids read back from the store, which only ever holds ids this type made.
            pub fn from_trusted(s: String) -> Self {
                $name(s)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user's stable id; the `sub` of every token, never reused.
    UserId, "u_", "invalid_user_id"
);
id_type!(
    /// A session's id; the `sid` of every token derived from it.
    SessionId, "s_", "invalid_session_id"
);
id_type!(
    /// A token's unique id (`jti`).
    TokenId, "t_", "invalid_token_id"
);
id_type!(
    /// A lease: one credential a backend issued, until it ends.
    LeaseId, "l_", "invalid_lease_id"
);
id_type!(
    /// A workload's stable id, never reused.
    WorkloadId, "w_", "invalid_workload_id"
);
id_type!(
    /// A group an identity provider provisioned through SCIM.
    ScimGroupId, "sg_", "invalid_group_id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn names_are_validated() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b-c_9").is_ok());
        for bad in ["", "Alice", "-a", "a b", "a/b", "a'; drop", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_round_trip_and_reject_junk() {
        let id = SessionId::random(&mut OsRng);
        assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
        assert!(SessionId::parse("s_../../etc/passwd").is_err());
        assert!(SessionId::parse(UserId::random(&mut OsRng).as_str()).is_err());
    }
}
