//! `/v1/scim/tokens`: the bearer tokens an identity provider's SCIM connection uses.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateScimTokenRequest {
    /// The identity provider it is for: `okta`, `entra`, `google`.
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct ScimTokenResponse {
    pub name: String,
    /// Shown once: the identity provider's SCIM connection takes it as its bearer token.
    pub token: String,
    pub created_at: String,
}
