//! Limits and failures of a running session, through the binary: the token budget and
//! `max_steps` stop it cleanly (exit 3) and `resume` can raise them; provider errors are
//! retried with backoff; the circuit breaker; the per-node timeout.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::project::Project;

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

/// `usage` of `node` in `status ID --json`.
fn usage<'a>(status: &'a Value, node: &str) -> &'a Value {
    status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["node"] == node)
        .unwrap()
}

/// Resumes `id` with a raised limit; the session then writes all its 20 drafts.
fn resume_to_the_end(p: &Project, id: &str, flag: &str) {
    // The same limit stops it again at once, without running anything.
    let again = p.run(&["resume", id]);
    assert_eq!(again.code, 3, "{}", again.transcript());
    assert!(!again.stderr.contains("start"), "{}", again.transcript());
    let (run, out) = p.run_json(&["resume", id, flag, "1000"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    assert_eq!(out["state"]["drafts"].as_array().unwrap().len(), 20);
    assert_eq!(
        (out["steps"].as_u64(), out["tokens"].as_u64()),
        (Some(20), Some(300))
    );
    assert_eq!(p.status(id)["status"], "completed");
}

#[test]
fn a_token_budget_stops_the_session_cleanly_and_resume_can_raise_it() {
    let p = Project::new();
    let run = p.run(&["run", "limits/budget.yaml"]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    p.settings().bind(|| {
        insta::assert_snapshot!("limits.budget", run.transcript());
    });
    let id = session_of(&run.stdout);
    let status = p.status(&id);
    assert_eq!(status["status"], "stopped");
    assert_eq!(status["checkpoints"].as_array().unwrap().len(), 5);
    resume_to_the_end(&p, &id, "--max-tokens");
}

#[test]
fn max_steps_stops_the_session_cleanly_and_resume_can_raise_it() {
    let p = Project::new();
    let run = p.run(&["run", "limits/steps.yaml"]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert!(
        run.stdout
            .starts_with("stopped: the session reached limits.max_steps (5) (5 steps, 75 tokens"),
        "{}",
        run.transcript()
    );
    let id = session_of(&run.stdout);
    assert_eq!(p.sessions()[0]["status"], "stopped");
    resume_to_the_end(&p, &id, "--max-steps");
}

#[test]
fn provider_errors_are_retried_with_backoff() {
    let p = Project::new();
    let run = p.run(&["run", "limits/retries.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    // `checker`'s provider does not retry: the node is attempted again after 250 to 500 ms
    // (a base of 500 ms with equal jitter).
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("retry  checker"))
        .unwrap_or_else(|| panic!("{}", run.transcript()));
    assert!(
        line.starts_with(
            "  retry  checker: attempt 1 failed: fragile answered HTTP 503: overloaded; next in "
        ),
        "{line}"
    );
    let delay: u64 = line
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches("ms")
        .parse()
        .unwrap();
    assert!((250..500).contains(&delay), "{line}");
    assert!(
        run.stderr.contains("  start  checker (attempt 2)"),
        "{}",
        run.transcript()
    );
    let status = p.status(&session_of(&run.stdout));
    // `writer`'s provider retried its 429 itself, after the server's retry-after.
    let writer = usage(&status, "writer");
    assert_eq!(
        (writer["runs"].as_u64(), writer["retries"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(writer["errors"], 0);
    // `checker`: a failed attempt, then a good one.
    let checker = usage(&status, "checker");
    assert_eq!(
        (checker["runs"].as_u64(), checker["errors"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(checker["retries"], 1);
    assert_eq!(status["status"], "completed");
}

#[test]
fn the_circuit_breaker_stops_the_session_after_max_failures() {
    let p = Project::new();
    let run = p.run(&["run", "limits/breaker.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout.contains(
            "scripted answered HTTP 500: the model is down (circuit breaker: 3 failed attempts in this session, limits.max_failures is 3)"
        ),
        "{}",
        run.transcript()
    );
    let status = p.status(&session_of(&run.stdout));
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("circuit breaker")
    );
    let errors: u64 = status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["errors"].as_u64().unwrap())
        .sum();
    assert_eq!(errors, 3, "{status}");
}

#[test]
fn a_node_that_takes_too_long_is_stopped_at_its_timeout() {
    let p = Project::new();
    // Built (on first use) before the clock starts.
    let _ = crate::binary::orchestra_bin();
    let t0 = Instant::now();
    let run = p.run(&["run", "limits/timeout.yaml"]);
    // The model would answer after two minutes: the run ended before, without waiting for it.
    assert!(
        t0.elapsed() < Duration::from_secs(120),
        "the run waited for the model: {:?}",
        t0.elapsed()
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout
            .starts_with("failed: agent `sleeper` failed at step 1: timed out after 300ms\n"),
        "{}",
        run.transcript()
    );
    let status = p.status(&session_of(&run.stdout));
    assert_eq!(usage(&status, "sleeper")["errors"], 1);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 300ms")
    );
}
