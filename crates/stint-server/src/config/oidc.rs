//! `[[identity.oidc]]`: the OpenID Providers people log in through.
//!
//! The client secret comes from a file or an environment variable; a secret written in the
//! file itself must be spelled `danger_client_secret`, so a review spots it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use stint_core::broker::SsoProvider;
use stint_core::ids::{GroupName, RoleName};
use stint_core::policy::Roles;
use stint_core::secret::SecretString;
use stint_core::Ttl;

use super::{err, ConfigError};

/// The longest an SSO session may last: people log in through SSO once a day.
const MAX_SSO_SESSION_SECS: u64 = 8 * 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    #[serde(default)]
    pub oidc: Vec<OidcSection>,
    /// How often SSO sessions are revalidated with their provider (default 15m).
    pub revalidate: Option<String>,
}

/// `identity.revalidate`: how often an SSO session whose login got a refresh token is
/// revalidated with its provider; between 1m and 8h (an SSO session's longest).
pub fn revalidate(v: Option<&str>, origin: &str) -> Result<Ttl, ConfigError> {
    let secs = super::secs_within(origin, "identity.revalidate", v, 15 * 60, 60..=MAX_SSO_SESSION_SECS, "between 1m and 8h")?;
    Ttl::from_secs(secs).map_err(|e| err(origin, "identity.revalidate", e))
}

/// One provider, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// What `stint login --provider` takes; defaults to `sso`.
    pub name: Option<String>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    /// The secret inline. Discouraged: config files get copied, committed and pasted.
    pub danger_client_secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    /// Extra authorization request parameters, e.g. Google's `hd` or `prompt`.
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
    pub email_claim: Option<String>,
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Count an email as verified when the ID token carries no `email_verified` claim.
    pub insecure_assume_email_verified: Option<bool>,
    pub mfa_amr: Option<Vec<String>>,
    #[serde(default)]
    pub mfa_acr: Vec<String>,
    pub step_up_totp: Option<bool>,
    /// Provider group → stint roles its members may assume.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Provider group → stint groups (e.g. the administrators' group).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    pub session_ttl: Option<String>,
    pub provider_session: Option<String>,
    pub clock_skew: Option<String>,
    pub jwks_min_refetch: Option<String>,
    /// Accept `http://127.0.0.1…` issuers. For tests against a local provider only.
    pub danger_allow_http_loopback: Option<bool>,
}

pub use stint_oidc::ClientConfig as OidcClientConfig;

/// `amr` values (RFC 8176) that mean a second factor was used.
pub const DEFAULT_MFA_AMR: [&str; 7] = ["mfa", "otp", "hwk", "swk", "sms", "fpt", "face"];

