//! `run`, `status` and `resume` as a user sees them: a line per node with time and tokens, the
//! outcome and session id, `--input`, `--stream`, `--json`, the session list and one session
//! in detail, Ctrl-C leaving a resumable session.

use serde_json::Value;

use super::common::wait_until;
use super::project::Project;

fn session_of(stdout: &str) -> String {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("session "))
        .next_back()
        .unwrap()
        .to_owned()
}

#[test]
fn run_shows_each_node_and_ends_with_the_outcome_and_the_session() {
    let p = Project::new();
    let run = p.run(&[
        "run",
        "tour.yaml",
        "--input",
        "topic=tea",
        "--session-name",
        "first",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = session_of(&run.stdout);
    let list = p.run(&["status"]);
    let detail = p.run(&["status", &id[..12]]);
    p.settings().bind(|| {
        insta::assert_snapshot!("run.tour", run.transcript());
        insta::assert_snapshot!("run.tour.status", list.transcript());
        insta::assert_snapshot!("run.tour.status-detail", detail.transcript());
    });
}

#[test]
fn inputs_reach_the_prompt_and_are_checked() {
    let p = Project::new();
    let (run, out) = p.run_json(&[
        "run",
        "tour.yaml",
        "-i",
        "topic=green tea",
        "-i",
        "tone=warm",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["state"]["draft"], "Notes on green tea (warm)");
    let status = p.status(out["session"].as_str().unwrap());
    assert_eq!(
        status["inputs"],
        serde_json::json!({"topic": "green tea", "tone": "warm"})
    );

    let missing = p.run(&["run", "tour.yaml"]);
    assert_eq!(missing.code, 2);
    assert_eq!(
        missing.stderr,
        "error: missing input(s): topic; give them with --input KEY=VALUE\n"
    );
    let unknown = p.run(&["run", "tour.yaml", "-i", "topc=tea"]);
    assert_eq!(unknown.code, 2);
    assert_eq!(
        unknown.stderr,
        "error: the pipeline has no input `topc`; did you mean `topic`?\n  inputs: topic, tone\n"
    );
    // Nothing was started for either.
    assert_eq!(p.sessions().len(), 1);
}

#[test]
fn stream_shows_the_model_text_as_it_arrives() {
    let p = Project::new();
    let run = p.run(&["run", "tour.yaml", "-i", "topic=tea", "--stream"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("  start  writer\n  [writer] Notes on tea (dry)\n  done   writer  "),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains("  [critic] Reads well.\n  done   critic  "),
        "{}",
        run.transcript()
    );
    let quiet = p.run(&["run", "tour.yaml", "-i", "topic=tea"]);
    assert!(!quiet.stderr.contains("[writer]"), "{}", quiet.transcript());
}

#[test]
fn json_outcomes_and_status_have_every_field() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", "tour.yaml", "-i", "topic=tea"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(run.stderr, "", "--json prints no progress");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&out),
        [
            "branches",
            "checkpoints",
            "cost_partial",
            "cost_usd",
            "error",
            "inherited_tokens",
            "messages",
            "outputs",
            "session",
            "state",
            "status",
            "steps",
            "tokens"
        ]
    );
    // The scripted model has no price: its cost is unknown, not 0.
    assert_eq!(
        (&out["cost_usd"], &out["cost_partial"]),
        (&Value::Null, &Value::from(false))
    );
    assert_eq!(
        (
            &out["status"],
            &out["steps"],
            &out["checkpoints"],
            &out["tokens"]
        ),
        (
            &Value::from("completed"),
            &Value::from(2),
            &Value::from(3),
            &Value::from(351)
        )
    );
    assert_eq!(out["inherited_tokens"], 0, "not a fork");
    assert_eq!(
        out["branches"],
        serde_json::json!([]),
        "no writable repository"
    );
    let list = p.sessions();
    assert_eq!(list.len(), 1);
    assert_eq!(
        keys(&list[0]),
        [
            "checkpoints",
            "cost_partial",
            "cost_usd",
            "created_at",
            "error",
            "id",
            "name",
            "parent_checkpoint",
            "parent_node",
            "parent_session",
            "pipeline",
            "status",
            "steps",
            "tokens_in",
            "tokens_out",
            "updated_at"
        ]
    );
    assert_eq!(
        list[0]["tokens_in"].as_u64().unwrap() + list[0]["tokens_out"].as_u64().unwrap(),
        351
    );
    let detail = p.status(out["session"].as_str().unwrap());
    let usage: Vec<(&str, u64, u64)> = detail["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["node"].as_str().unwrap(),
                u["runs"].as_u64().unwrap(),
                u["tool_calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(usage, [("critic", 1, 1), ("writer", 1, 0)]);
    assert_eq!(
        detail["checkpoints"][2]["nodes"],
        serde_json::json!(["critic"])
    );
}

#[test]
fn ctrl_c_leaves_a_resumable_session() {
    let p = Project::new();
    let running = p.spawn(&["run", "slow.yaml"]);
    assert!(running.wait_for("start  first").is_some());
    running.signal("INT", false);
    let run = running.finish();
    assert_eq!(run.code, 130, "{}", run.transcript());
    let id = session_of(&run.stdout);
    assert!(
        run.stdout.starts_with("interrupted (0 steps, 0 tokens, ")
            && run.stdout.contains(&format!(
                "continue with `orchestra resume {id} --db sessions.db`"
            )),
        "{}",
        run.transcript()
    );
    assert_eq!(p.sessions()[0]["status"], "interrupted");
    // The pipeline file changed since: resume says so, and goes on with what ran.
    p.open_gate();
    let changed = std::fs::read_to_string(p.path("slow.yaml")).unwrap() + "\n# edited\n";
    p.write(
        "slow.yaml",
        &changed.replace("second: {}", "second: { retries: 1 }"),
    );
    let resumed = p.run(&["resume", &id]);
    assert_eq!(resumed.code, 0, "{}", resumed.transcript());
    assert!(
        resumed.stderr.starts_with(&format!(
            "warning: `{0}` or a file it uses changed since this session started; resuming with the pipeline as it was (to go on with the edited one: --pipeline {0})\nresuming session {id} (slow) after checkpoint 0\n",
            p.path("slow.yaml").display()
        )),
        "{}",
        resumed.transcript()
    );
    let status = p.status(&id);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["checkpoints"].as_array().unwrap().len(), 3);
}

#[test]
fn status_without_a_database_or_with_an_unknown_session() {
    let p = Project::new();
    let none = p.run(&["status"]);
    assert_eq!(
        (none.code, none.stdout.as_str()),
        (0, "no sessions yet (no database at sessions.db)\n")
    );
    let json = p.run(&["status", "--json"]);
    assert_eq!(json.stdout, "[]\n");
    let done = p.run(&["run", "tour.yaml", "-i", "topic=tea"]);
    let again = p.run(&["resume", &session_of(&done.stdout)]);
    assert_eq!(again.code, 2, "{}", again.transcript());
    assert!(
        again.stderr.contains("is already completed"),
        "{}",
        again.transcript()
    );
    let unknown = p.run(&["status", "nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.transcript());
    assert!(
        unknown.stderr.starts_with("error: "),
        "{}",
        unknown.transcript()
    );
    let resume = p.run(&["resume", "nope"]);
    assert_eq!(resume.code, 2, "{}", resume.transcript());
}

#[test]
fn a_provider_that_cannot_be_set_up_is_bad_input_and_leaves_no_session() {
    let p = Project::new();
    // The model answers every request with a 500.
    let model = super::fake_model::FakeModel::start(Vec::new());
    let pipeline = std::fs::read_to_string(p.path("keyed.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:9/v1", &model.api_base());
    p.write("keyed.yaml", &pipeline);
    let missing = "error: provider `fake`: environment variable `ORCHESTRA_TEST_KEY` (the API key of provider `fake`) is not set\n";
    let run = p.run(&["run", "keyed.yaml"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, missing),
        "{}",
        run.transcript()
    );
    assert!(p.sessions().is_empty());

    // With the key the session starts (and fails: the model is down) ...
    let out = p
        .command(&["run", "keyed.yaml"])
        .env("ORCHESTRA_TEST_KEY", "sk-test")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let id = session_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(model.requests().len(), 1);
    // ... and resuming it without the key is refused before anything runs.
    let resume = p.run(&["resume", &id]);
    assert_eq!(
        (resume.code, resume.stderr.as_str()),
        (2, missing),
        "{}",
        resume.transcript()
    );
    assert_eq!(model.requests().len(), 1);
    assert_eq!(p.status(&id)["status"], "failed");
    // `status` says why it failed, in the list (NOTE) and for the session, and how to go on.
    let error = p.status(&id)["error"].as_str().unwrap().to_owned();
    let start: String = error.split_whitespace().collect::<Vec<_>>().join(" ");
    let start: String = start.chars().take(60).collect();
    let list = p.run(&["status"]);
    let row = list.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains(" failed ") && row.contains(&start), "{row}");
    let one = p.run(&["status", &id]);
    assert!(
        one.stdout.contains(&format!("\nerror     {error}\n"))
            && one
                .stdout
                .contains(&format!("\nnext      orchestra resume {id}\n")),
        "{}",
        one.stdout
    );
}

#[test]
fn session_commands_without_a_database_are_bad_input_and_create_none() {
    let p = Project::new();
    for args in [
        &["status", "20261120-000000-abcdef"][..],
        &["resume", "20261120"],
        &["replay", "20261120", "--checkpoint", "0"],
        &["attach", "20261120"],
    ] {
        let run = p.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.transcript());
        assert_eq!(
            run.stderr,
            "error: there is no session database at sessions.db; no session ran with it yet (give another with --db PATH)\n",
            "{args:?}"
        );
        assert!(!p.path(super::project::DB).exists(), "{args:?} made one");
    }
    // Listing sessions of a project that has none is not an error.
    let list = p.run(&["status"]);
    assert_eq!(list.code, 0, "{}", list.transcript());
}

#[test]
fn replay_checks_the_providers_before_it_forks() {
    let p = Project::new();
    let (run, out) = p.run_json(&["run", "tour.yaml", "-i", "topic=tea"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = out["session"].as_str().unwrap().to_owned();
    // The scripted provider's responses file went away since: the fork could not run.
    std::fs::remove_file(p.path("tour.responses.yaml")).unwrap();
    let replay = p.run(&["replay", &id, "--checkpoint", "1"]);
    assert_eq!(replay.code, 2, "{}", replay.transcript());
    // It says the pipeline's files changed (the fork runs the pipeline as it was), then why
    // that pipeline cannot run.
    assert!(
        replay
            .stderr
            .contains("changed since this session started; replaying with the pipeline as it was")
            && replay.stderr.contains("\nerror: provider `scripted`: "),
        "{}",
        replay.transcript()
    );
    assert_eq!(p.sessions().len(), 1, "no fork is left behind");
    // Making the fork alone needs no provider.
    let fork = p.run(&["replay", &id, "--checkpoint", "1", "--no-run"]);
    assert_eq!(fork.code, 0, "{}", fork.transcript());
    assert!(fork.stdout.contains("--db sessions.db`"), "{}", fork.stdout);
    assert_eq!(p.sessions().len(), 2);
}

/// A slow executable condition runs off the runtime's thread: Ctrl-C is answered while it
/// runs, and a second Ctrl-C quits without waiting for it.
#[test]
fn ctrl_c_is_answered_while_an_executable_condition_runs() {
    use std::os::unix::fs::PermissionsExt as _;
    let p = Project::new();
    // The condition says it started, thinks for ten minutes, then says it ended.
    p.write(
        "conditions/ponder",
        "#!/bin/sh\ncat >/dev/null\ntouch pondering\nsleep 600\ntouch pondered\necho END\n",
    );
    let script = p.path("conditions/ponder");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.write(
        "ponder.yaml",
        "name: ponder\nproviders:\n  scripted: { kind: scripted, responses: fixtures/default.responses.yaml }\nagents:\n  first: {}\n  second: {}\ngraph:\n  - { from: START, to: first }\n  - { from: first, condition: ponder, to: [second, END] }\n  - { from: second, to: END }\n",
    );
    let running = p.spawn(&["run", "ponder.yaml"]);
    wait_until("the condition to start", || {
        p.path("pondering").exists().then_some(())
    });
    running.signal("INT", false);
    let answered = running.wait_for("interrupted: finishing the checkpoint");
    running.signal("INT", false);
    let group = format!("-{}", running.child.id());
    let run = running.finish();
    // orchestra has exited, and the condition has not ended: the second Ctrl-C did not wait
    // for it. The quitting process killed the condition's process group; in case it failed
    // to, end what is left of its own group.
    let waited = p.path("pondered").exists();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(std::process::Stdio::null())
        .status();
    assert!(answered.is_some(), "{}", run.transcript());
    assert_eq!(run.code, 130, "{}", run.transcript());
    assert!(
        !waited,
        "orchestra quit only once the condition had ended\n{}",
        run.transcript()
    );
}
