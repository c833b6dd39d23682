//! The one layer that decides retries of a model call: 429 (its `retry-after` honoured, capped,
//! plus up to a quarter more so that waiters do not come back together), 5xx, resets, timeouts,
//! cut streams and unreadable answers, with exponential backoff and jitter, within a time
//! budget per call; each attempt admitted by the provider's [`Gate`], and the number of retries
//! reported back. Other errors (4xx) fail at once. A 429 is the server asking to wait, not a
//! failure: it is retried within the time budget without counting against `max_retries`.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backoff::{Backoff, Jitter};
use crate::error::ProviderError;
use crate::gate::Gate;
use crate::types::ChatResponse;

/// Retries of a call whose server cannot be reached at all (connection refused, a name that
/// does not resolve), whatever `max_retries` says.
///
/// Nothing listening at the address is almost always a server that is not started or a wrong
/// `api_base`, which no backoff fixes: the run should fail in a second or two and name the URL,
/// not retry for half a minute. The one transient case, a local server in the middle of a
/// restart, is covered by two quick retries (with the default backoff, 0.75 to 1.5 s in all).
pub(crate) const UNREACHABLE_RETRIES: u32 = 2;

/// The default retry budget of a call.
pub(crate) const DEFAULT_BUDGET: Duration = Duration::from_secs(120);

/// How a provider retries failed requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after failed attempts (5xx, resets, timeouts, unreadable answers). Refusals
    /// with 429 do not count: they are retried for as long as [`RetryPolicy::budget`] allows.
    /// 0 turns the provider's retries off altogether (429s included): the caller decides.
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest wait honoured when the server sends `retry-after`.
    pub max_retry_after: Duration,
    /// Longest time one call spends retrying: the waits and the attempts after the first (a
    /// long first answer cut off is still retried; time waiting for the concurrency gate is
    /// not counted). No wait is made that would end past it.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            budget: DEFAULT_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): `retry-after` when the server gave one
    /// (capped at `max_retry_after`) plus up to a quarter more, else the [`Backoff`] from
    /// `base_delay`, capped at `max_delay`, with equal jitter (in `[d/2, d)`).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_at(retry, retry_after, rand::random_range(0.0..1.0))
    }

    /// [`RetryPolicy::delay`] for a given random draw `unit` in `[0, 1)`.
    pub fn delay_at(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(wait) = retry_after {
            let wait = wait.min(self.max_retry_after);
            return wait.saturating_add(wait.mul_f64(unit.clamp(0.0, 1.0) / 4.0));
        }
        self.backoff().delay_at(retry, unit)
    }

    /// The backoff schedule of this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.base_delay,
            cap: self.max_delay,
            jitter: Jitter::Equal,
        }
    }

    /// How many retries an error of this kind gets, counting only the failures of its kind
    /// (`None`: a 429, limited by the budget alone).
    fn retries_for(&self, e: &ProviderError) -> Option<u32> {
        if e.status() == Some(429) {
            None
        } else if e.is_unreachable() {
            Some(self.max_retries.min(UNREACHABLE_RETRIES))
        } else {
            Some(self.max_retries)
        }
    }
}

/// Runs `attempt` until it succeeds, fails with a fatal error, or the retries allowed for its
/// error ([`RetryPolicy::max_retries`], at most [`UNREACHABLE_RETRIES`] when the server cannot
/// be reached; 429s are not counted there) or the policy's time budget are spent. The
/// successful response carries the number of retries, 429s included.
///
/// Each attempt (never a backoff sleep) holds room in `gate`, and tells it how it went; waiting
/// for the gate is not a retry and does not count against the budget.
///
/// With `max_retries: 0` a retryable error is returned as is (the caller may retry it);
/// otherwise the provider gives up with [`ProviderError::RetriesExhausted`], which keeps the
/// last attempt's error, and which the caller does not retry.
///
/// The error is dropped before the backoff sleep, so the future (one per model call in flight)
/// does not keep room for it while it sleeps.
pub(crate) async fn with_retries<F, Fut>(
    policy: &RetryPolicy,
    gate: Option<&Gate>,
    provider: &str,
    mut attempt: F,
) -> Result<ChatResponse, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ChatResponse, ProviderError>>,
{
    let mut retries = 0u32;
    // Retries after failures other than 429: what `max_retries` counts.
    let mut failures = 0u32;
    // Time spent retrying: backoff waits and the attempts after the first; gate waits are left
    // out.
    let mut spent = Duration::ZERO;
    loop {
        let permit = match gate {
            Some(g) => Some(g.acquire().await),
            None => None,
        };
        let started = Instant::now();
        let result = attempt().await;
        if retries > 0 {
            spent = spent.saturating_add(started.elapsed());
        }
        if let Some(permit) = permit {
            match &result {
                Ok(_) => permit.succeeded(),
                Err(e) if e.status() == Some(429) => permit.refused(),
                Err(_) => drop(permit),
            }
        }
        let e = match result {
            Ok(mut response) => {
                response.retries = retries;
                return Ok(response);
            }
            Err(e) if !e.is_retryable() && retries == 0 => return Err(e),
            Err(e) if policy.max_retries == 0 => return Err(e),
            Err(e) => e,
        };
        let allowed = policy.retries_for(&e);
        if !e.is_retryable() || allowed.is_some_and(|n| failures >= n) {
            return Err(ProviderError::RetriesExhausted {
                retries,
                last: Box::new(e),
                budget: None,
            });
        }
        let wait = policy.delay(retries, e.retry_after());
        if spent.saturating_add(wait) > policy.budget {
            return Err(ProviderError::RetriesExhausted {
                retries,
                last: Box::new(e),
                budget: Some(policy.budget),
            });
        }
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let retry = retries + 1;
        match allowed {
            // The gate reports the rate limit once: a line per refusal would be noise.
            None => {
                tracing::debug!(provider, retry, wait_ms, error = %e, "rate limited; retrying model call");
            }
            // An unreachable server ends the call in a second or two with its own message.
            Some(of) if e.is_unreachable() => {
                tracing::debug!(provider, retry, of, wait_ms, error = %e, "retrying model call");
            }
            Some(of) => {
                tracing::warn!(provider, retry = failures + 1, of, wait_ms, error = %e, "retrying model call");
            }
        }
        if allowed.is_some() {
            failures += 1;
        }
        drop(e);
        tokio::time::sleep(wait).await;
        spent = spent.saturating_add(wait);
        retries = retry;
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds, sent by OpenAI), else
/// `retry-after` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Some(wait) = seconds(ms / 1000.0)
    {
        return Some(wait);
    }
    parse_retry_after(text("retry-after")?, SystemTime::now())
}

/// Parses a `retry-after` value: delay seconds (a decimal is accepted) or an IMF-fixdate
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A wait of `secs` seconds as a server wrote it: `None` when negative or not a number, and
/// saturated when too long for a `Duration` (`Duration::from_secs_f64` would panic on
/// `retry-after: 1e300`; the wait is capped by the policy anyway).
fn seconds(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// Parses an IMF-fixdate, the HTTP date format every server must send.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = 1 + [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Four-digit years only: the date arithmetic below must not overflow on a hostile header.
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || *h > 23 || *m > 59 || *sec > 60
    {
        return None;
    }
    let days = days_from_civil(year, u32::try_from(month).ok()?, day);
    let secs = days.checked_mul(86_400)? + i64::try_from(h * 3600 + m * 60 + sec).ok()?;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
