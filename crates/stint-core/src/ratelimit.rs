//! Token buckets for requests that carry no credential: one per client address and one for
//! everyone, checked before any work is done for the request.
//!
//! A bucket holds up to `burst` tokens and gains `rate` tokens per second; each request takes
//! one. Pure: `now` is passed in, so tests move an injected clock instead of sleeping. Time is
//! in whole seconds (the clock's resolution), so tokens come back once a second, `rate` at a time.

use std::collections::HashMap;

use crate::time::Timestamp;

/// One bucket's size and refill rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketConfig {
    /// Tokens added per second (at least 1).
    pub rate: u32,
    /// The most tokens the bucket holds: the largest burst let through at once (at least 1).
    pub burst: u32,
}

/// The limits of [`RateLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_address: BucketConfig,
    pub global: BucketConfig,
    /// Bound on tracked addresses, so a flood from many addresses cannot exhaust memory.
    pub max_addresses: usize,
}

impl Default for RateLimitConfig {
    /// Sized for a CI fleet behind one NAT address: a pipeline that fans out to a few hundred
    /// jobs exchanges their tokens within seconds (the burst), and a thousand jobs a minute
    /// average well under the rate. People log in a few times a day. See docs/configuration.md.
    fn default() -> Self {
        RateLimitConfig { per_address: BucketConfig { rate: 20, burst: 600 }, global: BucketConfig { rate: 500, burst: 5_000 }, max_addresses: 100_000 }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    /// When the bucket was last refilled.
    at: Timestamp,
}

impl Bucket {
    fn full(cfg: BucketConfig, now: Timestamp) -> Bucket {
        Bucket { tokens: cfg.burst, at: now }
    }

    fn refill(&mut self, cfg: BucketConfig, now: Timestamp) {
        let elapsed = (now.0 - self.at.0).max(0) as u64;
        if elapsed > 0 {
            let tokens = u64::from(self.tokens) + elapsed.saturating_mul(u64::from(cfg.rate));
            self.tokens = tokens.min(u64::from(cfg.burst)) as u32;
            self.at = now;
        }
    }

