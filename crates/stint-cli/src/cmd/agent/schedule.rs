//! When the agent asks for credentials again: pure functions of durations, so tests move time
//! instead of sleeping.
//!
//! A credential is refreshed at about two thirds of its lifetime, moved by a jitter of up to a
//! tenth of the lifetime either way so that many agents started together do not ask the server
//! at the same instant. A failed attempt is retried with exponential backoff (1 s doubling to
//! 60 s), but never later than the held credential's end while it still has life left, so the
//! agent gets a last chance to replace it before it stops serving it.

use std::time::Duration;

/// The share of the lifetime after which a credential is refreshed.
pub const REFRESH_SHARE: f64 = 2.0 / 3.0;
/// The jitter, as a share of the lifetime, either way.
pub const JITTER_SHARE: f64 = 0.10;
/// The first retry's wait.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait between retries.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// How long after receiving a credential that lives `lifetime` to refresh it: two thirds of
/// the lifetime, plus `jitter` (clamped to [-1, 1]) times a tenth of it.
pub fn refresh_after(lifetime: Duration, jitter: f64) -> Duration {
    let share = REFRESH_SHARE + JITTER_SHARE * jitter.clamp(-1.0, 1.0);
    lifetime.mul_f64(share)
}

/// The wait after the `failures`-th consecutive failure (0 for the first): 1 s, 2 s, 4 s, …
/// up to 60 s.
pub fn backoff(failures: u32) -> Duration {
    // 2^6 s already passes the cap; shifting further would overflow for large counts.
    let secs = 1u64 << failures.min(6);
    (BACKOFF_START * secs as u32).min(BACKOFF_CAP)
}

/// The wait before retrying after the `failures`-th consecutive failure, when the credential
/// held has `remaining` life (zero if none is held): the backoff, but not past the end of a
/// credential that is still live.
pub fn retry_after(failures: u32, remaining: Duration) -> Duration {
    let wait = backoff(failures);
    if remaining.is_zero() {
        wait
    } else {
        wait.min(remaining)
    }
}

/// A jitter in [-1, 1] from 32 random bits.
pub fn jitter_from(bits: u32) -> f64 {
    f64::from(bits) / f64::from(u32::MAX) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn refresh_comes_at_two_thirds_of_the_lifetime_within_a_tenth_either_way() {
        assert_eq!(refresh_after(HOUR, 0.0), Duration::from_secs(2400));
        assert_eq!(refresh_after(HOUR, 1.0), Duration::from_secs(2760));
        assert_eq!(refresh_after(HOUR, -1.0), Duration::from_secs(2040));
        assert_eq!(refresh_after(HOUR, 7.0), refresh_after(HOUR, 1.0), "jitter is clamped");
        assert_eq!(refresh_after(HOUR, f64::NEG_INFINITY), refresh_after(HOUR, -1.0));
        for bits in [0, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
            let j = jitter_from(bits);
            assert!((-1.0..=1.0).contains(&j), "{bits} → {j}");
            let at = refresh_after(HOUR, j);
            assert!(at >= Duration::from_secs(2040) && at <= Duration::from_secs(2760), "{at:?}");
        }
        assert_eq!(jitter_from(0), -1.0);
        assert_eq!(jitter_from(u32::MAX), 1.0);
    }

    #[test]
    fn refresh_is_never_scheduled_at_or_past_the_end() {
        for secs in [1u64, 2, 3, 10, 60, 900, 3600, 43_200] {
            let lifetime = Duration::from_secs(secs);
            for j in [-1.0, -0.5, 0.0, 0.5, 1.0] {
                assert!(refresh_after(lifetime, j) < lifetime, "{secs}s, jitter {j}");
            }
        }
        assert_eq!(refresh_after(Duration::ZERO, 1.0), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let waits: Vec<u64> = (0..10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn retries_never_wait_past_the_end_of_a_live_credential() {
        assert_eq!(retry_after(5, Duration::from_secs(10)), Duration::from_secs(10));
        assert_eq!(retry_after(0, Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(retry_after(9, Duration::from_millis(300)), Duration::from_millis(300));
        // Nothing held (or it ended): plain backoff.
        assert_eq!(retry_after(9, Duration::ZERO), BACKOFF_CAP);
        for n in 0..20 {
            for left in [1u64, 5, 59, 61, 3600] {
                assert!(retry_after(n, Duration::from_secs(left)) <= Duration::from_secs(left));
            }
        }
    }
}
