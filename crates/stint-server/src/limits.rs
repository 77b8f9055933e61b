//! The rate limit of the routes that take no credential, and the client address every
//! route sees. Thin: the buckets are [`stint_core::ratelimit`].
//!
//! The check runs before the request is parsed, the store touched or anything audited, so a
//! flood costs a hash-map lookup per request; a refused request is answered 429 with
//! `Retry-After` and writes nothing.
//!
//! The 429 is sent after `[limits] rate_limited_delay_ms` (1 s): a flooding client that sends
//! its next request when the last is answered, as scripts do, then costs a request a second
//! per connection instead of as many as the server can answer (tens of thousands a second,
//! taken from everyone else's CPU; see BENCHMARKS.md). At most [`MAX_SLOWED`] answers wait at
//! once, so waiting costs bounded memory; beyond that they are sent at once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stint_core::ratelimit::{RateLimitConfig, RateLimiter};
use stint_core::Timestamp;
use tokio::sync::Semaphore;

use crate::config::limits::ClientAddressing;
use crate::error::ApiError;
use crate::AppState;

/// An IP network (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => masked(u32::from(n).into(), self.prefix, 32) == masked(u32::from(a).into(), self.prefix, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128),
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `bits`-wide address.
fn masked(addr: u128, prefix: u8, bits: u8) -> u128 {
    match prefix {
        0 => 0,
        p => addr >> (bits - p),
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an address or a network like 10.0.0.0/8");
        let (ip, prefix) = s.split_once('/').map_or((s, None), |(ip, p)| (ip, Some(p)));
        let net = ip.trim().parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The client's address for this request, as `limit` resolved it; extractors read it.
#[derive(Clone, Debug)]
pub struct ClientIp(pub String);

/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in the proxy header that is not itself a trusted proxy (entries left of it are
/// the client's to write, so never believed). An unreadable entry stops the walk.
pub fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, addressing: &ClientAddressing) -> String {
    let Some(peer) = peer.map(|p| p.to_canonical()) else { return "unknown".to_owned() };
    let trusted = |ip: IpAddr| addressing.trusted.iter().any(|c| c.contains(ip));
    let Some(name) = &addressing.header else { return peer.to_string() };
    if !trusted(peer) {
        return peer.to_string();
    }
    let mut client = peer;
    let hops = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => client = ip.to_canonical(),
            Err(_) => break,
        }
        if !trusted(client) {
            break;
        }
    }
    client.to_string()
}

/// The most 429s held back at once.
pub const MAX_SLOWED: usize = 1024;

/// The buckets, and how the client address is found.
pub struct Limiter {
    buckets: Mutex<RateLimiter>,
    addressing: ClientAddressing,
    /// How long a refused request waits for its answer.
    delay: Duration,
    slowed: Semaphore,
}

impl Limiter {
    pub fn new(cfg: RateLimitConfig, addressing: ClientAddressing, now: Timestamp) -> Limiter {
        Limiter { buckets: Mutex::new(RateLimiter::new(cfg, now)), addressing, delay: Duration::ZERO, slowed: Semaphore::new(MAX_SLOWED) }
    }

    /// Refused requests wait `delay` for their 429 (while fewer than [`MAX_SLOWED`] wait).
    pub fn with_delay(mut self, delay: Duration) -> Limiter {
        self.delay = delay;
        self
    }

