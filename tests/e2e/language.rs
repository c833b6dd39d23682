//! The pipeline language through the binary: typed inputs checked before a session starts,
//! `join: N` quorums (also across a SIGKILL and a resume), `FAIL` with its reason, `on_error`
//! routes to a handler that reads state `errors`, and the compile warning for a condition that
//! can choose only some sources of a `join: all` barrier.

use serde_json::{Value, json};

use super::project::Project;

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

/// The agents of each checkpoint after the first, as `a+b` strings.
fn steps(status: &Value) -> Vec<String> {
    status["checkpoints"].as_array().unwrap()[1..]
        .iter()
        .map(|c| {
            let nodes: Vec<&str> = c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect();
            nodes.join("+")
        })
        .collect()
}

#[test]
fn typed_inputs_are_checked_before_a_session_starts() {
    let p = Project::new();
    let pipeline = "language/typed-inputs.yaml";
    let missing = p.run(&["run", pipeline]);
    assert_eq!(missing.code, 2, "{}", missing.transcript());
    assert_eq!(
        missing.stderr,
        "error: missing input(s): goal; give them with --input KEY=VALUE\n"
    );
    let wrong = p.run(&["run", pipeline, "-i", "goal=x", "-i", "rounds=three"]);
    assert_eq!(wrong.code, 2, "{}", wrong.transcript());
    assert_eq!(
        wrong.stderr,
        "error: input `rounds`: expected an integer, got `three`\n"
    );
    let outside = p.run(&["run", pipeline, "-i", "goal=x", "-i", "mode=slow"]);
    assert_eq!(outside.code, 2, "{}", outside.transcript());
    assert_eq!(
        outside.stderr,
        "error: input `mode`: `\"slow\"` is not one of `\"fast\"`, `\"thorough\"`\n"
    );
    let typo = p.run(&["run", pipeline, "-i", "goal=x", "-i", "round=3"]);
    assert_eq!(typo.code, 2, "{}", typo.transcript());
    assert!(
        typo.stderr
            .starts_with("error: the pipeline has no input `round`; did you mean `rounds`?"),
        "{}",
        typo.transcript()
    );
    assert!(p.sessions().is_empty(), "no session was started");

    // `rounds + 1` in the task template only renders for an integer.
    let (run, out) = p.run_json(&["run", pipeline, "-i", "goal=tests", "-i", "rounds= 3"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let status = p.status(out["session"].as_str().unwrap());
    assert_eq!(
        status["inputs"],
        json!({"goal": "tests", "rounds": 3, "mode": "fast"})
    );
}

#[test]
fn a_quorum_runs_its_target_once_after_two_of_three_sources() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", "language/quorum.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stderr.contains("warning"), "{}", run.transcript());
    let status = p.status(out["session"].as_str().unwrap());
    assert_eq!(steps(&status), ["a+b+pre", "c+d"], "d did not wait for c");
    let ran: Vec<&str> = out["state"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["agent"].as_str().unwrap())
        .collect();
    assert_eq!(ran.iter().filter(|a| **a == "d").count(), 1, "{ran:?}");
}

#[test]
fn a_quorum_keeps_its_count_across_a_sigkill_and_a_resume() {
    let p = Project::new();
    let running = p.spawn(&["run", "language/quorum-gated.yaml"]);
    // Step 2 runs `b`, which waits for the gate: checkpoint 1 holds `a`'s arrival.
    assert!(running.wait_for("step 2").is_some());
    running.signal("KILL", true);
    let killed = running.finish();
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    let id = p.sessions()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(steps(&p.status(&id)), ["a+pre"]);
    p.open_gate();
    let (run, out) = p.run_json(&["resume", &id]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    // `b` makes two of three: `d` runs in step 3 (without the count it would wait for `c`).
    assert_eq!(steps(&p.status(&id)), ["a+pre", "b", "c+d"]);
}

#[test]
fn fail_ends_the_session_as_failed_with_its_reason() {
    let p = Project::new();
    let run = p.run(&["run", "language/fail.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let reason = "`writer` routed to FAIL: could not finish the report after 1 answer(s)";
    assert!(
        run.stdout
            .starts_with(&format!("failed: {reason}\n(1 step, 7 tokens, ")),
        "{}",
        run.transcript()
    );
    let id = session_of(&run.stdout);
    let status = p.status(&id);
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"], reason);
    let list = p.run(&["status"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.contains(" failed ") && l.ends_with(reason)),
        "{}",
        list.transcript()
    );
    let shown = p.run(&["status", &id]);
    assert!(
        shown.stdout.contains(&format!("error     {reason}\n")),
        "{}",
        shown.transcript()
    );
    // A resume ends the same way, without running anything again.
    let again = p.run(&["resume", &id]);
    assert_eq!(again.code, 1, "{}", again.transcript());
    assert!(again.stdout.starts_with(&format!("failed: {reason}\n")));
    assert_eq!(steps(&p.status(&id)), ["writer"]);
}

#[test]
fn on_error_goes_on_at_a_handler_that_sees_the_errors() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", "language/on-error.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    assert_eq!(
        out["state"]["errors"],
        json!([{
            "agent": "coder",
            "step": 1,
            "error": "scripted answered HTTP 500: the model is down (after 2 attempts)"
        }])
    );
    // The handler ran (its template read `errors`), its condition ended the session, and the
    // coder's own edge to the reviewer was never taken.
    assert_eq!(out["state"]["agent_outputs"], json!({"triage": "handled"}));
    let status = p.status(out["session"].as_str().unwrap());
    assert_eq!(steps(&status), ["coder", "triage"]);
}

#[test]
fn compile_warns_when_a_condition_can_choose_only_some_sources_of_a_join_all() {
    let p = Project::new();
    let run = super::common::orchestra(
        p.root(),
        &p.path("home"),
        &["compile", "language/subset.yaml"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.starts_with(
            "warning: condition `skip` can choose only some of the sources of the `join: all` into `d`\n"
        ),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains("when it chooses `e`, `c` may not run, and `d` waits for it"),
        "{}",
        run.transcript()
    );
}
