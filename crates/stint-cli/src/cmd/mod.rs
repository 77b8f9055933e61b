//! One module per command family.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod auth;
#[cfg(feature = "server")]
pub mod bench;
pub mod cache;
pub mod ci;
pub mod creds;
pub mod inventory;
pub mod leases;
#[cfg(feature = "server")]
pub mod policy;
pub mod report;
pub mod requests;
pub mod scan;
pub mod scim;
#[cfg(feature = "server")]
pub mod server;
pub mod sso;
pub mod workload;

/// A role, named either way: `stint assume developer` or `stint assume --role developer`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RoleArg {
    /// The role (see `stint whoami`); or give it with --role
    #[arg(value_name = "ROLE")]
    role: Option<String>,
    /// The role, as a flag (the same as the argument)
    #[arg(long = "role", short = 'r', value_name = "ROLE")]
    flag: Option<String>,
}

impl RoleArg {
    /// The one role named; both forms may name it, but not two different roles.
    pub fn name(&self) -> anyhow::Result<&str> {
        match (&self.role, &self.flag) {
            (Some(a), Some(f)) if a != f => anyhow::bail!("two roles named, {a} and --role {f}; name one"),
            (Some(r), _) | (None, Some(r)) => Ok(r),
            (None, None) => anyhow::bail!("name the role: as an argument (ROLE) or with --role ROLE; `stint whoami` lists yours"),
        }
    }
}

/// The HTTP layer hides internal causes from peers; the operator at the console needs them.
#[cfg(feature = "server")]
pub fn operator_error(e: stint_core::Error) -> anyhow::Error {
    match e {
        stint_core::Error::Internal(cause) => anyhow::anyhow!(cause),
        stint_core::Error::Store(cause) => {
            // Database errors keep their detail (e.g. PostgreSQL's message) in the source chain.
            let mut text = format!("storage: {cause}");
            let mut next = std::error::Error::source(&*cause);
            while let Some(e) = next {
                text.push_str(&format!(": {e}"));
                next = e.source();
            }
            anyhow::anyhow!(text)
        }
        other => anyhow::anyhow!(other),
    }
}

#[cfg(test)]
mod tests {
    use super::RoleArg;

    fn arg(role: Option<&str>, flag: Option<&str>) -> RoleArg {
        RoleArg { role: role.map(String::from), flag: flag.map(String::from) }
    }

    #[test]
    fn a_role_is_named_as_an_argument_or_a_flag_but_not_two_ways_at_odds() {
        assert_eq!(arg(Some("developer"), None).name().unwrap(), "developer");
        assert_eq!(arg(None, Some("developer")).name().unwrap(), "developer");
        assert_eq!(arg(Some("developer"), Some("developer")).name().unwrap(), "developer");
        let both = arg(Some("developer"), Some("admin")).name().unwrap_err().to_string();
        assert!(both.contains("developer") && both.contains("--role admin"), "{both}");
        assert!(arg(None, None).name().unwrap_err().to_string().contains("--role ROLE"));
    }
}
