//! Call nodes (`call:` + `with:`): the design-plan-impl example end to end, a child session
//! killed with SIGKILL and resumed with its parent (no finished node runs again), a child's
//! failure as the call node's (retries and `on_error`), and inputs checked when the node runs.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::PATIENCE;
use super::project::Project;

/// The parent of the crash test: a model agent, a call, another model agent. Every agent is
/// `bin/agent.sh`, which logs its calls to `calls.log`.
const PARENT: &str = r#"
name: call-parent
defaults: { provider: sh }
providers:
  sh: { kind: command, command: ["sh", "bin/agent.sh", "{{model}}", "{{prompt}}"] }
state:
  notes: { type: array, reducer: append }
  child_notes: { type: array }
agents:
  before: &agent
    model: before
    task: { text: "begin" }
    output: { schema: { type: object, required: [note], properties: { note: { type: string } } } }
    writes: { notes: /note }
  phase:
    call: call-child.yaml
    with: { topic: "{{ state.notes | length }} note(s)" }
    writes: { child_notes: /notes }
  after: { <<: *agent, model: after, task: { text: "end" } }
graph:
  - { from: START, to: before }
  - { from: before, to: phase }
  - { from: phase, to: after }
  - { from: after, to: END }
"#;

/// The child: `two` logs `gate` and waits until a file `open` exists, so the test can kill the
/// process while the child is in its second step.
const CHILD: &str = r#"
name: call-child
defaults: { provider: sh }
providers:
  sh: { kind: command, command: ["sh", "bin/agent.sh", "{{model}}", "{{prompt}}"] }
  gate:
    kind: command
    command: ["sh", "-c", "echo gate >> calls.log; cat >/dev/null; while [ ! -e open ]; do sleep 0.02; done; echo '{\"note\": \"through the gate\"}'"]
    stdin: true
inputs:
  topic: { type: string, required: true }
state:
  notes: { type: array, reducer: append }
agents:
  one: &agent
    model: one
    task: { text: "about {{ inputs.topic }}" }
    output: { schema: { type: object, required: [note], properties: { note: { type: string } } } }
    writes: { notes: /note }
  two: { <<: *agent, provider: gate, model: two }
  three: { <<: *agent, model: three }
graph:
  - { from: START, to: one }
  - { from: one, to: two }
  - { from: two, to: three }
  - { from: three, to: END }
"#;

