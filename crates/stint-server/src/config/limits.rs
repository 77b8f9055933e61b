//! `[limits]`: rate limits of the routes that take no credential, where the client address
//! comes from, how refusals fold in the audit log, and what one person may hold at once.

use axum::http::HeaderName;
use serde::Deserialize;
use stint_core::broker::Caps;
use stint_core::fold::FoldConfig;
use stint_core::ratelimit::{BucketConfig, RateLimitConfig};

use super::{err, ConfigError};
use crate::limits::Cidr;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Requests per second one client address may send to the routes without a credential.
    pub per_address_rate: Option<u32>,
    /// The most such requests one address may send at once.
    pub per_address_burst: Option<u32>,
    /// Requests per second from all addresses together.
    pub global_rate: Option<u32>,
    pub global_burst: Option<u32>,
    /// Bound on the client addresses tracked at once.
    pub max_tracked_addresses: Option<usize>,
    /// A header (`X-Forwarded-For`) naming the client, believed only from `trusted_proxies`.
    pub trusted_proxy_header: Option<String>,
    /// CIDRs of the proxies in front of stint (`10.0.0.0/8`, `::1/128`).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Identical refusals within this are written once and then counted (default 60s).
    pub refusal_window: Option<String>,
    /// How long a request over the limit waits for its 429, in milliseconds (default 1000,
    /// 0 answers at once).
    pub rate_limited_delay_ms: Option<u64>,
    pub sessions_per_person: Option<u32>,
    pub leases_per_person: Option<u32>,
    pub keys_per_workload: Option<u32>,
    pub leases_per_workload: Option<u32>,
}

/// Where the client address of a request comes from.
#[derive(Clone, Debug, Default)]
pub struct ClientAddressing {
    /// With `trusted_proxies`, the header naming the client.
    pub header: Option<HeaderName>,
    pub trusted: Vec<Cidr>,
}

/// The validated `[limits]`.
#[derive(Clone, Debug)]
pub struct Limits {
    pub rate: RateLimitConfig,
    pub addressing: ClientAddressing,
    pub caps: Caps,
    pub folding: FoldConfig,
    /// How long a request over the limit waits for its 429 (see `crate::limits::Limiter`).
    pub rate_limited_delay: std::time::Duration,
}

/// The longest `rate_limited_delay_ms`: a client should hear back within seconds.
const MAX_DELAY_MS: u64 = 5_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate: RateLimitConfig::default(),
            addressing: ClientAddressing::default(),
            caps: Caps::default(),
            folding: FoldConfig::default(),
            rate_limited_delay: std::time::Duration::from_secs(1),
        }
    }
}

fn positive(v: Option<u32>, default: u32, key: &str, origin: &str) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(err(origin, key, "must be at least 1")),
        Some(n) => Ok(n),
    }
}

/// `behind_proxy` (`tls = "proxy"`): the client address comes from the proxy's header
/// (`X-Forwarded-For` unless `trusted_proxy_header` says otherwise), so the proxies must be named.
pub fn load(s: LimitsSection, behind_proxy: bool, origin: &str) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let bucket = |rate: Option<u32>, burst: Option<u32>, name: &str, d: BucketConfig| -> Result<BucketConfig, ConfigError> {
        Ok(BucketConfig {
            rate: positive(rate, d.rate, &format!("limits.{name}_rate"), origin)?,
            burst: positive(burst, d.burst, &format!("limits.{name}_burst"), origin)?,
        })
    };
    let rate = RateLimitConfig {
        per_address: bucket(s.per_address_rate, s.per_address_burst, "per_address", d.rate.per_address)?,
        global: bucket(s.global_rate, s.global_burst, "global", d.rate.global)?,
        max_addresses: s.max_tracked_addresses.unwrap_or(d.rate.max_addresses).max(1),
    };
    let trusted = s.trusted_proxies.iter().map(|c| c.parse::<Cidr>().map_err(|e| err(origin, "limits.trusted_proxies", e))).collect::<Result<Vec<_>, _>>()?;
    if behind_proxy && trusted.is_empty() {
        return Err(err(
            origin,
            "limits.trusted_proxies",
            "with tls = \"proxy\", list the proxies' addresses (e.g. [\"10.0.0.5\"]): the client address is read from their X-Forwarded-For header, and only from them",
        ));
    }
    let header = match &s.trusted_proxy_header {
        None if behind_proxy => Some(HeaderName::from_static("x-forwarded-for")),
        None => None,
        Some(h) => Some(HeaderName::try_from(h.as_str()).map_err(|_| err(origin, "limits.trusted_proxy_header", format!("{h:?} is not a header name")))?),
    };
    if header.is_some() == trusted.is_empty() {
        return Err(err(
            origin,
            "limits.trusted_proxies",
            "set both trusted_proxy_header and trusted_proxies, or neither: the header is believed only from those proxies",
        ));
    }
    let default_window = d.folding.window_secs.unsigned_abs();
    let window = super::secs_within(origin, "limits.refusal_window", s.refusal_window.as_deref(), default_window, 1..=3600, "between 1s and 1h")? as i64;
    let caps = Caps {
        sessions_per_person: positive(s.sessions_per_person, d.caps.sessions_per_person, "limits.sessions_per_person", origin)?,
        leases_per_person: positive(s.leases_per_person, d.caps.leases_per_person, "limits.leases_per_person", origin)?,
        keys_per_workload: positive(s.keys_per_workload, d.caps.keys_per_workload, "limits.keys_per_workload", origin)?,
        leases_per_workload: positive(s.leases_per_workload, d.caps.leases_per_workload, "limits.leases_per_workload", origin)?,
    };
    let delay = match s.rate_limited_delay_ms {
        None => d.rate_limited_delay,
        Some(ms) if ms <= MAX_DELAY_MS => std::time::Duration::from_millis(ms),
        Some(_) => return Err(err(origin, "limits.rate_limited_delay_ms", format!("must be between 0 and {MAX_DELAY_MS}"))),
    };
    Ok(Limits {
        rate,
        addressing: ClientAddressing { header, trusted },
        caps,
        folding: FoldConfig { window_secs: window, ..d.folding },
        rate_limited_delay: delay,
    })
}

