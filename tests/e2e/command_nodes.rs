//! Command nodes through the binary, with real programs in a real git repository: a check whose
//! exit code routes to a fixer agent (scripted) or `END`, a program's changes committed on the
//! session branch, a missing program (failing the session, or routed by `on_error`), and a
//! timeout that kills the program's whole process group.

use std::path::Path;

use serde_json::{Value, json};

use super::common::wait_until;
use super::gitrepo::GitProject;

const HEAD: &str = "defaults: { provider: scripted, model: worker }\nproviders:\n  scripted: { kind: scripted, responses: ../fixtures/cmd.responses.yaml, latency_ms: 0 }\nworkspace:\n  repos:\n    app: { path: ., write: true }\n";

/// The check: `test -f` on a file named by an input holding a space (one argument, no shell
/// splitting); the fixer writes the file; the check runs again and the session ends.
const CHECKED: &str = r#"name: checked
inputs:
  file: { default: "docs/my notes.md" }
state:
  check: {}
  code: { type: integer }
agents:
  check:
    command: [sh, -c, 'if test -f "$1"; then echo "found $1"; else echo "missing $1" >&2; exit 3; fi', check, "{{ inputs.file }}"]
    repo: app
    writes: { check: "", code: /exit_code }
  fixer:
    task: { text: "Create {{ inputs.file }}: {{ state.check.stderr }}" }
    tools: ["app:write-file"]
graph:
  - { from: START, to: check }
  - { from: check, condition: checked, to: [fixer, END] }
  - { from: fixer, to: check, max_loops: 2 }
"#;

const CONDITION: &str =
    "rules:\n  - when: state.check.exit_code != 0\n    to: [fixer]\ndefault: END\n";

const RESPONSES: &str = r#"agents:
  fixer:
    runs:
      - turns:
          - tool_calls: [{ tool: "app:write-file", args: { path: "docs/my notes.md", content: "notes\n" } }]
          - text: created the notes
"#;

fn project(files: &[(&str, &str)]) -> GitProject {
    let mut all = vec![
        ("conditions/checked.yaml", CONDITION),
        ("fixtures/cmd.responses.yaml", RESPONSES),
    ];
    all.extend_from_slice(files);
    GitProject::new(&all)
}

fn pipeline(body: &str) -> String {
    let (name, rest) = body.split_once('\n').unwrap();
    format!("{name}\n{HEAD}{rest}")
}

