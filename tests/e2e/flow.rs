//! How a running graph flows, through the binary: a join that can never fire is reported with
//! its missing sources (a failure when the session cannot end, a warning when it ended
//! another way), `join: any` runs its target once, and an executable condition routes a loop.

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

/// The agents of each checkpoint after the first, as `a+b` strings.
fn steps(status: &Value) -> Vec<String> {
    status["checkpoints"].as_array().unwrap()[1..]
        .iter()
        .map(|c| {
            c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect()
}

#[test]
fn a_join_that_can_never_fire_fails_the_session_naming_the_missing_source() {
    let p = Project::new();
    let run = p.run(&["run", "flow/stuck-join.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let expected = "failed: step 2: the join into `d` can never fire: `a`, `e` arrived, but `c` can no longer run\n";
    assert!(run.stdout.starts_with(expected), "{}", run.transcript());
    let status = p.status(&session_of(&run.stdout));
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("but `c` can no longer run")
    );
}

#[test]
fn a_join_skipped_by_a_finished_session_is_a_warning_naming_the_missing_source() {
    let p = Project::new();
    let run = p.run(&["run", "flow/skipped-join.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "warning: the join into `d` can never fire: `a` arrived, but `c` can no longer run\n"
        ),
        "{}",
        run.transcript()
    );
    assert!(
        run.stdout.contains("with 1 warning(s)"),
        "{}",
        run.transcript()
    );
    let status = p.status(&session_of(&run.stdout));
    assert_eq!(steps(&status), ["a+b", "e"]);
}

#[test]
fn join_any_runs_its_target_once_on_the_first_arrival() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", "flow/join-any.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let status = p.status(out["session"].as_str().unwrap());
    assert_eq!(steps(&status), ["quick+slow-1", "slow-2+merge"]);
    let merges = out["state"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["agent"] == "merge")
        .count();
    assert_eq!(merges, 1);
}

#[test]
fn an_executable_condition_reads_the_state_and_routes_the_loop() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", "flow/script-condition.yaml", "--input", "topic=tea"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["state"]["verdict"], "approve");
    let status = p.status(out["session"].as_str().unwrap());
    assert_eq!(steps(&status), ["writer", "critic", "writer", "critic"]);
    // What the script got on stdin, once per routing.
    let seen: Vec<Value> = p
        .log("condition.log")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["state"]["verdict"], "revise");
    assert_eq!(seen[0]["inputs"]["topic"], "tea");
    assert_eq!(
        (seen[0]["loops"].as_u64(), seen[1]["loops"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(seen[1]["state"]["messages"].as_array().unwrap().len(), 4);
}