impl Limits {
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "per_address_rate": self.rate.per_address.rate,
            "per_address_burst": self.rate.per_address.burst,
            "global_rate": self.rate.global.rate,
            "global_burst": self.rate.global.burst,
            "max_tracked_addresses": self.rate.max_addresses,
            "trusted_proxy_header": self.addressing.header.as_ref().map(|h| h.as_str()),
            "trusted_proxies": self.addressing.trusted.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "refusal_window": format!("{}s", self.folding.window_secs),
            "rate_limited_delay_ms": self.rate_limited_delay.as_millis() as u64,
            "sessions_per_person": self.caps.sessions_per_person,
            "leases_per_person": self.caps.leases_per_person,
            "keys_per_workload": self.caps.keys_per_workload,
            "leases_per_workload": self.caps.leases_per_workload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Limits, ConfigError> {
        let s: LimitsSection = toml::from_str(toml).map_err(|e| ConfigError { origin: "t".into(), message: e.to_string() })?;
        load(s, false, "t")
    }

    #[test]
    fn defaults_and_overrides() {
        let d = load_str("").unwrap();
        assert_eq!((d.rate.per_address.rate, d.rate.per_address.burst, d.rate.global.rate), (20, 600, 500));
        assert_eq!((d.caps.sessions_per_person, d.caps.leases_per_person, d.folding.window_secs), (20, 200, 60));
        assert_eq!(d.rate_limited_delay.as_millis(), 1000);
        assert_eq!(load_str("rate_limited_delay_ms = 0").unwrap().rate_limited_delay.as_millis(), 0, "0 answers at once");
        assert!(d.addressing.header.is_none() && d.addressing.trusted.is_empty());
        let l =
            load_str("per_address_rate = 5\nrefusal_window = \"2m\"\ntrusted_proxy_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]")
                .unwrap();
        assert_eq!((l.rate.per_address.rate, l.folding.window_secs), (5, 120));
        assert_eq!(l.addressing.header.unwrap().as_str(), "x-forwarded-for");
        assert_eq!(l.addressing.trusted.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn refused_values_name_their_key() {
        for (toml, key) in [
            ("per_address_rate = 0", "limits.per_address_rate"),
            ("global_burst = 0", "limits.global_burst"),
            ("sessions_per_person = 0", "limits.sessions_per_person"),
            ("leases_per_workload = 0", "limits.leases_per_workload"),
            ("trusted_proxies = [\"10.0.0.0/40\"]\ntrusted_proxy_header = \"X-Forwarded-For\"", "limits.trusted_proxies"),
            ("trusted_proxy_header = \"X-Forwarded-For\"", "limits.trusted_proxies"),
            ("trusted_proxies = [\"10.0.0.1\"]", "limits.trusted_proxies"),
            ("trusted_proxy_header = \"bad header\"\ntrusted_proxies = [\"10.0.0.1\"]", "limits.trusted_proxy_header"),
            ("refusal_window = \"2h\"", "limits.refusal_window"),
            ("rate_limited_delay_ms = 5001", "limits.rate_limited_delay_ms"),
        ] {
            let e = load_str(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
        assert!(load_str("colour = 1").is_err(), "unknown keys are refused");
    }
}
