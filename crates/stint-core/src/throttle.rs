//! Slows repeated failures per key (a user name, an address).
//!
//! Each key gets `free` failures per window; after that every further failure doubles a
//! lock-out, from 1 s up to `max_lock`. A success clears a key of one's own and takes back
//! its own attempt from a shared one (an address). Pure: `now` is passed in.

use std::collections::HashMap;

use crate::time::Timestamp;

#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
    /// Failures allowed per window for one user (from one address, or at the second factor).
    pub free: u32,
    /// Failures allowed per window from one address across all user names: larger, since a
    /// team behind one office NAT logs in from one address.
    pub free_per_address: u32,
    pub window_secs: i64,
    pub max_lock_secs: i64,
    /// Bound on tracked keys, so a flood of distinct keys cannot exhaust memory.
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig { free: 5, free_per_address: 20, window_secs: 900, max_lock_secs: 300, max_keys: 100_000 }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    first: Timestamp,
    locked_until: Timestamp,
}

#[derive(Debug, Default)]
pub struct Throttle {
    cfg: ThrottleConfig,
    keys: HashMap<String, Entry>,
}

impl Throttle {
    pub fn new(cfg: ThrottleConfig) -> Throttle {
        Throttle { cfg, keys: HashMap::new() }
    }

    /// `Err(seconds to wait)` while `key` is locked out.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<(), u64> {
        match self.keys.get(key) {
            Some(e) if now < e.locked_until => Err(now.until(e.locked_until)),
            _ => Ok(()),
        }
    }

    /// Checks every key and, if none is locked, counts this attempt against each of them
    /// *before* the caller does the slow work, so concurrent attempts cannot all slip past
    /// the check. A success later clears the keys (`success`); a failure needs nothing more.
    pub fn attempt(&mut self, keys: &[String], now: Timestamp) -> Result<(), u64> {
        for k in keys {
            self.check(k, now)?;
        }
        for k in keys {
            self.failure(k, now);
        }
        Ok(())
    }

    pub fn failure(&mut self, key: &str, now: Timestamp) {
        if self.keys.len() >= self.cfg.max_keys && !self.keys.contains_key(key) {
            let window = self.cfg.window_secs;
            self.keys.retain(|_, e| now.0 - e.first.0 < window || now < e.locked_until);
            if self.keys.len() >= self.cfg.max_keys {
                // Still full of live entries: drop the oldest rather than grow without bound.
                if let Some(oldest) = self.keys.iter().min_by_key(|(_, e)| e.first).map(|(k, _)| k.clone()) {
                    self.keys.remove(&oldest);
                }
            }
        }
        let e = self.keys.entry(key.to_owned()).or_insert(Entry { failures: 0, first: now, locked_until: Timestamp(0) });
        if now.0 - e.first.0 >= self.cfg.window_secs && now >= e.locked_until {
            *e = Entry { failures: 0, first: now, locked_until: Timestamp(0) };
        }
        e.failures += 1;
        if e.failures > self.cfg.free {
            let over = (e.failures - self.cfg.free - 1).min(20);
            let lock = (1i64 << over).min(self.cfg.max_lock_secs);
            e.locked_until = Timestamp(now.0 + lock);
        }
    }

    /// Failures counted for `key` in its current window.
    pub fn failures(&self, key: &str) -> u32 {
        self.keys.get(key).map_or(0, |e| e.failures)
    }

    /// A success on a key of one's own (a user name, a second factor): what it counted is
    /// forgiven.
    pub fn success(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// The attempt counted against `key` succeeded: it no longer counts, and a lockout that
    /// counting it armed is lifted, but the failures before it still count. For keys many
    /// people share (an address): a login of one's own must not wipe out the failures of a
    /// spray from the same address.
    pub fn refund(&mut self, key: &str) {
        let Some(e) = self.keys.get_mut(key) else { return };
        e.failures = e.failures.saturating_sub(1);
        if e.failures <= self.cfg.free {
            e.locked_until = Timestamp(0);
        }
        if e.failures == 0 {
            self.keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_free_failures_and_doubles() {
        let mut t = Throttle::new(ThrottleConfig { free: 3, free_per_address: 3, window_secs: 900, max_lock_secs: 8, max_keys: 10 });
        let now = Timestamp(100);
        for _ in 0..3 {
            assert!(t.check("alice", now).is_ok());
            t.failure("alice", now);
        }
        assert!(t.check("alice", now).is_ok(), "three free failures");
        t.failure("alice", now);
        assert_eq!(t.check("alice", now), Err(1));
        t.failure("alice", Timestamp(101));
        assert_eq!(t.check("alice", Timestamp(101)), Err(2));
        for i in 0..10 {
            t.failure("alice", Timestamp(103 + i));
        }
        assert_eq!(t.check("alice", Timestamp(112)), Err(8), "capped at max_lock");
        assert!(t.check("bob", now).is_ok(), "keys are independent");
        t.success("alice");
        assert!(t.check("alice", Timestamp(112)).is_ok());
    }

    #[test]
    fn attempts_count_before_their_outcome() {
        let mut t = Throttle::new(ThrottleConfig { free: 2, free_per_address: 2, window_secs: 900, max_lock_secs: 8, max_keys: 10 });
        let keys = ["addr:a".to_owned(), "user:x|addr:a".to_owned()];
        let now = Timestamp(100);
        // Three attempts in flight at once: the third is counted, the fourth refused.
        assert!(t.attempt(&keys, now).is_ok());
        assert!(t.attempt(&keys, now).is_ok());
        assert!(t.attempt(&keys, now).is_ok());
        assert_eq!(t.attempt(&keys, now), Err(1));
        // A locked key refuses without counting against the others.
        assert!(t.attempt(&["addr:b".to_owned()], now).is_ok());
        assert_eq!(t.attempt(&["addr:b".to_owned(), "addr:a".to_owned()], now), Err(1));
        assert!(t.check("addr:b", now).is_ok());
        t.success("addr:a");
        t.success("user:x|addr:a");
        assert!(t.attempt(&keys, now).is_ok());
    }

    #[test]
    fn a_success_takes_back_its_own_attempt_from_a_shared_key() {
        let mut t = Throttle::new(ThrottleConfig { free: 3, free_per_address: 3, window_secs: 900, max_lock_secs: 8, max_keys: 10 });
        let addr = ["addr:a".to_owned()];
        let now = Timestamp(100);
        for _ in 0..3 {
            assert!(t.attempt(&addr, now).is_ok());
        }
        assert_eq!(t.failures("addr:a"), 3);
        // A fourth attempt arms a lockout when counted; it succeeds: the lockout it armed goes,
        // the three failures before it stay.
        assert!(t.attempt(&addr, now).is_ok());
        assert_eq!(t.check("addr:a", now), Err(1));
        t.refund("addr:a");
        assert_eq!((t.check("addr:a", now), t.failures("addr:a")), (Ok(()), 3));
        // So the next failure arms the lockout again, where a clear would have allowed three.
        assert!(t.attempt(&addr, now).is_ok());
        assert_eq!(t.check("addr:a", now), Err(1));
        // A refund on a key with one attempt, or none, leaves nothing behind.
        t.attempt(&["addr:b".to_owned()], now).unwrap();
        t.refund("addr:b");
        t.refund("addr:c");
        assert_eq!((t.failures("addr:b"), t.keys.contains_key("addr:b"), t.keys.contains_key("addr:c")), (0, false, false));
    }

    #[test]
    fn bounded_keys() {
        let mut t = Throttle::new(ThrottleConfig { free: 0, free_per_address: 0, window_secs: 900, max_lock_secs: 8, max_keys: 10 });
        for i in 0..1000 {
            t.failure(&format!("k{i}"), Timestamp(i));
        }
        assert!(t.keys.len() <= 10);
    }
}
