//! Folds repeated identical refusals into one audit record with a count.
//!
//! A refusal opens a window for its [`FoldKey`] and is written at once; identical refusals
//! within the window are only counted. When the window closes (or at the next flush, or at
//! shutdown) a `refusals.folded` record carries the count. So the chain stays complete (every
//! refusal is its own record or counted in a summary) while a flood grows it by a bounded
//! number of records per window. Pure: `now` is passed in.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::audit::{Draft, Event, Outcome};
use crate::time::Timestamp;

/// What makes two refusals identical: everything their records say but the time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FoldKey {
    /// The event of the refusals (`request.refused`, `ci.exchange.denied`).
    pub event: String,
    /// Where they were refused: the route, or for a CI exchange its issuer and role.
    pub scope: String,
    /// Their stable refusal code.
    pub code: String,
    /// The client address.
    pub addr: String,
    /// SHA-256 of the rest of the record (actor, subject, details), so refusals that differ
    /// in what they tell a reader (the claims of a CI token, say) are each written.
    content: [u8; 32],
}

impl FoldKey {
    /// The key of the refusal `d`, refused in `scope` from `addr`.
    pub fn of(d: &Draft, scope: &str, addr: &str) -> FoldKey {
        let mut h = Sha256::new();
        for part in [d.actor.as_str(), d.subject.as_str()].into_iter().chain(d.details.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])) {
            // Length-prefixed, so no two different records hash the same parts.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        FoldKey { event: d.event.clone(), scope: scope.to_owned(), code: d.reason.clone(), addr: addr.to_owned(), content: h.finalize().into() }
    }
}

/// Stands for every scope and address once the table is full.
pub const ANY: &str = "*";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldConfig {
    /// How long a window stays open after its first refusal.
    pub window_secs: i64,
    /// Bound on open windows, so distinct refusals cannot exhaust memory.
    pub max_keys: usize,
}

impl Default for FoldConfig {
    fn default() -> Self {
        FoldConfig { window_secs: 60, max_keys: 10_000 }
    }
}

/// Whether the caller writes the refusal's own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// The first in its window: write it.
    Write,
    /// Counted; a summary will carry it.
    Folded,
}

/// Refusals counted but not written, for one key and window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub key: FoldKey,
    /// When the window opened (its first refusal, written on its own).
    pub from: Timestamp,
    /// The last refusal counted.
    pub until: Timestamp,
    pub count: u64,
}

impl Summary {
    /// The `refusals.folded` record, written at `now`.
    pub fn draft(&self, now: Timestamp) -> Draft {
        Draft::new(now, Event::RefusalsFolded, Outcome::Failure)
            .actor(&self.key.addr)
            .reason(&self.key.code)
            .detail("event", &self.key.event)
            .detail("scope", &self.key.scope)
            .detail("count", self.count)
            .detail("from", self.from)
            .detail("until", self.until)
    }
}

#[derive(Clone, Copy, Debug)]
struct Window {
    opened: Timestamp,
    last: Timestamp,
    folded: u64,
}

impl Window {
    fn summary(self, key: FoldKey) -> Option<Summary> {
        (self.folded > 0).then_some(Summary { key, from: self.opened, until: self.last, count: self.folded })
    }
}

#[derive(Debug)]
pub struct Folder {
    cfg: FoldConfig,
    open: HashMap<FoldKey, Window>,
    /// When a full table was last swept for due windows: at most once a second, since no
    /// more fall due within one, so a flood of distinct refusals costs no scan each.
    swept_at: Timestamp,
}

impl Folder {
    pub fn new(cfg: FoldConfig) -> Folder {
        Folder { cfg, open: HashMap::new(), swept_at: Timestamp(i64::MIN) }
    }

    /// Admits one refusal; also returns the summaries of windows this closed, to be written
    /// with it.
    pub fn admit(&mut self, key: FoldKey, now: Timestamp) -> (Admit, Vec<Summary>) {
        let mut closed = Vec::new();
        let key = if self.open.contains_key(&key) { key } else { self.room_for(key, now, &mut closed) };
        match self.open.get_mut(&key) {
            Some(w) if now.0 - w.opened.0 < self.cfg.window_secs => {
                w.folded += 1;
                w.last = w.last.max(now);
                (Admit::Folded, closed)
            }
            _ => {
                let old = self.open.insert(key.clone(), Window { opened: now, last: now, folded: 0 });
                closed.extend(old.and_then(|w| w.summary(key)));
                (Admit::Write, closed)
            }
        }
    }

    /// Closes the windows open longer than the window; returns their summaries.
    pub fn due(&mut self, now: Timestamp) -> Vec<Summary> {
        let window = self.cfg.window_secs;
        self.take(|w| now.0 - w.opened.0 >= window)
    }

    /// Closes every window (at shutdown).
    pub fn drain(&mut self) -> Vec<Summary> {
        self.take(|_| true)
    }

