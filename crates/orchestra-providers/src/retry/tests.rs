//! Unit tests of the retry layer.

use super::*;

#[test]
fn backoff_doubles_with_jitter_and_caps() {
    let p = RetryPolicy {
        max_retries: 10,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        max_retry_after: Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    for _ in 0..50 {
        let d0 = p.delay(0, None);
        assert!(d0 >= Duration::from_millis(50) && d0 < Duration::from_millis(100));
        let d2 = p.delay(2, None);
        assert!(d2 >= Duration::from_millis(200) && d2 < Duration::from_millis(400));
        assert!(p.delay(30, None) < Duration::from_millis(1000));
    }
    assert_eq!(
        p.delay_at(0, Some(Duration::from_secs(2)), 0.0),
        Duration::from_secs(2)
    );
    assert_eq!(
        p.delay_at(0, Some(Duration::from_secs(2)), 0.5),
        Duration::from_millis(2250),
        "retry-after plus up to a quarter"
    );
    assert_eq!(
        p.delay_at(0, Some(Duration::from_secs(600)), 0.0),
        Duration::from_secs(5)
    );
    for _ in 0..50 {
        let d = p.delay(0, Some(Duration::from_millis(200)));
        assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(250));
    }
}

#[test]
fn retry_after_accepts_seconds_and_http_dates() {
    let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 2015-10-21 07:27:50 UTC
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("1.5", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("-3", now), None);
    // A hostile or broken server cannot crash us with a wait too long for a Duration.
    assert_eq!(parse_retry_after("1e300", now), Some(Duration::MAX));
    assert_eq!(parse_retry_after("inf", now), Some(Duration::MAX));
    assert_eq!(parse_retry_after("NaN", now), None);
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 9223372036854775807 07:28:00 GMT", now),
        None
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("retry-after-ms", "1e300".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::MAX));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(
        parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT", now),
        None
    );
}

#[test]
fn civil_days_match_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(2024, 2, 29), 19_782);
}

#[tokio::test]
async fn gives_up_after_max_retries_and_reports_them() {
    let p = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retry_after: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let mut calls = 0;
    let err = with_retries(&p, None, "x", || {
        calls += 1;
        async {
            Err(ProviderError::StreamCut {
                provider: "x".into(),
                detail: "eof".into(),
            })
        }
    })
    .await
    .unwrap_err();
    assert_eq!(calls, 3);
    assert_eq!(err.retries(), 2);

    let mut calls = 0;
    let err = with_retries(&p, None, "x", || {
        calls += 1;
        async {
            Err(ProviderError::Status {
                provider: "x".into(),
                url: None,
                status: 400,
                message: "bad".into(),
                retry_after: None,
            })
        }
    })
    .await
    .unwrap_err();
    assert_eq!(calls, 1);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.retries(), 0);
    assert!(
        matches!(err, ProviderError::Status { .. }),
        "returned as is"
    );
}

fn cut() -> ProviderError {
    ProviderError::StreamCut {
        provider: "x".into(),
        detail: "eof".into(),
    }
}

#[tokio::test]
async fn the_budget_ends_retries_before_max_retries() {
    let p = RetryPolicy {
        max_retries: 1000,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
        budget: Duration::from_millis(100),
    };
    let mut calls = 0u32;
    let t0 = Instant::now();
    let err = with_retries(&p, None, "x", || {
        calls += 1;
        async { Err(cut()) }
    })
    .await
    .unwrap_err();
    // Waits of 10 to 20 ms: between 5 and 10 retries fit in 100 ms.
    assert!((5..=10).contains(&err.retries()), "{err}");
    assert_eq!(calls, err.retries() + 1);
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(
        err.to_string()
            .ends_with("within the retry budget of 100ms)"),
        "{err}"
    );
    assert!(err.is_retryable() && !err.caller_may_retry());

    // A first attempt longer than the budget (a long answer cut off) is still retried.
    let mut calls = 0u32;
    let out = with_retries(&p, None, "x", || {
        calls += 1;
        let first = calls == 1;
        async move {
            if first {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Err(cut())
            } else {
                Ok(ChatResponse {
                    content: vec![],
                    stop: crate::types::StopReason::EndTurn,
                    usage: crate::types::Usage::default(),
                    model: "m".into(),
                    retries: 0,
                    reported_cost_usd: None,
                    external_tool_calls: vec![],
                })
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(out.retries, 1);

    // A retry-after longer than the budget is not waited at all.
    let err = with_retries(&p, None, "x", || async {
        Err(ProviderError::Status {
            provider: "x".into(),
            url: None,
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        })
    })
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "x answered HTTP 429: slow down (not retried within the retry budget of 100ms)"
    );
    assert!(!err.caller_may_retry());
}

fn refused() -> ProviderError {
    ProviderError::Status {
        provider: "x".into(),
        url: None,
        status: 429,
        message: "slow down".into(),
        retry_after: None,
    }
}

fn unavailable() -> ProviderError {
    ProviderError::Status {
        provider: "x".into(),
        url: None,
        status: 503,
        message: "overloaded".into(),
        retry_after: None,
    }
}

#[tokio::test]
async fn refusals_do_not_count_against_max_retries_but_failures_do() {
    let p = RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        ..RetryPolicy::default()
    };
    // Seven 429s, then an answer: seven retries with `max_retries: 1`.
    let mut calls = 0u32;
    let out = with_retries(&p, None, "x", || {
        calls += 1;
        let n = calls;
        async move {
            if n <= 7 {
                Err(refused())
            } else {
                Ok(ChatResponse {
                    content: vec![],
                    stop: crate::types::StopReason::EndTurn,
                    usage: crate::types::Usage::default(),
                    model: "m".into(),
                    retries: 0,
                    reported_cost_usd: None,
                    external_tool_calls: vec![],
                })
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(out.retries, 7);

    // 429, 503, 429, 503: the second 503 is the second failure, past `max_retries: 1`.
    let mut calls = 0u32;
    let err = with_retries(&p, None, "x", || {
        calls += 1;
        let n = calls;
        async move {
            if n % 2 == 1 {
                Err(refused())
            } else {
                Err(unavailable())
            }
        }
    })
    .await
    .unwrap_err();
    assert_eq!((calls, err.retries(), err.status()), (4, 3, Some(503)));
    assert_eq!(
        err.to_string(),
        "x answered HTTP 503: overloaded (gave up after 3 retries)"
    );

    // Refused for ever: the budget ends it.
    let p = RetryPolicy {
        budget: Duration::from_millis(50),
        ..p
    };
    let t0 = Instant::now();
    let err = with_retries(&p, None, "x", || async { Err(refused()) })
        .await
        .unwrap_err();
    assert!(
        err.retries() > 1 && t0.elapsed() < Duration::from_secs(2),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("within the retry budget of 50ms)"),
        "{err}"
    );
    assert!(!err.caller_may_retry());
}

#[tokio::test]
async fn without_retries_a_retryable_error_is_left_to_the_caller() {
    let p = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let err = with_retries(&p, None, "x", || async { Err(cut()) })
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::StreamCut { .. }));
    assert!(err.caller_may_retry());
    // A 429 too: `max_retries: 0` turns the provider's retries off altogether.
    let err = with_retries(&p, None, "x", || async { Err(refused()) })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(err.caller_may_retry());
}