/// Validates every provider; returns the I/O settings and the login rules, in order.
pub fn providers(sections: Vec<OidcSection>, roles: &Roles, public_url: &str, origin: &str) -> Result<(Vec<OidcClientConfig>, Vec<SsoProvider>), ConfigError> {
    let mut clients = Vec::new();
    let mut rules: Vec<SsoProvider> = Vec::new();
    for (i, s) in sections.into_iter().enumerate() {
        let name = s.name.clone().unwrap_or_else(|| "sso".to_owned());
        let key = |k: &str| format!("identity.oidc[{i}].{k}");
        if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(err(origin, &key("name"), "use 1-32 characters of a-z, 0-9 and '-'"));
        }
        if rules.iter().any(|p| p.name == name) {
            return Err(err(origin, &key("name"), format!("two providers are named {name:?}; give each its own name")));
        }
        let allow_http_loopback = s.danger_allow_http_loopback.unwrap_or(false);
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"].iter().any(|p| s.issuer.starts_with(p));
        if !(s.issuer.starts_with("https://") || allow_http_loopback && loopback) {
            return Err(err(origin, &key("issuer"), "must be an https:// URL"));
        }
        if s.client_id.is_empty() {
            return Err(err(origin, &key("client_id"), "must not be empty"));
        }
        let client_secret = client_secret(&s, &key, origin)?;
        let scopes = s.scopes.clone().unwrap_or_else(|| ["openid", "email", "profile"].map(String::from).to_vec());
        if !scopes.iter().any(|x| x == "openid") {
            return Err(err(origin, &key("scopes"), "must include \"openid\""));
        }
        let reserved = ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method"];
        if let Some(p) = s.auth_params.keys().find(|p| reserved.contains(&p.as_str())) {
            return Err(err(origin, &key("auth_params"), format!("{p:?} is set by stint itself")));
        }
        let ttl = |k: &str, v: &Option<String>, default: &str| -> Result<Ttl, ConfigError> {
            v.as_deref().unwrap_or(default).parse::<Ttl>().map_err(|e| err(origin, &key(k), e))
        };
        let session_ttl = ttl("session_ttl", &s.session_ttl, "8h")?;
        if session_ttl.as_secs() > MAX_SSO_SESSION_SECS {
            return Err(err(origin, &key("session_ttl"), "SSO sessions last at most 8h; people sign in again each day"));
        }
        let provider_session = s.provider_session.as_ref().map(|_| ttl("provider_session", &s.provider_session, "")).transpose()?;
        let skew = ttl("clock_skew", &s.clock_skew, "60s")?;
        if skew.as_secs() > 300 {
            return Err(err(origin, &key("clock_skew"), "at most 5m: a larger skew keeps expired tokens alive"));
        }
        // "0s" turns the rate limit off: only for tests that rotate a local provider's keys.
        let refetch = match s.jwks_min_refetch.as_deref() {
            Some("0s") => Duration::ZERO,
            v => Duration::from_secs(ttl("jwks_min_refetch", &v.map(String::from), "10s")?.as_secs()),
        };
        let mut groups: BTreeMap<String, Vec<GroupName>> = BTreeMap::new();
        for (provider_group, role_names) in &s.roles {
            for r in role_names {
                let role = RoleName::parse(r).ok().and_then(|r| roles.get(&r).cloned());
                let role = role.ok_or_else(|| err(origin, &key(&format!("roles.{provider_group:?}")), format!("no role named {r:?}")))?;
                groups.entry(provider_group.clone()).or_default().extend(role.groups.iter().cloned());
            }
        }
        for (provider_group, names) in &s.groups {
            for g in names {
                let g = GroupName::parse(g).map_err(|e| err(origin, &key(&format!("groups.{provider_group:?}")), e))?;
                groups.entry(provider_group.clone()).or_default().push(g);
            }
        }
        let mfa_amr = s.mfa_amr.clone().unwrap_or_else(|| DEFAULT_MFA_AMR.map(String::from).to_vec());
        let step_up_totp = s.step_up_totp.unwrap_or(false);
        if mfa_amr.is_empty() && s.mfa_acr.is_empty() && !step_up_totp {
            return Err(err(origin, &key("mfa_amr"), "with no amr or acr values counting as MFA, set step_up_totp = true or nobody can log in"));
        }
        clients.push(OidcClientConfig {
            name: name.clone(),
            issuer: s.issuer.clone(),
            client_id: s.client_id.clone(),
            client_secret,
            scopes,
            auth_params: s.auth_params.clone(),
            redirect_uri: format!("{public_url}/v1/sso/callback"),
            allow_http_loopback,
            jwks_min_refetch: refetch,
        });
        rules.push(SsoProvider {
            name,
            issuer: s.issuer,
            client_id: s.client_id,
            email_claim: s.email_claim.unwrap_or_else(|| "email".into()),
            groups_claim: s.groups_claim.unwrap_or_else(|| "groups".into()),
            allowed_domains: s.allowed_domains.iter().map(|d| d.trim_start_matches('@').to_ascii_lowercase()).collect(),
            insecure_assume_email_verified: s.insecure_assume_email_verified.unwrap_or(false),
            mfa_amr,
            mfa_acr: s.mfa_acr,
            step_up_totp,
            groups,
            session_ttl,
            provider_session,
            skew_secs: skew.as_secs() as i64,
        });
    }
    Ok((clients, rules))
}

fn client_secret(s: &OidcSection, key: &dyn Fn(&str) -> String, origin: &str) -> Result<SecretString, ConfigError> {
    let sources = super::SecretSources { file: s.client_secret_file.as_deref(), env: s.client_secret_env.as_deref(), inline: s.danger_client_secret.clone() };
    // A relative client_secret_file is read from the working directory, as it always was.
    let secret = sources.read("client_secret", Path::new(""), key, origin)?;
    let secret =
        secret.ok_or_else(|| err(origin, &key("client_secret_file"), "set exactly one of client_secret_file, client_secret_env or danger_client_secret"))?;
    if secret.expose().is_empty() {
        return Err(err(origin, &key("client_secret_file"), "the client secret is empty"));
    }
    Ok(secret)
}