/// Calls per agent in `calls.log`.
fn calls(p: &Project) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for l in p.log("calls.log") {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

/// Waits until `calls.log` has a line `line` (bounded by `PATIENCE`).
fn wait_for_call(p: &Project, line: &str) -> bool {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        if p.log("calls.log").iter().any(|l| l == line) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_sigkill_in_a_child_session_resumes_the_child_then_the_parent() {
    let p = Project::new();
    p.write("call-parent.yaml", PARENT);
    p.write("call-child.yaml", CHILD);
    let running = p.spawn(&["run", "call-parent.yaml", "--events", "events.jsonl"]);
    assert!(
        wait_for_call(&p, "gate"),
        "the child never reached its second step"
    );
    running.signal("KILL", true);
    let killed = running.finish();
    assert_ne!(killed.code, 0, "{}", killed.transcript());
    let before = calls(&p);
    assert_eq!(
        before,
        [("before", 1), ("gate", 1), ("one", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    );

    // The child is listed under its parent, both resumable.
    let sessions = p.sessions();
    let parent = sessions
        .iter()
        .find(|s| s["pipeline"] == "call-parent")
        .unwrap();
    let child = sessions
        .iter()
        .find(|s| s["pipeline"] == "call-child")
        .unwrap();
    let (pid, cid) = (
        parent["id"].as_str().unwrap().to_owned(),
        child["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(child["parent_session"], pid.as_str());
    assert_eq!(child["parent_node"], "phase");
    assert_eq!(parent["status"], "interrupted");
    assert_eq!(child["status"], "interrupted");
    let detail = p.status(&pid);
    assert_eq!(detail["children"][0]["id"], cid.as_str());
    assert_eq!(detail["children"][0]["node"], "phase");
    assert_eq!(detail["children"][0]["step"], 2);
    let listing = p.run(&["status"]);
    assert!(
        listing.stdout.contains(&format!("└ {cid}")),
        "{}",
        listing.stdout
    );
    // The child's first step was checkpointed before the kill.
    let steps: Vec<u64> = p.status(&cid)["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 1]);

    p.open_gate();
    let (run, out) = p.run_json(&["resume", &pid]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    // Nothing that had finished ran again: `before` and the child's `one` once, the gate twice
    // (it was killed mid-call), the rest once.
    let after = calls(&p);
    assert_eq!(
        after,
        [
            ("after", 1),
            ("before", 1),
            ("gate", 2),
            ("one", 1),
            ("three", 1)
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    );
    let notes = out["state"]["child_notes"].as_array().unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].as_str().unwrap().starts_with("one saw "),
        "{notes:?}"
    );
    assert_eq!(notes[1], "through the gate");
    // Still the one child, completed, resumed rather than started again.
    let children: Vec<Value> = p
        .sessions()
        .into_iter()
        .filter(|s| s["pipeline"] == "call-child")
        .collect();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["id"], cid.as_str());
    assert_eq!(children[0]["status"], "completed");
    let resumed = p.status(&cid);
    assert_eq!(resumed["inputs"], json!({ "topic": "1 note(s)" }));
    // The events of the first drive carried the child's, with its id and where it was called.
    let events: Vec<Value> = p
        .log("events.jsonl")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let started = events
        .iter()
        .find(|e| e["event"] == "session_started" && e["session"] == cid.as_str())
        .expect("the child's session_started");
    assert_eq!(started["parent_session"], pid.as_str());
    assert_eq!(started["call_node"], "phase");
    assert!(events.iter().any(|e| e["event"] == "node_finished"
        && e["node"] == "one"
        && e["session"] == cid.as_str()));
}

#[test]
fn the_design_plan_impl_example_runs_offline_end_to_end() {
    let ws = super::common::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(ws.join("orchestra.yaml"), dir.path().join("orchestra.yaml")).unwrap();
    super::common::copy_dir(
        &ws.join("pipelines/examples"),
        &dir.path().join("pipelines/examples"),
    );
    let orchestra = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--db", "s.db"]);
        super::common::orchestra(dir.path(), &home, &all)
    };
    let run = orchestra(&[
        "run",
        "pipelines/examples/design-plan-impl.yaml",
        "--input",
        "goal=resume provider sessions",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let out: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(out["status"], "completed");
    let state = &out["state"];
    assert!(
        state["design"]
            .as_str()
            .unwrap()
            .starts_with("# Design: resume provider sessions"),
        "{state}"
    );
    // The design was sent back once, so its approved draft is the revised one.
    assert!(
        state["design"].as_str().unwrap().contains("fallback"),
        "{state}"
    );
    assert!(state["plan"].as_str().unwrap().starts_with("# Plan"));
    assert!(
        state["implementation"]
            .as_str()
            .unwrap()
            .starts_with("# Implementation")
    );
    // Two reviews of the design, one of the plan, one of the implementation.
    assert_eq!(state["rounds"], 4);
    let report = out["outputs"][0].as_str().unwrap();
    let text = std::fs::read_to_string(dir.path().join(report)).unwrap();
    assert!(text.starts_with("# resume provider sessions"), "{text}");
    for section in [
        "## Design",
        "## Plan",
        "## Implementation",
        "4 review rounds",
    ] {
        assert!(text.contains(section), "{section}: {text}");
    }

    // Three child sessions of the one phase pipeline, under the parent, whose tokens hold theirs.
    let id = out["session"].as_str().unwrap();
    let status = orchestra(&["status", id, "--json"]);
    assert_eq!(status.code, 0, "{}", status.transcript());
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    let children = status["children"].as_array().unwrap();
    let nodes: Vec<&str> = children
        .iter()
        .map(|c| c["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["design", "plan", "implementation"]);
    assert!(children.iter().all(|c| c["pipeline"] == "tracked-phase"));
    let child_tokens: u64 = children.iter().map(|c| c["tokens"].as_u64().unwrap()).sum();
    assert!(child_tokens > 0);
    assert_eq!(out["tokens"].as_u64().unwrap(), child_tokens);
    let design = children[0]["id"].as_str().unwrap();
    let phase = orchestra(&["status", design, "--json"]);
    let phase: Value = serde_json::from_str(&phase.stdout).unwrap();
    assert_eq!(phase["parent_session"], id);
    assert_eq!(phase["parent_node"], "design");
    assert_eq!(phase["inputs"]["phase"], "design");
    // author, reviewer (revise), author, reviewer (approve).
    assert_eq!(phase["checkpoints"].as_array().unwrap().len(), 5);
    let shown = orchestra(&["show", id]);
    assert_eq!(shown.code, 0, "{}", shown.transcript());
    assert!(shown.stdout.contains("child sessions"), "{}", shown.stdout);
    assert!(shown.stdout.contains(design), "{}", shown.stdout);
}

/// A parent whose call node's child fails (`FAIL` at once, or a failing agent), with an error
/// route in the parent.
const FAILING: &str = r#"
name: failing-call
state:
  handled: { type: string }
agents:
  phase:
    call: failing-child.yaml
    with: { mode: "{{ inputs.mode }}" }
    retries: 0
    on_error: triage
  triage: { task: { text: "triage" }, writes: { handled: "" } }
inputs:
  mode: { type: string, enum: [fail, ok, bad] }
graph:
  - { from: START, to: phase }
  - { from: phase, to: END }
  - { from: triage, to: END }
"#;

const FAILING_CHILD: &str = r#"
name: failing-child
inputs:
  mode: { type: string, enum: [fail, ok], required: true }
agents:
  work: { task: { text: "work" } }
graph:
  - { from: START, condition: child_mode, to: [work, FAIL], reason: "asked to fail" }
  - { from: work, to: END }
"#;

#[test]
fn a_failing_child_is_an_error_of_its_call_node() {
    let p = Project::new();
    p.write("failing-call.yaml", FAILING);
    p.write("failing-child.yaml", FAILING_CHILD);
    p.write(
        "conditions/child_mode.yaml",
        "rules:\n  - when: inputs.mode == \"fail\"\n    to: FAIL\ndefault: work\n",
    );
    // The child ends at FAIL: the call node fails, and `on_error` routes it to `triage`.
    let (run, out) = p.run_json(&["run", "failing-call.yaml", "--input", "mode=fail"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["status"], "completed");
    let errors = out["state"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["agent"], "phase");
    let error = errors[0]["error"].as_str().unwrap();
    assert!(
        error.contains("failing-child.yaml") && error.contains("asked to fail"),
        "{error}"
    );
    assert!(out["state"]["handled"].is_string());
    let child = p
        .sessions()
        .into_iter()
        .find(|s| s["pipeline"] == "failing-child")
        .unwrap();
    assert_eq!(child["status"], "failed");
    assert_eq!(child["parent_node"], "phase");

    // A value the child's input does not take is an error naming the input, when the node runs.
    let (run, out) = p.run_json(&["run", "failing-call.yaml", "--input", "mode=bad"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let error = out["state"]["errors"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("invalid value for input `mode`") && error.contains("`\"bad\"`"),
        "{error}"
    );

    // A child that completes: no error, nothing routed.
    let (run, out) = p.run_json(&["run", "failing-call.yaml", "--input", "mode=ok"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(out["state"]["errors"], json!([]));
    assert!(out["state"].get("handled").is_none_or(Value::is_null));
}

#[test]
fn a_child_waiting_for_a_human_pauses_its_parent_and_attach_goes_on_with_its_chat() {
    let p = Project::new();
    p.write(
        "chat-parent.yaml",
        "name: chat-parent\nstate: { verdict: { type: string } }\nagents:\n  ask: { call: chat-child.yaml, writes: { verdict: /verdict } }\ngraph:\n  - { from: START, to: ask }\n  - { from: ask, to: END }\n",
    );
    p.write(
        "chat-child.yaml",
        "name: chat-child\nstate: { verdict: { type: string } }\nagents:\n  review: { mode: interactive, task: { text: review it }, writes: { verdict: /verdict } }\ngraph:\n  - { from: START, to: review }\n  - { from: review, to: END }\n",
    );
    let run = p.run(&["run", "chat-parent.yaml", "--detach"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let sessions = p.sessions();
    let status_of = |pipeline: &str| {
        sessions
            .iter()
            .find(|s| s["pipeline"] == pipeline)
            .map(|s| (s["id"].as_str().unwrap().to_owned(), s["status"].clone()))
            .unwrap()
    };
    let (pid, parent) = status_of("chat-parent");
    let (cid, child) = status_of("chat-child");
    assert_eq!((parent, child), (json!("paused"), json!("paused")));
    assert!(
        p.status(&pid)["error"]
            .as_str()
            .unwrap()
            .contains("`review` waits for a human"),
        "{}",
        p.status(&pid)
    );

    // Attaching to the parent resumes it here, and the child's chat with it.
    use std::io::Write as _;
    let mut attach = p
        .command(&["attach", &pid])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    attach
        .stdin
        .take()
        .unwrap()
        .write_all(b"/approve fine\n")
        .unwrap();
    let out = attach.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let done = p.status(&pid);
    assert_eq!(done["status"], "completed", "{text}");
    let state = p.run(&["show", &pid, "--json"]);
    let state: Value = serde_json::from_str(&state.stdout).unwrap();
    assert_eq!(state["state"]["verdict"], "approve");
    let children: Vec<Value> = p
        .sessions()
        .into_iter()
        .filter(|s| s["pipeline"] == "chat-child")
        .collect();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["id"], cid.as_str());
    assert_eq!(children[0]["status"], "completed");
}
