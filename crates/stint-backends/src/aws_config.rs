//! An AWS backend's configuration: plain data, built whether or not this build has the AWS
//! backend itself (feature `aws`), so the server's configuration reads the same everywhere.

use std::collections::BTreeMap;

use stint_core::ids::RoleName;

/// IAM's default `MaxSessionDuration` for a role (1 h): the longest session it allows unless raised.
pub const DEFAULT_MAX_SESSION_SECS: u32 = 3_600;

/// An AWS backend as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsConfig {
    /// The backend's name in the configuration (leases and audit records carry it).
    pub name: String,
    /// The AWS region: where STS is called (`https://sts.{region}.amazonaws.com` unless
    /// `sts_endpoint` is set), and what issued credentials name as `AWS_REGION`.
    pub region: String,
    /// stint role → the ARN of the IAM role its sessions assume,
    /// `arn:aws:iam::<account>:role/<path/>name`.
    pub roles: BTreeMap<RoleName, String>,
    /// Replaces STS's regional endpoint (a VPC or FIPS endpoint): `https://host[:port]`.
    /// Also used for the web identity exchange of stint's own credentials.
    pub sts_endpoint: Option<String>,
    /// Replaces IAM's endpoint `https://iam.amazonaws.com` (other partitions, VPC endpoints).
    pub iam_endpoint: Option<String>,
    /// On revocation, write the deny policy that neutralises the person's or pipeline's
    /// sessions issued before it (see the module documentation). Needs the IAM permissions
    /// listed there; without it, a revoked key lives until it expires.
    pub revoke_sessions: bool,
    /// The longest session asked of STS, 900–43,200 s; must not exceed the roles'
    /// `MaxSessionDuration` (IAM's default is [`DEFAULT_MAX_SESSION_SECS`]). A longer lease
    /// gets a credential that expires this long after issuance.
    pub max_session_secs: u32,
    /// Accepts `http://` endpoints on a loopback address, for a local emulator in tests
    /// (TOML `danger_allow_http_loopback`). Never for real AWS.
    pub allow_http_loopback: bool,
}

impl AwsConfig {
    /// A configuration with the defaults: AWS's own endpoints, sessions revoked on
    /// revocation, at most [`DEFAULT_MAX_SESSION_SECS`], HTTPS only.
    pub fn new(name: impl Into<String>, region: impl Into<String>, roles: BTreeMap<RoleName, String>) -> AwsConfig {
        AwsConfig {
            name: name.into(),
            region: region.into(),
            roles,
            sts_endpoint: None,
            iam_endpoint: None,
            revoke_sessions: true,
            max_session_secs: DEFAULT_MAX_SESSION_SECS,
            allow_http_loopback: false,
        }
    }
}
