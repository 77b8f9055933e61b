//! The workload API: administrators manage workloads under `/v1/workloads`; agents enroll and
//! ask for credentials under `/v1/workload/`.

use serde::{Deserialize, Serialize};
use stint_core::workload::PlatformBinding;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddWorkloadRequest {
    pub name: String,
    pub roles: Vec<String>,
    /// The platform identity whose tokens may enroll the workload's agents.
    #[serde(default)]
    pub platform: Option<PlatformBinding>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// Like `1h`; one hour when omitted, at most 7 days.
    pub ttl: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct JoinTokenResponse {
    pub workload: String,
    /// Shown once: `stint agent --join-token-file` reads it.
    pub join_token: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub join_token: String,
    /// The agent's Ed25519 public key: 32 bytes, base64url without padding.
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestBody {
    pub workload: String,
    /// The platform's token (a Kubernetes projected service-account token, say).
    pub token: String,
    pub public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadCredsBody {
    /// Signed by the agent's enrolled key (`stint_core::workload::sign_assertion`).
    pub assertion: String,
    pub role: String,
    /// A backend by name, `token` for the role token; by default the role's one backend.
    #[serde(default)]
    pub backend: Option<String>,
    /// Like `1h`; by default an hour, or the role's maximum if shorter.
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    /// The lease being renewed: refused with `lease_revoked` when an administrator revoked it.
    #[serde(default)]
    pub previous_lease: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadStatusBody {
    pub assertion: String,
    #[serde(default)]
    pub lease_id: Option<String>,
}
