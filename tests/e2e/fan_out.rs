//! `for_each` through the binary: one task of the target per item of a state list made at run
//! time, named `researcher[N]` in progress lines and `status`, seeing `item` and `item_index`,
//! writes applied in item order whatever order the instances finish in; 0 items; a value that
//! is not a list; and a SIGKILL in the middle of the fan-out, after which `resume` runs only the
//! instances that had not finished.

use serde_json::{Value, json};

use super::project::Project;

const PIPELINE: &str = "language/fan-out.yaml";

/// The agents of each checkpoint after the first.
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

fn position(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{haystack}"))
}

#[test]
fn a_for_each_runs_one_task_per_item_and_applies_their_writes_in_item_order() {
    let p = Project::new();
    let topics = r#"topics=["slow alpha", "beta", "gamma"]"#;
    let run = p.run(&["run", PIPELINE, "-i", topics]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    // Three instances in one step; the slow first one finishes last.
    let err = &run.stderr;
    assert!(err.contains("step 2: researcher\n"), "{err}");
    for i in 0..3 {
        assert!(
            err.contains(&format!("  start  researcher[{i}]\n")),
            "{err}"
        );
    }
    assert!(
        position(err, "done   researcher[2]") < position(err, "done   researcher[0]"),
        "{err}"
    );
    assert!(
        position(err, "done   researcher[0]") < position(err, "step 3: writer"),
        "the writer waits for every instance:\n{err}"
    );
    // Each instance's prompt had its item and 0-based index.
    let mut prompts = p.log("research.log");
    prompts.sort();
    assert_eq!(
        prompts,
        [
            "Topic: beta (#1)",
            "Topic: gamma (#2)",
            "Topic: slow alpha (#0)"
        ]
    );

    let id = p.sessions()[0]["id"].as_str().unwrap().to_owned();
    let status = p.status(&id);
    assert_eq!(steps(&status), ["planner", "researcher", "writer"]);
    let text = p.run(&["status", &id]);
    assert_eq!(text.code, 0, "{}", text.transcript());
    for i in 0..3 {
        assert!(
            text.stdout.contains(&format!("\n  researcher[{i}] ")),
            "{}",
            text.stdout
        );
    }

    // The same run again, for its final state.
    let (run, out) = p.run_json(&["run", PIPELINE, "-i", topics]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let state = &out["state"];
    // Item order, not finishing order.
    let findings = json!([
        "Notes on slow alpha (#0)",
        "Notes on beta (#1)",
        "Notes on gamma (#2)"
    ]);
    assert_eq!(state["findings"], findings);
    assert_eq!(state["agent_outputs"]["researcher"], findings);
    let agents: Vec<&str> = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["agent"].as_str().unwrap())
        .collect();
    assert_eq!(
        agents,
        [
            "planner",
            "researcher[0]",
            "researcher[1]",
            "researcher[2]",
            "writer"
        ]
    );
    assert_eq!(agents.len(), 5);
}

#[test]
fn a_for_each_over_no_items_goes_straight_on_and_a_non_list_fails_clearly() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", PIPELINE, "-i", "topics=[]"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    assert_eq!(out["state"]["findings"], json!([]));
    assert!(p.log("research.log").is_empty(), "no researcher ran");
    let status = p.status(out["session"].as_str().unwrap());
    // The fan-out's step ran no task; the writer came after it.
    assert_eq!(steps(&status), ["planner", "researcher", "writer"]);
    assert!(!run.stderr.contains("start  researcher"), "{}", run.stderr);

    let bad = p.run(&["run", PIPELINE, "-i", r#"topics="abc""#]);
    assert_eq!(bad.code, 1, "{}", bad.transcript());
    assert!(
        bad.stdout.contains(
            "failed: step 2: cannot fan out `researcher`: `for_each: subtopics` needs a list, but state field `subtopics` holds a string: \"abc\""
        ),
        "{}",
        bad.transcript()
    );
}

#[test]
fn a_sigkill_in_the_middle_of_a_fan_out_resumes_only_the_unfinished_instances() {
    let p = Project::new();
    let running = p.spawn(&["run", PIPELINE, "-i", r#"topics=["a", "wait b", "c"]"#]);
    // `researcher[1]` waits for the gate; the other two finish and are recorded (their
    // progress lines come before their records are stored: wait for those).
    assert!(running.wait_for("step 2: researcher").is_some());
    let id = p.sessions()[0]["id"].as_str().unwrap().to_owned();
    super::common::wait_until("the records of researcher[0] and researcher[2]", || {
        let usage = p.status(&id)["usage"].clone();
        let done: Vec<&str> = usage
            .as_array()?
            .iter()
            .filter_map(|u| u["node"].as_str())
            .filter(|n| n.starts_with("researcher["))
            .collect();
        (done == ["researcher[0]", "researcher[2]"]).then_some(())
    });
    running.signal("KILL", true);
    let killed = running.finish();
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    assert!(
        !killed.stderr.contains("done   researcher[1]"),
        "{}",
        killed.transcript()
    );
    let id = p.sessions()[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        steps(&p.status(&id)),
        ["planner"],
        "the fan-out step was cut short"
    );
    assert_eq!(p.log("research.log").len(), 3);

    p.open_gate();
    let (run, out) = p.run_json(&["resume", &id]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    // Only `researcher[1]` ran again.
    let mut calls = p.log("research.log");
    calls.sort();
    assert_eq!(
        calls,
        [
            "Topic: a (#0)",
            "Topic: c (#2)",
            "Topic: wait b (#1)",
            "Topic: wait b (#1)"
        ]
    );
    assert_eq!(
        out["state"]["findings"],
        json!(["Notes on a (#0)", "Notes on wait b (#1)", "Notes on c (#2)"])
    );
    assert_eq!(steps(&p.status(&id)), ["planner", "researcher", "writer"]);
}

#[test]
fn the_map_reduce_example_runs_offline_end_to_end() {
    let ws = super::common::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(ws.join("orchestra.yaml"), dir.path().join("orchestra.yaml")).unwrap();
    super::common::copy_dir(
        &ws.join("pipelines/examples"),
        &dir.path().join("pipelines/examples"),
    );
    let run = super::common::orchestra(
        dir.path(),
        &home,
        &[
            "run",
            "pipelines/examples/map-reduce.yaml",
            "--db",
            "s.db",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["status"], "completed");
    let state = &out["state"];
    assert_eq!(state["subtopics"], json!(["chemistry", "sizing", "safety"]));
    // researcher[0] is the slowest, yet its finding comes first.
    let findings: Vec<&str> = state["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(findings.len(), 3, "{findings:?}");
    assert!(
        findings[0].starts_with("Lithium iron phosphate"),
        "{findings:?}"
    );
    assert!(
        findings[1].starts_with("Size from the evening load"),
        "{findings:?}"
    );
    assert!(
        findings[2].starts_with("Install on a non-combustible wall"),
        "{findings:?}"
    );
    let report = out["outputs"][0].as_str().unwrap();
    let text = std::fs::read_to_string(dir.path().join(report)).unwrap();
    assert!(text.starts_with("# Home batteries"), "{text}");
}