    /// Open windows (for tests).
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    fn take(&mut self, close: impl Fn(&Window) -> bool) -> Vec<Summary> {
        let keys: Vec<FoldKey> = self.open.iter().filter(|(_, w)| close(w)).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| self.open.remove(&k).and_then(|w| w.summary(k))).collect()
    }

    /// The key to count `key` under: itself while there is room (closing due windows to make
    /// some), else the catch-all of its event and code. Catch-alls are few (one per event and
    /// code), so they may exceed the bound.
    fn room_for(&mut self, key: FoldKey, now: Timestamp, closed: &mut Vec<Summary>) -> FoldKey {
        if self.open.len() >= self.cfg.max_keys && now > self.swept_at {
            self.swept_at = now;
            closed.extend(self.due(now));
        }
        if self.open.len() < self.cfg.max_keys {
            return key;
        }
        FoldKey { scope: ANY.to_owned(), addr: ANY.to_owned(), content: [0; 32], ..key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(addr: &str, route: &str) -> Draft {
        Draft::new(Timestamp(1), Event::RequestRefused, Outcome::Failure).actor(addr).reason("malformed_json").detail("route", route)
    }

    fn key(addr: &str) -> FoldKey {
        FoldKey::of(&refusal(addr, "/v1/token"), "/v1/token", addr)
    }

    #[test]
    fn identical_means_all_but_the_time() {
        let at_other_time = Draft { at: Timestamp(99), ..refusal("a", "/v1/token") };
        assert_eq!(FoldKey::of(&at_other_time, "/v1/token", "a"), key("a"));
        assert_ne!(FoldKey::of(&refusal("a", "/v1/sts"), "/v1/token", "a"), key("a"), "a detail differs");
        let other_claim = refusal("a", "/v1/token").detail("claim.sub", "repo:x");
        assert_ne!(FoldKey::of(&other_claim, "/v1/token", "a"), key("a"));
        // Parts are length-prefixed: moving text between fields makes another key.
        let (x, y) = (refusal("a", "/v1/token").subject("ab").detail("k", "c"), refusal("a", "/v1/token").subject("a").detail("k", "bc"));
        assert_ne!(FoldKey::of(&x, "s", "a"), FoldKey::of(&y, "s", "a"));
    }

    #[test]
    fn first_written_repeats_counted_summary_when_the_window_closes() {
        let mut f = Folder::new(FoldConfig { window_secs: 60, max_keys: 10 });
        assert_eq!(f.admit(key("a"), Timestamp(100)), (Admit::Write, vec![]));
        for i in 0..999 {
            assert_eq!(f.admit(key("a"), Timestamp(100 + i % 60)).0, Admit::Folded);
        }
        assert_eq!(f.admit(key("b"), Timestamp(120)).0, Admit::Write, "another address is not identical");
        assert!(f.due(Timestamp(159)).is_empty(), "the window is still open");
        let s = f.due(Timestamp(160));
        assert_eq!(s, vec![Summary { key: key("a"), from: Timestamp(100), until: Timestamp(159), count: 999 }]);
        assert!(f.due(Timestamp(200)).is_empty(), "b's window had nothing folded: no summary");
        assert_eq!(f.open_windows(), 0);
    }

    #[test]
    fn a_refusal_after_the_window_writes_and_closes_the_old_one() {
        let mut f = Folder::new(FoldConfig { window_secs: 60, max_keys: 10 });
        f.admit(key("a"), Timestamp(100));
        f.admit(key("a"), Timestamp(101));
        let (admit, closed) = f.admit(key("a"), Timestamp(170));
        assert_eq!(admit, Admit::Write);
        assert_eq!(closed, vec![Summary { key: key("a"), from: Timestamp(100), until: Timestamp(101), count: 1 }]);
        f.admit(key("a"), Timestamp(171));
        assert_eq!(f.drain().iter().map(|s| s.count).sum::<u64>(), 1, "drain closes open windows");
    }

    #[test]
    fn bounded_and_complete_under_distinct_keys() {
        let mut f = Folder::new(FoldConfig { window_secs: 60, max_keys: 10 });
        let (mut written, mut counted) = (0u64, 0u64);
        let n = 10_000u64;
        for i in 0..n {
            let (admit, closed) = f.admit(key(&format!("10.0.{}.{}", i / 256, i % 256)), Timestamp(100));
            written += u64::from(admit == Admit::Write);
            counted += closed.iter().map(|s| s.count).sum::<u64>();
            assert!(f.open_windows() <= 11, "the catch-all is one extra window");
        }
        assert_eq!(written, 11, "ten keys and the catch-all wrote their first");
        // Once the windows are due, a full table is swept: a new key gets its own window.
        let (admit, closed) = f.admit(key("192.0.2.1"), Timestamp(160));
        assert_eq!(admit, Admit::Write);
        assert_eq!(f.open_windows(), 1);
        counted += closed.iter().map(|s| s.count).sum::<u64>();
        counted += f.drain().iter().map(|s| s.count).sum::<u64>();
        assert_eq!(written + counted, n, "every refusal is written or counted");
    }

    #[test]
    fn summary_record_names_what_was_folded() {
        let s = Summary { key: key("a"), from: Timestamp(100), until: Timestamp(150), count: 7 };
        let d = s.draft(Timestamp(160));
        assert_eq!((d.event.as_str(), d.actor.as_str(), d.reason.as_str()), ("refusals.folded", "a", "malformed_json"));
        assert_eq!(d.details["count"], "7");
        assert_eq!(d.details["event"], "request.refused");
        assert_eq!(d.details["scope"], "/v1/token");
    }
}