fn steps(status: &Value) -> Vec<String> {
    status["checkpoints"].as_array().unwrap()[1..]
        .iter()
        .map(|c| {
            c["nodes"].as_array().unwrap()[0]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_check_routes_on_its_exit_code_to_a_fixer_then_to_end() {
    let p = project(&[("pipelines/checked.yaml", &pipeline(CHECKED))]);
    let compile = p.orchestra(&["compile", "pipelines/checked.yaml"]);
    assert_eq!(compile.code, 0, "{}", compile.transcript());
    assert!(
        compile.stdout.contains(
            "    command      [\"sh\",\"-c\",\"if test -f \\\"$1\\\"; then echo \\\"found $1\\\"; else echo \\\"missing $1\\\" >&2; exit 3; fi\",\"check\",\"{{ inputs.file }}\"] (no model; argv, not a shell)\n    runs in      repository `app` (its session worktree; changes are committed)\n"
        ),
        "{}",
        compile.stdout
    );
    let run = p.orchestra(&["run", "pipelines/checked.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr.contains("  done   check  ") && run.stderr.contains("command exited with 3\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("command exited with 0\n"),
        "{}",
        run.stderr
    );
    // The same run again with `--json` (no progress lines), for its final state.
    let out = p.json(&["run", "pipelines/checked.yaml"], 0);
    let id = out["session"].as_str().unwrap().to_owned();
    let status = p.status(&id);
    assert_eq!(status["status"], "completed");
    assert_eq!(steps(&status), ["check", "fixer", "check"]);
    let usage: Vec<(String, bool, u64)> = status["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let tokens = u["tokens_in"].as_u64().unwrap() + u["tokens_out"].as_u64().unwrap();
            (
                u["node"].as_str().unwrap().to_owned(),
                u["command"] == true,
                tokens,
            )
        })
        .collect();
    assert_eq!(usage[0].0, "check");
    assert!(usage[0].1 && usage[0].2 == 0, "{usage:?}");
    assert!(!usage[1].1, "{usage:?}");
    let shown = p.orchestra(&["status", &id]);
    assert!(
        shown.stdout.contains("  check (command) "),
        "{}",
        shown.stdout
    );
    // The last check's output is in the state: found, exit code 0.
    let state = &out["state"];
    assert_eq!(state["code"], 0, "{state}");
    assert_eq!(
        state["check"],
        json!({"exit_code": 0, "stdout": "found docs/my notes.md\n", "stderr": ""})
    );
    p.assert_user_untouched();
}

const STAMP: &str = r#"name: stamp
state:
  out: { type: string }
agents:
  stamp:
    command: [sh, -c, 'mkdir -p gen && printf "%s\n" "$1" > gen/stamp.txt && echo wrote', stamp, "{{ inputs.word }}"]
    repo: app
    writes: { out: /stdout }
inputs:
  word: { default: hello }
graph:
  - { from: START, to: stamp }
  - { from: stamp, to: END }
"#;

#[test]
fn a_command_nodes_changes_are_committed_on_the_session_branch() {
    let p = project(&[("pipelines/stamp.yaml", &pipeline(STAMP))]);
    let run = p.orchestra(&["run", "pipelines/stamp.yaml", "--input", "word=hi there"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let id = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap()
        .to_owned();
    let (branch, worktree) = p.branch_and_worktree(&id);
    assert_eq!(
        p.git(&["show", &format!("{branch}:gen/stamp.txt")]),
        "hi there\n"
    );
    let message = p.git(&["log", "-1", "--format=%B", &branch]);
    assert_eq!(
        message,
        format!(
            "stamp: step 1 of stamp\n\nOrchestra-Session: {id}\nOrchestra-Agent: stamp\nOrchestra-Step: 1\n\n"
        )
    );
    // Only the command's change: the commit's parent is `main`.
    assert_eq!(p.rev(&format!("{branch}~1")), p.rev("main"));
    // It ran in the session worktree, never in the user's checkout.
    assert!(worktree.join("gen/stamp.txt").is_file());
    assert!(!p.root().join("gen").exists());
    p.assert_user_untouched();
}

const MISSING: &str = r#"name: missing
agents:
  lint: { command: [no-such-program-for-orchestra, --check], retries: 0 }
graph:
  - { from: START, to: lint }
  - { from: lint, to: END }
"#;

const MISSING_HANDLED: &str = r#"name: missing-handled
state:
  handled: { type: string }
agents:
  lint: { command: [no-such-program-for-orchestra, --check], retries: 0, on_error: report }
  report:
    command: [echo, "{{ state.errors[0].error }}"]
    writes: { handled: /stdout }
graph:
  - { from: START, to: lint }
  - { from: lint, to: END }
  - { from: report, to: END }
"#;

#[test]
fn a_missing_program_fails_the_node_with_its_name_or_goes_to_on_error() {
    let p = project(&[
        ("pipelines/missing.yaml", &pipeline(MISSING)),
        ("pipelines/missing-handled.yaml", &pipeline(MISSING_HANDLED)),
    ]);
    let msg = "command node `lint`: program `no-such-program-for-orchestra` not found in PATH";
    let run = p.orchestra(&["run", "pipelines/missing.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!("  FAILED lint: {msg}\n")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains(msg), "{}", run.transcript());

    let out = p.json(&["run", "pipelines/missing-handled.yaml"], 0);
    assert_eq!(out["status"], "completed");
    assert_eq!(
        out["state"]["errors"],
        json!([{"agent": "lint", "step": 1, "error": msg}])
    );
    assert_eq!(out["state"]["handled"], format!("{msg}\n"));
}

const SLOW: &str = r#"name: slow
agents:
  slow:
    command: [sh, -c, 'sleep 60 & echo $! > bg.pid; wait']
    timeout: 1s
    retries: 0
graph:
  - { from: START, to: slow }
  - { from: slow, to: END }
"#;

#[test]
fn a_timeout_kills_the_programs_process_group() {
    let p = project(&[("pipelines/slow.yaml", &pipeline(SLOW))]);
    let started = std::time::Instant::now();
    let run = p.orchestra(&["run", "pipelines/slow.yaml"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the run waited for the program"
    );
    assert!(
        run.stderr.contains(
            "  FAILED slow: command `sh` timed out after 1s; its process group was killed\n"
        ),
        "{}",
        run.stderr
    );
    // The background `sleep` it started went with it.
    let pid = std::fs::read_to_string(p.root().join("bg.pid")).unwrap();
    let proc_dir = Path::new("/proc").join(pid.trim());
    wait_until("the background sleep to be gone", || {
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its reaper.
        (stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")).then_some(())
    });
}
