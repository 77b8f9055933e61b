//! `[ci]` and `[[ci.issuer]]`: the CI platforms whose tokens stint trusts, and the roles'
//! trust policies (`[roles.NAME] trust_policy` / `trust_policy_file`, `ci_ttl`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use stint_core::broker::{CiConfig, CiIssuerConfig, RoleTrust, CI_TTL_MAX_SECS, CI_TTL_MIN_SECS};
use stint_core::ids::RoleName;
use stint_core::policy::Roles;
use stint_core::trust::{issuer_id, TrustPolicy};
use stint_core::Ttl;

use super::{err, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiSection {
    #[serde(default)]
    pub issuer: Vec<CiIssuerSection>,
    /// Tolerated clock difference with the issuers.
    pub clock_skew: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiIssuerSection {
    /// Short name, in credential subjects (`ci:github:…`); defaults from the URL's host.
    pub name: Option<String>,
    pub url: String,
    pub jwks_min_refetch: Option<String>,
    /// Accept an `http://127.0.0.1…` issuer. For tests against a local stand-in only.
    pub danger_allow_http_loopback: Option<bool>,
}

/// What reaching one issuer needs (the I/O side).
#[derive(Clone, Debug)]
pub struct CiIssuerClient {
    pub url: String,
    pub allow_http_loopback: bool,
    pub jwks_min_refetch: Duration,
}

/// A role's trust settings as written.
#[derive(Clone, Debug, Default)]
pub struct RoleTrustSource {
    pub inline: Option<String>,
    pub file: Option<PathBuf>,
    pub ci_ttl: Option<String>,
}

/// Validates issuers and trust policies. `base` is the directory relative `trust_policy_file`
/// paths start from (the config file's). Returns the I/O settings, the broker's `CiConfig`,
/// and warnings to show at start.
pub fn load(
    section: CiSection,
    sources: BTreeMap<String, RoleTrustSource>,
    roles: &Roles,
    base: &Path,
    origin: &str,
) -> Result<(Vec<CiIssuerClient>, CiConfig, Vec<String>), ConfigError> {
    let mut clients = Vec::new();
    let mut issuers: Vec<CiIssuerConfig> = Vec::new();
    for (i, s) in section.issuer.into_iter().enumerate() {
        let key = |k: &str| format!("ci.issuer[{i}].{k}");
        let allow_http_loopback = s.danger_allow_http_loopback.unwrap_or(false);
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"].iter().any(|p| s.url.starts_with(p));
        if !(s.url.starts_with("https://") || allow_http_loopback && loopback) {
            return Err(err(origin, &key("url"), "must be an https:// URL"));
        }
        let name = s.name.clone().unwrap_or_else(|| default_name(&s.url));
        if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(err(origin, &key("name"), "use 1-32 characters of a-z, 0-9 and '-'"));
        }
        if issuers.iter().any(|x| x.name == name || x.url == s.url) {
            return Err(err(origin, &key("name"), format!("issuer {name:?} ({}) is configured twice", s.url)));
        }
        let refetch = match s.jwks_min_refetch.as_deref() {
            Some("0s") => Duration::ZERO,
            v => Duration::from_secs(v.unwrap_or("10s").parse::<Ttl>().map_err(|e| err(origin, &key("jwks_min_refetch"), e))?.as_secs()),
        };
        clients.push(CiIssuerClient { url: s.url.clone(), allow_http_loopback, jwks_min_refetch: refetch });
        issuers.push(CiIssuerConfig { name, url: s.url });
    }
    let skew = section.clock_skew.as_deref().unwrap_or("60s").parse::<Ttl>().map_err(|e| err(origin, "ci.clock_skew", e))?;
    if skew.as_secs() > 300 {
        return Err(err(origin, "ci.clock_skew", "at most 5m: a larger skew keeps expired tokens alive"));
    }
    let ids: Vec<String> = issuers.iter().map(|i| issuer_id(&i.url)).collect();
    let mut trust = BTreeMap::new();
    let mut warnings = Vec::new();
    for (role, src) in sources {
        let key = |k: &str| format!("roles.{role}.{k}");
        let text = match (&src.inline, &src.file) {
            (None, None) => {
                if src.ci_ttl.is_some() {
                    return Err(err(origin, &key("ci_ttl"), "set only with a trust_policy"));
                }
                continue;
            }
            (Some(_), Some(_)) => return Err(err(origin, &key("trust_policy"), "set trust_policy or trust_policy_file, not both")),
            (Some(t), None) => t.clone(),
            (None, Some(f)) => {
                let path = base.join(f);
                std::fs::read_to_string(&path).map_err(|e| err(origin, &key("trust_policy_file"), format!("cannot read {}: {e}", path.display())))?
            }
        };
        if issuers.is_empty() {
            return Err(err(origin, &key("trust_policy"), "no CI issuer is configured: add [[ci.issuer]] with the platform's issuer URL"));
        }
        let (policy, warned) = TrustPolicy::parse(&text, &ids).map_err(|e| err(origin, &key("trust_policy"), e))?;
        warnings.extend(warned.into_iter().map(|w| format!("{origin}: {}: {w}", key("trust_policy"))));
        let name = RoleName::parse(&role).map_err(|e| err(origin, &format!("roles.{role}"), e))?;
        let max = roles.get(&name).map_or(Ttl::MAX, |r| r.max_ttl);
        let default = Ttl::from_secs(CI_TTL_MAX_SECS.min(max.as_secs())).map_err(|e| err(origin, &key("ci_ttl"), e))?;
        let ttl = match &src.ci_ttl {
            Some(v) => v.parse::<Ttl>().map_err(|e| err(origin, &key("ci_ttl"), e))?,
            None => default,
        };
        if !(CI_TTL_MIN_SECS..=CI_TTL_MAX_SECS).contains(&ttl.as_secs()) {
            return Err(err(origin, &key("ci_ttl"), "CI credentials live between 5m and 15m"));
        }
        if ttl > max {
            return Err(err(origin, &key("ci_ttl"), format!("longer than the role's max_ttl ({max})")));
        }
        trust.insert(name, RoleTrust { policy: Arc::new(policy), ttl });
    }
    Ok((clients, CiConfig { issuers, trust, skew_secs: skew.as_secs() as i64 }, warnings))
}

/// `token.actions.githubusercontent.com` → `github`; otherwise the first label of the host.
fn default_name(url: &str) -> String {
    let host = issuer_id(url);
    if host.starts_with("token.actions.githubusercontent.com") {
        return "github".into();
    }
    let first = host.split(['.', ':', '/']).next().unwrap_or("ci");
    first.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').map(|c| c.to_ascii_lowercase()).take(32).collect()
}