    /// Holds a refused request's answer back for the delay, if a slot is free.
    async fn slow_down(&self) {
        if self.delay.is_zero() {
            return;
        }
        if let Ok(_slot) = self.slowed.try_acquire() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// `Err(seconds to wait)` when `addr` or everyone is over the limit.
    fn check(&self, addr: &str, now: Timestamp) -> Result<(), u64> {
        // A poisoned lock means a panic mid-update: the buckets are still usable numbers.
        let mut b = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        b.check(addr, now)
    }
}

/// The routes that take no credential: each request is limited by address and globally.
pub fn limited(path: &str) -> bool {
    matches!(path, "/v1/token" | "/v1/sts" | "/v1/sts/" | "/v1/auth/login" | "/v1/bootstrap" | "/v1/enroll" | "/v1/introspect")
        || path.starts_with("/v1/sso/")
        || path.starts_with("/v1/workload/")
        || path.starts_with("/scim/")
}

/// Resolves the client address of every request and limits the routes without credential.
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let addr = client_addr(peer, req.headers(), &state.limits.addressing);
    if limited(req.uri().path()) {
        if let Err(secs) = state.limits.check(&addr, state.broker.now()) {
            state.metrics.rate_limited();
            state.limits.slow_down().await;
            return refused(req.uri().path(), secs);
        }
    }
    req.extensions_mut().insert(ClientIp(addr));
    next.run(req).await
}

const MESSAGE: &str = "too many requests from your address; retry after the time in Retry-After";

/// The 429 in the shape the route's clients read: STS XML, an HTML page, or stint's JSON.
fn refused(path: &str, secs: u64) -> Response {
    let mut resp = if path.starts_with("/v1/sts") {
        crate::sts::error(StatusCode::TOO_MANY_REQUESTS, "Throttling", MESSAGE)
    } else if matches!(path, "/v1/sso/callback" | "/v1/sso/step-up" | "/v1/sso/device") {
        let body = format!("<p>{}</p><p><small>code: <code>rate_limited</code></small></p>", crate::html::escape(MESSAGE));
        crate::html::page(StatusCode::TOO_MANY_REQUESTS, "Slow down", &body)
    } else {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", MESSAGE).into_response()
    };
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing(header: Option<&str>, trusted: &[&str]) -> ClientAddressing {
        ClientAddressing { header: header.map(|h| h.parse().unwrap()), trusted: trusted.iter().map(|c| c.parse().unwrap()).collect() }
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.200.1.2".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()), "IPv4-mapped addresses are IPv4");
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()) && !one.contains("::2".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0/8", "x", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_is_believed_only_from_trusted_proxies() {
        let peer = Some("10.0.0.5".parse().unwrap());
        let a = addressing(Some("x-forwarded-for"), &["10.0.0.0/8"]);
        assert_eq!(client_addr(peer, &xff("203.0.113.7"), &a), "203.0.113.7");
        assert_eq!(client_addr(Some("198.51.100.1".parse().unwrap()), &xff("203.0.113.7"), &a), "198.51.100.1", "an untrusted peer's header is ignored");
        assert_eq!(client_addr(peer, &xff("1.1.1.1, 203.0.113.7, 10.0.0.9"), &a), "203.0.113.7", "the nearest untrusted hop; what the client wrote is ignored");
        assert_eq!(client_addr(peer, &xff("garbage, 10.0.0.9"), &a), "10.0.0.9", "an unreadable hop stops the walk");
        assert_eq!(client_addr(peer, &HeaderMap::new(), &a), "10.0.0.5", "no header: the peer");
        assert_eq!(client_addr(peer, &xff("203.0.113.7"), &addressing(None, &[])), "10.0.0.5", "no header configured: the peer");
        assert_eq!(client_addr(None, &HeaderMap::new(), &a), "unknown");
    }

    #[test]
    fn unauthenticated_routes_are_limited() {
        for p in [
            "/v1/token",
            "/v1/sts",
            "/v1/sts/",
            "/v1/auth/login",
            "/v1/bootstrap",
            "/v1/enroll",
            "/v1/introspect",
            "/v1/sso/callback",
            "/v1/sso/token",
            "/v1/workload/join",
            "/v1/workload/creds",
        ] {
            assert!(limited(p), "{p}");
        }
        for p in ["/v1/assume", "/v1/leases", "/v1/whoami", "/healthz", "/v1/jwks", "/v1/workloads"] {
            assert!(!limited(p), "{p}");
        }
    }
}
