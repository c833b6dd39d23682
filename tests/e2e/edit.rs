//! Sessions that go on with an edited pipeline or edited state: `resume --pipeline`, `replay
//! --pipeline`, `--set FIELD=JSON`; what changed is printed, and what cannot apply is refused
//! with exit code 2 and nothing changed.

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

/// The agents of each checkpoint after the first, as `a+b` strings (`""` for an edit).
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

/// What `status ID --json` says has not changed after a refused edit.
fn unchanged(p: &Project, id: &str, before: &Value) {
    let now = p.status(id);
    for key in ["status", "error", "pipeline_path", "checkpoints", "meta"] {
        assert_eq!(now[key], before[key], "{key} changed");
    }
}

#[test]
fn a_session_failed_by_a_bad_condition_completes_on_the_fixed_pipeline() {
    let p = Project::new();
    let run = p.run(&["run", "edit/route.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let id = session_of(&run.stdout);
    let before = p.status(&id);
    assert_eq!(steps(&before), ["draft"]);

    // Refused, naming each agent; nothing changes.
    let removed = p.run(&["resume", &id, "--pipeline", "edit/no-draft.yaml"]);
    assert_eq!(removed.code, 2, "{}", removed.transcript());
    assert_eq!(
        removed.stderr,
        format!(
            "error: agent `draft` is not in the edited pipeline, but it ran 1 time at checkpoint 1; keep it, or replay from a checkpoint before it ran\n\
             error: agent `check` is not in the edited pipeline, but it is due to run next at checkpoint 1; keep it, or replay from a checkpoint before it ran\n\
             error: session `{id}` cannot go on from checkpoint 1 with this edit; nothing was changed\n"
        )
    );
    unchanged(&p, &id, &before);
    let unknown = p.run(&["resume", &id, "--set", "mood=\"calm\""]);
    assert_eq!(unknown.code, 2, "{}", unknown.transcript());
    assert!(
        unknown.stderr.starts_with(
            "error: --set mood: the pipeline has no state field `mood` (fields: messages, agent_outputs, metadata, errors, verdict, mode)\n"
        ),
        "{}",
        unknown.transcript()
    );
    let wrong_type = p.run(&["resume", &id, "--set", "mode=3"]);
    assert_eq!(wrong_type.code, 2, "{}", wrong_type.transcript());
    assert!(
        wrong_type
            .stderr
            .starts_with("error: --set mode=3: state field `mode` expects a string\n"),
        "{}",
        wrong_type.transcript()
    );
    let not_json = p.run(&["resume", &id, "--set", "mode=[\"a\","]);
    assert_eq!(not_json.code, 2, "{}", not_json.transcript());
    assert!(
        not_json.stderr.starts_with(
            "error: invalid value 'mode=[\"a\",' for '--set <FIELD=JSON>': the value of `mode` is not JSON (EOF while parsing a value at line 1 column 5): `[\"a\",`"
        ),
        "{}",
        not_json.transcript()
    );
    unchanged(&p, &id, &before);

    // The fix: a rules condition, a new agent after `publish`, a new prompt for `draft`. A
    // step limit stops it half way, so that a plain `resume` shows it kept the edited pipeline.
    let fixed = p.run(&[
        "resume",
        &id,
        "--pipeline",
        "edit/routed.yaml",
        "--max-steps",
        "3",
    ]);
    assert_eq!(fixed.code, 3, "{}", fixed.transcript());
    assert!(
        fixed.stderr.starts_with(
            "pipeline edit/routed.yaml (changes from the session's pipeline at checkpoint 1):\n  \
             ~ agent     draft: prompt (inline task)\n  \
             + agent     announce\n  \
             ~ edge      check -> publish, END: condition nowhere -> by-mode\n  \
             ~ edge      publish -> announce: targets END -> announce\n  \
             + edge      announce -> END\n  \
             + condition by-mode\n  \
             - condition nowhere\n\
             resuming session "
        ),
        "{}",
        fixed.transcript()
    );
    let status = p.status(&id);
    assert_eq!(status["pipeline_path"], "edit/routed.yaml");
    assert_eq!(status["status"], "stopped");
    let edits = &status["meta"]["pipeline_edits"];
    assert_eq!(edits[0]["after_step"], 1);
    assert_eq!(edits[0]["pipeline_path"], "edit/routed.yaml");
    assert_eq!(edits[0]["previous"]["pipeline_path"], "edit/route.yaml");

    let rest = p.run(&["resume", &id]);
    assert_eq!(rest.code, 0, "{}", rest.transcript());
    assert!(!rest.stderr.contains("warning"), "{}", rest.transcript());
    let status = p.status(&id);
    assert_eq!(status["status"], "completed");
    // Checkpoint 2 is the edit; `check` runs again under the fixed pipeline.
    assert_eq!(
        steps(&status),
        ["draft", "", "check", "publish", "announce"]
    );
    let text = p.run(&["status", &id]);
    assert!(
        text.stdout
            .contains("     2  (edit: pipeline edit/routed.yaml)  [snapshot]\n"),
        "{}",
        text.transcript()
    );

    // Checkpoint 1 is still restored with the pipeline that made it: a fork of it runs that.
    let (fork, out) = p.run_json(&["replay", &id, "--checkpoint", "1", "--no-run"]);
    assert_eq!(fork.code, 0, "{}", fork.transcript());
    let forked = p.status(out["session"].as_str().unwrap());
    assert_eq!(forked["pipeline_path"], "edit/route.yaml");
    assert_eq!(out["state"]["verdict"], Value::Null);
}

#[test]
fn replay_with_set_changes_the_routing_and_refuses_a_field_that_no_longer_fits() {
    let p = Project::new();
    let run = p.run(&["run", "edit/routed.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stdout);
    assert_eq!(
        steps(&p.status(&id)),
        ["draft", "check", "publish", "announce"]
    );

    // At checkpoint 1 `check` is due; with `mode` set it routes to END instead of `publish`.
    let (fork, out) = p.run_json(&["replay", &id, "--checkpoint", "1", "--set", "mode=\"skip\""]);
    assert_eq!(fork.code, 0, "{}", fork.transcript());
    assert_eq!(
        fork.stderr,
        "set mode = \"skip\"\n",
        "{}",
        fork.transcript()
    );
    assert_eq!(out["state"]["mode"], "skip");
    let forked = p.status(out["session"].as_str().unwrap());
    assert_eq!(steps(&forked), ["check"]);
    assert_eq!(
        forked["meta"]["fork"]["edit"]["set"],
        json!({"mode": "skip"})
    );

    // `verdict` became an integer, and checkpoint 2 holds "done": refused, no fork made.
    let sessions = p.sessions().len();
    let refused = p.run(&[
        "replay",
        &id,
        "--checkpoint",
        "2",
        "--pipeline",
        "edit/verdict-number.yaml",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.transcript());
    assert_eq!(
        refused.stderr,
        format!(
            "error: state field `verdict` changed from a string (replace) to an integer (replace), and its value at checkpoint 2 (\"done\") is not an integer\n\
             error: session `{id}` cannot go on from checkpoint 2 with this edit; nothing was changed\n"
        )
    );
    assert_eq!(p.sessions().len(), sessions, "no fork was made");

    // An edited file is not ignored in silence: the fork says it runs the stored pipeline.
    let edited = std::fs::read_to_string(p.path("edit/routed.yaml")).unwrap();
    p.write(
        "edit/routed.yaml",
        &edited.replace("announce: {}", "announce: { retries: 1 }"),
    );
    let stale = p.run(&["replay", &id, "--checkpoint", "3", "--no-run"]);
    assert_eq!(stale.code, 0, "{}", stale.transcript());
    assert!(
        stale.stderr.contains(
            "edit/routed.yaml` or a file it uses changed since this session started; replaying with the pipeline as it was (to go on with the edited one: --pipeline "
        ),
        "{}",
        stale.transcript()
    );
    let with_it = p.run(&[
        "replay",
        &id,
        "--checkpoint",
        "3",
        "--pipeline",
        "edit/routed.yaml",
    ]);
    assert_eq!(with_it.code, 0, "{}", with_it.transcript());
    assert!(
        with_it
            .stderr
            .contains("  ~ agent     announce: max_turns/timeout/retries\n"),
        "{}",
        with_it.transcript()
    );
}
