//! Exponential backoff with jitter and a cap: the one schedule of waits between attempts, for
//! a provider's own retries and for the runtime's node retries.

use std::time::Duration;

/// How the wait before an attempt is randomized, so that many callers failing together do not
/// retry together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Anywhere in `[0, d)`: the widest spread.
    Full,
    /// In `[d/2, d)`: spread, and never much shorter than the schedule says.
    Equal,
}

/// Exponential backoff: `base * 2^attempt`, at most `cap`, randomized by `jitter`.
///
/// ```
/// use std::time::Duration;
/// use orchestra_providers::{Backoff, Jitter};
/// let b = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30), jitter: Jitter::Equal };
/// let wait = b.delay(2);
/// assert!(wait >= Duration::from_secs(1) && wait < Duration::from_secs(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry (attempt 0), before jitter.
    pub base: Duration,
    /// The longest wait, before jitter.
    pub cap: Duration,
    /// How the wait is randomized.
    pub jitter: Jitter,
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_at(attempt, rand::random_range(0.0..1.0))
    }

    /// The wait before retry number `attempt` for a given random draw `unit` in `[0, 1)`.
    pub fn delay_at(&self, attempt: u32, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        let full = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.cap);
        match self.jitter {
            Jitter::Full => full.mul_f64(unit),
            Jitter::Equal => {
                let half = full / 2;
                half + (full - half).mul_f64(unit)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff {
            base: MS(100),
            cap: MS(1000),
            jitter: Jitter::Equal,
        };
        assert_eq!(b.delay_at(0, 0.0), MS(50));
        assert_eq!(b.delay_at(0, 0.5), MS(75));
        assert_eq!(b.delay_at(2, 0.0), MS(200));
        assert_eq!(b.delay_at(3, 0.0), MS(400));
        assert_eq!(b.delay_at(4, 0.0), MS(500), "capped at 1000 before jitter");
        assert_eq!(b.delay_at(u32::MAX, 0.0), MS(500));
        let full = Backoff {
            jitter: Jitter::Full,
            ..b
        };
        assert_eq!(full.delay_at(1, 0.0), MS(0));
        assert_eq!(full.delay_at(1, 0.5), MS(100));
        assert_eq!(full.delay_at(9, 0.25), MS(250));
    }

    #[test]
    fn random_waits_stay_in_their_range() {
        for jitter in [Jitter::Full, Jitter::Equal] {
            let b = Backoff {
                base: MS(100),
                cap: MS(1000),
                jitter,
            };
            let floor = if jitter == Jitter::Full {
                MS(0)
            } else {
                MS(200)
            };
            for _ in 0..200 {
                let d = b.delay(2);
                assert!(d >= floor && d < MS(400), "{jitter:?}: {d:?}");
            }
        }
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let b = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
            jitter: Jitter::Equal,
        };
        assert!(b.delay_at(40, 0.999) <= Duration::MAX);
    }
}
