//! The wall clock the stores read for `updated_at` and lease expiry (replaceable in tests).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in unix milliseconds.
///
/// Stores use the system clock by default; tests swap in a controlled one to exercise lease
/// expiry without sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(system_now_ms))
    }

    /// A clock that calls `now` (unix milliseconds).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current time in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Clock").field(&self.now_ms()).finish()
    }
}

/// The system time in unix milliseconds (0 if the clock is before 1970).
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::system().now_ms() > 1_577_836_800_000);
    }

    #[test]
    fn custom_clock_is_read_each_time() {
        let t = Arc::new(AtomicU64::new(5));
        let t2 = Arc::clone(&t);
        let clock = Clock::from_fn(move || t2.load(Ordering::SeqCst));
        assert_eq!(clock.now_ms(), 5);
        t.store(9, Ordering::SeqCst);
        assert_eq!(clock.clone().now_ms(), 9);
    }
}