    /// Whether it would stay full from now on: forgetting it loses nothing.
    fn idle(&self, cfg: BucketConfig, now: Timestamp) -> bool {
        let mut b = *self;
        b.refill(cfg, now);
        b.tokens >= cfg.burst
    }
}

/// Per-address and global token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    cfg: RateLimitConfig,
    global: Bucket,
    addresses: HashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig, now: Timestamp) -> RateLimiter {
        RateLimiter { cfg, global: Bucket::full(cfg.global, now), addresses: HashMap::new() }
    }

    pub fn config(&self) -> RateLimitConfig {
        self.cfg
    }

    /// Takes a token from `addr`'s bucket and from the global one, or neither:
    /// `Err(seconds to wait)` when either is empty. Whole seconds, since buckets refill once
    /// a second.
    pub fn check(&mut self, addr: &str, now: Timestamp) -> Result<(), u64> {
        self.global.refill(self.cfg.global, now);
        let per_address = self.cfg.per_address;
        if !self.addresses.contains_key(addr) {
            self.make_room(now);
        }
        let bucket = self.addresses.entry(addr.to_owned()).or_insert_with(|| Bucket::full(per_address, now));
        bucket.refill(per_address, now);
        if bucket.tokens == 0 || self.global.tokens == 0 {
            return Err(1);
        }
        bucket.tokens -= 1;
        self.global.tokens -= 1;
        Ok(())
    }

    /// Addresses tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.addresses.len()
    }

    /// Before tracking one more address: forgets the idle ones (full buckets, exactly as a new
    /// address gets), and if that is not enough, the eighth of the addresses seen longest ago,
    /// so a flood of new addresses costs one scan per many requests, not one each. An address
    /// forgotten while busy gets a fresh burst; the global bucket still bounds what many
    /// addresses together get through.
    fn make_room(&mut self, now: Timestamp) {
        if self.addresses.len() < self.cfg.max_addresses {
            return;
        }
        let cfg = self.cfg.per_address;
        self.addresses.retain(|_, b| !b.idle(cfg, now));
        let keep = self.cfg.max_addresses - self.cfg.max_addresses.div_ceil(8);
        if self.addresses.len() > keep {
            let excess = self.addresses.len() - keep;
            let mut by_age: Vec<(Timestamp, String)> = self.addresses.iter().map(|(k, b)| (b.at, k.clone())).collect();
            by_age.select_nth_unstable(excess - 1);
            for (_, k) in &by_age[..excess] {
                self.addresses.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32, global: BucketConfig, max_addresses: usize) -> RateLimiter {
        RateLimiter::new(RateLimitConfig { per_address: BucketConfig { rate, burst }, global, max_addresses }, Timestamp(1000))
    }

    const LARGE: BucketConfig = BucketConfig { rate: 1_000, burst: 1_000 };

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = limiter(2, 5, LARGE, 10);
        let t = Timestamp(1000);
        for _ in 0..5 {
            assert_eq!(l.check("a", t), Ok(()));
        }
        assert_eq!(l.check("a", t), Err(1), "the burst is spent");
        assert_eq!(l.check("b", t), Ok(()), "another address has its own bucket");
        let t = Timestamp(1001);
        assert_eq!(l.check("a", t), Ok(()));
        assert_eq!(l.check("a", t), Ok(()));
        assert_eq!(l.check("a", t), Err(1), "one second brings `rate` tokens");
        let t = Timestamp(1100);
        for _ in 0..5 {
            assert_eq!(l.check("a", t), Ok(()));
        }
        assert_eq!(l.check("a", t), Err(1), "an idle bucket refills up to the burst, no more");
    }

    #[test]
    fn the_global_bucket_bounds_all_addresses_together() {
        let mut l = limiter(100, 100, BucketConfig { rate: 3, burst: 4 }, 1000);
        let t = Timestamp(1000);
        for i in 0..4 {
            assert_eq!(l.check(&format!("10.0.0.{i}"), t), Ok(()));
        }
        assert_eq!(l.check("10.0.0.9", t), Err(1));
        assert_eq!(l.check("10.0.0.9", Timestamp(1001)), Ok(()));
    }

    #[test]
    fn a_refusal_takes_no_token() {
        let mut l = limiter(1, 1, BucketConfig { rate: 1, burst: 2 }, 10);
        let t = Timestamp(1000);
        assert_eq!(l.check("a", t), Ok(()));
        for _ in 0..10 {
            assert_eq!(l.check("a", t), Err(1));
        }
        assert_eq!(l.check("b", t), Ok(()), "a's refusals did not drain the global bucket");
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let mut l = limiter(10, 1, LARGE, 10);
        assert_eq!(l.check("a", Timestamp(1000)), Ok(()));
        assert_eq!(l.check("a", Timestamp(900)), Err(1));
    }

    #[test]
    fn tracked_addresses_are_bounded_and_busy_ones_kept_first() {
        let mut l = limiter(1, 2, LARGE, 10);
        let t = Timestamp(1000);
        // A busy address, then a flood of addresses that each send once.
        l.check("busy", t).unwrap();
        l.check("busy", t).unwrap();
        for i in 0..1000 {
            let _ = l.check(&format!("x{i}"), Timestamp(1000 + i));
        }
        assert!(l.tracked() <= 10, "{}", l.tracked());
        // Idle addresses (buckets full again) are forgotten before busy ones.
        let mut l = limiter(1, 10, LARGE, 2);
        for _ in 0..10 {
            l.check("a", t).unwrap();
        }
        l.check("b", t).unwrap();
        let t = Timestamp(1001);
        l.check("c", t).unwrap();
        assert_eq!(l.tracked(), 2);
        assert_eq!(l.check("a", t), Ok(()), "one token came back in a second");
        assert_eq!(l.check("a", t), Err(1), "a, still busy, was kept and is still limited");
    }
}
