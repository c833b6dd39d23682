//! Bad model output never panics: an answer that is not JSON (or not valid against the
//! schema), an unknown tool, tool arguments of the wrong type or not JSON at all, and a
//! condition choosing a target its edge does not have each give a clear error that is
//! recorded (in the session, or sent back to the model as a tool result).

use serde_json::Value;

use super::fake_model::{FakeModel, text, tool_call};
use super::project::Project;

/// The id of the session a `run` printed last.
fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

#[test]
fn answers_that_break_the_output_schema_fail_the_node_with_the_reason_recorded() {
    let p = Project::new();
    let run = p.run(&["run", "bad/not-json.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    p.settings().bind(|| {
        insta::assert_snapshot!("bad-output.not-json", run.transcript());
    });
    let status = p.status(&session_of(&run.stdout));
    assert_eq!(status["status"], "failed");
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains("agent `judge` failed at step 1: invalid output after 3 attempts")
            && error.contains("at /verdict: 3 is not of type \"string\""),
        "{error}"
    );
    let usage = &status["usage"][0];
    assert_eq!(
        (usage["node"].as_str(), usage["errors"].as_u64()),
        (Some("judge"), Some(1))
    );
    // The three answers cost tokens although the run failed; they count.
    assert!(usage["tokens_in"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        run.stdout.contains("(0 steps, 314 tokens,"),
        "{}",
        run.stdout
    );
    // Checkpoint 0 is kept; nothing after it was committed.
    assert_eq!(status["checkpoints"].as_array().unwrap().len(), 1);
}

#[test]
fn unknown_tools_and_bad_tool_arguments_go_back_to_the_model_as_clear_tool_errors() {
    let p = Project::new();
    let model = FakeModel::start(vec![
        tool_call("c1", "app__raed-file", r#"{"path": "orchestra.yaml"}"#),
        tool_call("c2", "app__repeat", r#"{"n": "three"}"#),
        tool_call("c3", "app__repeat", r#"{"n": 3"#),
        tool_call("c4", "app__repeat", r#"[3]"#),
        tool_call("c5", "app__repeat", r#"{"n": 3}"#),
        text("all done"),
    ]);
    let pipeline = std::fs::read_to_string(p.path("bad/tools.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:9/v1", &model.api_base());
    p.write("bad/tools.yaml", &pipeline);
    let run = p.run(&["run", "bad/tools.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        run.stderr.matches("(error)").count(),
        4,
        "{}",
        run.transcript()
    );
    // What the model was told after each call: the tool messages of the last request.
    let requests = model.requests();
    assert_eq!(requests.len(), 6);
    let told: Vec<String> = requests[5]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            format!(
                "{}: {}",
                m["tool_call_id"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect();
    p.settings().bind(|| {
        insta::assert_snapshot!("bad-output.tool-errors", told.join("\n"));
    });
    let state = p.status(&session_of(&run.stdout));
    assert_eq!(state["status"], "completed");
    assert_eq!(state["usage"][0]["tool_calls"], 5);
}

#[test]
fn a_condition_choosing_an_unknown_target_fails_the_session_naming_both() {
    let p = Project::new();
    for (pipeline, step) in [
        ("bad/wrong-target.yaml", 1),
        ("bad/wrong-target-at-start.yaml", 0),
    ] {
        let run = p.run(&["run", pipeline]);
        assert_eq!(run.code, 1, "{}", run.transcript());
        let expected = format!(
            "step {step}: condition `nowhere` chose `nobody`, which is not one of its edge's targets"
        );
        assert!(run.stdout.contains(&expected), "{}", run.transcript());
        let status = p.status(&session_of(&run.stdout));
        assert_eq!(status["status"], "failed");
        assert!(
            status["error"].as_str().unwrap().contains(&expected),
            "{status}"
        );
        // The lease is given back: another process may resume it at once.
        assert_eq!(status["lease_owner"], Value::Null);
        let again = p.run(&["resume", &session_of(&run.stdout)]);
        assert_eq!(again.code, 1, "{}", again.transcript());
    }
}

#[test]
fn a_condition_script_that_crashes_is_a_recorded_failure() {
    let p = Project::new();
    let run = p.run(&["run", "bad/crashing-condition.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let status = p.status(&session_of(&run.stdout));
    let error = status["error"].as_str().unwrap();
    assert!(
        error.contains("condition `crash` failed")
            && error.contains("exit status: 7")
            && error.contains("no idea where to go"),
        "{error}"
    );
}
