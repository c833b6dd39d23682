//! The concurrency gate of a provider against a real rate-limited server: many concurrent calls
//! through one client complete with few refusals, whether the server says `retry-after` or not,
//! when it lowers its limit mid-run, and `max_concurrency` is never exceeded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestra_providers::{
    BuildOptions, Message, Provider, RateLimitHook, RateLimited, build_with,
};
use tokio::task::JoinSet;

use crate::limited::{Arrival, Limited};
use crate::{env, fast, request, spec};

/// Every test ends within this, whatever happens.
const BOUND: Duration = Duration::from_secs(60);

/// An `openai` provider on `server` with `extra` settings, telling `heard` about rate limits.
fn client(
    server: &Limited,
    extra: &str,
    heard: &Arc<Mutex<Vec<RateLimited>>>,
) -> Arc<dyn Provider> {
    let yaml = format!("kind: openai\napi_base: {}\n{extra}", server.base());
    let h = heard.clone();
    let options = BuildOptions {
        on_rate_limit: Some(RateLimitHook(Arc::new(move |e: &RateLimited| {
            h.lock().unwrap().push(e.clone());
        }))),
        ..fast()
    };
    let dir = tempfile::tempdir().unwrap();
    build_with("local", &spec(&yaml), dir.path(), &env, &options).unwrap()
}

/// Runs `n` calls at once through `p`; returns the retries of each call that succeeded and the
/// errors of the others.
async fn fan_out(p: &Arc<dyn Provider>, n: usize) -> (Vec<u32>, Vec<String>) {
    let mut calls = JoinSet::new();
    for i in 0..n {
        let p = p.clone();
        calls.spawn(async move {
            p.chat(&request(&format!("w{i}"), vec![Message::user("go")]), None)
                .await
        });
    }
    let run = async {
        let (mut ok, mut errors) = (Vec::new(), Vec::new());
        while let Some(done) = calls.join_next().await {
            match done.unwrap() {
                Ok(out) => ok.push(out.retries),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (ok, errors)
    };
    tokio::time::timeout(BOUND, run)
        .await
        .expect("the calls ended in time")
}

/// The most requests the server was offered at once among those arriving after `after_ok`
/// successful answers.
fn offered_after(arrivals: &[Arrival], after_ok: usize) -> usize {
    arrivals
        .iter()
        .filter(|a| a.ok_before >= after_ok)
        .map(|a| a.offered)
        .max()
        .unwrap_or(0)
}

async fn storm(retry_after: Option<&str>) {
    let (calls, limit) = (200, 25);
    let server = Limited::start(limit, Duration::from_millis(40), retry_after);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let p = client(&server, "", &heard);
    let (ok, errors) = fan_out(&p, calls).await;
    assert_eq!((ok.len(), errors.first()), (calls, None));
    let arrivals = server.arrivals();
    let refused = arrivals.iter().filter(|a| a.refused).count();
    // The first wave is refused past the limit (175); after that, about one probe per round.
    assert!(
        arrivals.len() <= calls * 21 / 10,
        "{} requests for {calls} calls ({refused} refused)",
        arrivals.len()
    );
    // Once two rounds were answered the client keeps to what the server accepts.
    let late = offered_after(&arrivals, 2 * limit);
    assert!(
        late <= limit + 2,
        "{late} requests offered at once after convergence"
    );
    // Reported when calls first waited (maybe while refusals of the first wave still came
    // in), then again each time the limit fell by a quarter: the last report is near the
    // server's limit.
    let heard = heard.lock().unwrap();
    let last = heard.last().expect("the rate limit was reported");
    assert_eq!(last.provider, "local");
    let reported = usize::try_from(last.limit).unwrap();
    assert!(
        reported <= (limit + 1) * 4 / 3 && reported >= limit / 2,
        "{heard:?}"
    );
}

#[tokio::test]
async fn a_429_storm_with_retry_after_converges_and_completes() {
    storm(Some("0.05")).await;
}

#[tokio::test]
async fn a_429_storm_without_retry_after_converges_and_completes() {
    storm(None).await;
}

#[tokio::test]
async fn a_server_that_lowers_its_limit_mid_run() {
    let (calls, high, low, after) = (240, 16, 6, 80);
    let server = Limited::lowering(
        high,
        Duration::from_millis(30),
        Some("0.03"),
        Some((after, low)),
    );
    let heard = Arc::new(Mutex::new(Vec::new()));
    let p = client(&server, "max_retries: 6\n", &heard);
    let (ok, errors) = fan_out(&p, calls).await;
    assert_eq!((ok.len(), errors.first()), (calls, None));
    let arrivals = server.arrivals();
    let refused_after_drop = arrivals
        .iter()
        .filter(|a| a.refused && a.ok_before >= after)
        .count();
    assert!(
        refused_after_drop <= 40,
        "{refused_after_drop} refusals after the limit fell"
    );
    assert!(
        arrivals.len() <= calls * 24 / 10,
        "{} requests",
        arrivals.len()
    );
    let late = offered_after(&arrivals, after + 4 * high);
    assert!(
        late <= low + 2,
        "{late} requests offered at once late in the run"
    );
    let heard = heard.lock().unwrap();
    assert!(
        heard
            .iter()
            .any(|e| usize::try_from(e.limit).unwrap() <= high * 3 / 4),
        "the lower limit was reported: {heard:?}"
    );
}

/// A 429 is the server asking to wait, not a failure: with a tiny `max_retries`, a fan-out on a
/// server that refuses a lot (it drops to 2 at once mid-run) still completes, some calls after
/// many more refusals than `max_retries` (a 5xx still gets `max_retries` only: see the unit
/// tests of `retry.rs`).
#[tokio::test]
async fn refusals_do_not_spend_max_retries() {
    for retry_after in [Some("0.02"), None] {
        let calls = 150;
        let server = Limited::lowering(10, Duration::from_millis(20), retry_after, Some((30, 2)));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let p = client(&server, "max_retries: 1\n", &heard);
        let (ok, errors) = fan_out(&p, calls).await;
        assert_eq!((ok.len(), errors.first()), (calls, None), "{retry_after:?}");
        let most = ok.iter().max().copied().unwrap_or(0);
        assert!(
            most > 1,
            "some call was refused more than once ({retry_after:?}): {most}"
        );
        let refused = server.arrivals().iter().filter(|a| a.refused).count();
        assert_eq!(
            usize::try_from(ok.iter().sum::<u32>()).unwrap(),
            refused,
            "every refusal is counted as a retry"
        );
    }
}

#[tokio::test]
async fn max_concurrency_is_never_exceeded() {
    let server = Limited::start(1000, Duration::from_millis(20), None);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let p = client(&server, "max_concurrency: 5\n", &heard);
    let (ok, errors) = fan_out(&p, 60).await;
    assert_eq!((ok.len(), errors.first()), (60, None));
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 60);
    assert_eq!(arrivals.iter().map(|a| a.offered).max(), Some(5));
    assert!(
        heard.lock().unwrap().is_empty(),
        "a configured limit is not a rate limit"
    );
}

#[test]
fn max_concurrency_must_be_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = build_with(
        "local",
        &spec("kind: openai\napi_base: http://127.0.0.1:1/v1\nmax_concurrency: 0\n"),
        dir.path(),
        &env,
        &fast(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .ends_with("`max_concurrency` must be at least 1"),
        "{e}"
    );
}
