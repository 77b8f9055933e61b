//! Time as data: a [`Timestamp`] is passed in, never read from the system here.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn plus(self, ttl: Ttl) -> Timestamp {
        Timestamp(self.0.saturating_add(ttl.as_secs() as i64))
    }
    /// Seconds from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0).max(0) as u64
    }
    /// RFC 3339 / ISO 8601 in UTC with a `Z` suffix, as AWS and humans read it.
    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
    /// An end as people write it: an RFC 3339 time, or a date (`2026-12-31`), which ends when
    /// that day does (UTC): the account works through the day named.
    pub fn parse_end(s: &str) -> Option<Timestamp> {
        if let Some(t) = Timestamp::parse_rfc3339(s) {
            return Some(t);
        }
        let format = time::format_description::parse_borrowed::<2>("[year]-[month]-[day]").ok()?;
        let day = time::Date::parse(s.trim(), &format).ok()?;
        day.next_day().map(|d| Timestamp(d.midnight().assume_utc().unix_timestamp()))
    }
    /// Reads what [`Timestamp::to_rfc3339`] writes (any RFC 3339 offset is accepted).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| Timestamp(t.unix_timestamp()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The port through which the core learns the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// A clock that tests move by hand instead of sleeping.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// A positive duration in whole seconds, parsed from `90s`, `15m`, `8h`, `1h30m`, `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(u64);

impl Ttl {
    /// The longest TTL stint will represent: 400 days, far past any sane credential.
    pub const MAX: Ttl = Ttl(400 * 86_400);

    pub fn from_secs(secs: u64) -> Result<Ttl> {
        if secs == 0 || secs > Self::MAX.0 {
            return Err(Error::invalid("invalid_duration", format!("duration must be between 1s and 400d, got {secs}s")));
        }
        Ok(Ttl(secs))
    }
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for Ttl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Ttl> {
        let bad = || Error::invalid("invalid_duration", format!("invalid duration {s:?}: use a number with a unit, like 90s, 15m, 8h or 1h30m"));
        if s.is_empty() || s.len() > 32 {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(bad());
        }
        Ttl::from_secs(total)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 % 3600 / 60, self.0 % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || self.0 == 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Ttl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Ttl, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp(1_795_651_200);
        assert_eq!(t.to_rfc3339(), "2026-11-26T00:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-26T01:00:00+01:00"), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn parses_durations() {
        assert_eq!("90s".parse::<Ttl>().unwrap().as_secs(), 90);
        assert_eq!("1h30m".parse::<Ttl>().unwrap().as_secs(), 5400);
        assert_eq!("2d".parse::<Ttl>().unwrap().as_secs(), 172_800);
        for bad in ["", "0s", "5", "h", "1x", "-1h", "99999999999999999999h", "401d"] {
            assert!(bad.parse::<Ttl>().is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in ["8h", "15m", "1h30m", "45s", "1h0m5s"] {
            let t: Ttl = s.parse().unwrap();
            assert_eq!(t.to_string().parse::<Ttl>().unwrap(), t);
        }
    }

    #[test]
    fn rfc3339_is_utc_z() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
    }
}
